-- Rendering of luamig.op / luamig.sa to SQL, per dialect, with a recording emit function.
-- Expected texts are what Alembic 1.8.1 + SQLAlchemy 1.4 render for the same operations (--sql),
-- except where a comment says why luamig differs.
-- Run: busted --lua=luajit --lpath='lua/?.lua' spec/lua_render_spec.lua

package.path = "lua/?.lua;" .. package.path

local sa = require("luamig.sa")
local op = require("luamig.op")
local ddl = require("luamig.ddl")

-- run(dialect, fn, ctx_extra) -> array of { sql, params } that fn's operations emitted
local function run(dialect, fn, extra)
  extra = extra or {}
  local out = {}
  op._set_context({
    dialect = dialect,
    offline = extra.offline or false,
    x = extra.x or {},
    -- plain ALTERs unless a test asks for batch mode (spec/batch_spec.lua runs it on real databases)
    config = { render_as_batch = extra.render_as_batch or false, naming_convention = extra.naming_convention },
    emit = function(sql, params) out[#out + 1] = { sql = sql, params = params } end,
    raw = extra.raw,
  })
  local ok, err = pcall(fn)
  op._set_context(nil)
  if not ok then error(err, 0) end
  return out
end

-- sql(dialect, fn) -> the emitted statements, as Alembic prints them: "stmt;\n\n" each
local function sql(dialect, fn, extra)
  local parts = {}
  for _, e in ipairs(run(dialect, fn, extra)) do parts[#parts + 1] = e.sql .. ";\n\n" end
  return table.concat(parts)
end

local function err_of(dialect, fn, extra)
  local ok, e = pcall(run, dialect, fn, extra)
  assert.is_false(ok, "expected an error")
  return e
end

describe("sa types", function()
  local cases = {
    -- type, sqlite, postgresql
    { sa.Integer, "INTEGER", "INTEGER" },
    { sa.BigInteger, "BIGINT", "BIGINT" },
    { sa.SmallInteger, "SMALLINT", "SMALLINT" },
    { sa.String(20), "VARCHAR(20)", "VARCHAR(20)" },
    { sa.String, "VARCHAR", "VARCHAR" },
    { sa.Text, "TEXT", "TEXT" },
    { sa.Unicode(10), "VARCHAR(10)", "VARCHAR(10)" },
    { sa.UnicodeText, "TEXT", "TEXT" },
    { sa.Boolean, "BOOLEAN", "BOOLEAN" },
    { sa.Float, "FLOAT", "FLOAT" },
    { sa.Float(53), "FLOAT", "FLOAT(53)" },
    { sa.Numeric, "NUMERIC", "NUMERIC" },
    { sa.Numeric(10), "NUMERIC(10)", "NUMERIC(10)" },
    { sa.Numeric(10, 2), "NUMERIC(10, 2)", "NUMERIC(10, 2)" },
    { sa.Date, "DATE", "DATE" },
    { sa.DateTime, "DATETIME", "TIMESTAMP WITHOUT TIME ZONE" },
    { sa.DateTime({ timezone = true }), "DATETIME", "TIMESTAMP WITH TIME ZONE" },
    { sa.Time, "TIME", "TIME WITHOUT TIME ZONE" },
    { sa.Time({ timezone = true }), "TIME", "TIME WITH TIME ZONE" },
    { sa.Interval, "DATETIME", "INTERVAL" },
    { sa.LargeBinary, "BLOB", "BYTEA" },
    { sa.JSON, "JSON", "JSON" },
    { sa.Uuid, "CHAR(32)", "UUID" },  -- SQLAlchemy 2.0's Uuid
    { sa.Enum("a", "bb", { name = "myenum" }), "VARCHAR(2)", "myenum" },
    { sa.Enum("a", "bb", { name = "e", native_enum = false }), "VARCHAR(2)", "VARCHAR(2)" },
    { sa.INTEGER, "INTEGER", "INTEGER" },
    { sa.BIGINT, "BIGINT", "BIGINT" },
    { sa.VARCHAR(5), "VARCHAR(5)", "VARCHAR(5)" },
    { sa.VARCHAR, "VARCHAR", "VARCHAR" },
    { sa.CHAR(3), "CHAR(3)", "CHAR(3)" },
    { sa.TEXT, "TEXT", "TEXT" },
    { sa.BOOLEAN, "BOOLEAN", "BOOLEAN" },
    { sa.FLOAT, "FLOAT", "FLOAT" },
    { sa.NUMERIC(5, 1), "NUMERIC(5, 1)", "NUMERIC(5, 1)" },
    { sa.DATE, "DATE", "DATE" },
    -- SQLAlchemy renders DATETIME and BLOB verbatim on PostgreSQL, which rejects them.
    { sa.DATETIME, "DATETIME", "TIMESTAMP WITHOUT TIME ZONE" },
    { sa.TIMESTAMP, "TIMESTAMP", "TIMESTAMP WITHOUT TIME ZONE" },
    { sa.TIMESTAMP({ timezone = true }), "TIMESTAMP", "TIMESTAMP WITH TIME ZONE" },
    { sa.BLOB, "BLOB", "BYTEA" },
    { sa.String(20, { collation = "C" }), 'VARCHAR(20) COLLATE "C"', 'VARCHAR(20) COLLATE "C"' },
  }
  for i, case in ipairs(cases) do
    it(string.format("%d: %s renders per dialect", i, tostring(case[1])), function()
      assert.equal(case[2], ddl.renderer("sqlite"):type_sql(case[1]))
      assert.equal(case[3], ddl.renderer("postgresql"):type_sql(case[1]))
    end)
  end

  it("bare and called types are both types", function()
    assert.equal("type", sa.kind(sa.Integer))
    assert.equal("type", sa.kind(sa.Integer()))
    assert.equal(50, sa.String(50).length)
    assert.is_nil(sa.String.length)
  end)

  it("takes arguments positionally or by name", function()
    assert.equal(5, sa.String({ length = 5 }).length)
    assert.equal(1, sa.Numeric({ precision = 3, scale = 1 }).scale)
    assert.is_true(sa.DateTime({ timezone = true }).timezone)
    assert.same({ "a", "b" }, sa.Enum({ "a", "b", name = "e" }).enums)
  end)

  it("rejects bad type arguments", function()
    assert.has_error(function() sa.String("x") end, "sa.String: argument 1 must be a number")
    assert.has_error(function() sa.DateTime({ timezon = true }) end, "sa.DateTime: unknown option 'timezon'")
    assert.has_error(function() sa.Enum(1) end, "sa.Enum: argument 1 must be a string (an enum value)")
  end)
end)

describe("op.create_table", function()
  local function prefs()
    op.create_table("user_preferences",
      sa.Column("id", sa.Integer, { primary_key = true }),
      sa.Column("user_id", sa.Integer, { sa.ForeignKey("users.id", { ondelete = "CASCADE" }) }),
      sa.Column("theme", sa.String(50), { server_default = "light" }),
      sa.Column("created_at", sa.DateTime, { server_default = sa.func.now() }),
      sa.Column("n", sa.Integer, { server_default = sa.text("0"), nullable = false, unique = true, index = true,
                                   comment = "it's n" }),
      sa.UniqueConstraint("theme", { name = "uq_theme" }),
      sa.CheckConstraint("n > 0"),
      { comment = "prefs" })
  end

  it("renders the SPEC example on SQLite as Alembic does", function()
    assert.equal([[
CREATE TABLE user_preferences (
    id INTEGER NOT NULL, 
    user_id INTEGER, 
    theme VARCHAR(50) DEFAULT 'light', 
    created_at DATETIME DEFAULT (CURRENT_TIMESTAMP), 
    n INTEGER DEFAULT 0 NOT NULL, 
    PRIMARY KEY (id), 
    CONSTRAINT uq_theme UNIQUE (theme), 
    CHECK (n > 0), 
    FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE UNIQUE INDEX ix_user_preferences_n ON user_preferences (n);

]], sql("sqlite", prefs))
  end)

  it("renders the SPEC example on PostgreSQL as Alembic does", function()
    assert.equal([[
CREATE TABLE user_preferences (
    id SERIAL NOT NULL, 
    user_id INTEGER, 
    theme VARCHAR(50) DEFAULT 'light', 
    created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT now(), 
    n INTEGER DEFAULT 0 NOT NULL, 
    PRIMARY KEY (id), 
    CONSTRAINT uq_theme UNIQUE (theme), 
    CHECK (n > 0), 
    FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE UNIQUE INDEX ix_user_preferences_n ON user_preferences (n);

COMMENT ON TABLE user_preferences IS 'prefs';

COMMENT ON COLUMN user_preferences.n IS 'it''s n';

]], sql("postgresql", prefs))
  end)

  it("takes a ForeignKey as a trailing argument too", function()
    local out = sql("sqlite", function()
      op.create_table("t", sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), { nullable = false }))
    end)
    assert.equal("CREATE TABLE t (\n    user_id INTEGER NOT NULL, \n    FOREIGN KEY(user_id) REFERENCES users (id)\n);\n\n", out)
  end)

  it("returns a table usable by bulk_insert and expressions", function()
    local t
    run("sqlite", function() t = op.create_table("t", sa.Column("id", sa.Integer, { primary_key = true })) end)
    assert.equal("table", sa.kind(t))
    assert.equal("t", t.name)
    assert.equal("id", t.c.id.name)
  end)

  describe("quotes identifiers only when needed, as SQLAlchemy", function()
    local function weird()
      op.create_table('we"ird',
        sa.Column("Mixed", sa.Integer, { primary_key = true }),
        sa.Column("has space", sa.Integer),
        sa.Column("user", sa.Integer),
        sa.Column("émoji", sa.Integer),
        sa.Column("1abc", sa.Integer),
        sa.Column("a$b", sa.Integer),
        sa.Column("set", sa.Integer),
        sa.Column("with", sa.Integer),
        sa.Column("key", sa.Integer),
        sa.Column("_ok", sa.Integer),
        sa.Index("Ix", "Mixed"))
    end
    it("on SQLite", function()
      assert.equal([[
CREATE TABLE "we""ird" (
    "Mixed" INTEGER NOT NULL, 
    "has space" INTEGER, 
    user INTEGER, 
    "émoji" INTEGER, 
    "1abc" INTEGER, 
    a$b INTEGER, 
    "set" INTEGER, 
    with INTEGER, 
    "key" INTEGER, 
    _ok INTEGER, 
    PRIMARY KEY ("Mixed")
);

CREATE INDEX "Ix" ON "we""ird" ("Mixed");

]], sql("sqlite", weird))
    end)
    it("on PostgreSQL", function()
      assert.equal([[
CREATE TABLE "we""ird" (
    "Mixed" SERIAL NOT NULL, 
    "has space" INTEGER, 
    "user" INTEGER, 
    "émoji" INTEGER, 
    "1abc" INTEGER, 
    a$b INTEGER, 
    set INTEGER, 
    "with" INTEGER, 
    key INTEGER, 
    _ok INTEGER, 
    PRIMARY KEY ("Mixed")
);

CREATE INDEX "Ix" ON "we""ird" ("Mixed");

]], sql("postgresql", weird))
    end)
    it("in rename_table and expressions", function()
      assert.equal('ALTER TABLE t RENAME TO "order";\n\n', sql("sqlite", function() op.rename_table("t", "order") end))
      local t = sa.table("Users", sa.column("Name"), sa.column("select"))
      assert.equal([[UPDATE "Users" SET "Name"='x' WHERE "Users"."select" = 1;

]], sql("postgresql", function() op.execute(t:update():where(t.c.select:eq(1)):values({ Name = "x" })) end,
         { offline = true }))
    end)
  end)

  describe("integer primary keys", function()
    local function pk(col, extra)
      return function() op.create_table("t", col, extra) end
    end
    it("SQLite keeps INTEGER NOT NULL with a PRIMARY KEY constraint", function()
      assert.equal("CREATE TABLE t (\n    id INTEGER NOT NULL, \n    PRIMARY KEY (id)\n);\n\n",
        sql("sqlite", pk(sa.Column("id", sa.Integer, { primary_key = true }))))
    end)
    it("SQLite sqlite_autoincrement inlines PRIMARY KEY AUTOINCREMENT", function()
      assert.equal("CREATE TABLE t (\n    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT\n);\n\n",
        sql("sqlite", pk(sa.Column("id", sa.Integer, { primary_key = true }), { sqlite_autoincrement = true })))
    end)
    it("PostgreSQL uses SERIAL, BIGSERIAL, SMALLSERIAL", function()
      assert.matches("id SERIAL NOT NULL", sql("postgresql", pk(sa.Column("id", sa.Integer, { primary_key = true }))))
      assert.matches("id BIGSERIAL NOT NULL", sql("postgresql", pk(sa.Column("id", sa.BigInteger, { primary_key = true }))))
      assert.matches("id SMALLSERIAL NOT NULL", sql("postgresql", pk(sa.Column("id", sa.SmallInteger, { primary_key = true }))))
    end)
    it("no SERIAL with a default, a server default, autoincrement = false or a foreign key", function()
      assert.matches("id INTEGER NOT NULL,", sql("postgresql", pk(sa.Column("id", sa.Integer, { primary_key = true, default = 5 }))))
      assert.matches("id INTEGER DEFAULT '5' NOT NULL,",
        sql("postgresql", pk(sa.Column("id", sa.Integer, { primary_key = true, server_default = "5" }))))
      assert.matches("id INTEGER NOT NULL,",
        sql("postgresql", pk(sa.Column("id", sa.Integer, { primary_key = true, autoincrement = false }))))
      assert.matches("id INTEGER NOT NULL,",
        sql("postgresql", pk(sa.Column("id", sa.Integer, sa.ForeignKey("u.id"), { primary_key = true }))))
      assert.matches("a VARCHAR%(10%) NOT NULL,",
        sql("postgresql", pk(sa.Column("a", sa.String(10), { primary_key = true }))))
    end)
    it("composite keys: SERIAL only where autoincrement = true; SQLite refuses it", function()
      local function comp()
        op.create_table("t", sa.Column("a", sa.Integer, { primary_key = true, autoincrement = true }),
          sa.Column("b", sa.Integer, { primary_key = true }))
      end
      assert.equal("CREATE TABLE t (\n    a SERIAL NOT NULL, \n    b INTEGER NOT NULL, \n    PRIMARY KEY (a, b)\n);\n\n",
        sql("postgresql", comp))
      assert.equal("op.create_table: SQLite does not support autoincrement for composite primary keys",
        err_of("sqlite", comp))
    end)
    it("a nullable primary key column stays nullable", function()
      assert.matches("a VARCHAR%(10%), ", sql("sqlite", pk(sa.Column("a", sa.String(10), { primary_key = true, nullable = true }))))
    end)
  end)

  it("renders server defaults per dialect", function()
    local function defaults()
      op.create_table("t",
        sa.Column("a", sa.Integer, { server_default = sa.text("(1 + 2)") }),
        sa.Column("b", sa.Boolean, { server_default = sa.true_() }),
        sa.Column("c", sa.Boolean, { server_default = sa.false_() }),
        sa.Column("d", sa.DateTime, { server_default = sa.func.current_timestamp() }),
        sa.Column("e", sa.String, { server_default = sa.func.lower("AB") }),
        sa.Column("f", sa.Integer, { server_default = sa.literal(5) }),
        sa.Column("g", sa.String, { server_default = sa.text("'x'") }),
        sa.Column("h", sa.Integer, { server_default = sa.func.coalesce(sa.text("1"), 2) }))
    end
    assert.equal([[
CREATE TABLE t (
    a INTEGER DEFAULT (1 + 2), 
    b BOOLEAN DEFAULT (1), 
    c BOOLEAN DEFAULT (0), 
    d DATETIME DEFAULT (CURRENT_TIMESTAMP), 
    e VARCHAR DEFAULT (lower('AB')), 
    f INTEGER DEFAULT (5), 
    g VARCHAR DEFAULT 'x', 
    h INTEGER DEFAULT (coalesce(1, 2))
);

]], sql("sqlite", defaults))
    assert.equal([[
CREATE TABLE t (
    a INTEGER DEFAULT (1 + 2), 
    b BOOLEAN DEFAULT true, 
    c BOOLEAN DEFAULT false, 
    d TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP, 
    e VARCHAR DEFAULT lower('AB'), 
    f INTEGER DEFAULT 5, 
    g VARCHAR DEFAULT 'x', 
    h INTEGER DEFAULT coalesce(1, 2)
);

]], sql("postgresql", defaults))
  end)

  it("keeps a Python-side default out of the DDL", function()
    local t
    local out = sql("sqlite", function() t = op.create_table("t", sa.Column("a", sa.Integer, { default = 7 })) end)
    assert.equal("CREATE TABLE t (\n    a INTEGER\n);\n\n", out)
    assert.equal(7, t.c.a.default)
  end)

  it("orders constraints as SQLAlchemy: primary key, explicit ones, then per column", function()
    local function cons()
      op.create_table("t",
        sa.Column("a", sa.Integer), sa.Column("b", sa.Integer),
        sa.Column("c", sa.Integer, sa.ForeignKey("x.id", { name = "fk_c", onupdate = "SET NULL", ondelete = "CASCADE" })),
        sa.PrimaryKeyConstraint("a", "b", { name = "pk_t" }),
        sa.ForeignKeyConstraint({ "a", "b" }, { "other.x", "other.y" },
          { name = "fk_ab", ondelete = "CASCADE", deferrable = true, initially = "DEFERRED" }),
        sa.UniqueConstraint("a", "c"),
        sa.CheckConstraint("a > b", { name = "ck_ab" }))
    end
    local expected = [[
CREATE TABLE t (
    a INTEGER NOT NULL, 
    b INTEGER NOT NULL, 
    c INTEGER, 
    CONSTRAINT pk_t PRIMARY KEY (a, b), 
    CONSTRAINT fk_ab FOREIGN KEY(a, b) REFERENCES other (x, y) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED, 
    UNIQUE (a, c), 
    CONSTRAINT ck_ab CHECK (a > b), 
    CONSTRAINT fk_c FOREIGN KEY(c) REFERENCES x (id) ON DELETE CASCADE ON UPDATE SET NULL
);

]]
    assert.equal(expected, sql("sqlite", cons))
    assert.equal(expected, sql("postgresql", cons))
  end)

  it("renders a column's unique, type CHECK and foreign key in that order", function()
    local function order()
      op.create_table("t",
        sa.Column("a", sa.Boolean({ create_constraint = true }), sa.ForeignKey("x.id"), { unique = true }),
        sa.Column("b", sa.Integer, sa.ForeignKey("y.id"), { unique = true }),
        sa.UniqueConstraint("a", "b"))
    end
    assert.equal([[
CREATE TABLE t (
    a BOOLEAN, 
    b INTEGER, 
    UNIQUE (a, b), 
    UNIQUE (a), 
    CHECK (a IN (0, 1)), 
    FOREIGN KEY(a) REFERENCES x (id), 
    UNIQUE (b), 
    FOREIGN KEY(b) REFERENCES y (id)
);

]], sql("sqlite", order))
    assert.equal([[
CREATE TABLE t (
    a BOOLEAN, 
    b INTEGER, 
    UNIQUE (a, b), 
    UNIQUE (a), 
    FOREIGN KEY(a) REFERENCES x (id), 
    UNIQUE (b), 
    FOREIGN KEY(b) REFERENCES y (id)
);

]], sql("postgresql", order))
  end)

  it("binds Boolean and Enum CHECKs to their types, and creates PostgreSQL enum types first", function()
    local function typed()
      op.create_table("t",
        sa.Column("id", sa.BigInteger, { primary_key = true }),
        sa.Column("b", sa.Boolean({ create_constraint = true })),
        sa.Column("b2", sa.Boolean({ create_constraint = true, name = "ck_b2" })),
        sa.Column("e", sa.Enum("a", "bb", { name = "myenum", create_constraint = true })),
        sa.Column("e2", sa.Enum("x", "y'z", { name = "e2", native_enum = false, create_constraint = true })),
        sa.Column("e3", sa.Enum("x", "y", { name = "e3" })))
    end
    assert.equal([[
CREATE TABLE t (
    id BIGINT NOT NULL, 
    b BOOLEAN, 
    b2 BOOLEAN, 
    e VARCHAR(2), 
    e2 VARCHAR(3), 
    e3 VARCHAR(1), 
    PRIMARY KEY (id), 
    CHECK (b IN (0, 1)), 
    CONSTRAINT ck_b2 CHECK (b2 IN (0, 1)), 
    CONSTRAINT myenum CHECK (e IN ('a', 'bb')), 
    CONSTRAINT e2 CHECK (e2 IN ('x', 'y''z'))
);

]], sql("sqlite", typed))
    assert.equal([[
CREATE TYPE myenum AS ENUM ('a', 'bb');

CREATE TYPE e3 AS ENUM ('x', 'y');

CREATE TABLE t (
    id BIGSERIAL NOT NULL, 
    b BOOLEAN, 
    b2 BOOLEAN, 
    e myenum, 
    e2 VARCHAR(3), 
    e3 e3, 
    PRIMARY KEY (id), 
    CONSTRAINT e2 CHECK (e2 IN ('x', 'y''z'))
);

]], sql("postgresql", typed))
  end)

  it("skips CREATE TYPE for an enum with create_type = false", function()
    local out = sql("postgresql", function()
      op.create_table("t", sa.Column("e", sa.Enum("x", { name = "e", create_type = false })))
    end)
    assert.equal("CREATE TABLE t (\n    e e\n);\n\n", out)
  end)

  it("needs a name for a PostgreSQL enum", function()
    assert.equal('sa.Enum: a PostgreSQL enum needs a name: sa.Enum(..., { name = "..." })',
      err_of("postgresql", function() op.create_table("t", sa.Column("e", sa.Enum("a", "b"))) end))
  end)

  it("renders schema-qualified tables and index options", function()
    local out = sql("postgresql", function()
      op.create_table("t", sa.Column("a", sa.Integer, sa.ForeignKey("s2.u.id")),
        sa.Index("ix_a", "a", { unique = true, postgresql_where = sa.text("a > 0") }), { schema = "s" })
    end)
    assert.equal([[
CREATE TABLE s.t (
    a INTEGER, 
    FOREIGN KEY(a) REFERENCES s2.u (id)
);

CREATE UNIQUE INDEX ix_a ON s.t (a) WHERE a > 0;

]], out)
  end)

  describe("argument errors name the operation and the argument", function()
    it("a stray value", function()
      assert.equal("op.create_table: argument 2 must be a sa.Column, a constraint or an index",
        err_of("sqlite", function() op.create_table("t", "id") end))
      assert.equal("op.create_table: argument 3 must be a sa.Column, a constraint or an index",
        err_of("sqlite", function() op.create_table("t", sa.Column("a", sa.Integer), sa.column("b")) end))
    end)
    it("a bad table name", function()
      assert.equal("op.create_table: argument 1 must be the table name",
        err_of("sqlite", function() op.create_table(nil, sa.Column("a", sa.Integer)) end))
    end)
    it("an unknown option", function()
      assert.equal("op.create_table: unknown option 'coment'",
        err_of("sqlite", function() op.create_table("t", sa.Column("a", sa.Integer), { coment = "x" }) end))
      assert.has_error(function() sa.Column("a", sa.Integer, { nulable = false }) end,
        "sa.Column: unknown option 'nulable'")
    end)
    it("a column without a type", function()
      assert.has_error(function() sa.Column("a", { nullable = false }) end,
        "sa.Column: column 'a' needs a type (argument 2)")
    end)
    it("a constraint naming a missing column", function()
      assert.equal("op.create_table: a UniqueConstraint names column 'zz', which table 't' does not have",
        err_of("sqlite", function() op.create_table("t", sa.Column("a", sa.Integer), sa.UniqueConstraint("zz")) end))
    end)
    it("an operation outside a migration", function()
      assert.has_error(function() op.drop_table("t") end,
        "op.drop_table: no migration is running (op functions work inside upgrade() and downgrade())")
    end)
  end)
end)

describe("table and column operations", function()
  local function both(fn)
    return sql("sqlite", fn), sql("postgresql", fn)
  end

  it("add_column", function()
    local s, p = both(function()
      op.add_column("t", sa.Column("c", sa.String(50), { nullable = false, server_default = "x" }))
    end)
    assert.equal("ALTER TABLE t ADD COLUMN c VARCHAR(50) DEFAULT 'x' NOT NULL;\n\n", s)
    assert.equal(s, p)
  end)

  it("add_column with a foreign key: inline on SQLite, a separate ALTER on PostgreSQL", function()
    -- Alembic raises on SQLite here; SQLite does accept REFERENCES in ADD COLUMN.
    local s, p = both(function()
      op.add_column("t", sa.Column("u", sa.Integer, sa.ForeignKey("users.id", { ondelete = "CASCADE" })))
    end)
    assert.equal("ALTER TABLE t ADD COLUMN u INTEGER REFERENCES users (id) ON DELETE CASCADE;\n\n", s)
    assert.equal("ALTER TABLE t ADD COLUMN u INTEGER;\n\n"
      .. "ALTER TABLE t ADD FOREIGN KEY(u) REFERENCES users (id) ON DELETE CASCADE;\n\n", p)
  end)

  it("add_column with unique and comment", function()
    local function add() op.add_column("t", sa.Column("u", sa.Integer, { unique = true, comment = "hi" })) end
    assert.equal("ALTER TABLE t ADD COLUMN u INTEGER;\n\nALTER TABLE t ADD UNIQUE (u);\n\n"
      .. "COMMENT ON COLUMN t.u IS 'hi';\n\n", sql("postgresql", add))
    assert.equal("op.add_column: SQLite cannot add a UNIQUE column with ALTER TABLE; use op.batch_alter_table "
      .. "(batch mode), which recreates the table", err_of("sqlite", add))
  end)

  it("add_column with index and as a primary key", function()
    local s, p = both(function() op.add_column("t", sa.Column("u", sa.Integer, { index = true })) end)
    assert.equal("ALTER TABLE t ADD COLUMN u INTEGER;\n\nCREATE INDEX ix_t_u ON t (u);\n\n", s)
    assert.equal(s, p)
    s, p = both(function() op.add_column("t", sa.Column("u", sa.Integer, { primary_key = true })) end)
    assert.equal("ALTER TABLE t ADD COLUMN u INTEGER NOT NULL;\n\n", s)
    assert.equal("ALTER TABLE t ADD COLUMN u SERIAL NOT NULL;\n\n", p)
  end)

  it("add_column with a Boolean CHECK: inline on SQLite", function()
    local out = sql("sqlite", function()
      op.add_column("t", sa.Column("b", sa.Boolean({ create_constraint = true, name = "ck_b" })))
    end)
    assert.equal("ALTER TABLE t ADD COLUMN b BOOLEAN CONSTRAINT ck_b CHECK (b IN (0, 1));\n\n", out)
  end)

  it("add_column needs a sa.Column", function()
    assert.equal("op.add_column: argument 2 must be a sa.Column",
      err_of("sqlite", function() op.add_column("t", "c") end))
  end)

  it("drop_column, drop_table, rename_table", function()
    local s, p = both(function()
      op.drop_column("t", "c")
      op.drop_table("t")
      op.rename_table("t", "u")
      op.drop_table("t", { schema = "s" })
    end)
    assert.equal("ALTER TABLE t DROP COLUMN c;\n\nDROP TABLE t;\n\nALTER TABLE t RENAME TO u;\n\nDROP TABLE s.t;\n\n", s)
    assert.equal(s, p)
  end)

  it("create_index with expressions and a partial WHERE per dialect", function()
    local function ix()
      op.create_index("ix_a", "t", { "a", sa.text("lower(b)") },
        { unique = true, sqlite_where = sa.text("a > 0"), postgresql_where = sa.text("a > 1") })
    end
    assert.equal("CREATE UNIQUE INDEX ix_a ON t (a, lower(b)) WHERE a > 0;\n\n", sql("sqlite", ix))
    assert.equal("CREATE UNIQUE INDEX ix_a ON t (a, lower(b)) WHERE a > 1;\n\n", sql("postgresql", ix))
  end)

  it("create_index and drop_index CONCURRENTLY only on PostgreSQL", function()
    local function ix()
      op.create_index("ix_a", "t", { "a" }, { postgresql_concurrently = true })
      op.drop_index("ix_a", { table_name = "t", postgresql_concurrently = true })
    end
    assert.equal("CREATE INDEX ix_a ON t (a);\n\nDROP INDEX ix_a;\n\n", sql("sqlite", ix))
    assert.equal("CREATE INDEX CONCURRENTLY ix_a ON t (a);\n\nDROP INDEX CONCURRENTLY ix_a;\n\n", sql("postgresql", ix))
  end)

  it("drop_index takes Alembic's positional table name too", function()
    assert.equal("DROP INDEX ix_a;\n\n", sql("sqlite", function() op.drop_index("ix_a", "t") end))
  end)

  it("create_index names a nil index by the default convention", function()
    assert.equal("CREATE INDEX ix_t_a ON t (a);\n\n", sql("sqlite", function() op.create_index(nil, "t", { "a" }) end))
  end)
end)

describe("op.execute and expressions", function()
  local users = sa.table("users", sa.column("id", sa.Integer), sa.column("status", sa.String),
    sa.column("email", sa.String))

  it("passes SQL text and sa.text as is", function()
    local out = run("sqlite", function()
      op.execute("UPDATE t SET a = 1")
      op.execute(sa.text("UPDATE t SET a = 2"))
    end)
    assert.same({ { sql = "UPDATE t SET a = 1" }, { sql = "UPDATE t SET a = 2" } }, out)
  end)

  it("binds positional parameters online and inlines them offline", function()
    local function ex() op.execute("UPDATE t SET a = ? WHERE b = ? AND c = '?'", { "it's", sa.null, n = 2 }) end
    local out = run("postgresql", ex)
    assert.equal("UPDATE t SET a = ? WHERE b = ? AND c = '?'", out[1].sql)
    assert.same({ n = 2, "it's" }, out[1].params)
    out = run("postgresql", ex, { offline = true })
    assert.same({ { sql = "UPDATE t SET a = 'it''s' WHERE b = NULL AND c = '?'" } }, out)
  end)

  it("turns sa.text :name parameters into ? (but not ::casts)", function()
    local out = run("postgresql", function()
      op.execute(sa.text("UPDATE t SET a = :a WHERE b = :b::text AND c = ':no'"), { a = 1, b = "x" })
      op.execute(sa.text("UPDATE t SET a = :a"):bindparams({ a = true }))
    end)
    assert.equal("UPDATE t SET a = ? WHERE b = ?::text AND c = ':no'", out[1].sql)
    assert.same({ n = 2, 1, "x" }, out[1].params)
    assert.equal("UPDATE t SET a = ?", out[2].sql)
    assert.same({ n = 1, true }, out[2].params)
    out = run("sqlite", function() op.execute(sa.text("UPDATE t SET a = :a"), { a = true }) end, { offline = true })
    assert.equal("UPDATE t SET a = 1", out[1].sql)
  end)

  it("complains about a missing :name value", function()
    assert.equal("op.execute: sa.text: no value for the bind parameter ':b'",
      err_of("sqlite", function() op.execute(sa.text("SELECT :a, :b"), { a = 1 }) end))
  end)

  it("compiles update/insert/delete/select with ? placeholders online", function()
    local out = run("postgresql", function()
      op.execute(users:update():where(users.c.status:is_(nil)):values({ status = "active" }))
      op.execute(users:update()
        :where(sa.and_(users.c.id:gt(5), sa.or_(users.c.email:like("%@x"), users.c.id:in_({ 1, 2, 3 }))))
        :values({ status = op.inline_literal("x"), email = sa.func.lower(users.c.email) }))
      op.execute(users:insert():values({ id = 1, status = "a" }))
      op.execute(users:delete():where(users.c.id:ne(3)))
      op.execute(users:delete():where(sa.not_(users.c.id:is_(nil))))
      op.execute(users:delete():where(users.c.id:isnot(nil)))
      op.execute(users:delete():where(users.c.id:in_({})))
      op.execute(sa.select(users.c.id, users.c.email):where(users.c.id:ge(2)))
      op.execute(users:update():values({ status = sa.null }):where(users.c.id:eq(sa.literal(3))))
      op.execute(users:update():values({ status = sa.true_() }))
      op.execute(users:delete():where(users.c.status:is_(true)))
    end)
    local expected = {
      { "UPDATE users SET status=? WHERE users.status IS NULL", { n = 1, "active" } },
      { "UPDATE users SET status='x', email=lower(users.email) WHERE users.id > ? AND (users.email LIKE ? OR users.id IN (?, ?, ?))",
        { n = 5, 5, "%@x", 1, 2, 3 } },
      { "INSERT INTO users (id, status) VALUES (?, ?)", { n = 2, 1, "a" } },
      { "DELETE FROM users WHERE users.id != ?", { n = 1, 3 } },
      { "DELETE FROM users WHERE users.id IS NOT NULL" },
      { "DELETE FROM users WHERE users.id IS NOT NULL" },
      { "DELETE FROM users WHERE 1 != 1" },
      { "SELECT users.id, users.email FROM users WHERE users.id >= ?", { n = 1, 2 } },
      { "UPDATE users SET status=NULL WHERE users.id = ?", { n = 1, 3 } },
      { "UPDATE users SET status=true" },
      { "DELETE FROM users WHERE users.status IS true" },
    }
    assert.equal(#expected, #out)
    for i, e in ipairs(expected) do
      assert.equal(e[1], out[i].sql)
      assert.same(e[2], out[i].params)
    end
  end)

  it("renders literals offline, with the dialect's booleans", function()
    local function ex()
      op.execute(users:update():where(users.c.id:in_({ 1, 2 })):values({ status = "o'k" }))
      op.execute(users:delete():where(sa.or_(users.c.status:eq(true), users.c.id:lt(1.5))))
    end
    assert.equal("UPDATE users SET status='o''k' WHERE users.id IN (1, 2);\n\n"
      .. "DELETE FROM users WHERE users.status = 1 OR users.id < 1.5;\n\n", sql("sqlite", ex, { offline = true }))
    assert.equal("UPDATE users SET status='o''k' WHERE users.id IN (1, 2);\n\n"
      .. "DELETE FROM users WHERE users.status = true OR users.id < 1.5;\n\n", sql("postgresql", ex, { offline = true }))
  end)

  it("rejects values for columns the table does not declare", function()
    assert.has_error(function() users:update():values({ nope = 1 }) end,
      "update:values: 'nope' is not a column of table 'users'")
  end)
end)

describe("op.bulk_insert", function()
  local t = sa.table("t", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("flag", sa.Boolean),
    sa.column("f", sa.Float))

  it("writes literal INSERTs offline", function()
    local rows = { { id = 1, name = "o'k", flag = true, f = 1.5 }, { id = 2, name = sa.null } }
    assert.equal("INSERT INTO t (id, name, flag, f) VALUES (1, 'o''k', 1, 1.5);\n\n"
      .. "INSERT INTO t (id, name) VALUES (2, NULL);\n\n",
      sql("sqlite", function() op.bulk_insert(t, rows) end, { offline = true }))
    assert.equal("INSERT INTO t (id, name, flag, f) VALUES (1, 'o''k', true, 1.5);\n\n"
      .. "INSERT INTO t (id, name) VALUES (2, NULL);\n\n",
      sql("postgresql", function() op.bulk_insert(t, rows) end, { offline = true }))
  end)

  it("streams from an iterator, never calling it after its first nil", function()
    local calls = 0
    local function rows()
      calls = calls + 1
      if calls <= 3 then return { id = calls } end
      if calls > 4 then error("called after nil") end
      return nil
    end
    local out = run("sqlite", function() op.bulk_insert(t, rows) end)
    assert.equal(4, calls)
    assert.equal(3, #out)
    assert.equal("INSERT INTO t (id) VALUES (?)", out[3].sql)
    assert.same({ n = 1, 3 }, out[3].params)
  end)

  it("names the row and column of a bad value", function()
    assert.equal("op.bulk_insert: row 2: 'nope' is not a column of table 't'",
      err_of("sqlite", function() op.bulk_insert(t, { { id = 1 }, { nope = 1 } }) end))
    assert.equal("op.bulk_insert: row 1: column 'name' holds a table; give a string, number, boolean or sa.null",
      err_of("sqlite", function() op.bulk_insert(t, { { name = { 1 } } }) end))
  end)
end)

describe("op.bulk_update", function()
  local t = sa.table("t", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("n", sa.Integer))

  it("writes one literal UPDATE per row offline, keyed by id unless told", function()
    assert.equal("UPDATE t SET name='o''k' WHERE t.id = 1;\n\nUPDATE t SET name=NULL, n=2 WHERE t.id = 2;\n\n",
      sql("sqlite", function() op.bulk_update(t, { { id = 1, name = "o'k" }, { id = 2, name = sa.null, n = 2 } }) end,
        { offline = true }))
    assert.equal("UPDATE t SET id=5 WHERE t.name = 'a' AND t.n = 1;\n\n",
      sql("postgresql", function() op.bulk_update(t, { { id = 5, name = "a", n = 1 } }, { key = { "name", "n" } }) end,
        { offline = true }))
  end)

  it("names the row and the option that is wrong", function()
    assert.equal("op.bulk_update: row 2: the key column 'id' has no value",
      err_of("sqlite", function() op.bulk_update(t, { { id = 1, name = "a" }, { name = "b" } }) end, { offline = true }))
    assert.equal("op.bulk_update: row 1: no column to set besides the key",
      err_of("sqlite", function() op.bulk_update(t, { { id = 1 } }) end, { offline = true }))
    assert.equal("op.bulk_update: the key column 'nope' is not a column of table 't'",
      err_of("sqlite", function() op.bulk_update(t, {}, { key = "nope" }) end, { offline = true }))
  end)
end)

describe("op.get_context, op.get_bind and the connection", function()
  it("get_context exposes dialect, offline and -x", function()
    local ctx
    run("postgresql", function() ctx = op.get_context() end, { offline = true, x = { tenant = "a" } })
    assert.equal("postgresql", ctx.dialect)
    assert.is_true(ctx.offline)
    assert.same({ tenant = "a" }, ctx.x)
  end)

  it("get_bind refuses offline", function()
    assert.equal("op.get_bind() needs a live database connection; it is not available with --sql",
      err_of("sqlite", function() op.get_bind() end, { offline = true }))
  end)

  -- A fake raw connection over an in-memory table of rows.
  local function fake_raw(rows, log)
    return {
      exec = function(_, s, params)
        log[#log + 1] = { s, params }
        return 3
      end,
      prepare = function(_, s)
        local i = 0
        local st = {}
        function st:bind(params) log[#log + 1] = { "bind", s, params }; i = 0 end
        function st:step() i = i + 1; return rows[i] end
        function st:run(params) log[#log + 1] = { "run", s, params }; return 1 end
        function st:columns() return { "id", "email" } end
        function st:close() log[#log + 1] = { "close", s } end
        function st:is_open() return true end
        return st
      end,
    }
  end

  it("execute, rows, first, scalar", function()
    local log = {}
    local rows = { { id = 1, email = "a@x" }, { id = 2, email = "b@y" } }
    run("sqlite", function()
      local conn = op.get_bind()
      assert.equal("sqlite", conn.dialect)
      -- with parameters, execute runs a prepared statement it keeps for the next call
      assert.equal(1, conn:execute("UPDATE users SET domain = ? WHERE id = ?", { "x", 1 }))
      local seen = {}
      for row in conn:rows("SELECT id, email FROM users WHERE domain IS NULL") do seen[#seen + 1] = row.email end
      assert.same({ "a@x", "b@y" }, seen)
      assert.same(rows[1], conn:first("SELECT id, email FROM users"))
      assert.equal(1, conn:scalar("SELECT id FROM users WHERE id = ?", { 1 }))
      assert.equal(3, conn.execute("DELETE FROM users")) -- the dot form works too
    end, { raw = fake_raw(rows, log) })
    assert.same({ "run", "UPDATE users SET domain = ? WHERE id = ?", { n = 2, "x", 1 } }, log[1])
    assert.same({ "close", "SELECT id, email FROM users WHERE domain IS NULL" }, log[2])
    assert.same({ "close", "SELECT id, email FROM users" }, log[3])
    assert.same({ "bind", "SELECT id FROM users WHERE id = ?", { n = 1, 1 } }, log[4])
    assert.same({ "DELETE FROM users" }, log[6])
  end)

  it("execute takes expressions and sa.text with named values", function()
    local log = {}
    local users = sa.table("users", sa.column("id"), sa.column("status"))
    run("postgresql", function()
      local conn = op.get_bind()
      conn:execute(users:update():where(users.c.status:is_(nil)):values({ status = "active" }))
      conn:execute(sa.text("UPDATE users SET status = :s WHERE id = :id"), { s = "x", id = 4 })
    end, { raw = fake_raw({}, log) })
    assert.same({ "run", "UPDATE users SET status=? WHERE users.status IS NULL", { n = 1, "active" } }, log[1])
    assert.same({ "run", "UPDATE users SET status = ? WHERE id = ?", { n = 2, "x", 4 } }, log[2])
  end)

  it("prepare gives a reusable statement, with :name maps for sa.text", function()
    local log = {}
    run("sqlite", function()
      local conn = op.get_bind()
      local stmt = conn:prepare("UPDATE users SET domain = ? WHERE id = ?")
      assert.equal(1, stmt:execute({ "x", 1 }))
      stmt:close()
      local named = conn:prepare(sa.text("UPDATE users SET domain = :d WHERE id = :id"))
      named:execute({ id = 7, d = "y" })
      named.execute({ "z", 8 })
    end, { raw = fake_raw({}, log) })
    assert.same({ "run", "UPDATE users SET domain = ? WHERE id = ?", { n = 2, "x", 1 } }, log[1])
    assert.same({ "close", "UPDATE users SET domain = ? WHERE id = ?" }, log[2])
    assert.same({ "run", "UPDATE users SET domain = ? WHERE id = ?", { n = 2, "y", 7 } }, log[3])
    assert.same({ "run", "UPDATE users SET domain = ? WHERE id = ?", { n = 2, "z", 8 } }, log[4])
  end)
end)

describe("op.alter_column", function()
  it("renders each change on PostgreSQL in Alembic's order", function()
    assert.equal([[
ALTER TABLE t ALTER COLUMN c TYPE INTEGER;

ALTER TABLE t ALTER COLUMN c SET NOT NULL;

ALTER TABLE t ALTER COLUMN c SET DEFAULT '0';

COMMENT ON COLUMN t.c IS 'z';

ALTER TABLE t RENAME c TO d;

]], sql("postgresql", function()
      op.alter_column("t", "c", { nullable = false, type = sa.Integer, server_default = "0", new_column_name = "d",
                                  comment = "z" })
    end))
  end)

  it("nullable, USING, defaults and comments on PostgreSQL", function()
    assert.equal([[
ALTER TABLE t ALTER COLUMN c DROP NOT NULL;

ALTER TABLE t ALTER COLUMN c TYPE INTEGER USING c::integer;

ALTER TABLE t ALTER COLUMN c SET DEFAULT now();

ALTER TABLE t ALTER COLUMN c SET DEFAULT now();

ALTER TABLE t ALTER COLUMN c DROP DEFAULT;

COMMENT ON COLUMN t.c IS NULL;

]], sql("postgresql", function()
      op.alter_column("t", "c", { nullable = true, existing_type = sa.String(50) })
      op.alter_column("t", "c", { type_ = sa.Integer, postgresql_using = "c::integer" })
      op.alter_column("t", "c", { server_default = sa.text("now()") })
      op.alter_column("t", "c", { server_default = sa.func.now() })
      op.alter_column("t", "c", { server_default = sa.null, existing_server_default = "x" })
      op.alter_column("t", "c", { comment = sa.null })
    end))
  end)

  it("renames on SQLite and quotes the new name per dialect", function()
    assert.equal("ALTER TABLE t RENAME c TO user;\n\n",
      sql("sqlite", function() op.alter_column("t", "c", { new_column_name = "user" }) end))
    assert.equal('ALTER TABLE t RENAME c TO "user";\n\n',
      sql("postgresql", function() op.alter_column("t", "c", { new_column_name = "user" }) end))
  end)

  it("skips comments on SQLite, which keeps none", function()
    assert.equal("", sql("sqlite", function()
      op.alter_column("t", "c", { comment = "x" })
      op.create_table_comment("t", "x")
      op.drop_table_comment("t")
    end))
  end)

  it("points SQLite at batch mode for type, nullability and default changes", function()
    local msg = "op.alter_column: SQLite cannot change a column's type, nullability or default with ALTER TABLE; "
      .. "use op.batch_alter_table (batch mode), which recreates the table"
    assert.equal(msg, err_of("sqlite", function() op.alter_column("t", "c", { nullable = false }) end))
    assert.equal(msg, err_of("sqlite", function() op.alter_column("t", "c", { type = sa.Text }) end))
    assert.equal(msg, err_of("sqlite", function() op.alter_column("t", "c", { server_default = sa.null }) end))
  end)

  it("moves a type-bound CHECK with the type on PostgreSQL", function()
    assert.equal([[
ALTER TABLE t DROP CONSTRAINT ck_old;

ALTER TABLE t ALTER COLUMN c TYPE VARCHAR(1);

ALTER TABLE t ADD CONSTRAINT ck_new CHECK (c IN ('a', 'b'));

]], sql("postgresql", function()
      op.alter_column("t", "c", {
        type = sa.Enum("a", "b", { name = "ck_new", native_enum = false, create_constraint = true }),
        existing_type = sa.Enum("a", { name = "ck_old", native_enum = false, create_constraint = true }) })
    end))
  end)

  it("checks its options", function()
    assert.equal("op.alter_column: unknown option 'nullabel'",
      err_of("postgresql", function() op.alter_column("t", "c", { nullabel = false }) end))
    assert.equal("op.alter_column: option 'type' must be a sa type",
      err_of("postgresql", function() op.alter_column("t", "c", { type = "INTEGER" }) end))
  end)
end)

describe("constraint operations", function()
  local function all()
    op.create_unique_constraint("uq_x", "t", { "a", "b" })
    op.create_foreign_key("fk_x", "t", "u", { "a" }, { "id" }, { ondelete = "CASCADE", onupdate = "RESTRICT" })
    op.create_check_constraint("ck_x", "t", "a > 0")
    op.create_check_constraint("ck_y", "t", sa.column("a"):gt(5))
    op.create_primary_key("pk_x", "t", { "a", "b" })
    op.drop_constraint("fk_x", "t", { type = "foreignkey" })
    op.drop_constraint("uq_x", "t")
  end

  it("render as ALTER TABLE on PostgreSQL", function()
    assert.equal([[
ALTER TABLE t ADD CONSTRAINT uq_x UNIQUE (a, b);

ALTER TABLE t ADD CONSTRAINT fk_x FOREIGN KEY(a) REFERENCES u (id) ON DELETE CASCADE ON UPDATE RESTRICT;

ALTER TABLE t ADD CONSTRAINT ck_x CHECK (a > 0);

ALTER TABLE t ADD CONSTRAINT ck_y CHECK (a > 5);

ALTER TABLE t ADD CONSTRAINT pk_x PRIMARY KEY (a, b);

ALTER TABLE t DROP CONSTRAINT fk_x;

ALTER TABLE t DROP CONSTRAINT uq_x;

]], sql("postgresql", all))
  end)

  it("table comments on PostgreSQL", function()
    assert.equal("COMMENT ON TABLE t IS 'it''s';\n\nCOMMENT ON TABLE t IS NULL;\n\n", sql("postgresql", function()
      op.create_table_comment("t", "it's")
      op.drop_table_comment("t")
    end))
  end)

  it("point SQLite at batch mode", function()
    local function msg(name, what)
      return "op." .. name .. ": SQLite cannot " .. what .. " with ALTER TABLE; use op.batch_alter_table "
        .. "(batch mode), which recreates the table"
    end
    local add = "add a constraint to an existing table"
    assert.equal(msg("create_unique_constraint", add),
      err_of("sqlite", function() op.create_unique_constraint("uq", "t", { "a" }) end))
    assert.equal(msg("create_foreign_key", add),
      err_of("sqlite", function() op.create_foreign_key("fk", "t", "u", { "a" }, { "id" }) end))
    assert.equal(msg("create_check_constraint", add),
      err_of("sqlite", function() op.create_check_constraint("ck", "t", "a > 0") end))
    assert.equal(msg("create_primary_key", add),
      err_of("sqlite", function() op.create_primary_key("pk", "t", { "a" }) end))
    assert.equal(msg("drop_constraint", "drop a constraint"),
      err_of("sqlite", function() op.drop_constraint("fk", "t", { type = "foreignkey" }) end))
    assert.equal(msg("drop_column", "drop column 'c' and the CHECK of its type sa.Boolean"),
      err_of("sqlite", function()
        op.drop_column("t", "c", { existing_type = sa.Boolean({ create_constraint = true }) })
      end))
  end)

  it("drop_column with a type-bound CHECK is a plain DROP COLUMN on PostgreSQL", function()
    assert.equal("ALTER TABLE t DROP COLUMN c;\n\n", sql("postgresql", function()
      op.drop_column("t", "c", { existing_type = sa.Boolean({ create_constraint = true, name = "ck_c" }) })
    end))
  end)

  it("drop_constraint checks its type", function()
    assert.equal('op.drop_constraint: option \'type\' must be "foreignkey", "unique", "check" or "primary"',
      err_of("postgresql", function() op.drop_constraint("x", "t", { type = "fk" }) end))
  end)
end)

describe("batch mode", function()
  it("runs as ALTER TABLE, in order, on PostgreSQL (dot or colon)", function()
    assert.equal([[
ALTER TABLE t ALTER COLUMN c TYPE TEXT;

ALTER TABLE t DROP COLUMN d;

ALTER TABLE t ADD CONSTRAINT uq_t_a UNIQUE (a);

ALTER TABLE t DROP CONSTRAINT fk_t_b_u;

]], sql("postgresql", function()
      op.batch_alter_table("t", function(batch_op)
        batch_op.alter_column("c", { type = sa.Text })
        batch_op:drop_column("d")
        batch_op.create_unique_constraint(nil, { "a" })
        batch_op.drop_constraint("b", { type = "foreignkey" })
      end, { naming_convention = { uq = "uq_%(table_name)s_%(column_0_name)s", fk = "fk_t_%(constraint_name)s_u" } })
    end))
  end)

  it("checks batch_op arguments, counted without the table", function()
    assert.equal("batch_op.create_index: argument 2 must be an array of column names", err_of("postgresql", function()
      op.batch_alter_table("t", function(batch_op) batch_op.create_index("ix", 5) end)
    end))
    assert.equal("batch_op.add_column: argument 1 must be a sa.Column", err_of("postgresql", function()
      op.batch_alter_table("t", function(batch_op) batch_op:add_column("x") end)
    end))
    assert.equal("op.add_column: unknown option 'insert_after'", err_of("postgresql", function()
      op.add_column("t", sa.Column("x", sa.Integer), { insert_after = "y" })
    end))
    assert.equal("batch_op.add_column: insert_before and insert_after need the table recreated, which luamig does "
      .. "on SQLite only", err_of("postgresql", function()
      op.batch_alter_table("t", function(batch_op)
        batch_op.add_column(sa.Column("x", sa.Integer), { insert_after = "y" })
      end)
    end))
  end)

  it("adds columns with ALTER TABLE on SQLite when nothing needs the table recreated", function()
    assert.equal("ALTER TABLE t ADD COLUMN x INTEGER;\n\nCREATE INDEX ix_t_x ON t (x);\n\n", sql("sqlite", function()
      op.batch_alter_table("t", function(batch_op)
        batch_op.add_column(sa.Column("x", sa.Integer))
        batch_op.create_index("ix_t_x", { "x" })
      end)
    end, { offline = true }))
  end)

  it("needs copy_from offline on SQLite, also for one-operation batches", function()
    local msg = ": batch mode with dialect sqlite needs a live database connection to reflect table 't', which --sql "
      .. "does not have; pass the table's description as the copy_from option of op.batch_alter_table (a table from "
      .. "sa.table or op.create_table) so that reflection is skipped"
    assert.equal("op.batch_alter_table" .. msg, err_of("sqlite", function()
      op.batch_alter_table("t", function(batch_op) batch_op.drop_column("c") end)
    end, { offline = true }))
    assert.equal("op.alter_column" .. msg, err_of("sqlite", function()
      op.alter_column("t", "c", { nullable = false })
    end, { offline = true, render_as_batch = true }))
  end)

  it("applies the operations in order: a column added, then renamed and altered", function()
    local t = sa.table("t", sa.Column("id", sa.Integer, { primary_key = true }), sa.Column("c", sa.Text))
    assert.equal([[
ALTER TABLE t RENAME COLUMN c TO d;

CREATE TABLE _luamig_tmp_t (
    id INTEGER NOT NULL,
    d TEXT,
    y INTEGER NOT NULL,
    PRIMARY KEY (id)
);

INSERT INTO _luamig_tmp_t (id, d) SELECT id, d FROM t;

DROP TABLE t;

ALTER TABLE _luamig_tmp_t RENAME TO t;

]], sql("sqlite", function()
      op.batch_alter_table("t", function(batch_op)
        batch_op.alter_column("c", { new_column_name = "d" })
        batch_op.add_column(sa.Column("x", sa.Integer))
        batch_op.alter_column("x", { new_column_name = "y" })
        batch_op.alter_column("y", { nullable = false })
      end, { copy_from = t })
    end, { offline = true }))
  end)

  it("says what a dropped column would lose, offline too", function()
    local t = sa.table("t", sa.Column("id", sa.Integer, { primary_key = true }), sa.Column("c", sa.Integer))
    assert.equal("op.batch_alter_table: dropping column 'c' of 't' would lose CHECK constraint 'ck_c'; "
      .. "drop the constraint first", err_of("sqlite", function()
      op.batch_alter_table("t", function(batch_op) batch_op.drop_column("c") end,
        { copy_from = t, table_args = { sa.CheckConstraint("c > 0", { name = "ck_c" }) } })
    end, { offline = true }))
  end)
end)

describe("naming conventions", function()
  local nc = { uq = "uq_%(table_name)s_%(column_0_N_name)s",
               fk = "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
               ck = "ck_%(table_name)s_%(constraint_name)s", ix = "ix_%(column_0_label)s", pk = "pk_%(table_name)s" }

  it("name nil constraints, rewrite %(constraint_name)s names, and leave op.f names alone", function()
    assert.equal([[
ALTER TABLE t ADD CONSTRAINT uq_t_a_b UNIQUE (a, b);

ALTER TABLE t ADD CONSTRAINT fk_t_a_u FOREIGN KEY(a) REFERENCES u (id);

ALTER TABLE t ADD CONSTRAINT ck_t_positive CHECK (a > 0);

CREATE INDEX ix_t_a ON t (a);

ALTER TABLE t ADD CONSTRAINT pk_t PRIMARY KEY (a);

ALTER TABLE t ADD CONSTRAINT ck_raw CHECK (a > 0);

ALTER TABLE t DROP CONSTRAINT ck_t_positive;

]], sql("postgresql", function()
      op.create_unique_constraint(nil, "t", { "a", "b" })
      op.create_foreign_key(nil, "t", "u", { "a" }, { "id" })
      op.create_check_constraint("positive", "t", "a > 0")
      op.create_index(nil, "t", { "a" })
      op.create_primary_key(nil, "t", { "a" })
      op.create_check_constraint(op.f("ck_raw"), "t", "a > 0")
      op.drop_constraint("positive", "t", { type = "check" })
    end, { naming_convention = nc }))
  end)

  it("need a name for %(constraint_name)s", function()
    assert.equal('op.create_check_constraint: the naming convention "ck_%(table_name)s_%(constraint_name)s" '
      .. "needs an explicit constraint name",
      err_of("postgresql", function() op.create_check_constraint(nil, "t", "a > 0") end, { naming_convention = nc }))
  end)

  it("shorten names past PostgreSQL's 63 characters as SQLAlchemy does", function()
    assert.equal("ALTER TABLE a_very_long_table_name_for_testing_things ADD CONSTRAINT "
      .. "fk_a_very_long_table_name_for_testing_things_some_long__f504 FOREIGN KEY(some_long_column_name_id) "
      .. "REFERENCES another_rather_long_referenced_table (id);\n\n",
      sql("postgresql", function()
        op.create_foreign_key(nil, "a_very_long_table_name_for_testing_things", "another_rather_long_referenced_table",
          { "some_long_column_name_id" }, { "id" })
      end, { naming_convention = nc }))
  end)

  it("apply inside create_table", function()
    assert.equal([[
CREATE TABLE t (
    id INTEGER NOT NULL, 
    a BOOLEAN, 
    b BOOLEAN, 
    CONSTRAINT pk_t PRIMARY KEY (id), 
    CONSTRAINT ck_t_pos CHECK (a > 0), 
    UNIQUE (a), 
    CONSTRAINT fk_t_a_x FOREIGN KEY(a) REFERENCES x (id), 
    CONSTRAINT ck_t_bb CHECK (b IN (0, 1))
);

]], sql("sqlite", function()
      op.create_table("t", sa.Column("id", sa.Integer, { primary_key = true }),
        sa.Column("a", sa.Boolean, sa.ForeignKey("x.id"), { unique = true }),
        sa.Column("b", sa.Boolean({ create_constraint = true, name = "bb" })),
        sa.CheckConstraint("a > 0", { name = "pos" }))
    end, { naming_convention = { ck = nc.ck, fk = nc.fk, pk = nc.pk } }))
  end)
end)

describe("sa.Computed", function()
  it("renders generated columns per dialect", function()
    local function computed()
      op.create_table("t", sa.Column("a", sa.Integer), sa.Column("b", sa.Integer, sa.Computed("a * 2")),
        sa.Column("c", sa.Integer, sa.Computed("a * 3", { persisted = true }), { nullable = false }))
    end
    assert.equal([[
CREATE TABLE t (
    a INTEGER, 
    b INTEGER GENERATED ALWAYS AS (a * 2), 
    c INTEGER NOT NULL GENERATED ALWAYS AS (a * 3) STORED
);

]], sql("sqlite", computed))
    assert.equal([[
CREATE TABLE t (
    a INTEGER, 
    b INTEGER GENERATED ALWAYS AS (a * 2) STORED, 
    c INTEGER GENERATED ALWAYS AS (a * 3) STORED NOT NULL
);

]], sql("postgresql", computed))
  end)

  it("refuses VIRTUAL on PostgreSQL", function()
    assert.equal("op.create_table: PostgreSQL has no VIRTUAL generated columns; use sa.Computed(sql, { persisted = true })",
      err_of("postgresql", function()
        op.create_table("t", sa.Column("a", sa.Integer), sa.Column("d", sa.Integer, sa.Computed("a", { persisted = false })))
      end))
  end)
end)

describe("literals and placeholders", function()
  local r = ddl.renderer("postgresql")

  it("formats numbers exactly", function()
    assert.equal("1", r:literal(1))
    assert.equal("-42", r:literal(-42))
    assert.equal("1.5", r:literal(1.5))
    assert.equal("0.1", r:literal(0.1))
    assert.equal("9007199254740991", r:literal(2 ^ 53 - 1))
    assert.equal("0.30000000000000004", r:literal(0.1 + 0.2))
    assert.equal("9223372036854775807", r:literal(9223372036854775807LL))
    assert.has_error(function() r:literal(0 / 0) end, "cannot render the number nan in SQL")
  end)

  it("renders functions as SQLAlchemy", function()
    local c = r:compiler(true)
    assert.equal("count(*)", c:expr(sa.func.count()))
    assert.equal("CURRENT_DATE", c:expr(sa.func.current_date()))
    assert.equal("coalesce(a, 'x')", c:expr(sa.func.coalesce(sa.column("a"), "x")))
    assert.equal("CURRENT_TIMESTAMP", ddl.renderer("sqlite"):compiler(true):expr(sa.func.now()))
  end)

  it("leaves ? inside quotes, comments and dollar quotes alone", function()
    local s = "SELECT '?', \"?\", $$ ? $$, $x$ ? $x$ -- ?\n, ? /* ? */, ?"
    assert.equal("SELECT '?', \"?\", $$ ? $$, $x$ ? $x$ -- ?\n, 1 /* ? */, 'two'", r:inline_params(s, { 1, "two" }))
    assert.has_error(function() r:inline_params("SELECT ?, ?", { 1 }) end,
      "the SQL has more ? placeholders than the 1 parameter(s) given")
  end)

  it("negates comparisons under sa.not_ as SQLAlchemy does", function()
    local c = r:compiler(true)
    local a = sa.column("a")
    assert.equal("a != 1", c:expr(sa.not_(a:eq(1))))
    assert.equal("a >= 1", c:expr(sa.not_(a:lt(1))))
    assert.equal("a NOT IN (1, 2)", c:expr(sa.not_(a:in_({ 1, 2 }))))
    assert.equal("a NOT LIKE 'x%'", c:expr(sa.not_(a:like("x%"))))
    assert.equal("NOT (a = 1 OR a = 2)", c:expr(sa.not_(sa.or_(a:eq(1), a:eq(2)))))
  end)
end)
