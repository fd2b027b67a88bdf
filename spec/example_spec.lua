-- The repository's own example project (luamig.lua, migrations/) on SQLite:
-- the schema it builds, its data migration, and the way back down.
local cli = require("spec.helpers.cli")
local db = require("spec.helpers.sqlite")

local function column_names(path, tbl)
  local out = {}
  for i, c in ipairs(db.columns(path, tbl)) do out[i] = c.name end
  return out
end

describe("the example project", function()
  local dir, dbfile

  before_each(function()
    dir = cli.sh("mktemp -d /tmp/luamig-spec.XXXXXX"):gsub("%s+$", "")
    cli.sh("cp -r luamig.lua migrations " .. cli.shell_quote(dir))
    dbfile = dir .. "/data/app.db"
  end)
  after_each(function() cli.rmtree(dir) end)

  it("builds the job tracker schema", function()
    local r = cli.run(dir, { "upgrade", "head" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({ "job_applications", "luamig_version", "resumes", "user_preferences", "users" }, db.tables(dbfile))
    assert.are.same({ "id", "user_id", "resume_id", "company", "position", "status", "applied_at", "notes" },
      column_names(dbfile, "job_applications"))

    local fks = db.foreign_keys(dbfile, "job_applications")
    assert.are.equal(2, #fks)
    local by_table = {}
    for _, fk in ipairs(fks) do by_table[fk.table] = fk end
    assert.are.equal("CASCADE", by_table.users.on_delete)
    assert.are.equal("SET NULL", by_table.resumes.on_delete)

    local idx = db.query(dbfile, "SELECT name FROM pragma_index_info('ix_jobs_company_status') ORDER BY seqno")
    assert.are.same({ { name = "company" }, { name = "status" } }, idx)

    -- server defaults are real: a bare insert gets them
    db.exec(dbfile, "INSERT INTO users (email, hashed_password) VALUES ('a@x.io', 'h')")
    local user = db.query(dbfile, "SELECT is_active, created_at FROM users")[1]
    assert.are.equal(1, user.is_active)
    assert.truthy(user.created_at)
  end)

  it("backfills preferences for the users that exist when it runs", function()
    local r = cli.run(dir, { "upgrade", "abc123def456" })
    assert.are.equal(0, r.code, r.stderr)
    db.exec(dbfile, [[
      INSERT INTO users (email, hashed_password) VALUES
        ('ann@gmail.com', 'h'), ('bob@acme.example', 'h'), ('cy@outlook.com', 'h');
      INSERT INTO user_preferences (user_id, theme) VALUES (3, 'solarized');]])
    r = cli.run(dir, { "upgrade", "head" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("Running upgrade abc123def456 -> 5e1f0c2a9b7d, backfill user preferences for existing users\n", r.stderr)
    assert.are.same({
      { user_id = 1, theme = "light" },
      { user_id = 2, theme = "dark" },
      { user_id = 3, theme = "solarized" }, -- kept as it was
    }, db.query(dbfile, "SELECT user_id, theme FROM user_preferences ORDER BY user_id"))
  end)

  it("goes back down to base", function()
    assert.are.equal(0, cli.run(dir, { "upgrade", "head" }).code)
    local r = cli.run(dir, { "downgrade", "base" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({ "luamig_version" }, db.tables(dbfile))
    r = cli.run(dir, { "history" })
    assert.are.equal(
      "abc123def456 -> 5e1f0c2a9b7d (head), backfill user preferences for existing users\n" ..
      "0001 -> abc123def456, add user preferences table\n" ..
      "<base> -> 0001, initial schema\n", r.stdout)
  end)
end)
