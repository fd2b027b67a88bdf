/* graph.h - the revision graph: ids and parents in; heads, order and plans out.
 *
 * Pure C: no Lua, no I/O, no database. Semantics follow Alembic 1.8's
 * RevisionMap (alembic/script/revision.py) and HeadMaintainer
 * (alembic/runtime/migration.py); where Alembic folds failures into one
 * message, the graph says what is really wrong.
 *
 * Revisions are numbered 0..n-1 in the order lm_graph_add() saw them (the
 * file load order), which breaks ties in the order of application.
 * "rows" are version-table rows: a set of revision indexes, one per head the
 * database is at. Every array a function returns through an out parameter is
 * owned by the graph (valid until lm_graph_free) unless it says otherwise.
 */
#ifndef LM_GRAPH_H
#define LM_GRAPH_H

#include "error.h"

typedef struct lm_graph lm_graph;

/* One revision as its file declares it. Strings are copied by lm_graph_add. */
typedef struct lm_revision_spec {
	const char *id;
	const char *const *down_revisions; /* parents; 0 = a root, >1 = a merge */
	int ndown_revisions;
	const char *const *depends_on; /* ids, unique prefixes or branch labels */
	int ndepends_on;
	const char *const *branch_labels;
	int nbranch_labels;
	const char *origin; /* the file that declares it, named in errors */
} lm_revision_spec;

/* A list of revision indexes; owned by the caller, freed with lm_revs_free. */
typedef struct lm_revs {
	int *revs; /* owned */
	int n;
} lm_revs;

void lm_revs_free(lm_revs *r);

/* One step of a plan: run one revision's upgrade() or downgrade() (or none,
 * for stamp) and leave the version table holding rows_after. */
typedef struct lm_step {
	int rev;         /* revision to run; -1 when nothing runs (stamp) */
	int upgrade;     /* 1: upgrade(), 0: downgrade() */
	int *rows_after; /* owned by the plan; in revision-index order */
	int nrows_after;
} lm_step;

typedef struct lm_plan {
	lm_step *steps; /* owned */
	int n;
} lm_plan;

void lm_plan_free(lm_plan *p);

int lm_graph_new(lm_graph **out);
void lm_graph_free(lm_graph *g); /* accepts NULL */

/* Adds a revision. A duplicate id is an error naming both files. */
int lm_graph_add(lm_graph *g, const lm_revision_spec *spec, lm_error *err);

/* Links parents, dependencies and labels and checks the whole graph: missing
 * parents (naming the referencing file), self-loops, cycles and dependency
 * cycles (listing their members), duplicate branch labels. Call once, after
 * the last lm_graph_add and before any query below. */
int lm_graph_build(lm_graph *g, lm_error *err);

int lm_graph_count(const lm_graph *g);
int lm_graph_find(const lm_graph *g, const char *id); /* exact id; -1 if none */
const char *lm_graph_id(const lm_graph *g, int rev);
const char *lm_graph_origin(const lm_graph *g, int rev);
int lm_graph_parents(const lm_graph *g, int rev, const int **out); /* down_revision */
int lm_graph_dependencies(const lm_graph *g, int rev, const int **out); /* depends_on, resolved */
int lm_graph_children(const lm_graph *g, int rev, const int **out); /* through down_revision */
/* The revision's own branch_labels plus the ones it inherits, as Alembic shows them. */
int lm_graph_labels(const lm_graph *g, int rev, const char *const **out);

enum {
	LM_REV_HEAD = 1 << 0,         /* no child through down_revision */
	LM_REV_REAL_HEAD = 1 << 1,    /* no child through down_revision nor depends_on */
	LM_REV_BASE = 1 << 2,         /* no down_revision */
	LM_REV_BRANCH_POINT = 1 << 3, /* more than one child */
	LM_REV_MERGE_POINT = 1 << 4,  /* more than one down_revision */
};
int lm_graph_flags(const lm_graph *g, int rev);

int lm_graph_heads(const lm_graph *g, const int **out);      /* versioned heads, load order */
int lm_graph_real_heads(const lm_graph *g, const int **out); /* what "heads" resolves to */

/* Resolves an identifier to revisions: head, heads, base (an empty set), full
 * ids and unique prefixes, label, label@head, label@base, label@rev, +N/-N
 * relative to `rows`, rev+N, head-1, base+2, label@+N, label@-N. */
int lm_graph_resolve(const lm_graph *g, const char *ident, const int *rows,
	int nrows, lm_revs *out, lm_error *err);

/* Plans `upgrade target` / `downgrade target` from the version rows `rows`:
 * the revisions to run in Alembic's order, with the rows after each step.
 * Upgrading to an ancestor of the current rows is an empty plan. */
int lm_graph_plan_upgrade(const lm_graph *g, const int *rows, int nrows,
	const char *target, lm_plan *out, lm_error *err);
int lm_graph_plan_downgrade(const lm_graph *g, const int *rows, int nrows,
	const char *target, lm_plan *out, lm_error *err);

/* Plans `stamp target…` (duplicates resolve once): one step with rev = -1
 * whose rows_after is the new version-table content. With purge the current
 * rows are ignored. */
int lm_graph_plan_stamp(const lm_graph *g, const int *rows, int nrows,
	const char *const *targets, int ntargets, int purge, lm_plan *out,
	lm_error *err);

/* Revisions for `history [-r range]`, newest first, as Alembic's
 * walk_revisions orders them. range is NULL (everything) or "a:b", "a:",
 * ":b"; "current" on either side means `rows`. */
int lm_graph_history(const lm_graph *g, const char *range, const int *rows,
	int nrows, lm_revs *out, lm_error *err);

#endif
