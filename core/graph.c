/* graph.c - the revision graph: ids and parents in; heads, order and plans out.
 *
 * Follows Alembic 1.8's RevisionMap (alembic/script/revision.py) and
 * HeadMaintainer (alembic/runtime/migration.py), re-designed for large maps:
 * lookups go through hash tables, closures are computed once per query with
 * mark arrays, and the depth-first topological order Alembic produces is
 * reproduced without its per-head ancestor sets (see topo_sort()).
 *
 * Relies on error.h only. Revisions are numbered in lm_graph_add() order,
 * which is the load order that breaks ties.
 */
#include "graph.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* data */

typedef struct revision {
	char *id;          /* owned */
	char *origin;      /* owned */
	char **down_names; /* owned, and each string */
	int ndown_names;
	char **dep_names; /* owned, and each string */
	int ndep_names;
	char **own_labels; /* owned, and each string */
	int nown_labels;

	int *parents; /* owned: down_revision, resolved */
	int nparents;
	int *deps; /* owned: depends_on, resolved (Alembic's _resolved_dependencies) */
	int ndeps;
	int *down; /* owned: parents + normalized deps (_normalized_down_revisions) */
	int ndown;
	int *children; /* owned: nextrev, load order */
	int nchildren;
	int *all_children; /* owned: _all_nextrev, load order */
	int nall_children;
	const char **labels; /* owned array; strings belong to own_labels of some revision */
	int nlabels;
	int flags;
	int rank; /* position in a topological order: ancestors rank lower */
	int pre;  /* interval in a DFS of the first-parent spanning forest: */
	int post; /* u is an ancestor of v if pre(u) <= pre(v), post(v) <= post(u) */
} revision;

typedef struct label_ent {
	const char *name; /* borrowed from a revision's own_labels */
	int rev;
} label_ent;

struct lm_graph {
	revision *revs; /* owned */
	int n;
	int cap;
	int *id_table; /* owned: open addressing, rev index + 1, 0 = empty */
	int id_cap;
	label_ent *label_table; /* owned: open addressing, rev = -1 when empty */
	int label_cap;
	int *by_id; /* owned: indexes sorted by id, for prefix search */
	int *heads; /* owned */
	int nheads;
	int *real_heads; /* owned */
	int nreal_heads;
	int *bases; /* owned: no down_revision, load order */
	int nbases;
	int built;
};

/* Walk results besides a revision index. */
enum {
	W_NONE = -1,     /* Alembic's None: before the first revision */
	W_BASE = -2,     /* Alembic's "base": walked below a root */
	W_OVERWALK = -3, /* walked off the end */
};

static int oom(lm_error *err)
{
	return lm_error_set(err, LM_ENOMEM, "out of memory");
}

/* An allocation count: never zero, so an empty graph still gets a buffer. */
static size_t count(int n)
{
	return n > 0 ? (size_t)n : 1;
}

static char *str_dup(const char *s)
{
	size_t len = strlen(s) + 1;
	char *p = malloc(len);
	if (p)
		memcpy(p, s, len);
	return p;
}

static uint32_t str_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

/* A growable int array. */
typedef struct ivec {
	int *v; /* owned */
	int n;
	int cap;
} ivec;

