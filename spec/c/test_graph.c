/* test_graph.c - unit tests for the revision graph (core/graph.c).
 *
 * Graphs are written as one string: revisions separated by spaces, each
 * `id[:parents[:depends_on[:labels]]]` with comma-separated lists, loaded in
 * the order written. Plans print as `+id[rows]` / `-id[rows]` per step and
 * `=[rows]` for a stamp, rows by id in load order. Expected orders and rows
 * were checked against Alembic 1.8.1 (its RevisionMap and HeadMaintainer
 * driven from Python on the same graphs).
 */
#include "graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond) check((cond), #cond, __FILE__, __LINE__)
#define CHECK_STR(got, want) check_str((got), (want), __FILE__, __LINE__)

static void check(int ok, const char *what, const char *file, int line)
{
	if (ok) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL %s:%d: %s\n", file, line, what);
}

static void check_str(const char *got, const char *want, const char *file,
	int line)
{
	if (strcmp(got, want) == 0) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL %s:%d:\n  got:  %s\n  want: %s\n", file, line, got, want);
}

/* ------------------------------------------------------------------------ */
/* building graphs from strings */

#define MAXL 128

static int split(char *s, char sep, char **out, int max)
{
	int n = 0;
	if (!s || !*s)
		return 0;
	for (;;) {
		char *p = strchr(s, sep);
		if (n < max)
			out[n++] = s;
		if (!p)
			break;
		*p = '\0';
		s = p + 1;
	}
	return n;
}

/* Adds and builds; returns the lm_graph_build (or add) result. */
static int mk(const char *spec, lm_graph **out, lm_error *err)
{
	char *copy = strdup(spec);
	char *items[20000];
	int nitems = 0, rc = 0;
	lm_graph_new(out);
	lm_error_clear(err);
	for (char *tok = strtok(copy, " "); tok; tok = strtok(NULL, " "))
		items[nitems++] = tok;
	for (int i = 0; i < nitems && rc == 0; i++) {
		char *f[4] = { 0 };
		char *lists[3][MAXL];
		int nl[3] = { 0 };
		char origin[256];
		int nf = split(items[i], ':', f, 4);
		for (int k = 1; k < nf && k < 4; k++)
			nl[k - 1] = split(f[k], ',', lists[k - 1], MAXL);
		snprintf(origin, sizeof origin, "versions/%s.lua", f[0]);
		lm_revision_spec s = {
			.id = f[0],
			.down_revisions = (const char *const *)lists[0],
			.ndown_revisions = nl[0],
			.depends_on = (const char *const *)lists[1],
			.ndepends_on = nl[1],
			.branch_labels = (const char *const *)lists[2],
			.nbranch_labels = nl[2],
			.origin = origin,
		};
		rc = lm_graph_add(*out, &s, err);
	}
	if (rc == 0)
		rc = lm_graph_build(*out, err);
	free(copy);
	return rc;
}

/* A graph that must build. */
static lm_graph *G(const char *spec)
{
	lm_graph *g;
	lm_error err;
	if (mk(spec, &g, &err) != 0) {
		printf("FAIL building '%s': %s\n", spec, err.message);
		failed++;
	}
	return g;
}

/* The message of a graph that must not build. */
static const char *build_error(const char *spec)
{
	static lm_error err;
	lm_graph *g;
	if (mk(spec, &g, &err) == 0)
		snprintf(err.message, sizeof err.message, "(built)");
	lm_graph_free(g);
	return err.message;
}

/* "a b" -> indexes */
static int rows_of(const lm_graph *g, const char *ids, int *rows)
{
	char *copy = strdup(ids);
	int n = 0;
	for (char *tok = strtok(copy, " "); tok; tok = strtok(NULL, " ")) {
		rows[n] = lm_graph_find(g, tok);
		if (rows[n] < 0)
			printf("test bug: no revision '%s'\n", tok);
		n++;
	}
	free(copy);
	return n;
}

static char outbuf[1 << 20];

static const char *ids(const lm_graph *g, const int *v, int n)
{
	static char buf[1 << 20];
	size_t len = 0;
	buf[0] = '\0';
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s",
			i ? " " : "", lm_graph_id(g, v[i]));
	return buf;
}

static const char *plan_str(const lm_graph *g, const lm_plan *p)
{
	size_t len = 0;
	outbuf[0] = '\0';
	for (int i = 0; i < p->n; i++) {
		const lm_step *s = &p->steps[i];
		len += (size_t)snprintf(outbuf + len, sizeof outbuf - len, "%s%s%s[",
			i ? " " : "", s->rev < 0 ? "=" : s->upgrade ? "+" : "-",
			s->rev < 0 ? "" : lm_graph_id(g, s->rev));
		for (int j = 0; j < s->nrows_after; j++)
			len += (size_t)snprintf(outbuf + len, sizeof outbuf - len,
				"%s%s", j ? "," : "", lm_graph_id(g, s->rows_after[j]));
		len += (size_t)snprintf(outbuf + len, sizeof outbuf - len, "]");
	}
	return outbuf;
}

/* "upgrade"/"downgrade" plan from rows, as a string; errors as "error: …" */
static const char *plan(const lm_graph *g, const char *rows, int up,
	const char *target)
{
	int r[256], n = rows_of(g, rows, r);
	lm_plan p = { 0 };
	lm_error err = { 0 };
	int rc = up ? lm_graph_plan_upgrade(g, r, n, target, &p, &err)
		    : lm_graph_plan_downgrade(g, r, n, target, &p, &err);
	if (rc != 0) {
		snprintf(outbuf, sizeof outbuf, "error: %s", err.message);
		return outbuf;
	}
	plan_str(g, &p);
	lm_plan_free(&p);
	return outbuf;
}

