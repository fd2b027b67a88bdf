-- The revision graph's errors through the real CLI: the exact line on
-- stderr, exit code 1, and the database exactly as before (sqlite3 .dump).
-- Then the graph commands' output against Alembic 1.8.1's for one branched
-- graph with labels, a dependency and a merge, line by line.
local cli = require("spec.helpers.cli")

local root = cli.sh("pwd"):gsub("%s+$", "")

local function q(s) return cli.shell_quote(s) end

local function lua_list(v)
  if v == nil then return "nil" end
  if type(v) == "string" then return ("%q"):format(v) end
  local t = {}
  for i, x in ipairs(v) do t[i] = ("%q"):format(x) end
  return "{ " .. table.concat(t, ", ") .. " }"
end

-- A revision file whose upgrade/downgrade append to table log.
local function rev(dir, name, id, down, opts)
  opts = opts or {}
  local path = dir .. "/migrations/versions/" .. name .. ".lua"
  cli.write(path, table.concat({
    ("--[[ rev %s ]]"):format(id),
    ("revision = %q"):format(id),
    "down_revision = " .. lua_list(down),
    "branch_labels = " .. lua_list(opts.labels),
    "depends_on = " .. lua_list(opts.depends_on),
    ("function upgrade() op.execute(\"INSERT INTO log (rev, dir) VALUES (?, 'up')\", { %q }) end"):format(id),
    ("function downgrade() op.execute(\"INSERT INTO log (rev, dir) VALUES (?, 'down')\", { %q }) end"):format(id),
  }, "\n") .. "\n")
  return "migrations/versions/" .. name .. ".lua"
end

local function db(dir) return dir .. "/data/app.db" end

local function dump(dir)
  return cli.sh("sqlite3 " .. q(db(dir)) .. " .dump")
end

-- Runs luamig args in dir: it must fail with exactly `luamig: error: <line>`,
-- exit 1, print nothing on stdout and leave the database as it was.
local function fails_with(dir, args, line)
  local before = dump(dir)
  local r = cli.run(dir, args)
  assert.are.equal("luamig: error: " .. line .. "\n", r.stderr)
  assert.are.equal(1, r.code)
  assert.are.equal("", r.stdout)
  assert.are.equal(before, dump(dir))
end

