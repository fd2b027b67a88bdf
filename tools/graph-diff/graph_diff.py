"""graph-diff: luamig's revision graph against Alembic 1.8, end to end.

Every case is one revision graph written twice, as Alembic revision files
(Python) and as luamig revision files (Lua), with the same file names apart
from the extension, so both tools load them in the same order. Each
revision's upgrade()/downgrade() appends (rev, dir) to a table `log` that this
program creates in both SQLite files before the first step. Then one command
sequence runs through both command lines, each tool on its own database, and
after every step the program compares:

  - success or failure (exit 0 against non-zero; the messages differ on
    purpose, luamig's name the real problem),
  - the revisions applied, in order (the log rows the step added),
  - the version rows (alembic_version against luamig_version),
  - for the read-only commands (heads, branches, history, current, show),
    stdout line by line, after normalize_output() (paths, and the lists that
    Alembic prints in Python set order).

A difference is a mismatch unless one of the rules in EXPECTED explains it;
every such step is counted and named in the summary, never skipped silently.

Alembic runs through its real entry point, alembic.config.main(), the function
`python3 -m alembic` calls. To keep thousands of steps fast, this process
imports Alembic once and forks a child per command; the child points fds 1
and 2 at files, changes directory, runs main(argv) and exits with the status
the CLI would (sys.exit(-1) -> 255, a traceback -> 1). --spawn starts a
fresh /usr/bin/python3 per command instead, to check that both ways agree.
One change is made to Alembic 1.8.1: patch_load_order() gives it the sorted
file listing of Alembic 1.10, which luamig follows.

Run it through tools/graph-diff/run (see --help). Python's standard library
and Debian's python3-alembic only.
"""

import argparse
import contextlib
import multiprocessing
import os
import random
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ALEMBIC_PYTHON = "/usr/bin/python3"
CREATE_DATE = "2026-01-01 00:00:00.000000"

# --------------------------------------------------------------------------
# graphs

class Rev:
    __slots__ = ("id", "down", "deps", "labels")

    def __init__(self, id, down=(), deps=(), labels=()):
        self.id, self.down, self.deps, self.labels = id, list(down), list(deps), list(labels)


def compact(graph):
    """The one-line form: `id:down,down:dep,dep:label` per revision, in load order."""
    out = []
    for r in graph:
        f = [r.id, ",".join(r.down), ",".join(r.deps), ",".join(r.labels)]
        while len(f) > 1 and not f[-1]:
            f.pop()
        out.append(":".join(f))
    return " ".join(out)


def parse_compact(text):
    graph = []
    for item in text.split():
        f = item.split(":") + ["", "", ""]
        graph.append(Rev(f[0], [x for x in f[1].split(",") if x],
                         [x for x in f[2].split(",") if x], [x for x in f[3].split(",") if x]))
    return graph


def has_dependencies(graph):
    return any(r.deps for r in graph)