#define UP(g, rows, t) plan((g), (rows), 1, (t))
#define DOWN(g, rows, t) plan((g), (rows), 0, (t))

static const char *stamp(const lm_graph *g, const char *rows,
	const char *targets, int purge)
{
	int r[256], n = rows_of(g, rows, r);
	char *copy = strdup(targets);
	const char *t[64];
	int nt = 0;
	for (char *tok = strtok(copy, " "); tok; tok = strtok(NULL, " "))
		t[nt++] = tok;
	lm_plan p = { 0 };
	lm_error err = { 0 };
	if (lm_graph_plan_stamp(g, r, n, t, nt, purge, &p, &err) != 0)
		snprintf(outbuf, sizeof outbuf, "error: %s", err.message);
	else
		plan_str(g, &p);
	lm_plan_free(&p);
	free(copy);
	return outbuf;
}

static const char *resolve(const lm_graph *g, const char *ident,
	const char *rows)
{
	int r[256], n = rows_of(g, rows, r);
	lm_revs out = { 0 };
	lm_error err = { 0 };
	if (lm_graph_resolve(g, ident, r, n, &out, &err) != 0) {
		snprintf(outbuf, sizeof outbuf, "error: %s", err.message);
		return outbuf;
	}
	snprintf(outbuf, sizeof outbuf, "%s", ids(g, out.revs, out.n));
	lm_revs_free(&out);
	return outbuf;
}

static const char *history(const lm_graph *g, const char *range,
	const char *rows)
{
	int r[256], n = rows_of(g, rows, r);
	lm_revs out = { 0 };
	lm_error err = { 0 };
	if (lm_graph_history(g, range, r, n, &out, &err) != 0) {
		snprintf(outbuf, sizeof outbuf, "error: %s", err.message);
		return outbuf;
	}
	snprintf(outbuf, sizeof outbuf, "%s", ids(g, out.revs, out.n));
	lm_revs_free(&out);
	return outbuf;
}

static const char *heads(const lm_graph *g, int real)
{
	const int *v;
	int n = real ? lm_graph_real_heads(g, &v) : lm_graph_heads(g, &v);
	return ids(g, v, n);
}

static const char *labels(const lm_graph *g, const char *id)
{
	static char buf[512];
	const char *const *l;
	int n = lm_graph_labels(g, lm_graph_find(g, id), &l);
	size_t len = 0;
	buf[0] = '\0';
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s",
			i ? " " : "", l[i]);
	return buf;
}

/* ------------------------------------------------------------------------ */
/* phase 1: chains and simple branches */

static void test_chain(void)
{
	lm_graph *g = G("a b:a c:b");
	const int *v;
	CHECK(lm_graph_count(g) == 3);
	CHECK(lm_graph_find(g, "b") == 1);
	CHECK(lm_graph_find(g, "zz") == -1);
	CHECK_STR(lm_graph_id(g, 2), "c");
	CHECK_STR(lm_graph_origin(g, 2), "versions/c.lua");
	CHECK(lm_graph_parents(g, 1, &v) == 1 && v[0] == 0);
	CHECK(lm_graph_parents(g, 0, &v) == 0);
	CHECK(lm_graph_children(g, 0, &v) == 1 && v[0] == 1);
	CHECK(lm_graph_flags(g, 0) == LM_REV_BASE);
	CHECK(lm_graph_flags(g, 1) == 0);
	CHECK(lm_graph_flags(g, 2) == (LM_REV_HEAD | LM_REV_REAL_HEAD));
	CHECK_STR(heads(g, 0), "c");
	CHECK_STR(heads(g, 1), "c");

	CHECK_STR(UP(g, "", "head"), "+a[a] +b[b] +c[c]");
	CHECK_STR(UP(g, "", "heads"), "+a[a] +b[b] +c[c]");
	CHECK_STR(UP(g, "a", "head"), "+b[b] +c[c]");
	CHECK_STR(UP(g, "c", "head"), "");
	CHECK_STR(UP(g, "c", "a"), "");
	CHECK_STR(UP(g, "", "b"), "+a[a] +b[b]");
	CHECK_STR(UP(g, "", "+1"), "+a[a]");
	CHECK_STR(UP(g, "a", "+2"), "+b[b] +c[c]");
	CHECK_STR(UP(g, "b", "+2"),
		"error: Relative revision +2 didn't produce 2 migrations");
	CHECK_STR(UP(g, "a", "-1"),
		"error: Relative revision -1 is not valid for upgrade");
	CHECK_STR(DOWN(g, "c", "base"), "-c[b] -b[a] -a[]");
	CHECK_STR(DOWN(g, "c", "-1"), "-c[b]");
	CHECK_STR(DOWN(g, "c", "-3"), "-c[b] -b[a] -a[]");
	CHECK_STR(DOWN(g, "c", "-4"),
		"error: Relative revision -4 didn't produce 4 migrations");
	CHECK_STR(DOWN(g, "", "-1"),
		"error: Relative revision -1 didn't produce 1 migrations");
	CHECK_STR(DOWN(g, "c", "+1"),
		"error: Relative revision +1 is not valid for downgrade");
	CHECK_STR(DOWN(g, "c", "a"), "-c[b] -b[a]");
	CHECK_STR(DOWN(g, "c", "c"), "");
	CHECK_STR(DOWN(g, "b", "c"),
		"error: Destination 'c' is not a valid downgrade target from current head(s)");

	CHECK_STR(resolve(g, "head", ""), "c");
	CHECK_STR(resolve(g, "heads", ""), "c");
	CHECK_STR(resolve(g, "base", ""), "");
	CHECK_STR(resolve(g, "b", ""), "b");
	CHECK_STR(resolve(g, "+1", "a"), "b");
	CHECK_STR(resolve(g, "-1", "c"), "b");
	CHECK_STR(resolve(g, "head-1", ""), "b");
	CHECK_STR(resolve(g, "head-2", ""), "a");
	CHECK_STR(resolve(g, "head-3", ""), "");
	CHECK_STR(resolve(g, "base+2", ""), "b");
	CHECK_STR(resolve(g, "a+2", ""), "c");
	CHECK_STR(resolve(g, "zz", ""),
		"error: Revision 'zz' not found; use at least four characters of a revision id");

	CHECK_STR(history(g, NULL, ""), "c b a");
	CHECK_STR(history(g, "a:b", ""), "b a");
	CHECK_STR(history(g, ":b", ""), "b a");
	CHECK_STR(history(g, "b:", ""), "c b");
	CHECK_STR(history(g, "current:", "b"), "c b");
	CHECK_STR(history(g, ":current", "b"), "b a");
	CHECK_STR(history(g, "ab", ""),
		"error: History range requires [start]:[end], [start]:, or :[end]");
	CHECK_STR(history(g, "c:a", ""),
		"error: Requested range c:a does not refer to ancestor/descendant revisions along the same branch");

	CHECK_STR(stamp(g, "", "b", 0), "=[b]");
	CHECK_STR(stamp(g, "c", "a", 0), "=[a]");
	CHECK_STR(stamp(g, "a", "head", 0), "=[c]");
	CHECK_STR(stamp(g, "c", "base", 0), "=[]");
	CHECK_STR(stamp(g, "c", "b b", 0), "=[b]");
	lm_graph_free(g);
}

