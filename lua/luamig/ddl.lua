-- luamig.ddl: turns luamig.sa values into SQL text for one dialect.
--
-- The rules here are shared; a dialect module (luamig.dialect_sqlite, luamig.dialect_postgresql) holds
-- only what differs: reserved words, type names, literals, SERIAL, and which ALTERs it can do.
-- The output follows what Alembic 1.8 with SQLAlchemy 1.4 renders, so `--sql` output reads the same.
--
--   local r = ddl.renderer("postgresql", { naming_convention = ... })
--   r:create_table(t)            -> { "CREATE TABLE ...", "CREATE INDEX ...", ... }
--   r:compile(expr, literal)     -> sql, params ("?" placeholders; params nil when literal or none)
--
-- Functions raise error(msg, 0) with messages that start with the operation (`where`) they serve.

local util = require("luamig.util")
-- SQL is rendered a few times per revision: LuaJIT's trace compiler would spend more here than it
-- saves (its traces abort on the closures), so this module stays interpreted. No per-row path of a
-- data migration calls it (op.bulk_*, conn:rows and the loaders do not).
jit.off(true, true)
local sa = require("luamig.sa")
local bit = require("bit")

local kind = sa.kind
local concat = table.concat
local format = string.format

local ddl = {}

local DIALECTS = { sqlite = "luamig.dialect_sqlite", postgresql = "luamig.dialect_postgresql" }

local fail = util.fail

local set = util.set

local function map(list, fn)
  local out = {}
  for i, v in ipairs(list) do out[i] = fn(v, i) end
  return out
end

local function is_none(v) return v == nil or v == sa.null end

------------------------------------------------------------------------------------------------
-- md5, for names a naming convention makes longer than the dialect allows (SQLAlchemy keeps the
-- first max-8 characters and appends "_" and the last 4 hex digits of the md5 of the full name).
------------------------------------------------------------------------------------------------

local md5
do
  local band, bor, bxor, bnot, rol, lshift, rshift, tobit =
    bit.band, bit.bor, bit.bxor, bit.bnot, bit.rol, bit.lshift, bit.rshift, bit.tobit
  local K, S = {}, {}
  local shifts = { { 7, 12, 17, 22 }, { 5, 9, 14, 20 }, { 4, 11, 16, 23 }, { 6, 10, 15, 21 } }
  for i = 0, 63 do
    K[i] = tobit(math.floor(math.abs(math.sin(i + 1)) * 2 ^ 32))
    S[i] = shifts[math.floor(i / 16) + 1][i % 4 + 1]
  end
  local function le_hex(x)
    local out = {}
    for i = 0, 3 do out[i + 1] = format("%02x", band(rshift(x, 8 * i), 255)) end
    return concat(out)
  end
  md5 = function(msg)
    local len = #msg
    local tail = {}
    local bits = len * 8
    for i = 1, 8 do
      tail[i] = string.char(bits % 256)
      bits = math.floor(bits / 256)
    end
    msg = msg .. "\128" .. string.rep("\0", (55 - len) % 64) .. concat(tail)
    local a0, b0, c0, d0 = tobit(0x67452301), tobit(0xefcdab89), tobit(0x98badcfe), tobit(0x10325476)
    local M = {}
    for chunk = 1, #msg, 64 do
      for j = 0, 15 do
        local b1, b2, b3, b4 = msg:byte(chunk + j * 4, chunk + j * 4 + 3)
        M[j] = bor(b1, lshift(b2, 8), lshift(b3, 16), lshift(b4, 24))
      end
      local A, B, C, D = a0, b0, c0, d0
      for i = 0, 63 do
        local F, g
        if i < 16 then F, g = bor(band(B, C), band(bnot(B), D)), i
        elseif i < 32 then F, g = bor(band(D, B), band(bnot(D), C)), (5 * i + 1) % 16
        elseif i < 48 then F, g = bxor(B, C, D), (3 * i + 5) % 16
        else F, g = bxor(C, bor(B, bnot(D))), (7 * i) % 16 end
        F = tobit(F + A + K[i] + M[g])
        A, D, C = D, C, B
        B = tobit(B + rol(F, S[i]))
      end
      a0, b0, c0, d0 = tobit(a0 + A), tobit(b0 + B), tobit(c0 + C), tobit(d0 + D)
    end
    return le_hex(a0) .. le_hex(b0) .. le_hex(c0) .. le_hex(d0)
  end
end
ddl.md5 = md5

------------------------------------------------------------------------------------------------
-- The renderer
------------------------------------------------------------------------------------------------

local R = {}
R.__index = R

-- ddl.renderer(dialect_name, config): config.naming_convention is optional.
function ddl.renderer(dialect_name, config)
  local modname = DIALECTS[dialect_name]
  if not modname then
    fail("unknown dialect '%s' (expected \"sqlite\" or \"postgresql\")", tostring(dialect_name))
  end
  return setmetatable({ d = require(modname), dialect = dialect_name,
                        nc = config and config.naming_convention or nil }, R)
end

-- Identifiers are quoted only when they must be, as SQLAlchemy does: a reserved word, upper case,
-- a leading digit or $, or any character outside [A-Za-z0-9_$].
function R:quote(name)
  if kind(name) == "conv" then name = name.name end
  local lower = name:lower()
  if self.d.reserved[lower] or lower ~= name or not name:find("^[A-Za-z0-9_$]+$") or name:find("^[0-9$]") then
    return '"' .. name:gsub('"', '""') .. '"'
  end
  return name
end

-- "schema.table" for a referenced table given as one string; each part quoted on its own.
function R:dotted(name)
  local schema, tbl = name:match("^(.+)%.([^.]+)$")
  if schema then return self:quote(schema) .. "." .. self:quote(tbl) end
  return self:quote(name)
