/* cmd_script.c - the commands that write files: init, revision, merge.
 *
 * New revision files come from the project's script.lua.tmpl with ${name}
 * placeholders, named by file_template (strftime codes plus {rev} and
 * {slug}), with a random 12-hex-digit id unless --rev-id names one.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "autogen.h"
#include "buf.h"
#include "cli.h"

static const char default_config[] =
	"-- luamig configuration. Every key is optional; the defaults are shown.\n"
	"return {\n"
	"  -- folder holding versions/ and script.lua.tmpl\n"
	"  script_location = \"migrations\",\n"
	"  -- the DATABASE_URL environment variable and --url override this\n"
	"  url = \"sqlite:///./data/app.db\",\n"
	"  -- \"alembic_version\" adopts a database Alembic managed\n"
	"  version_table = \"luamig_version\",\n"
	"  -- new files: YYYYMMDD_HHMMSS_<rev>_<slug>.lua\n"
	"  file_template = \"%Y%m%d_%H%M%S_{rev}_{slug}\",\n"
	"  -- true: each revision commits with its version row\n"
	"  transaction_per_migration = true,\n"
	"}\n";

static const char default_template[] =
	"--[[ ${message}\n"
	"\n"
	"Revision ID: ${revision}\n"
	"Revises: ${revises}\n"
	"Create Date: ${create_date}\n"
	"]]\n"
	"revision = ${revision_literal}\n"
	"down_revision = ${down_revision}\n"
	"branch_labels = ${branch_labels}\n"
	"depends_on = ${depends_on}\n"
	"\n"
	"function upgrade()\n"
	"${upgrades}\n"
	"end\n"
	"\n"
	"function downgrade()\n"
	"${downgrades}\n"
	"end\n";

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static int make_dir(const char *path, lm_error *err)
{
	if (mkdir(path, 0777) != 0 && errno != EEXIST)
		return lm_error_set(err, LM_EFAIL, "cannot create folder '%s': %s", path,
			strerror(errno));
	return 0;
}

/* Writes text to a new file; never overwrites one. */
static int write_new_file(const char *path, const char *text, lm_error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0666);
	if (fd < 0)
		return lm_error_set(err, LM_EFAIL, "cannot create '%s': %s", path,
			strerror(errno));
	size_t len = strlen(text);
	ssize_t n = write(fd, text, len);
	if (close(fd) != 0 || n != (ssize_t)len) {
		unlink(path);
		return lm_error_set(err, LM_EFAIL, "cannot write '%s'", path);
	}
	return 0;
}

int lm_cmd_init(const lm_cli *cli, lm_error *err)
{
	const char *dir = cli->nargs ? cli->args[0] : ".";
	char config[4096], scripts[4096], versions[4096], tmpl[4096];
	int rc;
	if (strlen(dir) > 3000)
		return lm_error_set(err, LM_EUSAGE, "folder name too long");
	snprintf(config, sizeof config, "%s/luamig.lua", dir);
	snprintf(scripts, sizeof scripts, "%s/migrations", dir);
	snprintf(versions, sizeof versions, "%s/migrations/versions", dir);
	snprintf(tmpl, sizeof tmpl, "%s/migrations/script.lua.tmpl", dir);
	if (exists(config))
		return lm_error_set(err, LM_EFAIL, "'%s' already exists", config);
	if (exists(versions))
		return lm_error_set(err, LM_EFAIL, "'%s' already exists", versions);
	if ((rc = make_dir(dir, err)) || (rc = make_dir(scripts, err)) ||
		(rc = make_dir(versions, err)) ||
		(rc = write_new_file(tmpl, default_template, err)) ||
		(rc = write_new_file(config, default_config, err)))
		return rc;
	printf("Created %s, %s and %s/\n", config, tmpl, versions);
	printf("Next: luamig revision -m \"create users\"\n");
	return 0;
}

/* Alembic's slug: the message's word characters joined by "_", lower-cased,
 * cut on a word boundary at truncate_slug_length. */