static void test_prefixes(void)
{
	lm_graph *g = G("ab12ff ab34ee:ab12ff cd5600:ab34ee xyz:cd5600");
	CHECK_STR(resolve(g, "cd56", ""), "cd5600");
	CHECK_STR(resolve(g, "c", ""), "cd5600");
	CHECK_STR(resolve(g, "xyz", ""), "xyz");
	CHECK_STR(resolve(g, "xy", ""),
		"error: Revision 'xy' not found; use at least four characters of a revision id");
	CHECK_STR(resolve(g, "ab", ""),
		"error: Multiple revisions start with 'ab': 'ab12ff', 'ab34ee'");
	CHECK_STR(resolve(g, "abcdef", ""), "error: Revision 'abcdef' not found");
	CHECK_STR(UP(g, "", "ab3"), "+ab12ff[ab12ff] +ab34ee[ab34ee]");
	lm_graph_free(g);
}

static void test_simple_branch(void)
{
	/* a -> b -> {c1 -> d1, c2 -> d2} */
	lm_graph *g = G("a b:a c1:b c2:b d1:c1 d2:c2");
	CHECK(lm_graph_flags(g, 1) == LM_REV_BRANCH_POINT);
	CHECK_STR(heads(g, 0), "d1 d2");
	CHECK_STR(resolve(g, "head", ""),
		"error: Multiple heads are present for 'head': 'd1', 'd2'; please specify a revision, '<branchname>@head' to narrow to a specific head, or 'heads' for all heads");
	CHECK_STR(resolve(g, "heads", ""), "d1 d2");
	CHECK_STR(UP(g, "", "head"),
		"error: Multiple heads are present for 'head': 'd1', 'd2'; please specify a revision, '<branchname>@head' to narrow to a specific head, or 'heads' for all heads");
	/* the branch whose head loads later is applied first */
	CHECK_STR(UP(g, "", "heads"),
		"+a[a] +b[b] +c2[c2] +d2[d2] +c1[c1,d2] +d1[d1,d2]");
	CHECK_STR(UP(g, "b", "d1"), "+c1[c1] +d1[d1]");
	CHECK_STR(UP(g, "d1", "heads"), "+c2[c2,d1] +d2[d1,d2]");
	CHECK_STR(UP(g, "b", "+1"),
		"error: Ambiguous walk from 'b': several next revisions ('c1', 'c2')");
	CHECK_STR(UP(g, "d1 d2", "+1"),
		"error: Ambiguous upgrade from multiple current revisions ('d1', 'd2')");
	CHECK_STR(DOWN(g, "d1 d2", "b"), "-d1[c1,d2] -c1[d2] -d2[c2] -c2[b]");
	CHECK_STR(DOWN(g, "d1 d2", "base"),
		"-d1[c1,d2] -c1[d2] -d2[c2] -c2[b] -b[a] -a[]");
	CHECK_STR(DOWN(g, "d1 d2", "c1"), "-d1[c1,d2]");
	CHECK_STR(DOWN(g, "d1 d2", "-1"),
		"error: Ambiguous downgrade from multiple current revisions ('d1', 'd2'); name the target revision");
	CHECK_STR(DOWN(g, "d1", "-1"), "-d1[c1]");
	CHECK_STR(DOWN(g, "d1", "d2"),
		"error: Destination 'd2' is not a valid downgrade target from current head(s)");
	CHECK_STR(history(g, NULL, ""), "d1 c1 d2 c2 b a");
	CHECK_STR(stamp(g, "d1 d2", "b", 0), "=[b]");
	CHECK_STR(stamp(g, "b", "heads", 0), "=[d1,d2]");
	CHECK_STR(stamp(g, "d1", "d2", 0), "=[d1,d2]");
	CHECK_STR(stamp(g, "d1", "d2", 1), "=[d2]");
	lm_graph_free(g);
}