# Hand-picked graphs, modelled on Alembic's tests/test_version_traversal.py
# and test_revision.py. Each: name, graph in load order, command sequence.
CASES = [
    ("linear", "a b:a c:b d:c e:d", [
        "upgrade +2", "upgrade +2", "downgrade -1", "upgrade c+1", "upgrade head",
        "current", "downgrade -2", "downgrade c-1", "downgrade head-3", "upgrade base+2",
        "upgrade +3", "upgrade +9", "downgrade -9", "downgrade base", "downgrade -1",
        "upgrade -1", "downgrade +1", "upgrade e", "downgrade b+1", "downgrade base+1",
        "stamp c", "history", "history -r b:d", "history -r c:", "history -r :c",
        "history -r current:", "history -r :current", "history -i", "stamp base",
        "current", "upgrade heads", "heads", "heads -v", "show c", "show head",
        "branches", "downgrade e", "upgrade a", "upgrade c-1", "stamp --purge e",
    ]),
    ("branch_labels", "a b:a c1:b::c1br d1:c1 c2:b::c2br d2:c2", [
        "upgrade c2br@head", "upgrade c1br@head", "downgrade c1br@-1", "downgrade c2br@base",
        "downgrade c1br@base", "upgrade b", "upgrade c1br@+1", "upgrade c2br@+2",
        "upgrade c2br@head", "current", "downgrade c1br@b", "upgrade heads",
        "downgrade c1br@d2", "downgrade -1", "upgrade c1br@heads", "downgrade c2br@-1",
        "stamp c1br@head", "stamp c2br@head", "stamp c1br@base", "upgrade head",
        "upgrade c2br@head-1", "upgrade heads", "history", "history -r c2:", "history -r :d1",
        "history -i", "branches", "branches -v", "heads", "heads -v", "show b", "show c1br",
        "show c2br@head", "downgrade b", "upgrade d1", "upgrade +1", "downgrade a",
        "upgrade c1br@+2", "upgrade c2br@d2", "downgrade base",
    ]),
    ("merge", "a b1:a b2:a m:b1,b2 c:m", [
        "upgrade b1", "upgrade b2", "upgrade +1", "downgrade b1", "upgrade m",
        "upgrade +2", "upgrade heads", "downgrade -1", "downgrade -1", "downgrade b1",
        "downgrade a", "upgrade c", "downgrade b2", "stamp b1", "stamp m", "stamp b2",
        "upgrade heads", "history", "branches", "show m", "current", "downgrade base",
        "stamp c", "downgrade m-1", "stamp a", "upgrade m", "downgrade base",
    ]),
    ("twin_merge", "a b1:a b2:a b3:a c1:b1,b2,b3 c2:b1,b2,b3 d1:c1 d2:c2", [
        "upgrade a", "upgrade heads", "downgrade c1", "downgrade b2", "upgrade d1",
        "upgrade d2", "downgrade b1", "downgrade a", "upgrade c2", "upgrade c1",
        "current", "history", "branches", "downgrade base", "stamp c1", "stamp d2",
        "upgrade heads", "downgrade b3",
    ]),
    ("not_quite_twin", "a b1:a b2:a b3:a c1:b1,b2 c2:b2,b3 d1:c1 d2:c2", [
        "upgrade a", "upgrade heads", "downgrade b2", "downgrade a", "upgrade d1",
        "upgrade c2", "downgrade b3", "downgrade b1", "upgrade heads", "history",
        "downgrade base", "stamp c2", "upgrade d1",
    ]),
    ("cross_root_merge", "r1 r2 x:r1 y:r2 m:x,y z:m", [
        "upgrade x", "upgrade heads", "downgrade r1", "downgrade y", "upgrade m",
        "downgrade base", "upgrade y", "upgrade z", "downgrade x", "history", "heads",
        "stamp r2", "upgrade +3", "downgrade base",
    ]),
    ("depends_cross_root", "a1:::lib1 b1:a1 c1:b1 a2 b2:a2 c2:b2:c1 d1:c1 e1:d1 f1:e1", [
        "upgrade c2", "upgrade d1", "downgrade c1", "downgrade b2", "upgrade heads",
        "stamp b1", "upgrade c2", "upgrade lib1@head", "downgrade lib1@-2", "downgrade lib1@base",
        "history", "heads", "show c2", "current", "upgrade heads", "downgrade a2",
        "stamp e1", "stamp c2",
    ]),
    ("depends_three_roots", "a1 a2 a3 amerge:a1,a2,a3 b1 b2 bmerge:b1,b2 c1 c2 c3 cmerge:c1,c2,c3 d1::a3,b2,c1", [
        "upgrade heads", "downgrade b2", "upgrade d1", "downgrade a3", "upgrade heads",
        "downgrade base", "upgrade d1", "upgrade cmerge", "history", "heads",
    ]),
    ("depends_crisscross", "a1 a2:a1 b1 b2:b1:a2 b3:b2 a3:a2:b1", [
        "upgrade a3", "upgrade b2", "downgrade b1", "upgrade heads", "downgrade a1",
        "upgrade b3", "history", "downgrade base",
    ]),
    ("depends_own_parent", "a1 a2:a1:a1", [
        "upgrade a2", "downgrade a1", "upgrade heads", "history", "downgrade base",
    ]),
    ("depends_normalized", "a1 a2:a1 a3:a2 b1 b2:b1:a3 b3:b2 b4:b3:a3", [
        "upgrade b4", "downgrade b3", "downgrade a2", "upgrade heads", "history",
        "downgrade base", "upgrade b2", "stamp b4",
    ]),
    ("depends_into_merge", "a1 b1::a1 bmerge:a1,b1", [
        "upgrade b1", "upgrade bmerge", "downgrade a1", "upgrade bmerge", "downgrade b1",
        "upgrade heads", "history", "downgrade base", "stamp bmerge", "downgrade a1",
    ]),
    ("depends_on_label", "a1:::lib1 b1:a1 c1:b1::c1lib a2 b2:a2 c2:b2:c1lib d1:c1 e1:d1 f1:e1", [
        "upgrade c2", "upgrade heads", "downgrade c1lib@-1", "downgrade c1", "history",
        "downgrade base", "upgrade c1lib@head", "show c2",
    ]),
    ("forest", "p1 p2:p1 q1 q2:q1 s1 s2:s1", [
        "upgrade heads", "downgrade q1", "downgrade base", "upgrade p2", "upgrade heads",
        "stamp q2", "stamp base", "stamp heads", "downgrade -1", "history", "heads",
        "current", "upgrade s1", "downgrade p1",
    ]),
    ("stamps", "a b:a c1:b c2:b d1:c1 d2:c2 m:d1,d2", [
        "stamp heads", "stamp b", "stamp d1", "stamp d2", "stamp m", "stamp d1",
        "upgrade d2", "stamp m", "stamp --purge a", "stamp d1", "stamp base", "stamp c1",
        "stamp c2", "upgrade heads", "stamp head", "stamp b", "current", "stamp --purge heads",
    ]),
    ("branch_from_mergepoint", "a1 b1:a1 c1:b1 a2 b2:a2 c2:b2 d1:c1,c2 d2:c2", [
        "upgrade b1", "upgrade d2", "upgrade d1", "downgrade c2", "downgrade b1",
        "upgrade heads", "downgrade base", "history", "branches",
    ]),
    ("branch_from_3way_mergepoint",
     "a1 b1:a1 c1:b1 a2 b2:a2 c2:b2 a3 b3:a3 c3:b3 d1:c1,c2,c3 d2:c2 d3:c3", [
        "upgrade b1", "upgrade d3", "upgrade d2", "upgrade d1", "downgrade b1",
        "downgrade c2", "upgrade heads", "downgrade b3", "downgrade base", "history",
    ]),
    ("merged_path", "a b:a c1:b d1:c1 c2:b::c2branch d2:c2 e:d1,d2 f:e", [
        "upgrade c2", "upgrade d1", "stamp c2branch@head", "stamp e", "stamp c2",
        "stamp a", "upgrade heads", "downgrade c2branch@base", "downgrade c2branch@-1",
        "upgrade heads", "downgrade c2", "history", "branches", "show e",
    ]),
    ("load_order_reversed", "e:d d:c c:b b:a a", [
        "upgrade +1", "upgrade heads", "downgrade -2", "history", "heads", "downgrade base",
    ]),
    ("prefixes", "abcd1 abcd2:abcd1 abce:abcd1 b0f:abcd2", [
        "upgrade abcd", "upgrade abc", "upgrade abcd2", "upgrade abce", "downgrade abcd1",
        "upgrade b0f", "upgrade b0", "stamp abce", "downgrade ab", "show abcd2",
        "upgrade abcd3", "upgrade heads",
    ]),
    ("current_ranges", "p q:p r s:r:q", [
        "upgrade s", "current", "current -v", "history -r :current", "history -r current:",
        "history -r current:current", "downgrade r", "current", "downgrade base", "current",
        "history -r :current", "history -r base:current", "history -r q:current", "upgrade q",
        "history -r p:current", "upgrade heads", "current",
    ]),
    ("relative_branches", "a b:a c1:b d1:c1 c2:b d2:c2", [
        "upgrade b", "upgrade +1", "upgrade c1", "upgrade +1", "upgrade c2", "upgrade +1",
        "downgrade -1", "upgrade head", "upgrade b+2", "downgrade c1-1", "downgrade d2-2",
        "upgrade heads", "history",
    ]),
]

