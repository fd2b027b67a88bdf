-- The walking skeleton end to end on every backend (SQLite always,
-- PostgreSQL when LUAMIG_TEST_PG_URL is set): init, revision, upgrade,
-- current, history, downgrade, stamp, and the errors of bad input. Each
-- test runs luamig with --url on a fresh database and reads the real schema.
local cli = require("spec.helpers.cli")
local backend = require("spec.helpers.backend")
local sqlite = require("spec.helpers.sqlite")
local list = require("spec.helpers.list")
local names = list.names

-- The three revisions of the linear chain.
local function chain(dir)
  cli.revision(dir, "001_users", { revision = "aaa111", message = "create users", upgrade = [[
    op.create_table("users", sa.Column("id", sa.Integer, { primary_key = true }),
      sa.Column("email", sa.String(120), { nullable = false }))]],
    downgrade = [[op.drop_table("users")]] })
  cli.revision(dir, "002_phone", { revision = "bbb222", down_revision = "aaa111", message = "add phone",
    upgrade = [[op.add_column("users", sa.Column("phone", sa.String(20)))]],
    downgrade = [[op.drop_column("users", "phone")]] })
  cli.revision(dir, "003_seed", { revision = "ccc333", down_revision = "bbb222", message = "seed users",
    upgrade = [[op.get_bind():execute("INSERT INTO users (email) VALUES (?), (?)", { "a@x.io", "b@y.io" })]],
    downgrade = [[op.execute("DELETE FROM users")]] })
end

