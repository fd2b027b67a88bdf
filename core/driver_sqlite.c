/* driver_sqlite.c - the SQLite driver (see driver.h).
 *
 * Relies on the sqlite3 C API. Unlike pysqlite, calling it directly gives
 * transactional DDL: a failing revision's CREATE TABLE rolls back too.
 * Foreign keys are enforced (PRAGMA foreign_keys=ON), as an application
 * would run them. Bulk rows (queue_row) are written by a thread of their
 * own while the caller makes the next ones, so connections are opened in
 * SQLite's serialised mode (SQLITE_OPEN_FULLMUTEX) and a step that must
 * read the connection's error holds its mutex.
 */
#include "driver.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct writer writer;

typedef struct sqlite_conn {
	lm_conn base;
	sqlite3 *db; /* owned */
	int guard;   /* refuse BEGIN/COMMIT/ROLLBACK while set */
	int denied;  /* the last statement was refused by the guard */
	char *path;  /* owned: the database file, NULL in memory */
	int lock_fd; /* the flocked "<path>.lock" file, or -1 */
	writer *writer; /* owned: queued rows' thread, NULL until the first */
} sqlite_conn;

/* Rows a cursor read ahead under one hold of the connection's mutex while
 * the writer thread works (see sqlite_step); a text value's pointer holds
 * the offset of its bytes in text. */
typedef struct read_ahead {
	lm_value *values;   /* nrows rows of ncols values */
	int ncols, nrows, cap_rows;
	int next;           /* the row after the current one; 0: none is served from here */
	int end;            /* SQLITE_ROW: more to read; SQLITE_DONE or the error that ended the read */
	lm_error err;       /* that error, reported after the rows */
	unsigned char *text;
	size_t text_len, text_cap;
} read_ahead;

struct lm_stmt {
	sqlite_conn *conn;
	sqlite3_stmt *stmt; /* owned */
	int64_t changes;
	int nparams;        /* kept: the writer thread works on the statement (no shared cache line per row) */
	read_ahead *ahead;  /* owned, NULL until the statement reads ahead */
};

static void forget_ahead(lm_stmt *s);

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
	static int configured; /* before SQLite initialises, on the first open */
	if (!configured) {
		configured = 1;
		/* no allocation statistics: they take a global mutex on every malloc */
		sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	}
	if (strcmp(url->path, ":memory:") != 0) {
		if ((rc = make_parents(url->path, err)) != 0)
			goto done;
		if (!(conn->path = strdup(url->path))) {
			rc = LM_ENOMEM;
			goto done;
		}
	}
	if (sqlite3_open_v2(url->path, &conn->db,
		    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
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

static void writer_stop(sqlite_conn *conn);

static void sqlite_close(lm_conn *c)
{
	sqlite_conn *conn = (sqlite_conn *)c;
	if (!conn)
		return;
	writer_stop(conn);
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

/* Binds every parameter; keep is SQLITE_TRANSIENT (SQLite copies text) or
 * SQLITE_STATIC (the caller keeps it until the step is done). */
static int bind_all(sqlite3_stmt *st, sqlite3 *db, const lm_value *params,
	int nparams, sqlite3_destructor_type keep, lm_error *err)
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
			rc = sqlite3_bind_text64(st, i + 1, v->u.s.p, v->u.s.n, keep, SQLITE_UTF8);
			break;
		case LM_BLOB:
			rc = sqlite3_bind_blob64(st, i + 1, v->u.s.p, v->u.s.n, keep);
			break;
		default: rc = SQLITE_MISUSE;
		}
		if (rc != SQLITE_OK)
			return sqlite_fail(db, err);
	}
	return 0;
}

/* ---- queued rows: the writer thread --------------------------------------
 *
 * queue_row appends rows to a chunk; full chunks go to the thread, which
 * binds and steps them in order. At most CHUNKS_IN_FLIGHT chunks wait, so
 * memory stays flat when the caller is faster than the database. */

#define CHUNK_BYTES 262144
#define CHUNKS_IN_FLIGHT 8

typedef struct chunk {
	struct chunk *next;
	size_t len, cap;
	unsigned char *data; /* queued_row records, each 8-byte aligned */
} chunk;

/* A row in a chunk: its values follow, then their text; a text value's
 * pointer holds the offset of its bytes from the record's start. */
