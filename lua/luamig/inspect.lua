-- luamig.inspect: what the live database holds, in the shapes of SQLAlchemy's Inspector, the same on
-- SQLite and PostgreSQL. conn:inspect() in migrations and luamig.autogen both stand on it.
--
--   local insp = inspect.new(raw, "postgresql", { schema = nil })
--   insp:table_names()        -> { "jobs", "users" }            (sorted; base tables only)
--   insp:has_table(t)         -> boolean                          (tables and views)
--   insp:columns(t)           -> { { name, type, nullable, default, comment, autoincrement,
--                                    primary_key, computed = { sqltext, persisted }, enum = { name, values } } }
--   insp:pk_constraint(t)     -> { name, constrained_columns }
--   insp:unique_constraints(t)-> { { name, column_names } }
--   insp:indexes(t)           -> { { name, column_names, expressions, unique, dialect_options,
--                                    duplicates_constraint } }
--   insp:foreign_keys(t)      -> { { name, constrained_columns, referred_schema, referred_table, referred_columns,
--                                    options = { ondelete, onupdate, deferrable, initially } } }
--   insp:check_constraints(t) -> { { name, sqltext } }
--   insp:table_comment(t)     -> { text }
--
-- `type` is SQL type text in upper case: SQLite's declared type as written ("VARCHAR(120)"), PostgreSQL's
-- catalog type in the same spelling ("character varying(120)" -> "VARCHAR(120)", "timestamp with time
-- zone" -> "TIMESTAMP WITH TIME ZONE"; an enum column's type is its enum type's name). `default` is the
-- SQL text of the server default as the database keeps it. Index elements: column_names[i] is a column
-- name, or false for an expression; expressions[i] is the column name or the expression's SQL text.
-- A partial index has dialect_options.sqlite_where / postgresql_where. PostgreSQL unique constraints are
-- also reported by indexes() with duplicates_constraint set, as SQLAlchemy does; the primary key's
-- index and SQLite's automatic indexes are not.
-- Answers are cached for the inspector's life (as SQLAlchemy's info cache): take a new one after DDL.
-- Methods work with a colon or a dot. Errors: error(msg, 0) naming the table.

local util = require("luamig.util")
local inspect = {}

local format = string.format

local fail = util.fail