end

function R:table_name(name, schema)
  if schema then return self:quote(schema) .. "." .. self:quote(name) end
  return self:quote(name)
end

local function number_sql(v)
  if v ~= v or v == math.huge or v == -math.huge then fail("cannot render the number %s in SQL", tostring(v)) end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return format("%d", v) end
  local s = format("%.15g", v)
  if tonumber(s) ~= v then s = format("%.17g", v) end
  return s
end

-- A LuaJIT 64-bit integer (5LL, 5ULL) as its decimal text, which both databases convert exactly.
function ddl.cdata_integer(v)
  local s = tostring(v):gsub("U?LL$", "")
  if not s:find("^%-?%d+$") then fail("a cdata value is not a 64-bit integer: %s", tostring(v)) end
  return s
end

-- A Lua value as a SQL literal (offline output, server defaults, inline literals).
function R:literal(v)
  if is_none(v) then return "NULL" end
  local t = type(v)
  if t == "string" then return "'" .. v:gsub("'", "''") .. "'" end
  if t == "number" then return number_sql(v) end
  if t == "boolean" then return v and self.d.literal_true or self.d.literal_false end
  if t == "cdata" then return ddl.cdata_integer(v) end
  fail("cannot render a %s as a SQL literal", t)
end

------------------------------------------------------------------------------------------------
-- Placeholders in SQL text: `?` (positional) and `:name` (sa.text), outside quotes and comments.
------------------------------------------------------------------------------------------------

