/* url.h - database URLs (SPEC §2) parsed into their parts.
 *
 *   sqlite:///relative/path.db   sqlite:////absolute/path.db
 *   sqlite://  sqlite:///:memory:  (in-memory)
 *   postgresql://user:password@host:port/dbname?sslmode=disable&...
 *   postgres://…, postgresql+psycopg2://…, sqlite+pysqlite://… (+driver ignored)
 */
#ifndef LM_URL_H
#define LM_URL_H

#include "error.h"

typedef enum lm_backend {
	LM_BACKEND_SQLITE,
	LM_BACKEND_POSTGRESQL,
} lm_backend;

typedef struct lm_url_option {
	char *key;   /* owned, percent-decoded */
	char *value; /* owned, percent-decoded */
} lm_url_option;

typedef struct lm_url {
	lm_backend backend;
	char *path;     /* owned; SQLite: file path as written (relative or absolute), ":memory:" in memory */
	char *user;     /* owned or NULL; percent-decoded */
	char *password; /* owned or NULL; percent-decoded; never printed */
	char *host;     /* owned or NULL */
	char *port;     /* owned or NULL */
	char *dbname;   /* owned or NULL */
	lm_url_option *options; /* owned; query options in order */
	int noptions;
	char *display;  /* owned: the URL with the password shown as *** */
} lm_url;

/* Parses text into *out (zeroed first). SQLite relative paths are resolved
 * against base_dir (may be NULL: keep as written). */
int lm_url_parse(lm_url *out, const char *text, const char *base_dir, lm_error *err);
void lm_url_free(lm_url *u); /* accepts NULL; frees the members, not u */

/* Copies text into out (size bytes) with any password replaced by ***, for
 * URL-looking text inside driver messages. */
void lm_url_mask(char *out, size_t size, const char *text);

#endif
