/* main.c - the luamig command line: parses options, runs one command, prints
 * its error as one line and turns it into the exit code (0 ok, 1 failure,
 * 2 usage). The only place that exits.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct command {
	const char *name;
	int (*run)(const lm_cli *cli, lm_error *err);
	const char *usage;
	const char *summary;
	int min_args, max_args; /* positional arguments; -1 = any number */
} command;

static const command commands[] = {
	{"init", lm_cmd_init, "init [DIR]",
		"create luamig.lua, migrations/script.lua.tmpl and migrations/versions/ in DIR (default .)", 0, 1},
	{"revision", lm_cmd_revision,
		"revision -m MSG [--autogenerate] [--head REV] [--splice] [--branch-label L] [--depends-on REV]... [--rev-id ID] [--version-path DIR]",
		"write a new revision file and print its path", 0, 0},
	{"merge", lm_cmd_merge, "merge -m MSG [--branch-label L] [--rev-id ID] REV REV... | heads",
		"write a revision that merges several heads", 1, -1},
	{"upgrade", lm_cmd_upgrade, "upgrade REV [--sql]",
		"run upgrades up to REV (head, heads, +N, an id or prefix, label@head); --sql [FROM:]TO prints the SQL", 1, 1},
	{"downgrade", lm_cmd_downgrade, "downgrade REV [--sql]",
		"run downgrades down to REV (-N, an id, base, label@-1); --sql FROM:TO prints the SQL", 1, 1},
	{"stamp", lm_cmd_stamp, "stamp REV... [--purge] [--sql]",
		"set the version table to REV without running migrations", 1, -1},
	{"current", lm_cmd_current, "current [-v] [--json]", "show the revision(s) the database is at", 0, 0},
	{"history", lm_cmd_history, "history [-r RANGE] [-v] [-i] [--json]",
		"list revisions, newest first; -i marks the current ones", 0, 0},
	{"heads", lm_cmd_heads, "heads [-v] [--json]", "show the head revisions", 0, 0},
	{"branches", lm_cmd_branches, "branches [-v]", "show the branch points", 0, 0},
	{"show", lm_cmd_show, "show REV", "show one revision in full", 1, 1},
	{"check", lm_cmd_check, "check [--json]",
		"exit 1 listing the differences between models.lua and the database, 0 if none", 0, 0},
	{NULL, NULL, NULL, NULL, 0, 0},
};

static void print_usage(FILE *out)
{
	fprintf(out,
		"usage: luamig [-c FILE] [--url URL] [-x KEY=VALUE]... COMMAND [ARGS]\n"
		"\n"
		"Database migrations in Lua, for SQLite and PostgreSQL.\n"
		"\n"
		"commands:\n");
	for (const command *c = commands; c->name; c++)
		fprintf(out, "  %-10s %s\n", c->name, c->summary);
	fprintf(out,
		"\n"
		"options (before or after the command):\n"
		"  -c, --config FILE   config file (default: $LUAMIG_CONFIG or luamig.lua)\n"
		"  --url URL           database URL; wins over $DATABASE_URL and the config's url\n"
		"  -x KEY=VALUE        passed to migrations as op.get_context().x.KEY\n"
		"  -h, --help          this text, or a command's usage with COMMAND --help\n"
		"  --version           print the version\n"
		"\n"
		"Run 'luamig COMMAND --help' for a command's options.\n");
}