# --------------------------------------------------------------------------
# random graphs and command sequences

def rand_ids(rng, n):
    ids = []
    while len(ids) < n:
        x = "%04x" % rng.randrange(0x10000)
        if x not in ids:
            ids.append(x)
    return ids


def rand_graph(rng):
    """A random DAG: built in topological order, loaded in shuffled order."""
    n = rng.randrange(2, 15)
    p_root = rng.choice((0.05, 0.15, 0.3))
    p_merge = rng.choice((0.1, 0.2, 0.35))
    p_dep = rng.choice((0.0, 0.15, 0.3))
    p_label = rng.choice((0.0, 0.1, 0.25))
    ids = rand_ids(rng, n)
    graph, labelled = [], []
    for i, rid in enumerate(ids):
        down = []
        if i > 0 and rng.random() > p_root:
            down.append(rng.choice(ids[:i]))
            if i > 1 and rng.random() < p_merge:
                other = rng.choice(ids[:i])
                if other not in down:
                    down.append(other)
        deps = []
        if i > 0 and rng.random() < p_dep:
            if labelled and rng.random() < 0.25:
                deps.append(rng.choice(labelled)[1])
            else:
                d = rng.choice(ids[:i])
                if d not in down:
                    deps.append(d)
        labels = []
        if rng.random() < p_label:
            labels.append("L%d" % len(labelled))
            labelled.append((rid, labels[0]))
        graph.append(Rev(rid, down, deps, labels))
    if rng.random() < 0.8:
        rng.shuffle(graph)
    return graph


def rand_command(rng, graph):
    ids = [r.id for r in graph]
    labels = [l for r in graph for l in r.labels]
    pick = rng.choice

    def some_id():
        return pick(ids)

    def label_forms(forms):
        return [pick(labels) + "@" + f for f in forms] if labels else []

    r = rng.random()
    if r < 0.36:
        targets = ([some_id()] * 6 + ["heads"] * 3 + ["head", "+1", "+2", "base+1", "base+2", "head-1"]
                   + [some_id() + "+1", some_id() + "-1", some_id()[:3], some_id()[:2]]
                   + label_forms(["head", "heads", "+1", "+2", some_id(), "head-1", "base+1"]))
        return "upgrade " + pick(targets)
    if r < 0.62:
        targets = ([some_id()] * 5 + ["base"] * 2 + ["-1"] * 3 + ["-2", "head-1", "base+1"]
                   + [some_id() + "-1", some_id() + "+1", some_id()[:3]]
                   + label_forms(["base", "-1", "-2", some_id(), "head-1"]))
        return "downgrade " + pick(targets)
    if r < 0.76:
        targets = [some_id()] * 4 + ["heads", "head", "base"] + label_forms(["head", "base", some_id()])
        purge = "--purge " if rng.random() < 0.15 else ""
        return "stamp " + purge + pick(targets)
    reads = ["heads", "heads -v", "current", "current -v", "history", "history -i", "branches", "show " + some_id(),
             "history -r %s:%s" % (pick(ids + ["", "base", "current"]), pick(ids + ["", "heads", "current"]))]
    if labels:
        reads.append("show " + pick(labels) + "@head")
    return pick(reads)