-- All rows of a query through the raw connection.
local function query(raw, sql, params)
  local st = raw:prepare(sql)
  local rows = {}
  local ok, err = pcall(function()
    if params then st:bind(params) end
    while true do
      local row = st:step()
      if row == nil then break end
      rows[#rows + 1] = row
    end
  end)
  st:close()
  if not ok then error(err, 0) end
  return rows
end
inspect.query = query

local function actions(v)
  if v == nil then return nil end
  v = tostring(v):upper()
  if v == "NO ACTION" or v == "" then return nil end
  return v
end

------------------------------------------------------------------------------------------------
-- SQLite: luamig.reflect_sqlite parses sqlite_master and the pragmas.
------------------------------------------------------------------------------------------------

local sqlite = {}

local function reflected(self, t)
  local c = self.cache.tables[t]
  if c == nil then
    local reflect = require("luamig.reflect_sqlite")
    if not reflect.has_table(self.raw, t) then fail("inspect: no table '%s'", t) end
    c = reflect.table(self.raw, t)
    self.cache.tables[t] = c
  end
  return c
end

function sqlite.table_names(self)
  local reflect = require("luamig.reflect_sqlite")
  local names = {}
  for _, n in ipairs(reflect.table_names(self.raw)) do
    if not n:find("^sqlite_") then names[#names + 1] = n end
  end
  table.sort(names)
  return names
end

function sqlite.has_table(self, t)
  return require("luamig.reflect_sqlite").has_table(self.raw, t) and true or false
end

local integer_names = { INTEGER = true, INT = true }

function sqlite.columns(self, t)
  local r = reflected(self, t)
  local pk_count = 0
  for _, c in ipairs(r.columns) do
    if (c.primary_key or 0) ~= 0 then pk_count = pk_count + 1 end
  end
  local out = {}
  for i, c in ipairs(r.columns) do
    local ty = c.type or ""
    local computed
    if type(c.generated) == "table" then
      computed = { sqltext = c.generated.sqltext, persisted = c.generated.persisted }
    end
    out[i] = {
      name = c.name, type = ty, nullable = c.nullable and true or false, default = c.default, comment = nil,
      primary_key = c.primary_key or 0,
      autoincrement = pk_count == 1 and (c.primary_key or 0) ~= 0 and integer_names[ty:upper()] or false,
      computed = computed,
    }
  end
  return out
end

function sqlite.pk_constraint(self, t)
  local pk = reflected(self, t).primary_key or {}
  local cols = {}
  for i, c in ipairs(pk.columns or {}) do cols[i] = c end
  return { name = pk.name, constrained_columns = cols }
end

function sqlite.unique_constraints(self, t)
  local out = {}
  for i, u in ipairs(reflected(self, t).unique_constraints or {}) do
    local cols = {}
    for j, c in ipairs(u.columns) do cols[j] = c end
    out[i] = { name = u.name, column_names = cols }
  end
  return out
end

function sqlite.indexes(self, t)
  local out = {}
  for _, ix in ipairs(reflected(self, t).indexes or {}) do
    if not (ix.name or ""):find("^sqlite_autoindex_") then
      local names, exprs = {}, {}
      local n = ix.n or (ix.columns and (ix.columns.n or #ix.columns)) or 0
      local ex = ix.expressions or {}
      n = math.max(n, #ex)
      for i = 1, n do
        local c = ix.columns and ix.columns[i]
        if c ~= nil then
          names[i], exprs[i] = c, c
        else
          local e = ex[i]
          if type(e) == "table" then e = e.sqltext end
          names[i], exprs[i] = false, e or "?"
        end
      end
      out[#out + 1] = { name = ix.name, column_names = names, expressions = exprs, unique = ix.unique and true or false,
                        dialect_options = { sqlite_where = ix.where } }
    end
  end
  return out
end

function sqlite.foreign_keys(self, t)
  local out = {}
  for i, fk in ipairs(reflected(self, t).foreign_keys or {}) do
    local lc, rc = {}, {}
    for j, c in ipairs(fk.columns) do lc[j] = c end
    for j, c in ipairs(fk.referred_columns or {}) do rc[j] = c end
    out[i] = { name = fk.name, constrained_columns = lc, referred_schema = nil, referred_table = fk.referred_table,
               referred_columns = rc, options = { ondelete = actions(fk.ondelete), onupdate = actions(fk.onupdate) } }
  end
  return out
end

function sqlite.check_constraints(self, t)
  local out = {}
  for i, ck in ipairs(reflected(self, t).check_constraints or {}) do
    out[i] = { name = ck.name, sqltext = ck.sqltext }
  end
  return out
end

function sqlite.table_comment()
  return { text = nil } -- SQLite keeps no comments
end

-- The CREATE TABLE text (SQLite only): autogen looks for AUTOINCREMENT in it.
function sqlite.table_sql(self, t)
  return reflected(self, t).sql
end

------------------------------------------------------------------------------------------------
-- PostgreSQL: pg_catalog queries in the inspector's schema (default: current_schema()).
------------------------------------------------------------------------------------------------

local pg = {}

local function schema(self)
  if not self.cache.schema then
    self.cache.schema = self.schema or query(self.raw, "SELECT current_schema() AS s")[1].s
  end
  return self.cache.schema
end

-- format_type() names in the spelling ddl renders (the upper-case SQL names SQLAlchemy reflects).
local pg_type_names = {
  ["character varying"] = "VARCHAR", ["character"] = "CHAR", ["integer"] = "INTEGER", ["bigint"] = "BIGINT",
  ["smallint"] = "SMALLINT", ["boolean"] = "BOOLEAN", ["text"] = "TEXT", ["double precision"] = "DOUBLE PRECISION",
  ["real"] = "REAL", ["numeric"] = "NUMERIC", ["date"] = "DATE", ["interval"] = "INTERVAL", ["bytea"] = "BYTEA",
  ["json"] = "JSON", ["jsonb"] = "JSONB", ["uuid"] = "UUID", ["inet"] = "INET", ["cidr"] = "CIDR",
  ["money"] = "MONEY", ["oid"] = "OID", ["xml"] = "XML", ["tsvector"] = "TSVECTOR", ["bit"] = "BIT",
  ["bit varying"] = "VARBIT",
  ["timestamp without time zone"] = "TIMESTAMP", ["timestamp with time zone"] = "TIMESTAMP WITH TIME ZONE",
  ["time without time zone"] = "TIME", ["time with time zone"] = "TIME WITH TIME ZONE",
}

-- "character varying(120)" -> "VARCHAR(120)"; "numeric(10,2)" -> "NUMERIC(10, 2)";
-- "timestamp(3) with time zone" -> "TIMESTAMP(3) WITH TIME ZONE".
function inspect.pg_type(text)
  local array = ""
  while text:sub(-2) == "[]" do
    array = array .. "[]"
    text = text:sub(1, -3)
  end
  local args = text:match("%(([^)]*)%)")
  local base = text:gsub("%s*%([^)]*%)", ""):gsub("%s+", " ")
  local name = pg_type_names[base]
  if not name then return nil end
  local argstr = ""
  if args then
    local parts = {}
    for a in args:gmatch("[^,%s]+") do parts[#parts + 1] = a end
    argstr = "(" .. table.concat(parts, ", ") .. ")"
  end
  local head, tail = name:match("^(%S+)(.*)$")
  if name == "DOUBLE PRECISION" then head, tail = name, "" end
  return head .. argstr .. tail .. array
end

local function pg_rows(self, sql, t)
  return query(self.raw, sql, { n = 2, t, schema(self) })
end

local REL = [[
  JOIN pg_catalog.pg_class c ON c.oid = %s
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relname = ? AND n.nspname = ?]]
local function rel(col) return format(REL, col) end

function pg.table_names(self)
  local names = {}
  for _, r in ipairs(query(self.raw, [[
      SELECT c.relname AS name FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ? AND c.relkind IN ('r', 'p') AND NOT c.relispartition
      ORDER BY c.relname]], { n = 1, schema(self) })) do
    names[#names + 1] = r.name
  end
  return names
end

function pg.has_table(self, t)
  local rows = query(self.raw, [[
      SELECT 1 AS found FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relname = ? AND n.nspname = ? AND c.relkind IN ('r', 'p', 'v', 'm', 'f')]],
    { n = 2, t, schema(self) })
  return #rows > 0
end

local function pg_require(self, t)
  if self.cache.exists[t] == nil then self.cache.exists[t] = pg.has_table(self, t) end
  if not self.cache.exists[t] then fail("inspect: no table '%s'", t) end
end

local function cached(name, fn)
  return function(self, t)
    local key = name .. "\0" .. t
    local v = self.cache.answers[key]
    if v == nil then
      pg_require(self, t)
      v = fn(self, t)
      self.cache.answers[key] = v
    end
    return v
  end
end

pg.columns = cached("columns", function(self, t)
  local rows = pg_rows(self, [[
      SELECT a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull,
             pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS dflt, pg_catalog.col_description(c.oid, a.attnum) AS comment,
             a.attidentity AS ident, a.attgenerated AS gen, ty.typtype AS typtype, ty.typname AS typname,
             a.atttypid AS typid
      FROM pg_catalog.pg_attribute a
      JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
      LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum]] .. rel("a.attrelid") .. [[
        AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum]], t)
  local pkcols = {}
  for i, c in ipairs(pg.pk_constraint(self, t).constrained_columns) do pkcols[c] = i end
  local out = {}
  for i, r in ipairs(rows) do
    local col = { name = r.name, nullable = not r.notnull, default = r.dflt, comment = r.comment,
                  primary_key = pkcols[r.name] or 0 }
    if r.typtype == "e" then
      local values = {}
      for _, e in ipairs(query(self.raw, [[
          SELECT e.enumlabel AS label FROM pg_catalog.pg_enum e WHERE e.enumtypid = ? ORDER BY e.enumsortorder]],
          { n = 1, r.typid })) do
        values[#values + 1] = e.label
      end
      col.type = r.typname
      col.enum = { name = r.typname, values = values }
    else
      col.type = inspect.pg_type(r.type) or r.type:upper()
    end
    if r.gen == "s" then
      col.computed = { sqltext = r.dflt, persisted = true }
      col.default = nil
    end
    col.autoincrement = (r.ident == "a" or r.ident == "d")
      or (type(r.dflt) == "string" and r.dflt:find("^nextval%(") ~= nil)
    if r.ident == "a" or r.ident == "d" then col.identity = { always = r.ident == "a" } end
    out[i] = col
  end
  return out
end)

local function constraint_columns(self, t, contype)
  local rows = pg_rows(self, [[
      SELECT con.conname AS name, a.attname AS col, k.ord AS ord
      FROM pg_catalog.pg_constraint con
      CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum]] .. rel("con.conrelid") .. [[
        AND con.contype = ']] .. contype .. [['
      ORDER BY con.conname, k.ord]], t)
  local list, by = {}, {}
  for _, r in ipairs(rows) do
    local e = by[r.name]
    if not e then
      e = { name = r.name, columns = {} }
      by[r.name] = e
      list[#list + 1] = e
    end
    e.columns[#e.columns + 1] = r.col
  end
  return list
end

pg.pk_constraint = cached("pk", function(self, t)
  local list = constraint_columns(self, t, "p")
  if #list == 0 then return { name = nil, constrained_columns = {} } end
  return { name = list[1].name, constrained_columns = list[1].columns }
end)

pg.unique_constraints = cached("uq", function(self, t)
  local out = {}
  for i, e in ipairs(constraint_columns(self, t, "u")) do out[i] = { name = e.name, column_names = e.columns } end
  return out
end)

local pg_actions = { a = nil, r = "RESTRICT", c = "CASCADE", n = "SET NULL", d = "SET DEFAULT" }

pg.foreign_keys = cached("fk", function(self, t)
  local rows = pg_rows(self, [[
      SELECT con.conname AS name, a.attname AS col, fa.attname AS refcol, fc.relname AS reftable,
             fn.nspname AS refschema, con.confupdtype AS upd, con.confdeltype AS del,
             con.condeferrable AS deferrable, con.condeferred AS deferred, con.confmatchtype AS matchtype
      FROM pg_catalog.pg_constraint con
      CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(attnum, fattnum, ord)
      JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
      JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid
      JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
      JOIN pg_catalog.pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = k.fattnum]]
      .. rel("con.conrelid") .. [[
        AND con.contype = 'f'
      ORDER BY con.conname, k.ord]], t)
  local list, by = {}, {}
  local here = schema(self)
  for _, r in ipairs(rows) do
    local e = by[r.name]
    if not e then
      e = { name = r.name, constrained_columns = {}, referred_columns = {}, referred_table = r.reftable,
            referred_schema = r.refschema ~= here and r.refschema or nil,
            options = { ondelete = pg_actions[r.del], onupdate = pg_actions[r.upd],
                        deferrable = r.deferrable or nil, initially = r.deferred and "DEFERRED" or nil,
                        match = r.matchtype == "f" and "FULL" or nil } }
      by[r.name] = e
      list[#list + 1] = e
    end
    e.constrained_columns[#e.constrained_columns + 1] = r.col
    e.referred_columns[#e.referred_columns + 1] = r.refcol
  end
  return list
end)

pg.check_constraints = cached("ck", function(self, t)
  local out = {}
  for _, r in ipairs(pg_rows(self, [[
      SELECT con.conname AS name, pg_catalog.pg_get_constraintdef(con.oid, true) AS def
      FROM pg_catalog.pg_constraint con]] .. rel("con.conrelid") .. [[
        AND con.contype = 'c'
      ORDER BY con.conname]], t)) do
    local sqltext = r.def:match("^CHECK%s*(%b())") or r.def
    sqltext = sqltext:match("^%((.*)%)$") or sqltext
    out[#out + 1] = { name = r.name, sqltext = sqltext }
  end
  return out
end)

pg.indexes = cached("ix", function(self, t)
  local rows = pg_rows(self, [[
      SELECT i.relname AS name, ix.indisunique AS uniq, pg_catalog.pg_get_expr(ix.indpred, ix.indrelid) AS pred,
             am.amname AS method, con.conname AS con, k.n AS pos,
             pg_catalog.pg_get_indexdef(ix.indexrelid, k.n, true) AS elem, ix.indkey[k.n - 1] AS attnum
      FROM pg_catalog.pg_index ix
      JOIN pg_catalog.pg_class i ON i.oid = ix.indexrelid
      JOIN pg_catalog.pg_am am ON am.oid = i.relam
      LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = ix.indexrelid AND con.contype IN ('p', 'u', 'x')
      CROSS JOIN LATERAL generate_series(1, ix.indnkeyatts) AS k(n)]] .. rel("ix.indrelid") .. [[
        AND NOT ix.indisprimary
      ORDER BY i.relname, k.n]], t)
  local list, by = {}, {}
  for _, r in ipairs(rows) do
    local e = by[r.name]
    if not e then
      e = { name = r.name, unique = r.uniq and true or false, column_names = {}, expressions = {},
            dialect_options = {}, duplicates_constraint = r.con }
      if r.pred then e.dialect_options.postgresql_where = r.pred end
      if r.method and r.method ~= "btree" then e.dialect_options.postgresql_using = r.method end
      by[r.name] = e
      list[#list + 1] = e
    end
    local pos = #e.expressions + 1
    local elem = r.elem
    if r.attnum ~= 0 then
      elem = elem:match('^"(.*)"$') and elem:sub(2, -2):gsub('""', '"') or elem
      e.column_names[pos], e.expressions[pos] = elem, elem
    else
      e.column_names[pos], e.expressions[pos] = false, elem
    end
  end
  return list
end)

pg.table_comment = cached("comment", function(self, t)
  local rows = pg_rows(self, [[
      SELECT pg_catalog.obj_description(c.oid, 'pg_class') AS text
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relname = ? AND n.nspname = ?]], t)
  return { text = rows[1] and rows[1].text or nil }
end)

function pg.table_sql()
  return nil
end

------------------------------------------------------------------------------------------------

local methods = { sqlite = sqlite, postgresql = pg }
local public = { "table_names", "has_table", "columns", "pk_constraint", "unique_constraints", "indexes",
                 "foreign_keys", "check_constraints", "table_comment", "table_sql" }

local function check_table(name, t)
  if type(t) ~= "string" or t == "" then fail("inspect:%s: argument 1 must be a table name", name) end
end

-- inspect.new(raw, dialect, opts): opts.schema names the PostgreSQL schema (default: current_schema()).
function inspect.new(raw, dialect, opts)
  local impl = methods[dialect]
  if not impl then fail("inspect: unknown dialect '%s' (expected \"sqlite\" or \"postgresql\")", tostring(dialect)) end
  if raw == nil then fail("inspect: no database connection") end
  opts = opts or {}
  local state = { raw = raw, dialect = dialect, schema = opts.schema,
                  cache = { tables = {}, answers = {}, exists = {} } }
  local obj = { dialect = dialect }
  for _, name in ipairs(public) do
    local fn = impl[name]
    obj[name] = function(first, ...)
      local args = { ... }
      if first ~= obj then table.insert(args, 1, first) end
      if name ~= "table_names" then check_table(name, args[1]) end
      return fn(state, unpack(args, 1, 1))
    end
  end
  -- Forget cached answers (after DDL on the same connection).
  obj.clear_cache = function()
    state.cache = { tables = {}, answers = {}, exists = {}, schema = state.cache.schema }
  end
  return obj
end

return inspect
