/* driver_pg.c - the PostgreSQL driver (see driver.h).
 *
 * Relies on libpq, used synchronously, one command at a time. What it does
 * on top of libpq:
 *
 * Connecting. The URL's parts (host, port, user, password, dbname) and every
 * query option become libpq keywords (PQconnectdbParams, expand_dbname=0);
 * query options come last, so `?host=/run/postgresql` wins over the URL's
 * host. Parts the URL leaves out are not passed, so the PG* environment
 * variables apply. fallback_application_name is "luamig" (application_name
 * or PGAPPNAME win) and client_encoding is UTF8 unless the URL or
 * PGCLIENTENCODING says otherwise. Server notices are discarded: only the
 * CLI prints. Connection errors are made one line and the password is
 * replaced by *** wherever libpq echoes it.
 *
 * Placeholders. `?` becomes $1..$n, once, when a statement is prepared (and
 * in exec when parameters are given), outside '...' and E'...' strings,
 * "..." identifiers, $$...$$ and $tag$...$tag$ strings, -- and nested
 * comments. A `?` operator (jsonb) therefore cannot be written with
 * parameters; use jsonb_exists() & co. Backslashes escape in '...' only
 * while the server's standard_conforming_strings is off (as libpq last
 * reported it: a SET in the same multi-statement exec is not seen).
 *
 * Parameters are sent as text with no type (the server infers it from
 * context, as for a quoted literal), except booleans (bool, "t"/"f") and
 * blobs (bytea, binary). `SELECT ?` with an integer therefore yields text;
 * write `?::int8` where the context gives no type.
 *
 * Rows. A statement runs at its first step. A statement a cursor can run
 * (one statement whose first keyword, after comments and parentheses, is
 * SELECT, WITH, VALUES or TABLE, and that holds none of the words INTO,
 * INSERT, UPDATE, DELETE, MERGE outside quotes) run while a transaction is
 * open becomes `DECLARE lm_cur_N NO SCROLL CURSOR FOR ...` and is read
 * with `FETCH 1000`: memory stays flat and other statements may run on the
 * connection between steps. Every other statement (or any statement outside
 * a transaction) is read whole into memory; other statements may run
 * between its steps too. A cursor is closed when its rows run out, or at
 * bind/finalize; it dies with its transaction, and a step after that fails.
 *
 * Column values follow the result column's type: int2/int4/int8/oid are
 * LM_INT; float4/float8 LM_FLOAT; numeric LM_FLOAT when it has at most 15
 * significant digits (DBL_DIG: the decimal survives a trip through a
 * double) and fits a double, else LM_TEXT (NaN and infinities are floats);
 * bool LM_BOOL; bytea LM_BLOB (decoded); everything else LM_TEXT as the
 * server prints it.
 *
 * Column names are known after the first step. Asked for before that, the
 * driver describes the statement (PQprepare + PQdescribePrepared of the
 * unnamed statement, inside a savepoint when a transaction is open, so a
 * failure there cannot abort the transaction).
 *
 * Transactions. begin() sends nothing: BEGIN goes in front of the
 * transaction's first command (in the same round trip when that command is
 * plain SQL without parameters), and a commit with nothing run sends
 * nothing. While the guard is on, statements whose first keyword is
 * BEGIN, START, COMMIT, END, ABORT, ROLLBACK (but not ROLLBACK TO) or
 * PREPARE TRANSACTION are refused; the statements of a multi-statement
 * exec are split as psql splits them (BEGIN ATOMIC bodies stay whole).
 * After every command, a transaction the driver began that is no longer
 * open is reported as an error while the guard is on.
 *
 * The migration lock is a session-level advisory lock whose bigint key is
 * the FNV-1a hash of "luamig:" and the lock's name, taken by polling
 * pg_try_advisory_lock (never a blocking or transaction-scoped lock, so a
 * rollback keeps it and a dead runner's lock goes with its session).
 */
#include "driver.h"
#include "buf.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* libpq is opened on first use, not linked: its dependencies (Kerberos,
 * LDAP, TLS) would cost every command milliseconds at start-up, SQLite
 * users included. */
#define PQ_FUNCTIONS(X) \
	X(PQclear) \
	X(PQcmdStatus) \
	X(PQcmdTuples) \
	X(PQconnectdbParams) \
	X(PQdescribePrepared) \
	X(PQenterPipelineMode) \
	X(PQerrorMessage) \
	X(PQexec) \
	X(PQexecParams) \
	X(PQexecPrepared) \
	X(PQexitPipelineMode) \
	X(PQfinish) \
	X(PQfname) \
	X(PQfreemem) \
	X(PQftype) \
	X(PQgetCopyData) \
	X(PQgetResult) \
	X(PQgetisnull) \
	X(PQgetlength) \
	X(PQgetvalue) \
	X(PQnfields) \
	X(PQntuples) \
	X(PQparameterStatus) \
	X(PQpipelineSync) \
	X(PQprepare) \
	X(PQputCopyData) \
	X(PQputCopyEnd) \
	X(PQresStatus) \
	X(PQresultErrorField) \
	X(PQresultErrorMessage) \
	X(PQresultStatus) \
	X(PQsendQueryParams) \
	X(PQsendQueryPrepared) \
	X(PQsetNoticeProcessor) \
	X(PQstatus) \
	X(PQtransactionStatus) \
	X(PQunescapeBytea)

static struct {
	void *handle;
#define PQ_FIELD(name) __typeof__(name) *name;
	PQ_FUNCTIONS(PQ_FIELD)
#undef PQ_FIELD
} pq;

