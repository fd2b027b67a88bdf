/* app.c - opening a command's world (see app.h): reading the config, scanning
 * the version locations in Alembic's load order (locations in configured
 * order, file names sorted within each), building the graph, connecting.
 */
#include "app.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int lm_app_open(lm_app *app, const char *config_path, const char *url_override,
	lm_error *err)
{
	int rc;
	memset(app, 0, sizeof *app);
	if ((rc = lm_host_new(&app->host, err)) != 0)
		return rc;
	return lm_host_load_config(app->host, config_path, url_override,
		&app->config, err);
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.lua files of dir, sorted by name; *out and its strings are the caller's. */
static int list_revision_files(const char *dir, char ***out, int *count, lm_error *err)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	int n = 0, cap = 0;
	*out = NULL;
	*count = 0;
	if (!d)
		return lm_error_set(err, LM_EFAIL,
			"version folder '%s' does not exist; run 'luamig init' or fix 'script_location' in the config",
			dir);
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len < 5 || strcmp(e->d_name + len - 4, ".lua") != 0 || e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **grown = realloc(names, (size_t)cap * sizeof *names);
			if (!grown)
				break;
			names = grown;
		}
		names[n++] = strdup(e->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(names, (size_t)n, sizeof *names, compare_names);
	*out = names;
	*count = n;
	return 0;
}

int lm_app_load_scripts(lm_app *app, int keep_texts, lm_error *err)
{
	int rc = 0, cap = 0;
	if ((rc = lm_graph_new(&app->graph)) != 0)
		return lm_error_set(err, rc, "out of memory");
	for (int l = 0; l < app->config.nversion_locations && rc == 0; l++) {
		const char *dir = app->config.version_locations[l];
		char **names;
		int n;
		if ((rc = list_revision_files(dir, &names, &n, err)) != 0)
			break;
		/* files opened relative to the folder: no walk of its path per file */
		int folder = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		for (int i = 0; i < n; i++) {
			if (rc == 0) {
				size_t len = strlen(dir) + strlen(names[i]) + 2;
				char *path = malloc(len);
				snprintf(path, len, "%s/%s", dir, names[i]);
				if (app->nscripts == cap) {
					cap = cap ? cap * 2 : 64;
					app->scripts = realloc(app->scripts,
						(size_t)cap * sizeof *app->scripts);
				}
				lm_script *s = &app->scripts[app->nscripts];
				rc = lm_host_load_script(app->host, folder >= 0 ? folder : AT_FDCWD,
					folder >= 0 ? names[i] : path, path, keep_texts, s, err);
				free(path);
				if (rc == 0) {
					app->nscripts++;
					lm_revision_spec spec = {
						.id = s->id,
						.down_revisions = (const char *const *)s->down,
						.ndown_revisions = s->ndown,
						.depends_on = (const char *const *)s->depends_on,
						.ndepends_on = s->ndepends_on,
						.branch_labels = (const char *const *)s->labels,
						.nbranch_labels = s->nlabels,
						.origin = s->path,
					};
					rc = lm_graph_add(app->graph, &spec, err);
				}
			}
			free(names[i]);
		}
		free(names);
		if (folder >= 0)
			close(folder);
	}
	if (rc == 0)
		rc = lm_graph_build(app->graph, err);
	return rc;
}

int lm_app_parse_url(lm_app *app, lm_error *err)
{
	if (app->have_url)
		return 0;
	int rc = lm_url_parse(&app->url, app->config.url, app->config.dir, err);
	app->have_url = rc == 0;
	return rc;
}

int lm_app_connect(lm_app *app, lm_error *err)
{
	int rc;
	if ((rc = lm_app_parse_url(app, err)) != 0)
		return rc;
	return lm_driver_open(&app->conn, &app->url, err);
}

void lm_app_close(lm_app *app)
{
	if (app->conn)
		app->conn->methods->close(app->conn);
	for (int i = 0; i < app->nscripts; i++)
		lm_script_free(app->host, &app->scripts[i]);
	free(app->scripts);
	lm_graph_free(app->graph);
	lm_url_free(&app->url);
	lm_config_free(&app->config);
	lm_host_free(app->host);
	memset(app, 0, sizeof *app);
}

const char *lm_app_message(const lm_app *app, int rev, char *buf, size_t size)
{
	const char *doc = app->scripts[rev].doc;
	size_t n = 0;
	/* the first paragraph, its lines joined by spaces */
	for (const char *p = doc; *p && n + 1 < size; p++) {
		if (*p == '\n') {
			if (p[1] == '\n' || (p[1] == '\r' && p[2] == '\n'))
				break;
			buf[n++] = ' ';
		} else if (*p != '\r') {
			buf[n++] = *p;
		}
	}
	buf[n] = '\0';
	return buf;
}

static void add_parents(const lm_graph *g, int rev, lm_buf *out)
{
	const int *parents;
	int n = lm_graph_parents(g, rev, &parents);
	if (n == 0)
		lm_buf_puts(out, "<base>");
	for (int i = 0; i < n; i++)
		lm_buf_printf(out, "%s%s", i ? ", " : "", lm_graph_id(g, parents[i]));
}

void lm_app_describe_step(const lm_app *app, const lm_step *step, lm_buf *out)
{
	char msg[512];
	const char *id = lm_graph_id(app->graph, step->rev);
	if (step->upgrade) {
		lm_buf_puts(out, "upgrade ");
		add_parents(app->graph, step->rev, out);
		lm_buf_printf(out, " -> %s", id);
	} else {
		lm_buf_printf(out, "downgrade %s -> ", id);
		add_parents(app->graph, step->rev, out);
	}
	lm_buf_printf(out, ", %s", lm_app_message(app, step->rev, msg, sizeof msg));
}
