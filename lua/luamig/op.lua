-- luamig.op: the operations a migration's upgrade()/downgrade() call, as in Alembic 1.8.
--
-- The host sets the running context with op._set_context(ctx) before a revision's function and
-- op._set_context(nil) after it. ctx = { dialect, offline, x, config = { naming_convention, ... },
-- emit = function(sql, params), raw = <connection userdata or nil> }.
-- Every operation renders SQL with luamig.ddl and hands each statement to ctx.emit, which runs it
-- (online) or prints it (offline, --sql); offline, parameters are rendered inline and emit gets none.
-- Operations SQLite cannot do with ALTER TABLE run through luamig.batch (move and copy): inside
-- op.batch_alter_table, or alone when the config's render_as_batch is on (the default).
-- Errors name the operation and the argument and carry no position (the host adds file:line).

local util = require("luamig.util")
local sa = require("luamig.sa")
local ddl = require("luamig.ddl")
local conn = require("luamig.conn")
local progress = require("luamig.progress")

local batch = require("luamig.batch")

local kind = sa.kind

local op = {}

local current -- { ctx, r (renderer), bind (conn), public (get_context) } while a revision runs

-- While a batch_op method runs: { queue, table_pos }. The op functions below then validate their
-- arguments as usual but queue the operation for op.batch_alter_table instead of running it; their
-- messages name batch_op.<name> and count arguments without the table (at table_pos).
local capturing

local fail = util.fail

local set = util.set

function op._set_context(ctx)
  if ctx == nil then
    current = nil
    return
  end
  if type(ctx) ~= "table" or type(ctx.emit) ~= "function" then
    error("op._set_context: ctx must be a table with an emit function", 2)
  end
  local config = ctx.config or {}
  current = {
    ctx = ctx,
    r = ddl.renderer(ctx.dialect, config),
    public = { dialect = ctx.dialect, offline = ctx.offline and true or false, x = ctx.x or {}, config = config },
  }
end

local function state(where)
  if not current then
    fail("%s: no migration is running (op functions work inside upgrade() and downgrade())", where)
  end
  return current
end

local function emit_all(s, stmts)
  for _, sql in ipairs(stmts) do s.ctx.emit(sql, nil) end
end

-- The argument number the caller sees (a batch_op method has no table argument).
local function argno(i)
  if capturing and i > capturing.table_pos then return i - 1 end
  return i
end

-- "op.<name>", or "batch_op.<name>" inside a batch.
local function opname(name)
  return (capturing and "batch_op." or "op.") .. name
end

local function check_name(where, i, v, what)
  if type(v) ~= "string" or v == "" then
    fail("%s: argument %d must be %s", where, argno(i), what or "a name (a string)")
  end
  return v
end

