/* host.h - the LuaJIT host: config files, revision files, and running a
 * revision's upgrade()/downgrade() against a connection.
 *
 * All Lua binding lives in host.c (wrk's rule: one file holds it). Every call
 * into Lua is protected; an error from a migration names its file and line.
 */
#ifndef LM_HOST_H
#define LM_HOST_H

#include "buf.h"
#include "driver.h"
#include "error.h"

typedef struct lm_host lm_host;

/* Where the SQL of an operation goes: run on a connection (online) or
 * printed (--sql). The one path both share. */
typedef struct lm_sink {
	int (*emit)(void *ud, const char *sql, const lm_value *params, int nparams,
		lm_error *err);
	void *ud;
} lm_sink;

/* luamig.lua, read into C. Paths are joined with the config file's folder. */
typedef struct lm_config {
	char *path;            /* owned: the config file as named */
	char *dir;             /* owned: its folder ("." for a bare name) */
	char *script_location; /* owned */
	char **version_locations; /* owned, each owned */
	int nversion_locations;
	char *url;             /* owned: config url, DATABASE_URL or --url */
	char *version_table;   /* owned */
	char *version_table_schema; /* owned or NULL */
	char *file_template;   /* owned */
	char *models;          /* owned: declared schema for --autogenerate and check */
	int truncate_slug_length;
	int transaction_per_migration;
	int render_as_batch;
	int lock;
	double lock_timeout;
} lm_config;

void lm_config_free(lm_config *c); /* accepts NULL; frees members */

/* A revision file as loaded. */
typedef struct lm_script {
	char *path;        /* owned: display path, also the Lua chunk name */
	char *id;          /* owned */
	char **down;       /* owned: down_revision entries */
	int ndown;
	char **depends_on; /* owned */
	int ndepends_on;
	char **labels;     /* owned: branch_labels */
	int nlabels;
	char *doc;         /* owned: the leading --[[ … ]] comment, trimmed; "" if none */
	int transactional; /* 0 when the file sets transactional = false */
	int ref;           /* Lua registry reference of the table holding upgrade/downgrade;
	                      LUA_NOREF until the file has run (lm_host_prepare_script) */
	char *text;        /* owned: the file's text, kept for lm_host_prepare_script when the
	                      loader was asked to (NULL otherwise, and once it has run) */
	size_t size;
} lm_script;

int lm_host_new(lm_host **out, lm_error *err);
void lm_host_free(lm_host *h); /* accepts NULL */

/* Reads config_path (a Lua chunk returning a table). url_override (--url)
 * wins over DATABASE_URL, which wins over the file's url. */
int lm_host_load_config(lm_host *h, const char *config_path,
	const char *url_override, lm_config *out, lm_error *err);

/* Loads one revision file into *out (zeroed first): name, relative to the
 * folder open as `folder` (or AT_FDCWD), is the file; path its name in messages and in
 * out->path. Attributes written as plain literals are read from the text
 * without running it; with keep_text that text stays in out->text, so that
 * running the file does not read it again. */
int lm_host_load_script(lm_host *h, int folder, const char *name, const char *path,
	int keep_text, lm_script *out, lm_error *err);

/* Runs a revision file loaded from its text alone, so its upgrade() and
 * downgrade() exist; a syntax error shows here. No-op once it has run. */
int lm_host_prepare_script(lm_host *h, lm_script *s, lm_error *err);
void lm_script_free(lm_host *h, lm_script *s); /* accepts NULL s; frees members */

/* What a revision runs against. conn is NULL offline. x holds -x pairs as
 * "key=value" strings. */
typedef struct lm_run_context {
	const char *dialect;
	int offline;
	lm_conn *conn;       /* borrowed */
	lm_sink sink;
	const char *const *x;
	int nx;
} lm_run_context;

/* Makes ctx the context of the revisions run from now on (op.get_bind(),
 * op.get_context(), where op.* sends its SQL). Call again with NULL when
 * the command is done with it. */
int lm_host_set_context(lm_host *h, const lm_run_context *ctx, lm_error *err);

/* Calls the revision's upgrade() (upgrade = 1) or downgrade(). On failure
 * the message is "<file>:<line>: <what went wrong>". */
int lm_host_run_script(lm_host *h, lm_script *s, int upgrade, lm_error *err);

/* Finalizes every statement a migration left open (conn:prepare, a
 * conn:rows loop left early). The runner calls it before each commit or
 * rollback. */
void lm_host_close_statements(lm_host *h);

/* Compares the declared schema (config "models") with the live database on
 * conn through luamig.autogen. upgrades/downgrades get the Lua bodies of a
 * revision's upgrade()/downgrade(); diffs gets one line per difference and
 * *ndiffs their count. */
int lm_host_autogenerate(lm_host *h, lm_conn *conn, const lm_config *config,
	lm_buf *upgrades, lm_buf *downgrades, lm_buf *diffs, int *ndiffs,
	lm_error *err);

#endif