static void test_build_errors(void)
{
	CHECK_STR(build_error("a b:a b:a"),
		"Revision 'b' is defined twice: 'versions/b.lua' and 'versions/b.lua'");
	CHECK_STR(build_error("a abc:zz"),
		"Revision 'zz' referenced as down_revision by 'abc' ('versions/abc.lua') is not present");
	CHECK_STR(build_error("a abc:a:zz"),
		"Revision 'zz' referenced as depends_on by 'abc' ('versions/abc.lua') is not present");
	CHECK_STR(build_error("a b:b"), "Self-loop is detected in revisions (b)");
	CHECK_STR(build_error("a b:a:b"),
		"Dependency self-loop is detected in revisions (b)");
	CHECK_STR(build_error("a b:a,c c:b d:a"),
		"Cycle is detected in revisions (b, c)");
	CHECK_STR(build_error("a:c b:a c:b"),
		"Cycle is detected in revisions (a, b, c)");
	CHECK_STR(build_error("a b:a:c c:b"),
		"Dependency cycle is detected in revisions (a, b, c)");
	CHECK_STR(build_error("a b:a:c c:b d:a"),
		"Dependency cycle is detected in revisions (b, c)");
	CHECK_STR(build_error("a:::x b:a::x"),
		"Branch name 'x' in revision 'b' already used by revision 'a'");
	CHECK_STR(build_error("a b:a::a"),
		"Branch name 'a' in revision 'b' already used by revision 'a'");
	CHECK_STR(build_error("a b-c:a"),
		"Character(s) '-' not allowed in revision identifier 'b-c'");

	/* duplicate ids name both files */
	lm_graph *g;
	lm_error err = { 0 };
	lm_graph_new(&g);
	const char *down[] = { "a" };
	lm_revision_spec s1 = { .id = "a", .origin = "path/one.lua" };
	lm_revision_spec s2 = { .id = "a", .down_revisions = down,
		.ndown_revisions = 0, .origin = "path/two.lua" };
	CHECK(lm_graph_add(g, &s1, &err) == 0);
	CHECK(lm_graph_add(g, &s2, &err) == LM_EFAIL);
	CHECK_STR(err.message,
		"Revision 'a' is defined twice: 'path/one.lua' and 'path/two.lua'");
	lm_graph_free(g);
	lm_graph_free(NULL);
	lm_revs_free(NULL);
	lm_plan_free(NULL);
}

static void test_labels_simple(void)
{
	lm_graph *g = G("a b:a c1:b::one c2:b::two d1:c1 d2:c2");
	CHECK_STR(labels(g, "c1"), "one");
	CHECK_STR(labels(g, "d1"), "one");
	CHECK_STR(labels(g, "d2"), "two");
	CHECK_STR(labels(g, "b"), "");
	CHECK_STR(resolve(g, "one@head", ""), "d1");
	CHECK_STR(resolve(g, "two", ""), "c2");
	CHECK_STR(UP(g, "", "two@head"), "+a[a] +b[b] +c2[c2] +d2[d2]");
	lm_graph_free(g);
}


/* ------------------------------------------------------------------------ */
/* phase 2: Alembic's scenarios (orders and rows checked against 1.8.1) */

static void test_branch_labels(void)
{
	lm_graph *g = G("a b:a c1:b::c1br d1:c1 c2:b::c2br d2:c2");
	CHECK_STR(UP(g, "", "c2br@head"), "+a[a] +b[b] +c2[c2] +d2[d2]");
	CHECK_STR(UP(g, "b", "c1br@head"), "+c1[c1] +d1[d1]");
	CHECK_STR(UP(g, "b", "c1br@+1"), "+c1[c1]");
	CHECK_STR(UP(g, "b", "c2br@+2"), "+c2[c2] +d2[d2]");
	CHECK_STR(UP(g, "d1", "c2br@+1"), "+c2[d1,c2]");
	CHECK_STR(UP(g, "d1", "c2br@head"), "+c2[d1,c2] +d2[d1,d2]");
	CHECK_STR(UP(g, "", "c1br@heads"), "+a[a] +b[b] +c1[c1] +d1[d1]");
	CHECK_STR(DOWN(g, "d1 d2", "c1br@-1"), "-d1[c1,d2]");
	CHECK_STR(DOWN(g, "d1 d2", "c2br@base"),
		"-d1[c1,d2] -c1[d2] -d2[c2] -c2[b] -b[a] -a[]");
	CHECK_STR(DOWN(g, "d1 d2", "c1br@base"),
		"-d1[c1,d2] -c1[d2] -d2[c2] -c2[b] -b[a] -a[]");
	CHECK_STR(DOWN(g, "d1 d2", "c1br@b"), "-d1[c1,d2] -c1[d2]");
	CHECK_STR(DOWN(g, "d1 d2", "-1"),
		"error: Ambiguous downgrade from multiple current revisions ('d1', 'd2'); name the target revision");
	CHECK_STR(DOWN(g, "d1", "-1"), "-d1[c1]");
	CHECK_STR(history(g, NULL, ""), "d1 c1 d2 c2 b a");
	CHECK_STR(history(g, "c2:", ""), "d2 c2");
	CHECK_STR(history(g, ":d1", ""), "d1 c1 b a");
	CHECK_STR(stamp(g, "d1 d2", "c1br@head", 0), "=[d1,d2]");
	CHECK_STR(stamp(g, "b", "c2br@head", 0), "=[d2]");
	lm_graph_free(g);
}

