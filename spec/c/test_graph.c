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

#define MAXL 64

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
	test_empty();
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