static void make_slug(char *out, size_t size, const char *message, int limit)
{
	size_t n = 0;
	int in_word = 0;
	for (const unsigned char *p = (const unsigned char *)message; *p; p++) {
		int word = isalnum(*p) || *p == '_' || *p >= 0x80;
		if (word) {
			if (!in_word && n > 0 && n + 1 < size)
				out[n++] = '_';
			if (n + 1 < size)
				out[n++] = (char)tolower(*p);
		}
		in_word = word;
	}
	out[n] = '\0';
	if (limit > 0 && n > (size_t)limit) {
		/* cut at the last word boundary within the limit */
		size_t cut = (size_t)limit;
		while (cut > 0 && out[cut] != '_')
			cut--;
		out[cut ? cut : (size_t)limit] = '\0';
	}
}

static void random_id(char out[13])
{
	unsigned char bytes[6] = {0};
	FILE *f = fopen("/dev/urandom", "rb");
	if (!f || fread(bytes, 1, sizeof bytes, f) != sizeof bytes) {
		struct timeval tv;
		gettimeofday(&tv, NULL);
		uint64_t x = (uint64_t)tv.tv_sec * 1000003u ^ (uint64_t)tv.tv_usec ^ (uint64_t)getpid() << 20;
		memcpy(bytes, &x, sizeof bytes);
	}
	if (f)
		fclose(f);
	for (int i = 0; i < 6; i++)
		snprintf(out + 2 * i, 3, "%02x", bytes[i]);
}

/* A Lua literal for a list of ids: nil, "a" or { "a", "b" }. */
static void add_lua_list(lm_buf *b, const char *const *ids, int n)
{
	if (n == 0) {
		lm_buf_puts(b, "nil");
		return;
	}
	if (n > 1)
		lm_buf_puts(b, "{ ");
	for (int i = 0; i < n; i++)
		lm_buf_printf(b, "%s\"%s\"", i ? ", " : "", ids[i]);
	if (n > 1)
		lm_buf_puts(b, " }");
}

typedef struct new_revision {
	const char *id;
	const char *message;
	const char *const *parents;
	int nparents;
	const char *branch_label; /* or NULL */
	const char *const *depends_on;
	int ndepends_on;
	const char *dir;          /* the version location it goes into */
	const char *upgrades;     /* bodies from --autogenerate, or NULL */
	const char *downgrades;
} new_revision;

/* Fills the template's ${name} placeholders. */
static void render_template(lm_buf *out, const char *tmpl, const new_revision *r,
	const char *create_date)
{
	for (const char *p = tmpl; *p;) {
		const char *end;
		if (p[0] != '$' || p[1] != '{' || !(end = strchr(p, '}'))) {
			lm_buf_add(out, p++, 1);
			continue;
		}
		size_t n = (size_t)(end - p - 2);
		const char *name = p + 2;
#define IS(s) (n == strlen(s) && strncmp(name, s, n) == 0)
		if (IS("message")) {
			/* keep the doc comment closed whatever the message holds */
			for (const char *m = r->message; *m; m++)
				lm_buf_puts(out, m[0] == ']' && m[1] == ']' ? "] " : (char[]){*m, 0});
		} else if (IS("revision")) {
			lm_buf_puts(out, r->id);
		} else if (IS("revision_literal")) {
			lm_buf_printf(out, "\"%s\"", r->id);
		} else if (IS("revises")) {
			for (int i = 0; i < r->nparents; i++)
				lm_buf_printf(out, "%s%s", i ? ", " : "", r->parents[i]);
		} else if (IS("down_revision")) {
			add_lua_list(out, r->parents, r->nparents);
		} else if (IS("branch_labels")) {
			if (r->branch_label)
				lm_buf_printf(out, "{ \"%s\" }", r->branch_label);
			else
				lm_buf_puts(out, "nil");
		} else if (IS("depends_on")) {
			add_lua_list(out, r->depends_on, r->ndepends_on);
		} else if (IS("create_date")) {
			lm_buf_puts(out, create_date);
		} else if (IS("upgrades")) {
			lm_buf_puts(out, r->upgrades ? r->upgrades : "");
		} else if (IS("downgrades")) {
			lm_buf_puts(out, r->downgrades ? r->downgrades : "");
		} else {
			lm_buf_add(out, p, (size_t)(end - p + 1)); /* unknown: leave as written */
		}
#undef IS
		p = end + 1;
	}
}