static void test_merge(void)
{
	lm_graph *g = G("a b1:a b2:a m:b1,b2 c:m");
	CHECK_STR(UP(g, "", "heads"), "+a[a] +b2[b2] +b1[b1,b2] +m[m] +c[c]");
	CHECK_STR(UP(g, "b1", "heads"), "+b2[b1,b2] +m[m] +c[c]");
	CHECK_STR(UP(g, "b2", "m"), "+b1[b1,b2] +m[m]");
	CHECK_STR(UP(g, "b1 b2", "+1"),
		"error: Ambiguous upgrade from multiple current revisions ('b1', 'b2')");
	CHECK_STR(UP(g, "b1 b2", "+2"),
		"error: Ambiguous upgrade from multiple current revisions ('b1', 'b2')");
	CHECK_STR(DOWN(g, "c", "a"), "-c[m] -m[b1,b2] -b1[b2] -b2[a]");
	CHECK_STR(DOWN(g, "c", "b1"), "-c[m] -m[b1,b2]");
	CHECK_STR(DOWN(g, "c", "-1"), "-c[m]");
	CHECK_STR(DOWN(g, "m", "-1"),
		"error: Ambiguous walk from 'm': several next revisions ('b1', 'b2')");
	CHECK_STR(DOWN(g, "c", "base"), "-c[m] -m[b1,b2] -b1[b2] -b2[a] -a[]");
	CHECK_STR(history(g, NULL, ""), "c m b1 b2 a");
	CHECK_STR(history(g, "b1:", ""), "c m b1");
	CHECK_STR(stamp(g, "c", "b1 b2", 0), "=[b1,b2]");
	CHECK_STR(stamp(g, "b1 b2", "m", 0), "=[m]");
	CHECK_STR(stamp(g, "m", "b1", 0), "=[b1]");
	lm_graph_free(g);
}

static void test_twin_merge(void)
{
	lm_graph *g = G("a b1:a b2:a m1:b1,b2 m2:b1,b2");
	CHECK_STR(UP(g, "", "heads"),
		"+a[a] +b2[b2] +b1[b1,b2] +m2[m2] +m1[m1,m2]");
	CHECK_STR(UP(g, "m1", "heads"), "+m2[m1,m2]");
	CHECK_STR(DOWN(g, "m1 m2", "a"), "-m1[m2] -m2[b1,b2] -b1[b2] -b2[a]");
	CHECK_STR(DOWN(g, "m1 m2", "m1"), "");
	CHECK_STR(DOWN(g, "m1 m2", "b1"), "-m1[m2] -m2[b1,b2]");
	CHECK_STR(history(g, NULL, ""), "m1 m2 b1 b2 a");
	lm_graph_free(g);
}

static void test_cross_root(void)
{
	lm_graph *g = G("r1 r2 x:r1 y:r2 m:x,y z:m");
	CHECK_STR(UP(g, "", "heads"),
		"+r2[r2] +y[y] +r1[r1,y] +x[x,y] +m[m] +z[z]");
	CHECK_STR(UP(g, "x", "heads"), "+r2[r2,x] +y[x,y] +m[m] +z[z]");
	CHECK_STR(UP(g, "y", "m"), "+r1[r1,y] +x[x,y] +m[m]");
	CHECK_STR(DOWN(g, "z", "r1"), "-z[m] -m[x,y] -x[r1,y]");
	CHECK_STR(DOWN(g, "z", "base"),
		"-z[m] -m[x,y] -x[r1,y] -r1[y] -y[r2] -r2[]");
	CHECK_STR(DOWN(g, "z", "y"), "-z[m] -m[x,y]");
	CHECK_STR(history(g, NULL, ""), "z m x r1 y r2");
	lm_graph_free(g);
}

static void test_depends_cross(void)
{
	lm_graph *g = G("a b:a c:b r1 r2:r1:b r3:r2");
	CHECK_STR(UP(g, "", "r2"), "+a[a] +b[b] +r1[b,r1] +r2[r2]");
	CHECK_STR(UP(g, "", "heads"),
		"+a[a] +b[b] +r1[b,r1] +r2[r2] +r3[r3] +c[c,r3]");
	CHECK_STR(UP(g, "c", "r3"), "+r1[c,r1] +r2[c,r2] +r3[c,r3]");
	CHECK_STR(UP(g, "r1", "r2"), "+a[a,r1] +b[b,r1] +r2[r2]");
	CHECK_STR(DOWN(g, "r3 c", "b"), "-c[r3]");
	CHECK_STR(DOWN(g, "r3 c", "base"),
		"-c[r3] -r3[r2] -r2[b,r1] -r1[b] -b[a] -a[]");
	CHECK_STR(DOWN(g, "r3 c", "a"), "-c[r3] -r3[r2] -r2[b,r1] -b[a,r1]");
	CHECK_STR(DOWN(g, "r3", "r1"), "-r3[r2] -r2[b,r1]");
	CHECK_STR(history(g, NULL, ""), "c r3 r2 r1 b a");
	lm_graph_free(g);
}

static void test_dep_normalized(void)
{
	lm_graph *g = G("x a:x:y b:a:y c:b y");
	CHECK_STR(UP(g, "", "c"), "+y[y] +x[x,y] +a[a] +b[b] +c[c]");
	CHECK_STR(UP(g, "x", "c"), "+y[x,y] +a[a] +b[b] +c[c]");
	CHECK_STR(DOWN(g, "c y", "x"), "-c[b,y] -b[a,y] -a[x,y]");
	CHECK_STR(history(g, NULL, ""), "c b a x y");
	lm_graph_free(g);
}

static void test_forest(void)
{
	lm_graph *g = G("p1 p2:p1 q1 q2:q1 s1 s2:s1");
	CHECK_STR(UP(g, "", "heads"),
		"+s1[s1] +s2[s2] +q1[q1,s2] +q2[q2,s2] +p1[p1,q2,s2] +p2[p2,q2,s2]");
	CHECK_STR(UP(g, "p2", "heads"),
		"+s1[p2,s1] +s2[p2,s2] +q1[p2,q1,s2] +q2[p2,q2,s2]");
	CHECK_STR(DOWN(g, "p2 q2 s2", "base"),
		"-p2[p1,q2,s2] -p1[q2,s2] -q2[q1,s2] -q1[s2] -s2[s1] -s1[]");
	CHECK_STR(DOWN(g, "p2 q2 s2", "q1"), "-q2[p2,q1,s2]");
	CHECK_STR(history(g, NULL, ""), "p2 p1 q2 q1 s2 s1");
	CHECK_STR(stamp(g, "p2", "q2", 0), "=[p2,q2]");
	CHECK_STR(stamp(g, "p2 q2", "base", 0), "=[]");
	CHECK_STR(stamp(g, "p2 q2", "base q2", 0), "=[p2,q2]");
	lm_graph_free(g);
}