/* "-1", "+2": relative revisions, which look like options but are not. */
static int is_relative(const char *s)
{
	if ((s[0] != '-' && s[0] != '+') || !s[1])
		return 0;
	for (const char *p = s + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return 0;
	return 1;
}

static int usage_error(lm_error *err, const char *fmt, const char *arg)
{
	lm_error_set(err, LM_EUSAGE, fmt, arg);
	return LM_EUSAGE;
}

/* Options that take a value: where to store it. Repeated ones append. */
static const char **option_slot(lm_cli *cli, const char *name, int *repeat)
{
	*repeat = 0;
	if (!strcmp(name, "-c") || !strcmp(name, "--config")) return &cli->config;
	if (!strcmp(name, "--url")) return &cli->url;
	if (!strcmp(name, "-m") || !strcmp(name, "--message")) return &cli->message;
	if (!strcmp(name, "--rev-id")) return &cli->rev_id;
	if (!strcmp(name, "--head")) return &cli->head;
	if (!strcmp(name, "--version-path")) return &cli->version_path;
	if (!strcmp(name, "--branch-label")) return &cli->branch_label;
	if (!strcmp(name, "-r") || !strcmp(name, "--rev-range")) return &cli->range;
	if (!strcmp(name, "-x")) { *repeat = 1; return NULL; }
	if (!strcmp(name, "--depends-on")) { *repeat = 2; return NULL; }
	return NULL;
}

static int *flag_slot(lm_cli *cli, const char *name)
{
	if (!strcmp(name, "--sql")) return &cli->sql;
	if (!strcmp(name, "-v") || !strcmp(name, "--verbose")) return &cli->verbose;
	if (!strcmp(name, "-i") || !strcmp(name, "--indicate-current")) return &cli->indicate_current;
	if (!strcmp(name, "--purge")) return &cli->purge;
	if (!strcmp(name, "--splice")) return &cli->splice;
	if (!strcmp(name, "--json")) return &cli->json;
	if (!strcmp(name, "--autogenerate")) return &cli->autogenerate;
	return NULL;
}

static int parse(lm_cli *cli, int argc, char **argv, int *help, lm_error *err)
{
	for (int i = 1; i < argc; i++) {
		char *arg = argv[i];
		const char *value = NULL;
		int repeat, *flag;
		if (arg[0] != '-' || is_relative(arg) || !arg[1]) {
			if (!cli->command)
				cli->command = arg;
			else
				cli->args[cli->nargs++] = arg;
			continue;
		}
		if (!strcmp(arg, "--")) {
			while (++i < argc)
				cli->args[cli->nargs++] = argv[i];
			break;
		}
		if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
			*help = 1;
			continue;
		}
		char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
		if (eq) { /* --name=value */
			*eq = '\0';
			value = eq + 1;
		}
		if ((flag = flag_slot(cli, arg))) {
			if (value)
				return usage_error(err, "option '%s' takes no value", arg);
			*flag = 1;
			continue;
		}
		const char **slot = option_slot(cli, arg, &repeat);
		if (!slot && !repeat)
			return usage_error(err, "unknown option '%s'; see 'luamig --help'", arg);
		if (!value) {
			if (i + 1 >= argc)
				return usage_error(err, "option '%s' needs a value", arg);
			value = argv[++i];
		}
		if (repeat == 1)
			cli->x[cli->nx++] = value;
		else if (repeat == 2)
			cli->depends_on[cli->ndepends_on++] = value;
		else
			*slot = value;
	}
	return 0;
}

int main(int argc, char **argv)
{
	lm_cli cli = {0};
	lm_error err = {0};
	int help = 0, rc;
	const char *slots[3 * (size_t)argc + 1];
	cli.args = slots;
	cli.x = slots + argc;
	cli.depends_on = slots + 2 * argc;

	/* Keep freed heap at hand rather than giving it back and faulting it in
	 * again: SQLite frees and regrows its schema after every DDL statement. */
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_TOP_PAD, 1 << 20);

	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("luamig %s\n", LM_VERSION);
		return 0;
	}
	if ((rc = parse(&cli, argc, argv, &help, &err)) != 0)
		goto fail;
	if (!cli.command) {
		print_usage(help ? stdout : stderr);
		return help ? 0 : 2;
	}
	const command *cmd = commands;
	while (cmd->name && strcmp(cmd->name, cli.command) != 0)
		cmd++;
	if (!cmd->name) {
		rc = usage_error(&err, "unknown command '%s'; see 'luamig --help'", cli.command);
		goto fail;
	}
	if (help) {
		printf("usage: luamig %s\n\n%s\n", cmd->usage, cmd->summary);
		return 0;
	}
	if (cli.nargs < cmd->min_args ||
		(cmd->max_args >= 0 && cli.nargs > cmd->max_args)) {
		lm_error_set(&err, LM_EUSAGE, "usage: luamig %s", cmd->usage);
		rc = LM_EUSAGE;
		goto fail;
	}
	if (!cli.config) {
		const char *env = getenv("LUAMIG_CONFIG");
		cli.config = env && *env ? env : "luamig.lua";
	}
	if ((rc = cmd->run(&cli, &err)) == 0)
		return 0;
fail:
	fflush(stdout);
	if (rc == LM_ENOMEM && !err.message[0])
		lm_error_set(&err, LM_ENOMEM, "out of memory");
	fprintf(stderr, "luamig: error: %s\n", err.message);
	return rc == LM_EUSAGE ? 2 : 1;
}
