/* test_driver_pg.c - the PostgreSQL driver against a live server.
 *
 * Needs LUAMIG_TEST_PG_URL (tools/pg-server start DIR prints one); without
 * it the test reports itself skipped and passes. Runs in its own schema,
 * luamig_test, dropped before and after. The failed-login check wants a
 * role that must give its password: tools/pg-server's `luamig_auth`.
 */
#include "driver.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const lm_driver_methods *m = &lm_driver_pg;
static int passed, failed;

#define GUARD "transaction control statements are not allowed in a migration: the runner commits each revision"

static void check(int ok, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void check(int ok, int line, const char *fmt, ...)
{
	if (ok) {
		passed++;
		return;
	}
	failed++;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "FAIL test_driver_pg.c:%d: ", line);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

#define CHECK(cond, ...) check(!!(cond), __LINE__, __VA_ARGS__)

static lm_value v_null(void) { lm_value v = { .type = LM_NULL }; return v; }
static lm_value v_int(int64_t i) { lm_value v = { .type = LM_INT, .u.i = i }; return v; }
static lm_value v_float(double f) { lm_value v = { .type = LM_FLOAT, .u.f = f }; return v; }
static lm_value v_bool(int b) { lm_value v = { .type = LM_BOOL, .u.i = b }; return v; }

static lm_value v_text(const char *s)
{
	lm_value v = { .type = LM_TEXT };
	v.u.s.p = s;
	v.u.s.n = strlen(s);
	return v;
}

static lm_value v_blob(const char *p, size_t n)
{
	lm_value v = { .type = LM_BLOB };
	v.u.s.p = p;
	v.u.s.n = n;
	return v;
}

/* Runs sql; returns the driver's code, message in err. */
static int run(lm_conn *c, const char *sql, lm_error *err)
{
	lm_error_clear(err);
	return m->exec(c, sql, NULL, 0, NULL, err);
}

#define OK(c, sql) do { lm_error e_; int rc_ = run((c), (sql), &e_); \
		CHECK(rc_ == 0, "%s: %s", (sql), e_.message); } while (0)

/* The first column of the first row, as text ("" for none), into out. */
static int query(lm_conn *c, const char *sql, const lm_value *params, int n,
	char *out, size_t size)
{
	lm_stmt *s = NULL;
	lm_error err = { 0 };
	lm_value v;
	int rc;
	out[0] = '\0';
	if ((rc = m->prepare(c, sql, &s, &err)) != 0)
		goto done;
	if ((rc = m->bind(s, params, n, &err)) != 0)
		goto done;
	if ((rc = m->step(s, &err)) <= 0)
		goto done;
	m->column(s, 0, &v);
	if (v.type == LM_TEXT)
		snprintf(out, size, "%.*s", (int)v.u.s.n, v.u.s.p);
	else if (v.type == LM_INT || v.type == LM_BOOL)
		snprintf(out, size, "%lld", (long long)v.u.i);
	else if (v.type == LM_FLOAT)
		snprintf(out, size, "%.17g", v.u.f);
	rc = 0;
done:
	if (rc < 0)
		snprintf(out, size, "error: %s", err.message);
	m->finalize(s);
	return rc;
}

static long long query_int(lm_conn *c, const char *sql)
{
	char buf[256];
	if (query(c, sql, NULL, 0, buf, sizeof buf) != 0)
		fprintf(stderr, "  (%s: %s)\n", sql, buf);
	return atoll(buf);
}

static int open_url(lm_conn **c, const char *text, lm_error *err)
{
	lm_url url;
	int rc = lm_url_parse(&url, text, NULL, err);
	if (rc == 0)
		rc = m->open(c, &url, err);
	lm_url_free(&url);
	return rc;
}

/* text with the user and password (and maybe more) of base replaced. */
static void url_with(char *out, size_t size, const char *base, const char *userinfo,
	const char *db)
{
	/* base: scheme://[user[:password]@]host[:port][/db][?options] */
	const char *auth = strstr(base, "://");
	auth = auth ? auth + 3 : base;
	size_t authlen = strcspn(auth, "/?");
	const char *at = memchr(auth, '@', authlen);
	const char *host = at ? at + 1 : auth;
	snprintf(out, size, "postgresql://%s@%.*s/%s", userinfo, (int)(auth + authlen - host), host, db);
}