static void test_stamps(void)
{
	lm_graph *g = G("a b:a c1:b c2:b d1:c1 d2:c2 m:d1,d2");
	CHECK_STR(stamp(g, "", "heads", 0), "=[m]");
	CHECK_STR(stamp(g, "d1 d2", "b", 0), "=[b]");
	CHECK_STR(stamp(g, "b", "d1 d2", 0), "=[d1,d2]");
	CHECK_STR(stamp(g, "d1", "d2 d2", 0), "=[d1,d2]");
	CHECK_STR(stamp(g, "m", "d1", 0), "=[d1]");
	CHECK_STR(stamp(g, "d1 d2", "m", 0), "=[m]");
	CHECK_STR(stamp(g, "m", "a", 1), "=[a]");
	CHECK_STR(stamp(g, "d1", "base", 0), "=[]");
	CHECK_STR(stamp(g, "", "a c1", 0), "=[a,c1]");
	lm_graph_free(g);
}

static void test_relative(void)
{
	lm_graph *g = G("a b:a c:b d:c e:d");
	CHECK_STR(UP(g, "", "+2"), "+a[a] +b[b]");
	CHECK_STR(UP(g, "b", "+2"), "+c[c] +d[d]");
	CHECK_STR(UP(g, "b", "c+1"), "+c[c] +d[d]");
	CHECK_STR(UP(g, "", "head-2"), "+a[a] +b[b] +c[c]");
	CHECK_STR(UP(g, "a", "base+2"), "+b[b]");
	CHECK_STR(UP(g, "c", "+3"),
		"error: Relative revision +3 didn't produce 3 migrations");
	CHECK_STR(DOWN(g, "e", "-2"), "-e[d] -d[c]");
	CHECK_STR(DOWN(g, "e", "c-1"), "-e[d] -d[c] -c[b]");
	CHECK_STR(DOWN(g, "e", "head-3"), "-e[d] -d[c] -c[b]");
	CHECK_STR(DOWN(g, "e", "b+1"), "-e[d] -d[c]");
	CHECK_STR(DOWN(g, "e", "base+1"), "-e[d] -d[c] -c[b] -b[a]");
	CHECK_STR(DOWN(g, "c", "-3"), "-c[b] -b[a] -a[]");
	CHECK_STR(history(g, "-2:", ""), "e d c");
	CHECK_STR(history(g, ":+2", ""), "b a");
	CHECK_STR(history(g, "b+1:", ""), "e d c");
	CHECK_STR(history(g, "current:+1", "b"), "c b");
	CHECK_STR(history(g, "-1:current", "c"), "c b");
	lm_graph_free(g);
}

static void test_dep_own_parent(void)
{
	lm_graph *g = G("a b:a c:b:b d:c");
	CHECK_STR(UP(g, "", "heads"), "+a[a] +b[b] +c[c] +d[d]");
	CHECK_STR(DOWN(g, "d", "a"), "-d[c] -c[b] -b[a]");
	CHECK_STR(history(g, NULL, ""), "d c b a");
	lm_graph_free(g);
}

static void test_multi_down(void)
{
	lm_graph *g = G("a b:a c:a d:b,c:a e:d");
	CHECK_STR(UP(g, "", "heads"), "+a[a] +c[c] +b[b,c] +d[d] +e[e]");
	CHECK_STR(DOWN(g, "e", "a"), "-e[d] -d[a,b,c] -b[a,c] -c[a]");
	CHECK_STR(history(g, NULL, ""), "e d b c a");
	lm_graph_free(g);
}


static void test_label_inheritance(void)
{
	lm_graph *g = G("a b:a::x c:b d:c");
	/* down through non-branch points from the last descendant */
	CHECK_STR(labels(g, "a"), "x");
	CHECK_STR(labels(g, "d"), "x");
	lm_graph_free(g);
	g = G("a b:a::x c:b d:c z:a");
	CHECK_STR(labels(g, "a"), "");
	CHECK_STR(labels(g, "z"), "");
	CHECK_STR(labels(g, "c"), "x");
	lm_graph_free(g);
	g = G("a b1:a::x b2:a::y m:b1,b2 c:m");
	CHECK_STR(labels(g, "m"), "x y");
	CHECK_STR(labels(g, "c"), "x y");
	CHECK_STR(labels(g, "b2"), "y");
	CHECK_STR(labels(g, "a"), "");
	lm_graph_free(g);
}

