/* test_url.c - URL parsing and password masking (core/url.c). */
#include <stdio.h>
#include <string.h>

#include "url.h"

static int passed, failed;

#define CHECK(cond) \
	do { \
		if (cond) \
			passed++; \
		else { \
			failed++; \
			printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		} \
	} while (0)

static int streq(const char *a, const char *b)
{
	return a && b ? strcmp(a, b) == 0 : a == b;
}

static void test_sqlite(void)
{
	lm_url u;
	lm_error err = {0};
	CHECK(lm_url_parse(&u, "sqlite:///./data/app.db", "/proj", &err) == 0);
	CHECK(u.backend == LM_BACKEND_SQLITE);
	CHECK(streq(u.path, "/proj/data/app.db"));
	lm_url_free(&u);

	CHECK(lm_url_parse(&u, "sqlite:///data/app.db", ".", &err) == 0);
	CHECK(streq(u.path, "data/app.db"));
	lm_url_free(&u);

	CHECK(lm_url_parse(&u, "sqlite:////var/lib/app.db", "/proj", &err) == 0);
	CHECK(streq(u.path, "/var/lib/app.db"));
	lm_url_free(&u);

	CHECK(lm_url_parse(&u, "sqlite://", NULL, &err) == 0);
	CHECK(streq(u.path, ":memory:"));
	lm_url_free(&u);

	CHECK(lm_url_parse(&u, "sqlite:///:memory:", "/proj", &err) == 0);
	CHECK(streq(u.path, ":memory:"));
	lm_url_free(&u);

	CHECK(lm_url_parse(&u, "sqlite+pysqlite:///my%20db.sqlite", NULL, &err) == 0);
	CHECK(streq(u.path, "my db.sqlite"));
	lm_url_free(&u);

	CHECK(lm_url_parse(&u, "sqlite:/x.db", NULL, &err) == LM_EFAIL);
	CHECK(streq(err.message,
		"bad database url 'sqlite:/x.db': sqlite urls look like 'sqlite:///relative.db' or 'sqlite:////absolute.db'"));
}

static void test_postgresql(void)
{
	lm_url u;
	lm_error err = {0};
	CHECK(lm_url_parse(&u,
		"postgresql+psycopg2://bob:p%40ss:w@db.example:5433/app?sslmode=disable&application_name=x%20y",
		NULL, &err) == 0);
	CHECK(u.backend == LM_BACKEND_POSTGRESQL);
	CHECK(streq(u.user, "bob"));
	CHECK(streq(u.password, "p@ss:w"));
	CHECK(streq(u.host, "db.example"));
	CHECK(streq(u.port, "5433"));
	CHECK(streq(u.dbname, "app"));
	CHECK(u.noptions == 2);
	CHECK(u.noptions == 2 && streq(u.options[0].key, "sslmode") && streq(u.options[0].value, "disable"));
	CHECK(u.noptions == 2 && streq(u.options[1].value, "x y"));
	CHECK(strstr(u.display, "p%40ss") == NULL && strstr(u.display, "***") != NULL);
	lm_url_free(&u);

	CHECK(lm_url_parse(&u, "postgres://localhost/db", NULL, &err) == 0);
	CHECK(u.user == NULL && u.password == NULL && streq(u.host, "localhost") && u.port == NULL);
	lm_url_free(&u);

	CHECK(lm_url_parse(&u, "postgresql:///db", NULL, &err) == 0);
	CHECK(u.host == NULL && streq(u.dbname, "db"));
	lm_url_free(&u);

	CHECK(lm_url_parse(&u, "postgresql://u:secret@[::1]:5432/db", NULL, &err) == 0);
	CHECK(streq(u.host, "::1") && streq(u.port, "5432"));
	lm_url_free(&u);

	CHECK(lm_url_parse(&u, "postgresql://u:secret@h:x1/db", NULL, &err) == LM_EFAIL);
	CHECK(strstr(err.message, "secret") == NULL);
	CHECK(streq(err.message, "bad database url 'postgresql://u:***@h:x1/db': port 'x1' is not a number"));

	CHECK(lm_url_parse(&u, "mysql://root:pw@h/db", NULL, &err) == LM_EFAIL);
	CHECK(streq(err.message,
		"bad database url 'mysql://root:***@h/db': unknown database 'mysql'; luamig speaks sqlite and postgresql"));
}

static void test_mask(void)
{
	char out[256];
	lm_url_mask(out, sizeof out, "could not connect to postgresql://a:b@c/d and postgres://x@y/z");
	CHECK(streq(out, "could not connect to postgresql://a:***@c/d and postgres://x@y/z"));
	lm_url_mask(out, sizeof out, "no url here");
	CHECK(streq(out, "no url here"));
	lm_url_mask(out, 8, "postgresql://a:b@c/d");
	CHECK(strlen(out) == 7);
}

int main(void)
{
	test_sqlite();
	test_postgresql();
	test_mask();
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
