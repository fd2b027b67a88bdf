/* cmd_show.c - the read-only views: current, history, heads, branches, show.
 * Lines follow Alembic's formats (Script.cmd_format and log_entry) so that
 * scripts grepping Alembic's output keep working.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "runner.h"

enum {
	SHOW_BRANCHES = 1 << 0, /* " (label, …)" */
	SHOW_DOC = 1 << 1,      /* ", message" */
	SHOW_PARENTS = 1 << 2,  /* "down -> rev" */
	SHOW_TREE = 1 << 3,     /* " (branchpoint)", " (mergepoint)" */
};

static void add_ids(lm_buf *b, const lm_graph *g, const int *revs, int n)
{
	for (int i = 0; i < n; i++)
		lm_buf_printf(b, "%s%s", i ? ", " : "", lm_graph_id(g, revs[i]));
}

static void add_down(lm_buf *b, const lm_graph *g, int rev)
{
	const int *parents;
	int n = lm_graph_parents(g, rev, &parents);
	if (n == 0)
		lm_buf_puts(b, "<base>");
	add_ids(b, g, parents, n);
}

/* depends_on as the file declares it (ids or branch labels), as Alembic shows it */
static void add_depends_on(lm_buf *b, const lm_script *s)
{
	for (int i = 0; i < s->ndepends_on; i++)
		lm_buf_printf(b, "%s%s", i ? ", " : "", s->depends_on[i]);
}

static void add_labels(lm_buf *b, const lm_graph *g, int rev)
{
	const char *const *labels;
	int n = lm_graph_labels(g, rev, &labels);
	for (int i = 0; i < n; i++)
		lm_buf_printf(b, "%s%s", i ? ", " : "", labels[i]);
}

static int in_rows(const int *rows, int nrows, int rev)
{
	for (int i = 0; i < nrows; i++)
		if (rows[i] == rev)
			return 1;
	return 0;
}

/* One line about rev, as Alembic's Script._head_only renders it. */
static void add_short(lm_buf *b, const lm_app *app, int rev, int what,
	const int *current, int ncurrent)
{
	const lm_graph *g = app->graph;
	int flags = lm_graph_flags(g, rev);
	if (what & SHOW_PARENTS) {
		add_down(b, g, rev);
		if (app->scripts[rev].ndepends_on) {
			lm_buf_puts(b, " (");
			add_depends_on(b, &app->scripts[rev]);
			lm_buf_puts(b, ")");
		}
		lm_buf_puts(b, " -> ");
	}
	lm_buf_puts(b, lm_graph_id(g, rev));
	const char *const *labels;
	if ((what & SHOW_BRANCHES) && lm_graph_labels(g, rev, &labels) > 0) {
		lm_buf_puts(b, " (");
		add_labels(b, g, rev);
		lm_buf_puts(b, ")");
	}
	if (flags & LM_REV_REAL_HEAD)
		lm_buf_puts(b, " (head)");
	else if (flags & LM_REV_HEAD)
		lm_buf_puts(b, " (effective head)");
	if (current && in_rows(current, ncurrent, rev))
		lm_buf_puts(b, " (current)");
	if (what & SHOW_TREE) {
		if (flags & LM_REV_BRANCH_POINT)
			lm_buf_puts(b, " (branchpoint)");
		if (flags & LM_REV_MERGE_POINT)
			lm_buf_puts(b, " (mergepoint)");
	}
	if (what & SHOW_DOC) {
		char msg[512];
		lm_buf_printf(b, ", %s", lm_app_message(app, rev, msg, sizeof msg));
	}
}

