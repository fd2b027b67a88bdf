/* runner.c - running plans (see runner.h).
 *
 * Relies on the graph for what to run and in which order, on the host for
 * running a revision, and on a sink for where SQL goes: the driver online,
 * a FILE* with literal values for --sql. The version table has Alembic's
 * layout (version_num VARCHAR(32), one row per head) and is written through
 * the same sink as the migrations' own SQL, so both modes share one path.
 */
#include "runner.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* ---- sinks -------------------------------------------------------------- */

static int online_emit(void *ud, const char *sql, const lm_value *params,
	int nparams, lm_error *err)
{
	lm_conn *conn = ud;
	return conn->methods->exec(conn, sql, params, nparams, NULL, err);
}

typedef struct offline_sink {
	FILE *out;
	const char *dialect;
} offline_sink;

static void add_literal(lm_buf *b, const lm_value *v, int postgresql)
{
	switch (v->type) {
	case LM_NULL: lm_buf_puts(b, "NULL"); break;
	case LM_INT: lm_buf_printf(b, "%lld", (long long)v->u.i); break;
	case LM_FLOAT: lm_buf_printf(b, "%.17g", v->u.f); break;
	case LM_BOOL:
		lm_buf_puts(b, postgresql ? (v->u.i ? "true" : "false") : (v->u.i ? "1" : "0"));
		break;
	case LM_TEXT: lm_buf_literal(b, v->u.s.p, v->u.s.n); break;
	case LM_BLOB:
		lm_buf_puts(b, postgresql ? "'\\x" : "X'");
		for (size_t i = 0; i < v->u.s.n; i++)
			lm_buf_printf(b, "%02x", (unsigned char)v->u.s.p[i]);
		lm_buf_puts(b, postgresql ? "'::bytea" : "'");
		break;
	}
}

/* Prints sql with each `?` outside quotes and comments replaced by its
 * parameter as a literal, then ";" and a blank line, as Alembic does. */
static int offline_emit(void *ud, const char *sql, const lm_value *params,
	int nparams, lm_error *err)
{
	offline_sink *s = ud;
	int postgresql = strcmp(s->dialect, "postgresql") == 0, next = 0;
	lm_buf b = {0};
	for (const char *p = sql; *p; p++) {
		if (*p == '\'' || *p == '"') {
			const char *end = p + 1;
			while (*end && !(*end == *p && end[1] != *p))
				end += *end == *p ? 2 : 1;
			lm_buf_add(&b, p, (size_t)(end - p) + (*end ? 1 : 0));
			p = *end ? end : end - 1;
		} else if (*p == '-' && p[1] == '-') {
			size_t n = strcspn(p, "\n");
			lm_buf_add(&b, p, n);
			p += n - 1;
		} else if (*p == '?' && nparams > 0) {
			if (next >= nparams) {
				lm_buf_free(&b);
				return lm_error_set(err, LM_EFAIL,
					"statement has more placeholders than the %d parameters given",
					nparams);
			}
			add_literal(&b, &params[next++], postgresql);
		} else {
			lm_buf_add(&b, p, 1);
		}
	}
	size_t len = b.len;
	while (len && (b.data[len - 1] == ';' || b.data[len - 1] == ' ' ||
			      b.data[len - 1] == '\n'))
		len--;
	fprintf(s->out, "%.*s;\n\n", (int)len, lm_buf_str(&b));
	lm_buf_free(&b);
	return 0;
}

/* ---- the version table -------------------------------------------------- */

static void add_version_table(lm_buf *b, const lm_app *app)
{
	if (app->config.version_table_schema && app->url.backend == LM_BACKEND_POSTGRESQL) {
		lm_buf_ident(b, app->config.version_table_schema);
		lm_buf_puts(b, ".");
	}
	lm_buf_ident(b, app->config.version_table);
}

static int emit_text(const lm_sink *sink, lm_buf *b, const lm_value *params,
	int nparams, lm_error *err)
{
	int rc = b->failed ? lm_error_set(err, LM_ENOMEM, "out of memory")
			   : sink->emit(sink->ud, lm_buf_str(b), params, nparams, err);
	lm_buf_free(b);
	return rc;
}