def rand_commands(rng, graph, steps):
    cmds = ["upgrade heads" if rng.random() < 0.5 else "upgrade " + rng.choice(graph).id]
    while len(cmds) < steps:
        cmds.append(rand_command(rng, graph))
    return cmds[:steps]

# --------------------------------------------------------------------------
# projects on disk

def py_doc(r):
    revises = ", ".join(r.down)
    return "rev %s\n\nRevision ID: %s\nRevises: %s\nCreate Date: %s\n" % (r.id, r.id, revises, CREATE_DATE)


def py_value(v, many):
    if not v:
        return "None"
    if len(v) == 1 and not many:
        return repr(v[0])
    return "(" + ", ".join(repr(x) for x in v) + ("," if len(v) == 1 else "") + ")"


def lua_value(v, many):
    if not v:
        return "nil"
    if len(v) == 1 and not many:
        return '"%s"' % v[0]
    return "{ " + ", ".join('"%s"' % x for x in v) + " }"


def write_project(dirpath, graph):
    """dirpath/al (Alembic), dirpath/lm (luamig), dirpath/a.db, dirpath/l.db."""
    al, lm = os.path.join(dirpath, "al"), os.path.join(dirpath, "lm")
    os.makedirs(os.path.join(al, "versions"))
    os.makedirs(os.path.join(lm, "migrations", "versions"))
    shutil.copyfile(os.path.join(HERE, "env.py"), os.path.join(al, "env.py"))
    with open(os.path.join(al, "alembic.ini"), "w") as f:
        f.write("[alembic]\nscript_location = %s\n" % al)
    with open(os.path.join(lm, "luamig.lua"), "w") as f:
        f.write('return { script_location = "migrations", url = "sqlite:///%s" }\n'
                % os.path.join(dirpath, "l.db"))
    for i, r in enumerate(graph):
        name = "%04d_%s" % (i + 1, r.id)
        with open(os.path.join(al, "versions", name + ".py"), "w") as f:
            f.write('"""%s"""\nfrom alembic import op\n\n' % py_doc(r))
            f.write("revision = %r\n" % r.id)
            f.write("down_revision = %s\n" % py_value(r.down, False))
            f.write("branch_labels = %s\n" % py_value(r.labels, True))
            f.write("depends_on = %s\n\n\n" % py_value(r.deps, True))
            for fn, d in (("upgrade", "up"), ("downgrade", "down")):
                f.write("def %s():\n    op.execute(\"INSERT INTO log (rev, dir) VALUES ('%s', '%s')\")\n\n\n"
                        % (fn, r.id, d))
        with open(os.path.join(lm, "migrations", "versions", name + ".lua"), "w") as f:
            f.write("--[[ %s]]\n" % py_doc(r))
            f.write('revision = "%s"\n' % r.id)
            f.write("down_revision = %s\n" % lua_value(r.down, False))
            f.write("branch_labels = %s\n" % lua_value(r.labels, True))
            f.write("depends_on = %s\n\n" % lua_value(r.deps, True))
            for fn, d in (("upgrade", "up"), ("downgrade", "down")):
                f.write('function %s()\n  op.execute("INSERT INTO log (rev, dir) VALUES (?, ?)", { "%s", "%s" })\nend\n\n'
                        % (fn, r.id, d))
    for db in ("a.db", "l.db"):
        with contextlib.closing(sqlite3.connect(os.path.join(dirpath, db))) as c:
            c.execute("CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, rev TEXT NOT NULL, dir TEXT NOT NULL)")
            c.commit()

# --------------------------------------------------------------------------
# running the tools

class Result:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err
        self.log, self.rows = [], []

    @property
    def ok(self):
        return self.code == 0


def _read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def alembic_fork(argv, cwd, url, tmp, decl_order=False):
    """alembic.config.main(argv) in a forked child, as `python3 -m alembic` would run it."""
    out, err = os.path.join(tmp, "a.out"), os.path.join(tmp, "a.err")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            signal.alarm(120)
            os.chdir(cwd)
            os.environ["GRAPH_DIFF_URL"] = url
            for fd, path in ((1, out), (2, err)):
                f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(f, fd)
                os.close(f)
            sys.argv = ["alembic"] + argv
            patch_load_order()
            if decl_order:
                _patch_declaration_order()
            try:
                import alembic.config
                alembic.config.main(argv=argv, prog="alembic")
                code = 0
            except SystemExit as e:
                if e.code is None:
                    code = 0
                elif isinstance(e.code, int):
                    code = e.code & 0xFF
                else:
                    print(e.code, file=sys.stderr)
                    code = 1
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return Result(os.waitstatus_to_exitcode(status), _read(out), _read(err))