static void test_connect(const char *url)
{
	lm_conn *c = NULL;
	lm_error err = { 0 };
	char buf[2048];

	/* a role that must give its password, given a wrong one */
	CHECK(open_url(&c, url, &err) == 0, "open: %s", err.message);
	run(c, "DROP ROLE IF EXISTS luamig_auth", &err);
	int have_role = run(c, "CREATE ROLE luamig_auth LOGIN PASSWORD 'right-Pa55'", &err) == 0;
	m->close(c);
	c = NULL;
	url_with(buf, sizeof buf, url, "luamig_auth:wr0ng-S3cret", "postgres");
	if (!have_role) {
		printf("note: cannot create role luamig_auth (%s); login checks skipped\n", err.message);
	} else if (open_url(&c, buf, &err) == 0) {
		printf("note: the server let luamig_auth in without its password; failed-login check skipped\n");
		m->close(c);
	} else {
		CHECK(strstr(err.message, "wr0ng-S3cret") == NULL, "password in message: %s", err.message);
		CHECK(strchr(err.message, '\n') == NULL, "not one line: %s", err.message);
		CHECK(strstr(err.message, "password authentication failed for user \"luamig_auth\""),
			"message: %s", err.message);
		CHECK(c == NULL, "conn set on failure");
	}
	/* the right password works */
	if (have_role) {
		url_with(buf, sizeof buf, url, "luamig_auth:right-Pa55", "postgres");
		CHECK(open_url(&c, buf, &err) == 0, "right password: %s", err.message);
		m->close(c);
		c = NULL;
	}

	/* libpq echoes the database name: a password equal to it is masked */
	url_with(buf, sizeof buf, url, "postgres:no_such_db_pw", "no_such_db_pw");
	CHECK(open_url(&c, buf, &err) != 0, "opened a missing database");
	CHECK(strstr(err.message, "no_such_db_pw") == NULL, "password in message: %s", err.message);
	CHECK(strstr(err.message, "database \"***\" does not exist"), "message: %s", err.message);

	/* a password given as a query option is masked too */
	url_with(buf, sizeof buf, url, "postgres", "qopt_pw_db?password=qopt_pw_db");
	CHECK(open_url(&c, buf, &err) != 0, "opened a missing database");
	CHECK(strstr(err.message, "qopt_pw_db") == NULL, "password in message: %s", err.message);

	/* libpq's multi-line messages become one line */
	CHECK(open_url(&c, "postgresql://u:Sekr1t@127.0.0.1:1/x?connect_timeout=5", &err) != 0,
		"port 1 accepted a connection");
	CHECK(strchr(err.message, '\n') == NULL && strchr(err.message, '\t') == NULL,
		"not one line: %s", err.message);
	CHECK(strstr(err.message, "Sekr1t") == NULL, "password in message: %s", err.message);
	CHECK(strstr(err.message, "Connection refused; Is the server running"),
		"lines not joined with '; ': %s", err.message);

	/* a bad option is libpq's error, not a crash */
	snprintf(buf, sizeof buf, "%s?no_such_option=1", url);
	CHECK(open_url(&c, buf, &err) != 0, "unknown option accepted");
	CHECK(strstr(err.message, "invalid connection option \"no_such_option\""), "message: %s", err.message);

	/* application_name: luamig unless the url says otherwise */
	CHECK(open_url(&c, url, &err) == 0, "open: %s", err.message);
	query(c, "SHOW application_name", NULL, 0, buf, sizeof buf);
	CHECK(strcmp(buf, "luamig") == 0, "application_name '%s'", buf);
	m->close(c);
	snprintf(buf, sizeof buf, "%s?application_name=mine&sslmode=disable", url);
	CHECK(open_url(&c, buf, &err) == 0, "open: %s", err.message);
	query(c, "SHOW application_name", NULL, 0, buf, sizeof buf);
	CHECK(strcmp(buf, "mine") == 0, "application_name '%s'", buf);
	m->close(c);
	m->close(NULL);
}

