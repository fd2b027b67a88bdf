-- op.batch_alter_table and render_as_batch, driving the real binary on real SQLite files: the
-- schema after each batch is read back with PRAGMAs and sqlite_master, and every row must survive,
-- the child rows of foreign keys with ON DELETE CASCADE too. Failing batches must say what they
-- cannot keep and leave the database as it was. One PostgreSQL check when LUAMIG_TEST_PG_URL is set.
local cli = require("spec.helpers.cli")
local db = require("spec.helpers.sqlite")
local backend = require("spec.helpers.backend")
local list = require("spec.helpers.list")
local names = list.names

-- The schema every SQLite test starts from: a table with rows, indexes (plain, partial, expression),
-- named and unnamed CHECKs, a named UNIQUE, foreign keys out (teams, itself) and in (posts, with ON
-- DELETE CASCADE), a trigger, and views over it.
local FIXTURE = {
  [[CREATE TABLE teams (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)]],
  [[CREATE TABLE users (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      email VARCHAR(120) NOT NULL,
      name TEXT COLLATE NOCASE,
      age TEXT,
      nickname TEXT,
      bio TEXT,
      status TEXT DEFAULT 'new',
      team_id INTEGER REFERENCES teams (id) ON DELETE SET NULL,
      manager_id INTEGER REFERENCES users (id) ON DELETE CASCADE,
      score INTEGER DEFAULT 0 CONSTRAINT ck_users_score CHECK (score >= 0),
      CHECK (length(email) > 3),
      CONSTRAINT uq_users_email UNIQUE (email)
    )]],
  [[CREATE INDEX ix_users_name ON users (name)]],
  [[CREATE INDEX ix_users_active ON users (team_id) WHERE score > 0]],
  [[CREATE INDEX ix_users_lower_email ON users (lower(email))]],
  [[CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      title TEXT)]],
  [[CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT)]],
  [[CREATE TABLE invites (email TEXT REFERENCES users (email))]],
  [[CREATE TRIGGER users_audit AFTER UPDATE OF email ON users
      BEGIN INSERT INTO audit (what) VALUES (new.email || ' ' || coalesce(new.status, '')); END]],
  [[CREATE VIEW user_emails AS SELECT id, email, bio FROM users]],
  [[CREATE VIEW post_titles AS SELECT title FROM posts]],
  [[INSERT INTO teams VALUES (1, 'red'), (2, 'blue')]],
  [[INSERT INTO users (id, email, name, age, nickname, bio, team_id, manager_id, score) VALUES
      (1, 'ann@x.io', 'Ann', '41', 'annie', 'boss', 1, NULL, 5),
      (2, 'bob@x.io', 'Bob', '33', NULL, NULL, 1, 1, 0),
      (3, 'cy@x.io', 'Cy', '27', 'cy', NULL, 2, 1, 3),
      (7, 'dee@x.io', 'Dee', '19', NULL, NULL, NULL, 3, 1)]],
  [[DELETE FROM users WHERE id = 7]], -- AUTOINCREMENT remembers 7: the next id is 8
  [[INSERT INTO users (id, email, name, age, team_id, manager_id) VALUES (4, 'eve@x.io', 'Eve', '55', 2, 3)]],
  [[INSERT INTO posts VALUES (1, 1, 'hello'), (2, 1, 'again'), (3, 2, NULL), (4, 4, 'eve')]],
  [[INSERT INTO invites VALUES ('bob@x.io')]],
}

local function lua_string(s)
  return "[==[" .. s .. "]==]"
end