typedef struct queued_row {
	lm_stmt *stmt;
	int64_t tag;
	int n;
	size_t size; /* of the whole record */
} queued_row;

struct writer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake; /* for the thread: a chunk was queued, or stop */
	pthread_cond_t done; /* for the caller: a chunk was written */
	chunk *queued, *queued_tail; /* handed to the thread, oldest first */
	chunk *spare;        /* written chunks, for reuse */
	chunk *filling;      /* the caller's; only the caller touches it */
	int inflight;        /* chunks queued or being written */
	int stop;
	int failed;          /* a row failed: the rest are skipped until it is reported */
	char message[sizeof ((lm_error *)0)->message + 32]; /* "row <tag>: <error>" */
};

/* Binds and steps a chunk's rows; on a failure writes it into message and
 * returns 1 (the chunk's later rows are skipped). */
static int write_chunk(sqlite_conn *conn, chunk *k, lm_value **values, int *nvalues,
	char *message, size_t size)
{
	sqlite3_mutex *mu = sqlite3_db_mutex(conn->db);
	for (size_t at = 0; at < k->len;) {
		unsigned char *rec = k->data + at;
		queued_row row;
		memcpy(&row, rec, sizeof row);
		at += row.size;
		if (row.n > *nvalues) {
			lm_value *more = realloc(*values, (size_t)row.n * sizeof *more);
			if (!more) {
				snprintf(message, size, "row %lld: out of memory", (long long)row.tag);
				return 1;
			}
			*values = more;
			*nvalues = row.n;
		}
		memcpy(*values, rec + sizeof row, (size_t)row.n * sizeof **values);
		for (int i = 0; i < row.n; i++) {
			lm_value *v = &(*values)[i];
			if (v->type == LM_TEXT || v->type == LM_BLOB)
				v->u.s.p = (const char *)rec + (uintptr_t)v->u.s.p;
		}
		sqlite3_stmt *st = row.stmt->stmt;
		lm_error err = {0};
		int rc;
		sqlite3_mutex_enter(mu);
		if (bind_all(st, conn->db, *values, row.n, SQLITE_STATIC, &err) == 0) {
			while ((rc = sqlite3_step(st)) == SQLITE_ROW)
				;
			if (rc != SQLITE_DONE)
				sqlite_fail(conn->db, &err);
		}
		sqlite3_reset(st);
		sqlite3_mutex_leave(mu);
		if (err.code != 0) {
			snprintf(message, size, "row %lld: %s", (long long)row.tag, err.message);
			return 1;
		}
	}
	return 0;
}

static void *writer_main(void *arg)
{
	sqlite_conn *conn = arg;
	writer *w = conn->writer;
	lm_value *values = NULL;
	int nvalues = 0;
	char message[sizeof w->message];
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->queued && !w->stop)
			pthread_cond_wait(&w->wake, &w->mu);
		chunk *k = w->queued;
		if (!k)
			break;
		int skip = w->failed;
		pthread_mutex_unlock(&w->mu);
		int bad = !skip && write_chunk(conn, k, &values, &nvalues, message, sizeof message);
		pthread_mutex_lock(&w->mu);
		if (bad) {
			w->failed = 1;
			memcpy(w->message, message, sizeof message);
		}
		if (!(w->queued = k->next))
			w->queued_tail = NULL;
		k->len = 0;
		k->next = w->spare;
		w->spare = k;
		w->inflight--;
		pthread_cond_signal(&w->done);
	}
	pthread_mutex_unlock(&w->mu);
	free(values);
	return NULL;
}

/* Hands the filling chunk to the thread (w->mu held); waits while too many wait. */
static void writer_submit(writer *w)
{
	chunk *k = w->filling;
	if (!k || k->len == 0)
		return;
	w->filling = NULL;
	k->next = NULL;
	if (w->queued_tail)
		w->queued_tail->next = k;
	else
		w->queued = k;
	w->queued_tail = k;
	w->inflight++;
	pthread_cond_signal(&w->wake);
	while (w->inflight >= CHUNKS_IN_FLIGHT)
		pthread_cond_wait(&w->done, &w->mu);
}

/* Waits until every queued row is written. A failure is reported (and
 * forgotten) when err is given, else kept for the next call. */
