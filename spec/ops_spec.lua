-- Every schema operation of op, run through the binary on both backends, each
-- checked against the real resulting schema; and identifiers that need
-- quoting (quotes, spaces, mixed case, unicode, reserved words) end to end.
local cli = require("spec.helpers.cli")
local backend = require("spec.helpers.backend")
local list = require("spec.helpers.list")
local names = list.names
local by_name = list.by_name

backend.each(function(b)
  local dir
  before_each(function() dir = cli.project() end)
  after_each(function() cli.rmtree(dir) end)

  local function upgrade(body, down)
    local n = 0
    for _ in io.popen("ls " .. cli.shell_quote(dir .. "/migrations/versions")):lines() do n = n + 1 end
    cli.revision(dir, ("%03d"):format(n + 1), { revision = "r" .. (n + 1), down_revision = n > 0 and ("r" .. n) or nil,
      upgrade = body, downgrade = down or "" })
    local r = b.run(dir, { "upgrade", "head" })
    assert.are.equal(0, r.code, r.stderr)
  end

  it("create_table, add/drop/alter column, indexes, renames, drop_table", function()
    upgrade([[
      op.create_table("accounts",
        sa.Column("id", sa.Integer, { primary_key = true }),
        sa.Column("name", sa.String(50), { nullable = false }),
        sa.Column("score", sa.Numeric(10, 2), { server_default = "0" }),
        sa.Column("active", sa.Boolean, { server_default = sa.true_() }),
        sa.UniqueConstraint("name", { name = "uq_accounts_name" }),
        sa.CheckConstraint("score >= 0", { name = "ck_accounts_score" }))
      op.create_table("orders",
        sa.Column("id", sa.Integer, { primary_key = true }),
        sa.Column("account_id", sa.Integer, { sa.ForeignKey("accounts.id", { ondelete = "CASCADE" }), nullable = false }),
        sa.Column("note", sa.Text))
      op.create_index("ix_orders_account_id", "orders", { "account_id" })
      op.create_index("ix_orders_note_partial", "orders", { "note" },
        { unique = true, sqlite_where = sa.text("note IS NOT NULL"), postgresql_where = sa.text("note IS NOT NULL") })]])
    assert.are.same({ "accounts", "luamig_version", "orders" }, b.tables())
    local fk = b.foreign_keys("orders")[1]
    assert.are.same({ "account_id" }, fk.columns)
    assert.are.equal("accounts", fk.referred_table)
    assert.are.equal("CASCADE", fk.ondelete)
    local idx = by_name(b.indexes("orders"))
    assert.are.same({ "account_id" }, idx.ix_orders_account_id.columns)
    assert.is_true(idx.ix_orders_note_partial.unique)
    assert.has_error(function() b.exec("INSERT INTO accounts (name, score) VALUES ('a', -1)") end)

    upgrade([[
      op.add_column("accounts", sa.Column("email", sa.String(120)))
      op.alter_column("accounts", "name", { type = sa.String(100), existing_type = sa.String(50), existing_nullable = false })
      op.alter_column("accounts", "email", { nullable = false, existing_type = sa.String(120), server_default = "none" })
      op.alter_column("accounts", "score", { server_default = sa.null, existing_type = sa.Numeric(10, 2) })
      op.alter_column("orders", "note", { new_column_name = "memo" })
      op.drop_index("ix_orders_account_id", { table_name = "orders" })
      op.rename_table("orders", "purchases")]])
    local cols = by_name(b.columns("accounts"))
    assert.are.equal(b.pick { sqlite = "VARCHAR(100)", postgresql = "character varying(100)" }, cols.name.type)
    assert.are.equal(false, cols.email.nullable)
    assert.matches("'none'", cols.email.default)
    assert.is_nil(cols.score.default)
    assert.are.same({ "accounts", "luamig_version", "purchases" }, b.tables())
    assert.are.same({ "id", "account_id", "memo" }, names(b.columns("purchases")))
    assert.are.same({ "ix_orders_note_partial" }, names(b.indexes("purchases")))

    upgrade([[
      op.drop_column("accounts", "email")
      op.drop_table("purchases")]])
    assert.are.same({ "accounts", "luamig_version" }, b.tables())
    assert.are.same({ "id", "name", "score", "active" }, names(b.columns("accounts")))
  end)

  it("constraints by name: unique, foreign key, check, primary key, drop", function()
    upgrade([[
      op.create_table("teams", sa.Column("id", sa.Integer, { primary_key = true }), sa.Column("code", sa.String(10)))
      op.create_table("members", sa.Column("id", sa.Integer, { nullable = false }), sa.Column("team_id", sa.Integer),
        sa.Column("age", sa.Integer))
      op.create_unique_constraint("uq_teams_code", "teams", { "code" })
      op.create_foreign_key("fk_members_team", "members", "teams", { "team_id" }, { "id" }, { ondelete = "SET NULL" })
      op.create_check_constraint("ck_members_age", "members", "age >= 0")
      op.create_primary_key("pk_members", "members", { "id" })]])
    local fk = b.foreign_keys("members")[1]
    assert.are.equal("teams", fk.referred_table)
    assert.are.equal("SET NULL", fk.ondelete)
    assert.is_true(by_name(b.columns("members")).id.primary_key)
    b.exec("INSERT INTO teams (id, code) VALUES (1, 'a')")
    assert.has_error(function() b.exec("INSERT INTO teams (id, code) VALUES (2, 'a')") end)
    assert.has_error(function() b.exec("INSERT INTO members (id, age) VALUES (1, -5)") end)

    upgrade([[
      op.drop_constraint("ck_members_age", "members", { type = "check" })
      op.drop_constraint("fk_members_team", "members", { type = "foreignkey" })
      op.drop_constraint("uq_teams_code", "teams", { type = "unique" })]])
    assert.are.same({}, b.foreign_keys("members"))
    b.exec("INSERT INTO teams (id, code) VALUES (2, 'a'); INSERT INTO members (id, age) VALUES (1, -5)")
    assert.are.same({ { n = 2 } }, b.query("SELECT count(*) AS n FROM teams WHERE code = 'a'"))
  end)

  it("comments on postgresql, and nothing to do for them on sqlite", function()
    upgrade([[
      op.create_table("notes", sa.Column("id", sa.Integer, { primary_key = true }),
        sa.Column("body", sa.Text, { comment = "the text" }), { comment = "user notes" })
      op.create_table_comment("notes", "notes users write")]])
    if b.name == "postgresql" then
      assert.are.same({ { c = "notes users write" } }, b.query("SELECT obj_description('notes'::regclass, 'pg_class') AS c"))
      assert.are.same({ { c = "the text" } }, b.query("SELECT col_description('notes'::regclass, 2) AS c"))
      upgrade([[op.drop_table_comment("notes")]])
      assert.are.same({ {} }, b.query("SELECT obj_description('notes'::regclass, 'pg_class') AS c"))
    else
      assert.are.same({ "luamig_version", "notes" }, b.tables())
    end
  end)

  it("quotes identifiers that need it, end to end", function()
    upgrade([==[
      op.create_table('we"ird tab', sa.Column("Id", sa.Integer, { primary_key = true }),
        sa.Column("select", sa.String(20)), sa.Column("naïve col", sa.String(20)), sa.Column("with space", sa.Integer))
      op.create_index("ix MiXed", 'we"ird tab', { "select", "naïve col" })
      op.execute(sa.table('we"ird tab', sa.column("Id", sa.Integer), sa.column("select", sa.String))
        :insert():values({ Id = 1, select = "o'k" }))
      op.add_column('we"ird tab', sa.Column("order", sa.Integer))]==])
    assert.are.same({ "luamig_version", 'we"ird tab' }, b.tables())
    assert.are.same({ "Id", "select", "naïve col", "with space", "order" }, names(b.columns('we"ird tab')))
    assert.are.same({ { name = "ix MiXed", unique = false, columns = { "select", "naïve col" } } }, b.indexes('we"ird tab'))
    assert.are.same({ { v = "o'k" } }, b.query('SELECT "select" AS v FROM "we""ird tab" WHERE "Id" = 1'))
  end)

  it("keeps the version table in version_table_schema on postgresql", function()
    if b.name ~= "postgresql" then return end
    b.exec("CREATE SCHEMA meta")
    cli.write(dir .. "/luamig.lua", 'return { version_table = "schema_version", version_table_schema = "meta" }\n')
    upgrade([[op.create_table("t", sa.Column("id", sa.Integer, { primary_key = true }))]])
    assert.are.same({ { v = "r1" } }, b.query("SELECT version_num AS v FROM meta.schema_version"))
    assert.are.same({ "t" }, b.tables())
    assert.are.equal("r1 (head)\n", b.run(dir, { "current" }).stdout)
  end)

  it("bad calls name the operation, the argument and the migration line", function()
    cli.revision(dir, "001_bad", { revision = "r1", upgrade = [[
      op.create_table("t", sa.Column("id", sa.Integer, { primary_key = true }))
      op.create_table("u", "not a column")]] })
    local r = b.run(dir, { "upgrade", "head" })
    assert.are.equal(1, r.code)
    assert.are.equal("luamig: error: migrations/versions/001_bad.lua:5: op.create_table: argument 2 must be a sa.Column, a constraint or an index (upgrade r1)\n",
      r.stderr:match("luamig: error: .*"))
    assert.are.same({}, b.tables())
  end)
end)
