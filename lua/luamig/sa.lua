-- luamig.sa: the SQLAlchemy vocabulary migrations use (types, schema items, SQL expressions).
--
-- Everything here is a pure constructor: it checks its arguments and returns a plain Lua table whose
-- metatable carries a `__kind` marker ("type", "Column", "column", "ForeignKey", "binary", ...).
-- Nothing here knows a dialect; luamig.ddl turns these values into SQL for one.
-- Errors name the constructor and the argument, without a position prefix (the host adds file:line).

local util = require("luamig.util")
-- SQL is rendered a few times per revision: LuaJIT's trace compiler would spend more here than it
-- saves (its traces abort on the closures), so this module stays interpreted. No per-row path of a
-- data migration calls it (op.bulk_*, conn:rows and the loaders do not).
jit.off(true, true)
local sa = {}

local fail = util.fail

-- kind(v): the __kind marker of a value built here, or nil.
local function kind(v)
  if type(v) ~= "table" then return nil end
  local mt = getmetatable(v)
  return mt and mt.__kind or nil
end
sa.kind = kind

local function shallow_copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return setmetatable(c, getmetatable(t))
end

local function is_plain(v)
  return type(v) == "table" and kind(v) == nil
end

-- check_options(where, opts, allowed): every hash key of opts must be in allowed.
local function check_options(where, opts, allowed)
  for k in pairs(opts) do
    if type(k) ~= "number" and not allowed[k] then
      fail("%s: unknown option '%s'", where, tostring(k))
    end
  end
end

local set = util.set

------------------------------------------------------------------------------------------------
-- SQL expressions
------------------------------------------------------------------------------------------------

-- Methods shared by everything that can stand in a comparison (columns, functions, literals).
local operand = {}
local function make_kind(name, methods)
  return { __kind = name, __index = methods }
end

local BinaryMT = make_kind("binary", operand)
local InMT = make_kind("in", operand)
local ClauseListMT = make_kind("clause_list", operand)
local NotMT = make_kind("not", operand)
local TextMT = make_kind("text", operand)
local FuncMT = make_kind("func", operand)
local LiteralMT = make_kind("literal", operand)
local TrueMT = make_kind("true", operand)
local FalseMT = make_kind("false", operand)
local NullMT = { __kind = "null", __index = operand, __tostring = function() return "sa.null" end }

sa.null = setmetatable({}, NullMT)
NullMT.__call = function() return sa.null end -- sa.null() is sa.null, as SQLAlchemy's null()

local function binary(left, op, right)
  return setmetatable({ left = left, op = op, right = right }, BinaryMT)
end

-- x:eq(nil) means IS NULL, as `x == None` does in SQLAlchemy.
function operand:eq(v)
  if v == nil or v == sa.null then return binary(self, "IS", sa.null) end
  return binary(self, "=", v)
end
function operand:ne(v)
  if v == nil or v == sa.null then return binary(self, "IS NOT", sa.null) end
  return binary(self, "!=", v)
end
function operand:lt(v) return binary(self, "<", v) end
function operand:le(v) return binary(self, "<=", v) end
function operand:gt(v) return binary(self, ">", v) end
function operand:ge(v) return binary(self, ">=", v) end
function operand:is_(v) if v == nil then v = sa.null end return binary(self, "IS", v) end
function operand:isnot(v) if v == nil then v = sa.null end return binary(self, "IS NOT", v) end
operand.is_not = operand.isnot
function operand:like(p) return binary(self, "LIKE", p) end
function operand:notlike(p) return binary(self, "NOT LIKE", p) end
operand.not_like = operand.notlike