static int writer_wait(sqlite_conn *conn, lm_error *err)
{
	writer *w = conn->writer;
	int rc = 0;
	if (!w)
		return 0;
	pthread_mutex_lock(&w->mu);
	writer_submit(w);
	while (w->inflight > 0)
		pthread_cond_wait(&w->done, &w->mu);
	if (w->failed && err) {
		w->failed = 0;
		rc = lm_error_set(err, LM_EFAIL, "%s", w->message);
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

static void free_chunks(chunk *k)
{
	while (k) {
		chunk *next = k->next;
		free(k->data);
		free(k);
		k = next;
	}
}

static void writer_stop(sqlite_conn *conn)
{
	writer *w = conn->writer;
	if (!w)
		return;
	writer_wait(conn, NULL);
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->wake);
	pthread_cond_destroy(&w->done);
	pthread_mutex_destroy(&w->mu);
	free_chunks(w->spare);
	free_chunks(w->filling);
	free(w);
	conn->writer = NULL;
}

static int writer_start(sqlite_conn *conn, lm_error *err)
{
	writer *w = calloc(1, sizeof *w);
	if (!w)
		return lm_error_set(err, LM_ENOMEM, "out of memory");
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->wake, NULL);
	pthread_cond_init(&w->done, NULL);
	conn->writer = w;
	int rc = pthread_create(&w->thread, NULL, writer_main, conn);
	if (rc != 0) {
		pthread_cond_destroy(&w->wake);
		pthread_cond_destroy(&w->done);
		pthread_mutex_destroy(&w->mu);
		free(w);
		conn->writer = NULL;
		return lm_error_set(err, LM_EFAIL, "cannot start the writer thread: %s", strerror(rc));
	}
	return 0;
}

/* A chunk with room for need more bytes: the filling one, a spare or a new one. */
static chunk *writer_room(writer *w, size_t need)
{
	chunk *k = w->filling;
	if (k && k->len > 0 && k->len + need > k->cap) {
		pthread_mutex_lock(&w->mu);
		writer_submit(w);
		pthread_mutex_unlock(&w->mu);
		k = NULL;
	}
	if (!k) {
		pthread_mutex_lock(&w->mu);
		if ((k = w->spare))
			w->spare = k->next;
		pthread_mutex_unlock(&w->mu);
		if (!k && !(k = calloc(1, sizeof *k)))
			return NULL;
		k->next = NULL;
		w->filling = k;
	}
	if (k->len + need > k->cap) { /* a row larger than a chunk */
		size_t cap = need > CHUNK_BYTES ? need : CHUNK_BYTES;
		unsigned char *data = realloc(k->data, cap);
		if (!data)
			return NULL;
		k->data = data;
		k->cap = cap;
	}
	return k;
}

static int sqlite_queue_row(lm_stmt *s, const lm_value *row, int n, int64_t tag, lm_error *err)
{
	sqlite_conn *conn = s->conn;
	if (s->nparams != n)
		return lm_error_set(err, LM_EFAIL, "row %lld: statement takes %d parameter%s, %d given",
			(long long)tag, s->nparams, s->nparams == 1 ? "" : "s", n);
	if (!conn->writer && writer_start(conn, err) != 0)
		return LM_EFAIL;
	writer *w = conn->writer;
	size_t head = sizeof(queued_row) + (size_t)n * sizeof *row, size = head;
	for (int i = 0; i < n; i++)
		if (row[i].type == LM_TEXT || row[i].type == LM_BLOB)
			size += row[i].u.s.n;
	size = (size + 7) & ~(size_t)7;
	chunk *k = writer_room(w, size);
	if (!k)
		return lm_error_set(err, LM_ENOMEM, "out of memory");
	unsigned char *rec = k->data + k->len;
	queued_row r = { s, tag, n, size };
	memcpy(rec, &r, sizeof r);
	lm_value *values = (lm_value *)(rec + sizeof r);
	size_t text = head;
	for (int i = 0; i < n; i++) {
		values[i] = row[i];
		if (row[i].type == LM_TEXT || row[i].type == LM_BLOB) {
			if (row[i].u.s.n > 0)
				memcpy(rec + text, row[i].u.s.p, row[i].u.s.n);
			values[i].u.s.p = (const char *)(uintptr_t)text;
			text += row[i].u.s.n;
		}
	}
	k->len += size;
	if (k->len >= CHUNK_BYTES) {
		pthread_mutex_lock(&w->mu);
		int failed = w->failed;
		writer_submit(w);
		pthread_mutex_unlock(&w->mu);
		if (failed)
			return writer_wait(conn, err);
	}
	return 0;
}