static int pq_load(lm_error *err)
{
	static const char *const names[] = {"libpq.so.5", "libpq.so"};
	if (pq.handle)
		return 0;
	for (size_t i = 0; i < sizeof names / sizeof names[0] && !pq.handle; i++)
		pq.handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	if (!pq.handle)
		return lm_error_set(err, LM_EFAIL,
			"postgresql needs libpq (Debian package libpq5): %s", dlerror());
#define PQ_LOAD(name) \
	if (!(*(void **)&pq.name = dlsym(pq.handle, #name))) \
		return lm_error_set(err, LM_EFAIL, "libpq lacks %s", #name);
	PQ_FUNCTIONS(PQ_LOAD)
#undef PQ_LOAD
	return 0;
}

#define GUARD_MESSAGE "transaction control statements are not allowed in a migration: the runner commits each revision"
#define FETCH_ROWS 1000
#define PIPELINE_ROWS 1000    /* exec_many: statements sent before waiting for their results */
#define COPY_CHUNK (64 * 1024) /* COPY: bytes gathered before they are sent */
#define MAX_PARAMS 65535 /* the protocol's limit */

/* Type OIDs (catalog/pg_type_d.h is a server header). */
enum {
	OID_BOOL = 16,
	OID_BYTEA = 17,
	OID_INT8 = 20,
	OID_INT2 = 21,
	OID_INT4 = 23,
	OID_OID = 26,
	OID_FLOAT4 = 700,
	OID_FLOAT8 = 701,
	OID_NUMERIC = 1700,
};

typedef struct pg_conn {
	lm_conn base;
	PGconn *pg;        /* owned */
	int guard;         /* refuse transaction control while set */
	int in_tx;         /* begin() opened a transaction not yet seen to end */
	int begin_pending; /* begin() was called; BEGIN goes with the next command */
	unsigned epoch;    /* bumped each time no transaction is seen open */
	unsigned ncursors; /* names cursors lm_cur_N */
	unsigned nprepared; /* names server-side statements lm_stmt_N */
	int locked;        /* lock() holds the advisory lock lock_key */
	int64_t lock_key;
	lm_buf copy;       /* COPY rows not yet sent */
	int copy_error;    /* copy_row failed: copy_end ends the COPY with an error */
} pg_conn;

/* What a scan of SQL text found. */
typedef struct sql_info {
	int nparams;     /* `?` placeholders */
	int nstatements; /* non-empty statements */
	int txctl;       /* some statement starts or ends a transaction */
	int cursorable;  /* one statement a cursor can run (see the top) */
} sql_info;

/* Parameters in libpq's arrays. */
typedef struct pg_params {
	int n;
	const char **values; /* owned array; the bytes live in buf */
	int *lengths;        /* owned */
	int *formats;        /* owned */
	Oid *types;          /* owned */
	char *buf;           /* owned: every value's bytes */
} pg_params;

/* Column names handed out stay valid until finalize: a statement keeps every
 * set it handed out. */
typedef struct pg_names {
	struct pg_names *next; /* owned: an older set */
	int n;
	char *name[];          /* each owned */
} pg_names;

enum { ST_READY, ST_ROWS, ST_DONE };

typedef struct pg_stmt {
	pg_conn *conn;
	char *sql;             /* owned: the statement with $n placeholders */
	sql_info info;
	pg_params params;      /* owned members: the bound values */
	int bound;             /* bind() has run */
	int state;             /* ST_* */
	PGresult *res;         /* owned: the rows being read (whole, or one FETCH) */
	int row;               /* the current row of res */
	char cursor[32];       /* the open cursor's name, "" when none */
	unsigned epoch;        /* conn->epoch when the cursor was declared */
	int64_t changes;
	unsigned char **blobs; /* owned array of owned (PQfreemem) bytea values of the current row */
	int nblobs;
	pg_names *names;       /* owned */
	int runs;              /* times run without a cursor */
	char prepared[32];     /* its server-side statement, "" when none */
	Oid *prepared_types;   /* owned: the parameter types it was prepared with */
} pg_stmt;

/* ---- SQL text ----------------------------------------------------------- */

enum { TK_END, TK_WORD, TK_PARAM, TK_SEMI, TK_OPEN, TK_CLOSE, TK_OTHER };

typedef struct sql_tok {
	int kind;      /* TK_* */
	const char *p; /* borrowed: where the token starts */
	size_t n;
} sql_tok;

static int is_ident_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static int is_ident_char(unsigned char c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Skips whitespace and comments (block comments nest, as in PostgreSQL). */
static const char *skip_blank(const char *p)
{
	for (;;) {
		if (is_space((unsigned char)*p)) {
			p++;
		} else if (p[0] == '-' && p[1] == '-') {
			p += strcspn(p, "\r\n");
		} else if (p[0] == '/' && p[1] == '*') {
			int depth = 1;
			p += 2;
			while (*p && depth > 0) {
				if (p[0] == '/' && p[1] == '*') {
					depth++;
					p += 2;
				} else if (p[0] == '*' && p[1] == '/') {
					depth--;
					p += 2;
				} else {
					p++;
				}
			}
		} else {
			return p;
		}
	}
}

/* Returns the end of the quoted text starting at p (the quote character
 * doubles to escape itself; backslash escapes too when `backslash`). */
static const char *skip_quoted(const char *p, int backslash)
{
	char q = *p++;
	while (*p) {
		if (backslash && *p == '\\' && p[1]) {
			p += 2;
		} else if (*p == q) {
			if (p[1] != q)
				return p + 1;
			p += 2;
		} else {
			p++;
		}
	}
	return p;
}

/* Reads the token after p's blanks into *t; returns where the next begins.
 * `backslash`: standard_conforming_strings is off, so \ escapes in '...'. */
static const char *sql_lex(const char *p, int backslash, sql_tok *t)
{
	const char *q;
	p = skip_blank(p);
	t->p = p;
	t->kind = TK_OTHER;
	unsigned char c = (unsigned char)*p;
	if (c == '\0') {
		t->kind = TK_END;
		q = p;
	} else if (c == '\'') {
		q = skip_quoted(p, backslash);
	} else if ((c == 'E' || c == 'e') && p[1] == '\'') {
		q = skip_quoted(p + 1, 1);
	} else if (c == '"') {
		q = skip_quoted(p, 0);
	} else if (c == '$') {
		/* $1 is a parameter; $$ and $tag$ open a dollar-quoted string */
		q = p + 1;
		if (*q >= '0' && *q <= '9') {
			while (*q >= '0' && *q <= '9')
				q++;
		} else {
			while (*q != '$' && is_ident_char((unsigned char)*q))
				q++;
			if (*q == '$' && (q == p + 1 || is_ident_start((unsigned char)p[1]))) {
				size_t taglen = (size_t)(q - p) + 1;
				const char *close = strchr(q + 1, '$');
				while (close && strncmp(close, p, taglen) != 0)
					close = strchr(close + 1, '$');
				q = close ? close + taglen : q + 1 + strlen(q + 1);
			} else {
				q = p + 1;
			}
		}
	} else if (is_ident_start(c)) {
		q = p;
		while (is_ident_char((unsigned char)*q))
			q++;
		t->kind = TK_WORD;
	} else if (c >= '0' && c <= '9') {
		q = p;
		while (is_ident_char((unsigned char)*q) || *q == '.')
			q++;
	} else {
		q = p + 1;
		if (c == '?')
			t->kind = TK_PARAM;
		else if (c == ';')
			t->kind = TK_SEMI;
		else if (c == '(' || c == '[')
			t->kind = TK_OPEN;
		else if (c == ')' || c == ']')
			t->kind = TK_CLOSE;
	}
	t->n = (size_t)(q - p);
	return q;
}

static int word_is(const sql_tok *t, const char *kw)
{
	return t->kind == TK_WORD && strlen(kw) == t->n && strncasecmp(t->p, kw, t->n) == 0;
}

static int word_in(const sql_tok *t, const char *const *kws)
{
	for (; *kws; kws++)
		if (word_is(t, *kws))
			return 1;
	return 0;
}

/* One statement's first words decide whether it is transaction control. */
static int is_txctl(const sql_tok *w, int nw)
{
	static const char *const ends[] = { "BEGIN", "START", "COMMIT", "END", "ABORT", NULL };
	if (nw == 0)
		return 0;
	if (word_in(&w[0], ends))
		return 1;
	if (word_is(&w[0], "PREPARE"))
		return nw > 1 && word_is(&w[1], "TRANSACTION");
	if (word_is(&w[0], "ROLLBACK")) {
		/* ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name keeps the transaction */
		int i = 1;
		if (i < nw && (word_is(&w[i], "WORK") || word_is(&w[i], "TRANSACTION")))
			i++;
		return !(i < nw && word_is(&w[i], "TO"));
	}
	return 0;
}

/* Scans sql: placeholders, statements, transaction control, cursor use. */
static void sql_scan(const char *sql, int backslash, sql_info *info)
{
	static const char *const rows[] = { "SELECT", "WITH", "VALUES", "TABLE", NULL };
	static const char *const writes[] = { "INTO", "INSERT", "UPDATE", "DELETE", "MERGE", NULL };
	sql_tok t, w[4];
	int nw = 0, parens = 0, begins = 0, writes_seen = 0, nonempty = 0;
	const char *p = sql;
	memset(info, 0, sizeof *info);
	for (;;) {
		p = sql_lex(p, backslash, &t);
		if (t.kind == TK_END || (t.kind == TK_SEMI && parens == 0 && begins == 0)) {
			if (nonempty) {
				info->nstatements++;
				if (is_txctl(w, nw))
					info->txctl = 1;
				info->cursorable = info->nstatements == 1 && nw > 0 &&
					word_in(&w[0], rows) && !writes_seen;
			}
			if (t.kind == TK_END)
				break;
			nw = parens = begins = writes_seen = nonempty = 0;
			continue;
		}
		nonempty = 1;
		if (t.kind == TK_OPEN) {
			parens++;
		} else if (t.kind == TK_CLOSE) {
			if (parens > 0)
				parens--;
		} else if (t.kind == TK_PARAM) {
			info->nparams++;
		} else if (t.kind == TK_WORD) {
			if (nw < 4)
				w[nw++] = t;
			if (word_in(&t, writes))
				writes_seen = 1;
			/* As psql: in CREATE [OR REPLACE] FUNCTION|PROCEDURE, a
			 * BEGIN ATOMIC ... END body (CASE ... END inside) holds
			 * semicolons. CASE and END are reserved words. */
			int routine = nw >= 2 && word_is(&w[0], "CREATE") &&
				(word_is(&w[1], "FUNCTION") || word_is(&w[1], "PROCEDURE") ||
				 (nw >= 4 && word_is(&w[1], "OR") && word_is(&w[2], "REPLACE") &&
				  (word_is(&w[3], "FUNCTION") || word_is(&w[3], "PROCEDURE"))));
			if (routine && parens == 0) {
				sql_tok next;
				if (word_is(&t, "BEGIN") && (sql_lex(p, backslash, &next), word_is(&next, "ATOMIC")))
					begins++;
				else if (word_is(&t, "CASE") && begins > 0)
					begins++;
				else if (word_is(&t, "END") && begins > 0)
					begins--;
			}
		}
	}
}

/* Returns sql with its n `?` placeholders replaced by $1..$n (a new string
 * the caller frees), or NULL when out of memory. */
static char *sql_rewrite(const char *sql, int backslash, int n)
{
	size_t len = strlen(sql);
	char *out = malloc(len + (size_t)n * 11 + 1); /* "?" → "$2147483647" */
	char *o = out;
	const char *p = sql, *copied = sql;
	sql_tok t;
	int k = 0;
	if (!out)
		return NULL;
	while ((p = sql_lex(p, backslash, &t)), t.kind != TK_END) {
		if (t.kind != TK_PARAM || k >= n)
			continue;
		memcpy(o, copied, (size_t)(t.p - copied));
		o += t.p - copied;
		o += sprintf(o, "$%d", ++k);
		copied = t.p + 1;
	}
	strcpy(o, copied);
	return out;
}

/* ---- messages ----------------------------------------------------------- */

/* Appends msg to out (size bytes, holding a string) as one line: each line
 * trimmed, lines joined with "; ". */
static void append_one_line(char *out, size_t size, const char *msg)
{
	size_t o = strlen(out);
	int first = 1;
	while (*msg && o + 1 < size) {
		size_t n = strcspn(msg, "\r\n");
		const char *line = msg, *end = msg + n;
		while (line < end && is_space((unsigned char)*line))
			line++;
		while (end > line && is_space((unsigned char)end[-1]))
			end--;
		if (end > line) {
			int w = snprintf(out + o, size - o, "%s%.*s", first ? "" : "; ",
				(int)(end - line), line);
			o += w > 0 ? (size_t)w : 0;
			if (o >= size)
				o = size - 1;
			first = 0;
		}
		msg += n;
		while (*msg == '\r' || *msg == '\n')
			msg++;
	}
	out[o] = '\0';
}

/* Replaces every occurrence of secret in s (size bytes) with ***. */
static void mask_secret(char *s, size_t size, const char *secret)
{
	size_t n = secret ? strlen(secret) : 0, o = 0;
	char out[sizeof ((lm_error *)0)->message];
	const char *p = s, *hit;
	if (n == 0 || !strstr(s, secret))
		return;
	while ((hit = strstr(p, secret)) != NULL && o + 1 < sizeof out) {
		int w = snprintf(out + o, sizeof out - o, "%.*s***", (int)(hit - p), p);
		o += w > 0 ? (size_t)w : 0;
		if (o >= sizeof out)
			o = sizeof out - 1;
		p = hit + n;
	}
	snprintf(out + o, sizeof out - o, "%s", p);
	snprintf(s, size, "%s", out);
}

/* Sets err from a failed result (res may be NULL: then the connection's
 * message). libpq's strings are borrowed: they are copied here at once. */
static int pg_fail(pg_conn *conn, const PGresult *res, lm_error *err)
{
	char msg[sizeof err->message] = "";
	const char *primary = res ? pq.PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	if (primary) {
		const char *detail = pq.PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
		append_one_line(msg, sizeof msg, primary);
		if (detail && *detail) {
			strncat(msg, " (detail: ", sizeof msg - strlen(msg) - 1);
			append_one_line(msg, sizeof msg, detail);
			strncat(msg, ")", sizeof msg - strlen(msg) - 1);
		}
	} else {
		const char *text = res ? pq.PQresultErrorMessage(res) : "";
		if (!*text)
			text = pq.PQerrorMessage(conn->pg);
		append_one_line(msg, sizeof msg, text);
	}
	if (!*msg)
		snprintf(msg, sizeof msg, "postgresql failed with no message (%s)",
			pq.PQresStatus(res ? pq.PQresultStatus(res) : PGRES_FATAL_ERROR));
	return lm_error_set(err, LM_EFAIL, "%s", msg);
}

static int no_memory(lm_error *err)
{
	return lm_error_set(err, LM_ENOMEM, "out of memory");
}

/* ---- connection state --------------------------------------------------- */

/* Whether the server reads backslashes in '...' as escapes (libpq tracks the
 * setting, so this costs no round trip). */
static int backslash_strings(pg_conn *conn)
{
	const char *v = pq.PQparameterStatus(conn->pg, "standard_conforming_strings");
	return v && strcmp(v, "off") == 0;
}

/* Runs after every command: notes a transaction that is no longer open
 * (cursors die with it) and, while the guard is on, reports one the driver
 * began that a statement ended. err may be NULL. */
static int pg_settle(pg_conn *conn, lm_error *err)
{
	PGTransactionStatusType st = pq.PQtransactionStatus(conn->pg);
	if (st != PQTRANS_IDLE && st != PQTRANS_UNKNOWN)
		return 0;
	conn->epoch++;
	if (!conn->in_tx)
		return 0;
	conn->in_tx = 0;
	if (!conn->guard || st == PQTRANS_UNKNOWN)
		return 0;
	return lm_error_set(err, LM_EFAIL, GUARD_MESSAGE " (a statement ended the transaction)");
}

/* Finishes a COPY that a statement started: luamig has no data to send. */
static void drain_copy(pg_conn *conn, PGresult *res)
{
	ExecStatusType st = pq.PQresultStatus(res);
	PGresult *r;
	if (st == PGRES_COPY_IN) {
		pq.PQputCopyEnd(conn->pg, "copy from stdin is not supported");
	} else if (st == PGRES_COPY_OUT) {
		char *buf;
		while (pq.PQgetCopyData(conn->pg, &buf, 0) > 0)
			pq.PQfreemem(buf);
	}
	while ((r = pq.PQgetResult(conn->pg)) != NULL)
		pq.PQclear(r);
}

/* Checks a command's result; on failure sets err. Takes ownership of res
 * and hands it back in *out (NULL: cleared) when it succeeded. */
static int pg_check(pg_conn *conn, PGresult *res, PGresult **out, lm_error *err)
{
	int rc = 0;
	switch (res ? pq.PQresultStatus(res) : PGRES_FATAL_ERROR) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
	case PGRES_EMPTY_QUERY:
		break;
	case PGRES_COPY_IN:
	case PGRES_COPY_OUT:
	case PGRES_COPY_BOTH:
		drain_copy(conn, res);
		rc = lm_error_set(err, LM_EFAIL,
			"copy from stdin and copy to stdout are not supported; insert the rows with parameters");
		break;
	default:
		rc = pg_fail(conn, res, err);
	}
	if (rc == 0 && out) {
		*out = res;
		res = NULL;
	}
	pq.PQclear(res);
	return rc;
}

/* Runs a command with no parameters, discarding its result. */
static int pg_run(pg_conn *conn, const char *sql, lm_error *err)
{
	int rc = pg_check(conn, pq.PQexec(conn->pg, sql), NULL, err);
	int settled = pg_settle(conn, rc == 0 ? err : NULL);
	return rc != 0 ? rc : settled;
}

/* BEGIN travels with a transaction's first command (see pg_exec), which
 * saves a round trip per revision: begin() only notes it, and a command
 * that cannot carry it sends it first. */
static int begin_now(pg_conn *conn, lm_error *err)
{
	int rc;
	if (!conn->begin_pending)
		return 0;
	conn->begin_pending = 0;
	if ((rc = pg_run(conn, "BEGIN", err)) == 0)
		conn->in_tx = 1;
	return rc;
}

static int64_t cmd_tuples(PGresult *res)
{
	const char *n = res ? pq.PQcmdTuples(res) : "";
	return *n ? strtoll(n, NULL, 10) : 0;
}

/* ---- parameters --------------------------------------------------------- */

static void params_clear(pg_params *pp)
{
	free(pp->values);
	free(pp->lengths);
	free(pp->formats);
	free(pp->types);
	free(pp->buf);
	memset(pp, 0, sizeof *pp);
}

static void format_float(char *out, size_t size, double f)
{
	if (isnan(f))
		snprintf(out, size, "NaN");
	else if (isinf(f))
		snprintf(out, size, "%sInfinity", f < 0 ? "-" : "");
	else
		snprintf(out, size, "%.17g", f);
}

/* Copies params into pp (cleared first) as libpq wants them. */
static int params_set(pg_params *pp, const lm_value *params, int n, lm_error *err)
{
	size_t total = 0, o = 0;
	int rc = 0;
	params_clear(pp);
	if (n == 0)
		return 0;
	for (int i = 0; i < n; i++) {
		const lm_value *v = &params[i];
		if (v->type == LM_TEXT && v->u.s.n > 0 && memchr(v->u.s.p, '\0', v->u.s.n))
			return lm_error_set(err, LM_EFAIL,
				"parameter %d: text holds a zero byte, which postgresql text cannot store; bind it as a blob",
				i + 1);
		if ((v->type == LM_TEXT || v->type == LM_BLOB) && v->u.s.n >= 0x7fffffff)
			return lm_error_set(err, LM_EFAIL, "parameter %d is larger than postgresql takes (2 GB)",
				i + 1);
		total += v->type == LM_TEXT || v->type == LM_BLOB ? v->u.s.n + 1 : 32;
	}
	pp->values = calloc((size_t)n, sizeof *pp->values);
	pp->lengths = calloc((size_t)n, sizeof *pp->lengths);
	pp->formats = calloc((size_t)n, sizeof *pp->formats);
	pp->types = calloc((size_t)n, sizeof *pp->types);
	pp->buf = malloc(total);
	if (!pp->values || !pp->lengths || !pp->formats || !pp->types || !pp->buf) {
		rc = no_memory(err);
		goto done;
	}
	pp->n = n;
	for (int i = 0; i < n; i++) {
		const lm_value *v = &params[i];
		char *b = pp->buf + o;
		switch (v->type) {
		case LM_NULL:
			continue;
		case LM_INT:
			snprintf(b, 32, "%" PRId64, v->u.i);
			break;
		case LM_FLOAT:
			format_float(b, 32, v->u.f);
			break;
		case LM_BOOL:
			strcpy(b, v->u.i ? "t" : "f");
			pp->types[i] = OID_BOOL;
			break;
		case LM_TEXT:
			if (v->u.s.n > 0)
				memcpy(b, v->u.s.p, v->u.s.n);
			b[v->u.s.n] = '\0';
			break;
		case LM_BLOB:
			if (v->u.s.n > 0)
				memcpy(b, v->u.s.p, v->u.s.n);
			b[v->u.s.n] = '\0';
			pp->types[i] = OID_BYTEA;
			pp->formats[i] = 1;
			pp->lengths[i] = (int)v->u.s.n;
			break;
		default:
			rc = lm_error_set(err, LM_EFAIL, "parameter %d has an unknown type", i + 1);
			goto done;
		}
		pp->values[i] = b;
		o += v->type == LM_TEXT || v->type == LM_BLOB ? v->u.s.n + 1 : 32;
	}
done:
	if (rc != 0)
		params_clear(pp);
	return rc;
}

static int params_count_error(int expected, int given, lm_error *err)
{
	return lm_error_set(err, LM_EFAIL, "statement takes %d parameter%s, %d given",
		expected, expected == 1 ? "" : "s", given);
}

/* ---- open, close, exec -------------------------------------------------- */

static void ignore_notice(void *arg, const char *message)
{
	(void)arg, (void)message;
}

static int pg_open(lm_conn **out, const lm_url *url, lm_error *err)
{
	int rc = 0, n = 0;
	int cap = url->noptions + 8;
	const char **keys = calloc((size_t)cap, sizeof *keys);   /* owned */
	const char **values = calloc((size_t)cap, sizeof *values); /* owned */
	pg_conn *conn = calloc(1, sizeof *conn);                 /* owned until handed out */
	const char *password = url->password;
	*out = NULL;
	if ((rc = pq_load(err)) != 0)
		goto done;
	if (!keys || !values || !conn) {
		rc = no_memory(err);
		goto done;
	}
	conn->base.methods = &lm_driver_pg;
#define ADD(k, v) do { if (v) { keys[n] = (k); values[n] = (v); n++; } } while (0)
	ADD("fallback_application_name", "luamig");
	if (!getenv("PGCLIENTENCODING"))
		ADD("client_encoding", "UTF8");
	ADD("host", url->host);
	ADD("port", url->port);
	ADD("user", url->user);
	ADD("password", url->password);
	ADD("dbname", url->dbname);
	for (int i = 0; i < url->noptions; i++) {
		ADD(url->options[i].key, url->options[i].value);
		if (strcmp(url->options[i].key, "password") == 0 && *url->options[i].value)
			password = url->options[i].value;
	}
#undef ADD
	conn->pg = pq.PQconnectdbParams(keys, values, 0);
	if (!conn->pg) {
		rc = no_memory(err);
		goto done;
	}
	if (pq.PQstatus(conn->pg) != CONNECTION_OK) {
		char msg[sizeof err->message] = "";
		append_one_line(msg, sizeof msg, pq.PQerrorMessage(conn->pg));
		mask_secret(msg, sizeof msg, url->password);
		mask_secret(msg, sizeof msg, password);
		rc = lm_error_set(err, LM_EFAIL, "%s", *msg ? msg : "cannot connect to postgresql");
		goto done;
	}
	pq.PQsetNoticeProcessor(conn->pg, ignore_notice, NULL);
	*out = &conn->base;
	conn = NULL;
done:
	if (conn) {
		pq.PQfinish(conn->pg);
		free(conn);
	}
	free(keys);
	free(values);
	return rc;
}

static void pg_close(lm_conn *c)
{
	pg_conn *conn = (pg_conn *)c;
	if (!conn)
		return;
	pq.PQfinish(conn->pg);
	lm_buf_free(&conn->copy);
	free(conn);
}

static int pg_exec(lm_conn *c, const char *sql, const lm_value *params, int nparams,
	int64_t *changes, lm_error *err)
{
	pg_conn *conn = (pg_conn *)c;
	sql_info info;
	pg_params pp = { 0 };
	char *rewritten = NULL; /* owned */
	PGresult *res = NULL;   /* owned */
	int rc = 0, settled;
	if (changes)
		*changes = 0;
	sql_scan(sql, backslash_strings(conn), &info);
	if (conn->guard && info.txctl) {
		rc = lm_error_set(err, LM_EFAIL, GUARD_MESSAGE);
		goto done;
	}
	if (nparams == 0) {
		/* several statements may run: the simple query protocol, which
		 * can carry a pending BEGIN in the same round trip */
		if (conn->begin_pending) {
			size_t n = strlen(sql);
			if (!(rewritten = malloc(n + 8))) {
				rc = no_memory(err);
				goto done;
			}
			memcpy(rewritten, "BEGIN;\n", 7);
			memcpy(rewritten + 7, sql, n + 1);
			conn->begin_pending = 0;
			conn->in_tx = 1;
			sql = rewritten;
		}
		rc = pg_check(conn, pq.PQexec(conn->pg, sql), &res, err);
	} else {
		if ((rc = begin_now(conn, err)) != 0)
			goto done;
		if (info.nparams != nparams) {
			rc = params_count_error(info.nparams, nparams, err);
			goto done;
		}
		if (info.nstatements > 1) {
			rc = lm_error_set(err, LM_EFAIL, "sql with parameters must be one statement");
			goto done;
		}
		if (nparams > MAX_PARAMS) {
			rc = lm_error_set(err, LM_EFAIL, "statement has %d parameters; postgresql takes at most %d",
				nparams, MAX_PARAMS);
			goto done;
		}
		if (!(rewritten = sql_rewrite(sql, backslash_strings(conn), nparams))) {
			rc = no_memory(err);
			goto done;
		}
		if ((rc = params_set(&pp, params, nparams, err)) != 0)
			goto done;
		rc = pg_check(conn, pq.PQexecParams(conn->pg, rewritten, pp.n, pp.types,
				pp.values, pp.lengths, pp.formats, 0), &res, err);
	}
	settled = pg_settle(conn, rc == 0 ? err : NULL);
	if (rc == 0)
		rc = settled;
	if (rc == 0 && changes)
		*changes = cmd_tuples(res);
done:
	pq.PQclear(res);
	params_clear(&pp);
	free(rewritten);
	return rc;
}

/* ---- statements --------------------------------------------------------- */

static void free_blobs(pg_stmt *s)
{
	for (int i = 0; i < s->nblobs; i++) {
		if (s->blobs[i])
			pq.PQfreemem(s->blobs[i]);
		s->blobs[i] = NULL;
	}
}

/* Closes the statement's cursor if its transaction still holds it. */
static void cursor_close(pg_stmt *s)
{
	pg_conn *conn = s->conn;
	if (!s->cursor[0])
		return;
	if (s->epoch == conn->epoch && pq.PQtransactionStatus(conn->pg) == PQTRANS_INTRANS) {
		char sql[64];
		snprintf(sql, sizeof sql, "CLOSE %s", s->cursor);
		pq.PQclear(pq.PQexec(conn->pg, sql));
		pg_settle(conn, NULL);
	}
	s->cursor[0] = '\0';
}

/* Back to before the first step; keeps the bound parameters. */
static void stmt_reset(pg_stmt *s)
{
	cursor_close(s);
	free_blobs(s);
	pq.PQclear(s->res);
	s->res = NULL;
	s->row = -1;
	s->changes = 0;
	s->state = ST_READY;
}

/* Makes s->names hold res's column names; an older set that differs stays
 * allocated until finalize (its pointers may be held). */
static int names_take(pg_stmt *s, const PGresult *res)
{
	int n = pq.PQnfields(res), same = s->names && s->names->n == n;
	for (int i = 0; same && i < n; i++)
		same = strcmp(s->names->name[i], pq.PQfname(res, i)) == 0;
	if (same)
		return 0;
	pg_names *names = calloc(1, sizeof *names + (size_t)n * sizeof names->name[0]);
	if (!names)
		return LM_ENOMEM;
	names->n = n;
	names->next = s->names;
	s->names = names;
	for (int i = 0; i < n; i++)
		if (!(names->name[i] = strdup(pq.PQfname(res, i))))
			return LM_ENOMEM;
	return 0;
}

static int blobs_fit(pg_stmt *s, int n)
{
	if (n <= s->nblobs)
		return 0;
	unsigned char **grown = realloc(s->blobs, (size_t)n * sizeof *grown);
	if (!grown)
		return LM_ENOMEM;
	for (int i = s->nblobs; i < n; i++)
		grown[i] = NULL;
	s->blobs = grown;
	s->nblobs = n;
	return 0;
}

/* A result arrived: remember its columns. */
static int stmt_take_result(pg_stmt *s, PGresult *res, lm_error *err)
{
	pq.PQclear(s->res);
	s->res = res;
	s->row = -1;
	if (names_take(s, res) != 0 || blobs_fit(s, pq.PQnfields(res)) != 0)
		return no_memory(err);
	return 0;
}

static int pg_prepare(lm_conn *c, const char *sql, lm_stmt **out, lm_error *err)
{
	pg_conn *conn = (pg_conn *)c;
	pg_stmt *s = calloc(1, sizeof *s); /* owned until handed out */
	int rc = 0;
	*out = NULL;
	if (!s) {
		rc = no_memory(err);
		goto done;
	}
	s->conn = conn;
	s->row = -1;
	sql_scan(sql, backslash_strings(conn), &s->info);
	if (s->info.nstatements > 1) {
		rc = lm_error_set(err, LM_EFAIL,
			"a prepared statement holds one sql statement; found more after the first");
		goto done;
	}
	if (s->info.nparams > MAX_PARAMS) {
		rc = lm_error_set(err, LM_EFAIL, "statement has %d parameters; postgresql takes at most %d",
			s->info.nparams, MAX_PARAMS);
		goto done;
	}
	if (!(s->sql = sql_rewrite(sql, backslash_strings(conn), s->info.nparams))) {
		rc = no_memory(err);
		goto done;
	}
	*out = (lm_stmt *)s;
	s = NULL;
done:
	if (s) {
		free(s->sql);
		free(s);
	}
	return rc;
}

static int pg_bind(lm_stmt *st, const lm_value *params, int nparams, lm_error *err)
{
	pg_stmt *s = (pg_stmt *)st;
	stmt_reset(s);
	s->bound = 0;
	if (nparams != s->info.nparams) {
		params_clear(&s->params);
		return params_count_error(s->info.nparams, nparams, err);
	}
	int rc = params_set(&s->params, params, nparams, err);
	s->bound = rc == 0;
	return rc;
}

/* Reads the cursor's next rows into s->res. */
static int cursor_fetch(pg_stmt *s, lm_error *err)
{
	pg_conn *conn = s->conn;
	PGresult *res = NULL;
	char sql[64];
	int rc;
	if (s->epoch != conn->epoch) {
		s->cursor[0] = '\0';
		return lm_error_set(err, LM_EFAIL,
			"the transaction this statement was reading rows in has ended");
	}
	snprintf(sql, sizeof sql, "FETCH %d FROM %s", FETCH_ROWS, s->cursor);
	rc = pg_check(conn, pq.PQexec(conn->pg, sql), &res, err);
	if (rc == 0) {
		rc = stmt_take_result(s, res, err);
		s->changes += pq.PQntuples(res);
		if (pq.PQntuples(res) < FETCH_ROWS)
			cursor_close(s); /* read to the end: free it now */
	} else {
		s->cursor[0] = '\0';
	}
	int settled = pg_settle(conn, rc == 0 ? err : NULL);
	return rc != 0 ? rc : settled;
}

/* A statement run a second time (a loop's INSERT or UPDATE) is prepared on
 * the server, so later runs skip parsing and planning, with the parameter
 * types bound now. Failing to prepare only costs that saving, except that
 * it aborts an open transaction: the error goes to err (may be NULL). */
static int server_prepare(pg_stmt *s, lm_error *err)
{
	pg_conn *conn = s->conn;
	const pg_params *pp = &s->params;
	char name[32];
	Oid *types = NULL;
	if (pq.PQtransactionStatus(conn->pg) == PQTRANS_INERROR)
		return pg_fail(conn, NULL, err);
	if (pp->n && !(types = malloc((size_t)pp->n * sizeof *types)))
		return no_memory(err);
	if (pp->n)
		memcpy(types, pp->types, (size_t)pp->n * sizeof *types);
	snprintf(name, sizeof name, "lm_stmt_%u", ++conn->nprepared);
	int rc = pg_check(conn, pq.PQprepare(conn->pg, name, s->sql, pp->n, types), NULL, err);
	pg_settle(conn, NULL);
	if (rc != 0) {
		free(types);
		return rc;
	}
	memcpy(s->prepared, name, sizeof name);
	s->prepared_types = types;
	return 0;
}

/* Whether pp has the types the statement was prepared with (booleans and
 * blobs are typed; the rest the server infers). */
static int same_types(const pg_stmt *s, const pg_params *pp)
{
	return pp->n == 0 || memcmp(pp->types, s->prepared_types,
		(size_t)pp->n * sizeof *pp->types) == 0;
}

/* The first step: runs the statement, through a cursor when it can. */
static int stmt_start(pg_stmt *s, lm_error *err)
{
	pg_conn *conn = s->conn;
	const pg_params *pp = &s->params;
	PGresult *res = NULL; /* owned */
	char *declare = NULL; /* owned */
	const char *sql = s->sql;
	char name[32] = "";
	int rc = begin_now(conn, err), settled;
	if (rc != 0)
		goto done;
	if (s->info.nparams > 0 && !s->bound) {
		rc = params_count_error(s->info.nparams, 0, err);
		goto done;
	}
	if (conn->guard && s->info.txctl) {
		rc = lm_error_set(err, LM_EFAIL, GUARD_MESSAGE);
		goto done;
	}
	if (s->info.cursorable && pq.PQtransactionStatus(conn->pg) == PQTRANS_INTRANS) {
		size_t len = strlen(s->sql) + 64;
		snprintf(name, sizeof name, "lm_cur_%u", ++conn->ncursors);
		if (!(declare = malloc(len))) {
			rc = no_memory(err);
			goto done;
		}
		snprintf(declare, len, "DECLARE %s NO SCROLL CURSOR FOR %s", name, s->sql);
		sql = declare;
	}
	if (!declare && ++s->runs == 2)
		server_prepare(s, NULL);
	if (!declare && s->prepared[0] && same_types(s, pp))
		rc = pg_check(conn, pq.PQexecPrepared(conn->pg, s->prepared, pp->n, pp->values,
				pp->lengths, pp->formats, 0), &res, err);
	else
		rc = pg_check(conn, pq.PQexecParams(conn->pg, sql, pp->n, pp->types, pp->values,
				pp->lengths, pp->formats, 0), &res, err);
	settled = pg_settle(conn, rc == 0 ? err : NULL);
	if (rc == 0)
		rc = settled;
	if (rc != 0)
		goto done;
	if (declare) {
		memcpy(s->cursor, name, sizeof name);
		s->epoch = conn->epoch;
		s->state = ST_ROWS;
		rc = cursor_fetch(s, err);
		goto done;
	}
	s->changes = cmd_tuples(res);
	s->state = pq.PQresultStatus(res) == PGRES_TUPLES_OK ? ST_ROWS : ST_DONE;
	rc = stmt_take_result(s, res, err);
	res = NULL;
done:
	pq.PQclear(res);
	free(declare);
	return rc;
}

static int pg_step(lm_stmt *st, lm_error *err)
{
	pg_stmt *s = (pg_stmt *)st;
	int rc = 0;
	free_blobs(s);
	if (s->state == ST_READY && (rc = stmt_start(s, err)) != 0)
		goto done;
	if (s->state != ST_ROWS)
		goto done;
	s->row++;
	if (s->row >= pq.PQntuples(s->res) && s->cursor[0] && (rc = cursor_fetch(s, err)) == 0)
		s->row++;
	if (rc == 0 && s->row < pq.PQntuples(s->res))
		return 1;
done:
	s->state = ST_DONE;
	if (rc != 0)
		cursor_close(s);
	return rc;
}

/* Learns the column names before the first step (see the top). */
static void stmt_describe(pg_stmt *s)
{
	pg_conn *conn = s->conn;
	begin_now(conn, NULL);
	PGTransactionStatusType st = pq.PQtransactionStatus(conn->pg);
	int savepoint = st == PQTRANS_INTRANS, ok;
	PGresult *res = NULL; /* owned */
	if ((st != PQTRANS_IDLE && st != PQTRANS_INTRANS) || s->info.txctl)
		goto done;
	if (savepoint && pg_run(conn, "SAVEPOINT lm_describe", NULL) != 0)
		goto done;
	ok = pg_check(conn, pq.PQprepare(conn->pg, "", s->sql, s->info.nparams,
			      s->bound ? s->params.types : NULL), NULL, NULL) == 0 &&
		pg_check(conn, pq.PQdescribePrepared(conn->pg, ""), &res, NULL) == 0;
	if (ok)
		names_take(s, res);
	if (savepoint)
		pg_run(conn, ok ? "RELEASE SAVEPOINT lm_describe"
				: "ROLLBACK TO SAVEPOINT lm_describe; RELEASE SAVEPOINT lm_describe", NULL);
	pg_settle(conn, NULL);
done:
	pq.PQclear(res);
}

static int pg_column_count(lm_stmt *st)
{
	pg_stmt *s = (pg_stmt *)st;
	if (s->res)
		return pq.PQnfields(s->res);
	if (!s->names)
		stmt_describe(s);
	return s->names ? s->names->n : 0;
}

static const char *pg_column_name(lm_stmt *st, int i)
{
	pg_stmt *s = (pg_stmt *)st;
	if (!s->names)
		stmt_describe(s);
	return s->names && i >= 0 && i < s->names->n ? s->names->name[i] : NULL;
}

/* numeric as a double when its decimal text survives the trip (see the top). */
static int numeric_as_float(const char *text, double *out)
{
	int digits = 0, pending_zeros = 0, leading = 1;
	char *end;
	for (const char *p = text; *p; p++) {
		if (*p == '0') {
			if (!leading)
				pending_zeros++;
		} else if (*p >= '1' && *p <= '9') {
			leading = 0;
			digits += pending_zeros + 1;
			pending_zeros = 0;
		}
	}
	if (digits > 15)
		return 0;
	errno = 0;
	*out = strtod(text, &end);
	if (end == text || *end != '\0')
		return 0;
	if (!strpbrk(text, "0123456789"))
		return 1; /* NaN, Infinity, -Infinity */
	return errno != ERANGE && isfinite(*out);
}

static void pg_column(lm_stmt *st, int i, lm_value *out)
{
	pg_stmt *s = (pg_stmt *)st;
	out->type = LM_NULL;
	if (!s->res || s->row < 0 || s->row >= pq.PQntuples(s->res) || i < 0 ||
		i >= pq.PQnfields(s->res) || pq.PQgetisnull(s->res, s->row, i))
		return;
	const char *text = pq.PQgetvalue(s->res, s->row, i);
	size_t len = (size_t)pq.PQgetlength(s->res, s->row, i);
	switch (pq.PQftype(s->res, i)) {
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
	case OID_OID:
		out->type = LM_INT;
		out->u.i = strtoll(text, NULL, 10);
		return;
	case OID_FLOAT4:
	case OID_FLOAT8:
		out->type = LM_FLOAT;
		out->u.f = strtod(text, NULL);
		return;
	case OID_NUMERIC:
		if (numeric_as_float(text, &out->u.f)) {
			out->type = LM_FLOAT;
			return;
		}
		break;
	case OID_BOOL:
		out->type = LM_BOOL;
		out->u.i = text[0] == 't';
		return;
	case OID_BYTEA: {
		size_t n = 0;
		if (i < s->nblobs) {
			if (s->blobs[i])
				pq.PQfreemem(s->blobs[i]);
			s->blobs[i] = pq.PQunescapeBytea((const unsigned char *)text, &n);
			if (s->blobs[i]) {
				out->type = LM_BLOB;
				out->u.s.p = (const char *)s->blobs[i];
				out->u.s.n = n;
				return;
			}
		}
		break; /* out of memory: the escaped text is all there is */
	}
	default:
		break;
	}
	out->type = LM_TEXT;
	out->u.s.p = text;
	out->u.s.n = len;
}

static int64_t pg_changes(lm_stmt *st)
{
	return ((pg_stmt *)st)->changes;
}

static void pg_finalize(lm_stmt *st)
{
	pg_stmt *s = (pg_stmt *)st;
	if (!s)
		return;
	stmt_reset(s);
	if (s->prepared[0]) {
		/* prepared statements outlive transactions: free it unless the
		 * transaction is failed (then the session's end frees it) */
		pg_conn *conn = s->conn;
		if (pq.PQtransactionStatus(conn->pg) != PQTRANS_INERROR) {
			char sql[64];
			snprintf(sql, sizeof sql, "DEALLOCATE %s", s->prepared);
			pq.PQclear(pq.PQexec(conn->pg, sql));
			pg_settle(conn, NULL);
		}
	}
	free(s->prepared_types);
	params_clear(&s->params);
	free(s->blobs);
	while (s->names) {
		pg_names *next = s->names->next;
		for (int i = 0; i < s->names->n; i++)
			free(s->names->name[i]);
		free(s->names);
		s->names = next;
	}
	free(s->sql);
	free(s);
}

/* ---- transactions ------------------------------------------------------- */

static int pg_begin(lm_conn *c, int immediate, lm_error *err)
{
	pg_conn *conn = (pg_conn *)c;
	(void)immediate; /* PostgreSQL locks row by row */
	if (pq.PQtransactionStatus(conn->pg) != PQTRANS_IDLE || conn->begin_pending) {
		if (pq.PQstatus(conn->pg) != CONNECTION_OK)
			return pg_fail(conn, NULL, err);
		return lm_error_set(err, LM_EFAIL, "cannot begin a transaction: one is already open");
	}
	conn->begin_pending = 1;
	return 0;
}

static int pg_commit(lm_conn *c, lm_error *err)
{
	pg_conn *conn = (pg_conn *)c;
	PGresult *res = NULL; /* owned */
	int rc = 0;
	if (conn->begin_pending) { /* nothing ran: nothing to commit */
		conn->begin_pending = 0;
		return 0;
	}
	switch (pq.PQtransactionStatus(conn->pg)) {
	case PQTRANS_INTRANS:
		break;
	case PQTRANS_INERROR:
		pg_run(conn, "ROLLBACK", NULL);
		conn->in_tx = 0;
		rc = lm_error_set(err, LM_EFAIL,
			"cannot commit: a statement failed in this transaction, which was rolled back");
		goto done;
	case PQTRANS_IDLE:
		conn->in_tx = 0;
		rc = lm_error_set(err, LM_EFAIL, "cannot commit: no transaction is open");
		goto done;
	default:
		conn->in_tx = 0;
		rc = pg_fail(conn, NULL, err);
		goto done;
	}
	rc = pg_check(conn, pq.PQexec(conn->pg, "COMMIT"), &res, err);
	conn->in_tx = 0;
	pg_settle(conn, NULL);
	if (rc == 0 && strcmp(pq.PQcmdStatus(res), "COMMIT") != 0)
		rc = lm_error_set(err, LM_EFAIL, "cannot commit: the transaction was rolled back");
done:
	pq.PQclear(res);
	return rc;
}

static int pipeline_collect(pg_conn *conn, int sent, int first, int64_t *changes, int *failed,
	lm_error *err);

/* One statement and the COMMIT (and BEGIN, when the transaction has run
 * nothing yet) sent as one pipeline: one round trip. When the statement
 * fails the server skips the COMMIT, and the transaction is rolled back. */
static int pg_exec_commit(lm_conn *c, const char *sql, const lm_value *params, int nparams,
	lm_error *err)
{
	pg_conn *conn = (pg_conn *)c;
	sql_info info;
	pg_params pp = { 0 };
	char *rewritten = NULL;
	int64_t changes = 0;
	int rc = 0, failed = -1, sent = 0;
	sql_scan(sql, backslash_strings(conn), &info);
	int open = conn->begin_pending || pq.PQtransactionStatus(conn->pg) == PQTRANS_INTRANS;
	if (!open || info.txctl || info.nstatements > 1 || info.nparams != nparams || nparams > MAX_PARAMS) {
		if ((rc = pg_exec(c, sql, params, nparams, NULL, err)) == 0)
			rc = pg_commit(c, err);
		return rc;
	}
	if (!(rewritten = sql_rewrite(sql, backslash_strings(conn), nparams)))
		return no_memory(err);
	if ((rc = params_set(&pp, params, nparams, err)) != 0)
		goto done;
	if (!pq.PQenterPipelineMode(conn->pg)) {
		rc = pg_fail(conn, NULL, err);
		goto done;
	}
	int ok = 1;
	if (conn->begin_pending) {
		conn->begin_pending = 0;
		sent += ok = pq.PQsendQueryParams(conn->pg, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
	}
	if (ok)
		sent += ok = pq.PQsendQueryParams(conn->pg, rewritten, pp.n, pp.types, pp.values,
			pp.lengths, pp.formats, 0);
	if (ok)
		sent += ok = pq.PQsendQueryParams(conn->pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
	if (!(ok && pq.PQpipelineSync(conn->pg)))
		rc = pg_fail(conn, NULL, err);
	int collected = pipeline_collect(conn, sent, 0, &changes, &failed, rc == 0 ? err : NULL);
	if (rc == 0)
		rc = collected;
	pq.PQexitPipelineMode(conn->pg);
	conn->in_tx = 0;
	if (rc != 0 && pq.PQtransactionStatus(conn->pg) != PQTRANS_IDLE)
		pg_run(conn, "ROLLBACK", NULL);
	pg_settle(conn, NULL);
done:
	params_clear(&pp);
	free(rewritten);
	return rc;
}

static int pg_rollback(lm_conn *c, lm_error *err)
{
	pg_conn *conn = (pg_conn *)c;
	PGTransactionStatusType st = pq.PQtransactionStatus(conn->pg);
	conn->in_tx = 0;
	conn->begin_pending = 0;
	if (st == PQTRANS_IDLE) {
		pg_settle(conn, NULL);
		return 0;
	}
	if (st == PQTRANS_UNKNOWN)
		return pg_fail(conn, NULL, err);
	return pg_run(conn, "ROLLBACK", err);
}

static int pg_guard(lm_conn *c, int on)
{
	((pg_conn *)c)->guard = on;
	return 0;
}

/* ---- the migration lock ------------------------------------------------- */

static int64_t lock_key(const char *name)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */
	for (const char *p = "luamig:"; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (int64_t)h;
}

/* Runs a one-value query with one bigint parameter; copies the value
 * (empty for none or NULL) into out. */
static int query_value(pg_conn *conn, const char *sql, int64_t key, char *out, size_t size,
	lm_error *err)
{
	char text[32];
	const char *values[1] = { text };
	PGresult *res = NULL; /* owned */
	int rc;
	snprintf(text, sizeof text, "%" PRId64, key);
	out[0] = '\0';
	rc = pg_check(conn, pq.PQexecParams(conn->pg, sql, 1, NULL, values, NULL, NULL, 0), &res, err);
	pg_settle(conn, NULL);
	if (rc == 0 && pq.PQntuples(res) > 0 && pq.PQnfields(res) > 0 && !pq.PQgetisnull(res, 0, 0))
		snprintf(out, size, "%s", pq.PQgetvalue(res, 0, 0));
	pq.PQclear(res);
	return rc;
}

static int pg_lock(lm_conn *c, const char *name, double timeout, lm_error *err)
{
	pg_conn *conn = (pg_conn *)c;
	int64_t key = lock_key(name);
	lm_lock_waiter waiter;
	char got[16], holder[512];
	int rc;
	if (conn->locked && conn->lock_key == key)
		return 0;
	lm_lock_wait_start(&waiter);
	for (;;) {
		rc = query_value(conn, "SELECT pg_try_advisory_lock($1::int8)", key, got, sizeof got, err);
		if (rc != 0)
			return rc;
		if (strcmp(got, "t") == 0)
			break;
		if (!lm_lock_wait(&waiter, timeout)) {
			/* a bigint key shows in pg_locks as classid (high half), objid (low half), objsubid 1 */
			query_value(conn,
				"SELECT format('server process %s (%s)', l.pid, concat_ws(', ', "
				"CASE WHEN a.application_name <> '' THEN 'application ' || quote_literal(a.application_name) END, "
				"'user ' || quote_literal(a.usename), 'client ' || coalesce(host(a.client_addr), 'local'), "
				"'connected ' || to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS')))"
				" FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
				" WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
				" AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
				" AND l.classid::int8 = ($1::int8 >> 32) & 4294967295 AND l.objid::int8 = $1::int8 & 4294967295"
				" LIMIT 1", key, holder, sizeof holder, NULL);
			return lm_error_set(err, LM_EFAIL,
				"timed out after %g s waiting for the migration lock '%s'%s%s", timeout, name,
				*holder ? ": held by " : "", holder);
		}
	}
	if (conn->locked) { /* another name: one lock at a time */
		char ignored[16];
		query_value(conn, "SELECT pg_advisory_unlock($1::int8)", conn->lock_key, ignored,
			sizeof ignored, NULL);
	}
	conn->locked = 1;
	conn->lock_key = key;
	return 0;
}

static void pg_unlock(lm_conn *c)
{
	pg_conn *conn = (pg_conn *)c;
	char ignored[16];
	if (!conn || !conn->locked)
		return;
	/* In a failed transaction this cannot run: the lock stays noted as
	 * held, for an unlock after the rollback (or the session's end). */
	if (pq.PQtransactionStatus(conn->pg) == PQTRANS_INERROR)
		return;
	query_value(conn, "SELECT pg_advisory_unlock($1::int8)", conn->lock_key, ignored,
		sizeof ignored, NULL);
	conn->locked = 0;
}

static int pg_step_needs_conn(lm_stmt *st)
{
	pg_stmt *s = (pg_stmt *)st;
	if (s->state == ST_READY)
		return 1;
	return s->state == ST_ROWS && s->cursor[0] && s->row + 1 >= pq.PQntuples(s->res);
}

/* ---- many rows: pipelines and COPY ------------------------------------- */

/* Reads the results of `sent` pipelined statements, the first of them row
 * `first`, and the sync that ends them: adds up the rows changed and keeps
 * the first error and its row. */
static int pipeline_collect(pg_conn *conn, int sent, int first, int64_t *changes, int *failed,
	lm_error *err)
{
	int done = 0, rc = 0;
	for (;;) {
		PGresult *res = pq.PQgetResult(conn->pg);
		if (!res) { /* the end of one statement's results */
			if (++done > sent) { /* no sync is coming: the connection broke */
				if (rc == 0)
					rc = pg_fail(conn, NULL, err);
				break;
			}
			continue;
		}
		ExecStatusType st = pq.PQresultStatus(res);
		if (st == PGRES_PIPELINE_SYNC) {
			pq.PQclear(res);
			break;
		}
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
			*changes += cmd_tuples(res);
		} else if (st != PGRES_PIPELINE_ABORTED && rc == 0) {
			*failed = first + done;
			rc = pg_fail(conn, res, err);
		}
		pq.PQclear(res);
	}
	return rc;
}

/* Sends rows [start, end) as one pipeline chunk ended by a sync. */
static int pipeline_send(pg_stmt *s, pg_params *pp, const lm_value *params, int nparams, int start,
	int end, int *sent, int *failed, lm_error *err)
{
	pg_conn *conn = s->conn;
	int rc = 0;
	*sent = 0;
	for (int r = start; r < end; r++) {
		rc = params_set(pp, params + (size_t)r * (size_t)nparams, nparams, err);
		if (rc == 0 && !(same_types(s, pp)
			? pq.PQsendQueryPrepared(conn->pg, s->prepared, pp->n, pp->values, pp->lengths,
				pp->formats, 0)
			: pq.PQsendQueryParams(conn->pg, s->sql, pp->n, pp->types, pp->values, pp->lengths,
				pp->formats, 0)))
			rc = pg_fail(conn, NULL, err);
		if (rc != 0) {
			*failed = r;
			break;
		}
		++*sent;
	}
	if (!pq.PQpipelineSync(conn->pg) && rc == 0)
		rc = pg_fail(conn, NULL, err);
	return rc;
}

/* exec_many in a transaction: the statement is prepared once, then sent in
 * chunks of PIPELINE_ROWS, each ended by a sync. One chunk is in flight
 * while the next is sent, so the server never waits for the client. The
 * first error aborts the transaction, and the server skips the statements
 * after it. */
static int pipeline_run(pg_stmt *s, const lm_value *params, int nparams, int nrows,
	int64_t *changes, int *failed, lm_error *err)
{
	pg_conn *conn = s->conn;
	pg_params pp = { 0 };
	int rc = 0, start = 0, flight_start = 0, flight_sent = -1; /* the chunk in flight; -1: none */
	if (!pq.PQenterPipelineMode(conn->pg))
		return pg_fail(conn, NULL, err);
	do {
		int sent = -1, sent_start = start;
		if (rc == 0 && start < nrows) {
			int end = nrows - start < PIPELINE_ROWS ? nrows : start + PIPELINE_ROWS;
			rc = pipeline_send(s, &pp, params, nparams, start, end, &sent, failed, err);
			start = end;
		}
		if (flight_sent >= 0) {
			/* the chunk in flight holds earlier rows: its error comes first */
			lm_error first_err = {0};
			int first_failed = -1;
			if (pipeline_collect(conn, flight_sent, flight_start, changes, &first_failed, &first_err) != 0) {
				rc = first_err.code;
				*failed = first_failed;
				if (err)
					*err = first_err;
			}
		}
		flight_start = sent_start;
		flight_sent = sent;
	} while (flight_sent >= 0);
	pq.PQexitPipelineMode(conn->pg);
	params_clear(&pp);
	return rc;
}

static int pg_exec_many(lm_stmt *st, const lm_value *params, int nparams, int nrows,
	int64_t *changes, int *failed, lm_error *err)
{
	pg_stmt *s = (pg_stmt *)st;
	pg_conn *conn = s->conn;
	int rc, settled;
	*changes = 0;
	*failed = -1;
	stmt_reset(s);
	if (nrows == 0)
		return 0;
	if ((rc = begin_now(conn, err)) != 0)
		return rc;
	if (nparams != s->info.nparams)
		return params_count_error(s->info.nparams, nparams, err);
	if (conn->guard && s->info.txctl)
		return lm_error_set(err, LM_EFAIL, GUARD_MESSAGE);
	/* Outside a transaction every statement commits on its own; a
	 * pipeline would make one implicit transaction of each batch. */
	if (pq.PQtransactionStatus(conn->pg) != PQTRANS_INTRANS)
		return lm_exec_rows(&lm_driver_pg, st, params, nparams, nrows, changes, failed, err);
	if (!s->prepared[0]) {
		if ((rc = params_set(&s->params, params, nparams, err)) != 0) {
			*failed = 0;
			return rc;
		}
		s->bound = 1;
		if ((rc = server_prepare(s, err)) != 0) {
			*failed = 0;
			return rc;
		}
	}
	rc = pipeline_run(s, params, nparams, nrows, changes, failed, err);
	settled = pg_settle(conn, rc == 0 ? err : NULL);
	return rc != 0 ? rc : settled;
}

/* Appends n bytes as a COPY text field: backslash, newline, carriage
 * return and tab escaped. */
static void copy_text(lm_buf *b, const char *p, size_t n)
{
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		char esc;
		switch (p[i]) {
		case '\\': esc = '\\'; break;
		case '\n': esc = 'n'; break;
		case '\r': esc = 'r'; break;
		case '\t': esc = 't'; break;
		default: continue;
		}
		lm_buf_add(b, p + run, i - run);
		lm_buf_add(b, (char[]){ '\\', esc }, 2);
		run = i + 1;
	}
	lm_buf_add(b, p + run, n - run);
}

/* Appends an integer without printf, which is most of a row's cost. */
static void copy_int(lm_buf *b, int64_t v)
{
	char tmp[24];
	int i = sizeof tmp;
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	do
		tmp[--i] = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		tmp[--i] = '-';
	lm_buf_add(b, tmp + i, sizeof tmp - (size_t)i);
}

/* Appends a double as text that reads back as the same value. A number
 * with at most 6 decimals, the usual case, is printed from an integer: k
 * / 1e6 is correctly rounded, as the server's reading of the text is, so
 * the check below proves the round trip; others take printf's way. */
static void copy_float(lm_buf *b, double f)
{
	char tmp[32];
	double k = rint(f * 1e6);
	if (fabs(k) < 1e15 && k / 1e6 == f) {
		int64_t whole = (int64_t)k / 1000000, frac = (int64_t)fabs(k) % 1000000;
		if (k < 0 && whole == 0)
			lm_buf_add(b, "-", 1);
		copy_int(b, whole);
		if (frac) {
			int digits = 6;
			while (frac % 10 == 0) {
				frac /= 10;
				digits--;
			}
			int n = snprintf(tmp, sizeof tmp, ".%0*" PRId64, digits, frac);
			lm_buf_add(b, tmp, (size_t)n);
		}
		return;
	}
	if (!isfinite(f)) {
		format_float(tmp, sizeof tmp, f);
	} else {
		snprintf(tmp, sizeof tmp, "%.15g", f);
		if (strtod(tmp, NULL) != f)
			snprintf(tmp, sizeof tmp, "%.17g", f);
	}
	lm_buf_puts(b, tmp);
}

static int pg_copy_begin(lm_conn *c, const char *sql, lm_error *err)
{
	pg_conn *conn = (pg_conn *)c;
	int rc = begin_now(conn, err);
	if (rc != 0)
		return rc;
	PGresult *res = pq.PQexec(conn->pg, sql);
	conn->copy.len = 0;
	conn->copy_error = 0;
	if (res && pq.PQresultStatus(res) == PGRES_COPY_IN) {
		pq.PQclear(res);
		return 0;
	}
	rc = pg_check(conn, res, NULL, err);
	if (rc == 0)
		rc = lm_error_set(err, LM_EFAIL, "the statement did not start a copy from stdin");
	pg_settle(conn, NULL);
	return rc;
}

static int pg_copy_row(lm_conn *c, const lm_value *row, int n, lm_error *err)
{
	pg_conn *conn = (pg_conn *)c;
	lm_buf *b = &conn->copy;
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < n; i++) {
		const lm_value *v = &row[i];
		if (i > 0)
			lm_buf_add(b, "\t", 1);
		switch (v->type) {
		case LM_NULL: lm_buf_add(b, "\\N", 2); break;
		case LM_INT: copy_int(b, v->u.i); break;
		case LM_BOOL: lm_buf_add(b, v->u.i ? "t" : "f", 1); break;
		case LM_FLOAT: copy_float(b, v->u.f); break;
		case LM_TEXT:
			if (v->u.s.n > 0 && memchr(v->u.s.p, '\0', v->u.s.n)) {
				conn->copy_error = 1;
				return lm_error_set(err, LM_EFAIL,
					"value %d: text holds a zero byte, which postgresql text cannot store; bind it as a blob",
					i + 1);
			}
			copy_text(b, v->u.s.p, v->u.s.n);
			break;
		case LM_BLOB: /* bytea's hex form, its backslash escaped for COPY */
			lm_buf_add(b, "\\\\x", 3);
			for (size_t k = 0; k < v->u.s.n; k++) {
				unsigned char ch = (unsigned char)v->u.s.p[k];
				lm_buf_add(b, (char[]){ hex[ch >> 4], hex[ch & 15] }, 2);
			}
			break;
		}
	}
	lm_buf_add(b, "\n", 1);
	if (b->failed) {
		conn->copy_error = 1;
		return no_memory(err);
	}
	if (b->len >= COPY_CHUNK) {
		if (pq.PQputCopyData(conn->pg, b->data, (int)b->len) != 1) {
			conn->copy_error = 1;
			return pg_fail(conn, NULL, err);
		}
		b->len = 0;
	}
	return 0;
}

static int pg_copy_end(lm_conn *c, int abort, int *failed, lm_error *err)
{
	pg_conn *conn = (pg_conn *)c;
	lm_buf *b = &conn->copy;
	PGresult *res;
	int rc = 0;
	*failed = -1;
	conn->copy_error |= abort;
	if (!conn->copy_error && b->len > 0 && pq.PQputCopyData(conn->pg, b->data, (int)b->len) != 1)
		rc = pg_fail(conn, NULL, err);
	b->len = 0;
	if (pq.PQputCopyEnd(conn->pg, conn->copy_error || rc ? "luamig stopped the load" : NULL) != 1 &&
		rc == 0)
		rc = pg_fail(conn, NULL, err);
	while ((res = pq.PQgetResult(conn->pg)) != NULL) {
		if (rc == 0 && pq.PQresultStatus(res) != PGRES_COMMAND_OK) {
			/* the context names the line, which is the row: "COPY t, line 7, column ..." */
			const char *where = pq.PQresultErrorField(res, PG_DIAG_CONTEXT);
			const char *line = where ? strstr(where, ", line ") : NULL;
			if (line)
				*failed = atoi(line + 7) - 1;
			rc = pg_fail(conn, res, err);
		}
		pq.PQclear(res);
	}
	conn->copy_error = 0;
	int settled = pg_settle(conn, rc == 0 ? err : NULL);
	return rc != 0 ? rc : settled;
}

const lm_driver_methods lm_driver_pg = {
	.version = 3,
	.dialect = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.exec = pg_exec,
	.prepare = pg_prepare,
	.bind = pg_bind,
	.step = pg_step,
	.column_count = pg_column_count,
	.column_name = pg_column_name,
	.column = pg_column,
	.changes = pg_changes,
	.finalize = pg_finalize,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.guard_transactions = pg_guard,
	.lock = pg_lock,
	.unlock = pg_unlock,
	.exec_many = pg_exec_many,
	.copy_begin = pg_copy_begin,
	.copy_row = pg_copy_row,
	.copy_end = pg_copy_end,
	.step_needs_conn = pg_step_needs_conn,
	.exec_commit = pg_exec_commit,
};
