/* cmd_autogen.c - comparing models.lua with the database: `check`, and the
 * part of `revision --autogenerate` that fills upgrade()/downgrade().
 *
 * Relies on luamig.autogen (through lm_host_autogenerate) for the comparison
 * and the rendering; this file decides when it may run (the database must be
 * at every head) and prints the results.
 */
#include <stdio.h>
#include <string.h>

#include "autogen.h"
#include "cli.h"
#include "runner.h"

/* Alembic refuses to autogenerate against a database that is not at all
 * heads: the comparison would be against an old schema. */
static int require_up_to_date(lm_app *app, lm_error *err)
{
	lm_revs rows = {0};
	const int *heads;
	int nheads = lm_graph_heads(app->graph, &heads), rc;
	if ((rc = lm_version_rows(app, &rows, err)) != 0)
		return rc;
	int up_to_date = rows.n == nheads;
	for (int i = 0; i < nheads && up_to_date; i++) {
		int found = 0;
		for (int j = 0; j < rows.n; j++)
			found |= rows.revs[j] == heads[i];
		up_to_date = found;
	}
	lm_revs_free(&rows);
	if (!up_to_date)
		return lm_error_set(err, LM_EFAIL,
			"Target database is not up to date. Run 'luamig upgrade head' first.");
	return 0;
}

int lm_autogenerate(lm_app *app, lm_buf *upgrades, lm_buf *downgrades,
	int *ndiffs, lm_error *err)
{
	lm_buf diffs = {0};
	int rc;
	if ((rc = lm_app_connect(app, err)) != 0 ||
		(rc = require_up_to_date(app, err)) != 0 ||
		(rc = lm_host_autogenerate(app->host, app->conn, &app->config,
			 upgrades, downgrades, &diffs, ndiffs, err)) != 0)
		goto done;
	if (*ndiffs == 0)
		fputs("No changes in schema detected.\n", stderr);
	else
		fputs(lm_buf_str(&diffs), stderr);
done:
	lm_buf_free(&diffs);
	return rc;
}

int lm_cmd_check(const lm_cli *cli, lm_error *err)
{
	lm_app app;
	lm_buf up = {0}, down = {0}, diffs = {0}, out = {0};
	int ndiffs = 0, rc;
	if ((rc = lm_app_open(&app, cli->config, cli->url, err)) != 0 ||
		(rc = lm_app_load_scripts(&app, 0, err)) != 0 ||
		(rc = lm_app_connect(&app, err)) != 0 ||
		(rc = require_up_to_date(&app, err)) != 0 ||
		(rc = lm_host_autogenerate(app.host, app.conn, &app.config, &up, &down,
			 &diffs, &ndiffs, err)) != 0)
		goto done;
	if (cli->json) {
		lm_buf_puts(&out, "{\"differences\": [");
		const char *p = lm_buf_str(&diffs);
		for (int i = 0; *p; i++) {
			size_t n = strcspn(p, "\n");
			lm_buf_puts(&out, i ? ", " : "");
			lm_buf_json(&out, p, n);
			p += n + (p[n] == '\n');
		}
		lm_buf_puts(&out, "]}\n");
	} else if (ndiffs == 0) {
		lm_buf_puts(&out, "No new upgrade operations detected.\n");
	} else {
		lm_buf_printf(&out, "New upgrade operations detected (%d):\n", ndiffs);
		lm_buf_puts(&out, lm_buf_str(&diffs));
	}
	fputs(lm_buf_str(&out), stdout);
	if (ndiffs > 0)
		rc = lm_error_set(err, LM_EFAIL,
			"the database does not match %s; run 'luamig revision --autogenerate -m MSG'",
			app.config.models);
done:
	lm_buf_free(&up);
	lm_buf_free(&down);
	lm_buf_free(&diffs);
	lm_buf_free(&out);
	lm_app_close(&app);
	return rc;
}