static int sqlite_flush(lm_conn *c, lm_error *err)
{
	return writer_wait((sqlite_conn *)c, err);
}

static int sqlite_prepare(lm_conn *c, const char *sql, lm_stmt **out, lm_error *err)
{
	sqlite_conn *conn = (sqlite_conn *)c;
	const char *tail = NULL;
	sqlite3_stmt *st = NULL;
	*out = NULL;
	if (writer_wait(conn, err) != 0)
		return LM_EFAIL;
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
	s->nparams = sqlite3_bind_parameter_count(st);
	*out = s;
	return 0;
}

static int sqlite_bind(lm_stmt *s, const lm_value *params, int nparams, lm_error *err)
{
	if (writer_wait(s->conn, err) != 0)
		return LM_EFAIL;
	sqlite3_reset(s->stmt);
	sqlite3_clear_bindings(s->stmt);
	forget_ahead(s);
	s->changes = 0;
	return bind_all(s->stmt, s->conn->db, params, nparams, SQLITE_TRANSIENT, err);
}

static void column_value(sqlite3_stmt *st, int i, lm_value *out);

#define AHEAD_ROWS 1024
#define AHEAD_BYTES 262144

static void forget_ahead(lm_stmt *s)
{
	if (s->ahead) {
		s->ahead->nrows = s->ahead->next = 0;
		s->ahead->text_len = 0;
		s->ahead->end = SQLITE_ROW;
	}
}

/* Reads up to AHEAD_ROWS rows (the connection's mutex held); how the read
 * ended is kept in a->end. */
static int read_ahead_rows(lm_stmt *s)
{
	read_ahead *a = s->ahead;
	if (!a) {
		if (!(a = s->ahead = calloc(1, sizeof *a)))
			return LM_ENOMEM;
		a->ncols = sqlite3_column_count(s->stmt);
	}
	forget_ahead(s);
	while (a->nrows < AHEAD_ROWS && a->text_len < AHEAD_BYTES) {
		int rc = sqlite3_step(s->stmt);
		if (rc != SQLITE_ROW) {
			a->end = rc;
			if (rc == SQLITE_DONE) {
				s->changes = sqlite3_changes64(s->conn->db);
			} else {
				sqlite_fail(s->conn->db, &a->err);
				sqlite3_reset(s->stmt);
			}
			break;
		}
		if (a->nrows == a->cap_rows) {
			int cap = a->cap_rows ? a->cap_rows * 2 : 16;
			lm_value *v = realloc(a->values, (size_t)cap * (size_t)(a->ncols ? a->ncols : 1) * sizeof *v);
			if (!v)
				return LM_ENOMEM;
			a->values = v;
			a->cap_rows = cap;
		}
		lm_value *row = &a->values[(size_t)a->nrows * (size_t)a->ncols];
		for (int i = 0; i < a->ncols; i++) {
			column_value(s->stmt, i, &row[i]);
			if (row[i].type != LM_TEXT && row[i].type != LM_BLOB)
				continue;
			size_t n = row[i].u.s.n;
			if (a->text_len + n > a->text_cap) {
				size_t cap = a->text_cap ? a->text_cap : 4096;
				while (cap < a->text_len + n)
					cap *= 2;
				unsigned char *t = realloc(a->text, cap);
				if (!t)
					return LM_ENOMEM;
				a->text = t;
				a->text_cap = cap;
			}
			if (n > 0)
				memcpy(a->text + a->text_len, row[i].u.s.p, n);
			row[i].u.s.p = (const char *)(uintptr_t)a->text_len;
			a->text_len += n;
		}
		a->nrows++;
	}
	return 0;
}