/* The verbose entry, as Alembic's Script.log_entry renders it. */
static void add_long(lm_buf *b, const lm_app *app, int rev, const int *current,
	int ncurrent)
{
	const lm_graph *g = app->graph;
	int flags = lm_graph_flags(g, rev);
	const int *children;
	int nchildren = lm_graph_children(g, rev, &children);
	const char *const *labels;
	lm_buf_printf(b, "Rev: %s%s%s%s%s\n", lm_graph_id(g, rev),
		flags & LM_REV_HEAD ? " (head)" : "",
		flags & LM_REV_BRANCH_POINT ? " (branchpoint)" : "",
		flags & LM_REV_MERGE_POINT ? " (mergepoint)" : "",
		current && in_rows(current, ncurrent, rev) ? " (current)" : "");
	lm_buf_puts(b, flags & LM_REV_MERGE_POINT ? "Merges: " : "Parent: ");
	add_down(b, g, rev);
	lm_buf_puts(b, "\n");
	if (app->scripts[rev].ndepends_on) {
		lm_buf_puts(b, "Also depends on: ");
		add_depends_on(b, &app->scripts[rev]);
		lm_buf_puts(b, "\n");
	}
	if (flags & LM_REV_BRANCH_POINT) {
		lm_buf_puts(b, "Branches into: ");
		add_ids(b, g, children, nchildren);
		lm_buf_puts(b, "\n");
	}
	if (lm_graph_labels(g, rev, &labels) > 0) {
		lm_buf_puts(b, "Branch names: ");
		add_labels(b, g, rev);
		lm_buf_puts(b, "\n");
	}
	lm_buf_printf(b, "Path: %s\n\n", app->scripts[rev].path);
	/* the whole doc comment, indented */
	const char *doc = app->scripts[rev].doc;
	while (*doc) {
		size_t n = strcspn(doc, "\n");
		lm_buf_printf(b, "    %.*s\n", (int)n, doc);
		doc += n + (doc[n] == '\n');
	}
}

static void add_json_ids(lm_buf *b, const lm_graph *g, const int *revs, int n)
{
	lm_buf_puts(b, "[");
	for (int i = 0; i < n; i++) {
		const char *id = lm_graph_id(g, revs[i]);
		lm_buf_puts(b, i ? ", " : "");
		lm_buf_json(b, id, strlen(id));
	}
	lm_buf_puts(b, "]");
}

/* One revision as a JSON object: the facts the text lines show. */
static void add_json(lm_buf *b, const lm_app *app, int rev, const int *current,
	int ncurrent)
{
	const lm_graph *g = app->graph;
	const int *parents;
	const char *const *labels;
	int flags = lm_graph_flags(g, rev), n;
	char msg[512];
	const char *id = lm_graph_id(g, rev);
	lm_buf_puts(b, "{\"revision\": ");
	lm_buf_json(b, id, strlen(id));
	lm_buf_puts(b, ", \"down_revisions\": ");
	n = lm_graph_parents(g, rev, &parents);
	add_json_ids(b, g, parents, n);
	lm_buf_puts(b, ", \"depends_on\": [");
	for (int i = 0; i < app->scripts[rev].ndepends_on; i++) {
		const char *dep = app->scripts[rev].depends_on[i];
		lm_buf_puts(b, i ? ", " : "");
		lm_buf_json(b, dep, strlen(dep));
	}
	lm_buf_puts(b, "]");
	lm_buf_puts(b, ", \"branch_labels\": [");
	n = lm_graph_labels(g, rev, &labels);
	for (int i = 0; i < n; i++) {
		lm_buf_puts(b, i ? ", " : "");
		lm_buf_json(b, labels[i], strlen(labels[i]));
	}
	lm_buf_printf(b, "], \"head\": %s, \"branch_point\": %s, \"merge_point\": %s",
		flags & LM_REV_HEAD ? "true" : "false",
		flags & LM_REV_BRANCH_POINT ? "true" : "false",
		flags & LM_REV_MERGE_POINT ? "true" : "false");
	if (current)
		lm_buf_printf(b, ", \"current\": %s", in_rows(current, ncurrent, rev) ? "true" : "false");
	lm_app_message(app, rev, msg, sizeof msg);
	lm_buf_puts(b, ", \"message\": ");
	lm_buf_json(b, msg, strlen(msg));
	lm_buf_puts(b, ", \"path\": ");
	lm_buf_json(b, app->scripts[rev].path, strlen(app->scripts[rev].path));
	lm_buf_puts(b, "}");
}