static void test_values(lm_conn *c)
{
	lm_stmt *s = NULL;
	lm_error err = { 0 };
	lm_value v;
	static const char blob[] = { 0, 1, (char)0xff, '\\', 'x', 0 };
	lm_value p[] = {
		v_int(9007199254740993LL), v_float(0.1), v_text("h\xc3\xa9llo 'q' ?"),
		v_blob(blob, sizeof blob), v_bool(1), v_null(), v_bool(0),
		v_blob("", 0), v_int(-42), v_float(-1e300), v_text(""), v_float(NAN),
	};
	int np = (int)(sizeof p / sizeof p[0]);
	const char *sql = "SELECT ?::int8 AS i, ?::float8 AS f, ?::text AS t, ?::bytea AS b, "
		"?::bool AS yes, ?::text AS nothing, ? AS no, ? AS empty_blob, ?::int4 AS i4, "
		"?::float8 AS big, ? || '' AS empty_text, ?::float8 AS nan";

	CHECK(m->prepare(c, sql, &s, &err) == 0, "prepare: %s", err.message);
	CHECK(m->bind(s, p, np - 1, &err) == LM_EFAIL &&
		strcmp(err.message, "statement takes 12 parameters, 11 given") == 0,
		"count mismatch: %s", err.message);
	CHECK(m->bind(s, p, np, &err) == 0, "bind: %s", err.message);
	CHECK(m->step(s, &err) == 1, "step: %s", err.message);
	CHECK(m->column_count(s) == np, "column_count %d", m->column_count(s));
	CHECK(strcmp(m->column_name(s, 0), "i") == 0 && strcmp(m->column_name(s, 11), "nan") == 0,
		"column names");
	m->column(s, 0, &v);
	CHECK(v.type == LM_INT && v.u.i == 9007199254740993LL, "int8: %d", v.type);
	m->column(s, 1, &v);
	CHECK(v.type == LM_FLOAT && v.u.f == 0.1, "float8: %d %.17g", v.type, v.u.f);
	m->column(s, 2, &v);
	CHECK(v.type == LM_TEXT && v.u.s.n == strlen("h\xc3\xa9llo 'q' ?") &&
		memcmp(v.u.s.p, "h\xc3\xa9llo 'q' ?", v.u.s.n) == 0, "text");
	m->column(s, 3, &v);
	CHECK(v.type == LM_BLOB && v.u.s.n == sizeof blob && memcmp(v.u.s.p, blob, sizeof blob) == 0,
		"bytea: type %d n %zu", v.type, v.u.s.n);
	m->column(s, 4, &v);
	CHECK(v.type == LM_BOOL && v.u.i == 1, "bool true");
	m->column(s, 5, &v);
	CHECK(v.type == LM_NULL, "null: %d", v.type);
	m->column(s, 6, &v);
	CHECK(v.type == LM_BOOL && v.u.i == 0, "bool false, uncast: %d", v.type);
	m->column(s, 7, &v);
	CHECK(v.type == LM_BLOB && v.u.s.n == 0, "empty blob, uncast: %d", v.type);
	m->column(s, 8, &v);
	CHECK(v.type == LM_INT && v.u.i == -42, "int4");
	m->column(s, 9, &v);
	CHECK(v.type == LM_FLOAT && v.u.f == -1e300, "big float");
	m->column(s, 10, &v);
	CHECK(v.type == LM_TEXT && v.u.s.n == 0, "empty text: %d", v.type);
	m->column(s, 11, &v);
	CHECK(v.type == LM_FLOAT && isnan(v.u.f), "nan");
	m->column(s, 99, &v);
	CHECK(v.type == LM_NULL, "column out of range");
	CHECK(m->step(s, &err) == 0, "second step: %s", err.message);
	CHECK(m->changes(s) == 1, "changes of a one-row select: %lld", (long long)m->changes(s));
	m->finalize(s);
	s = NULL;

	/* types from the result column */
	CHECK(m->prepare(c, "SELECT 7::int2, 8::oid, 1.5::float4, 'Infinity'::float8, 1.25::numeric, "
			"12345678901234567890.5::numeric, 'NaN'::numeric, 1e20::numeric, 1.000000000000000000::numeric, "
			"DATE '2024-01-02', '{\"a\": 1}'::jsonb, NULL::int4, 0.1::numeric, 1e-400::numeric",
			&s, &err) == 0, "prepare: %s", err.message);
	CHECK(m->step(s, &err) == 1, "step: %s", err.message);
	m->column(s, 0, &v);
	CHECK(v.type == LM_INT && v.u.i == 7, "int2");
	m->column(s, 1, &v);
	CHECK(v.type == LM_INT && v.u.i == 8, "oid");
	m->column(s, 2, &v);
	CHECK(v.type == LM_FLOAT && v.u.f == 1.5, "float4");
	m->column(s, 3, &v);
	CHECK(v.type == LM_FLOAT && isinf(v.u.f) && v.u.f > 0, "infinity");
	m->column(s, 4, &v);
	CHECK(v.type == LM_FLOAT && v.u.f == 1.25, "numeric 1.25: %d", v.type);
	m->column(s, 5, &v);
	CHECK(v.type == LM_TEXT && strncmp(v.u.s.p, "12345678901234567890.5", v.u.s.n) == 0,
		"numeric too precise stays text: %d", v.type);
	m->column(s, 6, &v);
	CHECK(v.type == LM_FLOAT && isnan(v.u.f), "numeric NaN: %d", v.type);
	m->column(s, 7, &v);
	CHECK(v.type == LM_FLOAT && v.u.f == 1e20, "numeric 1e20 (trailing zeros): %d", v.type);
	m->column(s, 8, &v);
	CHECK(v.type == LM_FLOAT && v.u.f == 1.0, "numeric 1.000…: %d", v.type);
	m->column(s, 9, &v);
	CHECK(v.type == LM_TEXT && strncmp(v.u.s.p, "2024-01-02", v.u.s.n) == 0, "date is text");
	m->column(s, 10, &v);
	CHECK(v.type == LM_TEXT && strncmp(v.u.s.p, "{\"a\": 1}", v.u.s.n) == 0, "jsonb is text");
	m->column(s, 11, &v);
	CHECK(v.type == LM_NULL, "typed null");
	m->column(s, 12, &v);
	CHECK(v.type == LM_FLOAT && v.u.f == 0.1, "numeric 0.1");
	m->column(s, 13, &v);
	CHECK(v.type == LM_TEXT, "numeric below a double's range stays text: %d", v.type);
	m->finalize(s);
	s = NULL;

	/* round trip through a table */
	OK(c, "CREATE TABLE vals (id serial PRIMARY KEY, i int8, f float8, t text, b bytea, ok bool, n numeric)");
	lm_value row[] = { v_int(-5), v_float(2.5), v_text("x"), v_blob("\0\0", 2), v_bool(1), v_int(3) };
	int64_t changes = -1;
	CHECK(m->exec(c, "INSERT INTO vals (i, f, t, b, ok, n) VALUES (?, ?, ?, ?, ?, ?)", row, 6,
		      &changes, &err) == 0, "insert: %s", err.message);
	CHECK(changes == 1, "changes %lld", (long long)changes);
	CHECK(m->exec(c, "INSERT INTO vals (i, f, t, b, ok, n) VALUES (?, ?, ?, ?, ?, ?)", row, 5,
		      &changes, &err) == LM_EFAIL &&
		strcmp(err.message, "statement takes 6 parameters, 5 given") == 0, "exec count: %s",
		err.message);
	CHECK(m->prepare(c, "SELECT i, f, t, b, ok, n FROM vals", &s, &err) == 0, "prepare: %s", err.message);
	CHECK(m->step(s, &err) == 1, "step: %s", err.message);
	lm_value got[6];
	for (int i = 0; i < 6; i++)
		m->column(s, i, &got[i]);
	CHECK(got[0].type == LM_INT && got[0].u.i == -5, "i");
	CHECK(got[1].type == LM_FLOAT && got[1].u.f == 2.5, "f");
	CHECK(got[2].type == LM_TEXT && got[2].u.s.n == 1 && got[2].u.s.p[0] == 'x', "t");
	CHECK(got[3].type == LM_BLOB && got[3].u.s.n == 2 && memcmp(got[3].u.s.p, "\0\0", 2) == 0, "b");
	CHECK(got[4].type == LM_BOOL && got[4].u.i == 1, "ok");
	CHECK(got[5].type == LM_FLOAT && got[5].u.f == 3, "n");
	m->finalize(s);
	s = NULL;
	CHECK(m->exec(c, "UPDATE vals SET t = ? WHERE id > ?", (lm_value[]){ v_text("y"), v_int(0) }, 2,
		      &changes, &err) == 0 && changes == 1, "update changes %lld: %s", (long long)changes,
		err.message);
	lm_value zero = { .type = LM_TEXT, .u.s = { "a\0b", 3 } };
	CHECK(m->exec(c, "SELECT ?", &zero, 1, NULL, &err) == LM_EFAIL &&
		strstr(err.message, "zero byte"), "text with a zero byte: %s", err.message);
	/* prepared statements re-run with new parameters */
	CHECK(m->prepare(c, "INSERT INTO vals (i) VALUES (?)", &s, &err) == 0, "prepare: %s", err.message);
	for (int i = 0; i < 3; i++) {
		CHECK(m->bind(s, (lm_value[]){ v_int(100 + i) }, 1, &err) == 0, "bind: %s", err.message);
		CHECK(m->step(s, &err) == 0, "step: %s", err.message);
		CHECK(m->changes(s) == 1, "changes");
	}
	CHECK(m->column_count(s) == 0, "an insert has no columns");
	m->finalize(s);
	s = NULL;
	CHECK(query_int(c, "SELECT count(*) FROM vals WHERE i >= 100") == 3, "three inserted");
	/* a statement that needs parameters and got none */
	CHECK(m->prepare(c, "SELECT ?", &s, &err) == 0, "prepare: %s", err.message);
	CHECK(m->step(s, &err) == LM_EFAIL && strcmp(err.message, "statement takes 1 parameter, 0 given") == 0,
		"unbound: %s", err.message);
	m->finalize(s);
	m->finalize(NULL);
}

