-- Revision attributes read from the file's text (plain literals) or, for
-- anything else, by running it: both give the same graph.
local cli = require("spec.helpers.cli")

describe("reading revision files", function()
  local dir
  before_each(function() dir = cli.project() end)
  after_each(function() cli.rmtree(dir) end)

  local function write(name, text) cli.write(dir .. "/migrations/versions/" .. name .. ".lua", text) end

  it("runs files whose attributes are not plain literals", function()
    write("1", 'revision = "a1"; down_revision = nil -- a root\nfunction upgrade() op.execute("CREATE TABLE t1 (id INTEGER)") end\n')
    write("2", 'local base = "b"\nrevision = base .. "2"\ndown_revision = { "a1" }\nfunction upgrade() op.execute("CREATE TABLE t2 (id INTEGER)") end\n')
    write("3", 'return { revision = "c3", down_revision = "b2", branch_labels = { "lib" },\n  upgrade = function() op.execute("CREATE TABLE t3 (id INTEGER)") end }\n')
    write("4", "revision = 'd4'\ndown_revision = {\n  'c3',\n}\ntransactional = false\nfunction upgrade() end\n")
    local r = cli.run(dir, { "history" })
    assert.are.equal(0, r.code, r.stderr)
    -- the label reaches every ancestor up to a branch point, as in Alembic
    assert.are.equal("c3 -> d4 (lib) (head), \nb2 -> c3 (lib), \na1 -> b2 (lib), \n<base> -> a1 (lib), \n", r.stdout)
    r = cli.run(dir, { "upgrade", "head" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("d4 (head)\n", cli.run(dir, { "current" }).stdout)
  end)

  it("a syntax error stops an upgrade before anything runs", function()
    write("1", 'revision = "a1"\nfunction upgrade() op.execute("CREATE TABLE t1 (id INTEGER)") end\n')
    write("2", 'revision = "b2"\ndown_revision = "a1"\nfunction upgrade() op.execute(( end\n')
    local r = cli.run(dir, { "upgrade", "head" })
    assert.are.equal(1, r.code)
    assert.are.equal("luamig: error: migrations/versions/2.lua:3: unexpected symbol near 'end'\n", r.stderr)
    assert.are.equal("", cli.run(dir, { "current" }).stdout)
  end)

  it("a file whose text and run disagree is an error", function()
    write("1", 'revision = "a1"\nif true then revision = "zz" end\nfunction upgrade() end\n')
    local r = cli.run(dir, { "upgrade", "head" })
    assert.are.equal(1, r.code)
    assert.are.equal("luamig: error: migrations/versions/1.lua: running the file set revision = \"zz\", not \"a1\" as written\n", r.stderr)
  end)
end)