local function fixture_revision(dir)
  local lines = {}
  for _, sql in ipairs(FIXTURE) do lines[#lines + 1] = "  op.execute(" .. lua_string(sql) .. ")" end
  cli.revision(dir, "001_fixture", { revision = "aaa001", message = "fixture", upgrade = table.concat(lines, "\n") })
end

local function batch_revision(dir, body, extra)
  cli.revision(dir, "002_batch", { revision = "bbb002", down_revision = "aaa001", message = "batch",
                                   upgrade = body })
  if extra then cli.write(dir .. "/luamig.lua", extra) end
end

-- Everything in the database: its schema and every row of every table, in a stable order.
local function snapshot(path)
  local out = { schema = db.query(path, "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name") }
  for _, t in ipairs(db.tables(path)) do
    out[t] = db.query(path, "SELECT * FROM " .. t .. " ORDER BY rowid")
  end
  out.seq = db.query(path, "SELECT * FROM sqlite_sequence ORDER BY name")
  return out
end

local function sql_of(path, name)
  return (db.query(path, "SELECT sql FROM sqlite_master WHERE name = ?", { name })[1] or {}).sql
end

describe("batch mode on sqlite", function()
  local dir, path, before

  before_each(function()
    dir = cli.project()
    path = dir .. "/data/app.db"
    fixture_revision(dir)
    local r = cli.run(dir, { "upgrade", "aaa001" })
    assert.are.equal(0, r.code, r.stderr)
    before = snapshot(path)
  end)

  after_each(function() cli.rmtree(dir) end)

  local function upgrade(body, extra)
    batch_revision(dir, body, extra)
    return cli.run(dir, { "upgrade", "head" })
  end

  local function ok(body, extra)
    local r = upgrade(body, extra)
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({ { version_num = "bbb002" } }, db.query(path, "SELECT version_num FROM luamig_version"))
  end

  -- A failing batch: exit 1, its message, and nothing changed.
  local function fails(body, message, extra)
    local r = upgrade(body, extra)
    assert.are.equal(1, r.code, r.stderr)
    assert.are.equal("luamig: error: " .. message .. " (upgrade bbb002)\n", r.stderr:gsub("^Running[^\n]*\n", ""))
    assert.are.same(before, snapshot(path))
    assert.are.same({ { version_num = "aaa001" } }, db.query(path, "SELECT version_num FROM luamig_version"))
  end

  local function line(n)
    return "migrations/versions/002_batch.lua:" .. n .. ": "
  end

  -- Everything of the fixture the batches below do not touch, still there and still working.
  local function assert_kept(renamed)
    local name = renamed or "name"
    -- the trigger and the views, as they were
    if not renamed then
      for _, n in ipairs({ "users_audit", "user_emails", "post_titles" }) do
        local was
        for _, row in ipairs(before.schema) do if row.name == n then was = row.sql end end
        assert.are.equal(was, sql_of(path, n))
      end
    end
    -- rows: users, and the CASCADE children in posts
    assert.are.same({ 1, 2, 3, 4 }, names(db.query(path, "SELECT id FROM users ORDER BY id"), "id"))
    assert.are.same({ "ann@x.io", "bob@x.io", "cy@x.io", "eve@x.io" },
      names(db.query(path, "SELECT email FROM users ORDER BY id"), "email"))
    assert.are.same({ { id = 1, user_id = 1, title = "hello" }, { id = 2, user_id = 1, title = "again" },
                      { id = 3, user_id = 2 }, { id = 4, user_id = 4, title = "eve" } },
      db.query(path, "SELECT * FROM posts ORDER BY id"))
    assert.are.same({ {}, { manager_id = 1 }, { manager_id = 1 }, { manager_id = 3 } },
      db.query(path, "SELECT manager_id FROM users ORDER BY id"))
    -- indexes: plain, partial, expression, and the UNIQUE constraint's
    local ix = db.query(path, "SELECT name, \"unique\", origin, partial FROM pragma_index_list('users') ORDER BY name")
    assert.are.same({
      { name = "ix_users_active", unique = 0, origin = "c", partial = 1 },
      { name = "ix_users_lower_email", unique = 0, origin = "c", partial = 0 },
      { name = "ix_users_name", unique = 0, origin = "c", partial = 0 },
      { name = "sqlite_autoindex_users_1", unique = 1, origin = "u", partial = 0 },
    }, ix)
    assert.are.same({ { name = name } }, db.query(path, "SELECT name FROM pragma_index_info('ix_users_name')"))
    assert.are.same({ { cid = -2 } },
      db.query(path, "SELECT cid FROM pragma_index_xinfo('ix_users_lower_email') WHERE key = 1"))
    assert.are.equal("CREATE INDEX ix_users_active ON users (team_id) WHERE score > 0", sql_of(path, "ix_users_active"))
    -- CHECKs, named and unnamed, and the UNIQUE, by their text
    local t = sql_of(path, "users")
    assert.truthy(t:find("CONSTRAINT ck_users_score CHECK (score >= 0)", 1, true), t)
    assert.truthy(t:find("CHECK (length(email) > 3)", 1, true), t)
    assert.truthy(t:find("CONSTRAINT uq_users_email UNIQUE (email)", 1, true), t)
    assert.truthy(t:find(name .. " TEXT COLLATE NOCASE", 1, true), t)
    assert.truthy(t:find("PRIMARY KEY AUTOINCREMENT", 1, true), t)
    -- foreign keys out of users, and into it
    assert.are.same({
      { table = "users", from = "manager_id", to = "id", on_delete = "CASCADE" },
      { table = "teams", from = "team_id", to = "id", on_delete = "SET NULL" },
    }, db.query(path, "SELECT \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list('users') ORDER BY id"))
    assert.are.same({ { table = "users", from = "user_id", to = "id", on_delete = "CASCADE" } },
      db.query(path, "SELECT \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list('posts')"))
    assert.are.same({}, db.query(path, "PRAGMA foreign_key_check"))
    assert.are.same({ { integrity_check = "ok" } }, db.query(path, "PRAGMA integrity_check"))
    -- the AUTOINCREMENT counter still remembers 7
    assert.are.same({ { name = "users", seq = 7 } }, db.query(path, "SELECT * FROM sqlite_sequence"))
    -- the trigger fires, the views answer
    db.exec(path, "UPDATE users SET email = 'ann@y.io' WHERE id = 1")
    assert.are.same({ { what = "ann@y.io new" } }, db.query(path, "SELECT what FROM audit"))
    assert.are.equal(4, #db.query(path, "SELECT * FROM user_emails"))
    assert.are.equal(4, #db.query(path, "SELECT * FROM post_titles"))
    -- and foreign keys still act: deleting a user cascades to its posts and reports
    db.exec(path, "PRAGMA foreign_keys = ON; DELETE FROM users WHERE id = 4")
    assert.are.same({ 1, 2, 3 }, names(db.query(path, "SELECT id FROM posts ORDER BY id"), "id"))
  end

  it("changes a column's type, converting the values", function()
    ok([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.alter_column("age", { type = sa.Integer, existing_type = sa.Text })
  end)]])
    assert.are.same({ { type = "INTEGER" } }, db.query(path, "SELECT type FROM pragma_table_info('users') WHERE name = 'age'"))
    assert.are.same({ { age = 41, t = "integer" }, { age = 33, t = "integer" }, { age = 27, t = "integer" },
                      { age = 55, t = "integer" } },
      db.query(path, "SELECT age, typeof(age) AS t FROM users ORDER BY id"))
    assert_kept()
  end)

  it("drops a column", function()
    ok([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.drop_column("nickname")
  end)]])
    assert.are.same({ "id", "email", "name", "age", "bio", "status", "team_id", "manager_id", "score" },
      names(db.columns(path, "users")))
    assert_kept()
  end)

  it("renames columns, carrying the renames into indexes, views and triggers", function()
    ok([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.alter_column("name", { new_column_name = "full_name", nullable = false })
    batch_op.alter_column("bio", { new_column_name = "about" })
    batch_op.alter_column("status", { new_column_name = "state" })
  end)]])
    assert.are.same({ "id", "email", "full_name", "age", "nickname", "about", "state", "team_id", "manager_id", "score" },
      names(db.columns(path, "users")))
    assert.are.equal("CREATE VIEW user_emails AS SELECT id, email, about FROM users", sql_of(path, "user_emails"))
    assert.truthy(sql_of(path, "users_audit"):find("coalesce(new.state, '')", 1, true))
    assert.are.same({ { notnull = 1 } }, db.query(path, "SELECT \"notnull\" FROM pragma_table_info('users') WHERE name = 'full_name'"))
    assert.are.same({ "Ann", "Bob", "Cy", "Eve" }, names(db.query(path, "SELECT full_name FROM users ORDER BY id"), "full_name"))
    assert_kept("full_name")
  end)

  it("adds a column in the middle, existing rows taking its default", function()
    ok([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.add_column(sa.Column("phone", sa.String(20), { server_default = "none", nullable = false }),
                        { insert_after = "email" })
    batch_op.add_column(sa.Column("first", sa.Integer), { insert_before = "id" })
  end)]])
    assert.are.same({ "first", "id", "email", "phone", "name", "age", "nickname", "bio", "status", "team_id",
                      "manager_id", "score" }, names(db.columns(path, "users")))
    assert.are.same({ "none", "none", "none", "none" }, names(db.query(path, "SELECT phone FROM users ORDER BY id"), "phone"))
    assert_kept()
  end)

  it("changes nullability and defaults", function()
    ok([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.alter_column("email", { nullable = true })
    batch_op.alter_column("status", { server_default = sa.null })
    batch_op.alter_column("bio", { server_default = sa.text("'none'") })
  end)]])
    local cols = {}
    for _, c in ipairs(db.columns(path, "users")) do cols[c.name] = c end
    assert.are.equal(0, cols.email.notnull)
    assert.is_nil(cols.status.dflt_value)
    assert.are.equal("'none'", cols.bio.dflt_value)
    -- the trigger writes status, which no longer has a default: 'nil' shows as ''
    db.exec(path, "INSERT INTO users (email) VALUES ('zed@x.io')")
    assert.are.same({ { id = 8, bio = "none" } }, db.query(path, "SELECT id, bio FROM users WHERE email = 'zed@x.io'"))
    db.exec(path, "DELETE FROM users WHERE id = 8")
  end)

  it("adds and drops constraints, named and (with a naming convention) unnamed", function()
    ok([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.create_unique_constraint("uq_users_nickname", { "nickname" })
    batch_op.create_check_constraint("ck_users_age", "CAST(age AS INTEGER) > 0")
    batch_op.drop_constraint("ck_users_score", { type = "check" })
    batch_op.drop_constraint("fk_users_team_id_teams", { type = "foreignkey" })
    batch_op:create_foreign_key("fk_users_team", "teams", { "team_id" }, { "id" }, { ondelete = "CASCADE" })
  end, { naming_convention = { fk = "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s" } })]])
    local t = sql_of(path, "users")
    assert.truthy(t:find("CONSTRAINT uq_users_nickname UNIQUE (nickname)", 1, true), t)
    assert.truthy(t:find("CONSTRAINT ck_users_age CHECK (CAST(age AS INTEGER) > 0)", 1, true), t)
    assert.falsy(t:find("ck_users_score", 1, true), t)
    assert.truthy(t:find("CONSTRAINT fk_users_team FOREIGN KEY(team_id) REFERENCES teams (id) ON DELETE CASCADE", 1, true), t)
    -- the self-referencing foreign key was named by the convention and kept
    assert.truthy(t:find("CONSTRAINT fk_users_manager_id_users REFERENCES users (id) ON DELETE CASCADE", 1, true), t)
    assert.are.same({
      { table = "users", from = "manager_id", on_delete = "CASCADE" },
      { table = "teams", from = "team_id", on_delete = "CASCADE" },
    }, db.query(path, "SELECT \"table\", \"from\", on_delete FROM pragma_foreign_key_list('users') ORDER BY \"from\""))
    assert.are.equal(4, #db.query(path, "SELECT * FROM posts"))
    assert.are.same({}, db.query(path, "PRAGMA foreign_key_check"))
  end)

  it("runs plain op calls SQLite cannot do with ALTER TABLE as one-operation batches", function()
    ok([[
  op.alter_column("users", "age", { type = sa.Integer })
  op.create_unique_constraint("uq_users_name", "users", { "name" })
  op.create_check_constraint("ck_users_bio", "users", "bio <> ''")
  op.drop_constraint("ck_users_bio", "users", { type = "check" })
  op.create_foreign_key(nil, "posts", "users", { "id" }, { "id" })
  op.drop_column("users", "nickname")                       -- SQLite's own DROP COLUMN takes this one
  op.add_column("posts", sa.Column("slug", sa.String(20), { unique = true }))
  op.drop_column("posts", "slug")                           -- and refuses this one (UNIQUE): batch
  ]])
    local t = sql_of(path, "users")
    assert.truthy(t:find("CONSTRAINT uq_users_name UNIQUE (name)", 1, true), t)
    assert.falsy(t:find("ck_users_bio", 1, true), t)
    assert.are.same({ { type = "INTEGER" } }, db.query(path, "SELECT type FROM pragma_table_info('users') WHERE name = 'age'"))
    assert.are.same({ "id", "user_id", "title" }, names(db.columns(path, "posts")))
    assert.are.same({ { table = "users", from = "id" }, { table = "users", from = "user_id" } },
      db.query(path, "SELECT \"table\", \"from\" FROM pragma_foreign_key_list('posts') ORDER BY \"from\""))
    assert.are.equal(4, #db.query(path, "SELECT * FROM posts"))
    assert.are.equal(4, #db.query(path, "SELECT * FROM post_titles"))
    assert.are.same({}, db.query(path, "PRAGMA foreign_key_check"))
  end)

  it("rebuilds a table no other table refers to, keeping its view", function()
    ok([[
  op.batch_alter_table("posts", function(batch_op)
    batch_op.alter_column("title", { type = sa.String(200), server_default = "untitled" })
  end, { recreate = "always" })]])
    assert.are.equal("CREATE TABLE \"posts\" (\n    id INTEGER PRIMARY KEY,\n    user_id INTEGER NOT NULL REFERENCES users (id) "
      .. "ON DELETE CASCADE,\n    title VARCHAR(200) DEFAULT 'untitled'\n)", sql_of(path, "posts"))
    assert.are.equal(4, #db.query(path, "SELECT * FROM post_titles"))
    assert_kept()
  end)

  it("leaves alone the foreign key violations that were there before", function()
    db.exec(path, "INSERT INTO posts VALUES (5, 99, 'orphan')") -- foreign keys are off in this connection
    ok([[
  op.alter_column("users", "age", { type = sa.Integer })]])
    assert.are.same({ { table = "posts", rowid = 5, parent = "users", fkid = 0 } },
      db.query(path, "PRAGMA foreign_key_check"))
  end)

  it("keeps the rowids of a table without an INTEGER PRIMARY KEY", function()
    ok([[
  op.execute("CREATE TABLE tags (label TEXT NOT NULL)")
  op.execute("INSERT INTO tags (rowid, label) VALUES (10, 'a'), (20, 'b')")
  op.batch_alter_table("tags", function(batch_op)
    batch_op.add_column(sa.Column("n", sa.Integer), { insert_before = "label" })
  end)]])
    assert.are.same({ { rowid = 10, label = "a" }, { rowid = 20, label = "b" } },
      db.query(path, "SELECT rowid, label FROM tags ORDER BY rowid"))
  end)

  describe("fails, saying what it cannot keep, and changes nothing", function()
    it("an index on a dropped column", function()
      fails([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.drop_column("name")
  end)]], line(5) .. "op.batch_alter_table: dropping column 'name' of 'users' would lose index 'ix_users_name'; "
        .. "drop the index first")
    end)

    it("a partial index whose WHERE uses the column", function()
      fails([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.drop_column("score")
  end)]], line(5) .. "op.batch_alter_table: dropping column 'score' of 'users' would lose index 'ix_users_active'; "
        .. "drop the index first")
    end)

    it("an unnamed CHECK and a named UNIQUE", function()
      fails([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.drop_index("ix_users_lower_email")
    batch_op.drop_constraint("uq_users_email", { type = "unique" })
    batch_op.drop_column("email")
  end)]], line(5) .. "op.batch_alter_table: dropping column 'email' of 'users' would lose the unnamed constraint "
        .. "CHECK (length(email) > 3); name it with the batch's naming_convention option and drop it first")
      fails([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.drop_index("ix_users_lower_email")
    batch_op.drop_column("email")
  end)]], line(5) .. "op.batch_alter_table: dropping column 'email' of 'users' would lose unique constraint "
        .. "'uq_users_email'; drop the constraint first")
    end)

    it("the primary key and the foreign keys of other tables", function()
      fails([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.drop_column("id")
  end)]], line(5) .. "op.batch_alter_table: dropping column 'id' of 'users' would lose the primary key; "
        .. "drop the primary key first")
      fails([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.drop_constraint("pk", { type = "primary" })
    batch_op.drop_column("id")
  end)]], line(5) .. "op.batch_alter_table: dropping column 'id' of 'users' would lose the unnamed constraint "
        .. "REFERENCES users (id) ON DELETE CASCADE of column 'manager_id'; "
        .. "name it with the batch's naming_convention option and drop it first")
    end)

    it("a trigger and a view that use the column", function()
      fails([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.drop_column("status")
  end)]], line(5) .. "op.batch_alter_table: dropping column 'status' of 'users' would break trigger 'users_audit' "
        .. "(no such column: new.status); drop the trigger first")
      fails([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.drop_column("bio")
  end)]], line(5) .. "op.batch_alter_table: dropping column 'bio' of 'users' would break view 'user_emails' "
        .. "(no such column: bio); drop the view first")
    end)

    it("rows that break the new definition", function()
      fails([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.alter_column("nickname", { nullable = false })
  end)]], line(5) .. "op.batch_alter_table: rebuilding 'users' failed: NOT NULL constraint failed: users.nickname")
      fails([[
  op.create_check_constraint("ck_users_old", "users", "CAST(age AS INTEGER) > 30")]],
        line(5) .. "op.create_check_constraint: rebuilding 'users' failed: CHECK constraint failed: ck_users_old")
      fails([[
  op.create_foreign_key("fk_users_score", "users", "teams", { "score" }, { "id" })]],
        line(5) .. "op.create_foreign_key: after rebuilding 'users', 4 row(s) of 'users' would refer to missing rows "
        .. "of 'teams' (rowid 1 first)")
      fails([[
  op.drop_constraint("uq_users_email", "users", { type = "unique" })]],
        line(5) .. "op.drop_constraint: the foreign key of table 'invites' (email) refers to a unique key (email) of "
        .. "'users', which the new table would no longer have; drop that foreign key first")
    end)

    it("mistakes in the batch", function()
      fails([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.alter_column("nope", { nullable = false })
  end)]], line(5) .. "batch_op.alter_column: table 'users' has no column 'nope'")
      fails([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.drop_constraint("nope", { type = "check" })
  end)]], line(5) .. "batch_op.drop_constraint: table 'users' has no check constraint named 'nope'")
      fails([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.alter_column("age", { nullabel = false })
  end)]], line(6) .. "batch_op.alter_column: unknown option 'nullabel'")
      fails([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.drop_column(42)
  end)]], line(6) .. "batch_op.drop_column: argument 1 must be the column name")
      fails([[
  op.batch_alter_table("users", function(batch_op)
    batch_op.add_column(sa.Column("x", sa.Integer), { insert_after = "email" })
  end, { recreate = "never" })]],
        line(5) .. "batch_op.add_column: insert_before and insert_after need the table recreated, which "
        .. "recreate = \"never\" forbids")
      fails([[
  op.batch_alter_table("users", function(batch_op) end, { recreate = "sometimes" })]],
        line(5) .. "op.batch_alter_table: option 'recreate' must be \"auto\", \"always\" or \"never\"")
    end)

    it("with render_as_batch = false, the ALTERs SQLite cannot do", function()
      fails([[
  op.alter_column("users", "age", { type = sa.Integer })]],
        line(5) .. "op.alter_column: SQLite cannot change a column's type, nullability or default with ALTER TABLE; "
        .. "use op.batch_alter_table (batch mode), which recreates the table",
        "return { render_as_batch = false }\n")
    end)
  end)
