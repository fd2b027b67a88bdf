/* runner.h - running plans: the version table, transactions, and the order in
 * which revisions' upgrade()/downgrade() run.
 *
 * The runner decides when and how; the revisions (through op.*) decide what
 * SQL to run. A revision and its version-table update commit together
 * (transaction_per_migration) or the whole command is one transaction.
 */
#ifndef LM_RUNNER_H
#define LM_RUNNER_H

#include <stdio.h>

#include "app.h"

typedef enum lm_migrate_kind {
	LM_MIGRATE_UPGRADE,
	LM_MIGRATE_DOWNGRADE,
	LM_MIGRATE_STAMP,
} lm_migrate_kind;

typedef struct lm_migrate_options {
	const char *const *x; /* -x key=value pairs, borrowed */
	int nx;
	int purge;            /* stamp --purge */
	FILE *sql;            /* --sql: print the script here instead of connecting */
	const char *sql_from; /* --sql FROM:TO: the revision(s) to start from, NULL = base */
	/* Told before each revision runs (for the CLI's progress lines). */
	void (*on_step)(void *ud, const lm_app *app, const lm_step *step,
		const int *rows_before, int nrows_before);
	void *ud;
} lm_migrate_options;

/* Reads the version table into graph revision indexes (*out is the
 * caller's). A row naming a revision no file defines is an error. A
 * missing version table is no rows. */
int lm_version_rows(lm_app *app, lm_revs *out, lm_error *err);

/* upgrade/downgrade to targets[0], or stamp targets[0..ntargets). Needs
 * lm_app_load_scripts; connects unless opt->sql is set. */
int lm_migrate(lm_app *app, lm_migrate_kind kind, const char *const *targets,
	int ntargets, const lm_migrate_options *opt, lm_error *err);

#endif