/* The next of the rows read ahead: 1, or how the read ended once none is left. */
static int next_ahead(lm_stmt *s, lm_error *err)
{
	read_ahead *a = s->ahead;
	if (a->next < a->nrows) {
		a->next++;
		return 1;
	}
	int end = a->end;
	lm_error saved = a->err;
	forget_ahead(s);
	if (end == SQLITE_DONE)
		return 0;
	if (err)
		*err = saved;
	return LM_EFAIL;
}

/* A statement that starts runs after the queued rows; one already stepping
 * reads on beside the writer, holding the mutex so that the connection's
 * error and change count are its own. */
static int sqlite_step(lm_stmt *s, lm_error *err)
{
	sqlite3_mutex *mu = sqlite3_db_mutex(s->conn->db);
	read_ahead *a = s->ahead;
	if (a && (a->next < a->nrows || a->end != SQLITE_ROW))
		return next_ahead(s, err);
	forget_ahead(s);
	int busy = sqlite3_stmt_busy(s->stmt);
	if (!busy && writer_wait(s->conn, err) != 0)
		return LM_EFAIL;
	sqlite3_mutex_enter(mu);
	if (busy && s->conn->writer) {
		/* the writer takes the mutex for every row it writes: a cursor
		 * that took it for each row too would wait on it every time */
		int rc = read_ahead_rows(s);
		sqlite3_mutex_leave(mu);
		return rc != 0 ? lm_error_set(err, rc, "out of memory") : next_ahead(s, err);
	}
	int rc = sqlite3_step(s->stmt);
	if (rc == SQLITE_ROW) {
		rc = 1;
	} else if (rc == SQLITE_DONE) {
		s->changes = sqlite3_changes64(s->conn->db);
		rc = 0;
	} else {
		sqlite_fail(s->conn->db, err);
		sqlite3_reset(s->stmt);
		rc = LM_EFAIL;
	}
	sqlite3_mutex_leave(mu);
	return rc;
}

static int sqlite_column_count(lm_stmt *s)
{
	return sqlite3_column_count(s->stmt);
}

static const char *sqlite_column_name(lm_stmt *s, int i)
{
	return sqlite3_column_name(s->stmt, i);
}

static void column_value(sqlite3_stmt *st, int i, lm_value *out)
{
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER:
		out->type = LM_INT;
		out->u.i = sqlite3_column_int64(st, i);
		break;
	case SQLITE_FLOAT:
		out->type = LM_FLOAT;
		out->u.f = sqlite3_column_double(st, i);
		break;
	case SQLITE_TEXT:
		out->type = LM_TEXT;
		out->u.s.p = (const char *)sqlite3_column_text(st, i);
		out->u.s.n = (size_t)sqlite3_column_bytes(st, i);
		break;
	case SQLITE_BLOB:
		out->type = LM_BLOB;
		out->u.s.p = sqlite3_column_blob(st, i);
		out->u.s.n = (size_t)sqlite3_column_bytes(st, i);
		break;
	default:
		out->type = LM_NULL;
	}
}

static void sqlite_column(lm_stmt *s, int i, lm_value *out)
{
	read_ahead *a = s->ahead;
	if (a && a->next > 0) {
		*out = a->values[(size_t)(a->next - 1) * (size_t)a->ncols + (size_t)i];
		if (out->type == LM_TEXT || out->type == LM_BLOB)
			out->u.s.p = (const char *)a->text + (uintptr_t)out->u.s.p;
		return;
	}
	column_value(s->stmt, i, out);
}

static int64_t sqlite_changes(lm_stmt *s)
{
	return s->changes;
}

static void sqlite_finalize(lm_stmt *s)
{
	if (!s)
		return;
	writer_wait(s->conn, NULL); /* the writer may hold it */
	sqlite3_finalize(s->stmt);
	if (s->ahead) {
		free(s->ahead->values);
		free(s->ahead->text);
		free(s->ahead);
	}
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
	if (writer_wait(conn, err) != 0)
		return LM_EFAIL;
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
		if ((rc = bind_all(st, conn->db, params, nparams, SQLITE_TRANSIENT, err)) == 0) {
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
	if (writer_wait(conn, err) != 0)
		return LM_EFAIL;
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
	lm_error dropped = {0};
	writer_wait(conn, &dropped); /* a queued row's failure: the rollback answers it */
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
	.version = 3,
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
	.queue_row = sqlite_queue_row,
	.flush = sqlite_flush,
};