/* Prints revs as text lines (render) or, with --json, one JSON array. */
static void add_list(lm_buf *b, const lm_app *app, const lm_cli *cli,
	const int *revs, int n, const int *current, int ncurrent, int what)
{
	if (cli->json)
		lm_buf_puts(b, "[");
	for (int i = 0; i < n; i++) {
		if (cli->json) {
			lm_buf_puts(b, i ? ",\n " : "");
			add_json(b, app, revs[i], current, ncurrent);
		} else if (cli->verbose) {
			add_long(b, app, revs[i], current, ncurrent);
			lm_buf_puts(b, "\n");
		} else {
			add_short(b, app, revs[i], what, current, ncurrent);
			lm_buf_puts(b, "\n");
		}
	}
	if (cli->json)
		lm_buf_puts(b, "]\n");
}

static int print_buf(lm_buf *b, lm_error *err)
{
	int rc = b->failed ? lm_error_set(err, LM_ENOMEM, "out of memory") : 0;
	if (rc == 0)
		fputs(lm_buf_str(b), stdout);
	lm_buf_free(b);
	return rc;
}

static int open_scripts(lm_app *app, const lm_cli *cli, lm_error *err)
{
	int rc = lm_app_open(app, cli->config, cli->url, err);
	return rc ? rc : lm_app_load_scripts(app, 0, err);
}

/* What `current` shows, as Alembic's get_all_current: of the rows and
 * everything they stand on (through depends_on too), the revisions with no
 * child among them. Usually the rows; a revision the rows depend on shows
 * as an effective head of its own branch. *out is the caller's. */
static int applied_branch_heads(const lm_graph *g, const lm_revs *rows, lm_revs *out)
{
	int n = lm_graph_count(g), top = 0, rc = 0;
	char *applied = calloc((size_t)n + 1, 1);
	int *stack = malloc(((size_t)n + 1) * sizeof *stack);
	out->revs = malloc(((size_t)n + 1) * sizeof *out->revs);
	out->n = 0;
	if (!applied || !stack || !out->revs) {
		rc = LM_ENOMEM;
		goto done;
	}
	for (int i = 0; i < rows->n; i++)
		if (!applied[rows->revs[i]]) {
			applied[rows->revs[i]] = 1;
			stack[top++] = rows->revs[i];
		}
	while (top > 0) {
		const int *up;
		int rev = stack[--top];
		for (int pass = 0; pass < 2; pass++) {
			int m = pass ? lm_graph_dependencies(g, rev, &up) : lm_graph_parents(g, rev, &up);
			for (int j = 0; j < m; j++)
				if (!applied[up[j]]) {
					applied[up[j]] = 1;
					stack[top++] = up[j];
				}
		}
	}
	for (int rev = 0; rev < n; rev++) {
		const int *children;
		int m = lm_graph_children(g, rev, &children), covered = 0;
		for (int j = 0; j < m && !covered; j++)
			covered = applied[children[j]];
		if (applied[rev] && !covered)
			out->revs[out->n++] = rev;
	}
done:
	free(applied);
	free(stack);
	if (rc != 0)
		lm_revs_free(out);
	return rc;
}

int lm_cmd_current(const lm_cli *cli, lm_error *err)
{
	lm_app app;
	lm_revs rows = {0}, shown = {0};
	lm_buf b = {0};
	int rc;
	if ((rc = open_scripts(&app, cli, err)) != 0 ||
		(rc = lm_app_connect(&app, err)) != 0 ||
		(rc = lm_version_rows(&app, &rows, err)) != 0)
		goto done;
	if ((rc = applied_branch_heads(app.graph, &rows, &shown)) != 0) {
		lm_error_set(err, rc, "out of memory");
		goto done;
	}
	if (cli->verbose && !cli->json)
		lm_buf_printf(&b, "Current revision(s) for %s:\n", app.url.display);
	add_list(&b, &app, cli, shown.revs, shown.n, NULL, 0, SHOW_TREE);
	rc = print_buf(&b, err);
done:
	lm_buf_free(&b);
	lm_revs_free(&rows);
	lm_revs_free(&shown);
	lm_app_close(&app);
	return rc;
}

