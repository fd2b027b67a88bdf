-- The seed guide's workflow through tools/luamig.mk's make targets, on the
-- example project, with DATABASE_URL passed through to each backend.
local cli = require("spec.helpers.cli")
local backend = require("spec.helpers.backend")

backend.each(function(b)
  describe("make db-* on the example project", function()
    local dir

    local function make(args)
      local cmd = { "cd", cli.shell_quote(dir), "&&", "DATABASE_URL=" .. cli.shell_quote(b.url),
        "make", "-s", "LUAMIG=" .. cli.shell_quote(cli.bin) }
      for _, a in ipairs(args) do cmd[#cmd + 1] = cli.shell_quote(a) end
      local out = os.tmpname()
      local ok = os.execute(table.concat(cmd, " ") .. " >" .. out .. " 2>&1")
      local text = cli.read(out)
      os.remove(out)
      return (ok == 0 or ok == true), text
    end

    before_each(function()
      dir = cli.sh("mktemp -d /tmp/luamig-spec.XXXXXX"):gsub("%s+$", "")
      cli.sh("cp -r luamig.lua models.lua migrations Makefile tools " .. cli.shell_quote(dir))
    end)
    after_each(function() cli.rmtree(dir) end)

    it("upgrades, shows, migrates from models.lua, downgrades and stamps", function()
      local ok, out = make({ "db-upgrade" })
      assert.is_true(ok, out)
      assert.are.same({ "7c4d2e9f1a3b" }, b.versions())

      ok, out = make({ "db-current" })
      assert.is_true(ok, out)
      assert.are.equal("7c4d2e9f1a3b (head)\n", out)

      ok, out = make({ "db-history" })
      assert.is_true(ok, out)
      assert.matches("^Rev: 7c4d2e9f1a3b %(head%)\nParent: 5e1f0c2a9b7d\n", out)
      assert.matches("\nRev: 0001\nParent: <base>\n", out)

      ok, out = make({ "db-check" })
      assert.is_true(ok, out)
      assert.are.equal("No new upgrade operations detected.\n", out)

      -- change the models, then let the workflow write and apply the migration
      local models = cli.read(dir .. "/models.lua")
      cli.write(dir .. "/models.lua", (models:gsub('sa.Column%("full_name", sa.String%(200%)%),',
        'sa.Column("full_name", sa.String(200)),\n  sa.Column("phone", sa.String(20)),')))
      ok, out = make({ "db-check" })
      assert.is_false(ok)
      assert.matches("add_column 'users.phone'", out, 1, true)

      ok, out = make({ "db-migrate", "MSG=add user phone" })
      assert.is_true(ok, out)
      local path = out:match("(migrations/versions/[^\n]+_add_user_phone%.lua)")
      assert.truthy(path, out)
      assert.matches('op.add_column("users", sa.Column("phone", sa.String(20)', cli.read(dir .. "/" .. path), 1, true)

      ok, out = make({ "db-upgrade" })
      assert.is_true(ok, out)
      local names = {}
      for _, c in ipairs(b.columns("users")) do names[#names + 1] = c.name end
      assert.are.equal("phone", names[#names])
      assert.is_true((make({ "db-check" })))

      ok, out = make({ "db-downgrade" })
      assert.is_true(ok, out)
      assert.are.same({ "7c4d2e9f1a3b" }, b.versions())

      ok, out = make({ "db-stamp", "REV=0001" })
      assert.is_true(ok, out)
      assert.are.same({ "0001" }, b.versions())

      ok, out = make({ "db-stamp" })
      assert.is_false(ok)
      assert.matches('usage: make db%-stamp REV="revision"', out)
      ok, out = make({ "db-migrate" })
      assert.is_false(ok)
      assert.matches('usage: make db%-migrate MSG="describe your changes"', out)
    end)
  end)
end)