static void test_placeholders(lm_conn *c)
{
	lm_stmt *s = NULL;
	lm_error err = { 0 };
	lm_value v;
	const char *sql =
		"SELECT '?' AS q1, -- what?\n"
		"  /* really? /* nested ? */ still? */ ?::int8 AS p1,\n"
		"  $$it's ?$$ AS q2, $tag$ $$ ? $t$ ? $tag$ AS q3, E'\\'?' AS q4, 'a''?' AS q5,\n"
		"  ?::text AS p2, \"we?rd\", x.\"a\"\"?\" AS q6, U&'\\0041?' AS q7, 3::int8 AS cast\n"
		"FROM (SELECT 1 AS \"we?rd\", 2 AS \"a\"\"?\") x WHERE ? = ?::int4";
	lm_value p[] = { v_int(7), v_text("x"), v_int(1), v_int(1) };
	static const struct { const char *name; const char *text; } want[] = {
		{ "q1", "?" }, { "p1", NULL }, { "q2", "it's ?" }, { "q3", " $$ ? $t$ ? " },
		{ "q4", "'?" }, { "q5", "a'?" }, { "p2", "x" }, { "we?rd", NULL }, { "q6", NULL },
		{ "q7", "A?" }, { "cast", NULL },
	};
	CHECK(m->prepare(c, sql, &s, &err) == 0, "prepare: %s", err.message);
	CHECK(m->bind(s, p, 3, &err) == LM_EFAIL, "three of four parameters accepted");
	CHECK(m->bind(s, p, 4, &err) == 0, "bind: %s", err.message);
	/* names before the first step (described) */
	CHECK(m->column_count(s) == 11, "column_count before step %d", m->column_count(s));
	CHECK(m->step(s, &err) == 1, "step: %s", err.message);
	for (int i = 0; i < 11; i++) {
		const char *name = m->column_name(s, i);
		CHECK(name && strcmp(name, want[i].name) == 0, "column %d named '%s'", i, name ? name : "(null)");
		m->column(s, i, &v);
		if (want[i].text)
			CHECK(v.type == LM_TEXT && v.u.s.n == strlen(want[i].text) &&
				memcmp(v.u.s.p, want[i].text, v.u.s.n) == 0, "column %s: '%.*s'", want[i].name,
				(int)v.u.s.n, v.u.s.p);
	}
	m->column(s, 1, &v);
	CHECK(v.type == LM_INT && v.u.i == 7, "p1");
	m->column(s, 10, &v);
	CHECK(v.type == LM_INT && v.u.i == 3, "cast");
	m->finalize(s);
	s = NULL;

	/* exec with no parameters sends the text as it is (a jsonb ? works) */
	char buf[64];
	OK(c, "CREATE TABLE jb AS SELECT '{\"a\":1}'::jsonb ? 'a' AS has");
	CHECK(query_int(c, "SELECT has::int FROM jb") == 1, "jsonb ? without parameters");
	/* a comment ends at \r too: the COMMIT after it is seen */
	m->guard_transactions(c, 1);
	CHECK(run(c, "SELECT 1 -- x\r; COMMIT", &err) == LM_EFAIL && strcmp(err.message, GUARD) == 0,
		"comment ended by \\r: %s", err.message);
	m->guard_transactions(c, 0);
	/* several statements without parameters; with parameters, one */
	OK(c, "CREATE TABLE ph (a text); INSERT INTO ph VALUES ('?;'); INSERT INTO ph VALUES ($$;?$$)");
	CHECK(query_int(c, "SELECT count(*) FROM ph") == 2, "two rows");
	CHECK(m->exec(c, "INSERT INTO ph VALUES (?); SELECT 1", (lm_value[]){ v_text("z") }, 1, NULL, &err)
		== LM_EFAIL && strcmp(err.message, "sql with parameters must be one statement") == 0,
		"params with two statements: %s", err.message);
	CHECK(m->prepare(c, "SELECT 1; SELECT 2", &s, &err) == LM_EFAIL && s == NULL,
		"prepare of two statements");
	/* standard_conforming_strings off: a backslash escapes in '...' */
	OK(c, "SET standard_conforming_strings = off");
	CHECK(query(c, "SELECT 'a\\'?' || ?", (lm_value[]){ v_text("b") }, 1, buf, sizeof buf) == 0 &&
		strcmp(buf, "a'?b") == 0, "backslash string: %s", buf);
	OK(c, "SET standard_conforming_strings = on");
	CHECK(query(c, "SELECT 'a\\' || ?", (lm_value[]){ v_text("b") }, 1, buf, sizeof buf) == 0 &&
		strcmp(buf, "a\\b") == 0, "standard string: %s", buf);
}