def alembic_spawn(argv, cwd, url, tmp):
    """The same through tools/graph-diff/alembic: a fresh Python per command."""
    env = dict(os.environ, GRAPH_DIFF_URL=url)
    p = subprocess.run([os.path.join(HERE, "alembic")] + argv, cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=300)
    return Result(p.returncode, p.stdout, p.stderr)


def patch_load_order():
    """Alembic 1.8.1 loads version files in os.listdir() order (on ext4, hash
    order); 1.10 and later sort them by name (Script._list_py_dir), and luamig
    follows 1.10 (SPEC section 3), as the load order breaks ties in the order
    of application. This gives 1.8.1 the sorted listing of 1.10. It is the
    one change made to Alembic for every command."""
    from alembic.script.base import Script

    def _list_py_dir(cls, scriptdir, path):
        return sorted(_orig(scriptdir, path))
    _orig = Script._list_py_dir
    Script._list_py_dir = classmethod(_list_py_dir)


def _patch_declaration_order():
    """Alembic 1.8 keeps a revision's normalized dependencies in Python set
    order (tuple(set(...)), so it varies with PYTHONHASHSEED); luamig keeps
    declaration order. This makes Alembic keep declaration order too, for the
    `depends-order` rule only."""
    from alembic.script.revision import RevisionMap

    def _normalize_depends_on(self, revisions, map_):
        for revision in revisions:
            if revision._resolved_dependencies:
                normalized = set(revision._resolved_dependencies)
                for rev in self._get_ancestor_nodes([revision], include_dependencies=False, map_=map_):
                    if rev is revision:
                        continue
                    elif rev._resolved_dependencies:
                        normalized.difference_update(rev._resolved_dependencies)
                revision._normalized_resolved_dependencies = tuple(
                    d for d in revision._resolved_dependencies if d in normalized)
            else:
                revision._normalized_resolved_dependencies = ()
    RevisionMap._normalize_depends_on = _normalize_depends_on