static int write_revision(lm_app *app, const new_revision *r, lm_error *err)
{
	char date[64], stamp[256], slug[256], name[512], path[4096], tmplpath[4096];
	struct timeval tv;
	struct tm tm;
	lm_buf text = {0}, file = {0};
	char *tmpl = NULL;
	int rc;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(date + strlen(date), sizeof date - strlen(date), ".%06ld", (long)tv.tv_usec);
	make_slug(slug, sizeof slug, r->message, app->config.truncate_slug_length);

	/* file name: strftime codes, then {rev} and {slug} */
	strftime(stamp, sizeof stamp, app->config.file_template, &tm);
	for (const char *p = stamp; *p;) {
		if (!strncmp(p, "{rev}", 5)) {
			lm_buf_puts(&file, r->id);
			p += 5;
		} else if (!strncmp(p, "{slug}", 6)) {
			lm_buf_puts(&file, slug);
			p += 6;
		} else {
			lm_buf_add(&file, p++, 1);
		}
	}
	snprintf(name, sizeof name, "%s", lm_buf_str(&file));
	size_t len = strlen(name);
	while (len && name[len - 1] == '_') /* no message: no trailing "_" */
		name[--len] = '\0';
	snprintf(path, sizeof path, "%s/%s.lua", r->dir, name);

	snprintf(tmplpath, sizeof tmplpath, "%s/script.lua.tmpl", app->config.script_location);
	FILE *f = fopen(tmplpath, "rb");
	if (f) {
		lm_buf t = {0};
		char chunk[4096];
		size_t n;
		while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
			lm_buf_add(&t, chunk, n);
		fclose(f);
		tmpl = strdup(lm_buf_str(&t));
		lm_buf_free(&t);
	}
	render_template(&text, tmpl ? tmpl : default_template, r, date);
	if ((rc = write_new_file(path, lm_buf_str(&text), err)) == 0)
		printf("%s\n", path);
	free(tmpl);
	lm_buf_free(&text);
	lm_buf_free(&file);
	return rc;
}

/* Checks a new id as Alembic does, and that no file uses it yet. */
static int check_new_id(const lm_app *app, const char *id, lm_error *err)
{
	if (!*id || strpbrk(id, "@-+: /\\\"'"))
		return lm_error_set(err, LM_EUSAGE,
			"revision id '%s' is not allowed: use letters, digits and '_'", id);
	if (strlen(id) > 32)
		return lm_error_set(err, LM_EUSAGE,
			"revision id '%s' is longer than 32 characters, the width of the version table's column",
			id);
	int rev = lm_graph_find(app->graph, id);
	if (rev >= 0)
		return lm_error_set(err, LM_EFAIL, "revision id '%s' is already used by '%s'",
			id, lm_graph_origin(app->graph, rev));
	return 0;
}

/* The new revision's id (--rev-id or random, checked) and the version
 * location it goes into (--version-path, needed when there are several). */
static int new_id_and_folder(const lm_app *app, const lm_cli *cli, char id[64],
	const char **dir, lm_error *err)
{
	if (cli->rev_id)
		snprintf(id, 64, "%s", cli->rev_id);
	else
		random_id(id);
	*dir = cli->version_path;
	if (!*dir && app->config.nversion_locations > 1)
		return lm_error_set(err, LM_EUSAGE,
			"several version locations are configured; name one with --version-path");
	if (!*dir)
		*dir = app->config.version_locations[0];
	return check_new_id(app, id, err);
}