static void test_streaming(lm_conn *c)
{
	lm_stmt *s = NULL, *cursors = NULL, *upd = NULL;
	lm_error err = { 0 };
	lm_value v;
	int64_t n = 0, expect = 1, updates = 0;
	int ordered = 1, rc;

	OK(c, "CREATE TABLE big (id int8 PRIMARY KEY, v int8 NOT NULL DEFAULT 0)");
	OK(c, "INSERT INTO big (id) SELECT g FROM generate_series(1, 100000) g");
	CHECK(m->begin(c, 1, &err) == 0, "begin: %s", err.message);
	CHECK(m->prepare(c, "SELECT count(*) FROM pg_cursors WHERE name LIKE 'lm_cur_%' AND statement NOT LIKE '%pg_cursors%'", &cursors, &err) == 0,
		"prepare: %s", err.message);
	CHECK(m->prepare(c, "UPDATE big SET v = v + 1 WHERE id = ?", &upd, &err) == 0, "prepare: %s",
		err.message);
	CHECK(m->prepare(c, "/* rows */ (SELECT id, v FROM big ORDER BY id)", &s, &err) == 0, "prepare: %s",
		err.message);
	while ((rc = m->step(s, &err)) == 1) {
		m->column(s, 0, &v);
		if (v.type != LM_INT || v.u.i != expect)
			ordered = 0;
		expect++;
		n++;
		if (n % 100 == 1) {
			/* other statements run between steps on the same connection */
			if (m->bind(upd, &v, 1, &err) != 0 || m->step(upd, &err) != 0)
				fprintf(stderr, "  update: %s\n", err.message);
			updates += m->changes(upd);
		}
		if (n == 50000) {
			CHECK(m->bind(cursors, NULL, 0, &err) == 0 && m->step(cursors, &err) == 1, "cursors: %s",
				err.message);
			m->column(cursors, 0, &v);
			CHECK(v.type == LM_INT && v.u.i == 1, "one cursor open while streaming: %lld",
				(long long)v.u.i);
		}
	}
	CHECK(rc == 0, "step: %s", err.message);
	CHECK(n == 100000 && ordered, "rows %lld ordered %d", (long long)n, ordered);
	CHECK(updates == 1000, "updates %lld", (long long)updates);
	CHECK(m->changes(s) == 100000, "changes %lld", (long long)m->changes(s));
	CHECK(m->step(s, &err) == 0, "step after the end");
	CHECK(m->bind(cursors, NULL, 0, &err) == 0 && m->step(cursors, &err) == 1, "cursors: %s", err.message);
	m->column(cursors, 0, &v);
	CHECK(v.u.i == 0, "cursor closed when its rows ran out: %lld", (long long)v.u.i);

	/* re-run from the start with bind; abandon it part way: finalize closes */
	CHECK(m->bind(s, NULL, 0, &err) == 0, "rebind: %s", err.message);
	int restepped = 0;
	for (int i = 0; i < 1500; i++)
		restepped += m->step(s, &err) == 1;
	CHECK(restepped == 1500, "restepped %d: %s", restepped, err.message);
	m->column(s, 0, &v);
	CHECK(v.type == LM_INT && v.u.i == 1500, "restarted at 1: %lld", (long long)v.u.i);
	m->finalize(s);
	s = NULL;
	CHECK(m->bind(cursors, NULL, 0, &err) == 0 && m->step(cursors, &err) == 1, "cursors: %s", err.message);
	m->column(cursors, 0, &v);
	CHECK(v.u.i == 0, "finalize closed the cursor: %lld", (long long)v.u.i);

	/* a statement left open across commit fails clearly, and finalizes quietly */
	CHECK(m->prepare(c, "SELECT id FROM big", &s, &err) == 0 && m->step(s, &err) == 1, "step: %s",
		err.message);
	m->finalize(cursors);
	m->finalize(upd);
	cursors = upd = NULL;
	CHECK(m->commit(c, &err) == 0, "commit: %s", err.message);
	for (int i = 0; i < 999 && m->step(s, &err) == 1; i++)
		;
	CHECK(m->step(s, &err) == LM_EFAIL &&
		strcmp(err.message, "the transaction this statement was reading rows in has ended") == 0,
		"step after commit: %s", err.message);
	m->finalize(s);
	s = NULL;
	CHECK(query_int(c, "SELECT sum(v) FROM big") == 1000, "updates committed");

	/* outside a transaction: the whole result, other statements between steps */
	CHECK(m->prepare(c, "SELECT id FROM big WHERE id <= 3000 ORDER BY id", &s, &err) == 0, "prepare: %s",
		err.message);
	n = 0;
	while ((rc = m->step(s, &err)) == 1) {
		if (++n % 1000 == 0)
			CHECK(m->exec(c, "UPDATE big SET v = v + 1 WHERE id = ?", (lm_value[]){ v_int(n) }, 1, NULL,
				      &err) == 0, "update: %s", err.message);
	}
	CHECK(rc == 0 && n == 3000, "rows %lld: %s", (long long)n, err.message);
	m->finalize(s);
	s = NULL;
	CHECK(query_int(c, "SELECT sum(v) FROM big") == 1003, "autocommitted updates");

	/* a cursor in a failed transaction: errors, then rollback is clean */
	CHECK(m->begin(c, 0, &err) == 0, "begin: %s", err.message);
	CHECK(m->prepare(c, "SELECT id FROM big", &s, &err) == 0 && m->step(s, &err) == 1, "step: %s",
		err.message);
	CHECK(run(c, "SELECT 1/0", &err) == LM_EFAIL && strcmp(err.message, "division by zero") == 0,
		"division: %s", err.message);
	for (int i = 0; i < 999; i++)
		m->step(s, &err);
	CHECK(m->step(s, &err) == LM_EFAIL && strstr(err.message, "current transaction is aborted"),
		"fetch in a failed transaction: %s", err.message);
	m->finalize(s);
	s = NULL;
	CHECK(m->commit(c, &err) == LM_EFAIL &&
		strcmp(err.message, "cannot commit: a statement failed in this transaction, which was rolled back") == 0,
		"commit after failure: %s", err.message);
	CHECK(m->rollback(c, &err) == 0, "rollback after that: %s", err.message);
	OK(c, "DROP TABLE big");
}

