-- --sql: the script luamig prints, applied by the database's own client,
-- gives the same schema and rows as an online upgrade.
local cli = require("spec.helpers.cli")
local db = require("spec.helpers.sqlite")

local revisions = {
  { "001_users", { revision = "a1", message = "users", upgrade = [[
    op.create_table("users", sa.Column("id", sa.Integer, { primary_key = true }),
      sa.Column("email", sa.String(120), { nullable = false, unique = true }),
      sa.Column("active", sa.Boolean, { server_default = sa.true_() }))
    op.create_index("ix_users_email", "users", { "email" })]],
    downgrade = [[op.drop_index("ix_users_email", { table_name = "users" }); op.drop_table("users")]] } },
  { "002_seed", { revision = "b2", down_revision = "a1", message = "seed", upgrade = [[
    local users = sa.table("users", sa.column("id", sa.Integer), sa.column("email", sa.String))
    op.bulk_insert(users, { { id = 1, email = "o'hara@x.io" }, { id = 2, email = "b@y.io" } })
    op.execute("UPDATE users SET active = ? WHERE id = ?", { false, 2 })]],
    downgrade = [[op.execute("DELETE FROM users")]] } },
  { "003_phone", { revision = "c3", down_revision = "b2", message = "phone", upgrade = [[
    op.add_column("users", sa.Column("phone", sa.String(20)))]],
    downgrade = [[op.drop_column("users", "phone")]] } },
}

local function schema(path)
  return db.query(path, "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
end

describe("--sql on sqlite", function()
  local dir
  before_each(function()
    dir = cli.project()
    for _, r in ipairs(revisions) do cli.revision(dir, r[1], r[2]) end
  end)
  after_each(function() cli.rmtree(dir) end)

  it("prints a script that sqlite3 turns into the online result", function()
    local r = cli.run(dir, { "upgrade", "head", "--sql" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stderr:gsub("Running [^\n]*\n", ""))
    assert.matches("^CREATE TABLE IF NOT EXISTS \"luamig_version\"", r.stdout)
    assert.matches("%-%- Running upgrade <base> %-> a1, users\n", r.stdout)
    assert.matches("INSERT INTO \"luamig_version\" %(version_num%) VALUES %('a1'%);", r.stdout)
    assert.matches("UPDATE \"luamig_version\" SET version_num = 'c3' WHERE version_num = 'b2';", r.stdout)
    assert.matches("'o''hara@x.io'", r.stdout, 1, true)
    assert.is_nil(r.stdout:find("?", 1, true), "no placeholder is left in the script")
    assert.is_false(cli.run(dir, { "current" }).stdout ~= "", "--sql never touches the database")

    cli.write(dir .. "/script.sql", r.stdout)
    cli.sh("sqlite3 -bail " .. cli.shell_quote(dir .. "/offline.db") .. " < " .. cli.shell_quote(dir .. "/script.sql"))
    assert.are.equal(0, cli.run(dir, { "upgrade", "head" }).code)
    local online, offline = dir .. "/data/app.db", dir .. "/offline.db"
    assert.are.same(schema(online), schema(offline))
    assert.are.same(db.query(online, "SELECT * FROM users ORDER BY id"), db.query(offline, "SELECT * FROM users ORDER BY id"))
    assert.are.same({ { version_num = "c3" } }, db.query(offline, "SELECT version_num FROM luamig_version"))
  end)

  it("prints a range, and a downgrade range", function()
    local r = cli.run(dir, { "upgrade", "a1:c3", "--sql" })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_nil(r.stdout:find("Running upgrade <base>", 1, true))
    assert.matches("%-%- Running upgrade a1 %-> b2, seed", r.stdout)
    r = cli.run(dir, { "downgrade", "c3:a1", "--sql" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("%-%- Running downgrade c3 %-> b2, phone\n\nALTER TABLE users DROP COLUMN phone;", r.stdout)
    assert.matches("UPDATE \"luamig_version\" SET version_num = 'a1' WHERE version_num = 'b2';", r.stdout)
  end)

  it("refuses what cannot be printed", function()
    local r = cli.run(dir, { "downgrade", "base", "--sql" })
    assert.are.equal(2, r.code)
    assert.are.equal("luamig: error: downgrade with --sql requires <fromrev>:<torev>\n", r.stderr)
    r = cli.run(dir, { "upgrade", "a1:c3" })
    assert.are.equal(2, r.code)
    assert.are.equal("luamig: error: range 'a1:c3' is only allowed with --sql\n", r.stderr)
    cli.revision(dir, "004_data", { revision = "d4", down_revision = "c3", upgrade = [[
      for row in op.get_bind():rows("SELECT id FROM users") do end]] })
    r = cli.run(dir, { "upgrade", "head", "--sql" })
    assert.are.equal(1, r.code)
    assert.matches("luamig: error: migrations/versions/004_data.lua:5: op.get_bind%(%) needs a live database connection; it is not available with %-%-sql %(upgrade d4%)\n$", r.stderr)
  end)
end)

describe("--sql on postgresql", function()
  local pg_url = os.getenv("LUAMIG_TEST_PG_URL")
  if not pg_url then
    it("needs LUAMIG_TEST_PG_URL", function() pending("no PostgreSQL server for this run") end)
    return
  end
  local dir
  local function psql(url, sql)
    return cli.sh("psql -X -q -v ON_ERROR_STOP=1 -At " .. cli.shell_quote(url) .. " -c " .. cli.shell_quote(sql))
  end
  local function with_db(name) return (pg_url:gsub("/[^/?]*$", "/" .. name)) end

  before_each(function()
    dir = cli.project()
    for _, r in ipairs(revisions) do cli.revision(dir, r[1], r[2]) end
    for _, name in ipairs({ "luamig_off_a", "luamig_off_b" }) do
      psql(pg_url, "DROP DATABASE IF EXISTS " .. name)
      psql(pg_url, "CREATE DATABASE " .. name)
    end
  end)
  after_each(function() cli.rmtree(dir) end)

  it("prints a transactional script that psql turns into the online result", function()
    local offline, online = with_db("luamig_off_a"), with_db("luamig_off_b")
    local r = cli.run(dir, { "upgrade", "head", "--sql", "--url", offline })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("\nBEGIN;\n", "\n" .. r.stdout)
    assert.matches("\nCOMMIT;\n\n$", r.stdout)
    assert.matches("UPDATE users SET active = false WHERE id = 2;", r.stdout, 1, true)
    cli.write(dir .. "/script.sql", r.stdout)
    cli.sh("psql -X -q -v ON_ERROR_STOP=1 " .. cli.shell_quote(offline) .. " -f " .. cli.shell_quote(dir .. "/script.sql"))
    r = cli.run(dir, { "upgrade", "head", "--url", online })
    assert.are.equal(0, r.code, r.stderr)
    local dump = function(url)
      return cli.sh("pg_dump --schema-only --no-owner " .. cli.shell_quote(url) .. " | grep -v -e '^--' -e '^.restrict' -e '^.unrestrict'")
    end
    assert.are.equal(dump(online), dump(offline))
    local rows = "SELECT id, email, active FROM users ORDER BY id"
    assert.are.equal(psql(online, rows), psql(offline, rows))
    assert.are.equal("c3\n", psql(offline, "SELECT version_num FROM luamig_version"))
  end)
end)
