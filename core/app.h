/* app.h - one command's world: config, revision files, graph, connection.
 *
 * Commands open what they need, in this order: lm_app_open (config and the
 * Lua host), lm_app_load_scripts (revision files and the graph),
 * lm_app_connect (the database). lm_app_close undoes whatever was opened.
 */
#ifndef LM_APP_H
#define LM_APP_H

#include "buf.h"
#include "driver.h"
#include "graph.h"
#include "host.h"
#include "url.h"

typedef struct lm_app {
	lm_host *host;       /* owned */
	lm_config config;    /* owned members */
	lm_script *scripts;  /* owned: index i is graph revision i */
	int nscripts;
	lm_graph *graph;     /* owned */
	lm_url url;          /* owned members; parsed by lm_app_connect or lm_app_parse_url */
	int have_url;
	lm_conn *conn;       /* owned */
} lm_app;

int lm_app_open(lm_app *app, const char *config_path, const char *url_override,
	lm_error *err);
/* Reads the revision files and builds the graph; with keep_texts (commands
 * that run revisions) each file's text stays for its run. */
int lm_app_load_scripts(lm_app *app, int keep_texts, lm_error *err);
int lm_app_parse_url(lm_app *app, lm_error *err);
int lm_app_connect(lm_app *app, lm_error *err);
void lm_app_close(lm_app *app);

/* The revision's message: the first paragraph of its doc comment, on one line. */
const char *lm_app_message(const lm_app *app, int rev, char *buf, size_t size);

/* "upgrade 0001 -> abc123, message" (downgrade: "abc123 -> 0001, …"): how
 * progress lines and --sql comments name a step, as Alembic does. */
void lm_app_describe_step(const lm_app *app, const lm_step *step, lm_buf *out);

#endif
