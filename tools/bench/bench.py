#!/usr/bin/python3
"""luamig's benchmark harness. Run it through tools/bench/run, which installs the peers and builds
luamig first; see tools/bench/README.md.

For every scenario it generates the inputs (migrations for luamig, Alembic and dbmate, data files,
template databases) under BENCH_WORK, then runs each case's commands alternately: one first run per
command under GNU time (it is the warm-up, measures peak RSS and checks the command did its work),
then rounds of `hyperfine -N --runs 1` over all commands of the case, so that luamig and its peers
take turns. Prints the tables and writes BENCHMARKS.md.

Only Python's standard library is used (the harness itself runs on Debian's /usr/bin/python3).
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.environ.get("BENCH_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BENCH_DIR = os.environ.get("BENCH_DIR") or os.path.join(ROOT, "build-bench")
WORK = os.environ.get("BENCH_WORK") or os.path.join(BENCH_DIR, "work")
PG_DIR = os.environ.get("BENCH_PG_DIR") or os.path.join(BENCH_DIR, "pg")
LUAMIG = os.environ.get("BENCH_LUAMIG") or os.path.join(BENCH_DIR, "luamig")
DBMATE = os.environ.get("BENCH_DBMATE") or ""
if not DBMATE:
    _default_dbmate = os.path.join(BENCH_DIR, "peers", "dbmate", "node_modules", "@dbmate", "linux-x64", "bin", "dbmate")
    DBMATE = _default_dbmate if os.access(_default_dbmate, os.X_OK) else ""
PY = "/usr/bin/python3"  # Debian's python3: python3-alembic installs into it
GNU_TIME = "/usr/bin/time"
HERE = os.path.dirname(os.path.abspath(__file__))

SCENARIOS = "ABCDE"
BASE_TIME = datetime.datetime(2026, 1, 1, 0, 0, 0)
BASE_EPOCH = 1767225600  # 2026-01-01 00:00:00 UTC

TITLES = {
    "A": "A. Status commands on an up-to-date SQLite database (linear chain)",
    "B": "B. `upgrade head` from an empty database",
    "C": "C. Bulk insert (`op.bulk_insert` from an iterator)",
    "D": "D. Data migration: lower-case every email, derive a domain column",
    "E": "E. SQLite batch: alter a column's type and drop another (move and copy)",
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def q(s):
    """A SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


# ------------------------------------------------------------------------------------------------
# Running things
# ------------------------------------------------------------------------------------------------

class Failed(Exception):
    pass


def run(argv, check=True, timeout=None, capture=True, **kw):
    """Runs argv in its own session (killed whole on timeout); returns (rc, stdout, stderr)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                         stderr=subprocess.PIPE if capture else subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL, start_new_session=True, text=True, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise
    except BaseException:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        raise
    if check and p.returncode != 0:
        raise Failed(f"{shlex.join(argv)} exited {p.returncode}: {(err or '').strip()[-2000:]}")
    return p.returncode, out or "", err or ""


def sh(script, **kw):
    return run(["/bin/sh", "-ec", script], **kw)


def sqlite_scalar(db, sql):
    return run(["sqlite3", db, sql])[1].strip()


# Where the PostgreSQL server and its clients run (see --pg-placement): "apart" pins the server to the
# last CPU and the clients to the others, so that every round trip crosses CPUs, as it crosses a network
# in production; "same" pins both to CPU 0; "free" leaves placement to the scheduler. On this kind of VM
# a round trip costs several times more across CPUs than within one, and a free placement flips between
# the two from run to run, so per-row workloads vary several-fold unless placement is fixed.
PLACEMENT = "apart"


def placement_cpus():
    """(server CPUs, client CPUs) for taskset, or (None, None)."""
    n = os.cpu_count() or 1
    if PLACEMENT == "free" or n < 2 or not shutil.which("taskset"):
        return None, None
    if PLACEMENT == "same":
        return "0", "0"
    return str(n - 1), ("0" if n == 2 else f"0-{n - 2}")


class Pg:
    """The throwaway server of tools/pg-server."""

    def __init__(self):
        self.url = None
        self.error = None

    def start(self):
        if self.url:
            return
        log("bench: starting PostgreSQL (tools/pg-server)")
        out = run([os.path.join(ROOT, "tools", "pg-server"), "start", PG_DIR], timeout=300)[1]
        self.url = out.strip().splitlines()[-1]
        m = re.match(r"postgresql://([^@]+)@([^:/]+):(\d+)/", self.url)
        self.user, self.host, self.port = m.group(1), m.group(2), m.group(3)
        server_cpus, _ = placement_cpus()
        if server_cpus:
            # The postmaster and its processes; the backends it forks later inherit the mask.
            with open(os.path.join(PG_DIR, "data", "postmaster.pid")) as f:
                pm = f.readline().strip()
            pids = [pm] + run(["pgrep", "-P", pm], check=False)[1].split()
            for pid in pids:
                run(["taskset", "-a", "-p", "-c", server_cpus, pid], check=False)

    def ok(self, scenario):
        """Starts the server if needed; False (and the reason kept for the report) if it cannot run."""
        if self.url:
            return True
        if self.error is None:
            try:
                self.start()
            except (Failed, subprocess.TimeoutExpired, OSError, AttributeError) as e:
                self.error = str(e).strip().splitlines()[-1][:300] if str(e).strip() else type(e).__name__
                log(f"bench: PostgreSQL is not available: {self.error}")
        if self.error is not None:
            SKIPPED.append(f"{scenario} on PostgreSQL: the server did not start ({self.error})")
            return False
        return True

    def pin(self, cmds):
        """Pins a PostgreSQL case's commands to the client CPUs."""
        _, client_cpus = placement_cpus()
        for c in cmds:
            c.pin = client_cpus
        return cmds

    def stop(self):
        if self.url:
            run([os.path.join(ROOT, "tools", "pg-server"), "stop", PG_DIR], check=False, timeout=120)
            self.url = None

    def db_url(self, db, scheme="postgresql"):
        u = f"{scheme}://{self.user}@{self.host}:{self.port}/{db}"
        if scheme == "postgres":  # dbmate
            u += "?sslmode=disable"
        return u

    def psql(self, db="postgres"):
        return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.db_url(db)]

    def exec(self, sql, db="postgres"):
        run(self.psql(db) + ["-c", sql])

    def scalar(self, sql, db="postgres"):
        return run(self.psql(db) + ["-tA", "-c", sql])[1].strip()

    def recreate_script(self, db, template=None):
        """Shell lines that drop and create a database (a hyperfine --prepare)."""
        tmpl = f" TEMPLATE {template}" if template else ""
        return (f"{shlex.join(self.psql())} -c {shlex.quote(f'DROP DATABASE IF EXISTS {db}')} "
                f"-c {shlex.quote(f'CREATE DATABASE {db}{tmpl}')}")


PG = Pg()
SKIPPED = []  # cases that could not be set up at all, for the report


# ------------------------------------------------------------------------------------------------
# Commands and their measurement
# ------------------------------------------------------------------------------------------------

class Cmd:
    """One command of a case. prepare: shell text run before every run (not timed).
    check(stdout): returns None when the command did its work, else what is wrong."""

    def __init__(self, role, argv, prepare=None, check=None):
        self.role, self.argv, self.prepare, self.check = role, argv, prepare, check
        self.pin = None  # a CPU list for taskset (PostgreSQL cases, see PLACEMENT)
        self.label = role
        self.prepare_file = None
        self.first_s = None
        self.rss_kib = None
        self.error = None    # short, for the tables
        self.detail = None   # the error message
        self.cpu_s = None    # user + system time of the first run
        self.times = []
        self.runs_wanted = 0

    @property
    def run_argv(self):
        """The command as run: argv, pinned with taskset when the case asks for it."""
        return ["taskset", "-c", self.pin] + self.argv if self.pin else self.argv

    @property
    def median(self):
        return statistics.median(self.times) if self.times else None

    def to_json(self):
        return {"role": self.role, "argv": self.run_argv, "prepare": self.prepare, "first_s": self.first_s,
                "rss_kib": self.rss_kib, "cpu_s": self.cpu_s,
                "error": self.error, "detail": self.detail, "times": self.times, "median": self.median}


class Case:
    def __init__(self, scenario, key, cmds, info=None):
        self.scenario, self.key, self.cmds, self.info = scenario, key, cmds, info or {}
        self.id = scenario + "/" + "/".join(f"{k}={v}" for k, v in key.items())

    def cmd(self, role):
        for c in self.cmds:
            if c.role == role:
                return c
        return None

    def to_json(self):
        return {"scenario": self.scenario, "key": self.key, "info": self.info,
                "cmds": [c.to_json() for c in self.cmds]}


MISSING_PATTERNS = [
    re.compile(r"attempt to call (?:a nil value \(field '(\w+)'\)|field '(\w+)' \(a nil value\))"),
    re.compile(r"attempt to call (?:a nil value \(method '(\w+)'\)|method '(\w+)' \(a nil value\))"),
    re.compile(r"unknown (?:op|operation)\w* '?([\w.]+)'?", re.I),
    re.compile(r"'?([\w.]+)'? is not (?:available|implemented|supported)( yet)?", re.I),
]


def classify_failure(stderr):
    """(short, detail): "not available yet: `x`" when luamig lacks an operation, else "failed"."""
    lines = [l.strip() for l in stderr.splitlines() if l.strip()]
    detail = next((l for l in reversed(lines) if "error" in l.lower()), lines[-1] if lines else "")
    for pat in MISSING_PATTERNS:
        m = pat.search(stderr)
        if m:
            what = next((g for g in m.groups() if g), "")
            return (f"not available yet: `{what}`" if what else "not available yet"), detail
    return "failed", detail


def first_run(case, c, opts):
    """The warm-up run under GNU time: peak RSS, CPU time, the check, and how long it takes."""
    if c.prepare:
        try:
            sh(c.prepare, timeout=1800)
        except Failed as e:
            c.error, c.detail = "setup failed", str(e)
            return
    tfile = os.path.join(WORK, "time-v.txt")
    t0 = time.perf_counter()
    try:
        rc, out, err = run([GNU_TIME, "-v", "-o", tfile] + c.run_argv, check=False, timeout=opts.timeout)
    except subprocess.TimeoutExpired:
        c.error = f"too slow: over {opts.timeout} s"
        return
    c.first_s = time.perf_counter() - t0
    try:
        with open(tfile) as f:
            tv = f.read()
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", tv)
        c.rss_kib = int(m.group(1)) if m else None
        u = re.search(r"User time \(seconds\): ([\d.]+)", tv)
        k = re.search(r"System time \(seconds\): ([\d.]+)", tv)
        c.cpu_s = float(u.group(1)) + float(k.group(1)) if u and k else None
    except OSError:
        pass
    if rc != 0:
        c.error, c.detail = classify_failure(err)
        return
    if c.check:
        try:
            problem = c.check(out)
        except Exception as e:  # a check that cannot run is a failed command
            problem = f"check failed: {e}"
        if problem:
            c.error, c.detail = "wrong result", problem