int lm_cmd_revision(const lm_cli *cli, lm_error *err)
{
	lm_app app;
	lm_revs parents = {0};
	lm_buf upgrades = {0}, downgrades = {0};
	char id[64];
	int rc, ndiffs = 0;
	const char *parent_ids[64];
	if ((rc = lm_app_open(&app, cli->config, cli->url, err)) != 0 ||
		(rc = lm_app_load_scripts(&app, 0, err)) != 0)
		goto done;
	const char *head = cli->head ? cli->head : "head";
	if ((rc = lm_graph_resolve(app.graph, head, NULL, 0, &parents, err)) != 0) {
		if (!cli->head && strstr(err->message, "Multiple heads"))
			lm_error_set(err, LM_EFAIL,
				"Multiple heads are present; please specify the head revision on which the new revision should be based, or perform a merge.");
		goto done;
	}
	for (int i = 0; i < parents.n; i++) {
		int flags = lm_graph_flags(app.graph, parents.revs[i]);
		if (!(flags & LM_REV_HEAD) && !cli->splice) {
			rc = lm_error_set(err, LM_EFAIL,
				"Revision %s is not a head revision; please specify --splice to create a new branch from this revision",
				lm_graph_id(app.graph, parents.revs[i]));
			goto done;
		}
		if (i < 64)
			parent_ids[i] = lm_graph_id(app.graph, parents.revs[i]);
	}
	const char *dir;
	if ((rc = new_id_and_folder(&app, cli, id, &dir, err)) != 0)
		goto done;
	/* --depends-on: prefixes become full ids; branch labels stay as written */
	const char *depends_on[64];
	int ndepends_on = 0;
	for (int i = 0; i < cli->ndepends_on && i < 64; i++) {
		const char *arg = cli->depends_on[i];
		lm_revs dep = {0};
		if ((rc = lm_graph_resolve(app.graph, arg, NULL, 0, &dep, err)) != 0)
			goto done;
		const char *id = dep.n == 1 ? lm_graph_id(app.graph, dep.revs[0]) : arg;
		depends_on[ndepends_on++] = strncmp(id, arg, strlen(arg)) == 0 ? id : arg;
		lm_revs_free(&dep);
	}
	if (cli->autogenerate &&
		(rc = lm_autogenerate(&app, &upgrades, &downgrades, &ndiffs, err)) != 0)
		goto done;
	new_revision r = {
		.id = id,
		.message = cli->message ? cli->message : "",
		.parents = parent_ids,
		.nparents = parents.n < 64 ? parents.n : 64,
		.branch_label = cli->branch_label,
		.depends_on = depends_on,
		.ndepends_on = ndepends_on,
		.dir = dir,
		.upgrades = lm_buf_str(&upgrades),
		.downgrades = lm_buf_str(&downgrades),
	};
	rc = write_revision(&app, &r, err);
done:
	lm_buf_free(&upgrades);
	lm_buf_free(&downgrades);
	lm_revs_free(&parents);
	lm_app_close(&app);
	return rc;
}

int lm_cmd_merge(const lm_cli *cli, lm_error *err)
{
	lm_app app;
	char id[64];
	const char *parent_ids[64];
	int nparents = 0, rc;
	if ((rc = lm_app_open(&app, cli->config, cli->url, err)) != 0 ||
		(rc = lm_app_load_scripts(&app, 0, err)) != 0)
		goto done;
	for (int a = 0; a < cli->nargs; a++) {
		lm_revs revs = {0};
		if ((rc = lm_graph_resolve(app.graph, cli->args[a], NULL, 0, &revs, err)) != 0)
			goto done;
		for (int i = 0; i < revs.n && nparents < 64; i++) {
			const char *pid = lm_graph_id(app.graph, revs.revs[i]);
			int seen = 0;
			for (int j = 0; j < nparents; j++)
				seen |= !strcmp(parent_ids[j], pid);
			if (!seen)
				parent_ids[nparents++] = pid;
		}
		lm_revs_free(&revs);
	}
	if (nparents < 2) {
		rc = lm_error_set(err, LM_EFAIL,
			"nothing to merge: '%s' names %d revision%s; a merge needs two or more",
			cli->args[0], nparents, nparents == 1 ? "" : "s");
		goto done;
	}
	const char *dir;
	if ((rc = new_id_and_folder(&app, cli, id, &dir, err)) != 0)
		goto done;
	new_revision r = {
		.id = id,
		.message = cli->message ? cli->message : "",
		.parents = parent_ids,
		.nparents = nparents,
		.branch_label = cli->branch_label,
		.dir = dir,
	};
	rc = write_revision(&app, &r, err);
done:
	lm_app_close(&app);
	return rc;
}