/* Statements of every kind return their rows inside a transaction, whether
 * or not a cursor can run them. */
static void test_kinds(lm_conn *c)
{
	static const struct { const char *sql; int rows; } kinds[] = {
		{ "SELECT 1;", 1 },
		{ "SELECT 1 -- trailing comment", 1 },
		{ "  (VALUES (1), (2)) ;  ", 2 },
		{ "TABLE kinds", 3 },
		{ "WITH x AS (SELECT a FROM kinds) SELECT * FROM x", 3 },
		{ "WITH x AS (INSERT INTO kinds VALUES (10) RETURNING a) SELECT * FROM x", 1 },
		{ "SELECT a FROM kinds ORDER BY a FOR UPDATE", 4 },
		{ "INSERT INTO kinds VALUES (11), (12) RETURNING a", 2 },
		{ "UPDATE kinds SET a = a WHERE a > 10 RETURNING a", 2 },
		{ "SHOW search_path", 1 },
		{ "EXPLAIN SELECT 1", 1 },
		{ "SELECT a INTO kinds_copy FROM kinds", 0 },
		{ "DELETE FROM kinds WHERE a >= 10", 0 },
	};
	lm_error err = { 0 };
	OK(c, "CREATE TABLE kinds (a int); INSERT INTO kinds VALUES (1), (2), (3)");
	CHECK(m->begin(c, 0, &err) == 0, "begin: %s", err.message);
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		lm_stmt *s = NULL;
		int rows = 0, rc;
		CHECK(m->prepare(c, kinds[i].sql, &s, &err) == 0, "prepare '%s': %s", kinds[i].sql, err.message);
		while ((rc = m->step(s, &err)) == 1)
			rows++;
		CHECK(rc == 0 && rows == kinds[i].rows, "'%s': %d rows, rc %d: %s", kinds[i].sql, rows, rc,
			rc ? err.message : "");
		m->finalize(s);
	}
	CHECK(m->commit(c, &err) == 0, "commit: %s", err.message);
	CHECK(query_int(c, "SELECT count(*) FROM kinds_copy") == 6, "select into");
}