static void test_resolve_forms(void)
{
	lm_graph *g = G("a b:a c1:b::c1br d1:c1 c2:b::c2br d2:c2 e2:d2");
	CHECK_STR(resolve(g, "c1br", ""), "c1");
	CHECK_STR(resolve(g, "c1br@head", ""), "d1");
	CHECK_STR(resolve(g, "c2br@heads", ""), "e2");
	CHECK_STR(resolve(g, "c2br@base", ""), "");
	CHECK_STR(resolve(g, "c2br@d2", ""), "d2");
	CHECK_STR(resolve(g, "c2br@b", ""), "b");
	CHECK_STR(resolve(g, "c1br@d2", ""),
		"error: Revision 'd2' is not a member of branch 'c1br'");
	CHECK_STR(resolve(g, "nob@head", ""), "error: No such branch: 'nob'");
	CHECK_STR(resolve(g, "nob", ""), "error: Revision 'nob' not found; use at least four characters of a revision id");
	/* a revision id works as a branch name */
	CHECK_STR(resolve(g, "d2@head", ""), "e2");
	CHECK_STR(resolve(g, "c2br@+1", "b"), "c2");
	CHECK_STR(resolve(g, "c2br@+2", "d1"), "d2");
	CHECK_STR(resolve(g, "c1br@-1", "d1 e2"), "c1");
	CHECK_STR(resolve(g, "c2br@-2", "d1 e2"), "c2");
	CHECK_STR(resolve(g, "c2br@head-1", ""), "d2");
	CHECK_STR(resolve(g, "e2-3", ""), "b");
	CHECK_STR(resolve(g, "d1-4", ""), "");
	CHECK_STR(resolve(g, "d1-5", ""),
		"error: Relative revision d1-5 didn't produce 5 migrations");
	CHECK_STR(resolve(g, "b+1", ""),
		"error: Ambiguous walk from 'b': several next revisions ('c1', 'c2')");
	CHECK_STR(resolve(g, "c2br@b+1", ""), "c2");
	CHECK_STR(resolve(g, "+1", "d1 e2"),
		"error: Ambiguous upgrade from multiple current revisions ('d1', 'e2')");
	CHECK_STR(resolve(g, "-1", "d1 e2"),
		"error: Ambiguous downgrade from multiple current revisions ('d1', 'e2'); name the target revision");
	CHECK_STR(resolve(g, "+5", "d2"),
		"error: Relative revision +5 didn't produce 5 migrations");
	CHECK_STR(resolve(g, "head", ""),
		"error: Multiple heads are present for 'head': 'd1', 'e2'; please specify a revision, '<branchname>@head' to narrow to a specific head, or 'heads' for all heads");
	CHECK_STR(resolve(g, "b@head", ""),
		"error: Multiple heads are present for 'b@head': 'd1', 'e2'; please specify a revision, '<branchname>@head' to narrow to a specific head, or 'heads' for all heads");
	CHECK_STR(UP(g, "c1", "+5"),
		"error: Relative revision +5 didn't produce 5 migrations");
	CHECK_STR(UP(g, "b", "-1"),
		"error: Relative revision -1 is not valid for upgrade");
	CHECK_STR(DOWN(g, "d1", "+1"),
		"error: Relative revision +1 is not valid for downgrade");
	CHECK_STR(DOWN(g, "d1", "e2"),
		"error: Destination 'e2' is not a valid downgrade target from current head(s)");
	/* rows that overlap are refused, as Alembic's check=True does */
	CHECK_STR(UP(g, "b d1", "heads"),
		"error: Requested revision 'd1' overlaps with other requested revisions 'b'");
	lm_graph_free(g);

	g = G("ab12ff ab34ee:ab12ff ab56dd:ab34ee");
	CHECK_STR(resolve(g, "ab", ""),
		"error: Multiple revisions start with 'ab': 'ab12ff', 'ab34ee', 'ab56dd'");
	CHECK_STR(resolve(g, "ab5", ""), "ab56dd");
	CHECK_STR(resolve(g, "ab56dd@ab1", ""), "ab12ff");
	lm_graph_free(g);
}

