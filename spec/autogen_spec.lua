-- Autogenerate (luamig.autogen, luamig.inspect, luamig.metadata) on real databases.
--
-- The round trip goes through the luamig binary, on SQLite always and on PostgreSQL when
-- LUAMIG_TEST_PG_URL is set: models v1 -> `revision --autogenerate` -> `upgrade head` -> `check`
-- exits 0; models v2 -> `revision --autogenerate` -> `upgrade head` -> `check` exits 0 ->
-- `downgrade -1` -> the inspector sees exactly the v1 schema again -> `upgrade head` -> the v2 schema.
-- The schema is read with luamig.inspect over the spec helpers' connections (spec/helpers/backend).
local autogen = require("luamig.autogen")
local inspect = require("luamig.inspect")
local metadata = require("luamig.metadata")
local backend = require("spec.helpers.backend")
local cli = require("spec.helpers.cli")

------------------------------------------------------------------------------------------------
-- Helpers
------------------------------------------------------------------------------------------------

-- The host's raw connection calls (prepare/bind/step/close, exec) over a test database's query().
local function raw_of(db)
  local raw = {}
  function raw.prepare(_, sql)
    local st = {}
    function st:bind(params) self.params, self.rows = params, nil end
    function st:step()
      if not self.rows then
        self.rows, self.i = db.query(sql, self.params or { n = 0 }), 0
      end
      self.i = self.i + 1
      return self.rows[self.i]
    end
    function st.close() end
    return st
  end
  function raw.exec(_, sql, params)
    db.query(sql, params or { n = 0 })
    return 0
  end
  return raw
end

local tmpdir = os.tmpname()
os.remove(tmpdir)
os.execute("mkdir -p " .. tmpdir)

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local model_count = 0
local function models_file(text)
  model_count = model_count + 1
  local path = string.format("%s/models_%d.lua", tmpdir, model_count)
  write(path, text)
  return path
end

local function run_autogen(db, text, config)
  return autogen.run({ dialect = db.name, raw = raw_of(db), config = config or {}, models = models_file(text),
                       version_table = "luamig_version" })
end

-- The whole schema as the inspector sees it, as text (columns sorted by name: a column dropped and
-- added again comes back last).
local function dump(v, indent)
  indent = indent or ""
  if type(v) ~= "table" then return type(v) == "string" and string.format("%q", v) or tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = indent .. "  " .. tostring(k) .. " = " .. dump(v[k], indent .. "  ") end
  return "{\n" .. table.concat(parts, "\n") .. "\n" .. indent .. "}"
end