static void test_transactions(lm_conn *c)
{
	lm_error err = { 0 };
	lm_stmt *s = NULL;

	CHECK(m->rollback(c, &err) == 0, "rollback with nothing open: %s", err.message);
	CHECK(m->commit(c, &err) == LM_EFAIL && strcmp(err.message, "cannot commit: no transaction is open") == 0,
		"commit with nothing open: %s", err.message);
	/* rollback undoes DDL and data */
	CHECK(m->begin(c, 0, &err) == 0, "begin: %s", err.message);
	CHECK(m->begin(c, 0, &err) == LM_EFAIL, "begin twice");
	OK(c, "CREATE TABLE rb (a int); INSERT INTO rb VALUES (1)");
	OK(c, "ALTER TABLE vals ADD COLUMN extra int");
	CHECK(m->rollback(c, &err) == 0, "rollback: %s", err.message);
	CHECK(query_int(c, "SELECT count(*) FROM pg_tables WHERE schemaname = 'luamig_test' AND tablename = 'rb'") == 0,
		"table rolled back");
	CHECK(query_int(c, "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'luamig_test' "
			   "AND table_name = 'vals' AND column_name = 'extra'") == 0, "column rolled back");
	CHECK(m->rollback(c, &err) == 0, "second rollback: %s", err.message);

	/* commit keeps */
	CHECK(m->begin(c, 0, &err) == 0, "begin: %s", err.message);
	OK(c, "CREATE TABLE kept (a int)");
	CHECK(m->commit(c, &err) == 0, "commit: %s", err.message);
	CHECK(query_int(c, "SELECT count(*) FROM pg_tables WHERE schemaname = 'luamig_test' AND tablename = 'kept'") == 1, "table committed");

	/* the guard */
	static const char *const refused[] = {
		"COMMIT", "  /* c */ -- x\n commit;", "END", "ABORT", "ROLLBACK", "rollback work",
		"ROLLBACK AND CHAIN", "BEGIN", "START TRANSACTION", "SELECT 1; COMMIT",
		"PREPARE TRANSACTION 'x'", "COMMIT PREPARED 'x'", NULL,
	};
	static const char *const allowed[] = {
		"SAVEPOINT a", "ROLLBACK TO SAVEPOINT a", "ROLLBACK TO a", "rollback transaction to savepoint a",
		"RELEASE SAVEPOINT a", "SELECT 'COMMIT'", "DO $$ BEGIN PERFORM 1; END $$",
		"CREATE FUNCTION atomic_f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; "
		"SELECT atomic_f()",
		"CREATE OR REPLACE PROCEDURE atomic_p() LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; END",
		NULL,
	};
	m->guard_transactions(c, 1);
	CHECK(m->begin(c, 0, &err) == 0, "begin: %s", err.message);
	for (int i = 0; refused[i]; i++) {
		int rc = run(c, refused[i], &err);
		CHECK(rc == LM_EFAIL && strcmp(err.message, GUARD) == 0, "'%s' not refused: %s", refused[i],
			err.message);
	}
	for (int i = 0; allowed[i]; i++) {
		int rc = run(c, allowed[i], &err);
		CHECK(rc == 0, "'%s' refused: %s", allowed[i], err.message);
	}
	CHECK(m->prepare(c, "COMMIT", &s, &err) == 0, "prepare: %s", err.message);
	CHECK(m->step(s, &err) == LM_EFAIL && strcmp(err.message, GUARD) == 0, "prepared commit: %s",
		err.message);
	m->finalize(s);
	s = NULL;
	CHECK(m->exec(c, "COMMIT", (lm_value[]){ v_int(1) }, 1, NULL, &err) == LM_EFAIL &&
		strcmp(err.message, GUARD) == 0, "commit with params: %s", err.message);
	/* the transaction is still open: the runner commits */
	CHECK(m->commit(c, &err) == 0, "commit after refusals: %s", err.message);
	CHECK(query_int(c, "SELECT atomic_f()") == 2, "atomic function committed");

	/* BEGIN is a word a function may be named: only BEGIN ATOMIC holds semicolons */
	CHECK(m->begin(c, 0, &err) == 0, "begin: %s", err.message);
	CHECK(run(c, "CREATE FUNCTION begin() RETURNS int LANGUAGE sql AS 'SELECT 1'; COMMIT", &err) == LM_EFAIL &&
		strcmp(err.message, GUARD) == 0, "commit after a function named begin: %s", err.message);
	CHECK(m->rollback(c, &err) == 0, "rollback: %s", err.message);
	m->guard_transactions(c, 0);
	/* guard off: allowed */
	OK(c, "BEGIN");
	OK(c, "COMMIT");
}

