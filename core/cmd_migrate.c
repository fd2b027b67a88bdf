/* cmd_migrate.c - upgrade, downgrade and stamp: the commands that change the
 * database. They load the revisions, hand the runner a target and print one
 * progress line per revision on stderr.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "runner.h"

static void print_step(void *ud, const lm_app *app, const lm_step *step,
	const int *rows_before, int nrows_before)
{
	(void)ud, (void)rows_before, (void)nrows_before;
	lm_buf line = {0};
	lm_app_describe_step(app, step, &line);
	fprintf(stderr, "Running %s\n", lm_buf_str(&line));
	lm_buf_free(&line);
}

static int migrate(const lm_cli *cli, lm_migrate_kind kind, lm_error *err)
{
	lm_app app;
	const char *const *targets = cli->args;
	int ntargets = cli->nargs, rc;
	char from[256], to[256];
	const char *range_target[1] = {to};
	lm_migrate_options opt = {
		.x = cli->x, .nx = cli->nx, .purge = cli->purge,
		.on_step = print_step,
	};
	if (cli->sql) {
		if (kind == LM_MIGRATE_STAMP && cli->purge)
			return lm_error_set(err, LM_EUSAGE, "can't use --purge with --sql");
		opt.sql = stdout;
		/* --sql FROM:TO starts the script at FROM instead of base */
		const char *colon = strchr(targets[0], ':');
		if (colon) {
			if (ntargets > 1)
				return lm_error_set(err, LM_EUSAGE,
					"stamp with --sql takes one FROM:TO range");
			snprintf(from, sizeof from, "%.*s", (int)(colon - targets[0]), targets[0]);
			snprintf(to, sizeof to, "%s", colon + 1);
			opt.sql_from = from;
			targets = range_target;
		} else if (kind == LM_MIGRATE_DOWNGRADE) {
			return lm_error_set(err, LM_EUSAGE,
				"downgrade with --sql requires <fromrev>:<torev>");
		}
	} else if (strchr(targets[0], ':')) {
		return lm_error_set(err, LM_EUSAGE,
			"range '%s' is only allowed with --sql", targets[0]);
	}
	if ((rc = lm_app_open(&app, cli->config, cli->url, err)) == 0 &&
		(rc = lm_app_load_scripts(&app, 1, err)) == 0)
		rc = lm_migrate(&app, kind, targets, ntargets, &opt, err);
	lm_app_close(&app);
	return rc;
}

int lm_cmd_upgrade(const lm_cli *cli, lm_error *err)
{
	return migrate(cli, LM_MIGRATE_UPGRADE, err);
}

int lm_cmd_downgrade(const lm_cli *cli, lm_error *err)
{
	return migrate(cli, LM_MIGRATE_DOWNGRADE, err);
}

int lm_cmd_stamp(const lm_cli *cli, lm_error *err)
{
	return migrate(cli, LM_MIGRATE_STAMP, err);
}