static void test_heads_and_flags(void)
{
	/* c is a head but not a real head: r2 depends on it */
	lm_graph *g = G("a b:a c:b r r2:r:c m:b,r");
	const int *v;
	int c = lm_graph_find(g, "c"), b = lm_graph_find(g, "b");
	CHECK(lm_graph_flags(g, c) == LM_REV_HEAD);
	CHECK(lm_graph_flags(g, b) == LM_REV_BRANCH_POINT);
	CHECK(lm_graph_flags(g, lm_graph_find(g, "m"))
		== (LM_REV_HEAD | LM_REV_REAL_HEAD | LM_REV_MERGE_POINT));
	CHECK(lm_graph_flags(g, lm_graph_find(g, "r"))
		== (LM_REV_BASE | LM_REV_BRANCH_POINT));
	CHECK_STR(heads(g, 0), "c r2 m");
	CHECK_STR(heads(g, 1), "r2 m");
	CHECK_STR(resolve(g, "heads", ""), "r2 m");
	CHECK(lm_graph_dependencies(g, lm_graph_find(g, "r2"), &v) == 1 && v[0] == c);
	CHECK(lm_graph_children(g, b, &v) == 2
		&& v[0] == c && v[1] == lm_graph_find(g, "m"));
	CHECK(lm_graph_children(g, c, &v) == 0);
	lm_graph_free(g);

	/* depends_on by label and by unique prefix */
	g = G("a bbbb1:a::lab ccccc:a r r2:r:lab,cccc");
	CHECK(lm_graph_dependencies(g, lm_graph_find(g, "r2"), &v) == 2
		&& v[0] == lm_graph_find(g, "bbbb1") && v[1] == lm_graph_find(g, "ccccc"));
	lm_graph_free(g);
	CHECK_STR(build_error("abcd1 abcd2 r::abcd"),
		"Multiple revisions start with 'abcd': 'abcd1', 'abcd2' (depends_on of 'r' in 'versions/r.lua')");
	/* a dependency an ancestor already declares is not an edge of its own */
	g = G("x a:x:y b:a:y y");
	CHECK(lm_graph_dependencies(g, lm_graph_find(g, "b"), &v) == 1);
	CHECK_STR(UP(g, "y", "b"), "+x[x,y] +a[a] +b[b]");
	lm_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* scale */

static void test_scale(void)
{
	enum { N = 10000 };
	static char specbuf[N * 40];
	size_t len = 0;
	lm_graph *g;
	lm_plan p = { 0 }, d = { 0 };
	lm_revs h = { 0 };
	lm_error err = { 0 };
	const int *v;

	/* a chain */
	for (int i = 0; i < N; i++)
		len += (size_t)snprintf(specbuf + len, sizeof specbuf - len,
			i ? " r%05d:r%05d" : "r%05d", i, i - 1);
	g = G(specbuf);
	CHECK(lm_graph_heads(g, &v) == 1 && v[0] == N - 1);
	CHECK(lm_graph_history(g, NULL, NULL, 0, &h, &err) == 0 && h.n == N
		&& h.revs[0] == N - 1 && h.revs[N - 1] == 0);
	lm_revs_free(&h);
	CHECK(lm_graph_plan_upgrade(g, NULL, 0, "heads", &p, &err) == 0 && p.n == N);
	int ok = p.n == N;
	for (int i = 0; ok && i < p.n; i++)
		ok = p.steps[i].rev == i && p.steps[i].upgrade
			&& p.steps[i].nrows_after == 1 && p.steps[i].rows_after[0] == i;
	CHECK(ok);
	int tip = N - 1;
	CHECK(lm_graph_plan_downgrade(g, &tip, 1, "base", &d, &err) == 0 && d.n == N
		&& d.steps[N - 1].nrows_after == 0 && d.steps[0].rev == N - 1);
	lm_plan_free(&p);
	lm_plan_free(&d);
	CHECK_STR(resolve(g, "head-9998", ""), "r00001");
	lm_graph_free(g);

	/* 100 branches of 100 off one root, merged at the end */
	len = (size_t)snprintf(specbuf, sizeof specbuf, "root");
	for (int b = 0; b < 100; b++)
		for (int i = 0; i < 99; i++)
			len += (size_t)snprintf(specbuf + len, sizeof specbuf - len,
				i ? " b%02d_%02d:b%02d_%02d" : " b%02d_%02d:root", b, i, b,
				i - 1);
	len += (size_t)snprintf(specbuf + len, sizeof specbuf - len, " merge:");
	for (int b = 0; b < 100; b++)
		len += (size_t)snprintf(specbuf + len, sizeof specbuf - len, "%sb%02d_98",
			b ? "," : "", b);
	g = G(specbuf);
	CHECK(lm_graph_count(g) == 9902);
	CHECK(lm_graph_heads(g, &v) == 1);
	CHECK(lm_graph_history(g, NULL, NULL, 0, &h, &err) == 0 && h.n == 9902);
	lm_revs_free(&h);
	CHECK(lm_graph_plan_upgrade(g, NULL, 0, "heads", &p, &err) == 0 && p.n == 9902);
	/* the branch loaded last runs first; the merge leaves one row */
	CHECK(p.n == 9902 && strcmp(lm_graph_id(g, p.steps[1].rev), "b99_00") == 0
		&& strcmp(lm_graph_id(g, p.steps[100].rev), "b98_00") == 0
		&& p.steps[9900].nrows_after == 100
		&& p.steps[9901].nrows_after == 1);
	int m = lm_graph_find(g, "merge");
	CHECK(lm_graph_plan_downgrade(g, &m, 1, "root", &d, &err) == 0 && d.n == 9901
		&& d.steps[0].nrows_after == 100 && d.steps[9900].nrows_after == 1);
	lm_plan_free(&p);
	lm_plan_free(&d);
	lm_graph_free(g);

	/* wide: 2000 heads on one root */
	len = (size_t)snprintf(specbuf, sizeof specbuf, "root");
	for (int i = 0; i < 2000; i++)
		len += (size_t)snprintf(specbuf + len, sizeof specbuf - len,
			" w%04d:root", i);
	g = G(specbuf);
	CHECK(lm_graph_heads(g, &v) == 2000 && lm_graph_real_heads(g, &v) == 2000);
	CHECK(lm_graph_history(g, NULL, NULL, 0, &h, &err) == 0 && h.n == 2001
		&& h.revs[0] == 1 && h.revs[2000] == 0);
	lm_revs_free(&h);
	CHECK(lm_graph_plan_upgrade(g, NULL, 0, "heads", &p, &err) == 0 && p.n == 2001
		&& p.steps[0].rev == 0 && p.steps[1].rev == 2000
		&& p.steps[2000].nrows_after == 2000);
	CHECK(lm_graph_plan_downgrade(g, p.steps[2000].rows_after, 2000, "base",
		      &d, &err) == 0 && d.n == 2001 && d.steps[1999].nrows_after == 1
		&& d.steps[2000].nrows_after == 0);
	lm_plan_free(&p);
	lm_plan_free(&d);
	lm_graph_free(g);
}

static void test_empty(void)
{
	lm_graph *g = G("");
	const int *v;
	CHECK(lm_graph_count(g) == 0);
	CHECK(lm_graph_heads(g, &v) == 0);
	CHECK_STR(resolve(g, "head", ""), "");
	CHECK_STR(resolve(g, "heads", ""), "");
	CHECK_STR(UP(g, "", "heads"), "");
	CHECK_STR(history(g, NULL, ""), "");
	CHECK_STR(DOWN(g, "", "base"), "");
	lm_graph_free(g);
}

int main(void)
{
	test_chain();
	test_prefixes();
	test_simple_branch();
	test_build_errors();
	test_labels_simple();

	test_branch_labels();
	test_merge();
	test_twin_merge();
	test_cross_root();
	test_depends_cross();
	test_dep_normalized();
	test_forest();
	test_stamps();
	test_relative();
	test_dep_own_parent();
	test_multi_down();
	test_label_inheritance();
	test_resolve_forms();
	test_heads_and_flags();
	test_scale();
	test_empty();
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