static void test_errors(lm_conn *c)
{
	lm_error err = { 0 };
	lm_stmt *s = NULL;
	CHECK(run(c, "SELEC 1", &err) == LM_EFAIL && strcmp(err.message, "syntax error at or near \"SELEC\"") == 0,
		"syntax error: %s", err.message);
	CHECK(run(c, "SELECT * FROM no_such_table", &err) == LM_EFAIL &&
		strcmp(err.message, "relation \"no_such_table\" does not exist") == 0, "missing table: %s",
		err.message);
	OK(c, "CREATE TABLE u (id int PRIMARY KEY)");
	OK(c, "INSERT INTO u VALUES (1)");
	CHECK(m->exec(c, "INSERT INTO u VALUES (?)", (lm_value[]){ v_int(1) }, 1, NULL, &err) == LM_EFAIL &&
		strcmp(err.message, "duplicate key value violates unique constraint \"u_pkey\" "
				    "(detail: Key (id)=(1) already exists.)") == 0, "unique: %s", err.message);
	CHECK(run(c, "DO $$ BEGIN RAISE EXCEPTION E'two\\nlines' USING DETAIL = E'd1\\nd2'; END $$", &err) ==
		LM_EFAIL && strcmp(err.message, "two; lines (detail: d1; d2)") == 0, "multi-line: %s", err.message);
	CHECK(m->prepare(c, "SELEC ?", &s, &err) == 0, "prepare defers errors: %s", err.message);
	CHECK(m->bind(s, (lm_value[]){ v_int(1) }, 1, &err) == 0, "bind: %s", err.message);
	CHECK(m->step(s, &err) == LM_EFAIL && strcmp(err.message, "syntax error at or near \"SELEC\"") == 0,
		"step error: %s", err.message);
	CHECK(m->step(s, &err) == 0, "step after an error");
	m->finalize(s);
	/* a describe that fails inside a transaction leaves it usable */
	CHECK(m->begin(c, 0, &err) == 0, "begin: %s", err.message);
	CHECK(m->prepare(c, "SELECT * FROM no_such_table", &s, &err) == 0, "prepare: %s", err.message);
	CHECK(m->column_count(s) == 0, "no columns described");
	m->finalize(s);
	CHECK(query_int(c, "SELECT 41 + 1") == 42, "transaction still usable");
	CHECK(m->commit(c, &err) == 0, "commit: %s", err.message);
	/* COPY has nothing to read from */
	CHECK(run(c, "COPY u FROM STDIN", &err) == LM_EFAIL && strstr(err.message, "not supported"),
		"copy: %s", err.message);
	CHECK(query_int(c, "SELECT count(*) FROM u") == 1, "connection usable after copy");
	CHECK(run(c, "", &err) == 0, "empty sql: %s", err.message);
	CHECK(run(c, "-- only a comment", &err) == 0, "comment only: %s", err.message);
}

static void test_lock(const char *url, lm_conn *a)
{
	lm_conn *b = NULL;
	lm_error err = { 0 };
	char pid[32], want[128];
	CHECK(open_url(&b, url, &err) == 0, "open: %s", err.message);
	query(a, "SELECT pg_backend_pid()", NULL, 0, pid, sizeof pid);
	snprintf(want, sizeof want, ": held by server process %s (application 'luamig', user '", pid);
	m->unlock(a); /* holding nothing */
	CHECK(m->lock(a, "public.luamig_version", 5, &err) == 0, "lock: %s", err.message);
	CHECK(m->lock(a, "public.luamig_version", 5, &err) == 0, "lock again: %s", err.message);
	CHECK(m->lock(b, "public.luamig_version", 0.3, &err) == LM_EFAIL &&
		strncmp(err.message, "timed out after 0.3 s waiting for the migration lock 'public.luamig_version'",
			strlen("timed out after 0.3 s waiting for the migration lock 'public.luamig_version'")) == 0 &&
		strstr(err.message, want), "second runner: %s", err.message);
	CHECK(m->lock(b, "other.luamig_version", 0, &err) == 0, "another name: %s", err.message);
	m->unlock(b);
	/* the lock outlives transactions */
	CHECK(m->begin(a, 0, &err) == 0 && m->rollback(a, &err) == 0, "transaction: %s", err.message);
	CHECK(m->lock(b, "public.luamig_version", 0, &err) == LM_EFAIL, "lock survived a rollback");
	m->unlock(a);
	CHECK(m->lock(b, "public.luamig_version", 0, &err) == 0, "after unlock: %s", err.message);
	m->close(b); /* the session's end frees it */
	CHECK(m->lock(a, "public.luamig_version", 2, &err) == 0, "after close: %s", err.message);
	m->unlock(a);
	m->unlock(a);
}

int main(void)
{
	const char *url = getenv("LUAMIG_TEST_PG_URL");
	lm_conn *c = NULL;
	lm_error err = { 0 };
	if (!url || !*url) {
		printf("skipped: LUAMIG_TEST_PG_URL not set\n");
		printf("0 passed, 0 failed\n");
		return 0;
	}
	test_connect(url);
	if (open_url(&c, url, &err) != 0) {
		fprintf(stderr, "cannot connect: %s\n", err.message);
		return 1;
	}
	run(c, "DROP SCHEMA IF EXISTS luamig_test CASCADE", &err);
	OK(c, "CREATE SCHEMA luamig_test");
	OK(c, "SET search_path = luamig_test");
	test_values(c);
	test_placeholders(c);
	test_streaming(c);
	test_kinds(c);
	test_transactions(c);
	test_errors(c);
	test_lock(url, c);
	OK(c, "DROP SCHEMA luamig_test CASCADE");
	run(c, "DROP ROLE IF EXISTS luamig_auth", &err);
	m->close(c);
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
