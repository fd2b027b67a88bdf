-- The repository's own example project (luamig.lua, migrations/) on every
-- backend: the schema it builds, its data migration, and the way back down.
local cli = require("spec.helpers.cli")
local backend = require("spec.helpers.backend")
local list = require("spec.helpers.list")
local names = list.names
local by_name = list.by_name

backend.each(function(b)
  describe("the example project", function()
    local dir

    before_each(function()
      dir = cli.sh("mktemp -d /tmp/luamig-spec.XXXXXX"):gsub("%s+$", "")
      cli.sh("cp -r luamig.lua migrations " .. cli.shell_quote(dir))
    end)
    after_each(function() cli.rmtree(dir) end)

    it("builds the job tracker schema", function()
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(
        "Running upgrade <base> -> 0001, initial schema\n" ..
        "Running upgrade 0001 -> abc123def456, add user preferences table\n" ..
        "Running upgrade abc123def456 -> 5e1f0c2a9b7d, backfill user preferences for existing users\n" ..
        "Running upgrade 5e1f0c2a9b7d -> 7c4d2e9f1a3b, normalise job statuses and guard them with a check constraint\n", r.stderr)
      assert.are.same({ "job_applications", "luamig_version", "resumes", "user_preferences", "users" }, b.tables())
      assert.are.same({ "7c4d2e9f1a3b" }, b.versions())
      assert.are.same({ "id", "user_id", "resume_id", "company", "position", "status", "applied_at", "notes" },
        names(b.columns("job_applications")))

      local cols = by_name(b.columns("job_applications"))
      assert.are.equal(true, cols.id.primary_key)
      assert.are.equal(false, cols.user_id.nullable)
      assert.are.equal(true, cols.resume_id.nullable)
      assert.are.equal(b.pick { sqlite = "VARCHAR(200)", postgresql = "character varying(200)" }, cols.company.type)
      assert.are.equal(b.pick { sqlite = "'applied'", postgresql = "'applied'::character varying" }, cols.status.default)
      assert.are.equal(b.pick { sqlite = "VARCHAR(30)", postgresql = "character varying(30)" }, cols.status.type)
      assert.are.equal(b.pick { sqlite = "CURRENT_TIMESTAMP", postgresql = "now()" }, cols.applied_at.default)

      local fks = b.foreign_keys("job_applications")
      assert.are.equal(2, #fks)
      local by_table = {}
      for _, fk in ipairs(fks) do by_table[fk.referred_table] = fk end
      assert.are.equal("CASCADE", by_table.users.ondelete)
      assert.are.same({ "user_id" }, by_table.users.columns)
      assert.are.same({ "id" }, by_table.users.referred_columns)
      assert.are.equal("SET NULL", by_table.resumes.ondelete)
      assert.are.same({ "resume_id" }, by_table.resumes.columns)

      assert.are.same({
        { name = "ix_job_applications_user_id", unique = false, columns = { "user_id" } },
        { name = "ix_jobs_company_status", unique = false, columns = { "company", "status" } },
      }, b.indexes("job_applications"))
      assert.are.same({ { name = "ix_resumes_user_id", unique = false, columns = { "user_id" } } }, b.indexes("resumes"))
      -- users.email is UNIQUE: one unique index, named by the database
      local ux = b.indexes("users")
      assert.are.equal(1, #ux)
      assert.are.same({ true, { "email" } }, { ux[1].unique, ux[1].columns })
      assert.are.equal(b.pick { sqlite = "sqlite_autoindex_users_1", postgresql = "users_email_key" }, ux[1].name)

      -- server defaults are real: a bare insert gets them
      b.exec("INSERT INTO users (email, hashed_password) VALUES ('a@x.io', 'h')")
      local user = b.query("SELECT is_active, created_at FROM users")[1]
      assert.are.equal(b.pick { sqlite = 1, postgresql = true }, user.is_active)
      assert.truthy(user.created_at)
      b.exec("INSERT INTO job_applications (user_id, company, position) VALUES (1, 'Acme', 'dev')")
      assert.are.same({ { status = "applied" } }, b.query("SELECT status FROM job_applications"))
    end)

    it("backfills preferences for the users that exist when it runs", function()
      local r = b.run(dir, { "upgrade", "abc123def456" })
      assert.are.equal(0, r.code, r.stderr)
      b.exec([[
        INSERT INTO users (email, hashed_password) VALUES
          ('ann@gmail.com', 'h'), ('bob@acme.example', 'h'), ('cy@outlook.com', 'h');
        INSERT INTO user_preferences (user_id, theme) VALUES (3, 'solarized');]])
      r = b.run(dir, { "upgrade", "5e1f0c2a9b7d" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("Running upgrade abc123def456 -> 5e1f0c2a9b7d, backfill user preferences for existing users\n", r.stderr)
      assert.are.same({
        { user_id = 1, theme = "light" },
        { user_id = 2, theme = "dark" },
        { user_id = 3, theme = "solarized" }, -- kept as it was
      }, b.query("SELECT user_id, theme FROM user_preferences ORDER BY user_id"))
      assert.are.same({ "5e1f0c2a9b7d" }, b.versions())
    end)

    it("normalises job statuses, then guards them with a check constraint through batch mode", function()
      assert.are.equal(0, b.run(dir, { "upgrade", "5e1f0c2a9b7d" }).code)
      b.exec([[
        INSERT INTO users (email, hashed_password) VALUES ('ann@x.io', 'h');
        INSERT INTO resumes (user_id, title) VALUES (1, 'cv');
        INSERT INTO job_applications (user_id, resume_id, company, position, status) VALUES
          (1, 1, 'Acme', 'dev', 'Interview'), (1, 1, 'Beta', 'dev', 'ghosted'),
          (1, NULL, 'Gamma', 'ops', 'lost in the mail'), (1, 1, 'Delta', 'dev', 'offer');]])
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({
        { company = "Acme", status = "interviewing", resume_id = 1 },
        { company = "Beta", status = "rejected", resume_id = 1 },
        { company = "Gamma", status = "applied", resume_id = nil },
        { company = "Delta", status = "offer", resume_id = 1 },
      }, b.query("SELECT company, status, resume_id FROM job_applications ORDER BY id"))
      -- indexes and foreign keys in and out survived the rebuild
      assert.are.equal(2, #b.foreign_keys("job_applications"))
      assert.are.equal(2, #b.indexes("job_applications"))
      assert.has_error(function()
        b.exec("INSERT INTO job_applications (user_id, company, position, status) VALUES (1, 'E', 'x', 'bogus')")
      end)
      -- deleting the user still cascades into the rebuilt table
      b.exec(b.pick { sqlite = "PRAGMA foreign_keys = ON; DELETE FROM users", postgresql = "DELETE FROM users" })
      assert.are.same({ { n = 0 } }, b.query("SELECT count(*) AS n FROM job_applications"))
      r = b.run(dir, { "downgrade", "-1" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(b.pick { sqlite = "VARCHAR(20)", postgresql = "character varying(20)" },
        by_name(b.columns("job_applications")).status.type)
    end)

    it("goes back down to base", function()
      assert.are.equal(0, b.run(dir, { "upgrade", "head" }).code)
      local r = b.run(dir, { "downgrade", "base" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(
        "Running downgrade 7c4d2e9f1a3b -> 5e1f0c2a9b7d, normalise job statuses and guard them with a check constraint\n" ..
        "Running downgrade 5e1f0c2a9b7d -> abc123def456, backfill user preferences for existing users\n" ..
        "Running downgrade abc123def456 -> 0001, add user preferences table\n" ..
        "Running downgrade 0001 -> <base>, initial schema\n", r.stderr)
      assert.are.same({ "luamig_version" }, b.tables())
      assert.are.same({}, b.versions())
      r = b.run(dir, { "history" })
      assert.are.equal(
        "5e1f0c2a9b7d -> 7c4d2e9f1a3b (head), normalise job statuses and guard them with a check constraint\n" ..
        "abc123def456 -> 5e1f0c2a9b7d, backfill user preferences for existing users\n" ..
        "0001 -> abc123def456, add user preferences table\n" ..
        "<base> -> 0001, initial schema\n", r.stdout)
    end)
  end)
end)