local function in_list(self, values, negate, where)
  if type(values) ~= "table" or kind(values) then
    fail("%s: argument 1 must be an array of values", where)
  end
  local copy = {}
  for i = 1, (values.n or #values) do copy[i] = values[i] end
  copy.n = values.n or #values
  return setmetatable({ left = self, values = copy, negate = negate }, InMT)
end
function operand:in_(values) return in_list(self, values, false, "in_") end
function operand:notin_(values) return in_list(self, values, true, "notin_") end
operand.not_in = operand.notin_

local function clause_list(op, where, ...)
  local items = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if v == nil or (type(v) ~= "table" and type(v) ~= "string") then
      fail("%s: argument %d must be a SQL expression", where, i)
    end
    items[#items + 1] = v
  end
  return setmetatable({ op = op, items = items }, ClauseListMT)
end
function sa.and_(...) return clause_list("AND", "sa.and_", ...) end
function sa.or_(...) return clause_list("OR", "sa.or_", ...) end
function sa.not_(expr)
  if expr == nil then fail("sa.not_: argument 1 must be a SQL expression") end
  return setmetatable({ expr = expr }, NotMT)
end

-- sa.text(sql): literal SQL. Named parameters (:name) bind from :bindparams{} or a params map.
function TextMT.__index:bindparams(values)
  if not is_plain(values) then fail("sa.text:bindparams: argument 1 must be a table of name = value") end
  local t = shallow_copy(self)
  t.binds = {}
  for k, v in pairs(self.binds or {}) do t.binds[k] = v end
  for k, v in pairs(values) do t.binds[k] = v end
  return t
end
function sa.text(sql)
  if type(sql) ~= "string" then fail("sa.text: argument 1 must be a string") end
  return setmetatable({ sql = sql }, TextMT)
end

-- sa.func.<name>(args...): a SQL function call; the dialect may rename it (now() on SQLite).
sa.func = setmetatable({}, {
  __index = function(_, name)
    return function(...)
      local args = {}
      for i = 1, select("#", ...) do
        local v = select(i, ...)
        args[i] = v == nil and sa.null or v
      end
      return setmetatable({ name = name, args = args }, FuncMT)
    end
  end,
})

-- sa.literal(v): a value bound as a parameter (rendered inline with --sql).
function sa.literal(v, type_)
  return setmetatable({ value = v, type = type_ }, LiteralMT)
end
-- An inline literal is always rendered into the SQL text (op.inline_literal).
function sa._inline_literal(v, type_)
  return setmetatable({ value = v, type = type_, inline = true }, LiteralMT)
end

-- sa.conv(name): a constraint name the naming convention must leave as is (op.f in migrations).
local ConvMT = { __kind = "conv", __tostring = function(c) return c.name end }
function sa.conv(name)
  if type(name) ~= "string" then fail("sa.conv: argument 1 must be a string") end
  return setmetatable({ name = name }, ConvMT)
end

function sa.true_() return setmetatable({}, TrueMT) end
function sa.false_() return setmetatable({}, FalseMT) end

------------------------------------------------------------------------------------------------
-- Types
------------------------------------------------------------------------------------------------

-- Each type name is itself a usable type (sa.Integer) and callable (sa.String(50)) to make one
-- with arguments. `name` is the class; the renderer maps it per dialect.
local TypeMT = { __kind = "type" }
TypeMT.__index = {}
TypeMT.__tostring = function(t) return "sa." .. t.name end
TypeMT.__call = function(self, ...) return self._build(...) end

local function opts_last(where, n, ...)
  local args = { ... }
  local count = select("#", ...)
  local opts = {}
  if count > 0 and is_plain(args[count]) then
    opts = args[count]
    args[count] = nil
    count = count - 1
  end
  if count > n then fail("%s: too many arguments", where) end
  return opts, args
end

local function check_number(where, i, v)
  if v ~= nil and type(v) ~= "number" then fail("%s: argument %d must be a number", where, i) end
  return v
end

local function deftype(name, build)
  local bare
  local function new(fields)
    fields.name = name
    fields._build = bare._build
    return setmetatable(fields, TypeMT)
  end
  bare = setmetatable({ name = name }, TypeMT)
  bare._build = function(...) return new(build("sa." .. name, ...)) end
  return bare
end

local function no_args(where, ...)
  local opts = opts_last(where, 0, ...)
  check_options(where, opts, {})
  return {}
end
local function length_arg(where, ...)
  local opts, args = opts_last(where, 1, ...)
  check_options(where, opts, set { "length", "collation" })
  return { length = check_number(where, 1, args[1] or opts.length), collation = opts.collation }
end
local function precision_scale(where, ...)
  local opts, args = opts_last(where, 2, ...)
  check_options(where, opts, set { "precision", "scale", "asdecimal", "decimal_return_scale" })
  return { precision = check_number(where, 1, args[1] or opts.precision),
           scale = check_number(where, 2, args[2] or opts.scale) }
end
local function float_args(where, ...)
  local opts, args = opts_last(where, 1, ...)
  check_options(where, opts, set { "precision", "asdecimal", "decimal_return_scale" })
  return { precision = check_number(where, 1, args[1] or opts.precision) }
end
local function timezone_arg(where, ...)
  local opts, args = opts_last(where, 1, ...)
  check_options(where, opts, set { "timezone", "precision" })
  local tz = opts.timezone
  if type(args[1]) == "boolean" then tz = args[1] end
  return { timezone = tz and true or false, precision = opts.precision }
end
local function boolean_args(where, ...)
  local opts = opts_last(where, 0, ...)
  check_options(where, opts, set { "create_constraint", "name" })
  return { create_constraint = opts.create_constraint and true or false, constraint_name = opts.name }
end
-- sa.Enum("a", "b", { name = "e" }): strings are values; a table's array part adds values, its hash
-- part holds the options.
local function enum_args(where, ...)
  local values, opts = {}, {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if type(v) == "string" then
      values[#values + 1] = v
    elseif is_plain(v) then
      for j, e in ipairs(v) do
        if type(e) ~= "string" then fail("%s: item %d of argument %d must be a string", where, j, i) end
        values[#values + 1] = e
      end
      for k, val in pairs(v) do
        if type(k) ~= "number" then opts[k] = val end
      end
    else
      fail("%s: argument %d must be a string (an enum value)", where, i)
    end
  end
  check_options(where, opts, set { "name", "create_constraint", "native_enum", "create_type", "length", "schema" })
  if #values == 0 then fail("%s: needs at least one value", where) end
  return { enums = values, enum_name = opts.name, create_constraint = opts.create_constraint and true or false,
           native_enum = opts.native_enum ~= false, create_type = opts.create_type ~= false,
           length = opts.length, schema = opts.schema }
end

sa.Integer = deftype("Integer", no_args)
sa.BigInteger = deftype("BigInteger", no_args)
sa.SmallInteger = deftype("SmallInteger", no_args)
sa.String = deftype("String", length_arg)
sa.Text = deftype("Text", length_arg)
sa.Unicode = deftype("Unicode", length_arg)
sa.UnicodeText = deftype("UnicodeText", length_arg)
sa.Boolean = deftype("Boolean", boolean_args)
sa.Float = deftype("Float", float_args)
sa.Numeric = deftype("Numeric", precision_scale)
sa.Date = deftype("Date", no_args)
sa.DateTime = deftype("DateTime", timezone_arg)
sa.Time = deftype("Time", timezone_arg)
sa.Interval = deftype("Interval", no_args)
sa.LargeBinary = deftype("LargeBinary", length_arg)
sa.JSON = deftype("JSON", no_args)
sa.Uuid = deftype("Uuid", no_args)
sa.Enum = deftype("Enum", enum_args)
sa.INTEGER = deftype("INTEGER", no_args)
sa.BIGINT = deftype("BIGINT", no_args)
sa.SMALLINT = deftype("SMALLINT", no_args)
sa.VARCHAR = deftype("VARCHAR", length_arg)
sa.CHAR = deftype("CHAR", length_arg)
sa.TEXT = deftype("TEXT", length_arg)
sa.BOOLEAN = deftype("BOOLEAN", boolean_args)
sa.FLOAT = deftype("FLOAT", float_args)
sa.NUMERIC = deftype("NUMERIC", precision_scale)
sa.DECIMAL = deftype("DECIMAL", precision_scale)
sa.DATE = deftype("DATE", no_args)
sa.DATETIME = deftype("DATETIME", timezone_arg)
sa.TIMESTAMP = deftype("TIMESTAMP", timezone_arg)
sa.TIME = deftype("TIME", timezone_arg)
sa.BLOB = deftype("BLOB", length_arg)
sa.JSONB = deftype("JSONB", no_args)
sa.UUID = deftype("UUID", no_args)

------------------------------------------------------------------------------------------------
-- Schema items
------------------------------------------------------------------------------------------------

local ForeignKeyMT = { __kind = "ForeignKey" }
local ComputedMT = { __kind = "Computed" }
local PrimaryKeyMT = { __kind = "PrimaryKeyConstraint" }
local UniqueMT = { __kind = "UniqueConstraint" }
local CheckMT = { __kind = "CheckConstraint" }
local ForeignKeyConstraintMT = { __kind = "ForeignKeyConstraint" }
local IndexMT = { __kind = "Index" }

sa.constraint_kinds = set { "PrimaryKeyConstraint", "UniqueConstraint", "CheckConstraint", "ForeignKeyConstraint" }

local fk_options = set { "name", "ondelete", "onupdate", "deferrable", "initially", "match", "use_alter" }

-- split_target("schema.table.col") -> "schema.table", "col"
local function split_target(where, target)
  if kind(target) == "column" or kind(target) == "Column" then
    if not target.table then fail("%s: column '%s' belongs to no table", where, target.name) end
    local t = target.table
    return t.schema and (t.schema .. "." .. t.name) or t.name, target.name
  end
  if type(target) ~= "string" then fail("%s: argument 1 must be a string \"table.column\"", where) end
  local tbl, col = target:match("^(.+)%.([^.]+)$")
  if not tbl then fail("%s: '%s' must name a column as \"table.column\"", where, target) end
  return tbl, col
end

function sa.ForeignKey(target, opts)
  local where = "sa.ForeignKey"
  opts = opts or {}
  if not is_plain(opts) then fail("%s: argument 2 must be an options table", where) end
  check_options(where, opts, fk_options)
  local tbl, col = split_target(where, target)
  return setmetatable({ table = tbl, column = col, name = opts.name, ondelete = opts.ondelete,
                        onupdate = opts.onupdate, deferrable = opts.deferrable, initially = opts.initially,
                        match = opts.match }, ForeignKeyMT)
end

function sa.Computed(sqltext, opts)
  opts = opts or {}
  if type(sqltext) ~= "string" and not kind(sqltext) then
    fail("sa.Computed: argument 1 must be SQL text or an expression")
  end
  check_options("sa.Computed", opts, set { "persisted" })
  return setmetatable({ sqltext = sqltext, persisted = opts.persisted }, ComputedMT)
end

-- column_names(where, ...): names given as strings (or columns), in arguments or a trailing table's
-- array part; the trailing table's hash part holds the options.
local function names_and_opts(where, allowed, ...)
  local names, opts = {}, {}
  local n = select("#", ...)
  for i = 1, n do
    local v = select(i, ...)
    if type(v) == "string" then
      names[#names + 1] = v
    elseif kind(v) == "column" or kind(v) == "Column" then
      names[#names + 1] = v.name
    elseif is_plain(v) then
      for j, item in ipairs(v) do
        if type(item) == "string" then names[#names + 1] = item
        elseif kind(item) == "column" or kind(item) == "Column" then names[#names + 1] = item.name
        else fail("%s: item %d of argument %d must be a column name", where, j, i) end
      end
      for k, val in pairs(v) do
        if type(k) ~= "number" then opts[k] = val end
      end
    else
      fail("%s: argument %d must be a column name", where, i)
    end
  end
  check_options(where, opts, allowed)
  return names, opts
end

function sa.PrimaryKeyConstraint(...)
  local names, opts = names_and_opts("sa.PrimaryKeyConstraint", set { "name" }, ...)
  return setmetatable({ columns = names, name = opts.name }, PrimaryKeyMT)
end

function sa.UniqueConstraint(...)
  local names, opts = names_and_opts("sa.UniqueConstraint", set { "name", "deferrable", "initially" }, ...)
  if #names == 0 then fail("sa.UniqueConstraint: needs at least one column") end
  return setmetatable({ columns = names, name = opts.name, deferrable = opts.deferrable,
                        initially = opts.initially }, UniqueMT)
end

function sa.CheckConstraint(sqltext, opts)
  opts = opts or {}
  if type(sqltext) ~= "string" and not kind(sqltext) then
    fail("sa.CheckConstraint: argument 1 must be SQL text or an expression")
  end
  if not is_plain(opts) then fail("sa.CheckConstraint: argument 2 must be an options table") end
  check_options("sa.CheckConstraint", opts, set { "name", "deferrable", "initially" })
  return setmetatable({ sqltext = sqltext, name = opts.name }, CheckMT)
end

function sa.ForeignKeyConstraint(cols, refcols, opts)
  local where = "sa.ForeignKeyConstraint"
  opts = opts or {}
  if not is_plain(cols) or #cols == 0 then fail("%s: argument 1 must be an array of column names", where) end
  if not is_plain(refcols) or #refcols ~= #cols then
    fail("%s: argument 2 must be an array of \"table.column\" with one entry per column", where)
  end
  if not is_plain(opts) then fail("%s: argument 3 must be an options table", where) end
  check_options(where, opts, fk_options)
  local columns, reftable, refcolumns = {}, nil, {}
  for i, c in ipairs(cols) do
    if kind(c) == "column" or kind(c) == "Column" then c = c.name end
    if type(c) ~= "string" then fail("%s: item %d of argument 1 must be a column name", where, i) end
    columns[i] = c
    local t, rc = split_target(where, refcols[i])
    if reftable and t ~= reftable then fail("%s: all referred columns must be in one table", where) end
    reftable, refcolumns[i] = t, rc
  end
  return setmetatable({ columns = columns, reftable = reftable, refcolumns = refcolumns, name = opts.name,
                        ondelete = opts.ondelete, onupdate = opts.onupdate, deferrable = opts.deferrable,
                        initially = opts.initially, match = opts.match }, ForeignKeyConstraintMT)
end

local index_options = set { "unique", "sqlite_where", "postgresql_where", "postgresql_using",
                            "postgresql_concurrently", "postgresql_include", "if_not_exists", "quote", "info" }
sa.index_options = index_options

-- sa.Index(name, col..., opts): columns are names, sa.text expressions or columns.
function sa.Index(name, ...)
  local where = "sa.Index"
  if name ~= nil and type(name) ~= "string" and kind(name) ~= "conv" then
    fail("%s: argument 1 must be the index name", where)
  end
  local n = select("#", ...)
  local opts, expressions = {}, {}
  for i = 1, n do
    local v = select(i, ...)
    if i == n and is_plain(v) then
      opts = v
    elseif type(v) == "string" or kind(v) then
      expressions[#expressions + 1] = v
    else
      fail("%s: argument %d must be a column name or an expression", where, i + 1)
    end
  end
  check_options(where, opts, index_options)
  if #expressions == 0 then fail("%s: needs at least one column", where) end
  return setmetatable({ name = name, expressions = expressions, unique = opts.unique and true or false,
                        opts = opts }, IndexMT)
end

------------------------------------------------------------------------------------------------
-- Columns and tables
------------------------------------------------------------------------------------------------

-- A schema Column ("Column") carries DDL options; a lightweight column ("column", sa.column) only a
-- name and an optional type. Both are expressions (operand methods) and both can live in a table.
local ColumnMT = { __kind = "Column", __index = operand }
local ColumnClauseMT = { __kind = "column", __index = operand }

local column_options = set { "primary_key", "nullable", "unique", "index", "autoincrement", "default",
                             "server_default", "comment", "onupdate", "server_onupdate", "key", "info", "doc",
                             "quote", "system", "type" }

function sa.Column(name, ...)
  local where = "sa.Column"
  if type(name) ~= "string" or name == "" then fail("%s: argument 1 must be the column name", where) end
  local col = { name = name, foreign_keys = {} }
  local n = select("#", ...)
  local function item(v, what)
    local k = kind(v)
    if k == "ForeignKey" then
      col.foreign_keys[#col.foreign_keys + 1] = v
    elseif k == "Computed" then
      col.computed = v
    else
      fail("%s: %s must be a sa.ForeignKey or a sa.Computed", where, what)
    end
  end
  for i = 1, n do
    local v = select(i, ...)
    local k = kind(v)
    if k == "type" then
      if col.type then fail("%s: argument %d: the type is given twice", where, i + 1) end
      col.type = v
    elseif k then
      item(v, "argument " .. (i + 1))
    elseif is_plain(v) then
      check_options(where, v, column_options)
      for j, it in ipairs(v) do item(it, string.format("item %d of argument %d", j, i + 1)) end
      for key, val in pairs(v) do
        if type(key) ~= "number" then col[key] = val end
      end
    elseif v ~= nil then
      fail("%s: argument %d must be a type, a sa.ForeignKey or an options table", where, i + 1)
    end
  end
  if col.type == nil then fail("%s: column '%s' needs a type (argument 2)", where, name) end
  if kind(col.type) ~= "type" then fail("%s: option 'type' must be a sa type", where) end
  -- nullable stays nil unless given: a primary key column is NOT NULL by default, and whether it is a
  -- primary key is known only in its table (a sa.PrimaryKeyConstraint may name it).
  col.primary_key = col.primary_key and true or false
  if col.autoincrement == nil then col.autoincrement = "auto" end
  return setmetatable(col, ColumnMT)
end

function sa.column(name, type_)
  if type(name) ~= "string" or name == "" then fail("sa.column: argument 1 must be the column name") end
  if type_ ~= nil and kind(type_) ~= "type" then fail("sa.column: argument 2 must be a sa type") end
  return setmetatable({ name = name, type = type_ }, ColumnClauseMT)
end

-- Tables: sa.table(name, columns..., { schema }) and what op.create_table returns.
local Table = {}
local TableMT = { __kind = "table", __index = Table, __tostring = function(t) return "sa.table(" .. t.name .. ")" end }

-- sa._make_table(where, name, schema, columns): copies each column bound to the new table, so a
-- column object can be reused in several tables.
-- The items of a table definition after its name (op.create_table, sa.Table): sa.Column,
-- constraints and sa.Index, then an optional table of options. Returns columns, constraints,
-- indexes, the options (or nil), the number of items, and the position of the first item that is
-- none of these (nil when all are).
function sa._table_items(...)
  local columns, constraints, indexes, opts = {}, {}, {}, nil
  local n = select("#", ...)
  while n > 0 and select(n, ...) == nil do n = n - 1 end -- trailing nils (an absent options table)
  for i = 1, n do
    local v = select(i, ...)
    local k = kind(v)
    if k == "Column" then
      columns[#columns + 1] = v
    elseif sa.constraint_kinds[k] then
      constraints[#constraints + 1] = v
    elseif k == "Index" then
      indexes[#indexes + 1] = v
    elseif i == n and is_plain(v) then
      opts = v
    else
      return columns, constraints, indexes, opts, n, i
    end
  end
  return columns, constraints, indexes, opts, n, nil
end

function sa._make_table(where, name, schema, columns)
  local t = setmetatable({ name = name, schema = schema, columns = {}, c = {} }, TableMT)
  for _, col in ipairs(columns) do
    if t.c[col.name] then fail("%s: column '%s' is given twice", where, col.name) end
    local bound = shallow_copy(col)
    bound.table = t
    t.columns[#t.columns + 1] = bound
    t.c[col.name] = bound
  end
  return t
end

function sa.table(name, ...)
  local where = "sa.table"
  if type(name) ~= "string" or name == "" then fail("%s: argument 1 must be the table name", where) end
  local cols, schema = {}, nil
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    local k = kind(v)
    if k == "column" or k == "Column" then
      cols[#cols + 1] = v
    elseif is_plain(v) then
      check_options(where, v, set { "schema" })
      schema = v.schema
    else
      fail("%s: argument %d must be a sa.column", where, i + 1)
    end
  end
  return sa._make_table(where, name, schema, cols)
end

-- Statements are generative: each method returns a new statement.
local Statement = {}
local InsertMT = { __kind = "insert", __index = Statement }
local UpdateMT = { __kind = "update", __index = Statement }
local DeleteMT = { __kind = "delete", __index = Statement }
local SelectMT = { __kind = "select", __index = Statement }

local function append(list, v)
  local c = {}
  for i, x in ipairs(list or {}) do c[i] = x end
  c[#c + 1] = v
  return c
end

function Statement:where(expr)
  local k = kind(self)
  if k == "insert" then fail("insert: an INSERT has no where()") end
  if expr == nil or (type(expr) ~= "table" and type(expr) ~= "string") then
    fail("%s:where: argument 1 must be a SQL expression", k)
  end
  local s = shallow_copy(self)
  s.wheres = append(self.wheres, expr)
  return s
end

function Statement:values(values)
  local k = kind(self)
  if k ~= "insert" and k ~= "update" then fail("%s: values() is for insert() and update()", k) end
  if not is_plain(values) then fail("%s:values: argument 1 must be a table of column = value", k) end
  local s = shallow_copy(self)
  local merged = {}
  for key, v in pairs(self.vals or {}) do merged[key] = v end
  for key, v in pairs(values) do
    if kind(key) == "column" or kind(key) == "Column" then key = key.name end
    if type(key) ~= "string" then fail("%s:values: keys must be column names", k) end
    if not self.table.c[key] then
      fail("%s:values: '%s' is not a column of table '%s'", k, key, self.table.name)
    end
    merged[key] = v
  end
  s.vals = merged
  return s
end

function Statement:order_by(...)
  if kind(self) ~= "select" then fail("order_by: only select() has order_by()") end
  local s = shallow_copy(self)
  s.order = {}
  for i = 1, select("#", ...) do s.order[i] = select(i, ...) end
  return s
end

function Statement:limit(n)
  if kind(self) ~= "select" then fail("limit: only select() has limit()") end
  if type(n) ~= "number" then fail("select:limit: argument 1 must be a number") end
  local s = shallow_copy(self)
  s.limit_n = n
  return s
end

function Table:insert() return setmetatable({ table = self }, InsertMT) end
function Table:update() return setmetatable({ table = self }, UpdateMT) end
function Table:delete() return setmetatable({ table = self }, DeleteMT) end

-- sa.select(col_or_table...), also sa.select({ cols }) as in SQLAlchemy 1.3.
function sa.select(...)
  local items = {}
  local args = { ... }
  if select("#", ...) == 1 and is_plain(args[1]) then args = args[1] end
  for i, v in ipairs(args) do
    local k = kind(v)
    if k == "table" then
      for _, c in ipairs(v.columns) do items[#items + 1] = c end
    elseif k then
      items[#items + 1] = v
    else
      fail("sa.select: argument %d must be a column, a table or an expression", i)
    end
  end
  if #items == 0 then fail("sa.select: needs at least one column") end
  return setmetatable({ columns = items }, SelectMT)
end

return sa