local function by_name(list)
  local out = {}
  for _, x in ipairs(list) do out[x.name or ("?" .. #out)] = x end
  return out
end

local function snapshot(db)
  local insp = inspect.new(raw_of(db), db.name)
  local s = {}
  for _, t in ipairs(insp.table_names()) do
    if t ~= "luamig_version" then
      local fks = {}
      for _, fk in ipairs(insp.foreign_keys(t)) do
        fks[#fks + 1] = table.concat(fk.constrained_columns, ",") .. "->" .. fk.referred_table .. "("
          .. table.concat(fk.referred_columns, ",") .. ") " .. tostring(fk.name) .. " " .. tostring(fk.options.ondelete)
          .. " " .. tostring(fk.options.onupdate)
      end
      table.sort(fks)
      local uqs = {}
      for _, u in ipairs(insp.unique_constraints(t)) do
        uqs[#uqs + 1] = tostring(u.name) .. "(" .. table.concat(u.column_names, ",") .. ")"
      end
      table.sort(uqs)
      local cks = {}
      for _, c in ipairs(insp.check_constraints(t)) do cks[#cks + 1] = tostring(c.name) .. ":" .. tostring(c.sqltext) end
      table.sort(cks)
      s[t] = { columns = by_name(insp.columns(t)), indexes = by_name(insp.indexes(t)), fks = fks, uniques = uqs,
               checks = cks, pk = insp.pk_constraint(t), comment = insp.table_comment(t) }
    end
  end
  return dump(s)
end

local function contains_all(list, expected)
  local text = table.concat(list, "\n")
  for _, e in ipairs(expected) do
    assert(text:find(e, 1, true), "expected a diff line containing " .. e .. " in:\n" .. text)
  end
end

------------------------------------------------------------------------------------------------
-- Models used by the round trip
------------------------------------------------------------------------------------------------

local NC = [[
local md = sa.MetaData({ naming_convention = {
  ix = "ix_%(column_0_label)s", uq = "uq_%(table_name)s_%(column_0_name)s",
  fk = "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s", ck = "ck_%(table_name)s_%(constraint_name)s" } })
]]

local V1 = NC .. [[
sa.Table("users", md,
  sa.Column("id", sa.Integer, { primary_key = true }),
  sa.Column("email", sa.String(120), { nullable = false, unique = true }),
  sa.Column("name", sa.String(50)),
  sa.Column("status", sa.String(20), { nullable = false, server_default = "active" }),
  sa.Column("score", sa.Integer, { server_default = "0" }),
  sa.Column("created_at", sa.DateTime, { server_default = sa.func.now() }),
  sa.Column("legacy", sa.Text),
  { comment = "people" })
sa.Table("posts", md,
  sa.Column("id", sa.Integer, { primary_key = true }),
  sa.Column("user_id", sa.Integer, { sa.ForeignKey("users.id", { ondelete = "CASCADE" }), nullable = false, index = true }),
  sa.Column("title", sa.String(200), { nullable = false }),
  sa.Column("body", sa.Text),
  sa.CheckConstraint("length(title) > 0", { name = "title_not_empty" }),
  sa.Index("ix_posts_title_lower", sa.text("lower(title)")))
sa.Table("old_tags", md,
  sa.Column("id", sa.Integer, { primary_key = true }),
  sa.Column("label", sa.String(30)))
return md
]]

-- Scenarios: each a change of models v1 (a text edit), the diff lines it must produce.
local scenarios = {
  {
    name = "a table added (foreign keys, unique, partial index, check) and one removed",
    edit = function(s)
      s = s:gsub('sa%.Table%("old_tags".-\n  sa%.Column%("label", sa%.String%(30%)%)%)\n', "")
      return s:gsub("return md", [[
sa.Table("comments", md,
  sa.Column("id", sa.Integer, { primary_key = true }),
  sa.Column("post_id", sa.Integer, { sa.ForeignKey("posts.id", { ondelete = "CASCADE" }), nullable = false }),
  sa.Column("author_id", sa.Integer, { sa.ForeignKey("users.id") }),
  sa.Column("body", sa.Text, { nullable = false }),
  sa.Column("visible", sa.Boolean, { nullable = false, server_default = sa.true_() }),
  sa.Column("rating", sa.Numeric(5, 2)),
  sa.UniqueConstraint("post_id", "author_id"),
  sa.CheckConstraint("rating >= 0", { name = "rating_positive" }),
  sa.Index("ix_comments_visible", "post_id", { sqlite_where = sa.text("visible = 1"), postgresql_where = sa.text("visible") }))
return md]])
    end,
    diffs = { "add_table 'comments'", "remove_table 'old_tags'" },
  },
  {
    name = "columns added and removed (a rename is pointed out)",
    edit = function(s)
      s = s:gsub('  sa%.Column%("legacy", sa%.Text%),\n', '  sa.Column("notes", sa.Text),\n'
        .. '  sa.Column("phone", sa.String(20)),\n'
        .. '  sa.Column("verified", sa.Boolean, { nullable = false, server_default = sa.false_() }),\n')
      return s
    end,
    diffs = { "add_column 'users.notes'", "add_column 'users.phone'", "add_column 'users.verified'",
              "remove_column 'users.legacy'" },
    upgrade_has = { "-- review: 'users.legacy' dropped and 'users.notes' added share type TEXT" },
  },
  {
    name = "a column with a foreign key and an index added, another removed",
    edit = function(s)
      s = s:gsub('  sa%.Column%("body", sa%.Text%),\n',
        '  sa.Column("editor_id", sa.Integer, { sa.ForeignKey("users.id", { ondelete = "SET NULL" }), index = true }),\n')
      return s
    end,
    diffs = { "add_column 'posts.editor_id'", "remove_column 'posts.body'", "add_foreign_key", "add_index 'ix_posts_editor_id'" },
  },
  {
    name = "nullability, type and server default changes",
    edit = function(s)
      s = s:gsub('sa%.Column%("name", sa%.String%(50%)%)', 'sa.Column("name", sa.String(100), { nullable = false, server_default = "anon" })')
      s = s:gsub('server_default = "active"', 'server_default = "enabled"')
      s = s:gsub('sa%.Column%("score", sa%.Integer, { server_default = "0" }%)', 'sa.Column("score", sa.BigInteger)')
      s = s:gsub('sa%.Column%("email", sa%.String%(120%), { nullable = false', 'sa.Column("email", sa.String(120), { nullable = true')
      return s
    end,
    diffs = { "modify_type 'users.name'", "modify_nullable 'users.name': true -> false", "modify_default 'users.name'",
              "modify_default 'users.status'", "modify_type 'users.score'", "modify_default 'users.score'",
              "modify_nullable 'users.email': false -> true" },
  },
  {
    name = "indexes and unique constraints added and removed",
    edit = function(s)
      s = s:gsub(', nullable = false, index = true }', ', nullable = false }')
      s = s:gsub('sa%.Index%("ix_posts_title_lower", sa%.text%("lower%(title%)"%)%)',
        'sa.Index("ix_posts_title", "title", { unique = true }), sa.UniqueConstraint("user_id", "body")')
      s = s:gsub('{ nullable = false, unique = true }', '{ nullable = false }')
      return s
    end,
    diffs = { "remove_index 'ix_posts_user_id'", "remove_index 'ix_posts_title_lower'", "add_index 'ix_posts_title'",
              "add_unique_constraint 'uq_posts_user_id' on 'posts' (user_id, body)",
              "remove_unique_constraint 'uq_users_email' on 'users' (email)" },
  },
  {
    name = "foreign keys and check constraints added and removed",
    edit = function(s)
      s = s:gsub('sa%.ForeignKey%("users%.id", { ondelete = "CASCADE" }%)', 'sa.ForeignKey("users.id")')
      s = s:gsub('sa%.CheckConstraint%("length%(title%) > 0", { name = "title_not_empty" }%)',
                 'sa.CheckConstraint("length(title) < 500", { name = "title_short" })')
      s = s:gsub('sa%.Column%("label", sa%.String%(30%)%)',
                 'sa.Column("label", sa.String(30)), sa.Column("owner_id", sa.Integer), sa.ForeignKeyConstraint({ "owner_id" }, { "users.id" }, { ondelete = "CASCADE" })')
      return s
    end,
    diffs = { "remove_foreign_key", "add_foreign_key 'fk_posts_user_id_users' on 'posts' (user_id) -> 'users' (id)",
              "remove_check_constraint 'ck_posts_title_not_empty'", "add_check_constraint 'ck_posts_title_short'",
              "add_column 'old_tags.owner_id'" },
  },
  {
    name = "unnamed constraints dropped (no naming convention in the models)",
    v1 = [[
local md = sa.MetaData()
sa.Table("a", md, sa.Column("id", sa.Integer, { primary_key = true }),
  sa.Column("code", sa.String(10), { unique = true }), sa.Column("note", sa.Text))
sa.Table("b", md, sa.Column("id", sa.Integer, { primary_key = true }),
  sa.Column("a_id", sa.Integer, { sa.ForeignKey("a.id") }),
  sa.Column("extra", sa.Integer, { sa.ForeignKey("a.id", { ondelete = "CASCADE" }) }),
  sa.CheckConstraint("extra > 0"))
return md]],
    v2 = [[
local md = sa.MetaData()
sa.Table("a", md, sa.Column("id", sa.Integer, { primary_key = true }),
  sa.Column("code", sa.String(10)), sa.Column("note", sa.Text, { unique = true }))
sa.Table("b", md, sa.Column("id", sa.Integer, { primary_key = true }),
  sa.Column("a_id", sa.Integer))
return md]],
    diffs = { "remove_unique_constraint", "on 'a' (code)", "add_unique_constraint", "on 'a' (note)",
              "remove_foreign_key", "on 'b' (a_id) -> 'a' (id)", "remove_column 'b.extra'" },
  },
  {
    name = "columns dropped with their unnamed UNIQUE and CHECK come back with them",
    v1 = [[
local md = sa.MetaData()
sa.Table("x", md, sa.Column("id", sa.Integer, { primary_key = true }),
  sa.Column("a", sa.String(10), { unique = true }), sa.Column("b", sa.Integer), sa.CheckConstraint("b > 0"))
return md]],
    v2 = [[
local md = sa.MetaData()
sa.Table("x", md, sa.Column("id", sa.Integer, { primary_key = true }))
return md]],
    diffs = { "remove_column 'x.a'", "remove_column 'x.b'", "remove_unique_constraint" },
  },
}

local pg_only = {
  {
    name = "table and column comments",
    edit = function(s)
      s = s:gsub('{ comment = "people" }', '{ comment = "users of the app" }')
      s = s:gsub('sa%.Column%("legacy", sa%.Text%)', 'sa.Column("legacy", sa.Text, { comment = "to be removed" })')
      s = s:gsub('sa%.Column%("label", sa%.String%(30%)%)%)', 'sa.Column("label", sa.String(30)), { comment = "tags" })')
      return s
    end,
    diffs = { "modify_table_comment 'users'", "modify_comment 'users.legacy'", "add_table_comment 'old_tags'" },
  },
  {
    name = "unnamed constraints get PostgreSQL's names back on downgrade",
    v1 = [[
local md = sa.MetaData()
sa.Table("a", md, sa.Column("id", sa.Integer, { primary_key = true }), sa.Column("code", sa.String(10)))
sa.Table("b", md, sa.Column("id", sa.Integer, { primary_key = true }), sa.Column("a_id", sa.Integer))
return md]],
    v2 = [[
local md = sa.MetaData()
sa.Table("a", md, sa.Column("id", sa.Integer, { primary_key = true }), sa.Column("code", sa.String(10), { unique = true }))
sa.Table("b", md, sa.Column("id", sa.Integer, { primary_key = true }), sa.Column("a_id", sa.Integer, { sa.ForeignKey("a.id") }))
return md]],
    diffs = { "add_unique_constraint on 'a' (code)", "add_foreign_key on 'b' (a_id) -> 'a' (id)" },
  },
  {
    name = "enum types come and go with their table or column",
    v1 = [[
local md = sa.MetaData()
sa.Table("tickets", md, sa.Column("id", sa.Integer, { primary_key = true }))
return md]],
    v2 = [[
local md = sa.MetaData()
sa.Table("tickets", md, sa.Column("id", sa.Integer, { primary_key = true }),
  sa.Column("state", sa.Enum("open", "closed", { name = "ticket_state" }), { nullable = false, server_default = "open" }))
sa.Table("labels", md, sa.Column("id", sa.Integer, { primary_key = true }),
  sa.Column("kind", sa.Enum("bug", "idea", { name = "label_kind" })))
return md]],
    diffs = { "add_table 'labels'", "add_column 'tickets.state'" },
    upgrade_has = { [[op.execute("CREATE TYPE ticket_state AS ENUM ('open', 'closed')")]] },
  },
}

------------------------------------------------------------------------------------------------
-- The round trip through the binary
------------------------------------------------------------------------------------------------

local function luamig(db, dir, args, code)
  local r = db.run(dir, args)
  if code and r.code ~= code then
    error(string.format("luamig %s exited %d, not %d\nstdout: %s\nstderr: %s", table.concat(args, " "), r.code,
                        code, r.stdout, r.stderr), 2)
  end
  return r
end

local function has_batch()
  local ok, op = pcall(require, "luamig.op")
  return ok and type(op.batch_alter_table) == "function"
end

for _, name in ipairs(backend.names()) do
  describe("autogenerate round trip through the binary on " .. name, function()
    local db, dir
    before_each(function()
      db = backend.open(name)
      dir = cli.project()
    end)
    after_each(function()
      db.drop()
      cli.rmtree(dir)
    end)

    -- Writes models.lua, autogenerates a revision; returns its text and the run's stderr.
    local function autogenerate(text, message)
      cli.write(dir .. "/models.lua", text)
      local r = luamig(db, dir, { "revision", "--autogenerate", "-m", message }, 0)
      local path = r.stdout:match("([^\n]+%.lua)")
      assert(path, "no revision path in: " .. r.stdout)
      if path:sub(1, 1) ~= "/" then path = dir .. "/" .. path end
      return cli.read(path), r.stderr
    end

    local function round_trip(sc)
      local v1 = sc.v1 or V1
      local v2 = sc.v2 or sc.edit(V1)
      assert.are_not.equal(v1, v2, "the scenario's edit changed nothing")
      autogenerate(v1, "v1")
      luamig(db, dir, { "upgrade", "head" }, 0)
      local r = luamig(db, dir, { "check" }, 0)
      assert.are.equal("No new upgrade operations detected.\n", r.stdout)
      local before = snapshot(db)

      -- the comparison is stable: the same inputs give the same text
      local a, b = run_autogen(db, v2), run_autogen(db, v2)
      assert.are.equal(a.upgrades, b.upgrades)
      assert.are.equal(a.downgrades, b.downgrades)
      if (a.upgrades .. a.downgrades):find("op.batch_alter_table", 1, true) and not has_batch() then
        pending("op.batch_alter_table is not there yet")
        return
      end

      local text, stderr = autogenerate(v2, "v2")
      if os.getenv("AUTOGEN_SPEC_SHOW") then io.stderr:write("\n== ", sc.name or "", "\n", stderr, text, "\n") end
      contains_all({ stderr }, sc.diffs)
      for _, want in ipairs(sc.upgrade_has or {}) do
        assert(text:find(want, 1, true), "the revision lacks " .. want .. ":\n" .. text)
      end
      luamig(db, dir, { "upgrade", "head" }, 0)
      r = luamig(db, dir, { "check" })
      assert.are.equal(0, r.code, "differences left after the upgrade:\n" .. r.stdout .. "\n" .. text)
      local upgraded = snapshot(db)

      luamig(db, dir, { "downgrade", "-1" }, 0)
      assert.are.equal(before, snapshot(db), "the downgrade did not restore v1:\n" .. text)
      r = luamig(db, dir, { "check" }, 1)
      assert.truthy(r.stderr:find("Target database is not up to date.", 1, true), r.stderr)
      luamig(db, dir, { "upgrade", "head" }, 0)
      assert.are.equal(upgraded, snapshot(db))
      luamig(db, dir, { "downgrade", "base" }, 0)
      assert.are.same({ "luamig_version" }, db.tables())
    end

    for _, sc in ipairs(scenarios) do
      it(sc.name, function() round_trip(sc) end)
    end
    if name == "postgresql" then
      for _, sc in ipairs(pg_only) do
        it(sc.name, function() round_trip(sc) end)
      end
    end

    it("all changes at once", function()
      local v2 = V1
      for _, sc in ipairs(scenarios) do
        if sc.edit and sc.name ~= "indexes and unique constraints added and removed" then v2 = sc.edit(v2) end
      end
      round_trip({ v1 = V1, v2 = v2, diffs = { "add_table 'comments'", "remove_column 'users.legacy'" } })
    end)

    it("ignores the version table, excluded tables and equivalent defaults and types", function()
      db.exec("CREATE TABLE luamig_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
      db.exec("CREATE TABLE spatial_ref_sys (id INTEGER PRIMARY KEY)")
      db.exec("CREATE TABLE t (id INTEGER NOT NULL, a VARCHAR(10) DEFAULT '0', b INTEGER DEFAULT (0), "
        .. "c VARCHAR(5) DEFAULT 'x', d " .. db.pick({ sqlite = "DATETIME", postgresql = "TIMESTAMP" })
        .. " DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (id))")
      local models = [[
local md = sa.MetaData()
sa.Table("t", md, sa.Column("id", sa.Integer, { primary_key = true, autoincrement = false }),
  sa.Column("a", sa.String(10), { server_default = sa.text("0") }),
  sa.Column("b", sa.Integer, { server_default = "0" }),
  sa.Column("c", sa.VARCHAR(5), { server_default = sa.text("'x'") }),
  sa.Column("d", sa.DateTime, { server_default = sa.func.now() }))
return md]]
      local r = run_autogen(db, models, { exclude = { "spatial_ref_sys" } })
      assert.are.same({}, r.diffs)
      r = run_autogen(db, models)
      assert.are.same({ "remove_table 'spatial_ref_sys'" }, r.diffs)
    end)

    it("finds nothing to do on the example project's database at head (models.lua at the root)", function()
      local src = os.getenv("LUAMIG_SOURCE_DIR") or "."
      cli.sh(string.format("cp -r %s/luamig.lua %s/models.lua %s/migrations %s/", src, src, src, dir))
      cli.sh(string.format("rm -f %s/migrations/versions/*.lua && cp %s/migrations/versions/*.lua %s/migrations/versions/",
                           dir, src, dir))
      luamig(db, dir, { "upgrade", "head" }, 0)
      local r = luamig(db, dir, { "check" }, 0)
      assert.are.equal("No new upgrade operations detected.\n", r.stdout)
      r = luamig(db, dir, { "check", "--json" }, 0)
      assert.are.equal('{"differences": []}\n', r.stdout)
    end)

    it("inspects tables in SQLAlchemy's shapes (conn:inspect())", function()
      for stmt in ([[
        CREATE TABLE parent (id INTEGER NOT NULL, code VARCHAR(10) NOT NULL, PRIMARY KEY (id),
          CONSTRAINT uq_parent_code UNIQUE (code));
        CREATE TABLE child (id INTEGER NOT NULL, parent_id INTEGER, name VARCHAR(120) DEFAULT 'x',
          score NUMERIC(10, 2), CONSTRAINT pk_child PRIMARY KEY (id),
          CONSTRAINT fk_child_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE,
          CONSTRAINT ck_score CHECK (score >= 0));
        CREATE INDEX ix_child_name ON child (name) WHERE name IS NOT NULL;
        CREATE UNIQUE INDEX ix_child_lower ON child (lower(name))]]):gmatch("[^;]+") do
        db.exec(stmt)
      end
      local insp = inspect.new(raw_of(db), name)
      assert.are.same({ "child", "parent" }, insp:table_names())
      assert.is_true(insp:has_table("child"))
      assert.is_false(insp.has_table("nope"))
      assert.are.same({
        { name = "id", type = "INTEGER", nullable = false, primary_key = 1, autoincrement = db.pick({ sqlite = true, postgresql = false }) },
        { name = "parent_id", type = "INTEGER", nullable = true, primary_key = 0, autoincrement = false },
        { name = "name", type = "VARCHAR(120)", nullable = true, primary_key = 0, autoincrement = false,
          default = db.pick({ sqlite = "'x'", postgresql = "'x'::character varying" }) },
        { name = "score", type = "NUMERIC(10, 2)", nullable = true, primary_key = 0, autoincrement = false },
      }, insp:columns("child"))
      assert.are.same({ name = "pk_child", constrained_columns = { "id" } }, insp:pk_constraint("child"))
      assert.are.same({ { name = "fk_child_parent", constrained_columns = { "parent_id" }, referred_table = "parent",
                          referred_columns = { "id" }, options = { ondelete = "CASCADE" } } }, insp:foreign_keys("child"))
      assert.are.same({ { name = "uq_parent_code", column_names = { "code" } } }, insp:unique_constraints("parent"))
      assert.are.same({ { name = "ck_score", sqltext = db.pick({ sqlite = "score >= 0", postgresql = "score >= 0::numeric" }) } },
                      insp:check_constraints("child"))
      assert.are.same({
        { name = "ix_child_lower", column_names = { false }, expressions = { "lower(name)" }, unique = true,
          dialect_options = {} },
        { name = "ix_child_name", column_names = { "name" }, expressions = { "name" }, unique = false,
          dialect_options = db.pick({ sqlite = { sqlite_where = "name IS NOT NULL" },
                                      postgresql = { postgresql_where = "(name IS NOT NULL)" } }) },
      }, (function()
        local out = insp:indexes("child")
        if name == "postgresql" then out[1].expressions[1] = out[1].expressions[1]:gsub("::text", "") end
        return out
      end)())
      assert.are.same({ text = nil }, insp:table_comment("child"))
      assert.has_error(function() insp:columns("nope") end, "inspect: no table 'nope'")
    end)

    it("reports models.lua errors at their line, and a missing models.lua", function()
      cli.write(dir .. "/models.lua", "local md = sa.MetaData()\nsa.Table(\"t\", md,\n  sa.Column(\"id\"))\nreturn md\n")
      local r = luamig(db, dir, { "check" }, 1)
      assert.are.equal("luamig: error: models.lua:3: sa.Column: column 'id' needs a type (argument 2)\n", r.stderr)
      os.remove(dir .. "/models.lua")
      r = luamig(db, dir, { "check" }, 1)
      assert.truthy(r.stderr:find("no models file '[^']*models%.lua': autogenerate and check compare it with the database"),
                    r.stderr)
    end)
  end)
end

------------------------------------------------------------------------------------------------
-- Without a database
------------------------------------------------------------------------------------------------

-- An inspector over fixed answers.
local function fake_inspector(tables)
  local insp = {}
  local function t(name) return tables[name] or error("no table " .. name) end
  function insp.table_names()
    local names = {}
    for n in pairs(tables) do names[#names + 1] = n end
    table.sort(names)
    return names
  end
  function insp.columns(n) return t(n).columns end
  function insp.pk_constraint(n) return t(n).pk or { constrained_columns = {} } end
  function insp.unique_constraints(n) return t(n).uniques or {} end
  function insp.indexes(n) return t(n).indexes or {} end
  function insp.foreign_keys(n) return t(n).fks or {} end
  function insp.check_constraints(n) return t(n).checks or {} end
  function insp.table_comment(n) return { text = t(n).comment } end
  function insp.table_sql() return nil end
  return insp
end

local function load_models(text)
  return metadata.load(models_file(text))
end

describe("autogen without a database", function()
  it("normalises server defaults: '0', 0 and (0) are one, and so are now() and CURRENT_TIMESTAMP", function()
    local c = autogen.canon_default
    assert.are.equal(c("'0'"), c("0"))
    assert.are.equal(c("0"), c("(0)"))
    assert.are.equal(c("(0)"), c("'0'::integer"))
    assert.are.equal(c("now()"), c("CURRENT_TIMESTAMP"))
    assert.are.equal(c("(CURRENT_TIMESTAMP)"), c("current_timestamp()"))
    assert.are.equal(c("'applied'"), c("'applied'::character varying"))
    assert.are.equal(c("true"), c("(1)"))
    assert.are_not.equal(c("'a'"), c("'b'"))
    assert.is_nil(c(nil))
    assert.is_nil(c("NULL"))
  end)

  it("compares types per dialect", function()
    local t = autogen.canon_type
    assert.are.equal(t("sqlite", "INTEGER"), t("sqlite", "int"))
    assert.are.equal(t("sqlite", "VARCHAR(120)"), t("sqlite", "varchar(120)"))
    assert.are_not.equal(t("sqlite", "VARCHAR(120)"), t("sqlite", "VARCHAR(100)"))
    assert.are.equal(t("postgresql", "VARCHAR(120)"), t("postgresql", "CHARACTER VARYING(120)"))
    assert.are.equal(t("postgresql", "TIMESTAMP WITHOUT TIME ZONE"), t("postgresql", "TIMESTAMP"))
    assert.are.equal(t("postgresql", "FLOAT"), t("postgresql", "DOUBLE PRECISION"))
    assert.are.equal(t("postgresql", "NUMERIC(10, 2)"), t("postgresql", "NUMERIC(10,2)"))
    assert.are.equal(t("postgresql", "DECIMAL(10, 2)"), t("postgresql", "NUMERIC(10,2)"))
    assert.are_not.equal(t("postgresql", "INTEGER"), t("postgresql", "BIGINT"))
  end)

  it("reports a missing models file", function()
    local path = tmpdir .. "/none/models.lua"
    assert.has_error(function()
      autogen.run({ dialect = "sqlite", raw = {}, config = {}, models = path })
    end, "no models file '" .. path .. "': autogenerate and check compare it with the database")
  end)

  it("positions errors in models.lua at its line", function()
    local function load_error(text)
      local path = models_file(text)
      local ok, err = pcall(metadata.load, path)
      assert.is_false(ok)
      return path, err
    end
    local path, err = load_error('local md = sa.MetaData()\n\nsa.Table("t", md,\n  sa.Column("id"))\nreturn md\n')
    assert.are.equal(path .. ":4: sa.Column: column 'id' needs a type (argument 2)", err)
    path, err = load_error('local md = sa.MetaData()\nsa.Table("t", md, sa.Column("id", sa.Integer), sa.Index("ix", "nope"))\nreturn md\n')
    assert.are.equal(path .. ":2: sa.Table: table 't': index 'ix' names column 'nope', which the table does not have", err)
    path, err = load_error('local md = sa.MetaData()\nop.execute("x")\nreturn md\n')
    assert.are.equal(path .. ":2: attempt to index global 'op' (a nil value)", err)
    path, err = load_error('return 42\n')
    assert.are.equal(path .. ": models.lua must return its sa.MetaData (end it with `return md`), got a number", err)
    path, err = load_error('local md = sa.MetaData(\n')
    assert.truthy(err:find(path .. ":2:", 1, true))
  end)

  it("renders new tables with the op/sa API, parents first, and drops them children first", function()
    local md = load_models(NC .. [[
sa.Table("b", md, sa.Column("id", sa.Integer, { primary_key = true }),
  sa.Column("a_id", sa.Integer, { sa.ForeignKey("a.id", { ondelete = "CASCADE" }), nullable = false, index = true }),
  sa.Column("kind", sa.Enum("x", "y", { name = "kind" }), { server_default = "x", comment = "what" }))
sa.Table("a", md, sa.Column("id", sa.Integer, { primary_key = true }),
  sa.Column("email", sa.String(120), { nullable = false, unique = true }),
  sa.Column("created", sa.DateTime({ timezone = true }), { server_default = sa.func.now() }),
  { comment = "the a's" })
return md]])
    local r = autogen.compare(md, fake_inspector({}), { dialect = "postgresql", config = {} })
    assert.are.same({ "add_table 'a'", "add_table 'b'" }, r.diffs)
    assert.are.equal(table.concat({
      '  -- ### commands auto generated by luamig - please adjust! ###',
      '  op.create_table("a",',
      '    sa.Column("id", sa.Integer, { primary_key = true }),',
      '    sa.Column("email", sa.String(120), { nullable = false }),',
      '    sa.Column("created", sa.DateTime({ timezone = true }), { server_default = sa.func.now() }),',
      '    sa.UniqueConstraint("email", { name = op.f("uq_a_email") }),',
      '    { comment = "the a\'s" })',
      '  op.create_table("b",',
      '    sa.Column("id", sa.Integer, { primary_key = true }),',
      '    sa.Column("a_id", sa.Integer, { sa.ForeignKey("a.id", { name = op.f("fk_b_a_id_a"), ondelete = "CASCADE" }), nullable = false }),',
      '    sa.Column("kind", sa.Enum("x", "y", { name = "kind" }), { server_default = "x", comment = "what" }))',
      '  op.create_index(op.f("ix_b_a_id"), "b", { "a_id" })',
      '  -- ### end luamig commands ###' }, "\n"), r.upgrades)
    assert.are.equal(table.concat({
      '  -- ### commands auto generated by luamig - please adjust! ###',
      '  op.drop_table("b")',
      '  op.execute("DROP TYPE kind")',
      '  op.drop_table("a")',
      '  -- ### end luamig commands ###' }, "\n"), r.downgrades)
  end)

  it("puts SQLite changes that need a rebuild in one batch block per table", function()
    local md = load_models([[
local md = sa.MetaData()
sa.Table("users", md, sa.Column("id", sa.Integer, { primary_key = true }),
  sa.Column("email", sa.String(200), { nullable = false }),
  sa.Column("phone", sa.String(20)))
sa.Table("notes", md, sa.Column("id", sa.Integer, { primary_key = true }), sa.Column("body", sa.Text),
  sa.Index("ix_notes_body", "body"))
return md]])
    local insp = fake_inspector({
      users = { columns = {
        { name = "id", type = "INTEGER", nullable = false, primary_key = 1 },
        { name = "email", type = "VARCHAR(120)", nullable = true, primary_key = 0 },
        { name = "phone", type = "VARCHAR(20)", nullable = true, primary_key = 0 } },
        pk = { constrained_columns = { "id" } } },
      notes = { columns = {
        { name = "id", type = "INTEGER", nullable = false, primary_key = 1 },
        { name = "body", type = "TEXT", nullable = true, primary_key = 0 } },
        pk = { constrained_columns = { "id" } } },
    })
    local r = autogen.compare(md, insp, { dialect = "sqlite", config = {} })
    assert.are.same({ "add_index 'ix_notes_body' on 'notes' (body)",
                      "modify_type 'users.email': VARCHAR(120) -> VARCHAR(200)",
                      "modify_nullable 'users.email': true -> false" }, r.diffs)
    assert.are.equal(table.concat({
      '  -- ### commands auto generated by luamig - please adjust! ###',
      '  op.create_index("ix_notes_body", "notes", { "body" })',
      '  op.batch_alter_table("users", function(batch)',
      '    -- review: \'users.email\' becomes NOT NULL: rows holding NULL there must be updated first',
      '    batch.alter_column("email", { existing_type = sa.VARCHAR(120), type = sa.String(200), nullable = false })',
      '  end)',
      '  -- ### end luamig commands ###' }, "\n"), r.upgrades)
    assert.are.equal(table.concat({
      '  -- ### commands auto generated by luamig - please adjust! ###',
      '  op.batch_alter_table("users", function(batch)',
      '    batch.alter_column("email", { existing_type = sa.String(200), type = sa.VARCHAR(120), nullable = true })',
      '  end)',
      '  op.drop_index("ix_notes_body", { table_name = "notes" })',
      '  -- ### end luamig commands ###' }, "\n"), r.downgrades)
    r = autogen.compare(md, insp, { dialect = "sqlite", config = { render_as_batch = false } })
    assert.truthy(r.upgrades:find('\n  op.alter_column("users", "email", {', 1, true))
  end)
end)

teardown(function() os.execute("rm -rf '" .. tmpdir .. "'") end)