-- substitute(sql, positional, named): positional() replaces each `?`; named(name) replaces each
-- `:name` (return nil to keep it). `::` (a PostgreSQL cast) and `\:` are left alone / unescaped.
local function substitute(sql, positional, named)
  local out, i, n = {}, 1, #sql
  while i <= n do
    local j = sql:find("[%'\"%-/%?:\\%$]", i)
    if not j then
      out[#out + 1] = sql:sub(i)
      break
    end
    out[#out + 1] = sql:sub(i, j - 1)
    local ch, nx = sql:sub(j, j), sql:sub(j + 1, j + 1)
    local stop = j -- last index consumed
    if ch == "'" or ch == '"' then
      local k = j + 1
      while true do
        local q = sql:find(ch, k, true)
        if not q then stop = n break end
        if sql:sub(q + 1, q + 1) == ch then k = q + 2 else stop = q break end
      end
      out[#out + 1] = sql:sub(j, stop)
    elseif ch == "-" and nx == "-" then
      stop = (sql:find("\n", j, true) or n + 1) - 1
      out[#out + 1] = sql:sub(j, stop)
    elseif ch == "/" and nx == "*" then
      local e = sql:find("*/", j + 2, true)
      stop = e and e + 1 or n
      out[#out + 1] = sql:sub(j, stop)
    elseif ch == "$" and sql:find("^%$[%a_]*%$", j) then -- PostgreSQL dollar quoting
      local tag = sql:match("^%$[%a_]*%$", j)
      local e = sql:find(tag, j + #tag, true)
      stop = e and e + #tag - 1 or n
      out[#out + 1] = sql:sub(j, stop)
    elseif ch == "?" and positional then
      out[#out + 1] = positional()
    elseif ch == ":" and nx == ":" then
      out[#out + 1] = "::"
      stop = j + 1
    elseif ch == ":" and named and nx:find("^[%a_]") and not sql:sub(j - 1, j - 1):find("^[%w_]") then
      local name = sql:match("^[%w_]+", j + 1)
      stop = j + #name
      out[#out + 1] = named(name) or (":" .. name)
    elseif ch == "\\" and nx == ":" and named then
      out[#out + 1] = ":"
      stop = j + 1
    else
      out[#out + 1] = ch
    end
    i = stop + 1
  end
  return concat(out)
end
ddl.substitute = substitute

-- R:inline_params(sql, params): `?` placeholders replaced by literals (offline output).
function R:inline_params(sql, params)
  local count = params.n or #params
  local used = 0
  local result = substitute(sql, function()
    used = used + 1
    if used > count then fail("the SQL has more ? placeholders than the %d parameter(s) given", count) end
    return self:literal(params[used])
  end)
  if used < count then
    fail("%d parameter(s) given but the SQL has %d ? placeholder(s)", count, used)
  end
  return result
end

------------------------------------------------------------------------------------------------
-- Expressions
------------------------------------------------------------------------------------------------

-- A compiler collects bound parameters (or renders literals) while walking one expression.
local C = {}
C.__index = C

function R:compiler(literal)
  return setmetatable({ r = self, literal = literal, params = { n = 0 } }, C)
end

function C:bind(v)
  if is_none(v) then return "NULL" end
  if self.literal then return self.r:literal(v) end
  local t = type(v)
  if t == "cdata" then v = ddl.cdata_integer(v) end
  if t ~= "string" and t ~= "number" and t ~= "boolean" and t ~= "cdata" then
    fail("a %s cannot be a SQL parameter (use a string, number, boolean or sa.null)", t)
  end
  local p = self.params
  p.n = p.n + 1
  p[p.n] = v
  return "?"
end

-- A value position: plain Lua values are bound; sa values render as SQL.
function C:value(v)
  if kind(v) == nil then return self:bind(v) end
  return self:expr(v)
end

local ansi_functions = set { "current_timestamp", "current_date", "current_time", "localtime",
                             "localtimestamp", "current_user", "session_user", "user" }
local negations = { ["="] = "!=", ["!="] = "=", ["<"] = ">=", [">="] = "<", [">"] = "<=", ["<="] = ">",
                    IS = "IS NOT", ["IS NOT"] = "IS", LIKE = "NOT LIKE", ["NOT LIKE"] = "LIKE" }
local statement_kinds = set { "insert", "update", "delete", "select" }

local handlers = {}

handlers["null"] = function() return "NULL" end
handlers["true"] = function(c) return c.r.d.literal_true end
handlers["false"] = function(c) return c.r.d.literal_false end

handlers["literal"] = function(c, e)
  if e.inline then return c.r:literal(e.value) end
  return c:bind(e.value)
end

handlers["text"] = function(c, e)
  return c:text(e.sql, e.binds)
end

handlers["func"] = function(c, e)
  local lower = e.name:lower()
  local renamed = c.r.d.func_names[lower]
  if renamed and #e.args == 0 then return renamed end
  if ansi_functions[lower] and #e.args == 0 then return e.name:upper() end
  if lower == "count" and #e.args == 0 then return e.name .. "(*)" end
  return e.name .. "(" .. concat(map(e.args, function(a) return c:value(a) end), ", ") .. ")"
end

local function column_ref(c, col)
  local t = col.table
  if c.qualify and t then return c.r:table_name(t.name, t.schema) .. "." .. c.r:quote(col.name) end
  return c.r:quote(col.name)
end
handlers["column"] = column_ref
handlers["Column"] = column_ref

handlers["binary"] = function(c, e)
  local right
  if (e.op == "IS" or e.op == "IS NOT") and type(e.right) == "boolean" then
    right = c.r:literal(e.right)
  else
    right = c:value(e.right)
  end
  return c:value(e.left) .. " " .. e.op .. " " .. right
end

handlers["in"] = function(c, e, negate)
  local neg = e.negate ~= (negate or false)
  local n = e.values.n
  if n == 1 and statement_kinds[kind(e.values[1])] then
    return c:value(e.left) .. (neg and " NOT IN (" or " IN (") .. c:statement(e.values[1]) .. ")"
  end
  if n == 0 then return neg and "1 = 1" or "1 != 1" end
  local items = {}
  for i = 1, n do items[i] = c:value(e.values[i]) end
  return c:value(e.left) .. (neg and " NOT IN (" or " IN (") .. concat(items, ", ") .. ")"
end

handlers["clause_list"] = function(c, e)
  local parts = {}
  for _, item in ipairs(e.items) do
    local k = kind(item)
    local s = c:expr(item)
    -- OR inside AND needs parentheses; raw SQL text gets them too, as its precedence is unknown.
    if #e.items > 1 and ((k == "clause_list" and item.op ~= e.op and #item.items > 1)
                         or k == "text" or type(item) == "string") then
      s = "(" .. s .. ")"
    end
    if s ~= "" then parts[#parts + 1] = s end
  end
  if #parts == 0 then return e.op == "AND" and "1 = 1" or "1 != 1" end
  return concat(parts, " " .. e.op .. " ")
end

handlers["not"] = function(c, e)
  local inner = e.expr
  local k = kind(inner)
  if k == "binary" and negations[inner.op] then
    local neg = setmetatable({ left = inner.left, op = negations[inner.op], right = inner.right },
                             getmetatable(inner))
    return c:expr(neg)
  elseif k == "in" then
    return handlers["in"](c, inner, true)
  elseif k == "not" then
    return c:expr(inner.expr)
  end
  return "NOT (" .. c:expr(inner) .. ")"
end

-- A clause position: a Lua string is SQL text.
function C:expr(e)
  if type(e) == "string" then return e end
  local k = kind(e)
  if statement_kinds[k] then return "(" .. self:statement(e) .. ")" end
  local h = handlers[k]
  if not h then
    fail("cannot render %s as SQL", k and ("a " .. k) or ("a Lua " .. type(e)))
  end
  return h(self, e)
end

-- SQL text with optional :name parameters bound from `binds` (a map).
function C:text(sql, binds)
  if not binds then return sql end
  return substitute(sql, nil, function(name)
    local v = binds[name]
    if v == nil then fail("sa.text: no value for the bind parameter ':%s'", name) end
    return self:value(v)
  end)
end

local function where_sql(c, wheres)
  if not wheres or #wheres == 0 then return "" end
  local list = setmetatable({ op = "AND", items = wheres }, { __kind = "clause_list" })
  return " WHERE " .. handlers["clause_list"](c, list)
end

-- The values of an insert/update in the table's column order.
local function ordered_values(c, s)
  local names, values = {}, {}
  for _, col in ipairs(s.table.columns) do
    local v = s.vals and s.vals[col.name]
    if v ~= nil then
      names[#names + 1] = c.r:quote(col.name)
      values[#values + 1] = c:value(v)
    end
  end
  return names, values
end

function C:statement(s)
  local k = kind(s)
  local saved = self.qualify
  self.qualify = true
  local sql
  if k == "select" then
    local cols, froms, seen = {}, {}, {}
    for i, col in ipairs(s.columns) do
      cols[i] = self:expr(col)
      local t = (kind(col) == "column" or kind(col) == "Column") and col.table
      if t and not seen[t] then
        seen[t] = true
        froms[#froms + 1] = self.r:table_name(t.name, t.schema)
      end
    end
    sql = "SELECT " .. concat(cols, ", ")
    if #froms > 0 then sql = sql .. " FROM " .. concat(froms, ", ") end
    sql = sql .. where_sql(self, s.wheres)
    if s.order and #s.order > 0 then
      sql = sql .. " ORDER BY " .. concat(map(s.order, function(o) return self:expr(o) end), ", ")
    end
    if s.limit_n then sql = sql .. " LIMIT " .. number_sql(s.limit_n) end
  else
    local tname = self.r:table_name(s.table.name, s.table.schema)
    if k == "insert" then
      local names, values = ordered_values(self, s)
      if #names == 0 then
        sql = "INSERT INTO " .. tname .. " DEFAULT VALUES"
      else
        sql = "INSERT INTO " .. tname .. " (" .. concat(names, ", ") .. ") VALUES (" .. concat(values, ", ") .. ")"
      end
    elseif k == "update" then
      local names, values = ordered_values(self, s)
      if #names == 0 then fail("update: values() sets no column") end
      local sets = {}
      for i = 1, #names do sets[i] = names[i] .. "=" .. values[i] end
      sql = "UPDATE " .. tname .. " SET " .. concat(sets, ", ") .. where_sql(self, s.wheres)
    elseif k == "delete" then
      sql = "DELETE FROM " .. tname .. where_sql(self, s.wheres)
    end
  end
  self.qualify = saved
  return sql
end

-- r:compile(e, literal) -> sql, params: e is SQL text, sa.text, a statement or an expression.
-- params (an array with .n) is nil when rendering literals or when there are none.
function R:compile(e, literal, params)
  local c = self:compiler(literal)
  local sql
  if kind(e) == "text" then
    local binds = e.binds
    if params and next(params) ~= nil and (params.n or #params) == 0 then -- a map of :name values
      binds = {}
      for k, v in pairs(e.binds or {}) do binds[k] = v end
      for k, v in pairs(params) do binds[k] = v end
      params = nil
    end
    sql = c:text(e.sql, binds)
  elseif type(e) == "string" then
    sql = e
  elseif statement_kinds[kind(e)] then
    sql = c:statement(e)
  else
    c.qualify = true
    sql = c:expr(e)
  end
  if params then
    if c.params.n > 0 then fail("give parameters either in the expression or as the params argument, not both") end
    if literal then return self:inline_params(sql, params), nil end
    local copy = { n = params.n or #params }
    for i = 1, copy.n do
      if params[i] ~= sa.null then copy[i] = params[i] end
    end
    return sql, copy
  end
  if literal or c.params.n == 0 then return sql, nil end
  return sql, c.params
end

------------------------------------------------------------------------------------------------
-- Types
------------------------------------------------------------------------------------------------

local function with_length(base)
  return function(t) return t.length and format("%s(%d)", base, t.length) or base end
end
local function with_precision(base)
  return function(t)
    if t.precision and t.scale then return format("%s(%d, %d)", base, t.precision, t.scale) end
    if t.precision then return format("%s(%d)", base, t.precision) end
    return base
  end
end

local function enum_type(t, r)
  if r.d.native_enum and t.native_enum then
    if not t.enum_name then
      fail("sa.Enum: a PostgreSQL enum needs a name: sa.Enum(..., { name = \"...\" })")
    end
    return r:table_name(t.enum_name, t.schema)
  end
  local longest = 0
  for _, v in ipairs(t.enums) do longest = math.max(longest, #v) end
  return format("VARCHAR(%d)", t.length or longest)
end

local generic_types = {
  Integer = "INTEGER", INTEGER = "INTEGER",
  BigInteger = "BIGINT", BIGINT = "BIGINT",
  SmallInteger = "SMALLINT", SMALLINT = "SMALLINT",
  String = with_length("VARCHAR"), Unicode = with_length("VARCHAR"), VARCHAR = with_length("VARCHAR"),
  CHAR = with_length("CHAR"),
  Text = with_length("TEXT"), UnicodeText = with_length("TEXT"), TEXT = with_length("TEXT"),
  Boolean = "BOOLEAN", BOOLEAN = "BOOLEAN",
  Float = with_precision("FLOAT"), FLOAT = with_precision("FLOAT"),
  Numeric = with_precision("NUMERIC"), NUMERIC = with_precision("NUMERIC"), DECIMAL = with_precision("DECIMAL"),
  Date = "DATE", DATE = "DATE",
  DateTime = "DATETIME", DATETIME = "DATETIME", TIMESTAMP = "TIMESTAMP",
  Time = "TIME", TIME = "TIME",
  Interval = "INTERVAL",
  LargeBinary = "BLOB", BLOB = "BLOB",
  JSON = "JSON", JSONB = "JSONB",
  Uuid = "CHAR(32)", UUID = "UUID",
  Enum = enum_type,
}

local integer_types = set { "Integer", "BigInteger", "SmallInteger", "INTEGER", "BIGINT", "SMALLINT" }

function R:type_sql(t)
  local spec = self.d.types[t.name] or generic_types[t.name]
  if not spec then fail("unknown type sa.%s", tostring(t.name)) end
  local s = type(spec) == "function" and spec(t, self) or spec
  if t.collation then s = s .. " COLLATE " .. self:quote(t.collation) end
  return s
end

-- The CHECK a Boolean or Enum type carries on a dialect without the native type, or nil.
function R:type_check(colname, t)
  local d = self.d
  if (t.name == "Boolean" or t.name == "BOOLEAN") and t.create_constraint and not d.native_boolean then
    return { name = t.constraint_name, sqltext = self:quote(colname) .. " IN (0, 1)", columns = { colname } }
  end
  if t.name == "Enum" and t.create_constraint and not (d.native_enum and t.native_enum) then
    local values = map(t.enums, function(v) return self:literal(v) end)
    return { name = t.enum_name, sqltext = self:quote(colname) .. " IN (" .. concat(values, ", ") .. ")",
             columns = { colname } }
  end
  return nil
end

------------------------------------------------------------------------------------------------
-- Naming conventions
------------------------------------------------------------------------------------------------

local function token_value(token, info, name)
  if token == "table_name" then return info.table end
  if token == "constraint_name" then return name end
  if token == "referred_table_name" then
    return info.reftable and (info.reftable:match("([^.]+)$")) or fail("%%(referred_table_name)s needs a foreign key")
  end
  local referred, rest = token:match("^(referred_)(.*)$")
  local cols = referred and info.refcolumns or info.columns
  rest = rest or token
  local function label(c) return referred and c or (info.table .. "_" .. c) end
  local function pick(c, what) return what == "label" and label(c) or c end
  local idx, what = rest:match("^column_(%d+)_(%a+)$")
  if idx and (what == "name" or what == "key" or what == "label") then
    local c = cols and cols[tonumber(idx) + 1]
    if not c then fail("%%(%s)s: the constraint has no column %s", token, idx) end
    return pick(c, what)
  end
  local sep, what2 = rest:match("^column_0(_?)N_(%a+)$")
  if sep and (what2 == "name" or what2 == "key" or what2 == "label") then
    if not cols or #cols == 0 then fail("%%(%s)s: the constraint has no columns", token) end
    return concat(map(cols, function(c) return pick(c, what2) end), sep)
  end
  fail("unknown naming convention token %%(%s)s", token)
end

-- R:constraint_name(key, name, info, where, optional): the name to render for a constraint or index.
-- key is "ix", "uq", "ck", "fk" or "pk"; info = { table, columns, reftable, refcolumns }.
-- With `optional`, a template that needs %(constraint_name)s leaves an unnamed constraint unnamed.
function R:constraint_name(key, name, info, where, optional)
  if kind(name) == "conv" then return name.name end
  local template = self.nc and self.nc[key]
  if template == nil and key == "ix" then template = "ix_%(column_0_label)s" end
  if not template then return name end
  local needs_name = template:find("%(constraint_name)s", 1, true) ~= nil
  if name ~= nil and not needs_name then return name end
  if name == nil and needs_name then
    if optional then return nil end
    fail("%s: the naming convention %q needs an explicit constraint name", where, template)
  end
  local ok, result = pcall(function()
    return (template:gsub("%%%(([%w_]+)%)s", function(token) return token_value(token, info, name) end))
  end)
  if not ok then fail("%s: naming convention for '%s': %s", where, key, result) end
  local max = self.d.max_identifier_length
  if max and #result > max then
    result = result:sub(1, max - 8) .. "_" .. md5(result):sub(-4)
  end
  return result
end

------------------------------------------------------------------------------------------------
-- Schema items
------------------------------------------------------------------------------------------------

function R:default_sql(sd)
  if is_none(sd) then return nil end
  local t = type(sd)
  if t == "string" or t == "number" then return self:literal(sd) end
  if t == "boolean" then sd = sd and sa.true_() or sa.false_() end
  if kind(sd) == "text" then return sd.sql end
  local s = self:compiler(true):expr(sd)
  if self.d.paren_default_expressions then s = "(" .. s .. ")" end
  return s
end

function R:computed_sql(computed, where)
  local s = "GENERATED ALWAYS AS (" .. self:compiler(true):expr(computed.sqltext) .. ")"
  if computed.persisted == true or (computed.persisted == nil and self.d.computed_always_stored) then
    s = s .. " STORED"
  elseif computed.persisted == false then
    if not self.d.supports_virtual_computed then
      fail("%s: %s has no VIRTUAL generated columns; use sa.Computed(sql, { persisted = true })",
           where, self.d.title)
    end
    s = s .. " VIRTUAL"
  end
  return s
end

-- The column spec of CREATE TABLE and ADD COLUMN. info: { pk, autoincrement, inline_pk }.
function R:column_spec(col, info, where)
  local d = self.d
  local parts = { self:quote(col.name) }
  local serial = info.autoincrement and d.serial_types
  if serial then
    parts[#parts + 1] = d.serial_types[col.type.name] or d.serial_types.default
  else
    parts[#parts + 1] = self:type_sql(col.type)
    local default = self:default_sql(col.server_default)
    if default then parts[#parts + 1] = "DEFAULT " .. default end
  end
  local nullable = col.nullable
  if nullable == nil then nullable = not info.pk end
  local computed = col.computed and self:computed_sql(col.computed, where)
  if computed and not d.not_null_before_computed then parts[#parts + 1] = computed end
  if not nullable then parts[#parts + 1] = "NOT NULL" end
  if computed and d.not_null_before_computed then parts[#parts + 1] = computed end
  if info.inline_pk then parts[#parts + 1] = "PRIMARY KEY AUTOINCREMENT" end
  return concat(parts, " ")
end

local function deferrable_sql(c)
  local s = ""
  if c.deferrable ~= nil then s = s .. (c.deferrable and " DEFERRABLE" or " NOT DEFERRABLE") end
  if c.initially then s = s .. " INITIALLY " .. c.initially end
  return s
end

local function checked_action(where, what, v)
  if v == nil then return nil end
  if type(v) ~= "string" or not v:find("^[%a ]+$") then
    fail("%s: %s must be an action such as \"CASCADE\" or \"SET NULL\"", where, what)
  end
  return v
end

-- A constraint as it appears in CREATE TABLE or ALTER TABLE ADD. `c` has a `type` of "pk", "uq", "ck"
-- or "fk" and the fields of the matching sa constraint.
function R:constraint_sql(c, tname, where)
  local info = { table = tname, columns = c.columns, reftable = c.reftable, refcolumns = c.refcolumns }
  local name = self:constraint_name(c.type, c.name, info, where, c.type_bound)
  local prefix = name and ("CONSTRAINT " .. self:quote(name) .. " ") or ""
  local cols = c.columns and concat(map(c.columns, function(n) return self:quote(n) end), ", ")
  if c.type == "pk" then
    return prefix .. "PRIMARY KEY (" .. cols .. ")"
  elseif c.type == "uq" then
    return prefix .. "UNIQUE (" .. cols .. ")" .. deferrable_sql(c)
  elseif c.type == "ck" then
    return prefix .. "CHECK (" .. self:compiler(true):expr(c.sqltext) .. ")" .. deferrable_sql(c)
  elseif c.type == "fk" then
    local s = prefix .. "FOREIGN KEY(" .. cols .. ") REFERENCES " .. self:dotted(c.reftable) .. " ("
      .. concat(map(c.refcolumns, function(n) return self:quote(n) end), ", ") .. ")"
    if c.match then s = s .. " MATCH " .. checked_action(where, "match", c.match) end
    if c.ondelete then s = s .. " ON DELETE " .. checked_action(where, "ondelete", c.ondelete) end
    if c.onupdate then s = s .. " ON UPDATE " .. checked_action(where, "onupdate", c.onupdate) end
    return s .. deferrable_sql(c)
  end
  error("unknown constraint type " .. tostring(c.type))
end

local constraint_types = { PrimaryKeyConstraint = "pk", UniqueConstraint = "uq", CheckConstraint = "ck",
                           ForeignKeyConstraint = "fk" }

-- A sa constraint object as the record constraint_sql takes.
function ddl.constraint_record(c)
  local rec = { type = constraint_types[kind(c)] }
  for k, v in pairs(c) do rec[k] = v end
  return rec
end

local function fk_record(colname, fk)
  return { type = "fk", name = fk.name, columns = { colname }, reftable = fk.table, refcolumns = { fk.column },
           ondelete = fk.ondelete, onupdate = fk.onupdate, deferrable = fk.deferrable, initially = fk.initially,
           match = fk.match }
end

-- The FOREIGN KEY, CHECK or UNIQUE of a column written inline (SQLite's ADD COLUMN, batch mode).
function R:inline_references(c, tname, where)
  local info = { table = tname, columns = c.columns, reftable = c.reftable, refcolumns = c.refcolumns }
  local name = self:constraint_name(c.type, c.name, info, where, c.type_bound or c.type == "uq")
  local prefix = name and ("CONSTRAINT " .. self:quote(name) .. " ") or ""
  if c.type == "ck" then return prefix .. "CHECK (" .. c.sqltext .. ")" end
  if c.type == "uq" then return prefix .. "UNIQUE" end
  local s = prefix .. "REFERENCES " .. self:dotted(c.reftable) .. " (" .. self:quote(c.refcolumns[1]) .. ")"
  if c.match then s = s .. " MATCH " .. checked_action(where, "match", c.match) end
  if c.ondelete then s = s .. " ON DELETE " .. checked_action(where, "ondelete", c.ondelete) end
  if c.onupdate then s = s .. " ON UPDATE " .. checked_action(where, "onupdate", c.onupdate) end
  return s .. deferrable_sql(c)
end

-- The column that autoincrements in a table whose primary key is pk_names, per SQLAlchemy's rules
-- (limited to integer types: SQLAlchemy also takes NUMERIC, which would turn it into SERIAL).
local function autoincrement_column(by_name, pk_names, fk_columns, where)
  if #pk_names == 1 then
    local col = by_name[pk_names[1]]
    local auto = col.autoincrement
    if auto == true then
      if not integer_types[col.type.name] then
        fail("%s: column '%s' has autoincrement = true but type sa.%s is not an integer type",
             where, col.name, col.type.name)
      end
      return col
    end
    if (auto == "auto" or auto == "ignore_fk") and integer_types[col.type.name] and col.default == nil
       and is_none(col.server_default) and (auto == "ignore_fk" or not fk_columns[col.name]) then
      return col
    end
    return nil
  end
  local found
  for _, n in ipairs(pk_names) do
    local col = by_name[n]
    if col.autoincrement == true then
      if found then fail("%s: only one primary key column can have autoincrement = true", where) end
      found = col
    end
  end
  return found
end

local function quoted_list(r, names)
  return concat(map(names, function(n) return r:quote(n) end), ", ")
end

-- R:index_sql(ix, tname, schema, where): CREATE INDEX for a sa.Index.
function R:index_sql(ix, tname, schema, where)
  local d, opts = self.d, ix.opts or {}
  local colnames = {}
  local exprs = map(ix.expressions, function(e)
    if type(e) == "string" then
      colnames[#colnames + 1] = e
      return self:quote(e)
    end
    if kind(e) == "column" or kind(e) == "Column" then colnames[#colnames + 1] = e.name end
    return self:compiler(true):expr(e)
  end)
  local name = self:constraint_name("ix", ix.name, { table = tname, columns = colnames }, where)
  if name == nil then fail("%s: the index needs a name", where) end
  local pg = self.dialect == "postgresql"
  local s = "CREATE " .. (ix.unique and "UNIQUE " or "") .. "INDEX "
  if pg and opts.postgresql_concurrently then s = s .. "CONCURRENTLY " end
  if opts.if_not_exists then s = s .. "IF NOT EXISTS " end
  if d.index_schema_on_name then
    s = s .. self:table_name(name, schema) .. " ON " .. self:quote(tname)
  else
    s = s .. self:quote(name) .. " ON " .. self:table_name(tname, schema)
  end
  if pg and opts.postgresql_using then s = s .. " USING " .. opts.postgresql_using end
  s = s .. " (" .. concat(exprs, ", ") .. ")"
  if pg and opts.postgresql_include then s = s .. " INCLUDE (" .. quoted_list(self, opts.postgresql_include) .. ")" end
  local where_clause = opts[d.index_where_option]
  if where_clause ~= nil then s = s .. " WHERE " .. self:compiler(true):expr(where_clause) end
  return s
end

function R:comment_sql(what, target, comment)
  return "COMMENT ON " .. what .. " " .. target .. " IS " .. self:literal(comment)
end

-- R:create_table(t, where): t is a table from sa._make_table with .constraints, .indexes and .opts
-- (comment, schema, if_not_exists, sqlite_autoincrement). Returns the statements in order.
function R:create_table(t, where)
  local d, opts = self.d, t.opts or {}
  local by_name = t.c
  local function check_columns(what, names)
    for _, n in ipairs(names) do
      if not by_name[n] then
        fail("%s: %s names column '%s', which table '%s' does not have", where, what, n, t.name)
      end
    end
  end

  local pk_names, pk_name = {}, nil
  local explicit_pk
  local fk_columns = {}
  for _, c in ipairs(t.constraints) do
    local k = kind(c)
    if k == "PrimaryKeyConstraint" then
      if explicit_pk then fail("%s: more than one sa.PrimaryKeyConstraint", where) end
      explicit_pk = c
    elseif k == "ForeignKeyConstraint" then
      for _, n in ipairs(c.columns) do fk_columns[n] = true end
    end
    if c.columns then check_columns("a " .. k, c.columns) end
  end
  for _, col in ipairs(t.columns) do
    if #col.foreign_keys > 0 then fk_columns[col.name] = true end
  end
  if explicit_pk then
    pk_names, pk_name = explicit_pk.columns, explicit_pk.name
  else
    for _, col in ipairs(t.columns) do
      if col.primary_key then pk_names[#pk_names + 1] = col.name end
    end
  end
  local pk_set = set(pk_names)
  local autoinc = #pk_names > 0 and autoincrement_column(by_name, pk_names, fk_columns, where) or nil
  if autoinc and #pk_names > 1 and self.dialect == "sqlite" then
    fail("%s: SQLite does not support autoincrement for composite primary keys", where)
  end
  local inline_pk = opts.sqlite_autoincrement and self.dialect == "sqlite" and #pk_names == 1
    and integer_types[by_name[pk_names[1]].type.name] and not fk_columns[pk_names[1]]

  local lines = {}
  for _, col in ipairs(t.columns) do
    lines[#lines + 1] = self:column_spec(col, {
      pk = pk_set[col.name], autoincrement = autoinc == col,
      inline_pk = inline_pk and pk_set[col.name] }, where)
  end

  -- Constraints in SQLAlchemy's order: the primary key, the explicit ones as given, then those
  -- each column implies (unique, type CHECK, foreign keys), column by column.
  local records = {}
  if #pk_names > 0 and not inline_pk then records[1] = { type = "pk", name = pk_name, columns = pk_names } end
  for _, c in ipairs(t.constraints) do
    if kind(c) ~= "PrimaryKeyConstraint" then records[#records + 1] = ddl.constraint_record(c) end
  end
  for _, col in ipairs(t.columns) do
    for _, rec in ipairs(self:implied_constraints(col)) do records[#records + 1] = rec end
  end
  for _, rec in ipairs(records) do lines[#lines + 1] = self:constraint_sql(rec, t.name, where) end

  local stmts = {}
  -- PostgreSQL enum types come first, as SQLAlchemy's before_create event does.
  if d.native_enum then
    local seen = {}
    for _, col in ipairs(t.columns) do
      local ty = col.type
      if ty.name == "Enum" and ty.native_enum and ty.create_type then
        local tn = self:type_sql(ty)
        if not seen[tn] then
          seen[tn] = true
          stmts[#stmts + 1] = "CREATE TYPE " .. tn .. " AS ENUM ("
            .. concat(map(ty.enums, function(v) return self:literal(v) end), ", ") .. ")"
        end
      end
    end
  end
  stmts[#stmts + 1] = "CREATE TABLE " .. (opts.if_not_exists and "IF NOT EXISTS " or "")
    .. self:table_name(t.name, t.schema) .. " (\n    " .. concat(lines, ", \n    ") .. "\n)"
  for _, ix in ipairs(t.indexes) do
    for _, e in ipairs(ix.expressions) do
      if type(e) == "string" then check_columns("an index", { e }) end
    end
    stmts[#stmts + 1] = self:index_sql(ix, t.name, t.schema, where)
  end
  for _, col in ipairs(t.columns) do
    if col.index then
      stmts[#stmts + 1] = self:index_sql(sa.Index(nil, col.name, { unique = col.unique }), t.name, t.schema, where)
    end
  end
  if d.supports_comments then
    local tname = self:table_name(t.name, t.schema)
    if not is_none(opts.comment) then stmts[#stmts + 1] = self:comment_sql("TABLE", tname, opts.comment) end
    for _, col in ipairs(t.columns) do
      if not is_none(col.comment) then
        stmts[#stmts + 1] = self:comment_sql("COLUMN", tname .. "." .. self:quote(col.name), col.comment)
      end
    end
  end
  return stmts
end

function R:drop_table(name, schema, if_exists)
  return { "DROP TABLE " .. (if_exists and "IF EXISTS " or "") .. self:table_name(name, schema) }
end

function R:rename_table(old, new, schema)
  return { "ALTER TABLE " .. self:table_name(old, schema) .. " RENAME TO " .. self:quote(new) }
end

function R:batch_error(where, what)
  fail("%s: %s cannot %s with ALTER TABLE; use op.batch_alter_table (batch mode), which recreates the table",
       where, self.d.title, what)
end

-- The constraints a column implies (unique, its type's CHECK, foreign keys), as constraint_sql takes them.
function R:implied_constraints(col)
  local records = {}
  if col.unique and not col.index then records[#records + 1] = { type = "uq", columns = { col.name } } end
  local ck = self:type_check(col.name, col.type)
  if ck then
    ck.type, ck.type_bound = "ck", true
    records[#records + 1] = ck
  end
  for _, fk in ipairs(col.foreign_keys or {}) do records[#records + 1] = fk_record(col.name, fk) end
  return records
end

-- R:add_column(tname, col, schema, where): ADD COLUMN, then what the column implies (constraints,
-- index, comment). SQLite takes REFERENCES and CHECK inline; it cannot add a UNIQUE column.
function R:add_column(tname, col, schema, where)
  local d = self.d
  local target = self:table_name(tname, schema)
  local pk = col.primary_key
  local autoinc = pk and autoincrement_column({ [col.name] = col }, { col.name },
                                               { [col.name] = #col.foreign_keys > 0 or nil }, where) ~= nil
  local spec = self:column_spec(col, { pk = pk, autoincrement = autoinc }, where)
  local after = {}
  for _, rec in ipairs(self:implied_constraints(col)) do
    if d.inline_add_column_constraints then
      if rec.type == "uq" then self:batch_error(where, "add a UNIQUE column") end
      spec = spec .. " " .. self:inline_references(rec, tname, where)
    else
      after[#after + 1] = "ALTER TABLE " .. target .. " ADD " .. self:constraint_sql(rec, tname, where)
    end
  end
  local stmts = { "ALTER TABLE " .. target .. " ADD COLUMN " .. spec }
  for _, s in ipairs(after) do stmts[#stmts + 1] = s end
  if col.index then
    stmts[#stmts + 1] = self:index_sql(sa.Index(nil, col.name, { unique = col.unique }), tname, schema, where)
  end
  if d.supports_comments and not is_none(col.comment) then
    stmts[#stmts + 1] = self:comment_sql("COLUMN", target .. "." .. self:quote(col.name), col.comment)
  end
  return stmts
end

function R:drop_column(tname, cname, schema)
  return { "ALTER TABLE " .. self:table_name(tname, schema) .. " DROP COLUMN " .. self:quote(cname) }
end

function R:create_index(ix, tname, schema, where)
  return { self:index_sql(ix, tname, schema, where) }
end

function R:drop_index(name, schema, opts)
  opts = opts or {}
  local s = "DROP INDEX "
  if self.dialect == "postgresql" and opts.postgresql_concurrently then s = s .. "CONCURRENTLY " end
  if opts.if_exists then s = s .. "IF EXISTS " end
  return { s .. self:table_name(name, schema) }
end

-- R:add_constraint(rec, tname, schema, where): rec as constraint_sql takes it.
function R:add_constraint(rec, tname, schema, where)
  if not self.d.alter_constraints then self:batch_error(where, "add a constraint to an existing table") end
  return { "ALTER TABLE " .. self:table_name(tname, schema) .. " ADD " .. self:constraint_sql(rec, tname, where) }
end

function R:drop_constraint(name, tname, schema, where)
  if not self.d.alter_constraints then self:batch_error(where, "drop a constraint") end
  return { "ALTER TABLE " .. self:table_name(tname, schema) .. " DROP CONSTRAINT " .. self:quote(name) }
end

function R:table_comment(tname, comment, schema)
  if not self.d.supports_comments then return {} end -- SQLite keeps no comments; as SQLAlchemy, skip them
  return { self:comment_sql("TABLE", self:table_name(tname, schema), comment) }
end

-- R:alter_column(tname, cname, o, where): o holds the alter_column options (sa.null = drop).
-- PostgreSQL order as Alembic's: type-bound CHECK of the old type dropped, TYPE, NULL, DEFAULT,
-- comment, rename, then the new type's CHECK.
function R:alter_column(tname, cname, o, where)
  local d = self.d
  local target = self:table_name(tname, o.schema)
  local col = self:quote(cname)
  local prefix = "ALTER TABLE " .. target .. " ALTER COLUMN " .. col .. " "
  local stmts = {}
  if not d.alter_column_properties then
    if o.type ~= nil or o.nullable ~= nil or o.server_default ~= nil then
      self:batch_error(where, "change a column's type, nullability or default")
    end
  end
  local final_name = o.new_column_name or cname
  local old_ck = o.type ~= nil and o.existing_type and self:type_check(cname, o.existing_type)
  local old_ck_name = old_ck and self:constraint_name("ck", old_ck.name, { table = tname, columns = { cname } },
                                                      where, true)
  if old_ck_name and d.alter_constraints then
    stmts[#stmts + 1] = "ALTER TABLE " .. target .. " DROP CONSTRAINT " .. self:quote(old_ck_name)
  end
  if o.type ~= nil then
    local s = prefix .. "TYPE " .. self:type_sql(o.type)
    if o.postgresql_using and self.dialect == "postgresql" then s = s .. " USING " .. o.postgresql_using end
    stmts[#stmts + 1] = s
  end
  if o.nullable ~= nil then
    stmts[#stmts + 1] = prefix .. (o.nullable and "DROP NOT NULL" or "SET NOT NULL")
  end
  if o.server_default ~= nil then
    if o.server_default == sa.null or o.server_default == false then
      stmts[#stmts + 1] = prefix .. "DROP DEFAULT"
    else
      local sd = o.server_default
      local s
      if kind(sd) == "text" then s = sd.sql
      elseif type(sd) == "string" or type(sd) == "number" then s = self:literal(sd)
      else s = self:compiler(true):expr(sd) end
      stmts[#stmts + 1] = prefix .. "SET DEFAULT " .. s
    end
  end
  if o.comment ~= nil and d.supports_comments then
    stmts[#stmts + 1] = self:comment_sql("COLUMN", target .. "." .. col, o.comment)
  end
  if o.new_column_name then
    stmts[#stmts + 1] = "ALTER TABLE " .. target .. " RENAME " .. col .. " TO " .. self:quote(o.new_column_name)
  end
  local new_ck = o.type ~= nil and self:type_check(final_name, o.type)
  if new_ck and d.alter_constraints then
    new_ck.type, new_ck.type_bound = "ck", true
    stmts[#stmts + 1] = "ALTER TABLE " .. target .. " ADD " .. self:constraint_sql(new_ck, tname, where)
  end
  return stmts
end

return ddl
