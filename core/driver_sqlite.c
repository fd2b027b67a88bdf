/* driver_sqlite.c - the SQLite driver (see driver.h).
 *
 * Relies on the sqlite3 C API. Unlike pysqlite, calling it directly gives
 * transactional DDL: a failing revision's CREATE TABLE rolls back too.
 * Foreign keys are enforced (PRAGMA foreign_keys=ON), as an application
 * would run them. One thread uses a connection, so SQLite's own mutexes are
 * off (SQLITE_OPEN_NOMUTEX).
 */
#include "driver.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct sqlite_conn {
	lm_conn base;
	sqlite3 *db; /* owned */
	int guard;   /* refuse BEGIN/COMMIT/ROLLBACK while set */
	int denied;  /* the last statement was refused by the guard */
	char *path;  /* owned: the database file, NULL in memory */
	int lock_fd; /* the flocked "<path>.lock" file, or -1 */
} sqlite_conn;

struct lm_stmt {
	sqlite_conn *conn;
	sqlite3_stmt *stmt; /* owned */
	int64_t changes;
};

#define GUARD_MESSAGE "transaction control statements are not allowed in a migration: the runner commits each revision"

static int sqlite_fail(sqlite3 *db, lm_error *err)
{
	/* sqlite3_errmsg is borrowed: copy it at once */
	return lm_error_set(err, LM_EFAIL, "%s", sqlite3_errmsg(db));
}

static int conn_fail(sqlite_conn *conn, lm_error *err)
{
	if (conn->denied) {
		conn->denied = 0;
		return lm_error_set(err, LM_EFAIL, GUARD_MESSAGE);
	}
	return sqlite_fail(conn->db, err);
}

/* Creates the missing parent folders of path, like `mkdir -p $(dirname path)`. */
static int make_parents(const char *path, lm_error *err)
{
	char *dir = strdup(path);
	int rc = 0;
	if (!dir)
		return LM_ENOMEM;
	char *last = strrchr(dir, '/');
	if (!last || last == dir)
		goto done; /* in the current folder, or in / */
	*last = '\0';
	for (char *p = dir + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
			rc = lm_error_set(err, LM_EFAIL,
				"cannot create folder '%s' for the database: %s",
				dir, strerror(errno));
			goto done;
		}
		*p = saved;
		if (saved == '\0')
			break;
	}
done:
	free(dir);
	return rc;
}

/* The authorizer that keeps migrations from ending the runner's transaction. */
static int authorize(void *ud, int action, const char *a, const char *b,
	const char *c, const char *d)
{
	(void)a, (void)b, (void)c, (void)d;
	sqlite_conn *conn = ud;
	if (conn->guard && action == SQLITE_TRANSACTION) {
		conn->denied = 1;
		return SQLITE_DENY;
	}
	return SQLITE_OK;
}

static int sqlite_open(lm_conn **out, const lm_url *url, lm_error *err)
{
	int rc;
	sqlite_conn *conn = calloc(1, sizeof *conn);
	*out = NULL;
	if (!conn)
		return LM_ENOMEM;
	conn->base.methods = &lm_driver_sqlite;
	conn->lock_fd = -1;
	if (strcmp(url->path, ":memory:") != 0) {
		if ((rc = make_parents(url->path, err)) != 0)
			goto done;
		if (!(conn->path = strdup(url->path))) {
			rc = LM_ENOMEM;
			goto done;
		}
	}
	if (sqlite3_open_v2(url->path, &conn->db,
		    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		rc = lm_error_set(err, LM_EFAIL, "cannot open sqlite database '%s': %s",
			url->path, conn->db ? sqlite3_errmsg(conn->db) : "out of memory");
		goto done;
	}
	sqlite3_extended_result_codes(conn->db, 1);
	sqlite3_busy_timeout(conn->db, 60000);
	sqlite3_set_authorizer(conn->db, authorize, conn);
	if (sqlite3_exec(conn->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL) != SQLITE_OK) {
		rc = sqlite_fail(conn->db, err);
		goto done;
	}
	*out = &conn->base;
	rc = 0;
done:
	if (rc != 0) {
		sqlite3_close(conn->db);
		free(conn->path);
		free(conn);
	}
	return rc;
}

static void sqlite_unlock(lm_conn *c)
{
	sqlite_conn *conn = (sqlite_conn *)c;
	if (conn->lock_fd >= 0)
		close(conn->lock_fd); /* releases the flock */
	conn->lock_fd = -1;
}

static void sqlite_close(lm_conn *c)
{
	sqlite_conn *conn = (sqlite_conn *)c;
	if (!conn)
		return;
	sqlite_unlock(c);
	sqlite3_close(conn->db);
	free(conn->path);
	free(conn);
}

/* An flock on "<database>.lock", polled with back-off so a timeout can name
 * the holder (its pid is written in the file). SQLite's own locks cannot
 * serialise whole commands: a runner reads the version table before it
 * writes. */
static int sqlite_lock(lm_conn *c, const char *name, double timeout, lm_error *err)
{
	sqlite_conn *conn = (sqlite_conn *)c;
	char lockpath[4096], holder[32] = "";
	lm_lock_waiter waiter;
	(void)name; /* one database file holds one project's version table */
	if (!conn->path || conn->lock_fd >= 0)
		return 0;
	snprintf(lockpath, sizeof lockpath, "%s.lock", conn->path);
	int fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0)
		return lm_error_set(err, LM_EFAIL, "cannot open lock file '%s': %s",
			lockpath, strerror(errno));
	lm_lock_wait_start(&waiter);
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK || !lm_lock_wait(&waiter, timeout)) {
			ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
			holder[n > 0 ? n : 0] = '\0';
			holder[strcspn(holder, "\n")] = '\0';
			close(fd);
			return lm_error_set(err, LM_EFAIL,
				"timed out after %g s waiting for the migration lock '%s'%s%s",
				timeout, lockpath, *holder ? ": held by process " : "", holder);
		}
	}
	char pid[32];
	int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		/* the pid is only for messages; the lock itself is held */
	}
	conn->lock_fd = fd;
	return 0;
}