end)

describe("batch mode offline (--sql)", function()
  local dir

  before_each(function()
    dir = cli.project()
    cli.revision(dir, "001_fixture", { revision = "aaa001", message = "fixture", upgrade = [[
  op.create_table("things", sa.Column("id", sa.Integer, { primary_key = true }),
    sa.Column("name", sa.String(20), { nullable = false }), sa.Column("size", sa.Text),
    sa.CheckConstraint("length(name) > 1", { name = "ck_things_name" }))
  op.create_index("ix_things_name", "things", { "name" })]] })
  end)

  after_each(function() cli.rmtree(dir) end)

  it("needs copy_from", function()
    cli.revision(dir, "002_batch", { revision = "bbb002", down_revision = "aaa001", message = "batch", upgrade = [[
  op.batch_alter_table("things", function(batch_op)
    batch_op.alter_column("size", { type = sa.Integer })
  end)]] })
    local r = cli.run(dir, { "upgrade", "head", "--sql" })
    assert.are.equal(1, r.code)
    assert.are.equal("luamig: error: migrations/versions/002_batch.lua:5: op.batch_alter_table: batch mode with "
      .. "dialect sqlite needs a live database connection to reflect table 'things', which --sql does not have; "
      .. "pass the table's description as the copy_from option of op.batch_alter_table (a table from sa.table or "
      .. "op.create_table) so that reflection is skipped (upgrade bbb002)\n", r.stderr:match("luamig: error:.*$"))
  end)

  it("prints the move and copy from copy_from", function()
    cli.revision(dir, "002_batch", { revision = "bbb002", down_revision = "aaa001", message = "batch", upgrade = [[
  local things = sa.table("things", sa.Column("id", sa.Integer, { primary_key = true }),
    sa.Column("name", sa.String(20), { nullable = false, index = true }), sa.Column("size", sa.Text))
  op.batch_alter_table("things", function(batch_op)
    batch_op.alter_column("size", { type = sa.Integer })
    batch_op.alter_column("name", { new_column_name = "label" })
  end, { copy_from = things, table_args = { sa.CheckConstraint("length(label) > 1", { name = "ck_things_name" }) } })]] })
    local r = cli.run(dir, { "upgrade", "aaa001:head", "--sql" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal([==[
-- Running upgrade aaa001 -> bbb002, batch

ALTER TABLE things RENAME COLUMN name TO label;

CREATE TABLE _luamig_tmp_things (
    id INTEGER NOT NULL,
    label VARCHAR(20) NOT NULL,
    size INTEGER,
    PRIMARY KEY (id),
    CONSTRAINT ck_things_name CHECK (length(label) > 1)
);

INSERT INTO _luamig_tmp_things (id, label, size) SELECT id, label, CAST(size AS INTEGER) FROM things;

DROP TABLE things;

ALTER TABLE _luamig_tmp_things RENAME TO things;

CREATE INDEX ix_things_name ON things (label);

UPDATE "luamig_version" SET version_num = 'bbb002' WHERE version_num = 'aaa001';

]==], r.stdout:match("%-%- Running upgrade aaa001.*$"))
  end)
end)

if backend.pg_url() then
  describe("batch mode on postgresql", function()
    local dir, b

    before_each(function()
      dir = cli.project()
      b = backend.open("postgresql")
    end)

    after_each(function()
      b.drop()
      cli.rmtree(dir)
    end)

    it("runs the operations as ALTER TABLE, in order", function()
      cli.revision(dir, "001_fixture", { revision = "aaa001", message = "fixture", upgrade = [[
  op.create_table("teams", sa.Column("id", sa.Integer, { primary_key = true }))
  op.create_table("users", sa.Column("id", sa.Integer, { primary_key = true }),
    sa.Column("age", sa.Text), sa.Column("team_id", sa.Integer), sa.Column("nickname", sa.Text))
  op.execute("INSERT INTO teams VALUES (1)")
  op.execute("INSERT INTO users VALUES (1, '41', 1, 'a'), (2, '33', 1, NULL)")
  op.batch_alter_table("users", function(batch_op)
    batch_op.alter_column("age", { type = sa.Integer, postgresql_using = "age::integer" })
    batch_op.drop_column("nickname")
    batch_op.add_column(sa.Column("email", sa.String(50)))
    batch_op.create_unique_constraint("uq_users_email", { "email" })
    batch_op.create_foreign_key("fk_users_team", "teams", { "team_id" }, { "id" }, { ondelete = "CASCADE" })
  end)]] })
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      local cols = {}
      for _, c in ipairs(b.columns("users")) do cols[#cols + 1] = c.name .. " " .. c.type end
      assert.are.same({ "id integer", "age integer", "team_id integer", "email character varying(50)" }, cols)
      assert.are.same({ { age = 41 }, { age = 33 } }, b.query("SELECT age FROM users ORDER BY id"))
      assert.are.same({ { name = "fk_users_team", columns = { "team_id" }, referred_table = "teams",
                          referred_columns = { "id" }, ondelete = "CASCADE", onupdate = "NO ACTION" } },
        b.foreign_keys("users"))
      assert.are.same({ { name = "uq_users_email", unique = true, columns = { "email" } } }, b.indexes("users"))

      -- recreate = "always" is SQLite's move and copy only
      cli.revision(dir, "002_batch", { revision = "bbb002", down_revision = "aaa001", message = "batch", upgrade = [[
  op.batch_alter_table("users", function(batch_op)
    batch_op.drop_column("email")
  end, { recreate = "always" })]] })
      r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(1, r.code)
      assert.are.equal("luamig: error: migrations/versions/002_batch.lua:5: op.batch_alter_table: recreate = "
        .. "\"always\" moves and copies tables on SQLite only; PostgreSQL runs batch operations as ALTER TABLE "
        .. "(upgrade bbb002)\n", r.stderr:gsub("^Running[^\n]*\n", ""))
    end)
  end)
end