def prepare_file(c, n):
    if not c.prepare:
        return "true"
    path = os.path.join(WORK, "prepare", f"{n:04d}.sh")
    write(path, "set -e\n" + c.prepare + "\n")
    return f"/bin/sh {path}"


def hyperfine_round(cmds, opts, n):
    jfile = os.path.join(WORK, "hyperfine.json")
    argv = ["hyperfine", "-N", "--runs", "1", "--style", "none", "--export-json", jfile]
    for c in cmds:
        argv += ["--prepare", c.prepare_file]
    for c in cmds:
        argv += ["-n", c.label]
    argv += [shlex.join(c.run_argv) for c in cmds]
    rc, out, err = run(argv, check=False, timeout=opts.timeout * (len(cmds) + 1) + 600)
    if rc != 0:
        return err
    with open(jfile) as f:
        data = json.load(f)
    for c, r in zip(cmds, data["results"]):
        c.times.extend(r["times"])
    return None


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError):
        return None


LOADS = []  # the 1-minute load average before and after every case


def measure(case, policy, opts):
    log(f"bench: {case.id}")
    LOADS.append(loadavg())
    for c in case.cmds:
        if c.error:
            log(f"bench:   {c.role}: {c.error}")
            continue
        first_run(case, c, opts)
        state = c.error or f"{fmt_s(c.first_s)}, {fmt_mib(c.rss_kib)}"
        log(f"bench:   first run of {c.role}: {state}")
    ok = [c for c in case.cmds if not c.error]
    for i, c in enumerate(ok):
        c.prepare_file = prepare_file(c, i)
        if c.first_s > policy["single_over"]:
            # Too slow for more runs in the time budget: the first run is the measurement.
            c.times = [c.first_s]
            c.runs_wanted = 0
            continue
        c.runs_wanted = max(policy["min_runs"], min(policy["max_runs"],
                                                    int(policy["budget"] / max(c.first_s, 1e-3))))
        # Fast commands get extra warm-up runs (their first run warmed the caches once).
        if c.first_s < 1.0:
            for _ in range(policy["warmup"]):
                if c.prepare:
                    sh(c.prepare)
                run(c.run_argv, check=False, capture=False)
    rounds = max([c.runs_wanted for c in ok], default=0)
    for r in range(rounds):
        batch = [c for c in ok if c.runs_wanted > r and not c.error]
        if not batch:
            break
        err = hyperfine_round(batch, opts, r)
        if err:
            # Find which command failed: run them one by one.
            for c in batch:
                err = hyperfine_round([c], opts, r)
                if err:
                    c.error, c.detail = f"failed in timed run {r + 1}", err.strip()[-500:]
    for c in case.cmds:
        if c.times:
            log(f"bench:   {c.role}: median {fmt_s(c.median)} over {len(c.times)} run(s)")
    LOADS.append(loadavg())
    case.info["load"] = LOADS[-2:]


# ------------------------------------------------------------------------------------------------
# Formatting
# ------------------------------------------------------------------------------------------------

def fmt_s(s):
    if s is None:
        return "–"
    if s < 0.1:
        return f"{s * 1000:.1f} ms"
    if s < 10:
        return f"{s:.3f} s"
    return f"{s:.1f} s"


def fmt_mib(kib):
    return "–" if kib is None else f"{kib / 1024:.1f} MiB"


def fmt_ratio(r):
    if r is None:
        return "–"
    if r < 0.01:
        return f"{r:.4f}"
    if r < 0.1:
        return f"{r:.3f}"
    return f"{r:.2f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def cell(c):
    """A table cell for a command's median (or why there is none)."""
    if c is None:
        return "–"
    if c.error:
        return c.error.replace("|", "\\|")[:160]
    s = fmt_s(c.median)
    if len(c.times) == 1:
        s += " (1 run)"
    return s


def rss_cell(c):
    return "–" if c is None or c.error or c.rss_kib is None else fmt_mib(c.rss_kib)


def cpu_cell(c):
    return "–" if c is None or c.error or c.cpu_s is None else fmt_s(c.cpu_s)


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------
# Generated inputs
# ------------------------------------------------------------------------------------------------

def rev_id(prefix, i):
    return hashlib.sha1(f"{prefix}{i}".encode()).hexdigest()[:12]


class Rev:
    def __init__(self, i, rev, down, message, lua_up, lua_down, py_up, py_down,
                 sql_up=None, sql_down=None, py_imports=""):
        self.i, self.rev, self.down, self.message = i, rev, down, message
        self.lua_up, self.lua_down, self.py_up, self.py_down = lua_up, lua_down, py_up, py_down
        self.sql_up, self.sql_down, self.py_imports = sql_up or {}, sql_down or {}, py_imports
        self.when = BASE_TIME + datetime.timedelta(seconds=i)
        self.slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")[:40]


CREATE_SQL = {
    "sqlite": "CREATE TABLE {t} (\n    id INTEGER NOT NULL, \n    name VARCHAR(50) NOT NULL, \n"
              "    created_at DATETIME, \n    PRIMARY KEY (id)\n);",
    "postgresql": "CREATE TABLE {t} (\n    id SERIAL NOT NULL, \n    name VARCHAR(50) NOT NULL, \n"
                  "    created_at TIMESTAMP WITHOUT TIME ZONE, \n    PRIMARY KEY (id)\n);",
}


def chain(n):
    """A linear chain of n revisions: every fifth creates a table, the others add a column to it."""
    revs, down = [], None
    for i in range(1, n + 1):
        rev = rev_id("chain", i)
        k, j = (i - 1) // 5 + 1, (i - 1) % 5
        t = f"t{k:05d}"
        if j == 0:
            msg = f"create table {t}"
            lua_up = (f'  op.create_table("{t}",\n'
                      f'    sa.Column("id", sa.Integer, {{ primary_key = true }}),\n'
                      f'    sa.Column("name", sa.String(50), {{ nullable = false }}),\n'
                      f'    sa.Column("created_at", sa.DateTime))')
            lua_down = f'  op.drop_table("{t}")'
            py_up = (f'    op.create_table("{t}",\n'
                     f'        sa.Column("id", sa.Integer, primary_key=True),\n'
                     f'        sa.Column("name", sa.String(50), nullable=False),\n'
                     f'        sa.Column("created_at", sa.DateTime))')
            py_down = f'    op.drop_table("{t}")'
            sql_up = {d: s.format(t=t) for d, s in CREATE_SQL.items()}
            sql_down = {d: f"DROP TABLE {t};" for d in CREATE_SQL}
        else:
            c = f"c{j}"
            msg = f"add column {c} to {t}"
            lua_up = f'  op.add_column("{t}", sa.Column("{c}", sa.String(50)))'
            lua_down = f'  op.drop_column("{t}", "{c}")'
            py_up = f'    op.add_column("{t}", sa.Column("{c}", sa.String(50)))'
            py_down = f'    op.drop_column("{t}", "{c}")'
            sql_up = {d: f"ALTER TABLE {t} ADD COLUMN {c} VARCHAR(50);" for d in CREATE_SQL}
            sql_down = {d: f"ALTER TABLE {t} DROP COLUMN {c};" for d in CREATE_SQL}
        revs.append(Rev(i, rev, down, msg, lua_up, lua_down, py_up, py_down, sql_up, sql_down))
        down = rev
    return revs


LUAMIG_CONFIG = """-- generated by tools/bench/bench.py
return {{
  script_location = "migrations",
  transaction_per_migration = {tpm},
}}
"""


def write_luamig(d, revs, prologue=""):
    """A luamig project: luamig.lua (defaults), luamig-onetx.lua (transaction_per_migration = false)."""
    shutil.rmtree(d, ignore_errors=True)
    write(os.path.join(d, "luamig.lua"), LUAMIG_CONFIG.format(tpm="true"))
    write(os.path.join(d, "luamig-onetx.lua"), LUAMIG_CONFIG.format(tpm="false"))
    vdir = os.path.join(d, "migrations", "versions")
    os.makedirs(vdir)
    for r in revs:
        down = "nil" if r.down is None else f'"{r.down}"'
        text = (f"--[[ {r.message}\n\nRevision ID: {r.rev}\nRevises: {r.down or ''}\n"
                f"Create Date: {r.when.isoformat(' ')}\n]]\n"
                f'revision = "{r.rev}"\ndown_revision = {down}\nbranch_labels = nil\ndepends_on = nil\n'
                f"{prologue}\nfunction upgrade()\n{r.lua_up}\nend\n\nfunction downgrade()\n{r.lua_down}\nend\n")
        write(os.path.join(vdir, f"{r.when:%Y%m%d_%H%M%S}_{r.rev}_{r.slug}.lua"), text)


ALEMBIC_INI = """# generated by tools/bench/bench.py
[alembic]
script_location = %(here)s/alembic

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARN
handlers = console
qualname =

[logger_sqlalchemy]
level = WARN
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
"""


def write_alembic(d, revs):
    shutil.rmtree(d, ignore_errors=True)
    write(os.path.join(d, "alembic.ini"), ALEMBIC_INI)
    os.makedirs(os.path.join(d, "alembic"))
    shutil.copy(os.path.join(HERE, "alembic_env.py"), os.path.join(d, "alembic", "env.py"))
    vdir = os.path.join(d, "alembic", "versions")
    os.makedirs(vdir)
    for r in revs:
        text = (f'"""{r.message}\n\nRevision ID: {r.rev}\nRevises: {r.down or ""}\n'
                f'Create Date: {r.when.isoformat(" ")}\n\n"""\n'
                f"from alembic import op\nimport sqlalchemy as sa\n{r.py_imports}\n\n"
                f"revision = {r.rev!r}\ndown_revision = {r.down!r}\nbranch_labels = None\ndepends_on = None\n\n\n"
                f"def upgrade():\n{r.py_up}\n\n\ndef downgrade():\n{r.py_down}\n")
        write(os.path.join(vdir, f"{r.rev}_{r.slug}.py"), text)


def write_dbmate(d, revs, dialect):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for r in revs:
        write(os.path.join(d, f"{r.when:%Y%m%d%H%M%S}_{r.slug}.sql"),
              f"-- migrate:up\n{r.sql_up[dialect]}\n\n-- migrate:down\n{r.sql_down[dialect]}\n")


