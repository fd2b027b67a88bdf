/* cli.h - the command line as parsed by main.c, and the commands.
 *
 * The cmd_*.c files are the CLI layer: they may print (results on stdout,
 * progress on stderr); errors go back to main in an lm_error.
 */
#ifndef LM_CLI_H
#define LM_CLI_H

#include "error.h"

#define LM_VERSION "0.1.0"

typedef struct lm_cli {
	const char *config;   /* -c/--config, or $LUAMIG_CONFIG, or "luamig.lua" */
	const char *url;      /* --url */
	const char **x;       /* -x key=value, in order */
	int nx;
	const char *command;
	const char **args;    /* positional arguments after the command */
	int nargs;
	const char *message;  /* -m */
	const char *rev_id;
	const char *head;
	const char *version_path;
	const char *branch_label;
	const char **depends_on;
	int ndepends_on;
	const char *range;    /* history -r */
	int sql, verbose, indicate_current, purge, splice, json, autogenerate;
} lm_cli;

int lm_cmd_init(const lm_cli *cli, lm_error *err);
int lm_cmd_revision(const lm_cli *cli, lm_error *err);
int lm_cmd_merge(const lm_cli *cli, lm_error *err);
int lm_cmd_upgrade(const lm_cli *cli, lm_error *err);
int lm_cmd_downgrade(const lm_cli *cli, lm_error *err);
int lm_cmd_stamp(const lm_cli *cli, lm_error *err);
int lm_cmd_current(const lm_cli *cli, lm_error *err);
int lm_cmd_history(const lm_cli *cli, lm_error *err);
int lm_cmd_heads(const lm_cli *cli, lm_error *err);
int lm_cmd_branches(const lm_cli *cli, lm_error *err);
int lm_cmd_show(const lm_cli *cli, lm_error *err);
int lm_cmd_check(const lm_cli *cli, lm_error *err);

#endif
