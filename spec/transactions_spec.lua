-- Transactions on every backend: transaction_per_migration true (each
-- revision commits with its version row) and false (one transaction for the
-- whole command), and revisions with `transactional = false`, which run
-- outside any transaction.
local cli = require("spec.helpers.cli")
local backend = require("spec.helpers.backend")
local list = require("spec.helpers.list")
local names = list.names

local NO_TABLE = { sqlite = "no such table: nowhere", postgresql = 'relation "nowhere" does not exist' }

-- r1 creates accounts and a row; r2 adds a column, a table and rows; r3
-- creates a table and a row, then fails when run with -x fail=1 (line 8 of
-- its file) or finishes.
local function chain(dir)
  cli.revision(dir, "001_accounts", { revision = "r1", message = "accounts", upgrade = [[
    op.create_table("accounts", sa.Column("id", sa.Integer, { primary_key = true }), sa.Column("name", sa.String(40)))
    op.execute("INSERT INTO accounts (id, name) VALUES (1, 'first')")]],
    downgrade = [[op.drop_table("accounts")]] })
  cli.revision(dir, "002_ledger", { revision = "r2", down_revision = "r1", message = "ledger", upgrade = [[
    op.add_column("accounts", sa.Column("balance", sa.Integer, { server_default = sa.text("0") }))
    op.create_table("ledger", sa.Column("id", sa.Integer, { primary_key = true }), sa.Column("amount", sa.Integer))
    op.execute("INSERT INTO ledger (id, amount) VALUES (1, 10)")
    op.execute("UPDATE accounts SET name = 'renamed'")]],
    downgrade = [[
    op.execute("UPDATE accounts SET name = 'first'")
    op.drop_table("ledger")
    op.drop_column("accounts", "balance")]] })
  cli.revision(dir, "003_audit", { revision = "r3", down_revision = "r2", message = "audit", upgrade = [[
    op.create_table("audit", sa.Column("id", sa.Integer, { primary_key = true }))
    op.execute("INSERT INTO audit (id) VALUES (1)")
    if op.get_context().x.fail then op.execute("INSERT INTO nowhere VALUES (1)") end]],
    downgrade = [[
    op.drop_table("audit")
    if op.get_context().x.fail then error("cannot go back") end]] })
end

local LISTING = {
  "Running upgrade <base> -> r1, accounts\n",
  "Running upgrade r1 -> r2, ledger\n",
  "Running upgrade r2 -> r3, audit\n",
}