backend.each(function(b)
  describe("a linear chain", function()
    local dir

    before_each(function()
      dir = cli.project()
      chain(dir)
    end)

    after_each(function() cli.rmtree(dir) end)

    it("upgrades to head and reports where it is", function()
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal("", r.stdout)
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(
        "Running upgrade <base> -> aaa111, create users\n" ..
        "Running upgrade aaa111 -> bbb222, add phone\n" ..
        "Running upgrade bbb222 -> ccc333, seed users\n", r.stderr)
      assert.are.same({ "luamig_version", "users" }, b.tables())
      assert.are.same({ "id", "email", "phone" }, names(b.columns("users")))
      assert.are.same({ "a@x.io", "b@y.io" }, names(b.query("SELECT email FROM users ORDER BY id"), "email"))
      assert.are.same({ "ccc333" }, b.versions())
      -- Alembic's layout of the version table
      local vcols = b.columns("luamig_version")
      assert.are.equal(1, #vcols)
      assert.are.equal("version_num", vcols[1].name)
      assert.are.equal(b.pick { sqlite = "VARCHAR(32)", postgresql = "character varying(32)" }, vcols[1].type)
      assert.are.equal(false, vcols[1].nullable)
      assert.are.equal(true, vcols[1].primary_key)
      -- nothing was written beside the database (the project's default data/app.db)
      assert.is_nil(io.open(dir .. "/data/app.db", "rb"))

      r = b.run(dir, { "current" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("ccc333 (head)\n", r.stdout)

      r = b.run(dir, { "history" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(
        "bbb222 -> ccc333 (head), seed users\n" ..
        "aaa111 -> bbb222, add phone\n" ..
        "<base> -> aaa111, create users\n", r.stdout)
    end)

    it("does nothing when already at head", function()
      assert.are.equal(0, b.run(dir, { "upgrade", "head" }).code)
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("", r.stderr)
      assert.are.same({ "ccc333" }, b.versions())
      assert.are.equal(2, #b.query("SELECT id FROM users"))
    end)

    it("steps down and up with -1, +1, base and ids", function()
      assert.are.equal(0, b.run(dir, { "upgrade", "head" }).code)
      local r = b.run(dir, { "downgrade", "-1" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("Running downgrade ccc333 -> bbb222, seed users\n", r.stderr)
      assert.are.same({}, b.query("SELECT * FROM users"))
      assert.are.same({ "bbb222" }, b.versions())

      r = b.run(dir, { "downgrade", "base" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({ "luamig_version" }, b.tables())
      assert.are.same({}, b.versions())
      assert.are.equal("", b.run(dir, { "current" }).stdout)

      r = b.run(dir, { "upgrade", "+1" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({ "aaa111" }, b.versions())
      assert.are.same({ "id", "email" }, names(b.columns("users")))

      r = b.run(dir, { "upgrade", "bbb" }) -- a unique prefix
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({ "bbb222" }, b.versions())
      assert.are.same({ "id", "email", "phone" }, names(b.columns("users")))

      r = b.run(dir, { "upgrade", "+1", "-x", "ignored=1" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({ "ccc333" }, b.versions())
    end)

    it("stamps without running migrations", function()
      local r = b.run(dir, { "stamp", "head" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({ "luamig_version" }, b.tables())
      assert.are.same({ "ccc333" }, b.versions())
      r = b.run(dir, { "stamp", "aaa111" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({ "aaa111" }, b.versions())
      r = b.run(dir, { "stamp", "base" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({}, b.versions())
      assert.are.same({ "luamig_version" }, b.tables())
    end)

    it("runs everything in one transaction when transaction_per_migration is false", function()
      cli.write(dir .. "/luamig.lua", "return { transaction_per_migration = false }\n")
      cli.revision(dir, "004_bad", { revision = "ddd444", down_revision = "ccc333",
        upgrade = [[error("stop here")]] })
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(1, r.code)
      assert.are.equal(
        "Running upgrade <base> -> aaa111, create users\n" ..
        "Running upgrade aaa111 -> bbb222, add phone\n" ..
        "Running upgrade bbb222 -> ccc333, seed users\n" ..
        "Running upgrade ccc333 -> ddd444, 004_bad\n" ..
        "luamig: error: migrations/versions/004_bad.lua:5: stop here (upgrade ddd444)\n", r.stderr)
      -- nothing at all was kept, not even the revisions before the failing one
      assert.are.same({}, b.tables())
    end)

    it("takes --url over DATABASE_URL over the config's url, and -c from elsewhere", function()
      local other = backend.open(b.name) -- named by the config: never touched
      local ok, err = pcall(function()
        cli.write(dir .. "/luamig.lua", ("return { url = %q }\n"):format(other.url))
        local r = cli.run(dir, { "upgrade", "aaa111" }, { env = { DATABASE_URL = b.url } })
        assert.are.equal(0, r.code, r.stderr)
        assert.are.same({ "aaa111" }, b.versions())
        r = cli.run(dir, { "upgrade", "head", "--url", b.url }, { env = { DATABASE_URL = "sqlite:///env.db" } })
        assert.are.equal(0, r.code, r.stderr)
        assert.are.same({ "ccc333" }, b.versions())
        assert.is_nil(io.open(dir .. "/env.db", "rb"))
        assert.are.same({}, other.tables())

        cli.write(dir .. "/luamig.lua", ("return { url = %q }\n"):format(b.url))
        r = cli.run("/tmp", { "-c", dir .. "/luamig.lua", "current" })
        assert.are.equal(0, r.code, r.stderr)
        assert.are.equal("ccc333 (head)\n", r.stdout)
      end)
      other.drop()
      assert(ok, err)
    end)
  end)

  describe("luamig revision", function()
    local dir
    before_each(function() dir = cli.project() end)
    after_each(function() cli.rmtree(dir) end)

    it("writes files named by the seed convention, chained to the head", function()
      local r = cli.run(dir, { "revision", "-m", "Create users!", "--rev-id", "0001" })
      assert.are.equal(0, r.code, r.stderr)
      local first = r.stdout:gsub("\n$", "")
      assert.matches("^migrations/versions/%d%d%d%d%d%d%d%d_%d%d%d%d%d%d_0001_create_users%.lua$", first)
      local text = cli.read(dir .. "/" .. first)
      assert.matches("%-%-%[%[ Create users!\n\nRevision ID: 0001\nRevises: \nCreate Date: %d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d%.%d%d%d%d%d%d\n%]%]", text)
      assert.matches('revision = "0001"\ndown_revision = nil\n', text, 1, true)

      r = cli.run(dir, { "revision", "-m", "add phone" })
      assert.are.equal(0, r.code, r.stderr)
      local second = r.stdout:gsub("\n$", "")
      local id = second:match("_(%x+)_add_phone%.lua$")
      assert.are.equal(12, #id)
      assert.matches('down_revision = "0001"', cli.read(dir .. "/" .. second), 1, true)

      -- the generated files run as they are
      r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(id .. " (head)\n", b.run(dir, { "current" }).stdout)
      assert.are.same({ id }, b.versions())
      assert.are.same({ "luamig_version" }, b.tables())
    end)
  end)

  describe("bad input", function()
    local dir
    before_each(function()
      dir = cli.project()
      cli.revision(dir, "001_users", { revision = "aaa111", upgrade = [[
        op.create_table("users", sa.Column("id", sa.Integer, { primary_key = true }))]] })
    end)
    after_each(function() cli.rmtree(dir) end)

    local function assert_untouched()
      -- the database holds exactly what the first good revision made
      assert.are.same({ "luamig_version", "users" }, b.tables())
      assert.are.same({ "aaa111" }, b.versions())
    end

    it("a syntax error names the file and line", function()
      assert.are.equal(0, b.run(dir, { "upgrade", "head" }).code)
      local path = cli.revision(dir, "002_broken", { revision = "bbb222", down_revision = "aaa111",
        upgrade = "op.create_table(\"x\",,)" })
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(1, r.code)
      assert.are.equal("luamig: error: migrations/versions/002_broken.lua:5: unexpected symbol near ','\n", r.stderr)
      assert.truthy(path)
      assert_untouched()
    end)

    it("a runtime error after statements ran leaves nothing behind", function()
      assert.are.equal(0, b.run(dir, { "upgrade", "head" }).code)
      cli.revision(dir, "002_fails", { revision = "bbb222", down_revision = "aaa111", upgrade = [[
        op.create_table("orders", sa.Column("id", sa.Integer, { primary_key = true }))
        op.execute("INSERT INTO users (id) VALUES (1)")
        op.add_column("users", sa.Column("phone", sa.String(20)))
        op.execute("INSERT INTO nowhere VALUES (1)")]] })
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(1, r.code)
      assert.are.equal("Running upgrade aaa111 -> bbb222, 002_fails\n" ..
        "luamig: error: migrations/versions/002_fails.lua:8: " ..
        b.pick { sqlite = "no such table: nowhere", postgresql = 'relation "nowhere" does not exist' } ..
        " (upgrade bbb222)\n", r.stderr)
      assert_untouched()
      assert.are.same({}, b.query("SELECT * FROM users"))
      assert.are.same({ "id" }, names(b.columns("users")))
    end)

    it("a Lua error inside upgrade() names the line", function()
      assert.are.equal(0, b.run(dir, { "upgrade", "head" }).code)
      b.exec("INSERT INTO users (id) VALUES (5)")
      cli.revision(dir, "002_nil", { revision = "bbb222", down_revision = "aaa111", upgrade = [[
        op.execute("DELETE FROM users")
        local t = nil
        t.x = 1]] })
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(1, r.code)
      assert.are.equal("Running upgrade aaa111 -> bbb222, 002_nil\n" ..
        "luamig: error: migrations/versions/002_nil.lua:7: attempt to index local 't' (a nil value) (upgrade bbb222)\n", r.stderr)
      assert_untouched()
      assert.are.same({ { id = 5 } }, b.query("SELECT id FROM users")) -- the DELETE rolled back
    end)

    it("a migration cannot commit behind the runner's back", function()
      assert.are.equal(0, b.run(dir, { "upgrade", "head" }).code)
      cli.revision(dir, "002_commit", { revision = "bbb222", down_revision = "aaa111", upgrade = [[
        op.execute("INSERT INTO users (id) VALUES (7)")
        op.execute("COMMIT")]] })
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(1, r.code)
      assert.are.equal("Running upgrade aaa111 -> bbb222, 002_commit\n" ..
        "luamig: error: migrations/versions/002_commit.lua:6: transaction control statements are not allowed in a migration: the runner commits each revision (upgrade bbb222)\n", r.stderr)
      assert_untouched()
      assert.are.same({}, b.query("SELECT * FROM users"))
    end)

    it("an unknown revision", function()
      local r = b.run(dir, { "upgrade", "zzz999" })
      assert.are.equal(1, r.code)
      assert.are.equal("luamig: error: Revision 'zzz999' not found\n", r.stderr)
      assert.are.same({}, b.tables())
    end)

    it("a down_revision no file defines", function()
      cli.revision(dir, "002_orphan", { revision = "bbb222", down_revision = "nothere" })
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(1, r.code)
      assert.are.equal("luamig: error: Revision 'nothere' referenced as down_revision by 'bbb222' ('migrations/versions/002_orphan.lua') is not present\n", r.stderr)
      assert.are.same({}, b.tables())
    end)

    it("two files with one revision id", function()
      cli.revision(dir, "002_twin", { revision = "aaa111" })
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(1, r.code)
      assert.are.equal("luamig: error: Revision 'aaa111' is defined twice: 'migrations/versions/001_users.lua' and 'migrations/versions/002_twin.lua'\n", r.stderr)
      assert.are.same({}, b.tables())
    end)

    it("a version table naming a revision no file defines", function()
      assert.are.equal(0, b.run(dir, { "upgrade", "head" }).code)
      b.exec("UPDATE luamig_version SET version_num = 'gone42'")
      local r = b.run(dir, { "current" })
      assert.are.equal(1, r.code)
      assert.are.equal("luamig: error: Can't locate revision identified by 'gone42': the version table 'luamig_version' names a revision no file defines; fix it with 'luamig stamp <revision>'\n", r.stderr)
      r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(1, r.code)
      assert.are.equal("luamig: error: Can't locate revision identified by 'gone42': the version table 'luamig_version' names a revision no file defines; fix it with 'luamig stamp <revision>'\n", r.stderr)
      assert.are.same({ "gone42" }, b.versions())
      r = b.run(dir, { "stamp", "--purge", "head" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({ "aaa111" }, b.versions())
    end)
  end)
end)

-- The project's default url: a SQLite file relative to luamig.lua.
describe("the default sqlite url", function()
  local dir
  before_each(function()
    dir = cli.project()
    chain(dir)
  end)
  after_each(function() cli.rmtree(dir) end)

  it("upgrades to head, creating data/app.db", function()
    local dbfile = dir .. "/data/app.db"
    local r = cli.run(dir, { "upgrade", "head" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({ "luamig_version", "users" }, sqlite.tables(dbfile))
    assert.are.same({ { version_num = "ccc333" } }, sqlite.query(dbfile, "SELECT version_num FROM luamig_version"))
    assert.are.equal("ccc333 (head)\n", cli.run(dir, { "current" }).stdout)
  end)

  it("honours --url, DATABASE_URL and -c", function()
    local function versions(path)
      return names(sqlite.query(path, "SELECT version_num FROM luamig_version ORDER BY version_num"), "version_num")
    end
    local r = cli.run(dir, { "upgrade", "head", "--url", "sqlite:///other.db" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({ "ccc333" }, versions(dir .. "/other.db"))
    r = cli.run(dir, { "upgrade", "aaa111" }, { env = { DATABASE_URL = "sqlite:///env.db" } })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({ "aaa111" }, versions(dir .. "/env.db"))
    r = cli.run("/tmp", { "-c", dir .. "/luamig.lua", "current" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stdout) -- data/app.db relative to the config, never upgraded
  end)
end)

describe("luamig revision ids", function()
  local dir
  before_each(function() dir = cli.project() end)
  after_each(function() cli.rmtree(dir) end)

  it("refuses a revision id that is taken or malformed", function()
    assert.are.equal(0, cli.run(dir, { "revision", "-m", "x", "--rev-id", "abc" }).code)
    local r = cli.run(dir, { "revision", "-m", "y", "--rev-id", "abc" })
    assert.are.equal(1, r.code)
    assert.matches("^luamig: error: revision id 'abc' is already used by 'migrations/versions/.-_abc_x%.lua'\n$", r.stderr)
    r = cli.run(dir, { "revision", "-m", "y", "--rev-id", "a-b" })
    assert.are.equal(2, r.code)
    assert.are.equal("luamig: error: revision id 'a-b' is not allowed: use letters, digits and '_'\n", r.stderr)
  end)
end)

describe("input refused before any database is opened", function()
  local dir
  before_each(function()
    dir = cli.project()
    cli.revision(dir, "001_users", { revision = "aaa111", upgrade = [[
      op.create_table("users", sa.Column("id", sa.Integer, { primary_key = true }))]] })
  end)
  after_each(function() cli.rmtree(dir) end)

  it("a bad url", function()
    local r = cli.run(dir, { "upgrade", "head", "--url", "mysql://root@localhost/db" })
    assert.are.equal(1, r.code)
    assert.are.equal("luamig: error: bad database url 'mysql://root@localhost/db': unknown database 'mysql'; luamig speaks sqlite and postgresql\n", r.stderr)
    r = cli.run(dir, { "current", "--url", "sqlite:/x.db" })
    assert.are.equal(1, r.code)
    assert.are.equal("luamig: error: bad database url 'sqlite:/x.db': sqlite urls look like 'sqlite:///relative.db' or 'sqlite:////absolute.db'\n", r.stderr)
    r = cli.run(dir, { "current", "--url", "postgresql://bob:s3cret@localhost:notaport/db" })
    assert.are.equal(1, r.code)
    assert.are.equal("luamig: error: bad database url 'postgresql://bob:***@localhost:notaport/db': port 'notaport' is not a number\n", r.stderr)
    assert.are.same({}, sqlite.tables(dir .. "/data/app.db"))
  end)

  it("a missing config file", function()
    local r = cli.run("/tmp", { "current" })
    assert.are.equal(1, r.code)
    assert.are.equal("luamig: error: no config file 'luamig.lua'; run 'luamig init' to create one, or name it with -c\n", r.stderr)
  end)

  it("usage errors exit 2", function()
    local r = cli.run(dir, { "upgrade" })
    assert.are.equal(2, r.code)
    assert.are.equal("luamig: error: usage: luamig upgrade REV [--sql]\n", r.stderr)
    r = cli.run(dir, { "frobnicate" })
    assert.are.equal(2, r.code)
    assert.are.equal("luamig: error: unknown command 'frobnicate'; see 'luamig --help'\n", r.stderr)
    r = cli.run(dir, { "current", "--bogus" })
    assert.are.equal(2, r.code)
    assert.are.equal("luamig: error: unknown option '--bogus'; see 'luamig --help'\n", r.stderr)
  end)
end)