VERSION_TABLE_SQL = ('CREATE TABLE IF NOT EXISTS "luamig_version" (version_num VARCHAR(32) NOT NULL, '
                     'CONSTRAINT "luamig_version_pkc" PRIMARY KEY (version_num));')


def floor_script(revs, dialect):
    """The SQL luamig runs for these revisions (as `luamig upgrade head --sql` prints it), as one
    transaction."""
    out = ["BEGIN;", VERSION_TABLE_SQL]
    for r in revs:
        out.append(r.sql_up[dialect])
        if r.down is None:
            out.append(f'INSERT INTO "luamig_version" (version_num) VALUES ({q(r.rev)});')
        else:
            out.append(f'UPDATE "luamig_version" SET version_num = {q(r.rev)} WHERE version_num = {q(r.down)};')
    out.append("COMMIT;")
    return "\n".join(out) + "\n"


def luamig(proj, url, *args, config="luamig.lua"):
    return [LUAMIG, "-c", os.path.join(proj, config), "--url", url, *args]


def alembic(proj, url, *args):
    return ["/usr/bin/env", f"BENCH_DATABASE_URL={url}", PY, "-m", "alembic",
            "-c", os.path.join(proj, "alembic.ini"), *args]


def dbmate(mdir, url, *args):
    return [DBMATE, "--url", url, "--migrations-dir", mdir, "--no-dump-schema", *args]


def sqlite_url(path, scheme="sqlite"):
    if scheme == "dbmate":
        return "sqlite:" + path  # sqlite:/abs/path.db
    return "sqlite:///" + path  # sqlite:////abs/path.db


def single_rev(name, message, lua_body, py_body, py_imports=""):
    rev = rev_id(name, 1)
    return [Rev(1, rev, None, message, lua_body, "  error('irreversible')", py_body,
                "    raise NotImplementedError()", py_imports=py_imports)]


def contains(text):
    def check(out):
        return None if text in out else f"output lacks {text!r}"
    return check


# ------------------------------------------------------------------------------------------------
# Scenarios
# ------------------------------------------------------------------------------------------------

def scenario_A(opts):
    sizes = [100, 1000] if opts.quick else [100, 1000, 5000]
    cases = []
    for n in sizes:
        d = os.path.join(WORK, "A", f"n{n}")
        revs = chain(n)
        head = revs[-1].rev
        write_luamig(os.path.join(d, "luamig"), revs)
        write_alembic(os.path.join(d, "alembic"), revs)
        write_dbmate(os.path.join(d, "dbmate"), revs, "sqlite")
        dbs = {t: os.path.join(d, f"{t}.db") for t in ("luamig", "alembic", "dbmate")}
        for p in dbs.values():
            if os.path.exists(p):
                os.remove(p)
        lurl, aurl, durl = sqlite_url(dbs["luamig"]), sqlite_url(dbs["alembic"]), sqlite_url(dbs["dbmate"], "dbmate")
        # Each tool marks its database up to date (not timed): luamig and Alembic with `stamp head`,
        # dbmate, which has no stamp, by applying its migrations.
        t0 = time.perf_counter()
        setup_errors = {}
        for tool, argv in (("luamig", luamig(os.path.join(d, "luamig"), lurl, "stamp", "head")),
                           ("alembic", alembic(os.path.join(d, "alembic"), aurl, "stamp", "head")),
                           ("dbmate", dbmate(os.path.join(d, "dbmate"), durl, "migrate"))):
            if tool == "dbmate" and not DBMATE:
                continue
            try:
                run(argv, timeout=opts.timeout)
            except (Failed, subprocess.TimeoutExpired) as e:
                setup_errors[tool] = str(e).splitlines()[-1][:200]
        log(f"bench: A n={n}: inputs and databases ready in {time.perf_counter() - t0:.1f} s")
        lp, ap = os.path.join(d, "luamig"), os.path.join(d, "alembic")
        cmds = [
            Cmd("luamig current", luamig(lp, lurl, "current"), check=contains(f"{head} (head)")),
            Cmd("luamig heads", luamig(lp, lurl, "heads"), check=contains(f"{head} (head)")),
            Cmd("luamig history", luamig(lp, lurl, "history"), check=contains(f"-> {revs[0].rev},")),
            Cmd("dbmate status", dbmate(os.path.join(d, "dbmate"), durl, "status"),
                check=contains(f"Applied: {n}")),
            Cmd("alembic current", alembic(ap, aurl, "current"), check=contains(f"{head} (head)")),
            Cmd("alembic heads", alembic(ap, aurl, "heads"), check=contains(f"{head} (head)")),
            Cmd("alembic history", alembic(ap, aurl, "history"), check=contains(f"-> {revs[0].rev},")),
        ]
        for c in cmds:
            tool = c.role.split()[0]
            if tool in setup_errors:
                c.error, c.detail = "setup failed", setup_errors[tool]
        if not DBMATE:
            cmds[3].error = "dbmate not installed"
        cases.append(Case("A", {"revisions": n}, cmds))
    return cases


