-- luamig.batch: op.batch_alter_table's engine, and the one-operation batches render_as_batch runs.
--
-- The op functions queue their operations as { rec, exec } (see luamig.op: rec describes the
-- operation, exec(r) emits its plain ALTER with renderer r). batch.run decides, as Alembic does,
-- whether the table must be recreated: on PostgreSQL never (the ALTERs run in order); on SQLite when
-- an operation SQLite cannot do with ALTER TABLE is queued (recreate = "auto"), or as told.
--
-- Recreating on SQLite ("move and copy") keeps everything the batch does not drop:
--   * the table's definition is rebuilt from its own CREATE TABLE text (luamig.reflect_sqlite), so
--     every constraint, named or not, inline or not, every COLLATE, AUTOINCREMENT, WITHOUT ROWID and
--     generated column stays as written; only what the batch changes is written anew;
--   * renames run first as SQLite's own ALTER TABLE RENAME COLUMN, which carries them into CHECKs,
--     indexes, triggers, views and the foreign keys of other tables;
--   * rows are copied with CAST where a type's affinity changes, rowids and the AUTOINCREMENT counter
--     kept; indexes and triggers are recreated from their SQL; views are left alone and checked;
--   * foreign keys stay on (the runner's transaction cannot turn them off): PRAGMA defer_foreign_keys
--     defers the checks, and when other tables refer to the table, dropping the old one would run
--     their ON DELETE actions, so temporary triggers (RAISE(IGNORE)) hold their rows still and the rows
--     are inserted back into the table under its own name, which settles SQLite's deferred counts;
--   * at the end, views and triggers that mention the table are compiled and PRAGMA foreign_key_check
--     runs on the table and the tables referring to it.
-- What the batch would lose instead (an index on a dropped column, a foreign key of another table to
-- it, a trigger using it...) fails the batch with a message naming it; everything runs inside a
-- SAVEPOINT, rolled back on failure, so the database is as before.
-- Offline (--sql) the table comes from opts.copy_from and the SQL is printed (Alembic's sequence).

local util = require("luamig.util")
local sa = require("luamig.sa")
local ddl = require("luamig.ddl")
local reflect = require("luamig.reflect_sqlite")

local kind = sa.kind
local concat = table.concat
local format = string.format

local batch = {}

local fail = util.fail

local function lower_eq(a, b)
  return a ~= nil and b ~= nil and a:lower() == b:lower()
end

local function contains(list, name)
  for _, v in ipairs(list or {}) do
    if lower_eq(v, name) then return true end
  end
  return false
end

------------------------------------------------------------------------------------------------
-- What SQLite can do with ALTER TABLE
------------------------------------------------------------------------------------------------

-- Whether SQLite's ADD COLUMN takes the column (Alembic recreates for expression defaults and stored
-- generated columns; SQLite itself refuses UNIQUE, PRIMARY KEY and NOT NULL without a default).
function batch.add_column_native(col)
  local sd = col.server_default
  local no_default = sd == nil or sd == sa.null
  if kind(sd) and sd ~= sa.null then return false end
  if col.computed and col.computed.persisted then return false end
  if col.unique or col.primary_key then return false end
  if col.nullable == false and no_default then return false end
  return true
end

-- batch.try(s, fn): runs fn (which emits SQL) inside a savepoint; false, with nothing changed, when
-- SQLite refuses it.
function batch.try(s, fn)
  local emit = s.ctx.emit
  emit("SAVEPOINT luamig_try", nil)
  if pcall(fn) then
    emit("RELEASE luamig_try", nil)
    return true
  end
  pcall(emit, "ROLLBACK TO luamig_try", nil)
  pcall(emit, "RELEASE luamig_try", nil)
  return false
end

------------------------------------------------------------------------------------------------
-- Names: the columns each queued operation means, after the renames before it
------------------------------------------------------------------------------------------------

-- resolve(queue, names, tname): rewrites each rec's column references into final names (the name each
-- column has when the batch ends) and returns the renames { { from, to } } of existing columns.
local function resolve(queue, names, tname)
  local by, existing = {}, {}
  for i, n in ipairs(names) do
    existing[i] = { orig = n, cur = n }
    by[n:lower()] = existing[i]
  end
  local function get(rec, name)
    local e = by[name:lower()]
    if not e then fail("%s: table '%s' has no column '%s'", rec.where, tname, name) end
    return e
  end
  local fixups = {} -- { rec-copy, field, entry or list }
  local function later(t, field, value) fixups[#fixups + 1] = { t, field, value } end
  local function names_of(rec, list)
    local out = {}
    for i, v in ipairs(list) do out[i] = type(v) == "string" and get(rec, v) or v end
    return out
  end
  local out = {}
  for i, q in ipairs(queue) do
    local rec = {}
    for k, v in pairs(q.rec) do rec[k] = v end
    out[i] = { rec = rec, exec = q.exec }
    local op = rec.op
    if op == "add_column" then
      local name = rec.column.name
      if by[name:lower()] then fail("%s: table '%s' already has a column '%s'", rec.where, tname, name) end
      if rec.insert_before then later(rec, "insert_before", get(rec, rec.insert_before)) end
      if rec.insert_after then later(rec, "insert_after", get(rec, rec.insert_after)) end
      by[name:lower()] = { cur = name, new = true }
      later(rec, "name", by[name:lower()]) -- a later alter_column may rename it
    elseif op == "drop_column" then
      local e = get(rec, rec.column)
      e.dropped, e.where = true, rec.where
      by[rec.column:lower()] = nil
      later(rec, "column", e)
    elseif op == "alter_column" then
      local e = get(rec, rec.column)
      later(rec, "column", e)
      local new = rec.o.new_column_name
      if new and new ~= e.cur then
        if by[new:lower()] and by[new:lower()] ~= e then
          fail("%s: table '%s' already has a column '%s'", rec.where, tname, new)
        end
        by[e.cur:lower()] = nil
        e.cur = new
        by[new:lower()] = e
      end
    elseif op == "create_index" then
      local ix = rec.index
      local copy = setmetatable({}, getmetatable(ix))
      for k, v in pairs(ix) do copy[k] = v end
      local exprs = {}
      for j, v in ipairs(ix.expressions) do
        if type(v) == "string" then v = get(rec, v)
        elseif kind(v) == "column" or kind(v) == "Column" then v = get(rec, v.name) end
        exprs[j] = v
      end
      copy.expressions = exprs
      rec.index = copy
      later(copy, "expressions", exprs)
    elseif op == "add_constraint" then
      local c = {}
      for k, v in pairs(rec.constraint) do c[k] = v end
      rec.constraint = c
      if c.columns then later(c, "columns", names_of(rec, c.columns)) end
      if c.refcolumns and lower_eq(c.reftable, tname) then later(c, "refcolumns", names_of(rec, c.refcolumns)) end
    end
  end
  -- A dropped column keeps its old name (it is not renamed); the others take their final one.
  local function final(e)
    if type(e) ~= "table" or not e.cur then return e end
    return e.dropped and e.orig or e.cur
  end
  for _, f in ipairs(fixups) do
    local t, field, v = f[1], f[2], f[3]
    if v.cur then
      t[field] = final(v)
    else
      local list = {}
      for j, e in ipairs(v) do list[j] = final(e) end
      t[field] = list
    end
  end
  -- The renames of columns that stay, run before the rebuild as SQLite's own RENAME COLUMN; when a
  -- new name is an old one (a swap), through temporary names.
  local renames, targets, swapped = {}, {}, false
  for _, e in ipairs(existing) do
    if not e.dropped and e.orig ~= e.cur then
      renames[#renames + 1] = { from = e.orig, to = e.cur, where = e.where }
      targets[e.cur:lower()] = true
    end
  end
  for _, e in ipairs(existing) do
    if targets[e.orig:lower()] then
      if e.dropped then
        fail("%s: renaming a column of '%s' to '%s', which the same batch drops; drop it in an earlier batch",
             e.where, tname, e.orig)
      end
      swapped = true
    end
  end
  if swapped then
    local staged = {}
    for i, rn in ipairs(renames) do
      local tmp = "_luamig_rename_" .. i
      staged[#staged + 1] = { from = rn.from, to = tmp }
      renames[i] = { from = tmp, to = rn.to }
    end
    for i = #staged, 1, -1 do table.insert(renames, 1, staged[i]) end
  end
  return out, renames
end

------------------------------------------------------------------------------------------------
-- The model: the table's definition as pieces of SQL text
------------------------------------------------------------------------------------------------

local function affinity(decl)
  local u = (decl or ""):upper()
  if u:find("INT") then return "INTEGER" end
  if u:find("CHAR") or u:find("CLOB") or u:find("TEXT") then return "TEXT" end
  if u == "" or u:find("BLOB") then return "BLOB" end
  if u:find("REAL") or u:find("FLOA") or u:find("DOUB") then return "REAL" end
  return "NUMERIC"
end

-- Tokens of an expression joined in a normal form, to compare two CHECKs.
local function normal(sqltext)
  local parts = {}
  for i, t in ipairs(reflect.tokenize(sqltext)) do parts[i] = t.u or t.v:lower() end
  return concat(parts, " ")
end

local M = {}
M.__index = M

-- model(t, r, where): t is reflect.table's answer (or the offline description, same shape).
local function model(t, r, where)
  local m = setmetatable({ name = t.name, r = r, where = where, cols = {}, cons = {}, indexes = {},
                           triggers = t.triggers or {}, dropped = {}, options = t.definition.options }, M)
  for _, c in ipairs(t.definition.columns) do
    local col = { name = c.name, src = c.name, type = c.type, orig_type = c.type, clauses = c.clauses, text = c.text }
    for _, cl in ipairs(c.clauses) do
      if cl.kind == "generated" then col.generated = true end
    end
    m.cols[#m.cols + 1] = col
  end
  for _, c in ipairs(t.definition.constraints) do m.cons[#m.cons + 1] = c end
  for _, ix in ipairs(t.indexes or {}) do m.indexes[#m.indexes + 1] = { name = ix.name, sql = ix.sql } end
  return m
end

function M:find(name)
  for i, col in ipairs(self.cols) do
    if lower_eq(col.name, name) then return col, i end
  end
end

function M:col(rec, name)
  local col, i = self:find(name)
  if not col then fail("%s: table '%s' has no column '%s'", rec.where, self.name, name) end
  return col, i
end

-- A clause or table constraint from SQL text ddl rendered.
local function parse_constraint(text)
  return reflect.parse_table("CREATE TABLE x (x, " .. text .. ")").constraints[1]
end

local function parse_column(text)
  return reflect.parse_table("CREATE TABLE x (" .. text .. ")").columns[1]
end

local function new_clause(kind_, body)
  return { kind = kind_, body = body, text = body }
end

-- Gives a clause a name (a naming convention naming a reflected constraint).
function M:name_clause(c, name)
  c.name = name
  c.text = "CONSTRAINT " .. self.r:quote(name) .. " " .. c.body
end

function M:each_clause(fn)
  for _, col in ipairs(self.cols) do
    for i = #col.clauses, 1, -1 do
      if fn(col.clauses[i], col) == "remove" then
        table.remove(col.clauses, i)
        col.text = nil
      end
    end
  end
  for i = #self.cons, 1, -1 do
    if fn(self.cons[i], nil) == "remove" then table.remove(self.cons, i) end
  end
end

function M:has_pk()
  local found = false
  self:each_clause(function(c) if c.kind == "pk" then found = true end end)
  return found
end

-- Unnamed reflected constraints take the names a naming convention gives them (Alembic's batch
-- naming_convention), so drop_constraint can name them.
function M:apply_convention(nc)
  local rn = ddl.renderer("sqlite", { naming_convention = nc })
  local keys = { pk = "pk", unique = "uq", check = "ck", fk = "fk" }
  local names = {}
  for _, col in ipairs(self.cols) do names[#names + 1] = col.name end
  self:each_clause(function(c, col)
    local key = keys[c.kind]
    if key and not c.name and nc[key] then
      local columns = c.columns
      if c.kind == "check" then columns = reflect.used_columns(c.expr, names) end
      local ok, name = pcall(rn.constraint_name, rn, key, nil, { table = self.name, columns = columns,
                             reftable = c.reftable, refcolumns = c.refcolumns }, self.where, true)
      if ok and name then
        self:name_clause(c, name)
        if col then col.text = nil end
      end
    end
  end)
end

-- Removes the CHECK a Boolean/Enum type carries for column cname (as ddl renders it), if present.
function M:remove_type_check(cname, t)
  local ck = self.r:type_check(cname, t)
  if not ck then return end
  local want, done = normal(ck.sqltext), false
  self:each_clause(function(c)
    if not done and c.kind == "check" and normal(c.expr) == want then
      done = true
      return "remove"
    end
  end)
end

function M:remove_pk()
  self:each_clause(function(c) if c.kind == "pk" then return "remove" end end)
  self.pk_dropped = true
end

function M:add_constraint_text(text)
  self.cons[#self.cons + 1] = parse_constraint(text)
end

------------------------------------------------------------------------------------------------
-- Operations on the model
------------------------------------------------------------------------------------------------

local apply = {}

function apply.add_column(m, rec)
  local r, col = m.r, rec.column
  if rec.name ~= col.name then
    col = setmetatable({}, getmetatable(rec.column))
    for k, v in pairs(rec.column) do col[k] = v end
    col.name = rec.name
  end
  local spec = r:column_spec(col, { pk = col.primary_key }, rec.where)
  if col.primary_key then
    if m:has_pk() then
      fail("%s: table '%s' already has a primary key; add the column, then use create_primary_key",
           rec.where, m.name)
    end
    spec = spec .. " PRIMARY KEY"
  end
  for _, c in ipairs(r:implied_constraints(col)) do spec = spec .. " " .. r:inline_references(c, m.name, rec.where) end
  local parsed = parse_column(spec)
  local new = { name = col.name, type = parsed.type, orig_type = parsed.type, clauses = parsed.clauses, text = spec,
                generated = col.computed ~= nil }
  local pos = #m.cols + 1
  if rec.insert_before then pos = select(2, m:col(rec, rec.insert_before)) end
  if rec.insert_after then pos = select(2, m:col(rec, rec.insert_after)) + 1 end
  table.insert(m.cols, pos, new)
  if col.index then
    local sql = r:index_sql(sa.Index(nil, col.name, { unique = col.unique }), m.name, nil, rec.where)
    m.indexes[#m.indexes + 1] = { name = reflect.parse_index(sql).name, sql = sql }
  end
end

function apply.drop_column(m, rec)
  local col, i = m:col(rec, rec.column)
  table.remove(m.cols, i)
  m.dropped[#m.dropped + 1] = col
  if rec.existing_type then m:remove_type_check(col.name, rec.existing_type) end
end

function apply.alter_column(m, rec)
  local r, o = m.r, rec.o
  local col = m:col(rec, rec.column)
  local function drop(kinds)
    for i = #col.clauses, 1, -1 do
      if kinds[col.clauses[i].kind] then table.remove(col.clauses, i) end
    end
    col.text = nil
  end
  if o.type ~= nil then
    local new = r:type_sql(o.type)
    local aff = affinity(new)
    col.cast = aff ~= affinity(col.orig_type) and aff ~= "BLOB" and new or nil
    col.type, col.text = new, nil
    if o.existing_type then m:remove_type_check(col.name, o.existing_type) end
    local ck = r:type_check(col.name, o.type)
    if ck then
      ck.type, ck.type_bound = "ck", true
      m:add_constraint_text(r:constraint_sql(ck, m.name, rec.where))
    end
  end
  if o.nullable ~= nil then
    drop({ notnull = true, null = true })
    if not o.nullable then col.clauses[#col.clauses + 1] = new_clause("notnull", "NOT NULL") end
  end
  if o.server_default ~= nil then
    drop({ default = true })
    if o.server_default ~= sa.null and o.server_default ~= false then
      local sd = r:default_sql(o.server_default)
      col.clauses[#col.clauses + 1] = { kind = "default", expr = sd, body = "DEFAULT " .. sd, text = "DEFAULT " .. sd }
    end
  end
end

function apply.create_index(m, rec)
  local sql = m.r:index_sql(rec.index, m.name, nil, rec.where)
  m.indexes[#m.indexes + 1] = { name = reflect.parse_index(sql).name, sql = sql }
end

function apply.drop_index(m, rec)
  for i, ix in ipairs(m.indexes) do
    if lower_eq(ix.name, rec.name) then
      table.remove(m.indexes, i)
      return
    end
  end
  if not rec.if_exists then fail("%s: table '%s' has no index '%s'", rec.where, m.name, rec.name) end
end

function apply.add_constraint(m, rec)
  local c = rec.constraint
  for _, n in ipairs(c.columns or {}) do m:col(rec, n) end
  if c.type == "fk" and lower_eq(c.reftable, m.name) then
    for _, n in ipairs(c.refcolumns) do m:col(rec, n) end
  end
  local text = m.r:constraint_sql(c, m.name, rec.where)
  if c.type == "pk" then m:remove_pk() end
  m:add_constraint_text(text)
end

local drop_kinds = { foreignkey = "fk", unique = "unique", check = "check", primary = "pk" }

function apply.drop_constraint(m, rec)
  local name = rec.name(m.r)
  local want = rec.ctype and drop_kinds[rec.ctype]
  local found
  m:each_clause(function(c)
    if not found and lower_eq(c.name, name) and (not want or c.kind == want) then
      found = c
      return "remove"
    end
  end)
  if found and found.kind == "pk" then m.pk_dropped = true end
  if not found and want == "pk" then
    -- SQLite primary keys rarely have names: drop the table's unnamed one
    m:each_clause(function(c)
      if c.kind == "pk" and not c.name then found = c end
    end)
    if found then m:remove_pk() end
  end
  if not found then
    fail("%s: table '%s' has no %sconstraint named '%s'", rec.where, m.name,
         want and (rec.ctype == "foreignkey" and "foreign key " or rec.ctype .. " ") or "", tostring(name))
  end
end

------------------------------------------------------------------------------------------------
-- What a dropped column takes with it
------------------------------------------------------------------------------------------------

local kind_names = { pk = "primary key", unique = "unique constraint", check = "CHECK constraint",
                     fk = "foreign key", unknown = "constraint" }

local function describe(c, col)
  if c.name then return format("%s '%s'", kind_names[c.kind], c.name) end
  return format("the unnamed constraint %s%s", c.body, col and format(" of column '%s'", col.name) or "")
end

-- Fails naming the first thing a dropped column is still used by. children: reflect.referencing.
function M:check_dropped(children)
  for _, d in ipairs(self.dropped) do
    local name = d.name
    local function lose(what, advice)
      fail("%s: dropping column '%s' of '%s' would lose %s; %s", self.where, name, self.name, what, advice)
    end
    for _, c in ipairs(d.clauses) do
      if c.kind == "pk" and not self.pk_dropped then lose("the primary key", "drop the primary key first") end
    end
    local function uses(c)
      if c.kind == "check" or c.kind == "generated" then return reflect.mentions(c.expr, name) end
      if c.kind == "fk" and lower_eq(c.reftable, self.name) and contains(c.refcolumns, name) then return true end
      return c.columns ~= nil and contains(c.columns, name)
    end
    self:each_clause(function(c, col)
      if uses(c) then
        if c.kind == "generated" then lose(format("generated column '%s'", col.name), "drop that column first") end
        lose(describe(c, col), c.name and "drop the constraint first"
             or "name it with the batch's naming_convention option and drop it first")
      end
    end)
    for _, ix in ipairs(self.indexes) do
      local p = reflect.parse_index(ix.sql)
      local used = p.where and reflect.mentions(p.where, name)
      for _, e in ipairs(p.elements) do used = used or reflect.mentions(e, name) end
      if used then lose(format("index '%s'", ix.name), "drop the index first") end
    end
    for _, child in ipairs(children or {}) do
      if not lower_eq(child.table, self.name) then
        for _, fk in ipairs(child.fks) do
          if contains(fk.referred_columns, name) then
            lose(format("the foreign key of table '%s' (%s)", child.table, concat(fk.columns, ", ")),
                 "drop that foreign key first")
          end
        end
      end
    end
  end
end

-- Fails when a foreign key of another table refers to columns the new table no longer keeps unique
-- (SQLite's "foreign key mismatch"): a dropped primary key or unique constraint.
function M:check_referred(children)
  local keys, pk = {}, nil
  local function key(cols)
    local parts = {}
    for i, c in ipairs(cols) do parts[i] = c:lower() end
    table.sort(parts)
    return concat(parts, ",")
  end
  self:each_clause(function(c, col)
    if c.kind == "pk" or c.kind == "unique" then
      local k = key(col and { col.name } or c.columns)
      keys[k] = true
      if c.kind == "pk" then pk = k end
    end
  end)
  for _, ix in ipairs(self.indexes) do
    local p = reflect.parse_index(ix.sql)
    if p.unique and not p.where then keys[key(p.elements)] = true end
  end
  for _, child in ipairs(children) do
    if not lower_eq(child.table, self.name) then
      for _, fk in ipairs(child.fks) do
        local k = #fk.referred_columns > 0 and key(fk.referred_columns) or pk
        if not (k and keys[k]) then
          fail("%s: the foreign key of table '%s' (%s) refers to %s of '%s', which the new table would no longer "
               .. "have; drop that foreign key first", self.where, child.table, concat(fk.columns, ", "),
               #fk.referred_columns > 0 and format("a unique key (%s)", concat(fk.referred_columns, ", "))
               or "the primary key", self.name)
        end
      end
    end
  end
end

------------------------------------------------------------------------------------------------
-- SQL of the new table
------------------------------------------------------------------------------------------------

function M:column_sql(col)
  if col.text then return col.text end
  local parts = { self.r:quote(col.name) }
  if col.type ~= "" then parts[#parts + 1] = col.type end
  for _, c in ipairs(col.clauses) do parts[#parts + 1] = c.text end
  return concat(parts, " ")
end

function M:create_sql(name)
  local lines = {}
  for _, col in ipairs(self.cols) do lines[#lines + 1] = self:column_sql(col) end
  for _, c in ipairs(self.cons) do lines[#lines + 1] = c.text end
  local options = self.options:gsub("^%s+", ""):gsub("[%s;]+$", "")
  return "CREATE TABLE " .. self.r:quote(name) .. " (\n    " .. concat(lines, ",\n    ") .. "\n)"
    .. (options ~= "" and " " .. options or "")
end

-- The rowid alias (INTEGER PRIMARY KEY column) of the new table, if any.
function M:rowid_alias()
  local pks = {}
  self:each_clause(function(c, col)
    if c.kind == "pk" then
      if col then
        if not c.desc then pks[#pks + 1] = col.name else pks[#pks + 1] = false end
      else
        for _, n in ipairs(c.columns) do pks[#pks + 1] = n end
      end
    end
  end)
  if #pks ~= 1 or not pks[1] then return nil end
  local col = self:find(pks[1])
  return col and col.type:upper() == "INTEGER" and col.name or nil
end

function M:without_rowid()
  return self.options:lower():find("without%s+rowid") ~= nil
end

-- Copy lists: target columns of the new table and the expressions filling them from the old one.
function M:copy_lists(old_has_rowid)
  local targets, exprs = {}, {}
  local q = function(n) return self.r:quote(n) end
  if old_has_rowid and not self:without_rowid() and not self:rowid_alias() and not self:find("rowid") then
    targets[1], exprs[1] = "rowid", "rowid"
  end
  for _, col in ipairs(self.cols) do
    if col.src and not col.generated then
      targets[#targets + 1] = q(col.name)
      exprs[#exprs + 1] = col.cast and format("CAST(%s AS %s)", q(col.src), col.cast) or q(col.src)
    end
  end
  return targets, exprs
end

function M:autoincrement()
  local found = false
  self:each_clause(function(c) if c.kind == "pk" and c.autoincrement then found = true end end)
  return found
end

------------------------------------------------------------------------------------------------
-- Offline: the table from copy_from, renames applied to its text
------------------------------------------------------------------------------------------------

-- rename_idents(text, old, new, r, opts): identifier tokens `old` (not function names) written as
-- `new`; opts.min_depth: only inside that many parentheses; opts.from: from that position;
-- opts.until_references: stop at REFERENCES.
local function rename_idents(text, old, new, r, opts)
  opts = opts or {}
  local out, pos, depth = {}, 1, 0
  local toks = reflect.tokenize(text)
  for i, t in ipairs(toks) do
    if t.k == "op" and t.v == "(" then depth = depth + 1 end
    if t.k == "op" and t.v == ")" then depth = depth - 1 end
    if opts.until_references and t.k == "id" and not t.q and t.u == "references" then break end
    local nxt = toks[i + 1]
    if t.k == "id" and t.u == old:lower() and t.s >= (opts.from or 1) and depth >= (opts.min_depth or 0)
       and not (nxt and nxt.k == "op" and nxt.v == "(") then
      out[#out + 1] = text:sub(pos, t.s - 1) .. r:quote(new)
      pos = t.e + 1
    end
  end
  out[#out + 1] = text:sub(pos)
  return concat(out)
end

function M:rename_offline(old, new)
  local r = self.r
  local function redo(c, inline, opts)
    local body = rename_idents(c.body, old, new, r, opts)
    if body == c.body then return false end
    local text = c.name and ("CONSTRAINT " .. r:quote(c.name) .. " " .. body) or body
    local parsed = inline and parse_column("x " .. text).clauses[1] or parse_constraint(text)
    for k, v in pairs(parsed) do c[k] = v end
    return true
  end
  for _, col in ipairs(self.cols) do
    if lower_eq(col.name, old) then
      col.name, col.src, col.text = new, new, nil
      for _, c in ipairs(col.clauses) do
        if c.columns then c.columns = { new } end
      end
    end
    for _, c in ipairs(col.clauses) do
      local self_ref = c.kind == "fk" and lower_eq(c.reftable, self.name)
      if (c.kind == "check" or c.kind == "generated" or self_ref) and redo(c, true, { min_depth = 1 }) then
        col.text = nil
      end
    end
  end
  for _, c in ipairs(self.cons) do
    redo(c, false, { min_depth = 1, until_references = c.kind == "fk" and not lower_eq(c.reftable, self.name) })
  end
  for _, ix in ipairs(self.indexes) do
    ix.sql = rename_idents(ix.sql, old, new, r, { from = reflect.parse_index(ix.sql).list_s })
  end
end

-- The offline stand-in for reflect.table: copy_from rendered by ddl, then parsed.
local function describe_copy_from(t, r, tname, where)
  local cols = {}
  for _, c in ipairs(t.columns) do
    if kind(c) == "Column" then
      cols[#cols + 1] = c
    else
      if not c.type then fail("%s: option 'copy_from': column '%s' needs a type", where, c.name) end
      cols[#cols + 1] = sa.Column(c.name, c.type)
    end
  end
  local desc = sa._make_table(where, tname, nil, cols)
  desc.constraints, desc.indexes, desc.opts = t.constraints or {}, t.indexes or {}, {}
  local stmts = r:create_table(desc, where)
  local out = { name = tname, definition = reflect.parse_table(stmts[1]), indexes = {}, triggers = {} }
  for i = 2, #stmts do
    out.indexes[#out.indexes + 1] = { name = reflect.parse_index(stmts[i]).name, sql = stmts[i] }
  end
  return out
end

------------------------------------------------------------------------------------------------
-- Running it
------------------------------------------------------------------------------------------------

local function offline_message(tname)
  return format("batch mode with dialect sqlite needs a live database connection to reflect table '%s', "
    .. "which --sql does not have; pass the table's description as the copy_from option of "
    .. "op.batch_alter_table (a table from sa.table or op.create_table) so that reflection is skipped", tname)
end

-- The statements of one rebuild, as a list of { sql, what } where `what` names the step for errors.
-- path "rename": CREATE tmp, copy, DROP old, RENAME tmp (Alembic's); path "reinsert": the rows also go
-- through tmp, back into a table created under the old name (when other tables refer to it).
local function rebuild(s, r, tname, queue, opts, where)
  local ctx = s.ctx
  local raw = ctx.raw
  local offline = ctx.offline
  if offline and not opts.copy_from then fail("%s: %s", where, offline_message(tname)) end
  if not offline and not raw then fail("%s: batch mode needs the database connection", where) end
  local q = function(n) return r:quote(n) end
  local tmp = "_luamig_tmp_" .. tname
  local function emit(sql)
    local ok, err = pcall(ctx.emit, sql, nil)
    if not ok then
      fail("%s: rebuilding '%s' failed: %s", where, tname, (tostring(err):gsub("_luamig_tmp_", "")))
    end
  end
  local function query(sql, ...) return reflect.rows(raw, sql, { n = select("#", ...), ... }) end
  local function scalar(sql, ...)
    local row = query(sql, ...)[1]
    return row and select(2, next(row))
  end

  -- The table as it is, and the operations in terms of final names.
  local t
  if offline then
    t = describe_copy_from(opts.copy_from, r, tname, where)
  else
    t = reflect.table(raw, tname)
    if not t then fail("%s: no such table: '%s'", where, tname) end
    if t.virtual then fail("%s: '%s' is a virtual table, which batch mode cannot rebuild", where, tname) end
    tname = t.name
  end
  local names = {}
  for _, c in ipairs(t.definition.columns) do names[#names + 1] = c.name end
  local ops, renames = resolve(queue, names, tname)
  for _, rn in ipairs(renames) do
    emit(format("ALTER TABLE %s RENAME COLUMN %s TO %s", q(tname), q(rn.from), q(rn.to)))
  end
  if #renames > 0 and not offline then t = reflect.table(raw, tname) end

  local m = model(t, r, where)
  if offline then
    for _, rn in ipairs(renames) do m:rename_offline(rn.from, rn.to) end
  end
  if opts.naming_convention then m:apply_convention(opts.naming_convention) end
  for _, c in ipairs(opts.table_args or {}) do
    apply.add_constraint(m, { where = where, constraint = ddl.constraint_record(c) })
  end
  for _, o in ipairs(ops) do apply[o.rec.op](m, o.rec) end
  local children = not offline and reflect.referencing(raw, tname) or {}
  m:check_dropped(children)
  m:check_referred(children)

  local old_has_rowid = not t.definition.options:lower():find("without%s+rowid")
  local targets, exprs = m:copy_lists(old_has_rowid)
  local columns = concat(targets, ", ")
  local function copy(into, from, select_list)
    return "INSERT INTO " .. q(into) .. " (" .. columns .. ") SELECT " .. select_list .. " FROM " .. q(from)
  end
  local referenced = #children > 0
  for _, c in ipairs(m.cons) do referenced = referenced or (c.kind == "fk" and lower_eq(c.reftable, tname)) end
  m:each_clause(function(c) referenced = referenced or (c.kind == "fk" and lower_eq(c.reftable, tname)) end)

  local seq = not offline and scalar("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'") > 0
    and scalar("SELECT seq FROM sqlite_sequence WHERE name = ? COLLATE NOCASE", tname)

  emit(m:create_sql(tmp))
  emit(copy(tmp, tname, concat(exprs, ", ")))
  if offline or not referenced then
    emit("DROP TABLE " .. q(tname))
    -- legacy: no check of the views and triggers that name the table while it is gone (verify does it)
    if not offline then emit("PRAGMA legacy_alter_table = ON") end
    emit(format("ALTER TABLE %s RENAME TO %s", q(tmp), q(tname)))
    if not offline then emit("PRAGMA legacy_alter_table = OFF") end
  else
    -- Dropping the old table runs the ON DELETE actions of the foreign keys that refer to it; these
    -- triggers make SQLite skip those deletes and updates, for the moment of the DROP.
    local guards = {}
    local guarded = {}
    for _, child in ipairs(children) do
      if not lower_eq(child.table, tname) then guarded[#guarded + 1] = child.table end
    end
    guarded[#guarded + 1] = tmp -- its own foreign keys to the table, when it refers to itself
    for i, child in ipairs(guarded) do
      for _, event in ipairs({ "DELETE", "UPDATE" }) do
        local g = format("_luamig_guard_%d_%s", i, event:lower())
        emit(format("CREATE TEMP TRIGGER %s BEFORE %s ON main.%s BEGIN SELECT RAISE(IGNORE); END", g, event, q(child)))
        guards[#guards + 1] = g
      end
    end
    emit("DROP TABLE " .. q(tname))
    for _, g in ipairs(guards) do emit("DROP TRIGGER temp." .. g) end
    emit(m:create_sql(tname))
    emit(copy(tname, tmp, columns))
    emit("DROP TABLE " .. q(tmp))
  end
  for _, ix in ipairs(m.indexes) do emit(ix.sql) end
  for _, tr in ipairs(m.triggers) do emit(tr.sql) end
  if seq and m:autoincrement() then
    local now = scalar("SELECT seq FROM sqlite_sequence WHERE name = ?", tname)
    if now == nil then
      ctx.raw:exec("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", { n = 2, tname, seq })
    elseif now < seq then
      ctx.raw:exec("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", { n = 2, seq, tname })
    end
  end
  return m
end

-- The foreign key violations in table tname and the tables referring to it: a set of
-- "table/rowid/parent" keys, and the rows as PRAGMA foreign_key_check gives them.
local function violations(raw, r, tname, where)
  local tables = { tname }
  for _, child in ipairs(reflect.referencing(raw, tname)) do
    if not lower_eq(child.table, tname) then tables[#tables + 1] = child.table end
  end
  local set, list = {}, {}
  for _, tbl in ipairs(tables) do
    local ok, rows = pcall(reflect.rows, raw, "PRAGMA main.foreign_key_check(" .. r:quote(tbl) .. ")")
    if not ok then fail("%s: after rebuilding '%s': %s", where, tname, rows) end
    for _, row in ipairs(rows) do
      local key = format("%s/%s/%s", row.table, tostring(row.rowid), row.parent)
      if not set[key] then
        set[key] = true
        list[#list + 1] = row
      end
    end
  end
  return set, list
end

-- Compiles what refers to table tname (views, triggers) without running it, and checks the foreign
-- keys of the table and of the tables referring to it (known: the violations there were before).
-- Fails naming what the batch broke.
local function verify(s, r, m, known, where)
  local raw, tname = s.ctx.raw, m.name
  local q = function(n) return r:quote(n) end
  local function compiles(sql)
    local ok, st = pcall(raw.prepare, raw, sql)
    if ok then st:close() return nil end
    return st
  end
  local dropped = {}
  for _, d in ipairs(m.dropped) do dropped[#dropped + 1] = d.name end
  local function broken(what, name, msg)
    local missing = msg:match("no such column: ([%w_%.\"]+)")
    local col = missing and missing:match("([^%.]+)$"):gsub('"', "")
    if col and contains(dropped, col) then
      fail("%s: dropping column '%s' of '%s' would break %s '%s' (%s); drop the %s first", where, col, tname, what,
           name, msg, what)
    end
    fail("%s: the new definition of '%s' breaks %s '%s' (%s); drop or replace the %s in the batch's migration first",
         where, tname, what, name, msg, what)
  end
  for _, v in ipairs(reflect.views(raw)) do
    if reflect.mentions(v.sql, tname) then
      local msg = compiles("SELECT * FROM " .. q(v.name))
      if msg then broken("view", v.name, msg) end
    end
  end
  -- Triggers: DML on their table compiles them (per event).
  for _, tr in ipairs(reflect.rows(raw, "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")) do
    if lower_eq(tr.tbl_name, tname) or reflect.mentions(tr.sql, tname) then
      local event
      for _, tok in ipairs(reflect.tokenize(tr.sql)) do
        if tok.k == "id" and not tok.q and (tok.u == "insert" or tok.u == "update" or tok.u == "delete") then
          event = tok.u
          break
        end
      end
      local target, stmt = q(tr.tbl_name), nil
      if event == "insert" then
        stmt = "INSERT INTO " .. target .. " DEFAULT VALUES"
      elseif event == "delete" then
        stmt = "DELETE FROM " .. target .. " WHERE 0"
      else
        local sets = {}
        for _, c in ipairs(reflect.rows(raw, "SELECT name FROM pragma_table_xinfo(?, 'main') WHERE hidden = 0",
                                        { n = 1, tr.tbl_name })) do
          sets[#sets + 1] = q(c.name) .. " = " .. q(c.name)
        end
        stmt = "UPDATE " .. target .. " SET " .. concat(sets, ", ") .. " WHERE 0"
      end
      local msg = compiles(stmt)
      if msg then broken("trigger", tr.name, msg) end
    end
  end
  local _, now = violations(raw, r, tname, where)
  local new = {}
  for _, row in ipairs(now) do
    if not known[format("%s/%s/%s", row.table, tostring(row.rowid), row.parent)] then new[#new + 1] = row end
  end
  if #new > 0 then
    fail("%s: after rebuilding '%s', %d row(s) of '%s' would refer to missing rows of '%s' (rowid %s first)",
         where, tname, #new, new[1].table, new[1].parent, tostring(new[1].rowid))
  end
end

local function pragma(raw, name)
  local row = reflect.rows(raw, "PRAGMA " .. name)[1]
  return row and select(2, next(row))
end

-- batch.run(s, tname, queue, opts, where): s is luamig.op's running state ({ ctx, r, public }).
function batch.run(s, tname, queue, opts, where)
  local ctx = s.ctx
  local nc = s.public.config.naming_convention
  if opts.naming_convention then
    local merged = {}
    for k, v in pairs(nc or {}) do merged[k] = v end
    for k, v in pairs(opts.naming_convention) do merged[k] = v end
    nc = merged
  end
  local r = ddl.renderer(ctx.dialect, { naming_convention = nc })
  local recreate = opts.recreate or "auto"
  local needed = false
  for _, q in ipairs(queue) do needed = needed or not q.rec.native or q.rec.recreate end

  if ctx.dialect ~= "sqlite" or recreate == "never" or (recreate == "auto" and not needed) then
    if recreate == "always" then
      fail("%s: recreate = \"always\" moves and copies tables on SQLite only; %s runs batch operations as ALTER TABLE",
           where, r.d.title)
    end
    for _, q in ipairs(queue) do
      if q.rec.insert_before or q.rec.insert_after then
        fail("%s: insert_before and insert_after need the table recreated, which %s", q.rec.where,
             ctx.dialect == "sqlite" and "recreate = \"never\" forbids" or "luamig does on SQLite only")
      end
      if ctx.dialect == "sqlite" and not q.rec.native then
        fail("%s: SQLite cannot do this with ALTER TABLE and the batch has recreate = \"never\"", q.rec.where)
      end
    end
    for _, q in ipairs(queue) do q.exec(r) end
    return
  end
  if opts.schema ~= nil and opts.schema ~= "main" then
    fail("%s: batch mode on SQLite works on tables of the main schema", where)
  end
  if #queue == 0 and recreate ~= "always" then return end

  if ctx.offline then
    rebuild(s, r, tname, queue, opts, where)
    return
  end
  local raw = ctx.raw
  if not raw then fail("%s: batch mode needs the database connection", where) end
  ctx.emit("SAVEPOINT luamig_batch", nil)
  local defer = pragma(raw, "defer_foreign_keys")
  local legacy = pragma(raw, "legacy_alter_table")
  local function restore()
    if legacy ~= pragma(raw, "legacy_alter_table") then
      ctx.emit("PRAGMA legacy_alter_table = " .. (legacy == 1 and "ON" or "OFF"), nil)
    end
  end
  local ok, err = pcall(function()
    if defer == 0 then ctx.emit("PRAGMA defer_foreign_keys = ON", nil) end
    if legacy ~= 0 then ctx.emit("PRAGMA legacy_alter_table = OFF", nil) end
    local known = violations(raw, r, tname, where)
    local m = rebuild(s, r, tname, queue, opts, where)
    restore()
    verify(s, r, m, known, where)
    -- Turning the deferral off checks SQLite's own count of pending violations too.
    if defer == 0 then ctx.emit("PRAGMA defer_foreign_keys = OFF", nil) end
  end)
  if not ok then
    pcall(ctx.emit, "ROLLBACK TO luamig_batch", nil)
    pcall(ctx.emit, "RELEASE luamig_batch", nil)
    pcall(restore)
    if defer == 0 then pcall(ctx.emit, "PRAGMA defer_foreign_keys = OFF", nil) end
    error(err, 0)
  end
  ctx.emit("RELEASE luamig_batch", nil)
end

return batch