-- options(where, i, opts, allowed): the trailing options table, checked for unknown keys.
local function options(where, i, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" or kind(opts) then fail("%s: argument %d must be an options table", where, argno(i)) end
  for k in pairs(opts) do
    if not allowed[k] then fail("%s: unknown option '%s'", where, tostring(k)) end
  end
  return opts
end

local function column_list(where, i, cols, allow_expressions)
  if type(cols) == "string" or (allow_expressions and kind(cols)) then cols = { cols } end
  if type(cols) ~= "table" or kind(cols) or #cols == 0 then
    fail("%s: argument %d must be an array of column names", where, argno(i))
  end
  local out = {}
  for j, c in ipairs(cols) do
    local k = kind(c)
    if k == "column" or k == "Column" then
      out[j] = allow_expressions and c or c.name
    elseif type(c) == "string" or (allow_expressions and k) then
      out[j] = c
    else
      fail("%s: item %d of argument %d must be a column name", where, j, argno(i))
    end
  end
  return out
end

-- The naming convention key for a drop_constraint type.
local constraint_keys = { foreignkey = "fk", unique = "uq", check = "ck", primary = "pk" }

local function render_as_batch(s)
  return s.public.config.render_as_batch ~= false
end

-- dispatch(s, rec, exec): runs one operation. rec describes it for batch mode ({ op, where, table,
-- native = whether SQLite can do it with ALTER TABLE, ... }); exec(r) emits its plain SQL with
-- renderer r. Inside a batch_op method the operation is queued instead; on SQLite an operation
-- SQLite cannot do with ALTER TABLE runs as a one-operation batch when render_as_batch is on.
local function dispatch(s, rec, exec)
  if capturing then
    capturing.queue[#capturing.queue + 1] = { rec = rec, exec = exec }
  elseif not rec.native and s.ctx.dialect == "sqlite" and render_as_batch(s) then
    batch.run(s, rec.table, { { rec = rec, exec = exec } }, {}, rec.where)
  else
    exec(s.r)
  end
end

------------------------------------------------------------------------------------------------
-- Tables and columns
------------------------------------------------------------------------------------------------

local create_table_options = set { "comment", "schema", "if_not_exists", "sqlite_autoincrement", "info",
                                   "prefixes", "postgresql_partition_by" }

-- op.create_table(name, columns / constraints / indexes..., opts) -> a table usable by bulk_insert
function op.create_table(name, ...)
  local where = "op.create_table"
  check_name(where, 1, name, "the table name")
  local columns, constraints, indexes, opts, n, bad = sa._table_items(...)
  if bad then fail("%s: argument %d must be a sa.Column, a constraint or an index", where, bad + 1) end
  opts = options(where, n + 1, opts, create_table_options)
  if #columns == 0 then fail("%s: table '%s' needs at least one sa.Column", where, name) end
  local s = state(where)
  local t = sa._make_table(where, name, opts.schema, columns)
  t.constraints, t.indexes, t.opts = constraints, indexes, opts
  emit_all(s, s.r:create_table(t, where))
  return t
end

function op.drop_table(name, opts)
  local where = "op.drop_table"
  check_name(where, 1, name, "the table name")
  opts = options(where, 2, opts, set { "schema", "if_exists" })
  local s = state(where)
  emit_all(s, s.r:drop_table(name, opts.schema, opts.if_exists))
end

function op.rename_table(old, new, opts)
  local where = "op.rename_table"
  check_name(where, 1, old, "the table name")
  check_name(where, 2, new, "the new table name")
  opts = options(where, 3, opts, set { "schema" })
  local s = state(where)
  emit_all(s, s.r:rename_table(old, new, opts.schema))
end

function op.add_column(table_name, column, opts)
  local where = opname("add_column")
  check_name(where, 1, table_name, "the table name")
  if kind(column) ~= "Column" then fail("%s: argument %d must be a sa.Column", where, argno(2)) end
  opts = options(where, 3, opts, capturing and set { "schema", "insert_before", "insert_after" } or set { "schema" })
  for _, k in ipairs({ "insert_before", "insert_after" }) do
    if opts[k] ~= nil and (type(opts[k]) ~= "string" or opts[k] == "") then
      fail("%s: option '%s' must be a column name", where, k)
    end
  end
  local s = state(where)
  dispatch(s, { op = "add_column", where = where, table = table_name, column = column,
                insert_before = opts.insert_before, insert_after = opts.insert_after,
                native = batch.add_column_native(column) and not opts.insert_before and not opts.insert_after },
    function(r) emit_all(s, r:add_column(table_name, column, opts.schema, where)) end)
end

local drop_column_options = set { "schema", "existing_type", "existing_nullable", "existing_server_default",
                                  "existing_comment", "mssql_drop_check", "mssql_drop_default",
                                  "mssql_drop_foreign_key" }

function op.drop_column(table_name, column_name, opts)
  local where = opname("drop_column")
  check_name(where, 1, table_name, "the table name")
  check_name(where, 2, column_name, "the column name")
  opts = options(where, 3, opts, drop_column_options)
  if opts.existing_type ~= nil and kind(opts.existing_type) ~= "type" then
    fail("%s: option 'existing_type' must be a sa type", where)
  end
  local s = state(where)
  -- SQLite refuses to drop a column a table CHECK names, so the CHECK of its type needs batch mode.
  local type_check = opts.existing_type and not s.r.d.alter_constraints
    and s.r:type_check(column_name, opts.existing_type)
  local function exec(r)
    if type_check then
      r:batch_error(where, string.format("drop column '%s' and the CHECK of its type sa.%s", column_name,
                                         opts.existing_type.name))
    end
    emit_all(s, r:drop_column(table_name, column_name, opts.schema))
  end
  -- In a batch, as in Alembic, a dropped column makes SQLite recreate the table (recreate = "auto").
  local rec = { op = "drop_column", where = where, table = table_name, column = column_name,
                existing_type = opts.existing_type, native = false, recreate = true }
  if capturing or type_check or s.ctx.dialect ~= "sqlite" or s.ctx.offline or not s.ctx.raw
     or not render_as_batch(s) then
    rec.native = not type_check
    return dispatch(s, rec, exec)
  end
  -- Online SQLite: its own DROP COLUMN keeps everything else as it is; when it refuses (an index,
  -- a constraint or a trigger uses the column), batch mode rebuilds the table or says what it
  -- cannot keep.
  if not batch.try(s, function() exec(s.r) end) then dispatch(s, rec, exec) end
end

local alter_column_options = set { "nullable", "type", "type_", "server_default", "new_column_name", "comment",
                                   "existing_type", "existing_nullable", "existing_server_default",
                                   "existing_comment", "autoincrement", "existing_autoincrement",
                                   "postgresql_using", "schema" }

function op.alter_column(table_name, column_name, opts)
  local where = opname("alter_column")
  check_name(where, 1, table_name, "the table name")
  check_name(where, 2, column_name, "the column name")
  opts = options(where, 3, opts, alter_column_options)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  if o.type_ ~= nil then
    if o.type ~= nil then fail("%s: give 'type' or 'type_', not both", where) end
    o.type, o.type_ = o.type_, nil
  end
  if o.type ~= nil and kind(o.type) ~= "type" then fail("%s: option 'type' must be a sa type", where) end
  if o.existing_type ~= nil and kind(o.existing_type) ~= "type" then
    fail("%s: option 'existing_type' must be a sa type", where)
  end
  if o.nullable ~= nil and type(o.nullable) ~= "boolean" then fail("%s: option 'nullable' must be a boolean", where) end
  if o.new_column_name ~= nil and (type(o.new_column_name) ~= "string" or o.new_column_name == "") then
    fail("%s: option 'new_column_name' must be a string", where)
  end
  if o.comment ~= nil and o.comment ~= sa.null and type(o.comment) ~= "string" then
    fail("%s: option 'comment' must be a string or sa.null", where)
  end
  local s = state(where)
  dispatch(s, { op = "alter_column", where = where, table = table_name, column = column_name, o = o,
                native = s.r.d.alter_column_properties
                  or (o.type == nil and o.nullable == nil and o.server_default == nil) },
    function(r) emit_all(s, r:alter_column(table_name, column_name, o, where)) end)
end

------------------------------------------------------------------------------------------------
-- Indexes and constraints
------------------------------------------------------------------------------------------------

local create_index_options = set { "unique", "schema", "sqlite_where", "postgresql_where", "postgresql_using",
                                   "postgresql_concurrently", "postgresql_include", "if_not_exists" }

-- op.create_index(name, table, cols, opts): cols are names, sa.text(...) or expressions.
function op.create_index(name, table_name, cols, opts)
  local where = opname("create_index")
  if name ~= nil and kind(name) ~= "conv" then check_name(where, 1, name, "the index name (or nil)") end
  check_name(where, 2, table_name, "the table name")
  local exprs = column_list(where, 3, cols, true)
  opts = options(where, 4, opts, create_index_options)
  local s = state(where)
  local ixopts = {}
  for k, v in pairs(opts) do if k ~= "schema" then ixopts[k] = v end end
  local ix = sa.Index(name, unpack(exprs))
  ix.unique, ix.opts = opts.unique and true or false, ixopts
  dispatch(s, { op = "create_index", where = where, table = table_name, index = ix, native = true },
    function(r) emit_all(s, r:create_index(ix, table_name, opts.schema, where)) end)
end

-- op.drop_index(name, { table_name, schema }) (Alembic's positional table_name works too).
function op.drop_index(name, table_name, opts)
  local where = opname("drop_index")
  if type(table_name) == "table" and opts == nil then table_name, opts = nil, table_name end
  if kind(name) == "conv" then name = name.name end
  check_name(where, 1, name, "the index name")
  if table_name ~= nil then check_name(where, 2, table_name, "the table name") end
  opts = options(where, table_name and 3 or 2, opts,
                 set { "table_name", "schema", "postgresql_concurrently", "if_exists" })
  local s = state(where)
  dispatch(s, { op = "drop_index", where = where, table = table_name or opts.table_name, name = name,
                if_exists = opts.if_exists, native = true },
    function(r) emit_all(s, r:drop_index(name, opts.schema, opts)) end)
end

local function constraint_name_arg(where, name)
  if name ~= nil and kind(name) ~= "conv" then check_name(where, 1, name, "the constraint name (or nil)") end
  return name
end

-- The shared end of the create_*_constraint / create_*_key operations: c as ddl's constraint_sql takes it.
local function add_constraint(s, where, c, table_name, schema)
  dispatch(s, { op = "add_constraint", where = where, table = table_name, constraint = c,
                native = s.r.d.alter_constraints },
    function(r) emit_all(s, r:add_constraint(c, table_name, schema, where)) end)
end

function op.create_unique_constraint(name, table_name, cols, opts)
  local where = opname("create_unique_constraint")
  constraint_name_arg(where, name)
  check_name(where, 2, table_name, "the table name")
  local columns = column_list(where, 3, cols, false)
  opts = options(where, 4, opts, set { "schema", "deferrable", "initially" })
  add_constraint(state(where), where, { type = "uq", name = name, columns = columns, deferrable = opts.deferrable,
                                        initially = opts.initially }, table_name, opts.schema)
end

function op.create_primary_key(name, table_name, cols, opts)
  local where = opname("create_primary_key")
  constraint_name_arg(where, name)
  check_name(where, 2, table_name, "the table name")
  local columns = column_list(where, 3, cols, false)
  opts = options(where, 4, opts, set { "schema" })
  add_constraint(state(where), where, { type = "pk", name = name, columns = columns }, table_name, opts.schema)
end

function op.create_check_constraint(name, table_name, condition, opts)
  local where = opname("create_check_constraint")
  constraint_name_arg(where, name)
  check_name(where, 2, table_name, "the table name")
  if type(condition) ~= "string" and not kind(condition) then
    fail("%s: argument %d must be SQL text or an expression", where, argno(3))
  end
  opts = options(where, 4, opts, set { "schema", "deferrable", "initially" })
  add_constraint(state(where), where, { type = "ck", name = name, sqltext = condition, deferrable = opts.deferrable,
                                        initially = opts.initially }, table_name, opts.schema)
end

local foreign_key_options = set { "ondelete", "onupdate", "deferrable", "initially", "match", "source_schema",
                                  "referent_schema" }

function op.create_foreign_key(name, source, referent, local_cols, remote_cols, opts)
  local where = opname("create_foreign_key")
  constraint_name_arg(where, name)
  check_name(where, 2, source, "the source table name")
  check_name(where, 3, referent, "the referent table name")
  local lcols = column_list(where, 4, local_cols, false)
  local rcols = column_list(where, 5, remote_cols, false)
  if #lcols ~= #rcols then fail("%s: arguments %d and %d must name as many columns", where, argno(4), argno(5)) end
  opts = options(where, 6, opts, foreign_key_options)
  local reftable = opts.referent_schema and (opts.referent_schema .. "." .. referent) or referent
  add_constraint(state(where), where, { type = "fk", name = name, columns = lcols, reftable = reftable,
                                        refcolumns = rcols, ondelete = opts.ondelete, onupdate = opts.onupdate,
                                        deferrable = opts.deferrable, initially = opts.initially,
                                        match = opts.match }, source, opts.source_schema)
end

-- op.drop_constraint(name, table, { type = "foreignkey" | "unique" | "check" | "primary", schema })
function op.drop_constraint(name, table_name, opts)
  local where = opname("drop_constraint")
  if name == nil then fail("%s: argument 1 must be the constraint name", where) end
  constraint_name_arg(where, name)
  check_name(where, 2, table_name, "the table name")
  if type(opts) == "string" then opts = { type = opts } end
  opts = options(where, 3, opts, set { "type", "type_", "schema", "if_exists" })
  local ctype = opts.type or opts.type_
  if ctype ~= nil and not constraint_keys[ctype] then
    fail("%s: option 'type' must be \"foreignkey\", \"unique\", \"check\" or \"primary\"", where)
  end
  local s = state(where)
  -- The name as rendered: a naming convention may make it (the batch's convention, inside a batch).
  local function final(r)
    if ctype then return r:constraint_name(constraint_keys[ctype], name, { table = table_name }, where) end
    return kind(name) == "conv" and name.name or name
  end
  dispatch(s, { op = "drop_constraint", where = where, table = table_name, name = final, ctype = ctype,
                native = s.r.d.alter_constraints },
    function(r) emit_all(s, r:drop_constraint(final(r), table_name, opts.schema, where)) end)
end

function op.create_table_comment(table_name, comment, opts)
  local where = "op.create_table_comment"
  check_name(where, 1, table_name, "the table name")
  if type(comment) ~= "string" then fail("%s: argument 2 must be the comment (a string)", where) end
  opts = options(where, 3, opts, set { "existing_comment", "schema" })
  local s = state(where)
  emit_all(s, s.r:table_comment(table_name, comment, opts.schema))
end

function op.drop_table_comment(table_name, opts)
  local where = "op.drop_table_comment"
  check_name(where, 1, table_name, "the table name")
  opts = options(where, 2, opts, set { "existing_comment", "schema" })
  local s = state(where)
  emit_all(s, s.r:table_comment(table_name, sa.null, opts.schema))
end

------------------------------------------------------------------------------------------------
-- Batch mode
------------------------------------------------------------------------------------------------

-- The batch_op methods: name -> position of the table argument in the op function they mirror.
local batch_methods = {
  add_column = 1, drop_column = 1, alter_column = 1, create_index = 2, drop_index = 2,
  create_unique_constraint = 2, create_foreign_key = 2, create_check_constraint = 2, create_primary_key = 2,
  drop_constraint = 2,
}

local batch_options = set { "recreate", "naming_convention", "table_args", "copy_from", "schema",
                            "table_kwargs", "reflect_args", "reflect_kwargs", "partial_reordering" }

-- op.batch_alter_table(table, function(batch_op) ... end, { recreate, naming_convention, table_args,
-- copy_from }): the operations fn calls on batch_op are queued and run together when fn returns;
-- on SQLite, through luamig.batch (move and copy) when one of them needs it.
function op.batch_alter_table(table_name, fn, opts)
  local where = "op.batch_alter_table"
  check_name(where, 1, table_name, "the table name")
  if type(fn) ~= "function" then fail("%s: argument 2 must be a function(batch_op)", where) end
  opts = options(where, 3, opts, batch_options)
  if opts.recreate ~= nil and opts.recreate ~= "auto" and opts.recreate ~= "always" and opts.recreate ~= "never" then
    fail("%s: option 'recreate' must be \"auto\", \"always\" or \"never\"", where)
  end
  if opts.naming_convention ~= nil and (type(opts.naming_convention) ~= "table" or kind(opts.naming_convention)) then
    fail("%s: option 'naming_convention' must be a table of templates", where)
  end
  if opts.table_args ~= nil then
    if type(opts.table_args) ~= "table" or kind(opts.table_args) then
      fail("%s: option 'table_args' must be an array of constraints", where)
    end
    for i, c in ipairs(opts.table_args) do
      if not sa.constraint_kinds[kind(c)] then fail("%s: item %d of option 'table_args' must be a constraint", where, i) end
    end
  end
  if opts.copy_from ~= nil and kind(opts.copy_from) ~= "table" then
    fail("%s: option 'copy_from' must be a table description (sa.table or op.create_table's result)", where)
  end
  local s = state(where)
  if capturing then fail("%s: cannot run inside another batch", where) end
  local queue = {}
  local b = {}
  for name, table_pos in pairs(batch_methods) do
    local fn_op = op[name]
    b[name] = function(first, ...)
      local given = { n = select("#", ...) + 1, first, ... }
      if first == b then given = { n = select("#", ...), ... } end -- called with a colon
      local args = { [table_pos] = table_name }
      for i = 1, given.n do args[i < table_pos and i or i + 1] = given[i] end
      capturing = { queue = queue, table_pos = table_pos }
      local ok, err = pcall(fn_op, unpack(args, 1, math.max(given.n + 1, table_pos)))
      capturing = nil
      if not ok then error(err, 0) end
    end
  end
  fn(b)
  batch.run(s, table_name, queue, opts, where)
end

------------------------------------------------------------------------------------------------
-- Data
------------------------------------------------------------------------------------------------

-- op.execute(sql | sa.text | expression, params): offline, values are written into the SQL text.
function op.execute(stmt, params)
  local where = "op.execute"
  local s = state(where)
  local sql, p = conn.compile(s.r, where, stmt, params, s.ctx.offline)
  s.ctx.emit(sql, p)
end

local function plain_value(v)
  return kind(v) == nil or v == sa.null
end

-- The rows of bulk_insert and bulk_update as an iterator: an array or an iterator function.
local function row_source(where, rows)
  if type(rows) == "function" then return rows end
  if type(rows) == "table" and kind(rows) == nil then
    local i, count = 0, rows.n or #rows
    return function()
      i = i + 1
      if i > count then return nil end
      return rows[i]
    end
  end
  fail("%s: argument 2 must be an array of rows or an iterator function", where)
end

-- The checks bulk_insert and bulk_update share: a table, rows, options; returns the row iterator.
local function bulk_args(where, t, rows, opts, allowed)
  if kind(t) ~= "table" then
    fail("%s: argument 1 must be a table from sa.table(...) or op.create_table(...)", where)
  end
  local next_row = row_source(where, rows)
  options(where, 3, opts, allowed)
  return next_row
end

-- Checks a row of column = value; returns whether every value is plain (no SQL expression).
local function check_row(where, t, index, row)
  if type(row) ~= "table" or kind(row) then fail("%s: row %d must be a table of column = value", where, index) end
  local all_plain = true
  for key, v in pairs(row) do
    if type(key) ~= "string" or not t.c[key] then
      fail("%s: row %d: '%s' is not a column of table '%s'", where, index, tostring(key), t.name)
    end
    local tv = type(v)
    if (tv == "table" and kind(v) == nil) or tv == "function" or tv == "userdata" or tv == "thread" then
      fail("%s: row %d: column '%s' holds a %s; give a string, number, boolean or sa.null", where, index, key, tv)
    end
    all_plain = all_plain and plain_value(v)
  end
  return all_plain
end

-- Calls fn(index, row) for each row next_row returns until nil, ticking the progress line p.
local function each_row(next_row, p, fn)
  local index = 0
  while true do
    local row = next_row()
    if row == nil then return end
    index = index + 1
    fn(index, row)
    if p then p:tick(1) end
  end
end

-- Re-raises err (when not ok), a loader's "row N: ..." named after the operation.
local function named_errors(where, ok, err)
  if not ok then
    if type(err) == "string" and err:match("^row %d+: ") then err = where .. ": " .. err end
    error(err, 0)
  end
end

-- op.bulk_insert(table, rows): rows is an array of row tables or an iterator returning one row per
-- call until nil. Online, each run of rows with the same columns and plain values goes through one
-- loader (host.c): COPY ... FROM STDIN on PostgreSQL, one prepared INSERT on SQLite. A row holding
-- SQL expressions is inserted on its own; offline, every row is an INSERT with its values written in.
function op.bulk_insert(t, rows, opts)
  local where = "op.bulk_insert"
  local next_row = bulk_args(where, t, rows, opts, set { "multiinsert" })
  local s = state(where)
  local r, ctx = s.r, s.ctx
  local p = progress.new("op.bulk_insert " .. t.name)
  -- On PostgreSQL a loader is a COPY, which must end before anything else runs: a row with other
  -- keys ends it. On SQLite a loader is a prepared INSERT: each column set keeps its own open.
  local copying = ctx.dialect == "postgresql"
  local loader, loaders = nil, {} -- the current one; SQLite's by column set

  local function end_copy()
    local l = copying and loader
    if l then
      loader = nil
      l:finish()
    end
  end

  -- A row the loader did not take: checked, then inserted on its own or handed to another loader.
  local function insert_row(index, row)
    local all_plain = check_row(where, t, index, row)
    end_copy()
    if ctx.offline or not all_plain or not ctx.raw then
      local ok, sql, params = pcall(r.compile, r, t:insert():values(row), ctx.offline)
      if not ok then fail("%s: row %d: %s", where, index, sql) end
      ctx.emit(sql, params)
      return
    end
    local names = {}
    for _, col in ipairs(t.columns) do
      if row[col.name] ~= nil then names[#names + 1] = col.name end
    end
    local key = table.concat(names, "\0")
    loader = loaders[key]
    if not loader then
      local sql = r:compile(t:insert():values(row), false)
      local target = copying and sql:match("^INSERT INTO (.-) VALUES %b()%s*$")
      loader = ctx.raw:loader(sql, target and ("COPY " .. target .. " FROM STDIN") or nil, names, index,
        sa.null, ddl.cdata_integer)
      if not copying then loaders[key] = loader end
    end
    assert(loader:put(row, index), "the loader refused the row it was made for")
  end

  local ok, err = pcall(function()
    each_row(next_row, p, function(index, row)
      if not (loader and loader:put(row, index)) then insert_row(index, row) end
    end)
    end_copy()
    for k, l in pairs(loaders) do
      loaders[k] = nil
      l:finish()
    end
  end)
  if loader then loader:close() end
  for _, l in pairs(loaders) do l:close() end
  if p then p:done() end
  named_errors(where, ok, err)
end

local UPDATE_CHUNK = 1000000 -- bulk_update on PostgreSQL: rows per UPDATE ... FROM
local bulk_tables = 0 -- names bulk_update's temporary tables, unique in the session

-- op.bulk_update(table, rows, { key = name or { names } }): sets columns of existing rows found by
-- their key (default: the table's primary key columns, else "id"). Each row holds the key columns
-- and the columns to set; rows apply in order, so of two rows with one key the later wins. Online on
-- PostgreSQL, each run of rows with the same columns is copied into a temporary table and applied by
-- one UPDATE ... FROM per million rows; on SQLite each row runs one prepared UPDATE bound in C. A row
-- holding an SQL expression, and every row offline, is an UPDATE of its own. A key that matches no
-- row is no error (as with UPDATE).
function op.bulk_update(t, rows, opts)
  local where = "op.bulk_update"
  local next_row = bulk_args(where, t, rows, opts, set { "key" })
  local keys = opts and opts.key
  if type(keys) == "string" then keys = { keys } end
  if keys == nil then
    keys = {}
    for _, col in ipairs(t.columns) do
      if col.primary_key then keys[#keys + 1] = col.name end
    end
    if #keys == 0 then keys = { "id" } end
  end
  if type(keys) ~= "table" or #keys == 0 then fail("%s: key must be a column name or a list of them", where) end
  local is_key = {}
  for _, k in ipairs(keys) do
    if type(k) ~= "string" or not t.c[k] then
      fail("%s: the key column '%s' is not a column of table '%s'", where, tostring(k), t.name)
    end
    is_key[k] = true
  end
  local s = state(where)
  local r, ctx = s.r, s.ctx
  local copying = ctx.dialect == "postgresql"
  local target = r:table_name(t.name, t.schema)
  local p = progress.new("op.bulk_update " .. t.name)
  local run -- the rows with one column set: { names, sql, copy, tmp, apply, loader, first, rows }

  -- Applies the rows the run holds (PostgreSQL: what its temporary table holds).
  local function apply()
    local loader = run.loader
    run.loader = nil
    loader:finish()
    if not copying then return end
    ctx.raw:exec("ANALYZE " .. run.tmp) -- the planner knows nothing of a fresh table: a join by key needs it
    local ok, err = pcall(ctx.raw.exec, ctx.raw, run.apply)
    if not ok then fail("%s: rows %d to %d: %s", where, run.first, run.first + run.rows - 1, err) end
    ctx.raw:exec("TRUNCATE " .. run.tmp)
  end

  local function end_run()
    if not run then return end
    if run.loader then apply() end
    if run.tmp then ctx.raw:exec("DROP TABLE " .. run.tmp) end
    run = nil
  end

  -- A loader for the run's next rows, the first of them row `index`.
  local function new_chunk(index)
    run.first, run.rows = index, 0
    run.loader = ctx.raw:loader(run.sql, run.copy, run.names, index, sa.null, ddl.cdata_integer)
  end

  -- Makes the run for a row's column set (names: the columns to set, then the key).
  local function start_run(cols)
    local names, quoted = {}, {}
    for _, c in ipairs(cols) do names[#names + 1] = c end
    for _, k in ipairs(keys) do names[#names + 1] = k end
    for i, n in ipairs(names) do quoted[i] = r:quote(n) end
    local sets, match = {}, {}
    run = { names = names }
    if copying then
      bulk_tables = bulk_tables + 1
      run.tmp = r:quote("luamig_bulk_update_" .. bulk_tables)
      local list = table.concat(quoted, ", ")
      ctx.raw:exec("CREATE TEMPORARY TABLE " .. run.tmp .. " AS SELECT " .. list .. " FROM " .. target .. " WITH NO DATA")
      run.copy = "COPY " .. run.tmp .. " (" .. list .. ") FROM STDIN"
      run.sql = run.copy
      local new = "luamig_new" -- the copied rows' alias: a name a user's table will not have
      local vkeys = {}
      for _, k in ipairs(keys) do
        vkeys[#vkeys + 1] = new .. "." .. r:quote(k)
        match[#match + 1] = target .. "." .. r:quote(k) .. " = " .. new .. "." .. r:quote(k)
      end
      for _, c in ipairs(cols) do sets[#sets + 1] = r:quote(c) .. " = " .. new .. "." .. r:quote(c) end
      -- of two rows with one key the later wins: DISTINCT ON keeps the last one copied (the
      -- temporary table only ever receives COPYs after a TRUNCATE, so ctid follows the rows' order)
      vkeys = table.concat(vkeys, ", ")
      run.apply = "UPDATE " .. target .. " SET " .. table.concat(sets, ", ") .. " FROM (SELECT DISTINCT ON ("
        .. vkeys .. ") * FROM " .. run.tmp .. " " .. new .. " ORDER BY " .. vkeys .. ", " .. new .. ".ctid DESC) "
        .. new .. " WHERE "
        .. table.concat(match, " AND ")
    else
      for _, c in ipairs(cols) do sets[#sets + 1] = r:quote(c) .. " = ?" end
      for _, k in ipairs(keys) do match[#match + 1] = r:quote(k) .. " = ?" end
      run.sql = "UPDATE " .. target .. " SET " .. table.concat(sets, ", ") .. " WHERE " .. table.concat(match, " AND ")
    end
  end

  -- A row the run did not take: checked, then updated on its own or made the first of a new run.
  local function update_row(index, row)
    local all_plain = check_row(where, t, index, row)
    for _, k in ipairs(keys) do
      if row[k] == nil or row[k] == sa.null then fail("%s: row %d: the key column '%s' has no value", where, index, k) end
    end
    local cols = {}
    for _, col in ipairs(t.columns) do
      if row[col.name] ~= nil and not is_key[col.name] then cols[#cols + 1] = col.name end
    end
    if #cols == 0 then fail("%s: row %d: no column to set besides the key", where, index) end
    end_run()
    if ctx.offline or not all_plain or not ctx.raw then
      local cond, values = {}, {}
      for i, k in ipairs(keys) do cond[i] = t.c[k]:eq(row[k]) end
      for _, c in ipairs(cols) do values[c] = row[c] end
      local stmt = t:update():where(#cond == 1 and cond[1] or sa.and_(unpack(cond))):values(values)
      local ok, sql, params = pcall(r.compile, r, stmt, ctx.offline)
      if not ok then fail("%s: row %d: %s", where, index, sql) end
      ctx.emit(sql, params)
      return
    end
    start_run(cols)
    new_chunk(index)
    assert(run.loader:put(row, index), "the loader refused the row it was made for")
    run.rows = 1
  end

  local ok, err = pcall(function()
    each_row(next_row, p, function(index, row)
      if run and not run.loader then new_chunk(index) end
      if run and run.loader:put(row, index) then
        run.rows = run.rows + 1
        if copying and run.rows == UPDATE_CHUNK then apply() end
      else
        update_row(index, row)
      end
    end)
    end_run()
  end)
  if run and run.loader then run.loader:close() end
  if p then p:done() end
  named_errors(where, ok, err)
end

-- op.inline_literal(v): a value always written into the SQL text, never bound.
function op.inline_literal(v, type_)
  if v ~= nil and v ~= sa.null and type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean" then
    fail("op.inline_literal: argument 1 must be a string, number, boolean or sa.null")
  end
  return sa._inline_literal(v, type_)
end

-- op.f(name): a name the naming convention must not rewrite.
function op.f(name)
  if type(name) ~= "string" then fail("op.f: argument 1 must be a string") end
  return sa.conv(name)
end

function op.get_bind()
  local s = state("op.get_bind")
  if s.ctx.offline then
    fail("op.get_bind() needs a live database connection; it is not available with --sql")
  end
  if not s.bind then
    if s.ctx.raw == nil then fail("op.get_bind(): the host gave no database connection") end
    s.bind = conn.new(s.ctx.raw, s.r)
  end
  return s.bind
end

-- op.get_context(): { dialect = "sqlite" | "postgresql", offline, x, config }
function op.get_context()
  return state("op.get_context").public
end

return op