static int create_version_table(const lm_app *app, const lm_sink *sink, lm_error *err)
{
	lm_buf b = {0};
	lm_buf_puts(&b, "CREATE TABLE IF NOT EXISTS ");
	add_version_table(&b, app);
	lm_buf_puts(&b, " (version_num VARCHAR(32) NOT NULL, CONSTRAINT ");
	lm_buf pk = {0};
	lm_buf_printf(&pk, "%s_pkc", app->config.version_table);
	lm_buf_ident(&b, lm_buf_str(&pk));
	lm_buf_free(&pk);
	lm_buf_puts(&b, " PRIMARY KEY (version_num))");
	return emit_text(sink, &b, NULL, 0, err);
}

static int version_table_exists(lm_app *app, int *exists, lm_error *err)
{
	lm_conn *c = app->conn;
	lm_stmt *st = NULL;
	int rc, postgresql = app->url.backend == LM_BACKEND_POSTGRESQL;
	const char *schema = app->config.version_table_schema;
	lm_value params[2] = {
		{.type = LM_TEXT, .u.s = {app->config.version_table, strlen(app->config.version_table)}},
		{.type = schema ? LM_TEXT : LM_NULL, .u.s = {schema, schema ? strlen(schema) : 0}},
	};
	const char *sql = postgresql
		? "SELECT 1 FROM information_schema.tables WHERE table_name = ? AND table_schema = COALESCE(?, current_schema())"
		: "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?";
	if ((rc = c->methods->prepare(c, sql, &st, err)) != 0 ||
		(rc = c->methods->bind(st, params, postgresql ? 2 : 1, err)) != 0 ||
		(rc = c->methods->step(st, err)) < 0)
		goto done;
	*exists = rc == 1;
	rc = 0;
done:
	c->methods->finalize(st);
	return rc;
}

/* The raw rows of the version table, in table order. */
static int read_version_ids(lm_app *app, char ***out, int *count, lm_error *err)
{
	lm_conn *c = app->conn;
	lm_stmt *st = NULL;
	lm_buf sql = {0};
	int rc, exists = 0, cap = 0;
	*out = NULL;
	*count = 0;
	if ((rc = version_table_exists(app, &exists, err)) != 0 || !exists)
		return rc;
	lm_buf_puts(&sql, "SELECT version_num FROM ");
	add_version_table(&sql, app);
	if ((rc = c->methods->prepare(c, lm_buf_str(&sql), &st, err)) != 0 ||
		(rc = c->methods->bind(st, NULL, 0, err)) != 0)
		goto done;
	while ((rc = c->methods->step(st, err)) == 1) {
		lm_value v;
		c->methods->column(st, 0, &v);
		if (*count == cap) {
			cap = cap ? cap * 2 : 8;
			*out = realloc(*out, (size_t)cap * sizeof **out);
		}
		(*out)[(*count)++] = v.type == LM_TEXT ? strndup(v.u.s.p, v.u.s.n) : strdup("");
	}
done:
	lm_buf_free(&sql);
	c->methods->finalize(st);
	return rc < 0 ? rc : 0;
}