static int bind_all(sqlite3_stmt *st, sqlite3 *db, const lm_value *params,
	int nparams, lm_error *err)
{
	int expected = sqlite3_bind_parameter_count(st);
	if (expected != nparams)
		return lm_error_set(err, LM_EFAIL,
			"statement takes %d parameter%s, %d given", expected,
			expected == 1 ? "" : "s", nparams);
	for (int i = 0; i < nparams; i++) {
		const lm_value *v = &params[i];
		int rc;
		switch (v->type) {
		case LM_NULL: rc = sqlite3_bind_null(st, i + 1); break;
		case LM_INT:
		case LM_BOOL: rc = sqlite3_bind_int64(st, i + 1, v->u.i); break;
		case LM_FLOAT: rc = sqlite3_bind_double(st, i + 1, v->u.f); break;
		case LM_TEXT:
			rc = sqlite3_bind_text64(st, i + 1, v->u.s.p, v->u.s.n,
				SQLITE_TRANSIENT, SQLITE_UTF8);
			break;
		case LM_BLOB:
			rc = sqlite3_bind_blob64(st, i + 1, v->u.s.p, v->u.s.n,
				SQLITE_TRANSIENT);
			break;
		default: rc = SQLITE_MISUSE;
		}
		if (rc != SQLITE_OK)
			return sqlite_fail(db, err);
	}
	return 0;
}

static int sqlite_prepare(lm_conn *c, const char *sql, lm_stmt **out, lm_error *err)
{
	sqlite_conn *conn = (sqlite_conn *)c;
	const char *tail = NULL;
	sqlite3_stmt *st = NULL;
	*out = NULL;
	if (sqlite3_prepare_v2(conn->db, sql, -1, &st, &tail) != SQLITE_OK)
		return conn_fail(conn, err);
	if (!st)
		return lm_error_set(err, LM_EFAIL, "empty sql statement");
	while (tail && (*tail == ' ' || *tail == '\t' || *tail == '\n' ||
			       *tail == '\r' || *tail == ';'))
		tail++;
	if (tail && *tail) {
		sqlite3_finalize(st);
		return lm_error_set(err, LM_EFAIL,
			"a prepared statement holds one sql statement; found more after the first");
	}
	lm_stmt *s = calloc(1, sizeof *s);
	if (!s) {
		sqlite3_finalize(st);
		return LM_ENOMEM;
	}
	s->conn = conn;
	s->stmt = st;
	*out = s;
	return 0;
}

static int sqlite_bind(lm_stmt *s, const lm_value *params, int nparams, lm_error *err)
{
	sqlite3_reset(s->stmt);
	sqlite3_clear_bindings(s->stmt);
	s->changes = 0;
	return bind_all(s->stmt, s->conn->db, params, nparams, err);
}

static int sqlite_step(lm_stmt *s, lm_error *err)
{
	int rc = sqlite3_step(s->stmt);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE) {
		s->changes = sqlite3_changes64(s->conn->db);
		return 0;
	}
	sqlite_fail(s->conn->db, err);
	sqlite3_reset(s->stmt);
	return LM_EFAIL;
}

static int sqlite_column_count(lm_stmt *s)
{
	return sqlite3_column_count(s->stmt);
}