def scenario_B(opts):
    sizes = [100] if opts.quick else [100, 1000]
    cases = []
    for dialect in ("sqlite", "postgresql"):
        if dialect == "postgresql" and not PG.ok("B"):
            continue
        for n in sizes:
            d = os.path.join(WORK, "B", f"{dialect}-n{n}")
            revs = chain(n)
            head = revs[-1].rev
            lp, ap, mp = (os.path.join(d, x) for x in ("luamig", "alembic", "dbmate"))
            write_luamig(lp, revs)
            write_alembic(ap, revs)
            write_dbmate(mp, revs, dialect)
            script = os.path.join(d, "one-script.sql")
            write(script, floor_script(revs, dialect))
            tables = (n + 4) // 5
            roles = ("luamig", "luamig-onetx", "dbmate", "alembic", "floor")
            if dialect == "sqlite":
                db = {r: os.path.join(d, f"{r}.db") for r in roles}
                prep = {r: f"rm -f {shlex.quote(db[r])} {shlex.quote(db[r])}-journal" for r in roles}
                urls = {r: sqlite_url(db[r]) for r in roles}
                urls["dbmate"] = sqlite_url(db["dbmate"], "dbmate")
                floor = ["sqlite3", db["floor"], f".read {script}"]

                def count_tables(role, db=db):
                    return int(sqlite_scalar(db[role], "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                                       "AND name LIKE 't0%'"))
            else:
                db = {r: f"bench_b{n}_{r.replace('-', '_')}" for r in roles}
                prep = {r: PG.recreate_script(db[r]) for r in roles}
                urls = {r: PG.db_url(db[r]) for r in roles}
                urls["dbmate"] = PG.db_url(db["dbmate"], "postgres")
                urls["alembic"] = PG.db_url(db["alembic"], "postgresql+psycopg2")
                floor = PG.psql(db["floor"]) + ["-f", script]

                def count_tables(role, db=db):
                    return int(PG.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                                         "AND tablename LIKE 't0%'", db[role]))

            def check_for(role, tables=tables, count_tables=count_tables):
                def check(out):
                    got = count_tables(role)
                    return None if got == tables else f"{got} tables, not {tables}"
                return check

            cmds = [
                Cmd("luamig", luamig(lp, urls["luamig"], "upgrade", "head"), prep["luamig"], check_for("luamig")),
                Cmd("luamig-onetx", luamig(lp, urls["luamig-onetx"], "upgrade", "head", config="luamig-onetx.lua"),
                    prep["luamig-onetx"], check_for("luamig-onetx")),
                Cmd("dbmate", dbmate(mp, urls["dbmate"], "migrate"), prep["dbmate"], check_for("dbmate")),
                Cmd("alembic", alembic(ap, urls["alembic"], "upgrade", "head"), prep["alembic"], check_for("alembic")),
                Cmd("floor", floor, prep["floor"], check_for("floor")),
            ]
            if not DBMATE:
                cmds[2].error = "dbmate not installed"
            if dialect == "postgresql":
                PG.pin(cmds)
            cases.append(Case("B", {"db": dialect, "revisions": n}, cmds, {"head": head}))
    return cases


def rows_case(scenario, opts):
    """The row count of scenario C, D or E and its work folder (made when missing)."""
    n = 100_000 if opts.quick else 1_000_000
    d = os.path.join(WORK, scenario, f"n{n}")
    os.makedirs(d, exist_ok=True)
    return n, d


def write_csv(path, n, line):
    """Writes n CSV lines line(i) for i = 1..n (once per size; reused when present)."""
    if os.path.exists(path) and os.path.exists(path + ".ok"):
        return
    with open(path, "w") as f:
        buf = []
        for i in range(1, n + 1):
            buf.append(line(i))
            if len(buf) == 100_000:
                f.write("\n".join(buf) + "\n")
                buf = []
        if buf:
            f.write("\n".join(buf) + "\n")
    write(path + ".ok", "")


ITEMS_DDL = {
    "sqlite": "CREATE TABLE items (id INTEGER NOT NULL, name VARCHAR(50) NOT NULL, score FLOAT, "
              "created_at DATETIME, PRIMARY KEY (id));",
    "postgresql": "CREATE TABLE items (id SERIAL NOT NULL, name VARCHAR(50) NOT NULL, score FLOAT, "
                  "created_at TIMESTAMP WITHOUT TIME ZONE, PRIMARY KEY (id));",
}


def scenario_C(opts):
    n, d = rows_case("C", opts)
    csv = os.path.join(d, "items.csv")

    def item(i):
        t = BASE_TIME + datetime.timedelta(seconds=i)
        return f"{i},user_{i:07d},{(i * 7919 % 100000) / 100!r},{t:%Y-%m-%d %H:%M:%S}"

    write_csv(csv, n, item)
    lua = f"""  local items = op.create_table("items",
    sa.Column("id", sa.Integer, {{ primary_key = true }}),
    sa.Column("name", sa.String(50), {{ nullable = false }}),
    sa.Column("score", sa.Float),
    sa.Column("created_at", sa.DateTime))
  local n, i, base = {n}, 0, {BASE_EPOCH}
  local format, date = string.format, os.date
  op.bulk_insert(items, function()
    i = i + 1
    if i > n then return nil end
    return {{ id = i, name = format("user_%07d", i), score = (i * 7919 % 100000) / 100,
             created_at = date("!%Y-%m-%d %H:%M:%S", base + i) }}
  end)"""
    py = f"""    items = op.create_table("items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("created_at", sa.DateTime))
    base = datetime.datetime(2026, 1, 1)
    op.bulk_insert(items, [
        {{"id": i, "name": "user_%07d" % i, "score": (i * 7919 % 100000) / 100,
         "created_at": base + datetime.timedelta(seconds=i)}}
        for i in range(1, {n} + 1)])"""
    revs = single_rev("items", f"load {n} items", lua, py, py_imports="import datetime")
    lp, ap = os.path.join(d, "luamig"), os.path.join(d, "alembic")
    write_luamig(lp, revs)
    write_alembic(ap, revs)
    cases = []
    for dialect in ("sqlite", "postgresql"):
        if dialect == "postgresql" and not PG.ok("C"):
            continue
        roles = ("luamig", "alembic", "floor")
        if dialect == "sqlite":
            db = {r: os.path.join(d, f"{r}.db") for r in roles}
            prep = {r: f"rm -f {shlex.quote(db[r])} {shlex.quote(db[r])}-journal" for r in roles}
            urls = {r: sqlite_url(db[r]) for r in roles}
            script = os.path.join(d, "import.sqlite")
            write(script, f"{ITEMS_DDL['sqlite']}\n.import --csv {csv} items\n")
            floor = ["sqlite3", db["floor"], f".read {script}"]

            def count(role, db=db):
                return int(sqlite_scalar(db[role], "SELECT count(*) FROM items"))
        else:
            db = {r: f"bench_c_{r}" for r in roles}
            prep = {r: PG.recreate_script(db[r]) for r in roles}
            urls = {r: PG.db_url(db[r]) for r in roles}
            urls["alembic"] = PG.db_url(db["alembic"], "postgresql+psycopg2")
            script = os.path.join(d, "copy.psql")
            write(script, f"{ITEMS_DDL['postgresql']}\n"
                          f"\\copy items (id, name, score, created_at) FROM {q(csv)} WITH (FORMAT csv)\n")
            floor = PG.psql(db["floor"]) + ["-f", script]

            def count(role, db=db):
                return int(PG.scalar("SELECT count(*) FROM items", db[role]))

        def check_for(role, count=count):
            def check(out):
                got = count(role)
                return None if got == n else f"{got} rows, not {n}"
            return check

        cmds = upgrade_cmds(lp, ap, urls, prep, floor, check_for, dialect)
        cases.append(Case("C", {"db": dialect, "rows": n}, cmds))
    return cases


def upgrade_cmds(lp, ap, urls, prep, floor, check_for, dialect):
    """A one-revision case's commands: luamig's and Alembic's `upgrade head`, and the floor."""
    cmds = [
        Cmd("luamig", luamig(lp, urls["luamig"], "upgrade", "head"), prep["luamig"], check_for("luamig")),
        Cmd("alembic", alembic(ap, urls["alembic"], "upgrade", "head"), prep["alembic"], check_for("alembic")),
        Cmd("floor", floor, prep["floor"], check_for("floor")),
    ]
    if dialect == "postgresql":
        PG.pin(cmds)
    return cmds


def users_template(d, n, dialect):
    """A users table of n rows with mixed-case emails; returns the SQLite file or PG database name."""
    csv = os.path.join(d, "users.csv")
    write_csv(csv, n, lambda i: f"{i},User.{i:07d}@Mail{i % 997:03d}.Example.COM,User {i}")
    ddl = "CREATE TABLE users (id INTEGER NOT NULL, email VARCHAR(255) NOT NULL, name VARCHAR(100), PRIMARY KEY (id));"
    if dialect == "sqlite":
        path = os.path.join(d, "users-template.db")
        if os.path.exists(path):
            os.remove(path)
        run(["sqlite3", path, ddl, f".import --csv {csv} users"])
        return path
    name = "bench_d_template"
    PG.exec(f"DROP DATABASE IF EXISTS {name}")
    PG.exec(f"CREATE DATABASE {name}")
    run(PG.psql(name) + ["-c", ddl, "-c", f"\\copy users (id, email, name) FROM {q(csv)} WITH (FORMAT csv)"])
    run(PG.psql(name) + ["-c", "VACUUM (FREEZE, ANALYZE) users"])
    return name


def scenario_D(opts):
    n, d = rows_case("D", opts)
    lua = """  op.add_column("users", sa.Column("domain", sa.String(255)))
  local users = sa.table("users", sa.column("id", sa.Integer), sa.column("email", sa.String),
    sa.column("domain", sa.String))
  local rows = op.get_bind():rows("SELECT id, email FROM users")
  op.bulk_update(users, function()
    local row = rows()
    if not row then return nil end
    local email = row.email:lower()
    return { id = row.id, email = email, domain = email:match("@(.*)$") }
  end)"""
    py = """    op.add_column("users", sa.Column("domain", sa.String(255)))
    conn = op.get_bind()
    update = sa.text("UPDATE users SET email = :email, domain = :domain WHERE id = :id")
    batch = []
    for id_, email in conn.execute(sa.text("SELECT id, email FROM users")):
        email = email.lower()
        batch.append({"id": id_, "email": email, "domain": email.split("@", 1)[1]})
        if len(batch) == 10000:
            conn.execute(update, batch)
            batch = []
    if batch:
        conn.execute(update, batch)"""
    revs = single_rev("domains", "lower-case emails and fill domain", lua, py)
    lp, ap = os.path.join(d, "luamig"), os.path.join(d, "alembic")
    write_luamig(lp, revs)
    write_alembic(ap, revs)
    # The same migration again: the profile step wraps it in LuaJIT's profiler (jit.p).
    write_luamig(os.path.join(d, "luamig-jitp"), revs)
    cases = []
    for dialect in ("sqlite", "postgresql"):
        if dialect == "postgresql" and not PG.ok("D"):
            continue
        roles = ("luamig", "alembic", "floor")
        if dialect == "sqlite":
            tmpl = users_template(d, n, "sqlite")
            db = {r: os.path.join(d, f"{r}.db") for r in roles}
            prep = {r: f"rm -f {shlex.quote(db[r])}-journal; cp {shlex.quote(tmpl)} {shlex.quote(db[r])}"
                    for r in roles}
            urls = {r: sqlite_url(db[r]) for r in roles}
            script = os.path.join(d, "update.sqlite.sql")
            write(script, "BEGIN;\nALTER TABLE users ADD COLUMN domain VARCHAR(255);\n"
                          "UPDATE users SET email = lower(email), domain = substr(lower(email), instr(email, '@') + 1);\n"
                          "COMMIT;\n")
            floor = ["sqlite3", db["floor"], f".read {script}"]

            def bad(role, db=db):
                return int(sqlite_scalar(db[role], "SELECT count(*) FROM users WHERE domain IS NULL "
                                                   "OR email <> lower(email) OR domain <> substr(email, instr(email, '@') + 1)"))
        else:
            tmpl = users_template(d, n, "postgresql")
            db = {r: f"bench_d_{r}" for r in roles}
            prep = {r: PG.recreate_script(db[r], template=tmpl) for r in roles}
            urls = {r: PG.db_url(db[r]) for r in roles}
            urls["alembic"] = PG.db_url(db["alembic"], "postgresql+psycopg2")
            script = os.path.join(d, "update.pg.sql")
            write(script, "BEGIN;\nALTER TABLE users ADD COLUMN domain VARCHAR(255);\n"
                          "UPDATE users SET email = lower(email), domain = split_part(lower(email), '@', 2);\n"
                          "COMMIT;\n")
            floor = PG.psql(db["floor"]) + ["-f", script]

            def bad(role, db=db):
                return int(PG.scalar("SELECT count(*) FROM users WHERE domain IS NULL OR email <> lower(email) "
                                     "OR domain <> split_part(email, '@', 2)", db[role]))

        def check_for(role, bad=bad):
            def check(out):
                got = bad(role)
                return None if got == 0 else f"{got} rows not updated"
            return check

        cmds = upgrade_cmds(lp, ap, urls, prep, floor, check_for, dialect)
        cases.append(Case("D", {"db": dialect, "rows": n}, cmds, {"template": tmpl}))
    return cases


def scenario_E(opts):
    n, d = rows_case("E", opts)
    csv = os.path.join(d, "records.csv")

    def record(i):
        t = BASE_TIME + datetime.timedelta(seconds=i * 7)
        return f"{i},C{i % 5003:05d},{i * 31 % 100000},note number {i},{t:%Y-%m-%d %H:%M:%S}"

    write_csv(csv, n, record)
    tmpl = os.path.join(d, "records-template.db")
    if os.path.exists(tmpl):
        os.remove(tmpl)
    run(["sqlite3", tmpl,
         "CREATE TABLE records (id INTEGER NOT NULL, code VARCHAR(20) NOT NULL, score INTEGER, note TEXT, "
         "created_at DATETIME, PRIMARY KEY (id));",
         f".import --csv {csv} records",
         "CREATE INDEX ix_records_code ON records (code);",
         "CREATE INDEX ix_records_created_at ON records (created_at);"])
    lua = """  op.batch_alter_table("records", function(batch_op)
    batch_op.alter_column("score", { type = sa.Float, existing_type = sa.Integer })
    batch_op.drop_column("note")
  end)"""
    py = """    with op.batch_alter_table("records") as batch_op:
        batch_op.alter_column("score", type_=sa.Float, existing_type=sa.Integer)
        batch_op.drop_column("note")"""
    revs = single_rev("batch", "score to float, drop note", lua, py)
    lp, ap = os.path.join(d, "luamig"), os.path.join(d, "alembic")
    write_luamig(lp, revs)
    write_alembic(ap, revs)
    script = os.path.join(d, "hand-written.sql")
    write(script, f"""BEGIN;
{VERSION_TABLE_SQL}
CREATE TABLE _records_new (id INTEGER NOT NULL, code VARCHAR(20) NOT NULL, score FLOAT, created_at DATETIME, PRIMARY KEY (id));
INSERT INTO _records_new (id, code, score, created_at) SELECT id, code, CAST(score AS FLOAT), created_at FROM records;
DROP TABLE records;
ALTER TABLE _records_new RENAME TO records;
CREATE INDEX ix_records_code ON records (code);
CREATE INDEX ix_records_created_at ON records (created_at);
INSERT INTO "luamig_version" (version_num) VALUES ({q(revs[0].rev)});
COMMIT;
""")
    roles = ("luamig", "alembic", "floor")
    db = {r: os.path.join(d, f"{r}.db") for r in roles}
    prep = {r: f"rm -f {shlex.quote(db[r])}-journal; cp {shlex.quote(tmpl)} {shlex.quote(db[r])}" for r in roles}
    urls = {r: sqlite_url(db[r]) for r in roles}

    def check_for(role):
        def check(out):
            cols = sqlite_scalar(db[role], "SELECT group_concat(name || ' ' || type, ', ') FROM pragma_table_info('records')")
            idx = sqlite_scalar(db[role], "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'records' "
                                          "AND name LIKE 'ix_%'")
            rows = sqlite_scalar(db[role], "SELECT count(*) FROM records")
            if "note" in cols or "score FLOAT" not in cols:
                return f"columns are {cols}"
            if idx != "2":
                return f"{idx} indexes, not 2"
            if int(rows) != n:
                return f"{rows} rows, not {n}"
            return None
        return check

    cmds = [
        Cmd("luamig", luamig(lp, urls["luamig"], "upgrade", "head"), prep["luamig"], check_for("luamig")),
        Cmd("alembic", alembic(ap, urls["alembic"], "upgrade", "head"), prep["alembic"], check_for("alembic")),
        Cmd("floor", ["sqlite3", db["floor"], f".read {script}"], prep["floor"], check_for("floor")),
    ]
    return [Case("E", {"db": "sqlite", "rows": n}, cmds)]


BUILDERS = {"A": scenario_A, "B": scenario_B, "C": scenario_C, "D": scenario_D, "E": scenario_E}


def policy(scenario, opts):
    """How many runs: budget / first run, within [min_runs, max_runs]; commands slower than
    single_over seconds are measured by their first run only."""
    if scenario == "A":
        p = {"budget": 2.0, "min_runs": 3, "max_runs": 15, "warmup": 2, "single_over": 5}
    elif scenario == "B":
        p = {"budget": 5.0, "min_runs": 3, "max_runs": 10, "warmup": 1, "single_over": 30}
    else:
        p = {"budget": 30.0, "min_runs": 2, "max_runs": 3, "warmup": 0, "single_over": 20}
    if opts.quick:
        p.update(budget=p["budget"] / 2, min_runs=2, max_runs=max(2, p["max_runs"] // 2))
    if opts.runs:
        p.update(min_runs=opts.runs, max_runs=opts.runs)
    return p


# ------------------------------------------------------------------------------------------------
# Targets
# ------------------------------------------------------------------------------------------------

def evaluate_targets(cases):
    """[(scenario, target, measured, verdict)] with verdict "met", "missed" or "not measured"."""
    out = []
    by = {}
    for c in cases:
        by.setdefault(c.scenario, []).append(c)

    def verdict(r, limit):
        if r is None:
            return "not measured"
        return "met" if r <= limit else "missed"

    def why(*cmds):
        errs = [f"{c.role}: {c.error}" for c in cmds if c is not None and c.error]
        return "; ".join(errs)

    if "A" in by:
        big = [c for c in by["A"] if c.key["revisions"] == 5000]
        if not big:
            out.append(("A", "at 5,000 revisions", "5,000 not run (--quick)", "not measured"))
        for case in big:
            dbm = case.cmd("dbmate status")
            for sub in ("current", "heads", "history"):
                lm, al = case.cmd(f"luamig {sub}"), case.cmd(f"alembic {sub}")
                r = ratio(lm.median, dbm.median)
                out.append(("A", f"`{sub}` at 5,000: no slower than dbmate `status`",
                            f"luamig/dbmate = {fmt_ratio(r)}" if r else why(lm, dbm), verdict(r, 1.0)))
                r = ratio(lm.median, al.median)
                out.append(("A", f"`{sub}` at 5,000: ≥ 100× faster than Alembic",
                            f"{1 / r:.0f}× faster" if r else why(lm, al), verdict(r, 0.01)))
            rss = [case.cmd(f"luamig {s}").rss_kib for s in ("current", "heads", "history")]
            rss = [x for x in rss if x]
            m = max(rss) if rss else None
            out.append(("A", "peak RSS at 5,000 ≤ 30 MiB", fmt_mib(m),
                        "not measured" if m is None else ("met" if m <= 30 * 1024 else "missed")))
    for case in by.get("B", []):
        where = f"{case.key['db']}, {case.key['revisions']} revisions"
        lm, dbm = case.cmd("luamig"), case.cmd("dbmate")
        r = ratio(lm.median, dbm.median)
        out.append(("B", f"{where}: default settings ≤ 0.5× dbmate",
                    f"{fmt_ratio(r)}×" if r else why(lm, dbm), verdict(r, 0.5)))
        lo, fl = case.cmd("luamig-onetx"), case.cmd("floor")
        r = ratio(lo.median, fl.median)
        out.append(("B", f"{where}: `transaction_per_migration = false` ≤ 1.3× one script",
                    f"{fmt_ratio(r)}×" if r else why(lo, fl), verdict(r, 1.3)))
    for case in by.get("C", []):
        db = case.key["db"]
        lm, fl, al = case.cmd("luamig"), case.cmd("floor"), case.cmd("alembic")
        limit, floor_name = (1.2, "`.import`") if db == "sqlite" else (1.3, "`\\copy`")
        r = ratio(lm.median, fl.median)
        out.append(("C", f"{db}: ≤ {limit}× {floor_name}", f"{fmt_ratio(r)}×" if r else why(lm, fl),
                    verdict(r, limit)))
        r = ratio(lm.rss_kib, al.rss_kib) if not lm.error and not al.error else None
        out.append(("C", f"{db}: peak RSS ≤ 1/4 of Alembic's",
                    f"{fmt_mib(lm.rss_kib)} vs {fmt_mib(al.rss_kib)} ({fmt_ratio(r)})" if r else why(lm, al),
                    verdict(r, 0.25)))
    for case in by.get("D", []):
        db = case.key["db"]
        lm, fl = case.cmd("luamig"), case.cmd("floor")
        limit = 2.0 if db == "sqlite" else 3.0
        r = ratio(lm.median, fl.median)
        out.append(("D", f"{db}: ≤ {limit:g}× one SQL UPDATE", f"{fmt_ratio(r)}×" if r else why(lm, fl),
                    verdict(r, limit)))
    for case in by.get("E", []):
        lm, fl = case.cmd("luamig"), case.cmd("floor")
        r = ratio(lm.median, fl.median)
        out.append(("E", "≤ 1.1× the hand-written create/insert-select/drop/rename",
                    f"{fmt_ratio(r)}×" if r else why(lm, fl), verdict(r, 1.1)))
    return out


# ------------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------------

def scenario_tables(scenario, cases):
    rows = []
    if scenario == "A":
        header = ["revisions", "command", "luamig", "dbmate `status`", "Alembic", "luamig/dbmate",
                  "luamig/Alembic", "peak RSS luamig", "dbmate", "Alembic"]
        for case in cases:
            dbm = case.cmd("dbmate status")
            for sub in ("current", "heads", "history"):
                lm, al = case.cmd(f"luamig {sub}"), case.cmd(f"alembic {sub}")
                rows.append([f"{case.key['revisions']:,}", f"`{sub}`", cell(lm), cell(dbm), cell(al),
                             fmt_ratio(ratio(lm.median, dbm.median)), fmt_ratio(ratio(lm.median, al.median)),
                             rss_cell(lm), rss_cell(dbm), rss_cell(al)])
    elif scenario == "B":
        header = ["database", "revisions", "luamig (default)", "dbmate", "luamig/dbmate",
                  "luamig, one transaction", "one script", "luamig one tx/script", "Alembic",
                  "luamig/Alembic", "peak RSS luamig", "dbmate", "Alembic", "luamig CPU"]
        for case in cases:
            lm, lo, dbm, al, fl = (case.cmd(r) for r in ("luamig", "luamig-onetx", "dbmate", "alembic", "floor"))
            rows.append([case.key["db"], f"{case.key['revisions']:,}", cell(lm), cell(dbm),
                         fmt_ratio(ratio(lm.median, dbm.median)), cell(lo), cell(fl),
                         fmt_ratio(ratio(lo.median, fl.median)), cell(al), fmt_ratio(ratio(lm.median, al.median)),
                         rss_cell(lm), rss_cell(dbm), rss_cell(al), cpu_cell(lm)])
    else:
        floor_name = {"C": ("`.import`", "`\\copy`"), "D": ("one `UPDATE`", "one `UPDATE`"),
                      "E": ("hand-written SQL", "hand-written SQL")}[scenario]
        header = ["database", "rows", "luamig", "floor", "luamig/floor", "Alembic", "luamig/Alembic",
                  "peak RSS luamig", "floor", "Alembic", "luamig CPU"]
        for case in cases:
            lm, al, fl = (case.cmd(r) for r in ("luamig", "alembic", "floor"))
            name = floor_name[0] if case.key["db"] == "sqlite" else floor_name[1]
            rows.append([case.key["db"], f"{case.key['rows']:,}", cell(lm), f"{cell(fl)} ({name})",
                         fmt_ratio(ratio(lm.median, fl.median)), cell(al), fmt_ratio(ratio(lm.median, al.median)),
                         rss_cell(lm), rss_cell(fl), rss_cell(al), cpu_cell(lm)])
    return md_table(header, rows)


# ------------------------------------------------------------------------------------------------
# Machine and versions
# ------------------------------------------------------------------------------------------------

def capture(argv):
    try:
        return run(argv, check=False, timeout=60)[1].strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine():
    lscpu = capture(["lscpu"])
    keep = ("Architecture", "Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "Socket(s)",
            "Hypervisor vendor", "L1d cache", "L2 cache", "L3 cache", "CPU max MHz", "BogoMIPS")
    lines = [l for l in lscpu.splitlines() if l.split(":")[0].strip() in keep]
    free = run(["free", "-h"], check=False)[1].rstrip()  # keep the header's leading spaces
    os_name = ""
    try:
        with open("/etc/os-release") as f:
            m = re.search(r'PRETTY_NAME="([^"]+)"', f.read())
            os_name = m.group(1) if m else ""
    except OSError:
        pass
    fs = capture(["df", "-hT", WORK]).splitlines()[-1:] or [""]
    return {"lscpu": "\n".join(lines), "free": free, "os": os_name, "kernel": platform.release(), "disk": fs[0]}


def versions():
    v = {}
    commit = capture(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"])
    dirty = capture(["git", "-C", ROOT, "status", "--porcelain", "--", "core", "lua", "CMakeLists.txt"])
    if dirty:
        diff = run(["git", "-C", ROOT, "diff", "HEAD", "--", "core", "lua", "CMakeLists.txt"], check=False)[1]
        untracked = run(["git", "-C", ROOT, "ls-files", "--others", "--exclude-standard", "--", "core", "lua"],
                        check=False)[1].split()
        h = hashlib.sha1(diff.encode())
        for u in sorted(untracked):
            try:
                with open(os.path.join(ROOT, u), "rb") as f:
                    h.update(u.encode() + b"\0" + f.read())
            except OSError:
                pass
        state = f" + uncommitted changes to core/, lua/ (diff sha1 {h.hexdigest()[:12]})"
    else:
        state = ""
    v["luamig"] = f"commit {commit}{state}, Release build"
    v["LuaJIT"] = capture(["luajit", "-v"]).splitlines()[0] if capture(["luajit", "-v"]) else "?"
    v["SQLite (sqlite3 shell)"] = capture(["sqlite3", "--version"]).split(" ")[0]
    v["PostgreSQL server"] = capture(["/usr/lib/postgresql/15/bin/postgres", "--version"])
    v["psql"] = capture(["psql", "--version"])
    v["Alembic"] = capture([PY, "-c", "import alembic, sqlalchemy, psycopg2, sqlite3, sys; "
                                      "print('Alembic', alembic.__version__, '/ SQLAlchemy', sqlalchemy.__version__, "
                                      "'/ psycopg2', psycopg2.__version__.split()[0], '/ Python', sys.version.split()[0], "
                                      "'/ its SQLite', sqlite3.sqlite_version)"])
    v["dbmate"] = capture([DBMATE, "--version"]) if DBMATE else "not installed"
    v["hyperfine"] = capture(["hyperfine", "--version"])
    v["GNU time"] = "Debian package time " + (capture(["dpkg-query", "-W", "-f", "${Version}", "time"]) or "?")
    return v


# ------------------------------------------------------------------------------------------------
# Profiles (perf, on a luamig built with symbols and LuaJIT/SQLite linked statically)
# ------------------------------------------------------------------------------------------------

def perf_works():
    try:
        rc, out, err = run(["perf", "stat", "-e", "instructions", "true"], check=False, timeout=60)
    except OSError:
        return False, "perf is not installed"
    hw = rc == 0 and "<not supported>" not in err
    try:
        rc2, _, err2 = run(["perf", "record", "-e", "cpu-clock", "-o", os.path.join(WORK, "perf-probe.data"),
                            "true"], check=False, timeout=60)
    except OSError:
        rc2, err2 = 1, ""
    if rc2 != 0:
        return False, "`perf record` does not work here: " + err2.strip().splitlines()[-1:][0] if err2.strip() else ""
    note = ("`perf stat -e instructions true` works" if hw else
            "`perf stat -e instructions true` reports the hardware counter as `<not supported>` "
            "(a VM without a PMU), so profiles sample the software clock (`-e cpu-clock`)")
    return True, note


def build_profiling_luamig():
    """build-bench/prof/luamig-prof: -O3 -g -fno-omit-frame-pointer, LuaJIT and SQLite linked statically
    from Debian's .a archives so that their internal functions have names in the profile."""
    pdir = os.path.join(BENCH_DIR, "prof")
    run(["cmake", "-S", ROOT, "-B", pdir, "-DCMAKE_BUILD_TYPE=Release",
         "-DCMAKE_C_FLAGS=-g -fno-omit-frame-pointer"], timeout=600)
    run(["cmake", "--build", pdir, "--target", "luamig", f"-j{os.cpu_count() or 2}"], timeout=1200)
    with open(os.path.join(pdir, "CMakeFiles", "luamig.dir", "link.txt")) as f:
        link = shlex.split(f.read().strip())
    out = []
    for a in link:
        if re.search(r"libluajit-5\.1\.so$", a) and os.path.exists(a[:-3] + ".a"):
            a = a[:-3] + ".a"
        elif re.search(r"libsqlite3\.so$", a) and os.path.exists(a[:-3] + ".a"):
            a = a[:-3] + ".a"
        out.append(a)
    i = out.index("-o")
    out[i + 1] = "luamig-prof"
    out += ["-ldl", "-lpthread", "-lm"]
    run(out, cwd=pdir, timeout=600)
    return os.path.join(pdir, "luamig-prof")


PROF_COMM = "luamig-prof"


def perf_samples(data, comm=PROF_COMM):
    """[(percent, dso, symbol)] of one command's samples. Filtered here: `perf report --comm` drops
    some kernel samples."""
    rc, out, err = run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "comm,dso,sym",
                        "-q", "--percent-limit", "0"], check=False, timeout=600)
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+(.+?)\s+\[(.)\]\s+(.*?)\s*$", line)
        if m and m.group(2) == comm:
            rows.append((float(m.group(1)), m.group(3).strip(), m.group(5)))
    return rows


def is_jit(dso, sym):
    return sym.startswith("0x") or dso.startswith("[unknown]") or dso.startswith("[JIT]") or dso == "//anon"


def perf_top(data, limit=10):
    """Top functions by self cost, with JIT-compiled code (no symbols) summed into one line."""
    rows, jit = [], 0.0
    for pct, dso, sym in perf_samples(data):
        if is_jit(dso, sym):
            jit += pct
        else:
            rows.append((pct, sym, dso))
    if jit:
        rows.append((jit, "JIT-compiled Lua code (traces; perf has no symbols for them)", "[anon]"))
    rows.sort(key=lambda r: -r[0])
    return rows[:limit]


def archive_symbols(path):
    try:
        out = run(["nm", "--defined-only", path], check=False, timeout=120)[1]
    except OSError:
        return set()
    return {l.split()[-1] for l in out.splitlines() if re.match(r"[0-9a-f]+ [tTwW] ", l)}


LAYERS = None


def layer_of(sym, dso):
    """Which part of the program a sampled function belongs to."""
    global LAYERS
    if LAYERS is None:
        pdir = os.path.join(BENCH_DIR, "prof")
        LAYERS = [("SQLite", archive_symbols("/usr/lib/x86_64-linux-gnu/libsqlite3.a")),
                  ("LuaJIT", archive_symbols("/usr/lib/x86_64-linux-gnu/libluajit-5.1.a")),
                  ("luamig's C core", archive_symbols(os.path.join(pdir, "liblmcore.a")))]
    if dso.startswith("[kernel"):
        return "kernel"
    if is_jit(dso, sym):
        return "JIT-compiled Lua"
    if dso != "luamig-prof":
        return re.sub(r"\.so.*$", "", dso)
    base = sym.split(".")[0].split("@")[0]
    for name, syms in LAYERS:
        if sym in syms or base in syms:
            if name == "LuaJIT" and re.match(r"(gc_|lj_gc_|propagatemark|atomic|lj_alloc_|lj_mem_|lj_str_resize"
                                             r"|lj_tab_free|lj_str_free|lj_func_free|sweep)", base):
                return "LuaJIT: GC and allocator"
            return name
    return "luamig-prof (other)"


def perf_layers(data):
    """Samples summed by layer: SQLite, LuaJIT (GC and allocator apart), luamig's core, libc, kernel, ..."""
    sums = {}
    for pct, dso, sym in perf_samples(data):
        layer = layer_of(sym, dso)
        sums[layer] = sums.get(layer, 0.0) + pct
    return sorted(((k, v) for k, v in sums.items() if v >= 0.5), key=lambda kv: -kv[1])


def jitp_top(outfile, limit=10):
    try:
        with open(outfile) as f:
            text = f.read()
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        m = re.match(r"\s*(\d+)%\s+(.*\S)", line)
        if m:
            rows.append((int(m.group(1)), m.group(2)))
    return rows[:limit]


def prepare_profile():
    """Checks perf and builds the profiling binary before anything is measured, from the same tree
    as the measured binary. Returns (binary or None, note)."""
    ok, note = perf_works()
    if not ok:
        return None, note
    try:
        return build_profiling_luamig(), note
    except (Failed, subprocess.TimeoutExpired, OSError) as e:
        return None, note + f"; the profiling build failed: {str(e)[:300]}"


def profile(cases, opts, prof, note, tag):
    """The profiles; their perf data go to build-bench/prof/<tag>-*.perf.data (tag: the report's name)."""
    result = {"note": note, "sections": []}
    if not prof:
        return result
    pdir = os.path.dirname(prof)
    # A: the largest chain, current + heads + history, 5 times each.
    a = [c for c in cases if c.scenario == "A"]
    if a:
        case = max(a, key=lambda c: c.key["revisions"])
        argvs = [[prof] + c.argv[1:] for c in case.cmds if c.role.startswith("luamig")]
        loop = "\n".join(shlex.join(x) + " >/dev/null" for x in argvs * 5)
        data = os.path.join(pdir, f"{tag}-A.perf.data")
        run(["perf", "record", "-e", "cpu-clock", "-F", "20000", "-o", data, "--", "/bin/sh", "-ec", loop],
            timeout=1200)
        result["sections"].append({
            "title": f"A, {case.key['revisions']:,} revisions: `current`, `heads`, `history`, 5 runs each",
            "command": "perf record -e cpu-clock -F 20000 -- luamig-prof ... (current|heads|history)",
            "data": data, "data_mtime": os.path.getmtime(data), "top": perf_top(data),
            "objects": perf_layers(data)})
    d = [c for c in cases if c.scenario == "D" and c.key["db"] == "sqlite"]
    if d:
        case = d[0]
        c = case.cmd("luamig")
        sh(c.prepare)
        data = os.path.join(pdir, f"{tag}-D.perf.data")
        run(["perf", "record", "-e", "cpu-clock", "-F", "2000", "-o", data, "--", prof] + c.argv[1:],
            timeout=1800)
        result["sections"].append({
            "title": f"D, SQLite, {case.key['rows']:,} rows: `upgrade head` (the Lua row loop)",
            "command": "perf record -e cpu-clock -F 2000 -- luamig-prof ... upgrade head",
            "data": data, "data_mtime": os.path.getmtime(data), "top": perf_top(data),
            "objects": perf_layers(data)})
        # Lua-level: the same migration under LuaJIT's own profiler (jit.p), per function and per line.
        jp = profile_jitp(case, c)
        if jp:
            result["sections"].extend(jp)
    d = [c for c in cases if c.scenario == "D" and c.key["db"] == "postgresql"]
    if d and not d[0].cmd("luamig").error:
        # Only luamig's side (the server is another process); the first 20 s of the run are enough.
        case, c = d[0], d[0].cmd("luamig")
        sh(c.prepare)
        data = os.path.join(pdir, f"{tag}-D-pg.perf.data")
        pin = ["taskset", "-c", c.pin] if c.pin else []
        run(["perf", "record", "-e", "cpu-clock", "-F", "2000", "-o", data, "--"] + pin +
            ["timeout", "-s", "INT", "20", prof] + c.argv[1:], check=False, timeout=300)
        result["sections"].append({
            "title": f"D, PostgreSQL, {case.key['rows']:,} rows: `upgrade head`, luamig's process, first 20 s",
            "command": "perf record -e cpu-clock -F 2000 -- timeout -s INT 20 luamig-prof ... upgrade head",
            "data": data, "data_mtime": os.path.getmtime(data), "top": perf_top(data),
            "objects": perf_layers(data),
            "cpu_note": (f"luamig's CPU time was {fmt_s(c.cpu_s)} of {fmt_s(c.first_s)} wall in its measured run: "
                         "the rest is waiting for the server, one round trip per row")
            if c.cpu_s and c.first_s else ""})
    return result


def profile_jitp(case, c):
    """Runs D's luamig migration wrapped in jit.p (LuaJIT's sampling profiler): which Lua functions
    (luamig's own modules included) the time goes to."""
    proj = os.path.join(os.path.dirname(c.argv[2]), "..", "luamig-jitp")
    proj = os.path.normpath(proj)
    vdir = os.path.join(proj, "migrations", "versions")
    files = os.listdir(vdir)
    if len(files) != 1:
        return []
    path = os.path.join(vdir, files[0])
    with open(path) as f:
        text = f.read()
    if "jit.p" not in text:
        text += """
local _upgrade = upgrade
function upgrade()
  local profile = require("jit.p")
  profile.start(os.getenv("BENCH_JITP_MODE"), os.getenv("BENCH_JITP_OUT"))
  local ok, err = pcall(_upgrade)
  profile.stop()
  if not ok then error(err, 0) end
end
"""
        write(path, text)
    out = []
    for mode, title in (("Fi1", "functions"), ("li1", "lines")):
        outfile = os.path.join(WORK, f"jitp-{mode}.txt")
        if os.path.exists(outfile):
            os.remove(outfile)
        sh(c.prepare)
        argv = [c.argv[0], "-c", os.path.join(proj, "luamig.lua")] + c.argv[3:]
        env = dict(os.environ, BENCH_JITP_MODE=mode, BENCH_JITP_OUT=outfile)
        rc, _, err = run(argv, check=False, timeout=1800, env=env)
        if rc != 0:
            out.append({"title": f"D, SQLite: Lua {title} (jit.p)", "command": "", "error": err.strip()[-300:],
                        "top": []})
            continue
        out.append({"title": f"D, SQLite: Lua {title} by samples (LuaJIT's `jit.p`, mode `{mode}`)",
                    "command": f"require('jit.p').start('{mode}') around upgrade()",
                    "top": jitp_top(outfile), "jitp": True})
    return out


# ------------------------------------------------------------------------------------------------
# BENCHMARKS.md
# ------------------------------------------------------------------------------------------------

NOTES_BEGIN, NOTES_END = "<!-- notes:begin -->", "<!-- notes:end -->"

DEFAULT_NOTES = """Notes written by hand go here; `tools/bench/run` keeps this block when it rewrites the file."""


def old_notes(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return DEFAULT_NOTES
    i, j = text.find(NOTES_BEGIN), text.find(NOTES_END)
    if i < 0 or j < i:
        return DEFAULT_NOTES
    return text[i + len(NOTES_BEGIN):j].strip("\n")


PG_HOSTPORT = None  # "127.0.0.1:port" of the run's server, shown as $PG


def short(argv):
    s = shlex.join(argv)
    s = s.replace(WORK, "$W").replace(LUAMIG, "$LUAMIG")
    if DBMATE:
        s = s.replace(DBMATE, "$DBMATE")
    return short_text(s)


def short_text(s):
    s = s.replace(WORK, "$W")
    if PG_HOSTPORT:
        s = s.replace(PG_HOSTPORT, "$PG")
    return s


def render(cases, meta, prof, path):
    targets = evaluate_targets(cases)
    L = []
    L.append("# luamig benchmarks\n")
    L.append(f"Measured on {meta['date']} by `{meta['invocation']}` (took {meta['minutes']:.1f} min). "
             "Rerunning that command regenerates the inputs, reruns every measurement and rewrites this file; "
             "the block of hand-written notes at the end is kept. `tools/bench/README.md` describes the harness.\n")
    L.append("## Machine\n")
    m = meta["machine"]
    L.append(f"- OS: {m['os']}, Linux {m['kernel']}")
    L.append(f"- work folder's file system: `{short_text(m['disk'])}`")
    L.append("\n```\n" + m["lscpu"] + "\n\n" + m["free"] + "\n```\n")
    L.append("Versions:\n")
    for k, v in meta["versions"].items():
        L.append(f"- {k}: {short_text(v)}")
    L.append("")
    loads = meta.get("load") or []
    if loads:
        cpus = os.cpu_count() or 1
        busy = max(loads) > 1.5
        L.append(f"Load average (1 min) before and after each case: {min(loads):.2f} to {max(loads):.2f}, "
                 f"median {statistics.median(loads):.2f}, on {cpus} CPUs."
                 + (" **Other processes competed for the machine during this run** (the benchmark alone "
                    "keeps it near 1): absolute times are inflated and noisier than on a quiet machine; "
                    "ratios are less affected, because luamig and its peers ran alternately." if busy else "")
                 + "\n")
    L.append("## Targets\n")
    L.append(md_table(["scenario", "target", "measured", "verdict"],
                      [[s, t, m_.replace("|", "\\|"), f"**{v}**" if v == "missed" else v] for s, t, m_, v in targets]))
    L.append("")
    L.append("Times are medians of wall-clock time; a ratio below 1 means luamig is faster. Peak RSS is GNU "
             "`time -v`'s maximum resident set size of the client process (on PostgreSQL the server's memory "
             "is not included).\n")
    by = {}
    for c in cases:
        by.setdefault(c.scenario, []).append(c)
    for s in SCENARIOS:
        if s not in by:
            continue
        L.append(f"## {TITLES[s]}\n")
        L.append(SCENARIO_TEXT[s].strip() + "\n")
        L.append(scenario_tables(s, by[s]))
        L.append("")
        runs = sorted({len(c.times) for case in by[s] for c in case.cmds if len(c.times) > 1})
        if runs:
            span = f"{runs[0]}" if runs[0] == runs[-1] else f"{runs[0]}–{runs[-1]}"
            L.append(f"{span} timed runs per command after its warm-up run; `(1 run)` marks a single "
                     "measurement (a command too slow to repeat is measured by its warm-up run).\n")
    failures = [(case, c) for case in cases for c in case.cmds if c.error]
    if failures or SKIPPED:
        L.append("## What failed or is missing\n")
        L.append("Commands that did not complete, with their error message; they were not timed and the rest "
                 "of the run went on.\n")
        for case, c in failures:
            detail = short_text(c.detail or "").replace("`", "'")
            L.append(f"- {case.id} {c.role}: {c.error}" + (f" — `{detail}`" if detail else ""))
        for what in SKIPPED:
            L.append(f"- {short_text(what)}: not measured")
        L.append("")
    L.append("## How it is measured\n")
    L.append(METHOD_TEXT.strip())
    server_cpus, client_cpus = meta.get("placement_cpus") or (None, None)
    if meta.get("placement") == "free" or not server_cpus:
        L.append("- PostgreSQL placement: free — the scheduler puts the server and the clients where it likes. "
                 "Per-row workloads (one round trip per row) then vary from run to run with the placement.")
    elif meta.get("placement") == "same":
        L.append(f"- PostgreSQL placement: same — the server and every client run on CPU {server_cpus} "
                 "(`taskset`): a round trip costs no cross-CPU wake-up.")
    else:
        L.append(f"- PostgreSQL placement: apart — the server is pinned to CPU {server_cpus} and every client "
                 f"(luamig, its peers, `psql`) to CPU {client_cpus} with `taskset`, so each round trip crosses "
                 "CPUs, as it crosses a network in production, and costs the same in every run. Left to the "
                 "scheduler, the placement changes between runs and per-row workloads vary several-fold "
                 "(`--pg-placement same` or `free` measure the other settings).")
    L.append("")
    L.append("## Commands\n")
    L.append("`$W` is the work folder (`build-bench/work`), `$LUAMIG` the Release build `build-bench/luamig`, "
             "`$DBMATE` the binary of the npm package `@dbmate/linux-x64`, `$PG` the throwaway server's "
             "`127.0.0.1:port`. A command's *prepare* runs before each of its runs and is not timed. "
             "Listed for the largest case of each scenario; the others differ only in their folders and database "
             "names.\n")
    for s in SCENARIOS:
        if s not in by:
            continue
        L.append(f"### {s}\n")
        seen = set()
        for case in by[s]:
            key = tuple(k for k in case.key if k != "revisions" and k != "rows")
            sig = (key, tuple(case.key.get(k) for k in key))
            biggest = max((c for c in by[s] if all(c.key.get(k) == case.key.get(k) for k in key)),
                          key=lambda c: c.key.get("revisions", c.key.get("rows", 0)))
            if sig in seen:
                continue
            seen.add(sig)
            L.append(f"{', '.join(f'{k} {v}' for k, v in biggest.key.items())}:\n")
            L.append("```sh")
            for c in biggest.cmds:
                L.append(f"# {c.role}")
                if c.prepare:
                    L.append("#   prepare: " + short_text(c.prepare))
                L.append(short(c.run_argv))
            L.append("```\n")
    L.append("## Profiles\n")
    L.append(short_text(prof.get("note", "not recorded in this run")) + "\n")
    for sec in prof.get("sections", []):
        L.append(f"### {sec['title']}\n")
        if sec.get("error"):
            L.append(f"failed: `{short_text(sec['error'])}`\n")
            continue
        if sec.get("cpu_note"):
            L.append(sec["cpu_note"] + ".\n")
        if sec.get("jitp"):
            L.append(md_table(["samples", "where"], [[f"{p}%", f"`{short_text(w)}`"] for p, w in sec["top"]]))
        else:
            if sec.get("objects"):
                L.append("Samples by layer: " + ", ".join(f"{name} {pct:.1f}%" for name, pct in sec["objects"])
                         + ".\n")
            L.append(md_table(["self", "function", "object"],
                              [[f"{p:.2f}%", f"`{f}`", f"`{os.path.basename(o)}`"] for p, f, o in sec["top"]]))
        L.append("")
    if prof.get("sections"):
        L.append("The profiling binary is `build-bench/prof/luamig-prof`: the same sources built with "
                 "`-O3 -g -fno-omit-frame-pointer` and Debian's static LuaJIT and SQLite archives linked in, "
                 "so that their internal functions have names (the shared libraries are stripped). Samples "
                 "are of the software clock at the given frequency; \"self\" is the share of samples in "
                 "the function itself. JIT-compiled Lua traces have no symbols for perf and are summed into "
                 "one line; the `jit.p` tables split that Lua time by function and by line.\n")
    L.append("## Notes\n")
    L.append(NOTES_BEGIN)
    L.append(old_notes(path))
    L.append(NOTES_END)
    L.append("")
    write(path, "\n".join(L))
    return targets


SCENARIO_TEXT = {
    "A": """
A linear chain of N revisions (every fifth creates a table, the others add a column to it), the same
chain for the three tools; each tool's own SQLite database is marked up to date first, untimed
(`luamig stamp head`, `alembic stamp head`, and `dbmate migrate`, as dbmate has no stamp). luamig
`current`/`heads`/`history` and Alembic's commands of the same name are compared with dbmate's only status command, `dbmate status` (its one measurement is repeated
on the three rows).""",
    "B": """
The chain of scenario A applied to an empty database. *luamig (default)*: `transaction_per_migration =
true`, one transaction per revision, like dbmate. *luamig, one transaction*: `transaction_per_migration
= false`. *One script*: the SQL luamig runs (the DDL plus the version-table updates, as `luamig upgrade
head --sql` prints it) in one `BEGIN … COMMIT` through `sqlite3` / `psql`. dbmate runs `migrate
--no-dump-schema` (no schema dump, which luamig does not do either). Alembic uses its default
`env.py` setup: one transaction for the whole command.""",
    "C": """
One revision creates `items (id, name, score, created_at)` and loads N rows with `op.bulk_insert` from
an iterator function that makes each row in Lua. Alembic's `op.bulk_insert` needs a list, so its
migration builds the list of dicts (its usual form). The floor loads the same rows from a CSV file made
before the run: `sqlite3` `.import --csv` into the created table, `psql` `\\copy … FROM … (FORMAT csv)`.""",
    "D": """
A `users` table of N rows (id, email in mixed case, name) is copied from a template before each run.
The revision adds a `domain` column, reads every row with `conn:rows`, lower-cases the email and derives
the domain in Lua, and writes both back with `op.bulk_update` from an iterator over the rows (on
PostgreSQL: COPY into a temporary table, one `UPDATE … FROM`; on SQLite: a prepared `UPDATE … WHERE
id = ?` per row, run by a writer thread while Lua makes the next rows). Alembic's revision
does the same in Python, sending the updates in executemany batches of 10,000. The floor is one SQL
`UPDATE users SET email = lower(email), domain = …` after the same `ALTER TABLE`, in one transaction.""",
    "E": """
A SQLite table `records` of N rows with two indexes; the revision changes `score` from INTEGER to FLOAT
and drops `note` inside `op.batch_alter_table` (move and copy). The floor is the hand-written
`CREATE TABLE _new … ; INSERT INTO _new SELECT … ; DROP TABLE … ; ALTER TABLE _new RENAME …;` and the
two `CREATE INDEX`, in one transaction.""",
}

METHOD_TEXT = """
- For each case, every command first runs once under GNU `/usr/bin/time -v` after its *prepare*
  (delete the SQLite file, copy the template database, or drop and recreate the PostgreSQL database).
  That run is the warm-up; it gives the peak RSS, and a check afterwards queries the database (row
  counts, the schema, the version) or the output, so that a command that did not do its work is reported
  as `wrong result`, not as fast. A command that fails there is reported by its error (`not available yet`
  when luamig lacks the operation) and is not timed; the rest of the run goes on.
- Then the case's commands run in rounds, `hyperfine -N --runs 1 --prepare … --export-json …` over all
  of them per round, so luamig and its peers alternate; the number of rounds is chosen from the first run
  (a time budget per command, within fixed bounds). Commands under a second get extra untimed warm-up
  runs. A command whose first run took longer than the scenario's limit (5 s for A, 30 s for B, 20 s
  for C–E) is measured by that run alone, marked `(1 run)`.
- SQLite databases are files in the work folder with each tool's default settings (rollback journal,
  `synchronous = FULL`). PostgreSQL 15 is the throwaway server of `tools/pg-server` (fsync off), reached
  over TCP on 127.0.0.1 by every tool.
- Alembic runs on Debian's `/usr/bin/python3` (`python3 -m alembic`); its `env.py` reads the URL from
  `BENCH_DATABASE_URL` (hence the `/usr/bin/env` in front, which costs well under a millisecond).
"""


# ------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(prog="tools/bench/run", description="Benchmarks luamig against its peers.")
    ap.add_argument("scenarios", nargs="*", help="any of A B C D E (default: all)")
    ap.add_argument("--quick", action="store_true", help="smaller inputs and fewer runs (a few minutes)")
    ap.add_argument("--runs", type=int, help="exactly this many timed runs per command")
    ap.add_argument("--no-profile", action="store_true", help="skip the perf profiles")
    ap.add_argument("--timeout", type=int, default=900, help="seconds one run may take (default 900)")
    ap.add_argument("--pg-placement", choices=("apart", "same", "free"), default="apart",
                    help="PostgreSQL server and clients on different CPUs (default), the same CPU, or "
                         "wherever the scheduler puts them")
    ap.add_argument("--report-only", action="store_true",
                    help="measure nothing: rewrite the report from the last run's saved results and perf data")
    ap.add_argument("--out", help="the Markdown file to write (default: BENCHMARKS.md for a full run, "
                                  "else $BENCH_WORK/BENCHMARKS.partial.md)")
    opts = ap.parse_args()
    global PLACEMENT, PG_HOSTPORT
    PLACEMENT = opts.pg_placement
    scen = "".join(s.upper() for s in opts.scenarios) or SCENARIOS
    bad = [s for s in scen if s not in SCENARIOS]
    if bad:
        ap.error(f"unknown scenario {''.join(bad)}; use any of A B C D E")
    scen = "".join(s for s in SCENARIOS if s in scen)
    full = scen == SCENARIOS and not opts.quick and not opts.runs
    out = opts.out or (os.path.join(ROOT, "BENCHMARKS.md") if full else os.path.join(WORK, "BENCHMARKS.partial.md"))
    if opts.report_only:
        return report_only(out)
    if not os.access(LUAMIG, os.X_OK):
        ap.error(f"no luamig binary at {LUAMIG} (run tools/bench/run, which builds it)")
    for tool in ("hyperfine", "sqlite3", "psql"):
        if not shutil.which(tool):
            ap.error(f"{tool} is missing (tools/bench/run installs it)")
    os.makedirs(WORK, exist_ok=True)

    def on_signal(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_signal)

    started = time.time()
    # What is measured: recorded now, as the binary was just built from this state of the tree.
    prof_bin, prof_note = (None, "") if opts.no_profile else prepare_profile()
    at_start = {"versions": versions(), "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    cases = []
    prof = {"note": "not recorded in this run (--no-profile)"}
    try:
        for s in scen:
            log(f"bench: scenario {s}: generating inputs")
            built = BUILDERS[s](opts)
            p = policy(s, opts)
            for case in built:
                measure(case, p, opts)
            cases.extend(built)
        if not opts.no_profile:
            log("bench: profiles")
            try:
                prof = profile(cases, opts, prof_bin, prof_note, os.path.splitext(os.path.basename(out))[0])
            except Exception as e:  # the measurements stand without their profiles
                prof = {"note": f"the profile step failed: {str(e)[:500]}"}
    finally:
        PG_HOSTPORT = f"{PG.host}:{PG.port}" if PG.url else None
        meta = {
            "pg": PG_HOSTPORT, "skipped": SKIPPED,
            "date": at_start["date"],
            "invocation": "tools/bench/run" + "".join(" " + a for a in sys.argv[1:]),
            "minutes": (time.time() - started) / 60,
            "machine": machine(),
            "load": [x for x in LOADS if x is not None],
            "placement": PLACEMENT, "placement_cpus": placement_cpus(),
            "versions": at_start["versions"],
        }
        PG.stop()
    with open(results_file(out), "w") as f:
        json.dump({"meta": meta, "cases": [c.to_json() for c in cases], "profile": prof}, f, indent=1)
    return report(cases, meta, prof, out, scen, started)


def results_file(out):
    """Where a run's raw results go: beside the work files, named after the report."""
    return os.path.join(WORK, f"results-{os.path.basename(out)}.json")


def report(cases, meta, prof, out, scen, started):
    targets = render(cases, meta, prof, out)
    # The same tables on stdout.
    by = {}
    for c in cases:
        by.setdefault(c.scenario, []).append(c)
    for s in scen:
        print(f"\n{TITLES[s]}\n")
        print(scenario_tables(s, by.get(s, [])))
    print("\nTargets\n")
    print(md_table(["scenario", "target", "measured", "verdict"], [list(t) for t in targets]))
    print(f"\nWritten to {out} ({(time.time() - started) / 60:.1f} min)")
    return 0


def report_only(out):
    """Rewrites the report from the last run's saved results, re-reading its perf data."""
    global PG_HOSTPORT
    path = results_file(out)
    if not os.path.exists(path):
        path = os.path.join(WORK, "results.json")  # written by earlier versions of this script
    with open(path) as f:
        data = json.load(f)
    cases = []
    for cj in data["cases"]:
        cmds = []
        for m in cj["cmds"]:
            c = Cmd(m["role"], m["argv"], m.get("prepare"))
            c.first_s, c.rss_kib, c.cpu_s = m.get("first_s"), m.get("rss_kib"), m.get("cpu_s")
            c.error, c.detail, c.times = m.get("error"), m.get("detail"), m.get("times") or []
            cmds.append(c)
        cases.append(Case(cj["scenario"], cj["key"], cmds, cj.get("info")))
    meta, prof = data["meta"], data.get("profile") or {}
    SKIPPED.extend(meta.get("skipped") or [])
    PG_HOSTPORT = meta.get("pg")
    if not PG_HOSTPORT:
        for case in cases:
            for c in case.cmds:
                m = re.search(r"@([\d.]+:\d+)/", " ".join(c.argv))
                PG_HOSTPORT = PG_HOSTPORT or (m.group(1) if m else None)
    for sec in prof.get("sections", []):
        # Re-read a section's perf data only if it is still the file that run wrote.
        d = sec.get("data")
        if d and os.path.exists(d) and os.path.getmtime(d) == sec.get("data_mtime"):
            sec["top"], sec["objects"] = perf_top(d), perf_layers(d)
    scen = "".join(s for s in SCENARIOS if any(c.scenario == s for c in cases))
    with open(results_file(out), "w") as f:
        json.dump({"meta": meta, "cases": [c.to_json() for c in cases], "profile": prof}, f, indent=1)
    return report(cases, meta, prof, out, scen, time.time())


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        PG.stop()
        log("bench: interrupted")
        sys.exit(130)