def luamig_run(luamig, argv, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LUAMIG_CONFIG")}
    try:
        p = subprocess.run([luamig] + argv, cwd=cwd, env=env, capture_output=True, text=True,
                           errors="replace", timeout=300)
    except subprocess.TimeoutExpired:
        return Result(-999, "", "luamig timed out after 300 s")
    return Result(p.returncode, p.stdout, p.stderr)


def read_db(path, table, since):
    """(log rows with id > since, as [(rev, dir)], sorted version rows, last log id)."""
    with contextlib.closing(sqlite3.connect(path)) as c:
        log = c.execute("SELECT id, rev, dir FROM log WHERE id > ? ORDER BY id", (since,)).fetchall()
        try:
            rows = sorted(r[0] for r in c.execute("SELECT version_num FROM %s" % table))
        except sqlite3.OperationalError:
            rows = []
    return [(r, d) for _, r, d in log], rows, (log[-1][0] if log else since)


def write_version_rows(path, table, rows):
    with contextlib.closing(sqlite3.connect(path)) as c:
        c.execute("CREATE TABLE IF NOT EXISTS %s (version_num VARCHAR(32) NOT NULL, "
                  "CONSTRAINT %s_pkc PRIMARY KEY (version_num))" % (table, table))
        c.execute("DELETE FROM %s" % table)
        c.executemany("INSERT INTO %s (version_num) VALUES (?)" % table, [(r,) for r in rows])
        c.commit()

# --------------------------------------------------------------------------
# comparing

READ_ONLY = ("heads", "branches", "history", "current", "show")


def normalize_output(text, graph):
    """Alembic's stdout and luamig's, made comparable. Allowed differences:
    the script path (.py under al/versions, .lua under migrations/versions)
    and the database URL of `current -v`; and the order inside lists Alembic
    keeps in Python sets (branch labels, a branch point's children, the rows
    `current` prints), which are sorted."""
    labels = {l for r in graph for l in r.labels}
    lines = []
    for line in text.splitlines():
        line = re.sub(r"^Path: .*/(\d{4}_[^/]*)\.(py|lua)$", r"Path: \1", line)
        line = re.sub(r"^Current revision\(s\) for .*:$", "Current revision(s) for <url>:", line)

        def sort_group(m):
            items = m.group(1).split(", ")
            return "(" + ", ".join(sorted(items)) + ")" if all(i in labels for i in items) else m.group(0)
        line = re.sub(r"\(([^()]*)\)", sort_group, line)
        m = re.match(r"^(Branch names|Branches into): (.*)$", line)
        if m:
            line = "%s: %s" % (m.group(1), ", ".join(sorted(m.group(2).split(", "))))
        lines.append(line)
    # runs of ` -> child` lines under a branch point (`branches`), and the
    # one-line-per-row output of `current`, come in set order
    out, run = [], []
    for line in lines + [None]:
        if line is not None and re.match(r"^\s+-> ", line):
            run.append(line)
            continue
        out.extend(sorted(run))
        run = []
        if line is not None:
            out.append(line)
    return out


def sorted_entries(lines):
    """`current` output as its header line and its entries, sorted: an entry
    is one line, or with -v the block from one `Rev: ` line to the next."""
    head = [x for x in lines if x.startswith("Current revision(s) for ")]
    body = [x for x in lines if not x.startswith("Current revision(s) for ")]
    verbose = any(x.startswith("Rev: ") for x in body)
    entries = []
    for line in body:
        if not verbose or line.startswith("Rev: ") or not entries:
            entries.append([line])
        else:
            entries[-1].append(line)
    return head + sorted(entries)


def same(a, l, cmd, graph):
    if a.ok != l.ok or a.log != l.log or a.rows != l.rows:
        return False
    if cmd.split()[0] in READ_ONLY and a.ok:
        na, nl = normalize_output(a.out, graph), normalize_output(l.out, graph)
        if cmd.split()[0] == "current":
            # Alembic prints the current revisions in set order: compare the
            # entries (one line each, or `Rev: ` blocks with -v) sorted
            na, nl = sorted_entries(na), sorted_entries(nl)
        return na == nl
    return True


def luamig_problem(l):
    """A luamig result no comparison may excuse: a crash, a usage error, or
    an error that is not one `luamig: error: ` line."""
    if l.code not in (0, 1):
        return "luamig exited with %d (expected 0 or 1)" % l.code
    if l.code == 1:
        lines = l.err.rstrip("\n").split("\n")
        if len(lines) != 1 or not lines[0].startswith("luamig: error: "):
            return "luamig's error is not one 'luamig: error: ' line"
    return None


def alembic_traceback(a):
    if a.code == 1 and "Traceback (most recent call last)" in a.err:
        return a.err.rstrip().split("\n")[-1]
    return None


# The deliberate differences, each a rule that must explain the whole step.
# A rule gets (cmd, rows before the step, alembic result, luamig result, ctx)
# and returns a short reason or None.
def rule_downgrade_multi(cmd, before, a, l, ctx):
    # Alembic warns "downgrade -1 from multiple heads is ambiguous" and takes
    # the first row; luamig refuses. (This is also where "relative -N counts
    # from the current rows" shows: with one row, or one row on label's
    # branch for label@-N, both count from it and agree.)
    w = cmd.split()
    if (w[0] == "downgrade" and re.fullmatch(r"(?:[^@]+@)?-\d+", w[-1]) and len(before) > 1 and not l.ok
            and "Ambiguous downgrade from multiple current revisions" in l.err):
        return "downgrade %s from %d rows" % (w[-1], len(before))
    return None


def rule_branch_membership(cmd, before, a, l, ctx):
    # Alembic's downgrade does not check that label@rev's rev is on branch
    # label; luamig does.
    w = cmd.split()
    if (w[0] == "downgrade" and re.fullmatch(r"[^@]+@[^+-]+", w[-1]) and not l.ok
            and "is not a member of branch" in l.err):
        return w[-1]
    return None


def rule_alembic_traceback(cmd, before, a, l, ctx):
    # Alembic crashes with a Python traceback; luamig gives a result.
    tb = alembic_traceback(a)
    return tb if tb else None


def rule_failed_purge(cmd, before, a, l, ctx):
    # Alembic's `stamp --purge` deletes every version row and commits that
    # (MigrationContext._ensure_version_table(purge=True)) before resolving
    # the target; when the target then fails to resolve, the command fails
    # with the table already empty. luamig fails without touching it.
    w = cmd.split()
    if (w[0] == "stamp" and "--purge" in w and not a.ok and not l.ok and a.log == l.log == []
            and a.rows == [] and l.rows == sorted(before)):
        return "Alembic failed and left the version table empty"
    return None


def rule_depends_order(cmd, before, a, l, ctx):
    # Alembic orders a revision's normalized dependencies in set order;
    # luamig in declaration order. Rerun Alembic with declaration order on a
    # copy of the database as it was before the step: it must then agree.
    if not has_dependencies(ctx["graph"]):
        return None
    a2 = ctx["rerun_declaration_order"]()
    if a2 is not None and same(a2, l, cmd, ctx["graph"]):
        return "Alembic with depends_on in declaration order agrees"
    return None


def rule_history_current(cmd, before, a, l, ctx):
    # `history -r` with `current` on a side. Alembic substitutes only one
    # side (so current:current fails to resolve 'current'), and reads an
    # empty version table as "heads"; luamig substitutes both sides and reads
    # an empty table as base: nothing is applied, so nothing is current.
    w = cmd.split()
    if w[0] != "history" or "-r" not in w or "current" not in w[w.index("-r") + 1]:
        return None
    rng = w[w.index("-r") + 1]
    if rng == "current:current" and not a.ok and "'current'" in a.out + a.err:
        return "Alembic cannot resolve current:current"
    if not before:
        return "empty version table: Alembic reads current as heads, luamig as base"
    return None


EXPECTED = [
    ("history-current", rule_history_current),
    ("downgrade-multi", rule_downgrade_multi),
    ("branch-membership", rule_branch_membership),
    ("alembic-traceback", rule_alembic_traceback),
    ("alembic-failed-purge", rule_failed_purge),
    ("depends-order", rule_depends_order),
]

# --------------------------------------------------------------------------
# one case

def describe(tag, r):
    s = ["    %s: exit %d; applied: %s; rows: [%s]" % (
        tag, r.code, " ".join("%s(%s)" % (rev, d) for rev, d in r.log) or "-", ", ".join(r.rows))]
    for name, text in (("stdout", r.out), ("stderr", r.err)):
        text = text.rstrip("\n")
        if text:
            lines = text.split("\n")
            if len(lines) > 40:
                lines = lines[:20] + ["... (%d lines)" % len(lines)] + lines[-19:]
            s.append("      %s:" % name)
            s.extend("        | " + x for x in lines)
    return "\n".join(s)


def run_case(job):
    """job: dict(name, graph (compact), cmds, opts). Returns a result dict."""
    opts = job["opts"]
    graph = parse_compact(job["graph"])
    cmds = job["cmds"]
    base = tempfile.mkdtemp(prefix="g.", dir=opts["tmp"])
    res = {"name": job["name"], "steps": 0, "mismatches": [], "expected": [], "dir": base}
    try:
        write_project(base, graph)
        al, lm = os.path.join(base, "al"), os.path.join(base, "lm")
        adb, ldb = os.path.join(base, "a.db"), os.path.join(base, "l.db")
        aurl = "sqlite:///" + adb
        since_a = since_l = 0
        rows = []
        for i, cmd in enumerate(cmds):
            argv = shlex.split(cmd)
            shutil.copyfile(adb, os.path.join(base, "a.before.db"))
            if opts["spawn"]:
                a = alembic_spawn(argv, al, aurl, base)
            else:
                a = alembic_fork(argv, al, aurl, base)
            l = luamig_run(opts["luamig"], argv, lm)
            since_a_before = since_a
            a.log, a.rows, since_a = read_db(adb, "alembic_version", since_a)
            l.log, l.rows, since_l = read_db(ldb, "luamig_version", since_l)
            res["steps"] += 1

            def rerun():
                copy = os.path.join(base, "a.rerun.db")
                shutil.copyfile(os.path.join(base, "a.before.db"), copy)
                r = alembic_fork(argv, al, "sqlite:///" + copy, base, decl_order=True)
                r.log, r.rows, _ = read_db(copy, "alembic_version", since_a_before)
                return r
            problem = luamig_problem(l)
            if problem is None and same(a, l, cmd, graph):
                rows = l.rows
                continue
            reason = None
            if problem is None:
                ctx = {"graph": graph, "rerun_declaration_order": rerun}
                for name, rule in EXPECTED:
                    why = rule(cmd, rows, a, l, ctx)
                    if why:
                        reason = (name, why)
                        break
            if reason:
                res["expected"].append((reason[0], "%s | %s | %s -> %s" % (
                    job["name"], cmd, reason[1], "ok" if l.ok else "error")))
                if a.rows != l.rows:
                    write_version_rows(adb, "alembic_version", l.rows)
                rows = l.rows
                continue
            res["mismatches"].append({
                "step": i, "cmd": cmd, "problem": problem,
                "text": "\n".join([
                    "  step %d: %s%s" % (i + 1, cmd, ("   <- " + problem) if problem else ""),
                    "    rows before: [%s]" % ", ".join(rows),
                    describe("alembic", a), describe("luamig ", l)])})
            if a.log == l.log and a.rows == l.rows and problem is None:
                continue  # the databases still agree: go on with the next step
            break
    except Exception:
        res["mismatches"].append({"step": len(cmds) - 1, "cmd": "", "problem": "harness error",
                                  "text": "  harness error:\n" + traceback.format_exc()})
    finally:
        if not opts["keep"]:
            shutil.rmtree(base, ignore_errors=True)
    return res

# --------------------------------------------------------------------------
# main

def build_jobs(args):
    opts = {"luamig": args.luamig, "spawn": args.spawn, "keep": args.keep, "tmp": args.tmp}
    jobs = []
    if args.case:
        cmds = [c.strip() for c in (args.cmds or "").split(";") if c.strip()]
        jobs.append({"name": "case", "graph": compact(parse_compact(args.case)), "cmds": cmds, "opts": opts})
        return jobs
    if not args.no_cases:
        for name, g, cmds in CASES:
            jobs.append({"name": name, "graph": compact(parse_compact(g)), "cmds": cmds, "opts": opts})
    for seed in args.seed:
        for gi in range(args.graphs):
            rng = random.Random("%d/%d" % (seed, gi))
            graph = rand_graph(rng)
            jobs.append({"name": "seed %d graph %d" % (seed, gi), "graph": compact(graph),
                         "cmds": rand_commands(rng, graph, args.steps), "opts": opts})
    return jobs


def main():
    ap = argparse.ArgumentParser(prog="tools/graph-diff/run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, action="append", help="random seed (repeatable; default 1)")
    ap.add_argument("--graphs", type=int, default=300, help="random graphs per seed (default 300)")
    ap.add_argument("--steps", type=int, default=14, help="commands per random graph (default 14)")
    ap.add_argument("--no-cases", action="store_true", help="skip the hand-picked graphs")
    ap.add_argument("--case", help="run only this graph (compact form, as a mismatch prints it)")
    ap.add_argument("--cmds", help="with --case: the commands, separated by ';'")
    ap.add_argument("--emit", metavar="DIR", help="with --case: only write the two projects into DIR "
                    "(DIR/al: alembic.ini, env.py, versions/*.py; DIR/lm: luamig.lua, migrations/versions/*.lua; "
                    "DIR/a.db and DIR/l.db with the log table; Alembic reads GRAPH_DIFF_URL)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel cases (default: CPUs)")
    ap.add_argument("--luamig", default=os.environ.get("LUAMIG_BIN") or os.path.join(ROOT, "build", "luamig"))
    ap.add_argument("--spawn", action="store_true", help="start /usr/bin/python3 per Alembic command instead of forking")
    ap.add_argument("--keep", action="store_true", help="keep the projects under the temporary folder")
    ap.add_argument("--max-report", type=int, default=5, help="mismatches printed in full (default 5)")
    ap.add_argument("-v", "--verbose", action="store_true", help="list every expected divergence")
    args = ap.parse_args()
    args.seed = args.seed or [1]
    if args.emit:
        if not args.case:
            sys.exit("graph-diff: --emit needs --case")
        write_project(os.path.abspath(args.emit), parse_compact(args.case))
        return
    args.luamig = os.path.abspath(args.luamig)
    if not os.access(args.luamig, os.X_OK):
        sys.exit("graph-diff: no luamig binary at %s (set LUAMIG_BIN or --luamig)" % args.luamig)
    args.tmp = tempfile.mkdtemp(prefix="graph-diff.", dir="/tmp")
    import alembic.config  # noqa: F401  (loaded once, before the workers fork)
    sys.dont_write_bytecode = True

    jobs = build_jobs(args)
    started = time.time()
    graphs = steps = mismatches = 0
    expected, by_command = {}, {}
    ctx = multiprocessing.get_context("fork")
    try:
        with ctx.Pool(max(1, args.jobs)) as pool:
            for res in pool.imap(run_case, jobs):
                job = jobs[graphs]
                graphs += 1
                steps += res["steps"]
                for name, text in res["expected"]:
                    expected.setdefault(name, []).append(text)
                for m in res["mismatches"]:
                    mismatches += 1
                    kind = " ".join(w for w in m["cmd"].split()[:2] if w.startswith("-") or w == m["cmd"].split()[0])
                    by_command[kind or m["problem"]] = by_command.get(kind or m["problem"], 0) + 1
                    if mismatches > args.max_report:
                        print("graph-diff: MISMATCH in %s, step %d: %s (not shown in full)" % (
                            res["name"], m["step"] + 1, m["cmd"]))
                        continue
                    print("graph-diff: MISMATCH in %s: %s" % (res["name"], job["graph"]))
                    print("  commands: %s" % "; ".join(job["cmds"][:m["step"] + 1]))
                    print(m["text"])
                    print("  reproduce: tools/graph-diff/run --case %s --cmds %s%s\n" % (
                        shlex.quote(job["graph"]), shlex.quote("; ".join(job["cmds"][:m["step"] + 1])),
                        "  (project kept in %s)" % res["dir"] if args.keep else ""))
                sys.stdout.flush()
    finally:
        if not args.keep:
            shutil.rmtree(args.tmp, ignore_errors=True)
    if expected:
        print("graph-diff: expected divergences: " + ", ".join(
            "%s %d" % (k, len(v)) for k, v in sorted(expected.items())))
        if args.verbose:
            for k, v in sorted(expected.items()):
                for text in v:
                    print("  %s: %s" % (k, text))
    if by_command:
        print("graph-diff: mismatches by command: " + ", ".join(
            "%s %d" % (k, v) for k, v in sorted(by_command.items(), key=lambda kv: -kv[1])))
    print("graph-diff: %d graphs, %d steps, %d mismatches (%.1f s)" % (
        graphs, steps, mismatches, time.time() - started))
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