backend.each(function(b)
  describe("transaction_per_migration = false", function()
    local dir
    before_each(function()
      dir = cli.project()
      cli.write(dir .. "/luamig.lua", "return { transaction_per_migration = false }\n")
      chain(dir)
    end)
    after_each(function() cli.rmtree(dir) end)

    it("commits every revision and the version row together", function()
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(table.concat(LISTING), r.stderr)
      assert.are.same({ "accounts", "audit", "ledger", "luamig_version" }, b.tables())
      assert.are.same({ "r3" }, b.versions())
      assert.are.same({ { id = 1, name = "renamed", balance = 0 } }, b.query("SELECT id, name, balance FROM accounts"))
    end)

    it("a failure in revision 3 leaves nothing of revisions 1 and 2", function()
      local r = b.run(dir, { "upgrade", "head", "-x", "fail=1" })
      assert.are.equal(1, r.code)
      assert.are.equal("", r.stdout)
      assert.are.equal(table.concat(LISTING) ..
        "luamig: error: migrations/versions/003_audit.lua:7: " .. b.pick(NO_TABLE) .. " (upgrade r3)\n", r.stderr)
      -- not even the version table: it was created in the same transaction
      assert.are.same({}, b.tables())
      assert.are.equal("", b.run(dir, { "current" }).stdout)
    end)

    it("a failure rolls back to where the command started, keeping what was committed before", function()
      local r = b.run(dir, { "upgrade", "r1" })
      assert.are.equal(0, r.code, r.stderr)
      b.exec("INSERT INTO accounts (id, name) VALUES (2, 'second')")

      r = b.run(dir, { "upgrade", "head", "-x", "fail=1" })
      assert.are.equal(1, r.code)
      assert.are.equal(LISTING[2] .. LISTING[3] ..
        "luamig: error: migrations/versions/003_audit.lua:7: " .. b.pick(NO_TABLE) .. " (upgrade r3)\n", r.stderr)
      assert.are.same({ "accounts", "luamig_version" }, b.tables())
      assert.are.same({ "r1" }, b.versions())
      assert.are.same({ "id", "name" }, names(b.columns("accounts")))
      assert.are.same({ { id = 1, name = "first" }, { id = 2, name = "second" } },
        b.query("SELECT id, name FROM accounts ORDER BY id"))

      -- the same command, once it can succeed, does all of it
      r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({ "r3" }, b.versions())
      assert.are.same({ "accounts", "audit", "ledger", "luamig_version" }, b.tables())
    end)

    it("a failed downgrade undoes nothing", function()
      assert.are.equal(0, b.run(dir, { "upgrade", "head" }).code)
      local r = b.run(dir, { "downgrade", "base", "-x", "fail=1" })
      assert.are.equal(1, r.code)
      assert.are.equal("Running downgrade r3 -> r2, audit\n" ..
        "luamig: error: migrations/versions/003_audit.lua:11: cannot go back (downgrade r3)\n", r.stderr)
      assert.are.same({ "accounts", "audit", "ledger", "luamig_version" }, b.tables())
      assert.are.same({ "r3" }, b.versions())
      assert.are.same({ { id = 1, amount = 10 } }, b.query("SELECT id, amount FROM ledger"))
    end)
  end)

  describe("transaction_per_migration = true", function()
    local dir
    before_each(function()
      dir = cli.project()
      chain(dir)
    end)
    after_each(function() cli.rmtree(dir) end)

    it("a failure in revision 3 keeps revisions 1 and 2", function()
      local r = b.run(dir, { "upgrade", "head", "-x", "fail=1" })
      assert.are.equal(1, r.code)
      assert.are.equal(table.concat(LISTING) ..
        "luamig: error: migrations/versions/003_audit.lua:7: " .. b.pick(NO_TABLE) .. " (upgrade r3)\n", r.stderr)
      assert.are.same({ "accounts", "ledger", "luamig_version" }, b.tables())
      assert.are.same({ "r2" }, b.versions())
      assert.are.same({ { id = 1, name = "renamed", balance = 0 } }, b.query("SELECT id, name, balance FROM accounts"))
      assert.are.same({ { id = 1, amount = 10 } }, b.query("SELECT id, amount FROM ledger"))
    end)

    it("a revision failing at COMMIT (a deferred constraint) keeps the ones before it", function()
      -- on PostgreSQL the version row and the COMMIT travel together: the COMMIT must still fail
      cli.revision(dir, "004_deferred", { revision = "r4", down_revision = "r3", message = "deferred", upgrade = [[
    op.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    op.execute("CREATE TABLE child (id INTEGER PRIMARY KEY, " ..
      "parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")
    op.execute("INSERT INTO child (id, parent_id) VALUES (1, 42)")]] })
      cli.revision(dir, "005_empty", { revision = "r5", down_revision = "r4", message = "empty" })
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(1, r.code)
      assert.matches("luamig: error: [^\n]*[Ff][Oo][Rr][Ee][Ii][Gg][Nn] [Kk][Ee][Yy][^\n]* %(upgrade r4, at its COMMIT%)\n$", r.stderr)
      assert.are.same({ "accounts", "audit", "ledger", "luamig_version" }, b.tables())
      assert.are.same({ "r3" }, b.versions())
      -- mended, the rest runs; r5 runs no statement, so its BEGIN, version row and COMMIT go at once
      cli.revision(dir, "004_deferred", { revision = "r4", down_revision = "r3", message = "deferred", upgrade = [[
    op.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")]] })
      r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({ "r5" }, b.versions())
      assert.are.same({ "accounts", "audit", "ledger", "luamig_version", "parent" }, b.tables())
    end)

    it("a failed downgrade keeps the revisions already undone", function()
      assert.are.equal(0, b.run(dir, { "upgrade", "head" }).code)
      -- r3's downgrade fails: nothing was undone
      local r = b.run(dir, { "downgrade", "base", "-x", "fail=1" })
      assert.are.equal(1, r.code)
      assert.are.equal("Running downgrade r3 -> r2, audit\n" ..
        "luamig: error: migrations/versions/003_audit.lua:11: cannot go back (downgrade r3)\n", r.stderr)
      assert.are.same({ "r3" }, b.versions())
      assert.are.same({ "accounts", "audit", "ledger", "luamig_version" }, b.tables())
    end)
  end)

  describe("a revision with transactional = false", function()
    local dir
    -- Statements a transaction changes: PostgreSQL refuses CREATE INDEX
    -- CONCURRENTLY inside one; SQLite ignores a change of journal mode inside
    -- one (the database stays in "delete" mode) and makes it outside.
    local OUTSIDE_ONLY = [[
    op.create_index("ix_items_name", "items", { "name" }, { postgresql_concurrently = true })
    if op.get_context().dialect == "sqlite" then op.execute("PRAGMA journal_mode = WAL") end]]

    local function journal_mode()
      return b.query("PRAGMA journal_mode")[1].journal_mode
    end

    before_each(function()
      dir = cli.project()
      cli.revision(dir, "001_items", { revision = "r1", message = "items", upgrade = [[
        op.create_table("items", sa.Column("id", sa.Integer, { primary_key = true }), sa.Column("name", sa.String(40)))
        op.execute("INSERT INTO items (id, name) VALUES (1, 'a'), (2, 'b')")]],
        downgrade = [[op.drop_table("items")]] })
    end)
    after_each(function() cli.rmtree(dir) end)

    local function nontx(upgrade, downgrade)
      return cli.revision(dir, "002_nontx", { revision = "r2", down_revision = "r1", message = "outside",
        transactional = false, upgrade = upgrade, downgrade = downgrade })
    end

    local function after(upgrade)
      cli.revision(dir, "003_after", { revision = "r3", down_revision = "r2", message = "after", upgrade = upgrade })
    end

    local LATER = [[op.create_table("later", sa.Column("id", sa.Integer, { primary_key = true }))]]
    local ITEMS_INDEX = { { name = "ix_items_name", unique = false, columns = { "name" } } }

    it("the control: inside a transaction those statements fail or do nothing", function()
      cli.revision(dir, "002_tx", { revision = "r2", down_revision = "r1", message = "inside", upgrade = OUTSIDE_ONLY })
      local r = b.run(dir, { "upgrade", "head" })
      if b.name == "sqlite" then
        assert.are.equal(0, r.code, r.stderr)
        assert.are.same({ "r2" }, b.versions())
        assert.are.equal("delete", journal_mode())
      else
        assert.are.equal(1, r.code)
        assert.are.equal("Running upgrade <base> -> r1, items\nRunning upgrade r1 -> r2, inside\n" ..
          "luamig: error: migrations/versions/002_tx.lua:5: CREATE INDEX CONCURRENTLY cannot run inside a transaction block (upgrade r2)\n",
          r.stderr)
        assert.are.same({ "r1" }, b.versions())
      end
    end)

    it("runs outside a transaction", function()
      nontx(OUTSIDE_ONLY, [[
        op.drop_index("ix_items_name", { table_name = "items", postgresql_concurrently = true })
        if op.get_context().dialect == "sqlite" then op.execute("PRAGMA journal_mode = DELETE") end]])
      after(LATER)
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("Running upgrade <base> -> r1, items\nRunning upgrade r1 -> r2, outside\n" ..
        "Running upgrade r2 -> r3, after\n", r.stderr)
      assert.are.same({ "r3" }, b.versions())
      assert.are.same(ITEMS_INDEX, b.indexes("items"))
      assert.are.same({ "items", "later", "luamig_version" }, b.tables())
      if b.name == "sqlite" then assert.are.equal("wal", journal_mode()) end

      -- and so does its downgrade
      r = b.run(dir, { "downgrade", "r1" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("Running downgrade r3 -> r2, after\nRunning downgrade r2 -> r1, outside\n", r.stderr)
      assert.are.same({ "r1" }, b.versions())
      assert.are.same({}, b.indexes("items"))
      if b.name == "sqlite" then assert.are.equal("delete", journal_mode()) end
    end)

    it("can run VACUUM, which no database runs inside a transaction", function()
      nontx([[op.execute("VACUUM")]])
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("Running upgrade <base> -> r1, items\nRunning upgrade r1 -> r2, outside\n", r.stderr)
      assert.are.same({ "r2" }, b.versions())
      assert.are.same({ { id = 1, name = "a" }, { id = 2, name = "b" } }, b.query("SELECT id, name FROM items ORDER BY id"))
    end)

    it("runs outside a transaction also when transaction_per_migration is false", function()
      cli.write(dir .. "/luamig.lua", "return { transaction_per_migration = false }\n")
      nontx(OUTSIDE_ONLY)
      after(LATER)
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("Running upgrade <base> -> r1, items\nRunning upgrade r1 -> r2, outside\n" ..
        "Running upgrade r2 -> r3, after\n", r.stderr)
      assert.are.same({ "r3" }, b.versions())
      assert.are.same(ITEMS_INDEX, b.indexes("items"))
      assert.are.same({ "items", "later", "luamig_version" }, b.tables())
      if b.name == "sqlite" then assert.are.equal("wal", journal_mode()) end
    end)

    it("with transaction_per_migration false, commits what ran before it and records itself at once", function()
      cli.write(dir .. "/luamig.lua", "return { transaction_per_migration = false }\n")
      nontx(OUTSIDE_ONLY)
      after(LATER .. "\n" .. [[op.execute("INSERT INTO nowhere VALUES (1)")]])
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(1, r.code)
      assert.are.equal("Running upgrade <base> -> r1, items\nRunning upgrade r1 -> r2, outside\n" ..
        "Running upgrade r2 -> r3, after\n" ..
        "luamig: error: migrations/versions/003_after.lua:6: " .. b.pick(NO_TABLE) .. " (upgrade r3)\n", r.stderr)
      -- r1 was committed before r2 ran, r2 with its version row; r3 rolled back
      assert.are.same({ "r2" }, b.versions())
      assert.are.same({ "items", "luamig_version" }, b.tables())
      assert.are.same({ { id = 1, name = "a" }, { id = 2, name = "b" } }, b.query("SELECT id, name FROM items ORDER BY id"))
      assert.are.same(ITEMS_INDEX, b.indexes("items"))
    end)

    it("its version row is written right after it succeeds", function()
      nontx(OUTSIDE_ONLY)
      after(LATER .. "\n" .. [[op.execute("INSERT INTO nowhere VALUES (1)")]])
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(1, r.code)
      assert.are.equal("Running upgrade <base> -> r1, items\nRunning upgrade r1 -> r2, outside\n" ..
        "Running upgrade r2 -> r3, after\n" ..
        "luamig: error: migrations/versions/003_after.lua:6: " .. b.pick(NO_TABLE) .. " (upgrade r3)\n", r.stderr)
      -- r2 is recorded; r3 rolled back whole
      assert.are.same({ "r2" }, b.versions())
      assert.are.same({ "items", "luamig_version" }, b.tables())
      assert.are.same(ITEMS_INDEX, b.indexes("items"))
    end)

    it("when it fails, says its statements may be partly applied and how to recover", function()
      nontx([[
        op.create_table("partial", sa.Column("id", sa.Integer, { primary_key = true }))
        op.execute("INSERT INTO partial (id) VALUES (1)")
        op.execute("INSERT INTO nowhere VALUES (1)")]])
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(1, r.code)
      assert.are.equal("", r.stdout)
      -- one line: where it failed and why, as for any revision, then that it
      -- was not rolled back and the ways out
      assert.are.equal("Running upgrade <base> -> r1, items\nRunning upgrade r1 -> r2, outside\n" ..
        "luamig: error: migrations/versions/002_nontx.lua:8: " .. b.pick(NO_TABLE) .. " (upgrade r2); " ..
        "it ran outside a transaction (transactional = false), so some of its statements may have been applied: " ..
        "repair the database by hand, then re-run 'luamig upgrade' or mark it done with 'luamig stamp r2'\n", r.stderr)

      -- what it did before the failure is there: it ran outside a transaction
      assert.are.same({ "r1" }, b.versions())
      assert.are.same({ "items", "luamig_version", "partial" }, b.tables())
      assert.are.same({ { id = 1 } }, b.query("SELECT id FROM partial"))

      -- recovering: undo it by hand, fix the revision, run again
      b.exec("DROP TABLE partial")
      nontx([[
        op.create_table("partial", sa.Column("id", sa.Integer, { primary_key = true }))
        op.execute("INSERT INTO partial (id) VALUES (1)")]])
      r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("Running upgrade r1 -> r2, outside\n", r.stderr)
      assert.are.same({ "r2" }, b.versions())
      assert.are.same({ { id = 1 } }, b.query("SELECT id FROM partial"))
    end)
  end)
end)
