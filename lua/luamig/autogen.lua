-- luamig.autogen: compares models.lua with the live database and writes the Lua of the upgrade() and
-- downgrade() that make one into the other (`revision --autogenerate`, `check`).
--
--   autogen.run(ctx) -> { upgrades = "<body of upgrade()>", downgrades = "<body of downgrade()>",
--                         diffs = { "add_table 'users'", ... } }
--   ctx = { dialect = "sqlite" | "postgresql", raw = <connection userdata>, config = <luamig.lua table>,
--           models = "<path of models.lua>", version_table = "luamig_version", version_table_schema = nil }
--   autogen.compare(md, insp, opts) -> the same result for a loaded sa.MetaData and a luamig.inspect
--           inspector; opts = { dialect, config, version_table }.
--
-- What it detects: tables added and removed; columns added and removed; type, nullability and server
-- default changes of a column; indexes, unique constraints, foreign keys and named CHECK constraints
-- added and removed (a changed one is dropped and created again); table and column comments
-- (PostgreSQL). What it leaves to the author (as Alembic does): renames (a `-- review:` comment points
-- at a likely one), primary key changes, enum value changes, sequences, views and triggers, unnamed
-- CHECK constraints, Python-side `default`s. Server defaults compare after normalising: outer
-- parentheses, PostgreSQL casts and quotes around numbers go, so '0', 0 and (0) are equal, and now(),
-- CURRENT_TIMESTAMP and current_timestamp() are one.
--
-- Output is Lua with the op./sa. API of README.md, two spaces in, in a stable order: new tables
-- (parents first), then changed tables by name, then dropped tables (children first); within a
-- table: columns added, columns altered, indexes, unique constraints, foreign keys, CHECKs, comments,
-- columns dropped. downgrade() undoes upgrade() step by step in reverse. On SQLite with
-- render_as_batch (the default), a table whose changes SQLite cannot ALTER gets them all inside one
-- op.batch_alter_table(...) block; an unnamed constraint it must drop is named there by the batch's
-- naming_convention option (the models' convention, or fk_/uq_/ck_<table>_<column>), which also
-- names the table's other unnamed constraints of that kind. Constraints PostgreSQL named itself are
-- dropped by those names (<table>_<col>_key / _fkey / _check).
-- Errors: error(msg, 0), plain messages naming the table or the models file.

local util = require("luamig.util")
local sa = require("luamig.sa")
local ddl = require("luamig.ddl")
local metadata = require("luamig.metadata")
local inspect = require("luamig.inspect")

local kind = sa.kind
local concat = table.concat
local format = string.format

local autogen = {}

local fail = util.fail

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local set = util.set

local function copy_list(list)
  local c = {}
  for i, v in ipairs(list or {}) do c[i] = v end
  return c
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function is_none(v) return v == nil or v == sa.null end

------------------------------------------------------------------------------------------------
-- Lua source
------------------------------------------------------------------------------------------------

local escapes = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

-- A Lua string literal in double quotes.
local function q(s)
  s = tostring(s)
  return '"' .. s:gsub('[%c\\"]', function(c) return escapes[c] or format("\\%03d", c:byte()) end) .. '"'
end
autogen.quote_lua = q

local function num(v)
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return format("%d", v) end
  return format("%.17g", v)
end

local lua_keywords = set { "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "if", "in",
                           "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while" }

local function key_src(k)
  if type(k) == "string" and k:find("^[%a_][%w_]*$") and not lua_keywords[k] then return k end
  return "[" .. q(k) .. "]"
end

-- An options table: items (array part, already Lua source) then fields { { key, source }, ... }.
-- nil when empty.
local function opts_src(items, fields)
  local parts = {}
  for _, v in ipairs(items or {}) do parts[#parts + 1] = v end
  for _, f in ipairs(fields or {}) do
    if f[2] ~= nil then parts[#parts + 1] = key_src(f[1]) .. " = " .. f[2] end
  end
  if #parts == 0 then return nil end
  return "{ " .. concat(parts, ", ") .. " }"
end

local function list_src(list)
  local parts = {}
  for i, v in ipairs(list) do parts[i] = q(v) end
  return "{ " .. concat(parts, ", ") .. " }"
end

-- A value of a luamig.sa expression (server defaults, Computed, CHECK text) as Lua source.
local function expr_src(v)
  if v == sa.null then return "sa.null" end
  local t = type(v)
  if t == "string" then return q(v) end
  if t == "number" then return num(v) end
  if t == "boolean" then return v and "true" or "false" end
  local k = kind(v)
  if k == "text" then return "sa.text(" .. q(v.sql) .. ")" end
  if k == "true" then return "sa.true_()" end
  if k == "false" then return "sa.false_()" end
  if k == "conv" then return "op.f(" .. q(v.name) .. ")" end
  if k == "literal" then return "sa.literal(" .. expr_src(v.value) .. ")" end
  if k == "func" then
    local args = {}
    for i, a in ipairs(v.args) do args[i] = expr_src(a) end
    local name = v.name:find("^[%a_][%w_]*$") and ("sa.func." .. v.name) or ("sa.func[" .. q(v.name) .. "]")
    return name .. "(" .. concat(args, ", ") .. ")"
  end
  return nil
end

-- A luamig.sa type object as Lua source: sa.String(120), sa.DateTime({ timezone = true }).
local length_types = set { "String", "Text", "Unicode", "UnicodeText", "VARCHAR", "CHAR", "TEXT", "LargeBinary",
                           "BLOB" }
local precision_types = set { "Numeric", "NUMERIC", "DECIMAL" }
local float_types = set { "Float", "FLOAT" }
local tz_types = set { "DateTime", "DATETIME", "TIMESTAMP", "Time", "TIME" }
local bool_types = set { "Boolean", "BOOLEAN" }

local function type_src(t)
  local n = t.name
  local args, fields = {}, {}
  if length_types[n] then
    if t.length then args[1] = num(t.length) end
    if t.collation then fields[#fields + 1] = { "collation", q(t.collation) } end
  elseif precision_types[n] then
    if t.precision then
      args[1] = num(t.precision)
      if t.scale then args[2] = num(t.scale) end
    elseif t.scale then
      fields[#fields + 1] = { "scale", num(t.scale) }
    end
  elseif float_types[n] then
    if t.precision then args[1] = num(t.precision) end
  elseif tz_types[n] then
    if t.timezone then fields[#fields + 1] = { "timezone", "true" } end
  elseif bool_types[n] then
    if t.create_constraint then fields[#fields + 1] = { "create_constraint", "true" } end
    if t.constraint_name then fields[#fields + 1] = { "name", q(t.constraint_name) } end
  elseif n == "Enum" then
    for i, v in ipairs(t.enums) do args[i] = q(v) end
    if t.enum_name then fields[#fields + 1] = { "name", q(t.enum_name) } end
    if t.native_enum == false then fields[#fields + 1] = { "native_enum", "false" } end
    if t.create_constraint then fields[#fields + 1] = { "create_constraint", "true" } end
    if t.create_type == false then fields[#fields + 1] = { "create_type", "false" } end
    if t.length then fields[#fields + 1] = { "length", num(t.length) } end
    if t.schema then fields[#fields + 1] = { "schema", q(t.schema) } end
  end
  local o = opts_src(nil, fields)
  if o then args[#args + 1] = o end
  if #args == 0 then return "sa." .. n end
  return "sa." .. n .. "(" .. concat(args, ", ") .. ")"
end
autogen.type_src = type_src

------------------------------------------------------------------------------------------------
-- Types and defaults, normalised for comparison
------------------------------------------------------------------------------------------------

-- split_type("NUMERIC(10, 2)") -> "NUMERIC", { "10", "2" } (upper case, quotes and COLLATE gone)
local function split_type(text)
  local s = text:upper():gsub('"', ""):gsub("%s+COLLATE%s+.*$", "")
  s = trim(s:gsub("%s+", " "))
  local args = {}
  local inner = s:match("%(([^)]*)%)")
  if inner then
    for a in inner:gmatch("[^,%s]+") do args[#args + 1] = a end
  end
  local base = trim(s:gsub("%s*%([^)]*%)", ""))
  return base, args
end

local common_synonyms = {
  INT = "INTEGER", INT4 = "INTEGER", INT8 = "BIGINT", INT2 = "SMALLINT", BOOL = "BOOLEAN", DECIMAL = "NUMERIC",
  ["CHARACTER VARYING"] = "VARCHAR", CHARACTER = "CHAR", NVARCHAR = "VARCHAR", NCHAR = "CHAR",
}
local dialect_synonyms = {
  sqlite = { TIMESTAMP = "DATETIME", REAL = "FLOAT", DOUBLE = "FLOAT", ["DOUBLE PRECISION"] = "FLOAT",
             CLOB = "TEXT" },
  postgresql = { ["TIMESTAMP WITHOUT TIME ZONE"] = "TIMESTAMP", ["TIME WITHOUT TIME ZONE"] = "TIME",
                 TIMESTAMPTZ = "TIMESTAMP WITH TIME ZONE", TIMETZ = "TIME WITH TIME ZONE", DATETIME = "TIMESTAMP",
                 BLOB = "BYTEA", FLOAT8 = "DOUBLE PRECISION", FLOAT4 = "REAL", SERIAL = "INTEGER",
                 BIGSERIAL = "BIGINT", SMALLSERIAL = "SMALLINT", SERIAL4 = "INTEGER", SERIAL8 = "BIGINT" },
}

-- canon_type(dialect, "VARCHAR(120)") -> "VARCHAR(120)": the form two equivalent types share.
local function canon_type(dialect, text)
  if text == nil then return "" end
  local base, args = split_type(text)
  base = common_synonyms[base] or base
  base = dialect_synonyms[dialect][base] or base
  if dialect == "postgresql" and base == "FLOAT" then
    local p = tonumber(args[1])
    base, args = (p and p <= 24) and "REAL" or "DOUBLE PRECISION", {}
  elseif dialect == "sqlite" and base == "FLOAT" then
    args = {}
  end
  if #args > 0 then return base .. "(" .. concat(args, ",") .. ")" end
  return base
end
autogen.canon_type = canon_type

local type_families = {
  VARCHAR = "string", CHAR = "string", TEXT = "string",
  SMALLINT = "int", INTEGER = "int", BIGINT = "int",
  REAL = "number", ["DOUBLE PRECISION"] = "number", NUMERIC = "number", FLOAT = "number",
  TIMESTAMP = "time", ["TIMESTAMP WITH TIME ZONE"] = "time", DATE = "time", DATETIME = "time",
}

-- Walks s outside quoted strings: fn(chunk) rewrites each unquoted chunk; quoted ones stay.
local function outside_quotes(s, fn)
  local out, i = {}, 1
  while i <= #s do
    local j = s:find("'", i, true)
    if not j then
      out[#out + 1] = fn(s:sub(i))
      break
    end
    out[#out + 1] = fn(s:sub(i, j - 1))
    local k = j + 1
    while true do
      local e = s:find("'", k, true)
      if not e then k = #s break end
      if s:sub(e + 1, e + 1) == "'" then k = e + 2 else k = e break end
    end
    out[#out + 1] = s:sub(j, k)
    i = k + 1
  end
  return concat(out)
end

-- The text inside outer parentheses that wrap all of s.
local function strip_parens(s)
  while s:sub(1, 1) == "(" and s:sub(-1) == ")" do
    local inner = s:match("^%b()$")
    if not inner then break end
    -- "(a) + (b)" is not wrapped as a whole: the first group must end at the last character.
    local first = s:match("^%b()")
    if #first ~= #s then break end
    s = trim(s:sub(2, -2))
  end
  return s
end

local now_forms = set { "now()", "current_timestamp", "current_timestamp()", "transaction_timestamp()",
                        "localtimestamp", "datetime('now')", "datetime('now','localtime')" }

-- Removes PostgreSQL casts (::text, ::character varying(20), ::"Kind"[]) from SQL outside quotes.
local cast_words = set { "varying", "precision", "without", "with", "time", "zone" }
local function strip_casts(chunk)
  local out, i = {}, 1
  while true do
    local j = chunk:find("::", i, true)
    if not j then
      out[#out + 1] = chunk:sub(i)
      break
    end
    out[#out + 1] = chunk:sub(i, j - 1)
    local k = chunk:match("^%s*()", j + 2)
    local name_end = chunk:match('^"[^"]*"()', k) or chunk:match("^[%a_][%w_%.]*()", k)
    if not name_end then
      out[#out + 1] = "::"
      i = j + 2
    else
      k = name_end
      while true do
        local word, after = chunk:match("^%s+([%a_]+)()", k)
        if word and cast_words[word:lower()] then k = after else break end
      end
      k = chunk:match("^%s*%b()()", k) or k
      while chunk:sub(k, k + 1) == "[]" do k = k + 2 end
      i = k
    end
  end
  return concat(out)
end

-- canon_sql(sql): an SQL expression in a comparable form: casts, whitespace, parentheses around a
-- lone name and outer parentheses gone, lower case outside quotes.
local function canon_sql(sql)
  local s = outside_quotes(trim(sql), function(chunk)
    return (strip_casts(chunk):lower():gsub("%s+", ""))
  end)
  local prev
  repeat
    prev = s
    s = (" " .. s):gsub("([^%w_])%(([%w_%.\"]+)%)", "%1%2"):sub(2)
    s = s:gsub("%((%b())%)", "%1")
    s = strip_parens(s)
  until s == prev
  return s
end
autogen.canon_sql = canon_sql

-- canon_default(sql): a server default in comparable form, or nil for none.
local function canon_default(sql)
  if sql == nil then return nil end
  local s = trim(sql)
  if s == "" or s:upper() == "NULL" then return nil end
  s = canon_sql(s)
  local literal = s:match("^'(.*)'$")
  if literal and not literal:gsub("''", ""):find("'", 1, true) then
    literal = literal:gsub("''", "'")
    local n = tonumber(literal)
    if n and literal:find("^%s*[-+]?[%d.]") then return "n:" .. num(n) end
    return "s:" .. literal
  end
  local n = tonumber(s)
  if n then return "n:" .. num(n) end
  if s == "true" then return "n:1" end
  if s == "false" then return "n:0" end
  if now_forms[s] then return "current_timestamp" end
  return s
end
autogen.canon_default = canon_default

local function is_sequence_default(sql)
  return type(sql) == "string" and sql:lower():find("^%s*nextval%(") ~= nil
end

------------------------------------------------------------------------------------------------
-- Reflected types as sa source
------------------------------------------------------------------------------------------------

local reflected_types = {
  INTEGER = "sa.INTEGER", INT = "sa.INTEGER", BIGINT = "sa.BIGINT", SMALLINT = "sa.SMALLINT",
  VARCHAR = "sa.VARCHAR", ["CHARACTER VARYING"] = "sa.VARCHAR", NVARCHAR = "sa.VARCHAR",
  CHAR = "sa.CHAR", CHARACTER = "sa.CHAR", NCHAR = "sa.CHAR",
  TEXT = "sa.TEXT", BOOLEAN = "sa.BOOLEAN", BOOL = "sa.BOOLEAN", FLOAT = "sa.FLOAT",
  NUMERIC = "sa.NUMERIC", DECIMAL = "sa.DECIMAL", DATE = "sa.DATE", DATETIME = "sa.DATETIME",
  TIMESTAMP = "sa.TIMESTAMP", TIME = "sa.TIME", BLOB = "sa.BLOB", BYTEA = "sa.LargeBinary", JSON = "sa.JSON",
  JSONB = "sa.JSONB", UUID = "sa.UUID", INTERVAL = "sa.Interval",
}

-- The sa type that renders as the reflected column's type; second result: a review note when
-- none does exactly.
local function reflected_type_src(dialect, col)
  if col.enum then
    local args = {}
    for i, v in ipairs(col.enum.values) do args[i] = q(v) end
    args[#args + 1] = "{ name = " .. q(col.enum.name) .. ", create_type = false }"
    return "sa.Enum(" .. concat(args, ", ") .. ")"
  end
  local text = col.type or ""
  local base, args = split_type(text)
  local tz = false
  if base:find(" WITH TIME ZONE$") then
    base, tz = base:gsub(" WITH TIME ZONE$", ""), true
  end
  base = base:gsub(" WITHOUT TIME ZONE$", "")
  if base == "DOUBLE PRECISION" or base == "DOUBLE" then
    base = "FLOAT"
  elseif base == "REAL" then
    base = "FLOAT"
    if dialect == "postgresql" then args = { "24" } end
  end
  local src = reflected_types[base]
  local note
  if not src then
    src = dialect == "sqlite" and "sa.BLOB" or "sa.TEXT"
    note = format("type %s has no luamig sa type; %s stands in", text == "" and "(none)" or q(text), src)
    args = {}
  end
  if dialect == "sqlite" and (split_type(text)) == "REAL" then
    note = format("type %s is written FLOAT by sa.FLOAT", q(text))
  end
  local parts = {}
  for i, a in ipairs(args) do parts[i] = a end
  if tz then parts[#parts + 1] = "{ timezone = true }" end
  if #parts == 0 then return src, note end
  return src .. "(" .. concat(parts, ", ") .. ")", note
end

-- A reflected server default as Lua source (the SQL as the database keeps it).
local function reflected_default_src(sql)
  return "sa.text(" .. q(sql) .. ")"
end

------------------------------------------------------------------------------------------------
-- The declared side: models.lua's tables with every name resolved
------------------------------------------------------------------------------------------------

local function merge_conventions(config_nc, md_nc)
  if not config_nc and not md_nc then return nil end
  local nc = {}
  for k, v in pairs(config_nc or {}) do nc[k] = v end
  for k, v in pairs(md_nc or {}) do nc[k] = v end
  return nc
end

-- Splits "schema.table" as ForeignKey keeps it.
local function split_ref(ref)
  local s, t = ref:match("^(.+)%.([^.]+)$")
  if s then return t, s end
  return ref, nil
end

local function where_text(r, v)
  if v == nil then return nil end
  if type(v) == "string" then return v end
  if kind(v) == "text" then return v.sql end
  return r:compiler(true):expr(v)
end

local function model_table(t, r, rc, dialect)
  local where = format("models: table '%s'", t.name)
  local function resolve(key, name, info, optional)
    local ok, final = pcall(r.constraint_name, r, key, name, info, where, optional)
    if not ok then fail("%s", final) end
    local f = final ~= nil and (kind(name) == "conv" or final ~= name)
    return final, f
  end
  local m = { name = t.name, comment = not is_none(t.comment) and t.comment or nil, columns = {}, by_name = {},
              uniques = {}, indexes = {}, fks = {}, checks = {}, table = t, opts = t.opts or {} }

  local pk_cols, pk_name = {}, nil
  for _, c in ipairs(t.constraints) do
    if kind(c) == "PrimaryKeyConstraint" then pk_cols, pk_name = copy_list(c.columns), c.name end
  end
  if #pk_cols == 0 then
    for _, col in ipairs(t.columns) do
      if col.primary_key then pk_cols[#pk_cols + 1] = col.name end
    end
  end
  local pk_set = set(pk_cols)
  local pkn, pkf = resolve("pk", pk_name, { table = t.name, columns = pk_cols }, true)
  m.pk = { columns = pk_cols, name = pkn, f = pkf, explicit = pk_name ~= nil }

  for _, col in ipairs(t.columns) do
    local ok, tsql = pcall(r.type_sql, r, col.type)
    if not ok then fail("%s, column '%s': %s", where, col.name, tsql) end
    local nullable = col.nullable
    if nullable == nil then nullable = not pk_set[col.name] end
    local dsql = r:default_sql(col.server_default)
    local c = { name = col.name, col = col, type_sql = tsql, canon = canon_type(dialect, tsql),
                nullable = nullable and true or false, pk = pk_set[col.name] or false,
                default_sql = dsql, default_canon = canon_default(dsql),
                comment = not is_none(col.comment) and col.comment or nil, computed = col.computed }
    m.columns[#m.columns + 1] = c
    m.by_name[col.name] = c
  end

  -- unique constraints: table-level ones, then the columns' unique = true (without index = true)
  for _, c in ipairs(t.constraints) do
    if kind(c) == "UniqueConstraint" then
      local n, f = resolve("uq", c.name, { table = t.name, columns = c.columns }, true)
      m.uniques[#m.uniques + 1] = { name = n, f = f, columns = copy_list(c.columns), deferrable = c.deferrable,
                                    initially = c.initially }
    end
  end
  for _, col in ipairs(t.columns) do
    if col.unique and not col.index then
      local n, f = resolve("uq", nil, { table = t.name, columns = { col.name } }, true)
      m.uniques[#m.uniques + 1] = { name = n, f = f, columns = { col.name }, column_flag = col.name }
    end
  end

  -- indexes: sa.Index items, then the columns' index = true
  local wopt = r.d.index_where_option
  for _, ix in ipairs(t.indexes) do
    local elems, exprs, cols = {}, {}, {}
    for i, e in ipairs(ix.expressions) do
      if type(e) == "string" or kind(e) == "Column" or kind(e) == "column" then
        local name = type(e) == "string" and e or e.name
        elems[i], exprs[i] = name, name
        cols[#cols + 1] = name
      else
        elems[i] = false
        exprs[i] = kind(e) == "text" and e.sql or r:compiler(true):expr(e)
      end
    end
    local n, f = resolve("ix", ix.name, { table = t.name, columns = cols }, false)
    m.indexes[#m.indexes + 1] = { name = n, f = f, elements = elems, expressions = exprs, columns = cols,
                                  unique = ix.unique and true or false,
                                  where = where_text(r, (ix.opts or {})[wopt]),
                                  using = dialect == "postgresql" and (ix.opts or {}).postgresql_using or nil }
  end
  for _, col in ipairs(t.columns) do
    if col.index then
      local n, f = resolve("ix", nil, { table = t.name, columns = { col.name } }, false)
      m.indexes[#m.indexes + 1] = { name = n, f = f, elements = { col.name }, expressions = { col.name },
                                    columns = { col.name }, unique = col.unique and true or false }
    end
  end

  -- foreign keys: table-level ones, then the columns' sa.ForeignKey items
  local function add_fk(cols, reftable, refcols, o, column)
    local rt, rs = split_ref(reftable)
    local n, f = resolve("fk", o.name, { table = t.name, columns = cols, reftable = reftable, refcolumns = refcols },
                         true)
    m.fks[#m.fks + 1] = { name = n, f = f, columns = cols, reftable = rt, refschema = rs, refcolumns = refcols,
                          ondelete = o.ondelete and o.ondelete:upper() or nil,
                          onupdate = o.onupdate and o.onupdate:upper() or nil,
                          deferrable = o.deferrable, initially = o.initially, match = o.match, column = column }
  end
  for _, c in ipairs(t.constraints) do
    if kind(c) == "ForeignKeyConstraint" then add_fk(copy_list(c.columns), c.reftable, copy_list(c.refcolumns), c) end
  end
  for _, col in ipairs(t.columns) do
    for _, fk in ipairs(col.foreign_keys) do add_fk({ col.name }, fk.table, { fk.column }, fk, col.name) end
  end
  for _, f in ipairs(m.fks) do
    if f.ondelete == "NO ACTION" then f.ondelete = nil end
    if f.onupdate == "NO ACTION" then f.onupdate = nil end
  end

  -- CHECK constraints; those a Boolean/Enum type carries are named as the DDL will name them (with
  -- the configured convention) and only keep the database's copy from counting as removed.
  for _, c in ipairs(t.constraints) do
    if kind(c) == "CheckConstraint" then
      local sqltext = type(c.sqltext) == "string" and c.sqltext or r:compiler(true):expr(c.sqltext)
      local ok, n = pcall(r.constraint_name, r, "ck", c.name, { table = t.name, columns = {} }, where, true)
      if not ok then n = c.name end
      m.checks[#m.checks + 1] = { name = n, f = n ~= nil and n ~= c.name, sqltext = sqltext, given = c.sqltext }
    end
  end
  for _, col in ipairs(t.columns) do
    local ck = rc:type_check(col.name, col.type)
    if ck then
      local ok, n = pcall(rc.constraint_name, rc, "ck", ck.name, { table = t.name, columns = { col.name } }, where,
                          true)
      m.checks[#m.checks + 1] = { name = ok and n or nil, sqltext = ck.sqltext, type_bound = true, column = col.name }
    end
  end
  return m
end

------------------------------------------------------------------------------------------------
-- The database side, through the inspector
------------------------------------------------------------------------------------------------

local function db_table(insp, name, dialect)
  local d = { name = name, columns = {}, by_name = {} }
  for _, c in ipairs(insp.columns(name)) do
    local default = c.default
    if is_sequence_default(default) then default = nil end
    local col = { name = c.name, type = c.type, canon = canon_type(dialect, c.enum and c.enum.name or c.type),
                  nullable = c.nullable and true or false, default_sql = default, raw_default = c.default,
                  default_canon = canon_default(default), comment = c.comment ~= "" and c.comment or nil,
                  pk = (c.primary_key or 0) ~= 0, autoincrement = c.autoincrement, enum = c.enum,
                  computed = c.computed, reflected = c }
    d.columns[#d.columns + 1] = col
    d.by_name[c.name] = col
  end
  local pk = insp.pk_constraint(name)
  d.pk = { name = pk.name, columns = copy_list(pk.constrained_columns) }
  d.uniques = {}
  for _, u in ipairs(insp.unique_constraints(name)) do
    d.uniques[#d.uniques + 1] = { name = u.name, columns = copy_list(u.column_names) }
  end
  d.indexes = {}
  for _, ix in ipairs(insp.indexes(name)) do
    if not ix.duplicates_constraint then
      local cols = {}
      for _, c in ipairs(ix.column_names) do
        if c then cols[#cols + 1] = c end
      end
      local opts = ix.dialect_options or {}
      d.indexes[#d.indexes + 1] = { name = ix.name, elements = copy_list(ix.column_names),
                                    expressions = copy_list(ix.expressions), columns = cols,
                                    unique = ix.unique and true or false,
                                    where = opts.sqlite_where or opts.postgresql_where,
                                    using = opts.postgresql_using }
    end
  end
  d.fks = {}
  for _, fk in ipairs(insp.foreign_keys(name)) do
    local o = fk.options or {}
    d.fks[#d.fks + 1] = { name = fk.name, columns = copy_list(fk.constrained_columns), reftable = fk.referred_table,
                          refschema = fk.referred_schema, refcolumns = copy_list(fk.referred_columns),
                          ondelete = o.ondelete and o.ondelete:upper() or nil,
                          onupdate = o.onupdate and o.onupdate:upper() or nil,
                          deferrable = o.deferrable, initially = o.initially, match = o.match }
  end
  d.checks = {}
  for _, ck in ipairs(insp.check_constraints(name)) do
    d.checks[#d.checks + 1] = { name = ck.name, sqltext = ck.sqltext }
  end
  local comment = insp.table_comment(name).text
  d.comment = comment ~= "" and comment or nil
  d.sql = insp.table_sql(name)
  return d
end

------------------------------------------------------------------------------------------------
-- Rendering pieces
------------------------------------------------------------------------------------------------

-- The run's settings: dialect, the names migrations will compute (config convention), batch.
local Gen = {}
Gen.__index = Gen

-- A constraint or index name as Lua source: op.f("...") when a naming convention made it (or when the
-- convention migrations run with would rewrite it), a plain string otherwise.
function Gen:name_src(key, name, f)
  if name == nil then return "nil" end
  local template = self.config_nc and self.config_nc[key]
  if f or (template and template:find("%(constraint_name)s", 1, true)) then return "op.f(" .. q(name) .. ")" end
  return q(name)
end

local function fk_target_src(fk, refcol)
  local t = fk.refschema and (fk.refschema .. "." .. fk.reftable) or fk.reftable
  return q(t .. "." .. refcol)
end

local function fk_fields(self, fk, with_name)
  local fields = {}
  if with_name and fk.name then fields[#fields + 1] = { "name", self:name_src("fk", fk.name, fk.f) } end
  if fk.ondelete then fields[#fields + 1] = { "ondelete", q(fk.ondelete) } end
  if fk.onupdate then fields[#fields + 1] = { "onupdate", q(fk.onupdate) } end
  if fk.deferrable ~= nil then fields[#fields + 1] = { "deferrable", fk.deferrable and "true" or "false" } end
  if fk.initially then fields[#fields + 1] = { "initially", q(fk.initially) } end
  if fk.match then fields[#fields + 1] = { "match", q(fk.match) } end
  return fields
end

-- sa.ForeignKey("users.id", { ondelete = ... }) for a one-column key.
function Gen:fk_item_src(fk)
  local o = opts_src(nil, fk_fields(self, fk, true))
  return "sa.ForeignKey(" .. fk_target_src(fk, fk.refcolumns[1]) .. (o and (", " .. o) or "") .. ")"
end

function Gen:fk_constraint_src(fk)
  local refs = {}
  for i, c in ipairs(fk.refcolumns) do refs[i] = fk_target_src(fk, c) end
  local o = opts_src(nil, fk_fields(self, fk, true))
  return "sa.ForeignKeyConstraint(" .. list_src(fk.columns) .. ", { " .. concat(refs, ", ") .. " }"
    .. (o and (", " .. o) or "") .. ")"
end

local function columns_args(cols)
  local parts = {}
  for i, c in ipairs(cols) do parts[i] = q(c) end
  return concat(parts, ", ")
end

function Gen:unique_src(u)
  local o = u.name and opts_src(nil, { { "name", self:name_src("uq", u.name, u.f) } })
  return "sa.UniqueConstraint(" .. columns_args(u.columns) .. (o and (", " .. o) or "") .. ")"
end

function Gen:check_src(ck)
  local text = ck.given and expr_src(ck.given) or q(ck.sqltext)
  local o = ck.name and opts_src(nil, { { "name", self:name_src("ck", ck.name, ck.f) } })
  return "sa.CheckConstraint(" .. text .. (o and (", " .. o) or "") .. ")"
end

-- sa.Column source of a declared column. info: { pk_inline, unique_inline, fks = { fk... } }
function Gen:model_column_src(c, info)
  local col = c.col
  local items = {}
  for _, fk in ipairs(info.fks or {}) do items[#items + 1] = self:fk_item_src(fk) end
  if col.computed then
    local cp = col.computed
    local o = cp.persisted ~= nil and opts_src(nil, { { "persisted", cp.persisted and "true" or "false" } })
    items[#items + 1] = "sa.Computed(" .. (expr_src(cp.sqltext) or q(tostring(cp.sqltext)))
      .. (o and (", " .. o) or "") .. ")"
  end
  local fields = {}
  if info.pk_inline then fields[#fields + 1] = { "primary_key", "true" } end
  local default_nullable = not info.pk
  if c.nullable ~= default_nullable then fields[#fields + 1] = { "nullable", c.nullable and "true" or "false" } end
  if info.unique_inline then fields[#fields + 1] = { "unique", "true" } end
  if col.autoincrement ~= nil and col.autoincrement ~= "auto" then
    fields[#fields + 1] = { "autoincrement", type(col.autoincrement) == "string" and q(col.autoincrement)
                            or (col.autoincrement and "true" or "false") }
  end
  if not is_none(col.server_default) then
    local sd = col.server_default
    local src = type(sd) == "boolean" and (sd and "sa.true_()" or "sa.false_()") or expr_src(sd)
    fields[#fields + 1] = { "server_default", src or reflected_default_src(c.default_sql) }
  end
  if c.comment then fields[#fields + 1] = { "comment", q(c.comment) } end
  local o = opts_src(items, fields)
  return "sa.Column(" .. q(c.name) .. ", " .. type_src(col.type) .. (o and (", " .. o) or "") .. ")"
end

-- sa.Column source of a reflected column. info: { pk_inline, pk, fks, unique_inline, table }
-- Second result: review notes.
function Gen:db_column_src(c, info)
  local notes = {}
  local tsrc, note = reflected_type_src(self.dialect, c.reflected)
  if note then notes[#notes + 1] = format("column '%s.%s': %s", info.table, c.name, note) end
  local items = {}
  for _, fk in ipairs(info.fks or {}) do items[#items + 1] = self:fk_item_src(fk) end
  if c.computed and c.computed.sqltext then
    local persisted = c.computed.persisted
    local o = persisted ~= nil and opts_src(nil, { { "persisted", persisted and "true" or "false" } })
    items[#items + 1] = "sa.Computed(" .. q(c.computed.sqltext) .. (o and (", " .. o) or "") .. ")"
  end
  local fields = {}
  if info.pk_inline then fields[#fields + 1] = { "primary_key", "true" } end
  if c.nullable ~= not info.pk then fields[#fields + 1] = { "nullable", c.nullable and "true" or "false" } end
  if info.unique_inline then fields[#fields + 1] = { "unique", "true" } end
  -- a PostgreSQL integer key without a sequence must not become SERIAL when created again
  if self.dialect == "postgresql" and info.pk and info.single_pk and not c.autoincrement
     and (c.canon == "INTEGER" or c.canon == "BIGINT" or c.canon == "SMALLINT") then
    fields[#fields + 1] = { "autoincrement", "false" }
  end
  if c.default_sql and not c.computed then
    fields[#fields + 1] = { "server_default", reflected_default_src(c.default_sql) }
  end
  if c.comment and self.dialect == "postgresql" then fields[#fields + 1] = { "comment", q(c.comment) } end
  local o = opts_src(items, fields)
  return "sa.Column(" .. q(c.name) .. ", " .. tsrc .. (o and (", " .. o) or "") .. ")", notes
end

------------------------------------------------------------------------------------------------
-- Operations. A call renders as `op.fn(args with the table at tpos)` or, in a batch block,
-- `batch.fn(args)`.
------------------------------------------------------------------------------------------------

local function call(fn, args, tpos)
  return { fn = fn, args = args, tpos = tpos }
end

local function render_call(c, table_name, in_batch)
  local args = copy_list(c.args)
  if not in_batch then
    if c.tpos then table.insert(args, c.tpos, q(table_name)) end
    if c.plain_tail then args[#args + 1] = c.plain_tail end
    return "op." .. c.fn .. "(" .. concat(args, ", ") .. ")"
  end
  return "batch." .. c.fn .. "(" .. concat(args, ", ") .. ")"
end

local function append_opts(args, o)
  if o then args[#args + 1] = o end
  return args
end

function Gen:create_index_call(ix)
  local elems = {}
  for i, e in ipairs(ix.elements) do
    elems[i] = e and q(e) or ("sa.text(" .. q(ix.expressions[i]) .. ")")
  end
  local fields = {}
  if ix.unique then fields[#fields + 1] = { "unique", "true" } end
  if ix.where then fields[#fields + 1] = { self.dialect == "sqlite" and "sqlite_where" or "postgresql_where",
                                           "sa.text(" .. q(ix.where) .. ")" } end
  if ix.using then fields[#fields + 1] = { "postgresql_using", q(ix.using) } end
  local args = { self:name_src("ix", ix.name, ix.f), "{ " .. concat(elems, ", ") .. " }" }
  return call("create_index", append_opts(args, opts_src(nil, fields)), 2)
end

function Gen:drop_index_call(ix, table_name)
  local c = call("drop_index", { self:name_src("ix", ix.name, ix.f) })
  c.plain_tail = "{ table_name = " .. q(table_name) .. " }"
  return c
end

function Gen:drop_constraint_call(name, f, key, ctype)
  return call("drop_constraint", { self:name_src(key, name, f), "{ type = " .. q(ctype) .. " }" }, 2)
end

function Gen:create_unique_call(u)
  return call("create_unique_constraint", { self:name_src("uq", u.name, u.f), list_src(u.columns) }, 2)
end

function Gen:create_fk_call(fk)
  local target = fk.refschema and (fk.refschema .. "." .. fk.reftable) or fk.reftable
  local fields = fk_fields(self, fk, false)
  local args = { self:name_src("fk", fk.name, fk.f), q(target), list_src(fk.columns), list_src(fk.refcolumns) }
  return call("create_foreign_key", append_opts(args, opts_src(nil, fields)), 2)
end

function Gen:create_check_call(ck)
  local text = ck.given and (expr_src(ck.given) or q(ck.sqltext)) or q(ck.sqltext)
  return call("create_check_constraint", { self:name_src("ck", ck.name, ck.f), text }, 2)
end

------------------------------------------------------------------------------------------------
-- Names PostgreSQL gives unnamed constraints (so that a downgrade can drop what an upgrade made).
------------------------------------------------------------------------------------------------

local function pg_default_name(table_name, cols, suffix)
  local name = table_name .. "_" .. concat(cols, "_") .. "_" .. suffix
  if #name > 63 then return nil end
  return name
end

------------------------------------------------------------------------------------------------
-- Comparison
------------------------------------------------------------------------------------------------

local function cols_text(cols)
  local parts = {}
  for i, c in ipairs(cols) do parts[i] = c == false and "<expression>" or c end
  return concat(parts, ", ")
end

local function sig(cols)
  local s = copy_list(cols)
  table.sort(s)
  return concat(s, "\0")
end

local function intersects(cols, dropped)
  for _, c in ipairs(cols or {}) do
    if dropped[c] then return true end
  end
  return false
end

local function named(name)
  return name and ("'" .. name .. "' ") or ""
end

local function default_text(sql)
  return sql == nil and "none" or sql
end

local function mentions(sqltext, colname)
  if not sqltext then return false end
  local s = " " .. sqltext:lower():gsub('"', " ") .. " "
  return s:find("[^%w_]" .. colname:lower():gsub("%p", "%%%0") .. "[^%w_]") ~= nil
end

-- An op of a changed table: up/down are calls (or nil), rebuild_up/rebuild_down say SQLite needs a
-- batch for them, cols the columns a constraint drop touches.
local function new_op(diff)
  return { diffs = type(diff) == "table" and diff or { diff } }
end

-- Does adding column c (declared or reflected) need a batch on SQLite?
local function add_needs_rebuild(c, unique)
  if c.pk or unique then return true end
  if not c.nullable and c.default_sql == nil then return true end
  if c.default_sql and c.default_sql:find("^%s*%(") then return true end
  if c.computed then return true end
  return false
end

-- Does dropping column `name` need a batch on SQLite? (it is a key, in a constraint or a CHECK)
local function drop_needs_rebuild(name, pk_cols, uniques, fks, checks)
  for _, c in ipairs(pk_cols or {}) do if c == name then return true end end
  for _, u in ipairs(uniques) do if intersects(u.columns, { [name] = true }) then return true end end
  for _, f in ipairs(fks) do if intersects(f.columns, { [name] = true }) then return true end end
  for _, ck in ipairs(checks) do if mentions(ck.sqltext, name) then return true end end
  return false
end

-- The columns: renames pointed out, columns added, columns altered.
function Gen:compare_columns(cx)
  local t, m, d, ops = cx.t, cx.m, cx.d, cx.ops
  local reviews, added, dropped, inline_fk_up = cx.reviews, cx.added, cx.dropped, cx.inline_fk_up
  local dialect = self.dialect
  -- renames look like a drop and an add of the same type
  for _, dc in ipairs(dropped) do
    for _, ac in ipairs(added) do
      if dc.canon == ac.canon then
        reviews[#reviews + 1] = { up = format("'%s.%s' dropped and '%s.%s' added share type %s: if this is a rename, "
          .. "use "
          .. "op.alter_column(%s, %s, { new_column_name = %s }) instead", t, dc.name, t, ac.name, dc.canon,
          q(t), q(dc.name), q(ac.name)),
          down = format("if '%s.%s' was renamed to '%s', use op.alter_column(%s, %s, { new_column_name = %s }) instead",
          t, dc.name, ac.name, q(t), q(ac.name), q(dc.name)) }
      end
    end
  end

  -- columns added
  for _, c in ipairs(added) do
    -- op.add_column makes no enum type: an explicit CREATE TYPE goes first
    local ty = c.col.type
    if dialect == "postgresql" and ty.name == "Enum" and ty.native_enum and ty.create_type and ty.enum_name
       and not self.db_enums[ty.enum_name] then
      self.db_enums[ty.enum_name] = true
      local tname = self.r:table_name(ty.enum_name, ty.schema)
      local values = {}
      for i, v in ipairs(ty.enums) do values[i] = self.r:literal(v) end
      local o = new_op({})
      o.up = call("execute", { q("CREATE TYPE " .. tname .. " AS ENUM (" .. concat(values, ", ") .. ")") })
      o.down = call("execute", { q("DROP TYPE " .. tname) })
      ops[#ops + 1] = o
    end
    local fks = {}
    for _, fk in ipairs(m.fks) do
      if #fk.columns == 1 and fk.columns[1] == c.name then
        fks[#fks + 1] = fk
        inline_fk_up[fk] = true
      end
    end
    local o = new_op(format("add_column '%s.%s'", t, c.name))
    o.up = call("add_column", { self:model_column_src(c, { pk = c.pk, pk_inline = c.pk, fks = fks }) }, 1)
    o.down = call("drop_column", { q(c.name) }, 1)
    o.rebuild_up = add_needs_rebuild(c, false)
    o.rebuild_down = drop_needs_rebuild(c.name, m.pk.columns, m.uniques, m.fks, m.checks)
    o.drops_down = c.name
    if not c.nullable and c.default_sql == nil and not c.pk then
      o.review_up = format("'%s.%s' is NOT NULL without a server_default: rows already in '%s' need a value",
                           t, c.name, t)
    end
    ops[#ops + 1] = o
  end

  -- columns altered
  for _, c in ipairs(m.columns) do
    local dc = d.by_name[c.name]
    if dc and not c.computed and not dc.computed then
      local diffs = {}
      local up_f, down_f = {}, {}
      local d_type_src = reflected_type_src(dialect, dc.reflected)
      local m_type_src = type_src(c.col.type)
      local type_changed = dc.canon ~= c.canon
      local null_changed = c.nullable ~= dc.nullable and not (c.pk and dc.pk)
      local default_changed = c.default_canon ~= dc.default_canon
      local comment_changed = dialect == "postgresql" and c.comment ~= dc.comment
      if type_changed or null_changed or default_changed or comment_changed then
        up_f[#up_f + 1] = { "existing_type", d_type_src }
        down_f[#down_f + 1] = { "existing_type", m_type_src }
        if type_changed then
          diffs[#diffs + 1] = format("modify_type '%s.%s': %s -> %s", t, c.name, dc.type or "?", c.type_sql)
          up_f[#up_f + 1] = { "type", m_type_src }
          down_f[#down_f + 1] = { "type", d_type_src }
        end
        if null_changed then
          diffs[#diffs + 1] = format("modify_nullable '%s.%s': %s -> %s", t, c.name, tostring(dc.nullable),
                                     tostring(c.nullable))
          up_f[#up_f + 1] = { "nullable", tostring(c.nullable) }
          down_f[#down_f + 1] = { "nullable", tostring(dc.nullable) }
        else
          up_f[#up_f + 1] = { "existing_nullable", tostring(dc.nullable) }
          down_f[#down_f + 1] = { "existing_nullable", tostring(c.nullable) }
        end
        local m_default_src = is_none(c.col.server_default) and "sa.null"
          or (type(c.col.server_default) == "boolean" and (c.col.server_default and "sa.true_()" or "sa.false_()"))
          or expr_src(c.col.server_default) or reflected_default_src(c.default_sql)
        local d_default_src = dc.default_sql and reflected_default_src(dc.default_sql) or "sa.null"
        if default_changed then
          diffs[#diffs + 1] = format("modify_default '%s.%s': %s -> %s", t, c.name, default_text(dc.default_sql),
                                     default_text(c.default_sql))
          up_f[#up_f + 1] = { "server_default", m_default_src }
          down_f[#down_f + 1] = { "server_default", d_default_src }
          if dc.default_sql then up_f[#up_f + 1] = { "existing_server_default", d_default_src } end
          if c.default_sql then down_f[#down_f + 1] = { "existing_server_default", m_default_src } end
        else
          if dc.default_sql then up_f[#up_f + 1] = { "existing_server_default", d_default_src } end
          if c.default_sql then down_f[#down_f + 1] = { "existing_server_default", m_default_src } end
        end
        if comment_changed then
          diffs[#diffs + 1] = format("modify_comment '%s.%s': %s -> %s", t, c.name,
                                     dc.comment and q(dc.comment) or "none", c.comment and q(c.comment) or "none")
          up_f[#up_f + 1] = { "comment", c.comment and q(c.comment) or "sa.null" }
          down_f[#down_f + 1] = { "comment", dc.comment and q(dc.comment) or "sa.null" }
          if dc.comment then up_f[#up_f + 1] = { "existing_comment", q(dc.comment) } end
          if c.comment then down_f[#down_f + 1] = { "existing_comment", q(c.comment) } end
        end
        local o = new_op(diffs)
        o.up = call("alter_column", { q(c.name), opts_src(nil, up_f) }, 1)
        o.down = call("alter_column", { q(c.name), opts_src(nil, down_f) }, 1)
        o.rebuild_up, o.rebuild_down = true, true
        if dialect == "sqlite" then
          -- comments alone change nothing on SQLite; they are not compared there
          local rebuild = type_changed or null_changed or default_changed
          o.rebuild_up, o.rebuild_down = rebuild, rebuild
        end
        if type_changed and dialect == "postgresql" then
          local fa, fb = type_families[(split_type(dc.canon))], type_families[(split_type(c.canon))]
          if fa ~= fb then
            o.review_up = format("'%s.%s' changes from %s to %s: PostgreSQL may need postgresql_using = %s", t, c.name,
                                 dc.canon, c.canon, q(format("%s::%s", c.name, c.type_sql:lower())))
          end
        end
        if null_changed and not c.nullable then
          o.review_up = o.review_up or format("'%s.%s' becomes NOT NULL: rows holding NULL there must be updated first",
                                              t, c.name)
        end
        ops[#ops + 1] = o
      end
    end
  end
end

-- Indexes and unique constraints (a unique index may stand for a unique constraint, or the other way round).
function Gen:compare_indexes_and_uniques(cx)
  local t, m, d, ops = cx.t, cx.m, cx.d, cx.ops
  local dialect = self.dialect
  -- indexes (and unique indexes that stand for unique constraints, or the other way round)
  local m_ix, d_ix = {}, {}
  for _, ix in ipairs(m.indexes) do m_ix[ix.name] = ix end
  for _, ix in ipairs(d.indexes) do d_ix[ix.name] = ix end
  local d_uq_by_name, d_uq_by_sig = {}, {}
  for _, u in ipairs(d.uniques) do
    if u.name then d_uq_by_name[u.name] = u end
    d_uq_by_sig[sig(u.columns)] = u
  end
  local covered_d_uq, covered_m_uq = {}, {}
  local function ix_differs(a, b)
    if a.unique ~= b.unique then return true end
    if #a.expressions ~= #b.expressions then return true end
    for i = 1, #a.expressions do
      local ea, eb = a.elements[i], b.elements[i]
      if (ea and eb) then
        if ea ~= eb then return true end
      elseif ea or eb then
        return true
      elseif dialect == "sqlite" and canon_sql(a.expressions[i]) ~= canon_sql(b.expressions[i]) then
        return true
      end
    end
    if (a.where == nil) ~= (b.where == nil) then return true end
    if dialect == "sqlite" and a.where and canon_sql(a.where) ~= canon_sql(b.where) then return true end
    return false
  end
  local function ix_desc(ix)
    return format("'%s' on '%s' (%s)%s", ix.name, t, cols_text(ix.expressions), ix.unique and " unique" or "")
  end
  local function drop_ix_op(ix, what)
    local o = new_op(format("remove_index %s", ix_desc(ix)))
    o.up = self:drop_index_call(ix, t)
    o.down = self:create_index_call(ix)
    o.cols_up = ix.columns
    if what then o.diffs[1] = what end
    return o
  end
  local function add_ix_op(ix)
    local o = new_op(format("add_index %s", ix_desc(ix)))
    o.up = self:create_index_call(ix)
    o.down = self:drop_index_call(ix, t)
    o.cols_down = ix.columns
    return o
  end
  for _, name in ipairs(sorted_keys(d_ix)) do
    local dix, mix = d_ix[name], m_ix[name]
    if not mix then
      -- a unique index the models declare as a unique constraint
      local mu
      if dix.unique and #dix.columns == #dix.elements then
        for _, u in ipairs(m.uniques) do
          if (u.name == name or u.name == nil) and sig(u.columns) == sig(dix.columns) and not covered_m_uq[u] then
            mu = u
            break
          end
        end
      end
      if mu then covered_m_uq[mu] = true else ops[#ops + 1] = drop_ix_op(dix) end
    elseif ix_differs(mix, dix) then
      ops[#ops + 1] = drop_ix_op(dix)
    end
  end
  for _, ix in ipairs(m.indexes) do
    local dix = d_ix[ix.name]
    if not dix or ix_differs(ix, dix) then
      local du = ix.unique and #ix.columns == #ix.elements and not ix.where
        and (d_uq_by_name[ix.name] or (d_uq_by_sig[sig(ix.columns)] and d_uq_by_sig[sig(ix.columns)].name == nil
                                       and d_uq_by_sig[sig(ix.columns)]))
      if not dix and du and sig(du.columns) == sig(ix.columns) then
        covered_d_uq[du] = true
      else
        ops[#ops + 1] = add_ix_op(ix)
      end
    end
  end

  -- unique constraints: by name, then unnamed ones by their columns
  local pairs_uq, m_left, d_left = {}, {}, {}
  local d_used = {}
  for _, u in ipairs(m.uniques) do
    if not covered_m_uq[u] then
      local match
      if u.name then
        for _, du in ipairs(d.uniques) do
          if du.name == u.name and not d_used[du] then match = du break end
        end
      end
      if match then
        d_used[match] = true
        pairs_uq[#pairs_uq + 1] = { u, match }
      else
        m_left[#m_left + 1] = u
      end
    end
  end
  local m_unmatched = {}
  for _, u in ipairs(m_left) do
    local match
    for _, du in ipairs(d.uniques) do
      if not d_used[du] and not covered_d_uq[du] and sig(du.columns) == sig(u.columns)
         and (u.name == nil or du.name == nil) then
        match = du
        break
      end
    end
    if match then d_used[match] = true else m_unmatched[#m_unmatched + 1] = u end
  end
  for _, du in ipairs(d.uniques) do
    if not d_used[du] and not covered_d_uq[du] then
      -- a unique constraint the models declare as a unique index
      local ix = m_ix[du.name or ""]
      local by_cols
      for _, mix in ipairs(m.indexes) do
        if mix.unique and sig(mix.columns) == sig(du.columns) and #mix.columns == #mix.elements
           and (du.name == nil or du.name == mix.name) then by_cols = mix end
      end
      if not ((ix and ix.unique and sig(ix.columns) == sig(du.columns)) or by_cols) then d_left[#d_left + 1] = du end
    end
  end
  for _, p in ipairs(pairs_uq) do
    if sig(p[1].columns) ~= sig(p[2].columns) then
      d_left[#d_left + 1] = p[2]
      m_unmatched[#m_unmatched + 1] = p[1]
    end
  end
  local function uq_desc(u)
    return format("%son '%s' (%s)", named(u.name), t, cols_text(u.columns))
  end
  for _, du in ipairs(d_left) do
    local o = new_op("remove_unique_constraint " .. uq_desc(du))
    o.removes_unique = true
    if du.name then o.up = self:drop_constraint_call(du.name, false, "uq", "unique") end
    if du.name == nil then o.unnamed_up = { key = "uq", ctype = "unique", columns = du.columns } end
    o.down = self:create_unique_call(du)
    o.cols_up = du.columns
    o.rebuild_up, o.rebuild_down = true, true
    ops[#ops + 1] = o
  end
  for _, u in ipairs(m_unmatched) do
    local o = new_op("add_unique_constraint " .. uq_desc(u))
    o.up = self:create_unique_call(u)
    local dname = u.name or (dialect == "postgresql" and pg_default_name(t, u.columns, "key"))
    if dname then o.down = self:drop_constraint_call(dname, u.name ~= nil and u.f, "uq", "unique") end
    if not dname then o.unnamed_down = { key = "uq", ctype = "unique", columns = u.columns } end
    o.cols_down = u.columns
    o.rebuild_up, o.rebuild_down = true, true
    ops[#ops + 1] = o
  end
end

-- Foreign keys.
function Gen:compare_foreign_keys(cx)
  local t, m, d, ops = cx.t, cx.m, cx.d, cx.ops
  local dropped_set, inline_fk_up, inline_fk_down = cx.dropped_set, cx.inline_fk_up, cx.inline_fk_down
  local dialect = self.dialect
  -- foreign keys: by what they link (names are not compared, as in Alembic)
  local function fk_sig(f)
    return concat(f.columns, ",") .. ">" .. (f.reftable or "") .. "(" .. concat(f.refcolumns, ",") .. ")"
      .. (f.ondelete or "") .. "|" .. (f.onupdate or "")
  end
  local d_fk_used = {}
  local fk_add = {}
  for _, f in ipairs(m.fks) do
    local s = fk_sig(f)
    local match
    for _, df in ipairs(d.fks) do
      if not d_fk_used[df] and fk_sig(df) == s then match = df break end
    end
    if match then d_fk_used[match] = true else fk_add[#fk_add + 1] = f end
  end
  local function fk_desc(f)
    return format("%son '%s' (%s) -> '%s' (%s)%s%s", named(f.name), t, cols_text(f.columns), f.reftable,
                  cols_text(f.refcolumns), f.ondelete and (" ondelete " .. f.ondelete) or "",
                  f.onupdate and (" onupdate " .. f.onupdate) or "")
  end
  for _, df in ipairs(d.fks) do
    if not d_fk_used[df] then
      local o = new_op("remove_foreign_key " .. fk_desc(df))
      if df.name then o.up = self:drop_constraint_call(df.name, false, "fk", "foreignkey") end
      if df.name == nil then
        o.unnamed_up = { key = "fk", ctype = "foreignkey", columns = df.columns, reftable = df.reftable,
                         refcolumns = df.refcolumns }
      end
      o.cols_up = df.columns
      -- a one-column key of a dropped column comes back with the column
      if #df.columns == 1 and dropped_set[df.columns[1]] then
        inline_fk_down[df.columns[1]] = inline_fk_down[df.columns[1]] or {}
        table.insert(inline_fk_down[df.columns[1]], df)
      else
        o.down = self:create_fk_call(df)
      end
      o.rebuild_up, o.rebuild_down = true, true
      ops[#ops + 1] = o
    end
  end
  for _, f in ipairs(fk_add) do
    local o = new_op("add_foreign_key " .. fk_desc(f))
    if not inline_fk_up[f] then o.up = self:create_fk_call(f) end
    local dname = f.name or (dialect == "postgresql" and pg_default_name(t, f.columns, "fkey"))
    if dname then o.down = self:drop_constraint_call(dname, f.name ~= nil and f.f, "fk", "foreignkey") end
    if not dname then
      o.unnamed_down = { key = "fk", ctype = "foreignkey", columns = f.columns, reftable = f.reftable,
                         refcolumns = f.refcolumns }
    end
    o.cols_down = f.columns
    o.rebuild_up, o.rebuild_down = not inline_fk_up[f], true
    ops[#ops + 1] = o
  end
end

-- CHECK constraints.
function Gen:compare_checks(cx)
  local t, m, d, ops = cx.t, cx.m, cx.d, cx.ops
  local dropped, added_set, dropped_set = cx.dropped, cx.added_set, cx.dropped_set
  local dialect = self.dialect
  -- CHECK constraints: named ones, by name (the SQL text is not compared)
  local m_ck_by_name, d_ck_by_name = {}, {}
  for _, ck in ipairs(m.checks) do if ck.name then m_ck_by_name[ck.name] = ck end end
  for _, ck in ipairs(d.checks) do if ck.name then d_ck_by_name[ck.name] = ck end end
  local has_unnamed_m = false
  for _, ck in ipairs(m.checks) do if not ck.name then has_unnamed_m = true end end
  local function ck_desc(ck) return format("%son '%s'", named(ck.name), t) end
  for _, name in ipairs(sorted_keys(d_ck_by_name)) do
    local dck = d_ck_by_name[name]
    if not m_ck_by_name[name] then
      local same_text = false
      for _, ck in ipairs(m.checks) do
        if canon_sql(ck.sqltext) == canon_sql(dck.sqltext or "") then same_text = true end
      end
      local pg_auto = dialect == "postgresql" and has_unnamed_m
        and name:find("^" .. t:gsub("%p", "%%%0") .. "_.*check%d*$")
      -- a CHECK of a dropped column goes with the column
      local on_dropped = false
      for dn in pairs(dropped_set) do if mentions(dck.sqltext, dn) then on_dropped = true end end
      if not same_text and not pg_auto then
        local o = new_op("remove_check_constraint " .. ck_desc(dck))
        o.up = self:drop_constraint_call(name, false, "ck", "check")
        o.down = self:create_check_call(dck)
        o.rebuild_up, o.rebuild_down = true, true
        if on_dropped then
          o.cols_up = {}
          for dn in pairs(dropped_set) do if mentions(dck.sqltext, dn) then o.cols_up[#o.cols_up + 1] = dn end end
        end
        ops[#ops + 1] = o
      end
    end
  end
  for _, ck in ipairs(m.checks) do
    if ck.name and not ck.type_bound and not d_ck_by_name[ck.name] then
      local same_text = false
      for _, dck in ipairs(d.checks) do
        if dck.name == nil and canon_sql(ck.sqltext) == canon_sql(dck.sqltext or "") then same_text = true end
      end
      if not same_text then
        local o = new_op("add_check_constraint " .. ck_desc(ck))
        o.up = self:create_check_call(ck)
        o.down = self:drop_constraint_call(ck.name, ck.f, "ck", "check")
        o.rebuild_up, o.rebuild_down = true, true
        o.cols_down = {}
        for an in pairs(added_set) do if mentions(ck.sqltext, an) then o.cols_down[#o.cols_down + 1] = an end end
        ops[#ops + 1] = o
      end
    end
  end

  -- SQLite: an unnamed CHECK that names a dropped column must go first (batch mode keeps the rest);
  -- the downgrade adds it back, unnamed
  if dialect == "sqlite" then
    for _, dck in ipairs(d.checks) do
      if dck.name == nil and dck.sqltext then
        local on = {}
        for _, dc in ipairs(dropped) do
          if mentions(dck.sqltext, dc.name) then on[#on + 1] = dc.name end
        end
        if #on > 0 then
          local o = new_op({})
          o.unnamed_up = { key = "ck", ctype = "check", sqltext = dck.sqltext }
          o.down = call("create_check_constraint", { "nil", q(dck.sqltext) }, 2)
          o.cols_up = on
          o.rebuild_up, o.rebuild_down = true, true
          ops[#ops + 1] = o
        end
      end
    end
  end
end

-- The table comment.
function Gen:compare_table_comment(cx)
  local t, m, d, ops = cx.t, cx.m, cx.d, cx.ops
  local dialect = self.dialect
  -- table comment (PostgreSQL keeps comments; SQLite does not)
  if dialect == "postgresql" and m.comment ~= d.comment then
    local o
    local function set_comment(text, existing)
      local fields = existing and opts_src(nil, { { "existing_comment", q(existing) } })
      return call("create_table_comment", append_opts({ q(text) }, fields), 1)
    end
    local function drop_comment(existing)
      return call("drop_table_comment", append_opts({}, opts_src(nil, { { "existing_comment", q(existing) } })), 1)
    end
    if m.comment and d.comment then
      o = new_op(format("modify_table_comment '%s': %s -> %s", t, q(d.comment), q(m.comment)))
      o.up, o.down = set_comment(m.comment, d.comment), set_comment(d.comment, m.comment)
    elseif m.comment then
      o = new_op(format("add_table_comment '%s': %s", t, q(m.comment)))
      o.up, o.down = set_comment(m.comment), drop_comment(m.comment)
    else
      o = new_op(format("remove_table_comment '%s': %s", t, q(d.comment)))
      o.up, o.down = drop_comment(d.comment), set_comment(d.comment)
    end
    ops[#ops + 1] = o
  end
end

-- Columns dropped: last, so that constraints and indexes on them went first.
function Gen:drop_columns(cx)
  local t, d, ops = cx.t, cx.d, cx.ops
  local dropped, inline_fk_down = cx.dropped, cx.inline_fk_down
  local dialect = self.dialect
  -- columns dropped: last, so constraints and indexes on them went first
  for _, c in ipairs(dropped) do
    local o = new_op(format("remove_column '%s.%s'", t, c.name))
    local info = { table = t, pk = c.pk, pk_inline = c.pk and #d.pk.columns == 1, single_pk = #d.pk.columns == 1,
                   fks = inline_fk_down[c.name] }
    local unique_inline = false
    if dialect == "sqlite" then
      for _, u in ipairs(d.uniques) do
        if u.name == nil and #u.columns == 1 and u.columns[1] == c.name then unique_inline = true end
      end
    end
    local src, notes = self:db_column_src(c, info)
    o.up = call("drop_column", { q(c.name) }, 1)
    o.down = call("add_column", { src }, 1)
    o.drops_up = c.name
    o.rebuild_up = drop_needs_rebuild(c.name, d.pk.columns, d.uniques, d.fks, d.checks)
    o.rebuild_down = add_needs_rebuild(c, unique_inline)
    if unique_inline then
      -- unique = true rides along: the column's unnamed UNIQUE comes back with it
      o.down.args[1] = self:db_column_src(c, { table = t, pk = c.pk, pk_inline = info.pk_inline,
                                                single_pk = info.single_pk, fks = info.fks, unique_inline = true })
      for _, x in ipairs(ops) do
        if x.removes_unique and #x.cols_up == 1 and x.cols_up[1] == c.name then
          x.down = nil
        end
      end
    end
    if #notes > 0 then o.review_down = concat(notes, "; ") end
    ops[#ops + 1] = o
  end
end

-- compare_table(m, d): the ops that turn table d (database) into m (declared), in upgrade order,
-- and the review notes for the top of the table's block.
function Gen:compare_table(m, d)
  local cx = { t = m.name, m = m, d = d, ops = {}, reviews = {}, added = {}, dropped = {}, added_set = {},
               dropped_set = {}, inline_fk_up = {}, inline_fk_down = {} }
  for _, c in ipairs(m.columns) do
    if not d.by_name[c.name] then cx.added[#cx.added + 1] = c; cx.added_set[c.name] = true end
  end
  for _, c in ipairs(d.columns) do
    if not m.by_name[c.name] then cx.dropped[#cx.dropped + 1] = c; cx.dropped_set[c.name] = true end
  end
  self:compare_columns(cx)
  self:compare_indexes_and_uniques(cx)
  self:compare_foreign_keys(cx)
  self:compare_checks(cx)
  self:compare_table_comment(cx)
  self:drop_columns(cx)
  return cx.ops, cx.reviews
end

------------------------------------------------------------------------------------------------
-- Whole tables
------------------------------------------------------------------------------------------------

-- op.create_table lines for a declared table, then its indexes.
function Gen:create_model_table(m)
  local lines = { "op.create_table(" .. q(m.name) .. "," }
  local items = {}
  local single_pk = #m.pk.columns == 1 and not m.pk.name
  local inline_uq = {}
  for _, u in ipairs(m.uniques) do
    if u.column_flag and not u.name then inline_uq[u.column_flag] = u end
  end
  local inline_fk = {}
  for _, fk in ipairs(m.fks) do
    if #fk.columns == 1 and fk.column then
      inline_fk[fk.column] = inline_fk[fk.column] or {}
      table.insert(inline_fk[fk.column], fk)
    end
  end
  for _, c in ipairs(m.columns) do
    items[#items + 1] = self:model_column_src(c, { pk = c.pk, pk_inline = single_pk and c.pk,
                                                   unique_inline = inline_uq[c.name] ~= nil,
                                                   fks = inline_fk[c.name] })
  end
  if #m.pk.columns > 0 and not single_pk then
    local o = m.pk.name and opts_src(nil, { { "name", self:name_src("pk", m.pk.name, m.pk.f) } })
    items[#items + 1] = "sa.PrimaryKeyConstraint(" .. columns_args(m.pk.columns) .. (o and (", " .. o) or "") .. ")"
  end
  for _, fk in ipairs(m.fks) do
    if not (#fk.columns == 1 and fk.column) then items[#items + 1] = self:fk_constraint_src(fk) end
  end
  for _, u in ipairs(m.uniques) do
    if not (u.column_flag and not u.name) then items[#items + 1] = self:unique_src(u) end
  end
  for _, ck in ipairs(m.checks) do
    if not ck.type_bound then items[#items + 1] = self:check_src(ck) end
  end
  local fields = {}
  if m.comment and self.dialect == "postgresql" then fields[#fields + 1] = { "comment", q(m.comment) } end
  if m.opts.sqlite_autoincrement then fields[#fields + 1] = { "sqlite_autoincrement", "true" } end
  local o = opts_src(nil, fields)
  if o then items[#items + 1] = o end
  for i, item in ipairs(items) do
    lines[#lines + 1] = "  " .. item .. (i < #items and "," or ")")
  end
  for _, ix in ipairs(m.indexes) do lines[#lines + 1] = render_call(self:create_index_call(ix), m.name, false) end
  return lines
end

-- op.create_table lines for a reflected table (the downgrade of a dropped one), then its indexes.
function Gen:create_db_table(d)
  local lines = { "op.create_table(" .. q(d.name) .. "," }
  local notes = {}
  local items = {}
  local pk_default = d.pk.name == nil or (self.dialect == "postgresql" and d.pk.name == d.name .. "_pkey")
  local single_pk = #d.pk.columns == 1 and pk_default
  local inline_fk = {}
  local table_fks = {}
  for _, fk in ipairs(d.fks) do
    if #fk.columns == 1 then
      inline_fk[fk.columns[1]] = inline_fk[fk.columns[1]] or {}
      table.insert(inline_fk[fk.columns[1]], fk)
    else
      table_fks[#table_fks + 1] = fk
    end
  end
  for _, c in ipairs(d.columns) do
    local src, n = self:db_column_src(c, { table = d.name, pk = c.pk, pk_inline = single_pk and c.pk,
                                           single_pk = #d.pk.columns == 1, fks = inline_fk[c.name] })
    items[#items + 1] = src
    for _, x in ipairs(n) do notes[#notes + 1] = x end
  end
  if #d.pk.columns > 0 and not single_pk then
    local o = (d.pk.name and not pk_default) and opts_src(nil, { { "name", self:name_src("pk", d.pk.name, false) } })
    items[#items + 1] = "sa.PrimaryKeyConstraint(" .. columns_args(d.pk.columns) .. (o and (", " .. o) or "") .. ")"
  end
  for _, fk in ipairs(table_fks) do items[#items + 1] = self:fk_constraint_src(fk) end
  for _, u in ipairs(d.uniques) do items[#items + 1] = self:unique_src(u) end
  for _, ck in ipairs(d.checks) do items[#items + 1] = self:check_src(ck) end
  local fields = {}
  if d.comment and self.dialect == "postgresql" then fields[#fields + 1] = { "comment", q(d.comment) } end
  if self.dialect == "sqlite" and d.sql and d.sql:upper():find("AUTOINCREMENT", 1, true) then
    fields[#fields + 1] = { "sqlite_autoincrement", "true" }
  end
  local o = opts_src(nil, fields)
  if o then items[#items + 1] = o end
  for i, item in ipairs(items) do
    lines[#lines + 1] = "  " .. item .. (i < #items and "," or ")")
  end
  for _, ix in ipairs(d.indexes) do lines[#lines + 1] = render_call(self:create_index_call(ix), d.name, false) end
  return lines, notes
end

-- Tables in an order where those referred to come first (ties by name).
local function dependency_order(names, deps)
  local order, state = {}, {}
  local sorted = copy_list(names)
  table.sort(sorted)
  local present = set(sorted)
  local function visit(n)
    if state[n] == "done" or state[n] == "active" then return end
    state[n] = "active"
    local ds = {}
    for dep in pairs(deps[n] or {}) do
      if present[dep] and dep ~= n then ds[#ds + 1] = dep end
    end
    table.sort(ds)
    for _, dep in ipairs(ds) do visit(dep) end
    state[n] = "done"
    order[#order + 1] = n
  end
  for _, n in ipairs(sorted) do visit(n) end
  return order
end

------------------------------------------------------------------------------------------------
-- Rendering a table's ops in one direction
------------------------------------------------------------------------------------------------

-- Templates that name unnamed constraints in a batch (its naming_convention option), so that
-- batch.drop_constraint can drop them; a template needing %(constraint_name)s cannot.
local batch_templates = { fk = "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
                          uq = "uq_%(table_name)s_%(column_0_name)s", ck = "ck_%(table_name)s_%(column_0_name)s" }

-- The name batch mode gives an unnamed constraint (as luamig.batch's apply_convention does), and
-- the template it used; nil when none can name it.
function Gen:convention_name(t, info, column_names)
  local template = self.nc and self.nc[info.key]
  if not template or template:find("%(constraint_name)s", 1, true) then template = batch_templates[info.key] end
  local columns = info.columns
  if info.key == "ck" then
    columns = require("luamig.reflect_sqlite").used_columns(info.sqltext, column_names)
  end
  local rn = ddl.renderer("sqlite", { naming_convention = { [info.key] = template } })
  local ok, name = pcall(rn.constraint_name, rn, info.key, nil, { table = t, columns = columns,
                         reftable = info.reftable, refcolumns = info.refcolumns }, "autogenerate", true)
  if ok and name then return name, template end
  return nil
end

-- Lines for one changed table in direction dir ("up" or "down"); column_names: the table's columns
-- when that direction starts.
function Gen:render_group(t, ops, reviews, dir, column_names)
  local lines = {}
  local list = {}
  if dir == "up" then
    for _, o in ipairs(ops) do list[#list + 1] = o end
  else
    for i = #ops, 1, -1 do list[#list + 1] = ops[i] end
  end
  for _, r in ipairs(reviews) do lines[#lines + 1] = "-- review: " .. r[dir] end
  local batch = false
  if self.dialect == "sqlite" and self.render_as_batch then
    for _, o in ipairs(list) do
      if (o[dir] or o["unnamed_" .. dir]) and o["rebuild_" .. dir] then batch = true end
    end
  end
  -- columns this direction drops: on PostgreSQL their constraints go with them
  local dropping = {}
  for _, o in ipairs(list) do
    local c = o["drops_" .. dir]
    if c and o[dir] then dropping[c] = true end
  end
  local body, convention = {}, {}
  local split_at -- the batch's convention would name unnamed constraints created after its drops
  for _, o in ipairs(list) do
    local c = o[dir]
    local unnamed = o["unnamed_" .. dir]
    if o["review_" .. dir] then body[#body + 1] = "-- review: " .. o["review_" .. dir] end
    if c then
      if batch and next(convention) and not split_at and c.fn:find("^create_") and c.args[1] == "nil" then
        split_at = #body
      end
      body[#body + 1] = render_call(c, t, batch)
    elseif unnamed then
      local name, template
      if batch then name, template = self:convention_name(t, unnamed, column_names) end
      if name then
        convention[unnamed.key] = template
        body[#body + 1] = render_call(call("drop_constraint", { "op.f(" .. q(name) .. ")",
                                                                "{ type = " .. q(unnamed.ctype) .. " }" }, 2), t, true)
      elseif not (self.dialect == "postgresql" and intersects(o["cols_" .. dir], dropping)) then
        body[#body + 1] = format("-- review: %s: the constraint has no name, so it cannot be dropped by name; "
          .. "name it (naming_convention) and drop it by hand", o.diffs[1] or "a CHECK constraint")
      end
    end
  end
  if #body == 0 then return lines end
  if batch then
    local fields = {}
    for _, k in ipairs(sorted_keys(convention)) do fields[#fields + 1] = { k, q(convention[k]) } end
    local nc = opts_src(nil, fields)
    local function block(from, to, with_nc)
      lines[#lines + 1] = "op.batch_alter_table(" .. q(t) .. ", function(batch)"
      for i = from, to do lines[#lines + 1] = "  " .. body[i] end
      lines[#lines + 1] = (with_nc and nc) and ("end, { naming_convention = " .. nc .. " })") or "end)"
    end
    -- convention-named drops first, then (without the convention) what creates unnamed constraints
    if split_at and split_at > 0 then
      block(1, split_at, true)
      block(split_at + 1, #body, false)
    else
      block(1, #body, true)
    end
  else
    for _, l in ipairs(body) do lines[#lines + 1] = l end
  end
  return lines
end

------------------------------------------------------------------------------------------------
-- The comparison as a whole
------------------------------------------------------------------------------------------------

local HEADER = "-- ### commands auto generated by luamig - please adjust! ###"
local FOOTER = "-- ### end luamig commands ###"

local function indent_body(lines)
  local out = {}
  for i, l in ipairs(lines) do out[i] = (l == "" and "" or ("  " .. l)) end
  return concat(out, "\n")
end

-- autogen.compare(md, insp, opts) -> { upgrades, downgrades, diffs }
function autogen.compare(md, insp, opts)
  local dialect = opts.dialect
  local config = opts.config or {}
  if dialect ~= "sqlite" and dialect ~= "postgresql" then
    fail("autogenerate: unknown dialect '%s'", tostring(dialect))
  end
  local nc = merge_conventions(config.naming_convention, md.naming_convention)
  local r = ddl.renderer(dialect, { naming_convention = nc })
  local rc = ddl.renderer(dialect, { naming_convention = config.naming_convention })
  local g = setmetatable({ dialect = dialect, config_nc = config.naming_convention, nc = nc,
                           render_as_batch = config.render_as_batch ~= false }, Gen)

  local excluded = {}
  for _, n in ipairs(type(config.exclude) == "table" and config.exclude or {}) do excluded[n] = true end
  excluded[opts.version_table or "luamig_version"] = true

  local models, model_names = {}, {}
  for _, t in ipairs(md.tables) do
    if not excluded[t.name] then
      models[t.name] = model_table(t, r, rc, dialect)
      model_names[#model_names + 1] = t.name
    end
  end
  local db_names = {}
  local in_db = {}
  for _, n in ipairs(insp.table_names()) do
    if not excluded[n] then
      db_names[#db_names + 1] = n
      in_db[n] = true
    end
  end

  -- PostgreSQL enum types the database already has (create_table makes the others)
  local db_enums = {}
  if dialect == "postgresql" then
    for _, n in ipairs(db_names) do
      for _, c in ipairs(insp.columns(n)) do
        if c.enum then db_enums[c.enum.name] = true end
      end
    end
  end
  g.db_enums, g.r = db_enums, r

  local up, diffs = {}, {}
  local up_blocks, down_blocks = {}, {} -- down_blocks are written in reverse order

  -- tables added, parents first
  local added = {}
  for _, n in ipairs(model_names) do if not in_db[n] then added[#added + 1] = n end end
  local deps = {}
  for _, n in ipairs(added) do
    deps[n] = {}
    for _, fk in ipairs(models[n].fks) do deps[n][fk.reftable] = true end
  end
  local added_order = dependency_order(added, deps)

  -- tables removed, children first
  local removed = {}
  for _, n in ipairs(db_names) do if not models[n] then removed[#removed + 1] = n end end
  local dbs = {}
  local rdeps = {}
  for _, n in ipairs(removed) do
    dbs[n] = db_table(insp, n, dialect)
    rdeps[n] = {}
    for _, fk in ipairs(dbs[n].fks) do rdeps[n][fk.reftable] = true end
  end
  local removed_parents_first = dependency_order(removed, rdeps)

  -- a dropped and an added table with the same columns: perhaps a rename
  local table_reviews = {}
  for _, a in ipairs(added_order) do
    for _, dname in ipairs(removed_parents_first) do
      local ma, dd = models[a], dbs[dname]
      if #ma.columns == #dd.columns then
        local same = true
        for _, c in ipairs(ma.columns) do
          local dc = dd.by_name[c.name]
          if not dc or dc.canon ~= c.canon then same = false end
        end
        if same then
          table_reviews[#table_reviews + 1] = {
            up = format("table '%s' dropped and '%s' added have the same columns: if this is a rename, use "
              .. "op.rename_table(%s, %s) instead", dname, a, q(dname), q(a)),
            down = format("if table '%s' was renamed to '%s', use op.rename_table(%s, %s) instead", dname, a,
                          q(a), q(dname)) }
        end
      end
    end
  end
  for _, rv in ipairs(table_reviews) do up[#up + 1] = "-- review: " .. rv.up end

  for _, n in ipairs(added_order) do
    diffs[#diffs + 1] = format("add_table '%s'", n)
    up_blocks[#up_blocks + 1] = g:create_model_table(models[n])
    local block = { "op.drop_table(" .. q(n) .. ")" }
    -- op.drop_table leaves the enum types op.create_table made: drop them too
    for _, c in ipairs(models[n].columns) do
      local ty = c.col.type
      if dialect == "postgresql" and ty.name == "Enum" and ty.native_enum and ty.create_type and ty.enum_name
         and not db_enums[ty.enum_name] then
        db_enums[ty.enum_name] = true
        block[#block + 1] = "op.execute(" .. q("DROP TYPE " .. r:table_name(ty.enum_name, ty.schema)) .. ")"
      end
    end
    down_blocks[#down_blocks + 1] = block
  end

  -- tables in both, by name
  local common = {}
  for _, n in ipairs(model_names) do if in_db[n] then common[#common + 1] = n end end
  table.sort(common)
  for _, n in ipairs(common) do
    local d = db_table(insp, n, dialect)
    local ops, reviews = g:compare_table(models[n], d)
    if #ops > 0 then
      for _, o in ipairs(ops) do
        for _, line in ipairs(o.diffs) do diffs[#diffs + 1] = line end
      end
      local before_cols, after_cols = {}, {}
      for i, c in ipairs(d.columns) do before_cols[i] = c.name end
      for i, c in ipairs(models[n].columns) do after_cols[i] = c.name end
      up_blocks[#up_blocks + 1] = g:render_group(n, ops, reviews, "up", before_cols)
      down_blocks[#down_blocks + 1] = g:render_group(n, ops, reviews, "down", after_cols)
    end
  end

  for i = #removed_parents_first, 1, -1 do
    local n = removed_parents_first[i]
    diffs[#diffs + 1] = format("remove_table '%s'", n)
    up_blocks[#up_blocks + 1] = { "op.drop_table(" .. q(n) .. ")" }
    local lines, notes = g:create_db_table(dbs[n])
    local block = {}
    for _, note in ipairs(notes) do block[#block + 1] = "-- review: " .. note end
    for _, l in ipairs(lines) do block[#block + 1] = l end
    down_blocks[#down_blocks + 1] = block
  end

  local up_lines = { HEADER }
  for _, l in ipairs(up) do up_lines[#up_lines + 1] = l end
  for _, b in ipairs(up_blocks) do
    for _, l in ipairs(b) do up_lines[#up_lines + 1] = l end
  end
  up_lines[#up_lines + 1] = FOOTER
  local down_lines = { HEADER }
  for _, rv in ipairs(table_reviews) do down_lines[#down_lines + 1] = "-- review: " .. rv.down end
  for i = #down_blocks, 1, -1 do
    for _, l in ipairs(down_blocks[i]) do down_lines[#down_lines + 1] = l end
  end
  down_lines[#down_lines + 1] = FOOTER
  return { upgrades = indent_body(up_lines), downgrades = indent_body(down_lines), diffs = diffs }
end

-- autogen.run(ctx): see the top of this file.
function autogen.run(ctx)
  if type(ctx) ~= "table" then fail("autogen.run: ctx must be a table") end
  if ctx.raw == nil then fail("autogenerate: no database connection") end
  local config = ctx.config or {}
  local path = ctx.models or config.models or "models.lua"
  local md = metadata.load(path)
  local insp = inspect.new(ctx.raw, ctx.dialect)
  return autogen.compare(md, insp, { dialect = ctx.dialect, config = config, version_table = ctx.version_table })
end

return autogen