int lm_version_rows(lm_app *app, lm_revs *out, lm_error *err)
{
	char **ids = NULL;
	int n = 0, rc;
	memset(out, 0, sizeof *out);
	if ((rc = read_version_ids(app, &ids, &n, err)) != 0)
		goto done;
	out->revs = calloc((size_t)n + 1, sizeof *out->revs);
	for (int i = 0; i < n; i++) {
		int rev = lm_graph_find(app->graph, ids[i]);
		if (rev < 0) {
			rc = lm_error_set(err, LM_EFAIL,
				"Can't locate revision identified by '%s': the version table '%s' names a revision no file defines; fix it with 'luamig stamp <revision>'",
				ids[i], app->config.version_table);
			lm_revs_free(out);
			goto done;
		}
		out->revs[out->n++] = rev;
	}
done:
	for (int i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	return rc;
}

static int contains(const int *v, int n, int x)
{
	for (int i = 0; i < n; i++)
		if (v[i] == x)
			return 1;
	return 0;
}

/* A statement held back from the sink to be sent with the COMMIT. */
typedef struct held_stmt {
	lm_buf sql;
	lm_value params[2];
	int nparams;
	int set;
} held_stmt;

/* Writes the change from rows `before` to `after` as Alembic does: one row
 * replaced by one is an UPDATE; other changes are DELETEs, then INSERTs.
 * With held, the last statement goes there instead of to the sink. */
static int write_rows(const lm_app *app, const lm_sink *sink, const int *before,
	int nbefore, const int *after, int nafter, held_stmt *held, lm_error *err)
{
	int removed[nbefore + 1], added[nafter + 1], nremoved = 0, nadded = 0, rc = 0;
	for (int i = 0; i < nbefore; i++)
		if (!contains(after, nafter, before[i]))
			removed[nremoved++] = before[i];
	for (int i = 0; i < nafter; i++)
		if (!contains(before, nbefore, after[i]))
			added[nadded++] = after[i];
	while (rc == 0 && (nremoved || nadded)) {
		lm_buf b = {0};
		lm_value p[2];
		int np;
		const char *from = nremoved ? lm_graph_id(app->graph, removed[nremoved - 1]) : NULL;
		const char *to = nadded ? lm_graph_id(app->graph, added[nadded - 1]) : NULL;
		if (from && to && nremoved == 1) {
			lm_buf_puts(&b, "UPDATE ");
			add_version_table(&b, app);
			lm_buf_puts(&b, " SET version_num = ? WHERE version_num = ?");
			p[0] = (lm_value){.type = LM_TEXT, .u.s = {to, strlen(to)}};
			p[1] = (lm_value){.type = LM_TEXT, .u.s = {from, strlen(from)}};
			np = 2;
			nremoved--;
			nadded--;
		} else if (from) {
			lm_buf_puts(&b, "DELETE FROM ");
			add_version_table(&b, app);
			lm_buf_puts(&b, " WHERE version_num = ?");
			p[0] = (lm_value){.type = LM_TEXT, .u.s = {from, strlen(from)}};
			np = 1;
			nremoved--;
		} else {
			lm_buf_puts(&b, "INSERT INTO ");
			add_version_table(&b, app);
			lm_buf_puts(&b, " (version_num) VALUES (?)");
			p[0] = (lm_value){.type = LM_TEXT, .u.s = {to, strlen(to)}};
			np = 1;
			nadded--;
		}
		if (held && !nremoved && !nadded) {
			held->sql = b;
			memcpy(held->params, p, sizeof p);
			held->nparams = np;
			held->set = 1;
			break;
		}
		rc = emit_text(sink, &b, p, np, err);
	}
	return rc;
}

static int purge_rows(const lm_app *app, const lm_sink *sink, lm_error *err)
{
	lm_buf b = {0};
	lm_buf_puts(&b, "DELETE FROM ");
	add_version_table(&b, app);
	return emit_text(sink, &b, NULL, 0, err);
}

/* ---- running a plan ----------------------------------------------------- */

static void append(lm_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void append(lm_error *err, const char *fmt, ...)
{
	size_t n = strlen(err->message);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message + n, sizeof err->message - n, fmt, ap);
	va_end(ap);
}

typedef struct run_state {
	lm_app *app;
	const lm_migrate_options *opt;
	lm_sink sink;
	int in_transaction;
} run_state;

static int begin(run_state *rs, lm_error *err)
{
	int rc;
	if (rs->opt->sql) {
		if (rs->app->url.backend == LM_BACKEND_POSTGRESQL)
			fputs("BEGIN;\n\n", rs->opt->sql);
		rc = 0;
	} else {
		rc = rs->app->conn->methods->begin(rs->app->conn, 1, err);
	}
	rs->in_transaction = rc == 0;
	return rc;
}

/* Commits; a held statement runs first, in the same round trip where the
 * driver can (see exec_commit). */
static int commit(run_state *rs, held_stmt *held, lm_error *err)
{
	int rc = 0;
	lm_conn *conn = rs->app->conn;
	lm_host_close_statements(rs->app->host);
	if (rs->opt->sql) {
		if (rs->app->url.backend == LM_BACKEND_POSTGRESQL)
			fputs("COMMIT;\n\n", rs->opt->sql);
	} else if (held && held->set) {
		rc = held->sql.failed ? lm_error_set(err, LM_ENOMEM, "out of memory")
				      : conn->methods->exec_commit(conn, lm_buf_str(&held->sql),
					      held->params, held->nparams, err);
	} else {
		rc = conn->methods->commit(conn, err);
	}
	if (held && held->set) {
		lm_buf_free(&held->sql);
		held->set = 0;
	}
	rs->in_transaction = 0;
	return rc;
}

static void rollback(run_state *rs)
{
	lm_host_close_statements(rs->app->host);
	if (rs->in_transaction && !rs->opt->sql)
		rs->app->conn->methods->rollback(rs->app->conn, NULL);
	rs->in_transaction = 0;
}

static int run_revision(run_state *rs, const lm_step *step, lm_error *err)
{
	lm_app *app = rs->app;
	lm_conn *conn = app->conn;
	lm_script *s = &app->scripts[step->rev];
	int rc;
	if (rs->opt->sql) {
		lm_buf line = {0};
		lm_app_describe_step(app, step, &line);
		fprintf(rs->opt->sql, "-- Running %s\n\n", lm_buf_str(&line));
		lm_buf_free(&line);
	}
	/* the guard keeps a migration from ending the runner's transaction; a
	 * revision that runs outside one (VACUUM, CONCURRENTLY) needs none */
	int guard = conn && s->transactional;
	if (guard)
		conn->methods->guard_transactions(conn, 1);
	rc = lm_host_run_script(app->host, s, step->upgrade, err);
	if (guard)
		conn->methods->guard_transactions(conn, 0);
	if (rc != 0)
		append(err, " (%s %s)", step->upgrade ? "upgrade" : "downgrade", s->id);
	return rc;
}

/* Runs the steps in order. A revision with transactional = false runs
 * outside any transaction (the one a whole-command run holds is committed
 * first); its version row follows in a transaction of its own. */
static int run_plan(run_state *rs, const lm_plan *plan, const int *rows,
	int nrows, lm_error *err)
{
	lm_app *app = rs->app;
	int per_migration = app->config.transaction_per_migration;
	const int *before = rows;
	int nbefore = nrows, rc = 0, created = 0;
	for (int i = 0; i < plan->n && rc == 0; i++) {
		const lm_step *step = &plan->steps[i];
		int outside = step->rev >= 0 && !app->scripts[step->rev].transactional;
		if (rs->opt->on_step && step->rev >= 0)
			rs->opt->on_step(rs->opt->ud, app, step, before, nbefore);
		if (outside && rs->in_transaction && (rc = commit(rs, NULL, err)) != 0)
			break;
		if (!outside && !rs->in_transaction && (rc = begin(rs, err)) != 0)
			break;
		if (!created) {
			if ((rc = create_version_table(app, &rs->sink, err)) != 0 ||
				(rs->opt->purge && (rc = purge_rows(app, &rs->sink, err)) != 0))
				break;
			created = 1;
		}
		if (step->rev >= 0 && (rc = run_revision(rs, step, err)) != 0) {
			if (outside)
				append(err, "; it ran outside a transaction (transactional = false), so some of its statements may have been applied: repair the database by hand, then re-run 'luamig upgrade' or mark it done with 'luamig stamp %s'",
					app->scripts[step->rev].id);
			break;
		}
		if (outside && (rc = begin(rs, err)) != 0)
			break;
		/* a revision's version row, when it commits at once, goes with the COMMIT */
		int commits = per_migration || outside;
		held_stmt held = {0};
		int hold = commits && !rs->opt->sql && app->conn->methods->version >= 3 &&
			app->conn->methods->exec_commit;
		if ((rc = write_rows(app, &rs->sink, before, nbefore,
			     step->rows_after, step->nrows_after, hold ? &held : NULL, err)) != 0)
			break;
		if (commits && (rc = commit(rs, &held, err)) != 0) {
			if (step->rev >= 0) /* a deferred constraint, say: name whose COMMIT it was */
				append(err, " (%s %s, at its COMMIT)", step->upgrade ? "upgrade" : "downgrade",
					app->scripts[step->rev].id);
			break;
		}
		before = step->rows_after;
		nbefore = step->nrows_after;
	}
	if (rc == 0 && rs->in_transaction)
		rc = commit(rs, NULL, err);
	if (rc != 0)
		rollback(rs);
	return rc;
}

/* Serialises concurrent runners: taken before the version rows are read,
 * held until the command is done. */
static int take_lock(lm_app *app, lm_error *err)
{
	lm_conn *c = app->conn;
	if (!app->config.lock || !c->methods->lock)
		return 0;
	lm_buf name = {0};
	add_version_table(&name, app);
	int rc = c->methods->lock(c, lm_buf_str(&name), app->config.lock_timeout, err);
	lm_buf_free(&name);
	return rc;
}

int lm_migrate(lm_app *app, lm_migrate_kind kind, const char *const *targets,
	int ntargets, const lm_migrate_options *opt, lm_error *err)
{
	lm_revs rows = {0};
	lm_plan plan = {0};
	offline_sink offline = {0};
	run_state rs = {.app = app, .opt = opt};
	int rc;
	if ((rc = lm_app_parse_url(app, err)) != 0)
		return rc;
	const char *dialect = app->url.backend == LM_BACKEND_POSTGRESQL ? "postgresql" : "sqlite";
	if (opt->sql) {
		offline.out = opt->sql;
		offline.dialect = dialect;
		rs.sink = (lm_sink){offline_emit, &offline};
		if (opt->sql_from && *opt->sql_from &&
			(rc = lm_graph_resolve(app->graph, opt->sql_from, NULL, 0, &rows, err)) != 0)
			goto done;
	} else {
		/* --purge forgets the rows, whatever they name */
		if ((rc = lm_app_connect(app, err)) != 0 ||
			(rc = take_lock(app, err)) != 0 ||
			(!opt->purge && (rc = lm_version_rows(app, &rows, err)) != 0))
			goto done;
		rs.sink = (lm_sink){online_emit, app->conn};
	}
	switch (kind) {
	case LM_MIGRATE_UPGRADE:
		rc = lm_graph_plan_upgrade(app->graph, rows.revs, rows.n, targets[0], &plan, err);
		break;
	case LM_MIGRATE_DOWNGRADE:
		rc = lm_graph_plan_downgrade(app->graph, rows.revs, rows.n, targets[0], &plan, err);
		break;
	case LM_MIGRATE_STAMP:
		rc = lm_graph_plan_stamp(app->graph, rows.revs, rows.n, targets, ntargets,
			opt->purge, &plan, err);
		break;
	}
	if (rc != 0)
		goto done;
	lm_run_context ctx = {
		.dialect = dialect,
		.offline = opt->sql != NULL,
		.conn = app->conn,
		.sink = rs.sink,
		.x = opt->x,
		.nx = opt->nx,
	};
	/* every revision the plan runs is read first: a syntax error in the
	 * third stops the command before the first runs */
	for (int i = 0; i < plan.n; i++)
		if (plan.steps[i].rev >= 0 &&
			(rc = lm_host_prepare_script(app->host, &app->scripts[plan.steps[i].rev], err)) != 0)
			goto done;
	if ((rc = lm_host_set_context(app->host, &ctx, err)) != 0)
		goto done;
	rc = run_plan(&rs, &plan, rows.revs, rows.n, err);
	lm_error scratch = {0};
	lm_host_set_context(app->host, NULL, &scratch);
done:
	if (app->conn && app->conn->methods->unlock)
		app->conn->methods->unlock(app->conn);
	lm_plan_free(&plan);
	lm_revs_free(&rows);
	return rc;
}