int lm_cmd_history(const lm_cli *cli, lm_error *err)
{
	lm_app app;
	lm_revs rows = {0}, revs = {0};
	lm_buf b = {0};
	int rc;
	int needs_db = cli->indicate_current ||
		(cli->range && strstr(cli->range, "current"));
	if ((rc = open_scripts(&app, cli, err)) != 0)
		goto done;
	if (needs_db && ((rc = lm_app_connect(&app, err)) != 0 ||
			       (rc = lm_version_rows(&app, &rows, err)) != 0))
		goto done;
	if ((rc = lm_graph_history(app.graph, cli->range, rows.revs, rows.n, &revs, err)) != 0)
		goto done;
	add_list(&b, &app, cli, revs.revs, revs.n,
		cli->indicate_current ? rows.revs : NULL, rows.n,
		SHOW_BRANCHES | SHOW_DOC | SHOW_PARENTS | SHOW_TREE);
	rc = print_buf(&b, err);
done:
	lm_buf_free(&b);
	lm_revs_free(&revs);
	lm_revs_free(&rows);
	lm_app_close(&app);
	return rc;
}

int lm_cmd_heads(const lm_cli *cli, lm_error *err)
{
	lm_app app;
	lm_buf b = {0};
	int rc;
	if ((rc = open_scripts(&app, cli, err)) == 0) {
		const int *heads;
		int n = lm_graph_heads(app.graph, &heads);
		add_list(&b, &app, cli, heads, n, NULL, 0, SHOW_BRANCHES);
		rc = print_buf(&b, err);
	}
	lm_buf_free(&b);
	lm_app_close(&app);
	return rc;
}

int lm_cmd_branches(const lm_cli *cli, lm_error *err)
{
	lm_app app;
	lm_revs revs = {0};
	lm_buf b = {0};
	int rc;
	if ((rc = open_scripts(&app, cli, err)) != 0 ||
		(rc = lm_graph_history(app.graph, NULL, NULL, 0, &revs, err)) != 0)
		goto done;
	for (int i = 0; i < revs.n; i++) {
		int rev = revs.revs[i];
		if (!(lm_graph_flags(app.graph, rev) & LM_REV_BRANCH_POINT))
			continue;
		if (cli->verbose)
			add_long(&b, &app, rev, NULL, 0);
		else
			add_short(&b, &app, rev, SHOW_BRANCHES | SHOW_TREE, NULL, 0);
		lm_buf_puts(&b, "\n");
		const int *children;
		int n = lm_graph_children(app.graph, rev, &children);
		size_t indent = strlen(lm_graph_id(app.graph, rev));
		for (int c = 0; c < n; c++) {
			lm_buf_printf(&b, "%*s -> ", (int)indent, "");
			add_short(&b, &app, children[c],
				SHOW_BRANCHES | SHOW_TREE | (cli->verbose ? SHOW_DOC : 0), NULL, 0);
			lm_buf_puts(&b, "\n");
		}
		lm_buf_puts(&b, "\n");
	}
	rc = print_buf(&b, err);
done:
	lm_buf_free(&b);
	lm_revs_free(&revs);
	lm_app_close(&app);
	return rc;
}

int lm_cmd_show(const lm_cli *cli, lm_error *err)
{
	lm_app app;
	lm_revs revs = {0};
	lm_buf b = {0};
	int rc;
	if ((rc = open_scripts(&app, cli, err)) != 0)
		goto done;
	if (!strcmp(cli->args[0], "current")) {
		if ((rc = lm_app_connect(&app, err)) != 0 ||
			(rc = lm_version_rows(&app, &revs, err)) != 0)
			goto done;
	} else if ((rc = lm_graph_resolve(app.graph, cli->args[0], NULL, 0, &revs, err)) != 0) {
		goto done;
	}
	for (int i = 0; i < revs.n; i++) {
		add_long(&b, &app, revs.revs[i], NULL, 0);
		lm_buf_puts(&b, "\n");
	}
	rc = print_buf(&b, err);
done:
	lm_buf_free(&b);
	lm_revs_free(&revs);
	lm_app_close(&app);
	return rc;
}