static const char *sqlite_column_name(lm_stmt *s, int i)
{
	return sqlite3_column_name(s->stmt, i);
}

static void sqlite_column(lm_stmt *s, int i, lm_value *out)
{
	switch (sqlite3_column_type(s->stmt, i)) {
	case SQLITE_INTEGER:
		out->type = LM_INT;
		out->u.i = sqlite3_column_int64(s->stmt, i);
		break;
	case SQLITE_FLOAT:
		out->type = LM_FLOAT;
		out->u.f = sqlite3_column_double(s->stmt, i);
		break;
	case SQLITE_TEXT:
		out->type = LM_TEXT;
		out->u.s.p = (const char *)sqlite3_column_text(s->stmt, i);
		out->u.s.n = (size_t)sqlite3_column_bytes(s->stmt, i);
		break;
	case SQLITE_BLOB:
		out->type = LM_BLOB;
		out->u.s.p = sqlite3_column_blob(s->stmt, i);
		out->u.s.n = (size_t)sqlite3_column_bytes(s->stmt, i);
		break;
	default:
		out->type = LM_NULL;
	}
}

static int64_t sqlite_changes(lm_stmt *s)
{
	return s->changes;
}

static void sqlite_finalize(lm_stmt *s)
{
	if (!s)
		return;
	sqlite3_finalize(s->stmt);
	free(s);
}

static int sqlite_exec(lm_conn *c, const char *sql, const lm_value *params,
	int nparams, int64_t *changes, lm_error *err)
{
	sqlite_conn *conn = (sqlite_conn *)c;
	const char *next = sql;
	int rc = 0;
	if (changes)
		*changes = 0;
	/* Several statements run one after the other when there are no
	 * parameters; with parameters, sql must be one statement. */
	while (next && *next) {
		sqlite3_stmt *st = NULL;
		const char *tail = NULL;
		if (sqlite3_prepare_v2(conn->db, next, -1, &st, &tail) != SQLITE_OK)
			return conn_fail(conn, err);
		next = tail;
		if (!st) /* only whitespace or comments were left */
			break;
		if ((rc = bind_all(st, conn->db, params, nparams, err)) == 0) {
			int step;
			while ((step = sqlite3_step(st)) == SQLITE_ROW)
				;
			if (step != SQLITE_DONE)
				rc = sqlite_fail(conn->db, err);
			else if (changes)
				*changes = sqlite3_changes64(conn->db);
		}
		sqlite3_finalize(st);
		if (rc != 0)
			return rc;
		if (nparams > 0) {
			while (next && (*next == ' ' || *next == '\n' || *next == '\t' ||
					       *next == '\r' || *next == ';'))
				next++;
			if (next && *next)
				return lm_error_set(err, LM_EFAIL,
					"sql with parameters must be one statement");
		}
	}
	return 0;
}

static int run_control(sqlite_conn *conn, const char *sql, lm_error *err)
{
	int saved = conn->guard;
	conn->guard = 0;
	int rc = sqlite3_exec(conn->db, sql, NULL, NULL, NULL);
	conn->guard = saved;
	return rc == SQLITE_OK ? 0 : sqlite_fail(conn->db, err);
}

static int sqlite_begin(lm_conn *c, int immediate, lm_error *err)
{
	return run_control((sqlite_conn *)c, immediate ? "BEGIN IMMEDIATE" : "BEGIN", err);
}

static int sqlite_commit(lm_conn *c, lm_error *err)
{
	return run_control((sqlite_conn *)c, "COMMIT", err);
}

static int sqlite_rollback(lm_conn *c, lm_error *err)
{
	sqlite_conn *conn = (sqlite_conn *)c;
	if (sqlite3_get_autocommit(conn->db))
		return 0; /* nothing open (SQLite may already have rolled back) */
	return run_control(conn, "ROLLBACK", err);
}

static int sqlite_guard(lm_conn *c, int on)
{
	((sqlite_conn *)c)->guard = on;
	return 0;
}

const lm_driver_methods lm_driver_sqlite = {
	.version = 2,
	.dialect = "sqlite",
	.open = sqlite_open,
	.close = sqlite_close,
	.exec = sqlite_exec,
	.prepare = sqlite_prepare,
	.bind = sqlite_bind,
	.step = sqlite_step,
	.column_count = sqlite_column_count,
	.column_name = sqlite_column_name,
	.column = sqlite_column,
	.changes = sqlite_changes,
	.finalize = sqlite_finalize,
	.begin = sqlite_begin,
	.commit = sqlite_commit,
	.rollback = sqlite_rollback,
	.guard_transactions = sqlite_guard,
	.lock = sqlite_lock,
	.unlock = sqlite_unlock,
};