local function rows(dir)
  local out = cli.sh("sqlite3 " .. q(db(dir)) .. " " .. q("SELECT version_num FROM luamig_version ORDER BY 1"))
  local t = {}
  for id in out:gmatch("%S+") do t[#t + 1] = id end
  return t
end

-- a - b - c1 (feature) - d1
--       \ c2 - d2
-- abcd1 - abcd2, abce (a second root, for prefixes)
local function project()
  local dir = cli.project()
  cli.sh("mkdir -p " .. q(dir .. "/data") .. " && sqlite3 " .. q(db(dir)) .. " "
    .. q("CREATE TABLE log (rev TEXT, dir TEXT); INSERT INTO log VALUES ('seed', '-')"))
  rev(dir, "01_a", "aaaa", nil)
  rev(dir, "02_b", "bbbb", "aaaa")
  rev(dir, "03_c1", "cc11", "bbbb", { labels = { "feature" } })
  rev(dir, "04_d1", "dd11", "cc11")
  rev(dir, "05_c2", "cc22", "bbbb")
  rev(dir, "06_d2", "dd22", "cc22")
  rev(dir, "07_x1", "abcd1", nil, { labels = { "other" } })
  rev(dir, "08_x2", "abcd2", "abcd1")
  rev(dir, "09_x3", "abce", "abcd1")
  return dir
end

describe("revision graph errors", function()
  local dir
  before_each(function()
    dir = project()
    local r = cli.run(dir, { "upgrade", "cc22" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({ "cc22" }, rows(dir))
  end)
  after_each(function() cli.rmtree(dir) end)

  it("names a revision no file defines", function()
    fails_with(dir, { "upgrade", "ffff" }, "Revision 'ffff' not found")
    fails_with(dir, { "downgrade", "ffff" }, "Revision 'ffff' not found")
    fails_with(dir, { "stamp", "ffff" }, "Revision 'ffff' not found")
    fails_with(dir, { "upgrade", "ff" },
      "Revision 'ff' not found; use at least four characters of a revision id")
  end)

  it("lists the candidates of an ambiguous prefix", function()
    fails_with(dir, { "upgrade", "abcd" }, "Multiple revisions start with 'abcd': 'abcd1', 'abcd2'")
    fails_with(dir, { "upgrade", "abc" }, "Multiple revisions start with 'abc': 'abcd1', 'abcd2', 'abce'")
  end)

  it("says that a branch label is unknown", function()
    fails_with(dir, { "upgrade", "nosuch@head" }, "No such branch: 'nosuch'")
    fails_with(dir, { "downgrade", "nosuch@-1" }, "No such branch: 'nosuch'")
  end)

  it("refuses a revision that is not on the named branch", function()
    fails_with(dir, { "upgrade", "feature@dd22" }, "Revision 'dd22' is not a member of branch 'feature'")
    fails_with(dir, { "downgrade", "feature@cc22" }, "Revision 'cc22' is not a member of branch 'feature'")
  end)

  it("wants one head where several are present", function()
    fails_with(dir, { "upgrade", "head" },
      "Multiple heads are present for 'head': 'dd11', 'dd22', 'abcd2', 'abce'; please specify a revision, "
      .. "'<branchname>@head' to narrow to a specific head, or 'heads' for all heads")
    local files = cli.sh("ls " .. q(dir .. "/migrations/versions"))
    fails_with(dir, { "revision", "-m", "next" },
      "Multiple heads are present; please specify the head revision on which the new revision should be "
      .. "based, or perform a merge.")
    assert.are.equal(files, cli.sh("ls " .. q(dir .. "/migrations/versions")))
  end)

  it("refuses +N that forks or runs out of revisions", function()
    fails_with(dir, { "downgrade", "dd11" }, "Destination 'dd11' is not a valid downgrade target from current head(s)")
    local r = cli.run(dir, { "downgrade", "-1" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({ "bbbb" }, rows(dir))
    fails_with(dir, { "upgrade", "+1" }, "Ambiguous walk from 'bbbb': several next revisions ('cc11', 'cc22')")
    fails_with(dir, { "upgrade", "feature@+3" }, "Relative revision +3 didn't produce 3 migrations")
    fails_with(dir, { "downgrade", "-3" }, "Relative revision -3 didn't produce 3 migrations")
    fails_with(dir, { "upgrade", "cc22+5" }, "Relative revision cc22+5 didn't produce 5 migrations")
  end)

  it("refuses -N from several current revisions", function()
    assert.are.equal(0, cli.run(dir, { "upgrade", "dd11" }).code)
    fails_with(dir, { "downgrade", "-1" },
      "Ambiguous downgrade from multiple current revisions ('cc22', 'dd11'); name the target revision")
    fails_with(dir, { "upgrade", "+1" }, "Ambiguous upgrade from multiple current revisions ('cc22', 'dd11')")
  end)

  it("lists the members of a cycle", function()
    rev(dir, "10_e", "eeee", "ffff")
    rev(dir, "11_f", "ffff", "gggg")
    rev(dir, "12_g", "gggg", "eeee")
    fails_with(dir, { "upgrade", "heads" }, "Cycle is detected in revisions (eeee, ffff, gggg)")
    fails_with(dir, { "heads" }, "Cycle is detected in revisions (eeee, ffff, gggg)")
  end)

  it("lists the members of a dependency cycle", function()
    rev(dir, "10_e", "eeee", "aaaa", { depends_on = { "ffff" } })
    rev(dir, "11_f", "ffff", "aaaa", { depends_on = { "eeee" } })
    fails_with(dir, { "upgrade", "heads" }, "Dependency cycle is detected in revisions (eeee, ffff)")
  end)

  it("names both files of a duplicate revision id", function()
    local path = rev(dir, "10_again", "bbbb", "aaaa")
    fails_with(dir, { "upgrade", "heads" },
      "Revision 'bbbb' is defined twice: 'migrations/versions/02_b.lua' and '" .. path .. "'")
  end)

  it("names the file that references a missing parent or dependency", function()
    local path = rev(dir, "10_e", "eeee", "ffff")
    fails_with(dir, { "upgrade", "heads" },
      "Revision 'ffff' referenced as down_revision by 'eeee' ('" .. path .. "') is not present")
    path = rev(dir, "10_e", "eeee", "aaaa", { depends_on = { "zzzz" } })
    fails_with(dir, { "history" },
      "Revision 'zzzz' referenced as depends_on by 'eeee' ('" .. path .. "') is not present")
  end)

  it("names a version row that no file defines", function()
    cli.sh("sqlite3 " .. q(db(dir)) .. " " .. q("UPDATE luamig_version SET version_num = 'dead'"))
    local line = "Can't locate revision identified by 'dead': the version table 'luamig_version' names "
      .. "a revision no file defines; fix it with 'luamig stamp <revision>'"
    fails_with(dir, { "upgrade", "heads" }, line)
    fails_with(dir, { "downgrade", "-1" }, line)
    fails_with(dir, { "current" }, line)
    -- the way out the message names
    local r = cli.run(dir, { "stamp", "--purge", "cc22" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({ "cc22" }, rows(dir))
  end)
end)

-- The same graph for Alembic and luamig, written by tools/graph-diff (see
-- graph_diff.py write_project): identical docstrings/comments, file names
-- 0001_<rev>.py / 0001_<rev>.lua. Alembic runs through tools/graph-diff/alembic,
-- which loads files in name order like Alembic >= 1.10 (1.8.1 uses
-- os.listdir order).
local GRAPH = "a b:a c1:b::feature d1:c1 c2:b d2:c2 m:d1,d2 e:m f:b:feature:hotfix"

-- Normalizes what may differ: the script path (al/versions/*.py against
-- migrations/versions/*.lua), the database URL of `current -v`, and lists
-- Alembic keeps in Python sets, so prints in hash order: a branch point's
-- children (`Branches into:` and the ` -> child` lines of `branches`).
local function normalize(text)
  local lines = {}
  if text ~= "" and text:sub(-1) ~= "\n" then text = text .. "\n" end
  for line in text:gmatch("([^\n]*)\n") do
    line = line:gsub("^Path: .*/(%d%d%d%d_[^/]*)%.py$", "Path: %1")
    line = line:gsub("^Path: .*/(%d%d%d%d_[^/]*)%.lua$", "Path: %1")
    line = line:gsub("^Current revision%(s%) for .*:$", "Current revision(s) for <url>:")
    local into = line:match("^Branches into: (.*)$")
    if into then
      local t = {}
      for id in into:gmatch("[^, ]+") do t[#t + 1] = id end
      table.sort(t)
      line = "Branches into: " .. table.concat(t, ", ")
    end
    lines[#lines + 1] = line
  end
  local out, run = {}, {}
  for i = 1, #lines + 1 do
    local line = lines[i]
    if line and line:match("^%s+%-> ") then
      run[#run + 1] = line
    else
      table.sort(run)
      for _, l in ipairs(run) do out[#out + 1] = l end
      run = {}
      if line then out[#out + 1] = line end
    end
  end
  return out
end

describe("graph commands print what Alembic prints", function()
  local dir

  local function alembic(args)
    local parts = { "cd", q(dir .. "/al"), "&&", "GRAPH_DIFF_URL=" .. q("sqlite:///" .. dir .. "/a.db"),
      q(root .. "/tools/graph-diff/alembic") }
    for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
    local out = os.tmpname()
    local ok = os.execute(table.concat(parts, " ") .. " >" .. out .. " 2>/dev/null")
    local text = cli.read(out)
    os.remove(out)
    return (ok == true or ok == 0), text
  end

  setup(function()
    dir = cli.sh("mktemp -d /tmp/luamig-spec.XXXXXX"):gsub("%s+$", "")
    cli.sh(q(root .. "/tools/graph-diff/run") .. " --emit " .. q(dir) .. " --case " .. q(GRAPH))
    for _, target in ipairs({ "d1", "f" }) do
      assert.is_true((alembic({ "upgrade", target })))
      local r = cli.run(dir .. "/lm", { "upgrade", target })
      assert.are.equal(0, r.code, r.stderr)
    end
  end)
  teardown(function() cli.rmtree(dir) end)

  for _, args in ipairs({
    { "heads" }, { "heads", "-v" }, { "branches" }, { "history" }, { "history", "-r", "b:m" },
    { "history", "-i" }, { "history", "-v" }, { "current" }, { "show", "m" }, { "show", "b" },
    { "show", "f" }, { "show", "feature@head" },
  }) do
    it(table.concat(args, " "), function()
      local ok, expected = alembic(args)
      assert.is_true(ok, expected)
      local r = cli.run(dir .. "/lm", args)
      assert.are.equal(0, r.code, r.stderr)
      local want, got = normalize(expected), normalize(r.stdout)
      if args[1] == "current" then
        -- Alembic prints the rows in set order
        table.sort(want)
        table.sort(got)
      end
      assert.are.same(want, got)
    end)
  end
end)