static int ivec_push(ivec *a, int x)
{
	if (a->n == a->cap) {
		int cap = a->cap ? a->cap * 2 : 8;
		int *v = realloc(a->v, (size_t)cap * sizeof *v);
		if (!v)
			return -1;
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = x;
	return 0;
}

static int int_cmp(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

void lm_revs_free(lm_revs *r)
{
	if (!r)
		return;
	free(r->revs);
	r->revs = NULL;
	r->n = 0;
}

void lm_plan_free(lm_plan *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->n; i++)
		free(p->steps[i].rows_after);
	free(p->steps);
	p->steps = NULL;
	p->n = 0;
}

int lm_graph_new(lm_graph **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : LM_ENOMEM;
}

static void free_strv(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void lm_graph_free(lm_graph *g)
{
	if (!g)
		return;
	for (int i = 0; i < g->n; i++) {
		revision *r = &g->revs[i];
		free(r->id);
		free(r->origin);
		free_strv(r->down_names, r->ndown_names);
		free_strv(r->dep_names, r->ndep_names);
		free_strv(r->own_labels, r->nown_labels);
		free(r->parents);
		free(r->deps);
		free(r->down);
		free(r->children);
		free(r->all_children);
		free(r->labels);
	}
	free(g->revs);
	free(g->id_table);
	free(g->label_table);
	free(g->by_id);
	free(g->heads);
	free(g->real_heads);
	free(g->bases);
	free(g);
}

/* ------------------------------------------------------------------------ */
/* lookup tables */

static int id_table_find(const lm_graph *g, const char *id)
{
	if (!g->id_cap)
		return -1;
	uint32_t mask = (uint32_t)g->id_cap - 1;
	for (uint32_t i = str_hash(id) & mask;; i = (i + 1) & mask) {
		int slot = g->id_table[i];
		if (!slot)
			return -1;
		if (strcmp(g->revs[slot - 1].id, id) == 0)
			return slot - 1;
	}
}

static void id_table_put(lm_graph *g, int rev)
{
	uint32_t mask = (uint32_t)g->id_cap - 1;
	uint32_t i = str_hash(g->revs[rev].id) & mask;
	while (g->id_table[i])
		i = (i + 1) & mask;
	g->id_table[i] = rev + 1;
}

static int id_table_grow(lm_graph *g)
{
	if ((g->n + 1) * 2 <= g->id_cap)
		return 0;
	int cap = g->id_cap ? g->id_cap * 2 : 64;
	int *t = calloc((size_t)cap, sizeof *t);
	if (!t)
		return -1;
	free(g->id_table);
	g->id_table = t;
	g->id_cap = cap;
	for (int i = 0; i < g->n; i++)
		id_table_put(g, i);
	return 0;
}

static int label_find(const lm_graph *g, const char *name)
{
	if (!g->label_cap)
		return -1;
	uint32_t mask = (uint32_t)g->label_cap - 1;
	for (uint32_t i = str_hash(name) & mask;; i = (i + 1) & mask) {
		const label_ent *e = &g->label_table[i];
		if (e->rev < 0)
			return -1;
		if (strcmp(e->name, name) == 0)
			return e->rev;
	}
}

static void label_put(lm_graph *g, const char *name, int rev)
{
	uint32_t mask = (uint32_t)g->label_cap - 1;
	uint32_t i = str_hash(name) & mask;
	while (g->label_table[i].rev >= 0)
		i = (i + 1) & mask;
	g->label_table[i].name = name;
	g->label_table[i].rev = rev;
}

/* An exact id or branch label (Alembic keeps both in one map). */
static int find_name(const lm_graph *g, const char *name)
{
	int r = id_table_find(g, name);
	return r >= 0 ? r : label_find(g, name);
}

int lm_graph_count(const lm_graph *g)
{
	return g->n;
}

int lm_graph_find(const lm_graph *g, const char *id)
{
	return id_table_find(g, id);
}

const char *lm_graph_id(const lm_graph *g, int rev)
{
	return rev >= 0 && rev < g->n ? g->revs[rev].id : NULL;
}

const char *lm_graph_origin(const lm_graph *g, int rev)
{
	return rev >= 0 && rev < g->n ? g->revs[rev].origin : NULL;
}

int lm_graph_parents(const lm_graph *g, int rev, const int **out)
{
	*out = g->revs[rev].parents;
	return g->revs[rev].nparents;
}

int lm_graph_dependencies(const lm_graph *g, int rev, const int **out)
{
	*out = g->revs[rev].deps;
	return g->revs[rev].ndeps;
}

int lm_graph_children(const lm_graph *g, int rev, const int **out)
{
	*out = g->revs[rev].children;
	return g->revs[rev].nchildren;
}

int lm_graph_labels(const lm_graph *g, int rev, const char *const **out)
{
	*out = g->revs[rev].labels;
	return g->revs[rev].nlabels;
}

int lm_graph_flags(const lm_graph *g, int rev)
{
	return g->revs[rev].flags;
}

int lm_graph_heads(const lm_graph *g, const int **out)
{
	*out = g->heads;
	return g->nheads;
}

int lm_graph_real_heads(const lm_graph *g, const int **out)
{
	*out = g->real_heads;
	return g->nreal_heads;
}

/* ------------------------------------------------------------------------ */
/* adding */

static int copy_strv(char ***out, int *nout, const char *const *v, int n)
{
	*out = NULL;
	*nout = 0;
	if (n <= 0)
		return 0;
	char **c = calloc((size_t)n, sizeof *c);
	if (!c)
		return -1;
	int k = 0;
	for (int i = 0; i < n; i++) {
		if (!v[i])
			continue;
		int dup = 0;
		for (int j = 0; j < k && !dup; j++)
			dup = strcmp(c[j], v[i]) == 0;
		if (dup)
			continue;
		if (!(c[k] = str_dup(v[i]))) {
			free_strv(c, k);
			return -1;
		}
		k++;
	}
	*out = c;
	*nout = k;
	return 0;
}

int lm_graph_add(lm_graph *g, const lm_revision_spec *spec, lm_error *err)
{
	const char *origin = spec->origin ? spec->origin : "?";
	if (g->built)
		return lm_error_set(err, LM_EFAIL, "revision graph already built");
	if (!spec->id || !spec->id[0])
		return lm_error_set(err, LM_EFAIL, "revision id is empty in '%s'", origin);
	char bad[16] = "";
	for (const char *c = "+-:@"; *c; c++) {
		if (strchr(spec->id, *c)) {
			size_t l = strlen(bad);
			snprintf(bad + l, sizeof bad - l, "%s%c", l ? ", " : "", *c);
		}
	}
	if (bad[0])
		return lm_error_set(err, LM_EFAIL,
			"Character(s) '%s' not allowed in revision identifier '%s'",
			bad, spec->id);
	int dup = id_table_find(g, spec->id);
	if (dup >= 0)
		return lm_error_set(err, LM_EFAIL,
			"Revision '%s' is defined twice: '%s' and '%s'", spec->id,
			g->revs[dup].origin, origin);
	if (g->n == g->cap) {
		int cap = g->cap ? g->cap * 2 : 16;
		revision *revs = realloc(g->revs, (size_t)cap * sizeof *revs);
		if (!revs)
			return oom(err);
		g->revs = revs;
		g->cap = cap;
	}
	if (id_table_grow(g) < 0)
		return oom(err);
	revision *r = &g->revs[g->n];
	memset(r, 0, sizeof *r);
	if (!(r->id = str_dup(spec->id)) || !(r->origin = str_dup(origin))
		|| copy_strv(&r->down_names, &r->ndown_names,
			spec->down_revisions, spec->ndown_revisions) < 0
		|| copy_strv(&r->dep_names, &r->ndep_names, spec->depends_on,
			spec->ndepends_on) < 0
		|| copy_strv(&r->own_labels, &r->nown_labels,
			spec->branch_labels, spec->nbranch_labels) < 0) {
		free(r->id);
		free(r->origin);
		free_strv(r->down_names, r->ndown_names);
		free_strv(r->dep_names, r->ndep_names);
		return oom(err);
	}
	id_table_put(g, g->n);
	g->n++;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* traversal helpers */

/* A mark array cleared in O(1) by bumping the epoch. */
typedef struct marks {
	unsigned *m; /* owned */
	unsigned epoch;
} marks;

static int marks_init(marks *mk, int n)
{
	mk->m = calloc(count(n), sizeof *mk->m);
	mk->epoch = 1;
	return mk->m ? 0 : -1;
}

static void marks_reset(marks *mk, int n)
{
	if (++mk->epoch == 0) {
		memset(mk->m, 0, count(n) * sizeof *mk->m);
		mk->epoch = 1;
	}
}

enum {
	E_PARENTS,  /* down_revision */
	E_DOWN,     /* down_revision + normalized depends_on */
	E_CHILDREN, /* nextrev */
	E_ALL_CHILDREN,
};

static const int *edges(const lm_graph *g, int v, int kind, int *n)
{
	const revision *r = &g->revs[v];
	switch (kind) {
	case E_PARENTS:
		*n = r->nparents;
		return r->parents;
	case E_DOWN:
		*n = r->ndown;
		return r->down;
	case E_CHILDREN:
		*n = r->nchildren;
		return r->children;
	default:
		*n = r->nall_children;
		return r->all_children;
	}
}

/* A sufficient test of ancestry: u is v or an ancestor of v along first
 * parents. */
static int tree_anc(const lm_graph *g, int u, int v)
{
	return g->revs[u].pre <= g->revs[v].pre
		&& g->revs[v].post <= g->revs[u].post;
}

/* Sets mark[v] |= bit for every v reachable from starts (starts included).
 * stack must hold g->n ints. A node already carrying bit is not expanded. */
static void closure(const lm_graph *g, const int *starts, int nstarts, int kind,
	unsigned char *mark, unsigned char bit, int *stack)
{
	int sp = 0;
	for (int i = 0; i < nstarts; i++) {
		int s = starts[i];
		if (s < 0 || (mark[s] & bit))
			continue;
		mark[s] |= bit;
		stack[sp++] = s;
	}
	while (sp) {
		int v = stack[--sp];
		int ne;
		const int *e = edges(g, v, kind, &ne);
		for (int i = 0; i < ne; i++) {
			if (!(mark[e[i]] & bit)) {
				mark[e[i]] |= bit;
				stack[sp++] = e[i];
			}
		}
	}
}

/* Is `target` an ancestor-or-self (through E_DOWN) of any of `from`?
 * Only nodes ranked at least as high as target are explored. */
static int reaches_down(const lm_graph *g, const int *from, int nfrom,
	int target, marks *mk, int *stack)
{
	int sp = 0, trank = g->revs[target].rank;
	marks_reset(mk, g->n);
	for (int i = 0; i < nfrom; i++) {
		int s = from[i];
		if (g->revs[s].rank < trank || mk->m[s] == mk->epoch)
			continue;
		mk->m[s] = mk->epoch;
		stack[sp++] = s;
	}
	while (sp) {
		int v = stack[--sp];
		if (tree_anc(g, target, v))
			return 1;
		for (int i = 0; i < g->revs[v].ndown; i++) {
			int p = g->revs[v].down[i];
			if (g->revs[p].rank < trank || mk->m[p] == mk->epoch)
				continue;
			mk->m[p] = mk->epoch;
			stack[sp++] = p;
		}
	}
	return 0;
}

/* Quoted, comma-separated ids: 'a', 'b'. */
static void format_ids(const lm_graph *g, const int *v, int n, int quote,
	char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = '\0';
	for (int i = 0; i < n && len < size; i++) {
		int w = snprintf(buf + len, size - len, "%s%s%s%s",
			i ? ", " : "", quote ? "'" : "", g->revs[v[i]].id,
			quote ? "'" : "");
		if (w < 0)
			break;
		len += (size_t)w;
	}
}

/* ------------------------------------------------------------------------ */
/* building */

/* Sorts revision indexes by id (strcmp, as Python's sorted() on ASCII).
 * A merge sort, since qsort() takes no context. */
static int sort_by_id(const lm_graph *g, int *v, int n)
{
	if (n < 2)
		return 0;
	int *tmp = malloc((size_t)n * sizeof *tmp);
	if (!tmp)
		return -1;
	for (int width = 1; width < n; width *= 2) {
		for (int lo = 0; lo < n; lo += 2 * width) {
			int mid = lo + width < n ? lo + width : n;
			int hi = lo + 2 * width < n ? lo + 2 * width : n;
			int i = lo, j = mid, k = lo;
			while (i < mid && j < hi)
				tmp[k++] = strcmp(g->revs[v[j]].id, g->revs[v[i]].id) < 0 ?
					v[j++] : v[i++];
			while (i < mid)
				tmp[k++] = v[i++];
			while (j < hi)
				tmp[k++] = v[j++];
		}
		memcpy(v, tmp, (size_t)n * sizeof *v);
	}
	free(tmp);
	return 0;
}

/* The revisions whose mark is not `full`, sorted as Python's sorted(). */
static int cycle_error(lm_graph *g, const unsigned char *mark,
	unsigned char full, const char *kind, lm_error *err)
{
	int *v = malloc((size_t)g->n * sizeof *v), k = 0;
	if (!v)
		return oom(err);
	for (int i = 0; i < g->n; i++)
		if (mark[i] != full)
			v[k++] = i;
	if (sort_by_id(g, v, k) < 0) {
		free(v);
		return oom(err);
	}
	char buf[800];
	format_ids(g, v, k, 0, buf, sizeof buf);
	free(v);
	return lm_error_set(err, LM_EFAIL, "%s is detected in revisions (%s)",
		kind, buf);
}

/* Resolves a depends_on entry: exact id, branch label, unique prefix. */
static int resolve_dep(const lm_graph *g, const char *name, int *out,
	lm_error *err);

static int set_edges(int **out, int *nout, const ivec *v)
{
	*nout = v->n;
	*out = NULL;
	if (!v->n)
		return 0;
	*out = malloc((size_t)v->n * sizeof **out);
	if (!*out)
		return -1;
	memcpy(*out, v->v, (size_t)v->n * sizeof **out);
	return 0;
}

static int add_label(revision *r, const char *name)
{
	for (int i = 0; i < r->nlabels; i++)
		if (strcmp(r->labels[i], name) == 0)
			return 0;
	const char **l = realloc(r->labels, (size_t)(r->nlabels + 1) * sizeof *l);
	if (!l)
		return -1;
	l[r->nlabels++] = name;
	r->labels = l;
	return 0;
}

static int build_links(lm_graph *g, lm_error *err)
{
	int n = g->n, rc = 0;
	ivec tmp = { 0 };
	int *nch = calloc((size_t)n + 1, sizeof *nch);
	int *nall = calloc((size_t)n + 1, sizeof *nall);
	if (!nch || !nall) {
		rc = oom(err);
		goto done;
	}
	for (int i = 0; i < n; i++) {
		revision *r = &g->revs[i];
		tmp.n = 0;
		for (int j = 0; j < r->ndown_names; j++) {
			int p = id_table_find(g, r->down_names[j]);
			if (p < 0) {
				rc = lm_error_set(err, LM_EFAIL,
					"Revision '%s' referenced as down_revision by '%s' ('%s') is not present",
					r->down_names[j], r->id, r->origin);
				goto done;
			}
			if (ivec_push(&tmp, p) < 0) {
				rc = oom(err);
				goto done;
			}
		}
		if (set_edges(&r->parents, &r->nparents, &tmp) < 0) {
			rc = oom(err);
			goto done;
		}
		tmp.n = 0;
		for (int j = 0; j < r->ndep_names; j++) {
			int d = -1;
			lm_error sub = { 0 };
			if (resolve_dep(g, r->dep_names[j], &d, &sub) < 0) {
				if (sub.code == LM_ENOMEM)
					rc = oom(err);
				else if (sub.message[0])
					rc = lm_error_set(err, LM_EFAIL,
						"%s (depends_on of '%s' in '%s')",
						sub.message, r->id, r->origin);
				else
					rc = lm_error_set(err, LM_EFAIL,
						"Revision '%s' referenced as depends_on by '%s' ('%s') is not present",
						r->dep_names[j], r->id, r->origin);
				goto done;
			}
			int seen = 0;
			for (int k = 0; k < tmp.n && !seen; k++)
				seen = tmp.v[k] == d;
			if (!seen && ivec_push(&tmp, d) < 0) {
				rc = oom(err);
				goto done;
			}
		}
		if (set_edges(&r->deps, &r->ndeps, &tmp) < 0) {
			rc = oom(err);
			goto done;
		}
		for (int j = 0; j < r->ndeps; j++) {
			if (r->deps[j] == i) {
				rc = lm_error_set(err, LM_EFAIL,
					"Dependency self-loop is detected in revisions (%s)",
					r->id);
				goto done;
			}
		}
	}
	/* children, in load order: count, then fill */
	for (int i = 0; i < n; i++) {
		revision *r = &g->revs[i];
		for (int j = 0; j < r->nparents; j++)
			nch[r->parents[j]]++;
		/* _all_nextrev: one entry per child, whatever the edge kinds */
		for (int j = 0; j < r->nparents; j++)
			nall[r->parents[j]]++;
		for (int j = 0; j < r->ndeps; j++) {
			int d = r->deps[j], also = 0;
			for (int k = 0; k < r->nparents && !also; k++)
				also = r->parents[k] == d;
			if (!also)
				nall[d]++;
		}
	}
	for (int i = 0; i < n; i++) {
		revision *r = &g->revs[i];
		if (nch[i] && !(r->children = malloc((size_t)nch[i] * sizeof(int)))) {
			rc = oom(err);
			goto done;
		}
		if (nall[i] && !(r->all_children = malloc((size_t)nall[i] * sizeof(int)))) {
			rc = oom(err);
			goto done;
		}
	}
	for (int i = 0; i < n; i++) {
		revision *r = &g->revs[i];
		for (int j = 0; j < r->nparents; j++) {
			revision *p = &g->revs[r->parents[j]];
			p->children[p->nchildren++] = i;
			p->all_children[p->nall_children++] = i;
		}
		for (int j = 0; j < r->ndeps; j++) {
			int d = r->deps[j], also = 0;
			for (int k = 0; k < r->nparents && !also; k++)
				also = r->parents[k] == d;
			if (!also) {
				revision *p = &g->revs[d];
				p->all_children[p->nall_children++] = i;
			}
		}
	}
done:
	free(tmp.v);
	free(nch);
	free(nall);
	return rc;
}

/* A cycle Alembic's check misses (reachable from both a head and a base):
 * peel revisions without parents or without children, through
 * down_revision first, then through every edge; what remains holds the
 * cycle. */
static int cycle_core(lm_graph *g, lm_error *err)
{
	int n = g->n, rc = 0;
	int *in = malloc(count(n) * sizeof *in), *out = malloc(count(n) * sizeof *out);
	int *queue = malloc(count(n) * sizeof *queue);
	unsigned char *gone = calloc(count(n), 1);
	if (!in || !out || !queue || !gone) {
		rc = oom(err);
		goto done;
	}
	for (int pass = 0; pass < 2 && !rc; pass++) {
		int qt = 0, left = n;
		memset(gone, 0, (size_t)n);
		for (int i = 0; i < n; i++) {
			in[i] = pass ? g->revs[i].ndown : g->revs[i].nparents;
			out[i] = pass ? g->revs[i].nall_children : g->revs[i].nchildren;
			if (!in[i] || !out[i]) {
				gone[i] = 1;
				queue[qt++] = i;
			}
		}
		for (int qh = 0; qh < qt; qh++) {
			int v = queue[qh], ne;
			const int *e;
			left--;
			e = edges(g, v, pass ? E_ALL_CHILDREN : E_CHILDREN, &ne);
			for (int i = 0; i < ne; i++)
				if (!gone[e[i]] && --in[e[i]] == 0) {
					gone[e[i]] = 1;
					queue[qt++] = e[i];
				}
			e = edges(g, v, pass ? E_DOWN : E_PARENTS, &ne);
			for (int i = 0; i < ne; i++)
				if (!gone[e[i]] && --out[e[i]] == 0) {
					gone[e[i]] = 1;
					queue[qt++] = e[i];
				}
		}
		if (left)
			rc = cycle_error(g, gone, 1,
				pass ? "Dependency cycle" : "Cycle", err);
	}
	if (!rc)
		rc = lm_error_set(err, LM_EFAIL, "revision graph has a cycle");
done:
	free(in);
	free(out);
	free(queue);
	free(gone);
	return rc;
}

/* Alembic's _detect_cycles, then a topological rank for every revision. */
static int check_cycles(lm_graph *g, lm_error *err)
{
	int n = g->n, rc = 0;
	if (!n)
		return 0;
	unsigned char *mark = calloc((size_t)n, 1);
	int *stack = malloc((size_t)n * sizeof *stack);
	int *starts = malloc((size_t)n * sizeof *starts);
	int *indeg = calloc((size_t)n, sizeof *indeg);
	if (!mark || !stack || !starts || !indeg) {
		rc = oom(err);
		goto done;
	}
	for (int pass = 0; pass < 2; pass++) {
		const char *kind = pass ? "Dependency cycle" : "Cycle";
		int nh = 0, nb = 0;
		memset(mark, 0, (size_t)n);
		for (int i = 0; i < n; i++) {
			revision *r = &g->revs[i];
			if (pass ? !r->nall_children : !r->nchildren)
				starts[nh++] = i;
		}
		if (nh)
			closure(g, starts, nh, pass ? E_DOWN : E_PARENTS, mark, 1, stack);
		for (int i = 0; i < n; i++) {
			revision *r = &g->revs[i];
			if (pass ? !r->nparents && !r->ndep_names : !r->nparents)
				starts[nb++] = i;
		}
		if (!nh || !nb) {
			/* every revision: in load order, as Alembic lists them */
			char buf[800];
			int *all = starts;
			for (int i = 0; i < n; i++)
				all[i] = i;
			format_ids(g, all, n, 0, buf, sizeof buf);
			rc = lm_error_set(err, LM_EFAIL,
				"%s is detected in revisions (%s)", kind, buf);
			goto done;
		}
		/* E_DOWN is parents + every dependency here: normalization runs
		 * after this check, as the caller sets it up. */
		closure(g, starts, nb, pass ? E_ALL_CHILDREN : E_CHILDREN, mark, 2,
			stack);
		for (int i = 0; i < n; i++) {
			if (mark[i] != 3) {
				rc = cycle_error(g, mark, 3, kind, err);
				goto done;
			}
		}
	}
	/* Kahn's algorithm over all edges: ranks with ancestors first. */
	int qh = 0, qt = 0, k = 0;
	for (int i = 0; i < n; i++) {
		indeg[i] = g->revs[i].ndown;
		if (!indeg[i])
			stack[qt++] = i;
	}
	while (qh < qt) {
		int v = stack[qh++];
		g->revs[v].rank = k++;
		for (int j = 0; j < g->revs[v].nall_children; j++) {
			int c = g->revs[v].all_children[j];
			if (--indeg[c] == 0)
				stack[qt++] = c;
		}
	}
	if (k != n)
		rc = cycle_core(g, err);
done:
	free(mark);
	free(stack);
	free(starts);
	free(indeg);
	return rc;
}

/* down = parents + deps (all of them), deduplicated, order kept. */
static int set_down(revision *r, const int *deps, int ndeps)
{
	free(r->down);
	r->down = NULL;
	r->ndown = 0;
	int cap = r->nparents + ndeps;
	if (!cap)
		return 0;
	r->down = malloc((size_t)cap * sizeof *r->down);
	if (!r->down)
		return -1;
	for (int i = 0; i < r->nparents; i++)
		r->down[r->ndown++] = r->parents[i];
	for (int i = 0; i < ndeps; i++) {
		int seen = 0;
		for (int j = 0; j < r->ndown && !seen; j++)
			seen = r->down[j] == deps[i];
		if (!seen)
			r->down[r->ndown++] = deps[i];
	}
	return 0;
}

/* Alembic's _normalize_depends_on: a dependency that a (down_revision)
 * ancestor already declares is dropped. For each revision, the set of
 * dependencies declared below it is propagated in rank order as a bitset
 * over the distinct dependency targets; revisions with nothing below share
 * no storage. */
static int normalize_deps(lm_graph *g, lm_error *err)
{
	int n = g->n, rc = 0, ntargets = 0;
	int *tindex = malloc(count(n) * sizeof *tindex);
	int *order = malloc(count(n) * sizeof *order);
	uint64_t **below = calloc(count(n), sizeof *below);
	if (!tindex || !order || !below) {
		rc = oom(err);
		goto done;
	}
	for (int i = 0; i < n; i++)
		tindex[i] = -1;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < g->revs[i].ndeps; j++)
			if (tindex[g->revs[i].deps[j]] < 0)
				tindex[g->revs[i].deps[j]] = ntargets++;
	for (int i = 0; i < n; i++)
		order[g->revs[i].rank] = i;
	size_t words = ((size_t)ntargets + 63) / 64;
	for (int k = 0; k < n && ntargets; k++) {
		int v = order[k];
		revision *r = &g->revs[v];
		/* below[v] = union over parents p of below[p] + deps(p) */
		int any = 0;
		for (int j = 0; j < r->nparents && !any; j++) {
			revision *p = &g->revs[r->parents[j]];
			any = below[r->parents[j]] || p->ndeps;
		}
		if (!any)
			continue;
		if (!(below[v] = calloc(words, sizeof(uint64_t)))) {
			rc = oom(err);
			goto done;
		}
		for (int j = 0; j < r->nparents; j++) {
			int p = r->parents[j];
			if (below[p])
				for (size_t w = 0; w < words; w++)
					below[v][w] |= below[p][w];
			for (int d = 0; d < g->revs[p].ndeps; d++) {
				int t = tindex[g->revs[p].deps[d]];
				below[v][t / 64] |= (uint64_t)1 << (t % 64);
			}
		}
	}
	for (int i = 0; i < n; i++) {
		revision *r = &g->revs[i];
		int keep[r->ndeps ? r->ndeps : 1], nk = 0;
		for (int j = 0; j < r->ndeps; j++) {
			int t = tindex[r->deps[j]];
			if (below[i] && (below[i][t / 64] >> (t % 64) & 1))
				continue;
			keep[nk++] = r->deps[j];
		}
		if (set_down(r, keep, nk) < 0) {
			rc = oom(err);
			goto done;
		}
	}
done:
	if (below)
		for (int i = 0; i < n; i++)
			free(below[i]);
	free(below);
	free(tindex);
	free(order);
	return rc;
}

/* Alembic's _add_branches: a label goes to every descendant and, from the
 * last node of that walk, down through revisions that are neither branch
 * points (counting dependents) nor merge points. */
static int spread_labels(lm_graph *g, lm_error *err)
{
	int n = g->n, rc = 0;
	int *stack = malloc(count(n) * sizeof *stack);
	marks mk = { 0 };
	if (!stack || marks_init(&mk, n) < 0) {
		rc = oom(err);
		goto done;
	}
	for (int i = 0; i < n; i++)
		for (int j = 0; j < g->revs[i].nown_labels; j++)
			if (add_label(&g->revs[i], g->revs[i].own_labels[j]) < 0) {
				rc = oom(err);
				goto done;
			}
	for (int i = 0; i < n; i++) {
		revision *r = &g->revs[i];
		if (!r->nown_labels)
			continue;
		int sp = 0, last = i;
		marks_reset(&mk, n);
		stack[sp++] = i;
		/* Alembic's stack walk: pop, skip seen, push nextrev, yield */
		while (sp) {
			int v = stack[--sp];
			if (mk.m[v] == mk.epoch)
				continue;
			mk.m[v] = mk.epoch;
			revision *w = &g->revs[v];
			for (int j = 0; j < w->nchildren; j++)
				if (mk.m[w->children[j]] != mk.epoch)
					stack[sp++] = w->children[j];
			for (int j = 0; j < r->nown_labels; j++)
				if (add_label(w, r->own_labels[j]) < 0) {
					rc = oom(err);
					goto done;
				}
			last = v;
		}
		for (int v = last; v >= 0;) {
			revision *w = &g->revs[v];
			if (w->nall_children > 1 || w->nparents > 1)
				break;
			for (int j = 0; j < r->nown_labels; j++)
				if (add_label(w, r->own_labels[j]) < 0) {
					rc = oom(err);
					goto done;
				}
			v = w->nparents ? w->parents[0] : -1;
		}
	}
done:
	free(stack);
	free(mk.m);
	return rc;
}

/* Pre/post numbers over the spanning forest where each revision hangs
 * from its first down revision. */
static int number_forest(lm_graph *g, lm_error *err)
{
	int n = g->n, clock = 0, sp = 0;
	int *stack = malloc(count(n) * sizeof *stack);
	int *next = calloc(count(n), sizeof *next); /* child cursor */
	if (!stack || !next) {
		free(stack);
		free(next);
		return oom(err);
	}
	for (int root = 0; root < n; root++) {
		if (g->revs[root].ndown)
			continue;
		g->revs[root].pre = clock++;
		stack[sp++] = root;
		while (sp) {
			int v = stack[sp - 1];
			revision *r = &g->revs[v];
			if (next[v] < r->nall_children) {
				int w = r->all_children[next[v]++];
				if (g->revs[w].down[0] != v)
					continue;
				g->revs[w].pre = clock++;
				stack[sp++] = w;
				continue;
			}
			r->post = clock++;
			sp--;
		}
	}
	free(stack);
	free(next);
	return 0;
}

int lm_graph_build(lm_graph *g, lm_error *err)
{
	int n = g->n, rc = 0;
	if (g->built)
		return 0;
	if (g->label_table)
		return lm_error_set(err, LM_EFAIL,
			"revision graph failed to build before; load it again");
	/* self-loops, as Alembic's Revision constructor sees them */
	for (int i = 0; i < n; i++) {
		revision *r = &g->revs[i];
		for (int j = 0; j < r->ndown_names; j++)
			if (strcmp(r->down_names[j], r->id) == 0)
				return lm_error_set(err, LM_EFAIL,
					"Self-loop is detected in revisions (%s)", r->id);
		for (int j = 0; j < r->ndep_names; j++)
			if (strcmp(r->dep_names[j], r->id) == 0)
				return lm_error_set(err, LM_EFAIL,
					"Dependency self-loop is detected in revisions (%s)",
					r->id);
	}
	/* branch labels share the key space of ids */
	int nl = 0;
	for (int i = 0; i < n; i++)
		nl += g->revs[i].nown_labels;
	g->label_cap = 16;
	while (g->label_cap < nl * 2 + 2)
		g->label_cap *= 2;
	g->label_table = malloc((size_t)g->label_cap * sizeof *g->label_table);
	if (!g->label_table)
		return oom(err);
	for (int i = 0; i < g->label_cap; i++)
		g->label_table[i].rev = -1;
	for (int i = 0; i < n; i++) {
		revision *r = &g->revs[i];
		for (int j = 0; j < r->nown_labels; j++) {
			int used = find_name(g, r->own_labels[j]);
			if (used >= 0)
				return lm_error_set(err, LM_EFAIL,
					"Branch name '%s' in revision '%s' already used by revision '%s'",
					r->own_labels[j], r->id, g->revs[used].id);
			label_put(g, r->own_labels[j], i);
		}
	}
	g->by_id = malloc(count(n) * sizeof *g->by_id);
	if (!g->by_id)
		return oom(err);
	for (int i = 0; i < n; i++)
		g->by_id[i] = i;
	if (sort_by_id(g, g->by_id, n) < 0)
		return oom(err);

	if ((rc = build_links(g, err)) < 0)
		return rc;
	for (int i = 0; i < n; i++)
		if (set_down(&g->revs[i], g->revs[i].deps, g->revs[i].ndeps) < 0)
			return oom(err);
	if ((rc = check_cycles(g, err)) < 0)
		return rc;
	if ((rc = normalize_deps(g, err)) < 0)
		return rc;
	if ((rc = spread_labels(g, err)) < 0)
		return rc;
	if ((rc = number_forest(g, err)) < 0)
		return rc;

	g->heads = malloc(count(n) * sizeof(int));
	g->real_heads = malloc(count(n) * sizeof(int));
	g->bases = malloc(count(n) * sizeof(int));
	if (!g->heads || !g->real_heads || !g->bases)
		return oom(err);
	for (int i = 0; i < n; i++) {
		revision *r = &g->revs[i];
		r->flags = 0;
		if (!r->nchildren) {
			r->flags |= LM_REV_HEAD;
			g->heads[g->nheads++] = i;
		}
		if (!r->nall_children) {
			r->flags |= LM_REV_REAL_HEAD;
			g->real_heads[g->nreal_heads++] = i;
		}
		if (!r->nparents) {
			r->flags |= LM_REV_BASE;
			g->bases[g->nbases++] = i;
		}
		if (r->nchildren > 1)
			r->flags |= LM_REV_BRANCH_POINT;
		if (r->nparents > 1)
			r->flags |= LM_REV_MERGE_POINT;
	}
	g->built = 1;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* per-query scratch */

enum {
	M_LINEAGE = 1,
	M_A = 2,
	M_B = 4,
	M_C = 8,
	M_D = 16,
};

typedef struct ctx {
	const lm_graph *g;
	int *rows; /* owned: the caller's rows, deduplicated, in their order */
	int nrows;
	unsigned char *mark; /* owned: n bytes, M_* bits; clear what you use */
	unsigned char *aux;  /* owned: n bytes */
	int *stack;          /* owned: n ints */
	marks mk;            /* owned storage */
} ctx;

static void ctx_free(ctx *c)
{
	free(c->rows);
	free(c->mark);
	free(c->aux);
	free(c->stack);
	free(c->mk.m);
}

static int ctx_init(ctx *c, const lm_graph *g, const int *rows, int nrows,
	lm_error *err)
{
	int n = g->n > 0 ? g->n : 1;
	memset(c, 0, sizeof *c);
	c->g = g;
	if (!g->built)
		return lm_error_set(err, LM_EFAIL,
			"revision graph used before lm_graph_build");
	c->rows = malloc(count(nrows) * sizeof *c->rows);
	c->mark = calloc((size_t)n, 1);
	c->aux = calloc((size_t)n, 1);
	c->stack = malloc((size_t)n * sizeof *c->stack);
	if (!c->rows || !c->mark || !c->aux || !c->stack
		|| marks_init(&c->mk, n) < 0) {
		ctx_free(c);
		return oom(err);
	}
	for (int i = 0; i < nrows; i++) {
		int r = rows[i];
		if (r < 0 || r >= g->n) {
			ctx_free(c);
			return lm_error_set(err, LM_EFAIL,
				"version row %d is not a revision of this graph", r);
		}
		if (c->mark[r] & M_A)
			continue;
		c->mark[r] |= M_A;
		c->rows[c->nrows++] = r;
	}
	for (int i = 0; i < c->nrows; i++)
		c->mark[c->rows[i]] = 0;
	return 0;
}

static void clear_bits(ctx *c, unsigned char bits)
{
	for (int i = 0; i < c->g->n; i++)
		c->mark[i] &= (unsigned char)~bits;
}

/* Marks with `bit` everything sharing lineage with rev: its ancestors and
 * descendants, through down_revision only or also depends_on. */
static void lineage(ctx *c, int rev, int deps, unsigned char bit)
{
	int one = rev;
	closure(c->g, &one, 1, deps ? E_DOWN : E_PARENTS, c->mark, bit, c->stack);
	c->mark[rev] &= (unsigned char)~bit;
	closure(c->g, &one, 1, deps ? E_ALL_CHILDREN : E_CHILDREN, c->mark, bit,
		c->stack);
}

/* ------------------------------------------------------------------------ */
/* resolution */

/* Ids longer than three characters that start with ident, in load order;
 * with filter, only those it marks M_LINEAGE. */
static int prefix_candidates(const lm_graph *g, const char *ident,
	const unsigned char *filter, ivec *out)
{
	size_t len = strlen(ident);
	int lo = 0, hi = g->n;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (strcmp(g->revs[g->by_id[mid]].id, ident) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (int i = lo; len && i < g->n; i++) {
		int r = g->by_id[i];
		if (strncmp(g->revs[r].id, ident, len) != 0)
			break;
		if (strlen(g->revs[r].id) <= 3)
			continue;
		if (filter && !(filter[r] & M_LINEAGE))
			continue;
		if (ivec_push(out, r) < 0)
			return -1;
	}
	if (out->n > 1)
		qsort(out->v, (size_t)out->n, sizeof *out->v, int_cmp);
	return 0;
}

/* Not found (no candidate) or ambiguous (several). */
static void prefix_error(const lm_graph *g, const char *ident,
	const ivec *cand, lm_error *err)
{
	if (cand->n == 0) {
		lm_error_set(err, LM_EFAIL, "Revision '%s' not found%s", ident,
			strlen(ident) < 4 ?
				"; use at least four characters of a revision id" : "");
		return;
	}
	char buf[800];
	format_ids(g, cand->v, cand->n, 1, buf, sizeof buf);
	lm_error_set(err, LM_EFAIL, "Multiple revisions start with '%s': %s",
		ident, buf);
}

static int multiple_heads(const lm_graph *g, const char *arg, const int *v,
	int n, lm_error *err)
{
	char buf[700];
	format_ids(g, v, n, 1, buf, sizeof buf);
	return lm_error_set(err, LM_EFAIL,
		"Multiple heads are present for '%s': %s; please specify a revision, '<branchname>@head' to narrow to a specific head, or 'heads' for all heads",
		arg, buf);
}

/* Alembic's _revision_for_ident: exact id or label, else a unique prefix
 * (among ids longer than three characters); with branch >= 0 the result
 * must share lineage with it (M_LINEAGE marks that lineage). */
static int ident_lookup(ctx *c, const char *ident, int branch,
	const char *branch_name, int *out, lm_error *err)
{
	const lm_graph *g = c->g;
	int r = find_name(g, ident);
	if (r < 0) {
		ivec cand = { 0 };
		if (prefix_candidates(g, ident, branch >= 0 ? c->mark : NULL,
			    &cand) < 0) {
			free(cand.v);
			return oom(err);
		}
		if (cand.n != 1) {
			prefix_error(g, ident, &cand, err);
			free(cand.v);
			return LM_EFAIL;
		}
		r = cand.v[0];
		free(cand.v);
	}
	if (branch >= 0 && !(c->mark[r] & M_LINEAGE))
		return lm_error_set(err, LM_EFAIL,
			"Revision '%s' is not a member of branch '%s'", g->revs[r].id,
			branch_name);
	*out = r;
	return 0;
}

/* Alembic's _resolve_branch: a label, else any revision identifier. */
static int branch_lookup(ctx *c, const char *name, int *out, lm_error *err)
{
	int r = find_name(c->g, name);
	if (r < 0) {
		lm_error sub = { 0 };
		int rc = ident_lookup(c, name, -1, NULL, &r, &sub);
		if (rc == LM_ENOMEM)
			return oom(err);
		if (rc < 0)
			return lm_error_set(err, LM_EFAIL, "No such branch: '%s'",
				name);
	}
	*out = r;
	return 0;
}

static int push_unique(ivec *v, int x)
{
	for (int i = 0; i < v->n; i++)
		if (v->v[i] == x)
			return 0;
	return ivec_push(v, x);
}

/* Alembic's get_revisions for one identifier that is not relative: head,
 * heads, base, [label@]rev, label@head(s), label@base. *branch gets the
 * label's revision, or -1. */
static int resolve_plain(ctx *c, const char *ident, ivec *out, int *branch,
	lm_error *err)
{
	const lm_graph *g = c->g;
	const char *at = strchr(ident, '@');
	const char *rest = at ? at + 1 : ident;
	char label[512] = "";
	int b = -1, rc = 0;
	*branch = -1;
	if (at) {
		size_t l = (size_t)(at - ident);
		if (l >= sizeof label)
			l = sizeof label - 1;
		memcpy(label, ident, l);
		label[l] = '\0';
		if ((rc = branch_lookup(c, label, &b, err)) < 0)
			return rc;
		clear_bits(c, M_LINEAGE);
		lineage(c, b, 0, M_LINEAGE);
		*branch = b;
	}
	if (strcmp(rest, "heads") == 0) {
		if (b < 0) {
			for (int i = 0; i < g->nreal_heads; i++)
				if (ivec_push(out, g->real_heads[i]) < 0)
					return oom(err);
			return 0;
		}
		for (int i = 0; i < g->nheads; i++)
			if ((c->mark[g->heads[i]] & M_LINEAGE)
				&& ivec_push(out, g->heads[i]) < 0)
				return oom(err);
		return 0;
	}
	if (strcmp(rest, "head") == 0) {
		ivec h = { 0 };
		for (int i = 0; i < g->nheads; i++)
			if ((b < 0 || (c->mark[g->heads[i]] & M_LINEAGE))
				&& ivec_push(&h, g->heads[i]) < 0) {
				free(h.v);
				return oom(err);
			}
		if (h.n > 1) {
			char arg[600];
			snprintf(arg, sizeof arg, "%s%shead", label, b >= 0 ? "@" : "");
			rc = multiple_heads(g, arg, h.v, h.n, err);
		} else if (h.n == 1 && ivec_push(out, h.v[0]) < 0) {
			rc = oom(err);
		}
		free(h.v);
		return rc;
	}
	if (strcmp(rest, "base") == 0)
		return 0;
	int r;
	if ((rc = ident_lookup(c, rest, b, label, &r, err)) < 0)
		return rc;
	return push_unique(out, r) < 0 ? oom(err) : 0;
}

/* Alembic's get_revision: one revision, W_NONE for base. */
static int resolve_single(ctx *c, const char *ident, int *out, lm_error *err)
{
	ivec v = { 0 };
	int branch, rc = resolve_plain(c, ident, &v, &branch, err);
	if (rc == 0) {
		if (v.n > 1)
			rc = multiple_heads(c->g, ident, v.v, v.n, err);
		else
			*out = v.n ? v.v[0] : W_NONE;
	}
	free(v.v);
	return rc;
}

/* A relative identifier, Alembic's (?:(.+?)@)?(\w+)?((?:\+|-)\d+) matched
 * against the whole string. */
typedef struct rel {
	char *buf; /* owned: the pieces below point into it */
	const char *label; /* NULL when absent */
	const char *symbol; /* NULL when absent */
	const char *relstr; /* "+2", "-1" */
	int sign;
	int steps; /* absolute value, capped at INT_MAX */
} rel;

static int is_word(unsigned char ch)
{
	return ch == '_' || ch >= 0x80 || (ch >= '0' && ch <= '9')
		|| (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* 1: relative (r filled; free r->buf), 0: not relative, <0: out of memory */
static int parse_rel(const char *s, rel *r)
{
	size_t len = strlen(s), p = len;
	memset(r, 0, sizeof *r);
	while (p > 0 && s[p - 1] >= '0' && s[p - 1] <= '9')
		p--;
	if (p == len || p == 0 || (s[p - 1] != '+' && s[p - 1] != '-'))
		return 0;
	size_t sign = p - 1, q = sign;
	while (q > 0 && is_word((unsigned char)s[q - 1]))
		q--;
	if (q > 0 && (s[q - 1] != '@' || q == 1))
		return 0;
	if (!(r->buf = malloc(len + 3)))
		return -1;
	/* layout: label \0 symbol \0 relstr \0 */
	char *b = r->buf;
	if (q > 0) {
		memcpy(b, s, q - 1);
		b[q - 1] = '\0';
		r->label = b;
	}
	char *sym = b + q;
	memcpy(sym, s + q, sign - q);
	sym[sign - q] = '\0';
	if (sign > q)
		r->symbol = sym;
	char *rs = sym + (sign - q) + 1;
	memcpy(rs, s + sign, len - sign + 1);
	r->relstr = rs;
	r->sign = s[sign] == '+' ? 1 : -1;
	long long steps = 0;
	for (size_t i = sign + 1; i < len; i++) {
		steps = steps * 10 + (s[i] - '0');
		if (steps > INT_MAX)
			steps = INT_MAX;
	}
	r->steps = (int)steps;
	return 1;
}

/* Alembic's _walk: `steps` up (nextrev, bases from W_NONE, filtered to the
 * lineage marked M_LINEAGE when branch >= 0) or down (down_revision). */
static int walk(ctx *c, int start, int up, int steps, int branch,
	int no_overwalk, int *out, lm_error *err)
{
	const lm_graph *g = c->g;
	int cur = start;
	for (int s = 0; s < steps; s++) {
		const int *cand;
		int ncand, one = W_BASE;
		int filt[2], nf = 0, first = -1;
		if (up) {
			if (cur < 0) {
				cand = g->bases;
				ncand = g->nbases;
			} else {
				cand = g->revs[cur].children;
				ncand = g->revs[cur].nchildren;
			}
		} else if (cur == W_BASE) {
			cand = NULL;
			ncand = 0;
		} else if (cur == W_NONE) {
			cand = g->heads;
			ncand = g->nheads;
		} else {
			cand = g->revs[cur].parents;
			ncand = g->revs[cur].nparents;
			if (!ncand) {
				cand = &one;
				ncand = 1;
			}
		}
		int total = 0;
		for (int i = 0; i < ncand; i++) {
			if (up && branch >= 0 && !(c->mark[cand[i]] & M_LINEAGE))
				continue;
			if (nf < 2)
				filt[nf++] = cand[i];
			if (first < 0)
				first = i;
			total++;
		}
		if (total == 0) {
			*out = no_overwalk ? W_OVERWALK : cur;
			return 0;
		}
		if (total > 1) {
			ivec v = { 0 };
			char buf[700];
			for (int i = 0; i < ncand; i++)
				if (!(up && branch >= 0 && !(c->mark[cand[i]] & M_LINEAGE))
					&& ivec_push(&v, cand[i]) < 0) {
					free(v.v);
					return oom(err);
				}
			format_ids(g, v.v, v.n, 1, buf, sizeof buf);
			free(v.v);
			return lm_error_set(err, LM_EFAIL,
				"Ambiguous walk from '%s': several next revisions (%s)",
				cur >= 0 ? g->revs[cur].id : "base", buf);
		}
		cur = filt[0];
	}
	*out = cur;
	return 0;
}

static int didnt_produce(const char *what, int steps, lm_error *err)
{
	return lm_error_set(err, LM_EFAIL,
		"Relative revision %s didn't produce %d migrations", what, steps);
}

static int ambiguous_rows(ctx *c, const int *v, int n, int down, lm_error *err)
{
	char buf[700];
	format_ids(c->g, v, n, 1, buf, sizeof buf);
	if (down)
		return lm_error_set(err, LM_EFAIL,
			"Ambiguous downgrade from multiple current revisions (%s); name the target revision",
			buf);
	return lm_error_set(err, LM_EFAIL,
		"Ambiguous upgrade from multiple current revisions (%s)", buf);
}

/* The members of `set` that no other member has as (E_DOWN) ancestor's
 * child: the tips of an ancestor-closed set, marked with bit in c->mark. */
static int tips_of(ctx *c, unsigned char bit, ivec *out)
{
	const lm_graph *g = c->g;
	for (int i = 0; i < g->n; i++) {
		if (!(c->mark[i] & bit))
			continue;
		int tip = 1;
		for (int j = 0; j < g->revs[i].nchildren && tip; j++)
			tip = !(c->mark[g->revs[i].children[j]] & bit);
		if (tip && ivec_push(out, i) < 0)
			return -1;
	}
	return 0;
}

/* The revision `+N` starts from: the one current revision (on the branch
 * marked M_LINEAGE when branch >= 0), or W_NONE. */
static int upgrade_start(ctx *c, int branch, const int *from, int nfrom,
	int *start, lm_error *err)
{
	const lm_graph *g = c->g;
	ivec sv = { 0 };
	int rc = 0;
	for (int i = 0; i < nfrom; i++)
		if ((branch < 0 || (c->mark[from[i]] & M_LINEAGE))
			&& push_unique(&sv, from[i]) < 0)
			goto nomem;
	if (branch >= 0 && !sv.n && nfrom) {
		/* the branch is not at a current revision: start from the tips
		 * of its part of the current ancestry */
		clear_bits(c, M_B);
		closure(g, from, nfrom, E_DOWN, c->mark, M_B, c->stack);
		for (int i = 0; i < g->n; i++)
			if (!(c->mark[i] & M_LINEAGE))
				c->mark[i] &= (unsigned char)~M_B;
		if (tips_of(c, M_B, &sv) < 0)
			goto nomem;
	}
	if (sv.n > 1)
		rc = ambiguous_rows(c, sv.v, sv.n, 0, err);
	else
		*start = sv.n ? sv.v[0] : W_NONE;
	free(sv.v);
	return rc;
nomem:
	free(sv.v);
	return oom(err);
}

/* Resolves "label@symbol" (or "symbol") to one revision or W_NONE. */
static int resolve_labelled(ctx *c, const rel *r, int *out, lm_error *err)
{
	if (!r->label)
		return resolve_single(c, r->symbol, out, err);
	char *sym = malloc(strlen(r->label) + strlen(r->symbol) + 2);
	if (!sym)
		return oom(err);
	sprintf(sym, "%s@%s", r->label, r->symbol);
	int rc = resolve_single(c, sym, out, err);
	free(sym);
	return rc;
}

/* Alembic's _parse_upgrade_target. `from` are the current revisions that
 * `+N` counts from. */
static int parse_upgrade_target(ctx *c, const char *target, const int *from,
	int nfrom, int no_overwalk, ivec *out, lm_error *err)
{
	rel r;
	int rc = 0, branch = -1, start, res = W_NONE;
	int is_rel = parse_rel(target, &r);
	if (is_rel < 0)
		return oom(err);
	if (!is_rel)
		return resolve_plain(c, target, out, &branch, err);
	if (r.label && (rc = branch_lookup(c, r.label, &branch, err)) < 0)
		goto done;
	if (r.sign > 0 && r.steps > 0) {
		if (r.symbol)
			rc = resolve_single(c, r.symbol, &start, err);
		if (rc < 0)
			goto done;
		if (branch >= 0) {
			clear_bits(c, M_LINEAGE);
			lineage(c, branch, 0, M_LINEAGE);
		}
		if (!r.symbol
			&& (rc = upgrade_start(c, branch, from, nfrom, &start, err)) < 0)
			goto done;
		if ((rc = walk(c, start, 1, r.steps, branch, no_overwalk, &res,
			     err)) < 0)
			goto done;
		if (res == W_OVERWALK) {
			rc = didnt_produce(r.symbol ? target : r.relstr, r.steps, err);
			goto done;
		}
	} else {
		if (!r.symbol) {
			rc = lm_error_set(err, LM_EFAIL,
				"Relative revision %s is not valid for upgrade",
				r.relstr);
			goto done;
		}
		if ((rc = resolve_labelled(c, &r, &start, err)) < 0)
			goto done;
		if ((rc = walk(c, start, 0, r.steps, -1, no_overwalk, &res,
			     err)) < 0)
			goto done;
		if (res == W_OVERWALK) {
			rc = didnt_produce(target, r.steps, err);
			goto done;
		}
	}
	if (res >= 0 && push_unique(out, res) < 0)
		rc = oom(err);
done:
	free(r.buf);
	return rc;
}

/* Alembic's _parse_downgrade_target: the target (W_NONE for base) and the
 * branch that narrows the downgrade (-1 for none). */
static int parse_downgrade_target(ctx *c, const char *target, int *branch_out,
	int *out, lm_error *err)
{
	const lm_graph *g = c->g;
	rel r;
	int rc = 0, branch = -1, start, res;
	int is_rel = parse_rel(target, &r);
	*branch_out = -1;
	if (is_rel < 0)
		return oom(err);
	if (!is_rel) {
		const char *at = strrchr(target, '@');
		if ((rc = resolve_single(c, target, out, err)) < 0)
			return rc;
		if (at && at > target) {
			char label[512];
			size_t l = (size_t)(at - target);
			if (l >= sizeof label)
				l = sizeof label - 1;
			memcpy(label, target, l);
			label[l] = '\0';
			if ((rc = branch_lookup(c, label, branch_out, err)) < 0)
				return rc;
		}
		return 0;
	}
	if (r.label) {
		if ((rc = branch_lookup(c, r.label, &branch, err)) < 0)
			goto done;
		clear_bits(c, M_LINEAGE);
		lineage(c, branch, 0, M_LINEAGE);
	}
	if (r.sign > 0 || r.steps == 0) {
		if (!r.symbol) {
			rc = lm_error_set(err, LM_EFAIL,
				"Relative revision %s is not valid for downgrade",
				r.relstr);
			goto done;
		}
		if ((rc = resolve_single(c, r.symbol, &start, err)) < 0)
			goto done;
		if (r.label) {
			clear_bits(c, M_LINEAGE);
			lineage(c, branch, 0, M_LINEAGE);
		}
		if ((rc = walk(c, start, r.sign > 0, r.steps, branch, 1, &res,
			     err)) < 0)
			goto done;
		if (res == W_OVERWALK) {
			rc = didnt_produce(target, r.steps, err);
			goto done;
		}
		*branch_out = branch;
		*out = res >= 0 ? res : W_NONE;
		goto done;
	}
	if (!r.symbol) {
		ivec sv = { 0 };
		if (branch >= 0) {
			for (int i = 0; i < c->nrows; i++)
				if ((c->mark[c->rows[i]] & M_LINEAGE)
					&& push_unique(&sv, c->rows[i]) < 0)
					goto nomem;
			if (!sv.n) {
				/* Alembic's _get_all_current: branch heads of the
				 * current ancestry */
				clear_bits(c, M_B);
				closure(g, c->rows, c->nrows, E_DOWN, c->mark, M_B,
					c->stack);
				ivec t = { 0 };
				if (tips_of(c, M_B, &t) < 0) {
					free(t.v);
					goto nomem;
				}
				for (int i = 0; i < t.n; i++)
					if ((c->mark[t.v[i]] & M_LINEAGE)
						&& ivec_push(&sv, t.v[i]) < 0) {
						free(t.v);
						goto nomem;
					}
				free(t.v);
			}
		} else {
			for (int i = 0; i < c->nrows; i++)
				if (ivec_push(&sv, c->rows[i]) < 0)
					goto nomem;
		}
		if (sv.n == 0) {
			free(sv.v);
			rc = didnt_produce(r.relstr, r.steps, err);
			goto done;
		}
		if (sv.n > 1) {
			rc = ambiguous_rows(c, sv.v, sv.n, 1, err);
			free(sv.v);
			goto done;
		}
		start = sv.v[0];
		free(sv.v);
		if (branch < 0)
			branch = start; /* Alembic narrows to the row's own branch */
		if ((rc = walk(c, start, 0, r.steps, -1, 1, &res, err)) < 0)
			goto done;
		if (res == W_OVERWALK) {
			rc = didnt_produce(r.relstr, r.steps, err);
			goto done;
		}
		*branch_out = branch;
		*out = res >= 0 ? res : W_NONE;
		goto done;
	nomem:
		free(sv.v);
		rc = oom(err);
		goto done;
	}
	if ((rc = resolve_labelled(c, &r, &start, err)) < 0)
		goto done;
	if ((rc = walk(c, start, 0, r.steps, -1, 1, &res, err)) < 0)
		goto done;
	if (res == W_OVERWALK) {
		rc = didnt_produce(target, r.steps, err);
		goto done;
	}
	*branch_out = branch;
	*out = res >= 0 ? res : W_NONE;
done:
	free(r.buf);
	return rc;
}

static int revs_out(lm_revs *out, const ivec *v, lm_error *err)
{
	out->n = v->n;
	out->revs = malloc(count(v->n) * sizeof *out->revs);
	if (!out->revs) {
		out->n = 0;
		return oom(err);
	}
	if (v->n)
		memcpy(out->revs, v->v, (size_t)v->n * sizeof *out->revs);
	return 0;
}

int lm_graph_resolve(const lm_graph *g, const char *ident, const int *rows,
	int nrows, lm_revs *out, lm_error *err)
{
	ctx c;
	ivec v = { 0 };
	rel r;
	int rc, branch;
	out->revs = NULL;
	out->n = 0;
	if ((rc = ctx_init(&c, g, rows, nrows, err)) < 0)
		return rc;
	int is_rel = parse_rel(ident, &r);
	free(r.buf);
	if (is_rel < 0) {
		rc = oom(err);
	} else if (is_rel && r.sign < 0) {
		int t;
		rc = parse_downgrade_target(&c, ident, &branch, &t, err);
		if (rc == 0 && t >= 0 && ivec_push(&v, t) < 0)
			rc = oom(err);
	} else {
		rc = parse_upgrade_target(&c, ident, c.rows, c.nrows, 1, &v, err);
	}
	if (rc == 0)
		rc = revs_out(out, &v, err);
	free(v.v);
	ctx_free(&c);
	return rc;
}

/* A depends_on entry: exact id or branch label, else a unique prefix. With
 * no candidate the message is left empty for the caller to word. */
static int resolve_dep(const lm_graph *g, const char *name, int *out,
	lm_error *err)
{
	int r = find_name(g, name);
	if (r >= 0) {
		*out = r;
		return 0;
	}
	ivec cand = { 0 };
	if (prefix_candidates(g, name, NULL, &cand) < 0) {
		free(cand.v);
		return oom(err);
	}
	if (cand.n == 1) {
		*out = cand.v[0];
		free(cand.v);
		return 0;
	}
	if (cand.n > 1)
		prefix_error(g, name, &cand, err);
	free(cand.v);
	return LM_EFAIL;
}

/* ------------------------------------------------------------------------ */
/* order of application */

/* Alembic's _topological_sort: the members of todo (non-zero bytes; the
 * array is consumed) in downgrade order, starting from `heads`.
 *
 * Alembic keeps the current heads in a list, walks down from one of them,
 * and switches to the first other head (in list order) whose ancestors hold
 * the candidate, so branches are finished before their branch point. Its
 * per-head ancestor sets are replaced here by two observations: the
 * candidate is an ancestor of another head exactly when one of its children
 * in todo is still pending (a counter), and which head that is first is
 * found by a search down from each head, pruned by rank, only then. */
static int topo_sort(ctx *c, unsigned char *todo, const int *heads,
	int nheads, ivec *out, lm_error *err)
{
	const lm_graph *g = c->g;
	int n = g->n, rc = 0, k = 0, idx = 0;
	int *ch = malloc(count(n) * sizeof *ch);
	int *pend = calloc(count(n), sizeof *pend);
	unsigned char *inch = calloc(count(n), 1);
	if (!ch || !pend || !inch) {
		rc = oom(err);
		goto done;
	}
	for (int v = 0; v < n; v++) {
		if (!todo[v])
			continue;
		for (int j = 0; j < g->revs[v].ndown; j++)
			if (todo[g->revs[v].down[j]])
				pend[g->revs[v].down[j]]++;
	}
	for (int i = 0; i < nheads; i++) {
		int h = heads[i];
		if (h >= 0 && todo[h] && !inch[h]) {
			inch[h] = 1;
			ch[k++] = h;
		}
	}
	qsort(ch, (size_t)k, sizeof *ch, int_cmp);
	while (k) {
		int cand = ch[idx];
		if (pend[cand] > 0) {
			int found = -1;
			for (int j = 0; j < k && found < 0; j++) {
				int h = ch[j];
				if (j == idx || g->revs[h].rank < g->revs[cand].rank)
					continue;
				if (tree_anc(g, cand, h)) {
					found = j;
					break;
				}
				/* search down through pending revisions only */
				int sp = 0, trank = g->revs[cand].rank;
				marks_reset(&c->mk, n);
				c->mk.m[h] = c->mk.epoch;
				c->stack[sp++] = h;
				while (sp && found < 0) {
					int v = c->stack[--sp];
					if (v == cand) {
						found = j;
						break;
					}
					for (int e = 0; e < g->revs[v].ndown; e++) {
						int p = g->revs[v].down[e];
						if (!todo[p] || g->revs[p].rank < trank
							|| c->mk.m[p] == c->mk.epoch)
							continue;
						c->mk.m[p] = c->mk.epoch;
						c->stack[sp++] = p;
					}
				}
			}
			if (found >= 0) {
				idx = found;
				continue;
			}
		}
		if (ivec_push(out, cand) < 0) {
			rc = oom(err);
			goto done;
		}
		todo[cand] = 0;
		inch[cand] = 0;
		const revision *r = &g->revs[cand];
		int nadd = 0;
		for (int j = 0; j < r->ndown; j++) {
			int p = r->down[j];
			if (!todo[p])
				continue;
			pend[p]--;
			if (inch[p])
				continue;
			inch[p] = 1;
			if (nadd++ == 0)
				ch[idx] = p;
			else
				ch[k++] = p;
		}
		if (!nadd) {
			memmove(ch + idx, ch + idx + 1, (size_t)(k - idx - 1) * sizeof *ch);
			k--;
			idx = idx > 0 ? idx - 1 : 0;
		}
	}
done:
	free(ch);
	free(pend);
	free(inch);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* version rows */

typedef struct rowset {
	unsigned char *in; /* owned: n bytes */
	ivec v;            /* owned: the rows, sorted */
} rowset;

static void rowset_free(rowset *s)
{
	free(s->in);
	free(s->v.v);
}

static int rowset_init(rowset *s, int n, const int *rows, int nrows)
{
	memset(s, 0, sizeof *s);
	if (!(s->in = calloc(count(n), 1)))
		return -1;
	for (int i = 0; i < nrows; i++) {
		if (s->in[rows[i]])
			continue;
		s->in[rows[i]] = 1;
		if (ivec_push(&s->v, rows[i]) < 0)
			return -1;
	}
	if (s->v.n > 1)
		qsort(s->v.v, (size_t)s->v.n, sizeof *s->v.v, int_cmp);
	return 0;
}

static int rowset_add(rowset *s, int r)
{
	if (s->in[r])
		return 0;
	if (ivec_push(&s->v, r) < 0)
		return -1;
	s->in[r] = 1;
	int i = s->v.n - 1;
	while (i > 0 && s->v.v[i - 1] > r) {
		s->v.v[i] = s->v.v[i - 1];
		i--;
	}
	s->v.v[i] = r;
	return 0;
}

static void rowset_del(rowset *s, int r)
{
	if (!s->in[r])
		return;
	s->in[r] = 0;
	int i = 0;
	while (s->v.v[i] != r)
		i++;
	memmove(s->v.v + i, s->v.v + i + 1, (size_t)(s->v.n - i - 1) * sizeof(int));
	s->v.n--;
}

/* The simulation state of a plan: the rows, and which revisions are
 * applied. Under HeadMaintainer's rules the applied revisions are exactly
 * the ancestors of the rows after every step, which lets "is d below
 * another row" be answered by a search up from d through applied
 * revisions, stopping at the first row: short in practice, where a search
 * down from the rows would cross whole branches. */
typedef struct sim {
	rowset rows;
	unsigned char *applied; /* owned: n bytes */
	int *stack;             /* owned: n ints, for the search down */
	marks mk;               /* owned storage */
} sim;

static void sim_free(sim *s)
{
	rowset_free(&s->rows);
	free(s->applied);
	free(s->stack);
	free(s->mk.m);
}

/* Is d an ancestor-or-self (through E_DOWN) of a row other than `skip`
 * and the members of skip_set? */
static int is_other_row(const sim *s, int v, int skip, const int *skip_set,
	int nskip)
{
	if (!s->rows.in[v] || v == skip)
		return 0;
	for (int j = 0; j < nskip; j++)
		if (skip_set[j] == v)
			return 0;
	return 1;
}

static int below_other_row(ctx *c, sim *s, int d, int skip,
	const int *skip_set, int nskip)
{
	const lm_graph *g = c->g;
	int usp = 0, dsp = 0, drank = g->revs[d].rank;
	int *up = c->stack, *down = s->stack;
	marks_reset(&c->mk, g->n);
	marks_reset(&s->mk, g->n);
	if (is_other_row(s, d, skip, skip_set, nskip))
		return 1;
	c->mk.m[d] = c->mk.epoch;
	up[usp++] = d;
	for (int i = 0; i < s->rows.v.n; i++) {
		int h = s->rows.v.v[i];
		if (!is_other_row(s, h, skip, skip_set, nskip)
			|| g->revs[h].rank <= drank)
			continue;
		if (tree_anc(g, d, h))
			return 1;
		s->mk.m[h] = s->mk.epoch;
		down[dsp++] = h;
	}
	while (usp && dsp) {
		int v = up[--usp];
		for (int i = 0; i < g->revs[v].nall_children; i++) {
			int w = g->revs[v].all_children[i];
			if (!s->applied[w] || c->mk.m[w] == c->mk.epoch)
				continue;
			if (is_other_row(s, w, skip, skip_set, nskip))
				return 1;
			c->mk.m[w] = c->mk.epoch;
			up[usp++] = w;
		}
		v = down[--dsp];
		for (int i = 0; i < g->revs[v].ndown; i++) {
			int w = g->revs[v].down[i];
			if (tree_anc(g, d, w))
				return 1;
			if (g->revs[w].rank <= drank || s->mk.m[w] == s->mk.epoch)
				continue;
			s->mk.m[w] = s->mk.epoch;
			down[dsp++] = w;
		}
	}
	return 0;
}

/* HeadMaintainer.update_to_step for a revision step. */
static int apply_step(ctx *c, sim *s, int rev, int upgrade)
{
	const revision *r = &c->g->revs[rev];
	rowset *rows = &s->rows;
	int present = 0;
	for (int i = 0; i < r->ndown; i++)
		present += rows->in[r->down[i]];
	if (!upgrade) {
		if (!rows->in[rev]) {
			/* the row is not there (Alembic would fail): move what
			 * we can */
			s->applied[rev] = 0;
			if (r->ndown == 1)
				return rowset_add(rows, r->down[0]);
			return 0;
		}
		/* _unmerge_to_revisions: the parents no other row implies;
		 * none left makes this a branch delete */
		int keep[r->ndown ? r->ndown : 1], nk = 0;
		for (int i = 0; i < r->ndown; i++)
			if (!below_other_row(c, s, r->down[i], rev, NULL, 0))
				keep[nk++] = r->down[i];
		rowset_del(rows, rev);
		s->applied[rev] = 0;
		for (int i = 0; i < nk; i++)
			if (rowset_add(rows, keep[i]) < 0)
				return -1;
		return 0;
	}
	s->applied[rev] = 1;
	if (!r->ndown || !present)
		return rowset_add(rows, rev);
	if (r->ndown > 1 && present > 1) {
		/* merge: the parents not implied by the other rows go */
		int drop[r->ndown], nd = 0;
		for (int i = 0; i < r->ndown; i++)
			if (!below_other_row(c, s, r->down[i], -1, r->down, r->ndown))
				drop[nd++] = r->down[i];
		for (int i = 0; i < nd; i++)
			rowset_del(rows, drop[i]);
		return rowset_add(rows, rev);
	}
	for (int i = 0; i < r->ndown; i++)
		rowset_del(rows, r->down[i]);
	return rowset_add(rows, rev);
}

static int plan_push(lm_plan *p, int *cap, int rev, int upgrade,
	const rowset *rows)
{
	if (p->n == *cap) {
		int nc = *cap ? *cap * 2 : 8;
		lm_step *s = realloc(p->steps, (size_t)nc * sizeof *s);
		if (!s)
			return -1;
		p->steps = s;
		*cap = nc;
	}
	lm_step *st = &p->steps[p->n];
	st->rev = rev;
	st->upgrade = upgrade;
	st->nrows_after = rows->v.n;
	st->rows_after = malloc(count(rows->v.n) * sizeof(int));
	if (!st->rows_after)
		return -1;
	if (rows->v.n)
		memcpy(st->rows_after, rows->v.v, (size_t)rows->v.n * sizeof(int));
	p->n++;
	return 0;
}

/* Builds the plan that runs `order` from the rows in c. */
static int make_plan(ctx *c, const int *order, int norder, int reverse,
	int upgrade, lm_plan *out, lm_error *err)
{
	sim s = { 0 };
	int cap = 0;
	if (rowset_init(&s.rows, c->g->n, c->rows, c->nrows) < 0
		|| !(s.applied = calloc(count(c->g->n), 1))
		|| !(s.stack = malloc(count(c->g->n) * sizeof *s.stack))
		|| marks_init(&s.mk, c->g->n) < 0)
		goto nomem;
	closure(c->g, c->rows, c->nrows, E_DOWN, s.applied, 1, c->stack);
	for (int i = 0; i < norder; i++) {
		int rev = order[reverse ? norder - 1 - i : i];
		if (apply_step(c, &s, rev, upgrade) < 0
			|| plan_push(out, &cap, rev, upgrade, &s.rows) < 0)
			goto nomem;
	}
	sim_free(&s);
	return 0;
nomem:
	sim_free(&s);
	lm_plan_free(out);
	return oom(err);
}

/* Alembic's check=True on ancestor walks: no member may be an ancestor of
 * another. */
static int check_overlap(ctx *c, const int *v, int n, lm_error *err)
{
	const lm_graph *g = c->g;
	if (n < 2)
		return 0;
	clear_bits(c, M_D);
	for (int i = 0; i < n; i++)
		closure(g, g->revs[v[i]].down, g->revs[v[i]].ndown, E_DOWN, c->mark,
			M_D, c->stack);
	for (int i = 0; i < n; i++) {
		if (!(c->mark[v[i]] & M_D))
			continue;
		for (int j = 0; j < n; j++) {
			const revision *s = &g->revs[v[j]];
			if (j != i && s->ndown
				&& reaches_down(g, s->down, s->ndown, v[i], &c->mk,
					c->stack))
				return lm_error_set(err, LM_EFAIL,
					"Requested revision '%s' overlaps with other requested revisions '%s'",
					s->id, g->revs[v[i]].id);
		}
	}
	return 0;
}

int lm_graph_plan_upgrade(const lm_graph *g, const int *rows, int nrows,
	const char *target, lm_plan *out, lm_error *err)
{
	ctx c;
	ivec targets = { 0 }, order = { 0 };
	int rc;
	unsigned char *todo = NULL;
	out->steps = NULL;
	out->n = 0;
	if ((rc = ctx_init(&c, g, rows, nrows, err)) < 0)
		return rc;
	if ((rc = parse_upgrade_target(&c, target, c.rows, c.nrows, 1, &targets,
		     err)) < 0)
		goto done;
	if ((rc = check_overlap(&c, targets.v, targets.n, err)) < 0
		|| (rc = check_overlap(&c, c.rows, c.nrows, err)) < 0)
		goto done;
	if (!(todo = calloc(count(g->n), 1))) {
		rc = oom(err);
		goto done;
	}
	clear_bits(&c, M_A | M_B);
	closure(g, targets.v, targets.n, E_DOWN, c.mark, M_A, c.stack);
	closure(g, c.rows, c.nrows, E_DOWN, c.mark, M_B, c.stack);
	for (int i = 0; i < g->n; i++)
		todo[i] = (c.mark[i] & (M_A | M_B)) == M_A;
	if ((rc = topo_sort(&c, todo, targets.v, targets.n, &order, err)) < 0)
		goto done;
	rc = make_plan(&c, order.v, order.n, 1, 1, out, err);
done:
	free(todo);
	free(targets.v);
	free(order.v);
	ctx_free(&c);
	return rc;
}

int lm_graph_plan_downgrade(const lm_graph *g, const int *rows, int nrows,
	const char *target, lm_plan *out, lm_error *err)
{
	ctx c;
	ivec roots = { 0 }, order = { 0 };
	int rc, branch, trev, any = 0;
	unsigned char *todo = NULL;
	out->steps = NULL;
	out->n = 0;
	if ((rc = ctx_init(&c, g, rows, nrows, err)) < 0)
		return rc;
	if ((rc = parse_downgrade_target(&c, target, &branch, &trev, err)) < 0)
		goto done;
	if (trev == W_NONE) {
		for (int i = 0; i < g->nbases; i++)
			if (ivec_push(&roots, g->bases[i]) < 0)
				goto nomem;
	} else {
		for (int i = 0; i < g->revs[trev].nchildren; i++)
			if (ivec_push(&roots, g->revs[trev].children[i]) < 0)
				goto nomem;
	}
	if (branch >= 0 && roots.n > 1) {
		int k = 0;
		clear_bits(&c, M_C);
		closure(g, &branch, 1, E_PARENTS, c.mark, M_C, c.stack);
		for (int i = 0; i < roots.n; i++)
			if (c.mark[roots.v[i]] & M_C)
				roots.v[k++] = roots.v[i];
		roots.n = k;
		if (!k) {
			rc = lm_error_set(err, LM_EFAIL,
				"Destination '%s' is not a valid downgrade target from current head(s)",
				target);
			goto done;
		}
	}
	if (!(todo = calloc(count(g->n), 1)))
		goto nomem;
	clear_bits(&c, M_A | M_B);
	closure(g, roots.v, roots.n, E_ALL_CHILDREN, c.mark, M_A, c.stack);
	closure(g, c.rows, c.nrows, E_DOWN, c.mark, M_B, c.stack);
	for (int i = 0; i < g->n; i++) {
		todo[i] = (c.mark[i] & (M_A | M_B)) == (M_A | M_B);
		any |= todo[i];
	}
	if (trev >= 0 && !any) {
		int in_rows = 0;
		for (int i = 0; i < c.nrows; i++)
			in_rows |= c.rows[i] == trev;
		if (!in_rows) {
			rc = lm_error_set(err, LM_EFAIL,
				"Destination '%s' is not a valid downgrade target from current head(s)",
				target);
			goto done;
		}
	}
	if ((rc = topo_sort(&c, todo, c.rows, c.nrows, &order, err)) < 0)
		goto done;
	rc = make_plan(&c, order.v, order.n, 0, 0, out, err);
	goto done;
nomem:
	rc = oom(err);
done:
	free(todo);
	free(roots.v);
	free(order.v);
	ctx_free(&c);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* stamp */

/* Alembic's ScriptDirectory._stamp_revs followed by HeadMaintainer, on a
 * row set. Duplicate destinations count once. */
int lm_graph_plan_stamp(const lm_graph *g, const int *rows, int nrows,
	const char *const *targets, int ntargets, int purge, lm_plan *out,
	lm_error *err)
{
	ctx c;
	ivec dests = { 0 }, filtered = { 0 }, one = { 0 };
	rowset rs = { 0 };
	int rc = 0, cap = 0;
	out->steps = NULL;
	out->n = 0;
	if ((rc = ctx_init(&c, g, purge ? NULL : rows, purge ? 0 : nrows, err)) < 0)
		return rc;
	if (rowset_init(&rs, g->n, c.rows, c.nrows) < 0)
		goto nomem;
	clear_bits(&c, M_A);
	for (int t = 0; t < ntargets; t++) {
		const char *ident = targets[t];
		int branch = -1;
		rel r;
		if (!ident || !ident[0])
			continue;
		one.n = 0;
		int is_rel = parse_rel(ident, &r);
		free(r.buf);
		if (is_rel < 0)
			goto nomem;
		if (is_rel && r.sign < 0) {
			int tr;
			rc = parse_downgrade_target(&c, ident, &branch, &tr, err);
			if (rc == 0 && tr >= 0 && ivec_push(&one, tr) < 0)
				goto nomem;
			branch = -1; /* only a label widens the lineage */
		} else if (is_rel) {
			rc = parse_upgrade_target(&c, ident, c.rows, c.nrows, 1, &one,
				err);
		} else {
			rc = resolve_plain(&c, ident, &one, &branch, err);
		}
		if (rc < 0)
			goto done;
		/* the rows sharing lineage (dependencies included) with what the
		 * target names; "base" names nothing and so takes every row */
		if (branch >= 0 && ivec_push(&one, branch) < 0)
			goto nomem;
		clear_bits(&c, M_B | M_C);
		closure(g, one.v, one.n, E_DOWN, c.mark, M_B, c.stack);
		closure(g, one.v, one.n, E_ALL_CHILDREN, c.mark, M_C, c.stack);
		for (int i = 0; i < c.nrows; i++) {
			int h = c.rows[i];
			if ((!one.n || (c.mark[h] & (M_B | M_C)))
				&& !(c.mark[h] & M_A)) {
				c.mark[h] |= M_A;
				if (ivec_push(&filtered, h) < 0)
					goto nomem;
			}
		}
		if (branch >= 0)
			one.n--;
		for (int i = 0; i < one.n; i++)
			if (push_unique(&dests, one.v[i]) < 0)
				goto nomem;
	}
	if (!dests.n) {
		for (int i = 0; i < filtered.n; i++)
			rowset_del(&rs, filtered.v[i]);
	}
	for (int d = 0; d < dests.n; d++) {
		int dest = dests.v[d], below = 0, above = 0;
		if (c.mark[dest] & M_A)
			continue;
		clear_bits(&c, M_C | M_D);
		closure(g, &dest, 1, E_ALL_CHILDREN, c.mark, M_C, c.stack);
		closure(g, &dest, 1, E_DOWN, c.mark, M_D, c.stack);
		for (int i = 0; i < filtered.n; i++) {
			below |= !!(c.mark[filtered.v[i]] & M_C);
			above |= !!(c.mark[filtered.v[i]] & M_D);
		}
		if (below || above) {
			int stale = 0;
			for (int i = 0; i < filtered.n; i++)
				stale |= !rs.in[filtered.v[i]];
			if (!(above && !below && stale && !rs.in[dest]))
				for (int i = 0; i < filtered.n; i++)
					rowset_del(&rs, filtered.v[i]);
		}
		if (rowset_add(&rs, dest) < 0)
			goto nomem;
	}
	if (plan_push(out, &cap, -1, 1, &rs) < 0)
		goto nomem;
	goto done;
nomem:
	lm_plan_free(out);
	rc = oom(err);
done:
	rowset_free(&rs);
	free(dests.v);
	free(filtered.v);
	free(one.v);
	ctx_free(&c);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* history */

/* The lower end of a history range: its revisions into *out. */
static int history_lower(ctx *c, const char *base, const ivec *upper,
	ivec *out, lm_error *err)
{
	rel r;
	int rc = 0, branch, start, res;
	if (strcmp(base, "current") == 0) {
		for (int i = 0; i < c->nrows; i++)
			if (ivec_push(out, c->rows[i]) < 0)
				return oom(err);
		return 0;
	}
	int is_rel = parse_rel(base, &r);
	if (is_rel < 0)
		return oom(err);
	if (!is_rel)
		return resolve_plain(c, base, out, &branch, err);
	if (r.symbol) {
		if ((rc = resolve_labelled(c, &r, &start, err)) < 0)
			goto done;
	} else if (r.sign < 0) {
		/* N below each upper end, stopping at base */
		for (int i = 0; i < upper->n; i++) {
			if ((rc = walk(c, upper->v[i], 0, r.steps, -1, 0, &res,
				     err)) < 0)
				goto done;
			if (res >= 0 && push_unique(out, res) < 0) {
				rc = oom(err);
				goto done;
			}
		}
		goto done;
	} else if ((rc = upgrade_start(c, -1, c->rows, c->nrows, &start, err)) < 0) {
		goto done;
	}
	if ((rc = walk(c, start, r.sign > 0, r.steps, -1, 0, &res, err)) < 0)
		goto done;
	if (res >= 0 && ivec_push(out, res) < 0)
		rc = oom(err);
done:
	free(r.buf);
	return rc;
}

int lm_graph_history(const lm_graph *g, const char *range, const int *rows,
	int nrows, lm_revs *out, lm_error *err)
{
	ctx c;
	ivec lower = { 0 }, upper = { 0 }, order = { 0 };
	char *buf = NULL;
	const char *base = "base", *head = "heads";
	unsigned char *todo = NULL;
	int rc;
	out->revs = NULL;
	out->n = 0;
	if ((rc = ctx_init(&c, g, rows, nrows, err)) < 0)
		return rc;
	if (range) {
		char *colon;
		while (*range == ' ' || *range == '\t')
			range++;
		if (!(buf = str_dup(range))) {
			rc = oom(err);
			goto done;
		}
		for (size_t l = strlen(buf); l && (buf[l - 1] == ' ' || buf[l - 1] == '\t');)
			buf[--l] = '\0';
		if (!(colon = strchr(buf, ':')) || strchr(colon + 1, ':')) {
			rc = lm_error_set(err, LM_EFAIL,
				"History range requires [start]:[end], [start]:, or :[end]");
			goto done;
		}
		*colon = '\0';
		if (buf[0])
			base = buf;
		if (colon[1])
			head = colon + 1;
	}
	/* the upper end first when the lower one counts down from it */
	rel r;
	int lower_first = 1, is_rel = parse_rel(base, &r);
	if (is_rel < 0) {
		rc = oom(err);
		goto done;
	}
	if (is_rel && !r.symbol && r.sign < 0)
		lower_first = 0;
	free(r.buf);
	for (int pass = 0; pass < 2; pass++) {
		if ((pass == 0) == lower_first) {
			if ((rc = history_lower(&c, base, &upper, &lower, err)) < 0)
				goto done;
		} else if (strcmp(head, "current") == 0) {
			for (int i = 0; i < c.nrows; i++)
				if (ivec_push(&upper, c.rows[i]) < 0)
					goto nomem;
		} else {
			const int *from = lower.v;
			int nfrom = lower.n;
			if (!lower_first) {
				from = c.rows;
				nfrom = c.nrows;
			}
			if ((rc = parse_upgrade_target(&c, head, from, nfrom, 0, &upper,
				     err)) < 0)
				goto done;
		}
	}
	if ((rc = check_overlap(&c, upper.v, upper.n, err)) < 0
		|| (rc = check_overlap(&c, lower.v, lower.n, err)) < 0)
		goto done;
	clear_bits(&c, M_A | M_B | M_C);
	closure(g, upper.v, upper.n, E_DOWN, c.mark, M_A, c.stack);
	for (int i = 0; i < lower.n; i++) {
		if (!(c.mark[lower.v[i]] & M_A)) {
			rc = lm_error_set(err, LM_EFAIL,
				"Requested range %s:%s does not refer to ancestor/descendant revisions along the same branch",
				base, head);
			goto done;
		}
	}
	closure(g, lower.v, lower.n, E_DOWN, c.mark, M_B, c.stack);
	closure(g, lower.v, lower.n, E_CHILDREN, c.mark, M_C, c.stack);
	if (!(todo = calloc(count(g->n), 1)))
		goto nomem;
	for (int i = 0; i < g->n; i++) {
		unsigned char m = c.mark[i];
		todo[i] = (m & M_A) && (!(m & M_B) || (m & M_C))
			&& (!lower.n || (m & M_C));
	}
	/* the lower revisions themselves are included (Alembic's inclusive) */
	for (int i = 0; i < lower.n; i++)
		todo[lower.v[i]] = 1;
	if ((rc = topo_sort(&c, todo, upper.v, upper.n, &order, err)) < 0)
		goto done;
	rc = revs_out(out, &order, err);
	goto done;
nomem:
	rc = oom(err);
done:
	free(todo);
	free(buf);
	free(lower.v);
	free(upper.v);
	free(order.v);
	ctx_free(&c);
	return rc;
}
