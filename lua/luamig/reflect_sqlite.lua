-- luamig.reflect_sqlite: everything SQLite knows about a table, read from its PRAGMAs and from the
-- CREATE statements it keeps in sqlite_master. Batch mode rebuilds tables from this; conn:inspect()
-- and autogenerate read it too.
--
--   reflect.has_table(raw, name)   -> boolean (SQLite names are case-insensitive)
--   reflect.table_names(raw)       -> { "a", "b" } sorted, without sqlite_* tables
--   reflect.views(raw)             -> { { name, sql } } in creation order
--   reflect.table(raw, name)       -> nil when there is no such table, else
--     { name (as stored), sql (its CREATE TABLE),
--       columns = { { name, type (declared text, "" when none), nullable, default (SQL text as stored,
--                     or nil), primary_key (0, or its position in the key),
--                     generated = nil | { sqltext, persisted } } },
--       primary_key = { name = nil | string, columns },
--       foreign_keys = { { name, columns, referred_table, referred_columns, ondelete, onupdate,
--                          deferrable, initially } },   -- actions nil for NO ACTION; deferrable
--                                                       -- true/false/nil; initially "DEFERRED"/...
--       unique_constraints = { { name, columns } },
--       check_constraints = { { name, sqltext, columns } },  -- columns: the table's columns sqltext names
--       indexes = { { name, columns, n, expressions, unique, where, sql } },
--       triggers = { { name, sql } },                     -- in creation order
--       virtual (CREATE VIRTUAL TABLE), definition = <reflect.parse_table(sql)> }
--   Constraint names are nil when the constraint has none. Index entries: CREATE INDEX indexes only
--   (not sqlite_autoindex_*); columns[i] is a column name or nil for an expression (n counts them);
--   expressions, present when one element is an expression, holds every element's SQL text.
--
-- The parser underneath works on the CREATE TABLE text with a tokenizer that knows SQLite's quotes
-- ("x", `x`, [x], 'str'), comments and nested parentheses:
--   reflect.tokenize(sql)           -> { { k = "id"|"str"|"num"|"op", s, e, v (text), u (lower-case
--                                        identifier value, unquoted), q (quoted) } }
--   reflect.parse_table(sql)        -> { columns = { col }, constraints = { clause }, options }
--     col    = { name, type, text, s, e, clauses = { clause } }
--     clause = { kind = "pk"|"notnull"|"null"|"unique"|"check"|"default"|"collate"|"fk"|"generated"
--                (|"unknown" for a table constraint this parser cannot read), name, text, body (text
--                after CONSTRAINT name), s, e, body_s, expr (check, default, generated), columns (pk,
--                unique, fk), reftable, refcolumns, ondelete, onupdate, deferrable, initially, stored,
--                autoincrement, desc (pk) }
--     s/e are positions in sql; options is the text after the closing parenthesis (WITHOUT ROWID...).
--   reflect.parse_index(sql)        -> { name, unique, elements = { text }, where = text | nil, list_s }
--   reflect.mentions(sqltext, name) -> whether sqltext uses identifier `name` (not as a function name)
-- Errors: error(msg, 0).

local reflect = {}

local format = string.format

------------------------------------------------------------------------------------------------
-- Tokens
------------------------------------------------------------------------------------------------

local closers = { ['"'] = '"', ["`"] = "`", ["["] = "]", ["'"] = "'" }

function reflect.tokenize(sql)
  local toks, i, n = {}, 1, #sql
  while i <= n do
    local c = sql:sub(i, i)
    if c:find("%s") then
      i = i + 1
    elseif sql:sub(i, i + 1) == "--" then
      i = (sql:find("\n", i, true) or n) + 1
    elseif sql:sub(i, i + 1) == "/*" then
      local e = sql:find("*/", i + 2, true)
      i = e and e + 2 or n + 1
    elseif closers[c] then
      local close, j = closers[c], i + 1
      while true do
        local q = sql:find(close, j, true)
        if not q then j = n break end
        if c ~= "[" and sql:sub(q + 1, q + 1) == close then j = q + 2 else j = q break end
      end
      local raw = sql:sub(i, j)
      local inner = raw:sub(2, -2)
      if c ~= "[" then inner = inner:gsub(close .. close, close) end
      if c == "'" then
        toks[#toks + 1] = { k = "str", s = i, e = j, v = raw }
      else
        toks[#toks + 1] = { k = "id", s = i, e = j, v = raw, u = inner:lower(), name = inner, q = true }
      end
      i = j + 1
    elseif c:find("[%a_\128-\255]") then
      local j = sql:find("[^%w_$\128-\255]", i) or n + 1
      local word = sql:sub(i, j - 1)
      if (word == "x" or word == "X") and sql:sub(j, j) == "'" then -- blob literal x'..'
        local q = sql:find("'", j + 1, true) or n
        toks[#toks + 1] = { k = "str", s = i, e = q, v = sql:sub(i, q) }
        i = q + 1
      else
        toks[#toks + 1] = { k = "id", s = i, e = j - 1, v = word, u = word:lower(), name = word }
        i = j
      end
    elseif c:find("%d") or (c == "." and sql:sub(i + 1, i + 1):find("%d")) then
      local j = i
      repeat j = j + 1 until not sql:sub(j, j):find("[%w%.]") and
        not (sql:sub(j, j):find("[+-]") and sql:sub(j - 1, j - 1):find("[eE]"))
      toks[#toks + 1] = { k = "num", s = i, e = j - 1, v = sql:sub(i, j - 1) }
      i = j
    else
      local two = sql:sub(i, i + 1)
      local len = (two == "||" or two == "<=" or two == ">=" or two == "<>" or two == "!=" or two == "=="
                   or two == "<<" or two == ">>") and 2 or 1
      toks[#toks + 1] = { k = "op", s = i, e = i + len - 1, v = sql:sub(i, i + len - 1) }
      i = i + len
    end
  end
  return toks
end

-- A bare (unquoted) keyword.
local function kw(t, word)
  return t ~= nil and t.k == "id" and not t.q and t.u == word
end

local function is_op(t, v)
  return t ~= nil and t.k == "op" and t.v == v
end

-- The index of the ")" matching the "(" at toks[i].
local function close_paren(toks, i)
  local depth = 0
  for j = i, #toks do
    if is_op(toks[j], "(") then depth = depth + 1
    elseif is_op(toks[j], ")") then
      depth = depth - 1
      if depth == 0 then return j end
    end
  end
  error("unbalanced parentheses in SQL", 0)
end

-- Top-level comma-separated ranges of toks[a..b]: { { a, b }, ... }.
local function split_commas(toks, a, b)
  local out, start, depth = {}, a, 0
  for j = a, b do
    local t = toks[j]
    if is_op(t, "(") then depth = depth + 1
    elseif is_op(t, ")") then depth = depth - 1
    elseif depth == 0 and is_op(t, ",") then
      out[#out + 1] = { start, j - 1 }
      start = j + 1
    end
  end
  if start <= b then out[#out + 1] = { start, b } end
  return out
end

-- Column names of an indexed-column list "(a, b COLLATE x DESC)" between toks[a] "(" and toks[b] ")".
local function name_list(toks, a, b)
  local out = {}
  for _, r in ipairs(split_commas(toks, a + 1, b - 1)) do
    local t = toks[r[1]]
    out[#out + 1] = t and t.k == "id" and t.name or (t and t.v)
  end
  return out
end

function reflect.mentions(sqltext, name)
  local toks = reflect.tokenize(sqltext)
  local lname = name:lower()
  for i, t in ipairs(toks) do
    if t.k == "id" and t.u == lname and not is_op(toks[i + 1], "(") then return true end
  end
  return false
end

------------------------------------------------------------------------------------------------
-- CREATE TABLE
------------------------------------------------------------------------------------------------

local column_starters = { constraint = true, primary = true, ["not"] = true, null = true, unique = true,
                          check = true, default = true, collate = true, references = true, generated = true,
                          as = true }
local table_starters = { constraint = true, primary = true, unique = true, check = true, foreign = true }

local P = {}
P.__index = P

function P:tok(i) return self.toks[i] end
function P:text(a, b) return self.sql:sub(self.toks[a].s, self.toks[b].e) end

-- ON CONFLICT x, if it follows at i; returns the index after it.
function P:conflict(i)
  if kw(self.toks[i], "on") and kw(self.toks[i + 1], "conflict") then return i + 3 end
  return i
end

-- The parenthesised expression at toks[i] = "(": its inner text and the index after ")".
function P:paren_expr(i)
  local j = close_paren(self.toks, i)
  local expr = j > i + 1 and self:text(i + 1, j - 1) or ""
  return expr, j + 1
end

-- REFERENCES clause at toks[i] (the REFERENCES keyword); fills c, returns the index after it.
function P:references(i, c)
  local toks = self.toks
  local t = toks[i + 1]
  c.reftable = t and (t.name or t.v)
  i = i + 2
  if is_op(toks[i], "(") then
    local j = close_paren(toks, i)
    c.refcolumns = name_list(toks, i, j)
    i = j + 1
  end
  while toks[i] do
    if kw(toks[i], "on") and (kw(toks[i + 1], "delete") or kw(toks[i + 1], "update")) then
      local which, a = toks[i + 1].u, toks[i + 2]
      if kw(a, "set") or kw(a, "no") then
        c["on" .. which] = a.v:upper() .. " " .. toks[i + 3].v:upper()
        i = i + 4
      else
        c["on" .. which] = a.v:upper()
        i = i + 3
      end
    elseif kw(toks[i], "match") then
      c.match = toks[i + 1].v
      i = i + 2
    elseif kw(toks[i], "deferrable") or (kw(toks[i], "not") and kw(toks[i + 1], "deferrable")) then
      c.deferrable = not kw(toks[i], "not")
      i = i + (c.deferrable and 1 or 2)
      if kw(toks[i], "initially") then
        c.initially = toks[i + 1].v:upper()
        i = i + 2
      end
    else
      break
    end
  end
  return i
end

-- One column constraint starting at i (after any CONSTRAINT name); returns the clause and the next index.
function P:column_clause(i)
  local toks = self.toks
  local t = toks[i]
  local c = { body_s = t.s }
  if kw(t, "primary") then
    c.kind, i = "pk", i + 2
    if kw(toks[i], "asc") or kw(toks[i], "desc") then c.desc = kw(toks[i], "desc") i = i + 1 end
    i = self:conflict(i)
    if kw(toks[i], "autoincrement") then c.autoincrement = true i = i + 1 end
  elseif kw(t, "not") and kw(toks[i + 1], "null") then
    c.kind, i = "notnull", self:conflict(i + 2)
  elseif kw(t, "null") then
    c.kind, i = "null", self:conflict(i + 1)
  elseif kw(t, "unique") then
    c.kind, i = "unique", self:conflict(i + 1)
  elseif kw(t, "check") then
    c.kind = "check"
    c.expr, i = self:paren_expr(i + 1)
  elseif kw(t, "default") then
    c.kind = "default"
    local a = toks[i + 1]
    if is_op(a, "(") then
      local j = close_paren(toks, i + 1)
      c.expr, i = self:text(i + 1, j), j + 1
    elseif (is_op(a, "-") or is_op(a, "+")) and toks[i + 2] then
      c.expr, i = self:text(i + 1, i + 2), i + 3
    else
      c.expr, i = a.v, i + 2
    end
  elseif kw(t, "collate") then
    c.kind, c.collation, i = "collate", toks[i + 1].name or toks[i + 1].v, i + 2
  elseif kw(t, "references") then
    c.kind = "fk"
    i = self:references(i, c)
  elseif kw(t, "generated") or kw(t, "as") then
    c.kind = "generated"
    if kw(t, "generated") then i = i + 2 end -- GENERATED ALWAYS
    c.expr, i = self:paren_expr(i + 1)
    if kw(toks[i], "stored") or kw(toks[i], "virtual") then c.stored = kw(toks[i], "stored") i = i + 1 end
  else
    return nil, i
  end
  return c, i
end

-- A column definition spanning toks[a..b].
function P:column(a, b)
  local toks = self.toks
  local col = { name = toks[a].name or toks[a].v, s = toks[a].s, e = toks[b].e, clauses = {} }
  local i = a + 1
  local type_a = i
  while i <= b and not (toks[i].k == "id" and not toks[i].q and column_starters[toks[i].u]) do
    if is_op(toks[i], "(") then i = close_paren(toks, i) end
    i = i + 1
  end
  col.type = i > type_a and self:text(type_a, i - 1) or ""
  while i <= b do
    local start, name = i, nil
    if kw(toks[i], "constraint") then name, i = toks[i + 1].name or toks[i + 1].v, i + 2 end
    local c, j = self:column_clause(i)
    if not c then
      -- something this parser does not know: keep it with the clause before (or the type)
      local last = col.clauses[#col.clauses]
      if last then last.e = toks[i].e else col.type = self:text(type_a, i) end
      i = i + 1
    else
      c.name, c.s, c.e = name, toks[start].s, toks[j - 1].e
      if c.kind == "pk" or c.kind == "unique" then c.columns = { col.name } end
      if c.kind == "fk" then c.columns = { col.name } end
      col.clauses[#col.clauses + 1] = c
      i = j
    end
  end
  col.text = self.sql:sub(col.s, col.e)
  for _, c in ipairs(col.clauses) do
    c.text, c.body = self.sql:sub(c.s, c.e), self.sql:sub(c.body_s, c.e)
  end
  return col
end

-- A table constraint spanning toks[a..b].
function P:table_constraint(a, b)
  local toks = self.toks
  local c = { s = toks[a].s, e = toks[b].e }
  local i = a
  if kw(toks[i], "constraint") then c.name, i = toks[i + 1].name or toks[i + 1].v, i + 2 end
  c.body_s = toks[i].s
  local t = toks[i]
  if kw(t, "primary") or kw(t, "unique") then
    c.kind = kw(t, "primary") and "pk" or "unique"
    local p = kw(t, "primary") and i + 2 or i + 1
    c.columns = name_list(toks, p, close_paren(toks, p))
  elseif kw(t, "check") then
    c.kind = "check"
    c.expr = self:paren_expr(i + 1)
  elseif kw(t, "foreign") then
    c.kind = "fk"
    local j = close_paren(toks, i + 2)
    c.columns = name_list(toks, i + 2, j)
    self:references(j + 1, c)
  else
    c.kind = "unknown"
  end
  c.text, c.body = self.sql:sub(c.s, c.e), self.sql:sub(c.body_s, c.e)
  return c
end

function reflect.parse_table(sql)
  local toks = reflect.tokenize(sql)
  local self = setmetatable({ sql = sql, toks = toks }, P)
  local open
  for i, t in ipairs(toks) do
    if is_op(t, "(") then open = i break end
    if kw(t, "as") then error("cannot read a CREATE TABLE ... AS SELECT statement", 0) end
  end
  if not open then error("no column list in: " .. sql, 0) end
  local close = close_paren(toks, open)
  local def = { columns = {}, constraints = {}, options = "" }
  if toks[close + 1] then def.options = sql:sub(toks[close + 1].s) end
  for _, r in ipairs(split_commas(toks, open + 1, close - 1)) do
    local t = toks[r[1]]
    if t.k == "id" and not t.q and table_starters[t.u] then
      def.constraints[#def.constraints + 1] = self:table_constraint(r[1], r[2])
    else
      def.columns[#def.columns + 1] = self:column(r[1], r[2])
    end
  end
  return def
end

------------------------------------------------------------------------------------------------
-- CREATE INDEX
------------------------------------------------------------------------------------------------

function reflect.parse_index(sql)
  local toks = reflect.tokenize(sql)
  local open
  for i, t in ipairs(toks) do
    if kw(t, "on") then
      for j = i + 1, #toks do
        if is_op(toks[j], "(") then open = j break end
      end
      break
    end
  end
  if not open then error("cannot read index: " .. sql, 0) end
  local close = close_paren(toks, open)
  local out = { elements = {}, list_s = toks[open].s, unique = kw(toks[2], "unique") }
  for i, t in ipairs(toks) do
    if kw(t, "index") then
      local n = toks[i + 1]
      if kw(n, "if") then n = toks[i + 4] end
      out.name = n.name or n.v
      break
    end
  end
  for _, r in ipairs(split_commas(toks, open + 1, close - 1)) do
    local b = r[2]
    if kw(toks[b], "asc") or kw(toks[b], "desc") then b = b - 1 end
    out.elements[#out.elements + 1] = sql:sub(toks[r[1]].s, toks[b].e)
  end
  if kw(toks[close + 1], "where") and toks[close + 2] then
    out.where = sql:sub(toks[close + 2].s):gsub("[%s;]+$", "")
  end
  return out
end

------------------------------------------------------------------------------------------------
-- Queries
------------------------------------------------------------------------------------------------

local function rows(raw, sql, params)
  local st = raw:prepare(sql)
  local out = {}
  local ok, err = pcall(function()
    if params then st:bind(params) end
    while true do
      local row = st:step()
      if row == nil then break end
      out[#out + 1] = row
    end
  end)
  st:close()
  if not ok then error(err, 0) end
  return out
end
reflect.rows = rows

function reflect.has_table(raw, name)
  return #rows(raw, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE",
               { n = 1, name }) > 0
end

function reflect.table_names(raw)
  local out = {}
  for _, r in ipairs(rows(raw, "SELECT name FROM sqlite_master WHERE type = 'table' "
                                .. "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")) do
    out[#out + 1] = r.name
  end
  return out
end

function reflect.views(raw)
  return rows(raw, "SELECT name, sql FROM sqlite_master WHERE type = 'view' ORDER BY rowid")
end

local function key(list)
  local parts = {}
  for i, v in ipairs(list) do parts[i] = tostring(v):lower() end
  return table.concat(parts, "\0")
end

-- The parsed constraints of one kind, table-level and inline, in declaration order.
local function parsed_of(def, kind)
  local out = {}
  for _, col in ipairs(def.columns) do
    for _, c in ipairs(col.clauses) do
      if c.kind == kind then out[#out + 1] = c end
    end
  end
  for _, c in ipairs(def.constraints) do
    if c.kind == kind then out[#out + 1] = c end
  end
  return out
end

-- The columns of `names` (a table's) that an expression uses, in table order.
local function used_columns(sqltext, names)
  local out = {}
  for _, n in ipairs(names) do
    if reflect.mentions(sqltext, n) then out[#out + 1] = n end
  end
  return out
end
reflect.used_columns = used_columns

local function action(v)
  if v == nil or v == "" or v:upper() == "NO ACTION" then return nil end
  return v:upper()
end

function reflect.table(raw, name)
  local found = rows(raw, "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE",
                     { n = 1, name })[1]
  if not found then return nil end
  local tname, sql = found.name, found.sql
  local def = reflect.parse_table(sql)
  local t = { name = tname, sql = sql, definition = def, columns = {}, foreign_keys = {}, unique_constraints = {},
              check_constraints = {}, indexes = {}, triggers = {},
              virtual = sql:upper():match("^%s*CREATE%s+VIRTUAL%s") ~= nil }
  local p = { n = 1, tname }

  local parsed_cols = {}
  for _, c in ipairs(def.columns) do parsed_cols[c.name:lower()] = c end
  local pk_cols, names = {}, {}
  for _, r in ipairs(rows(raw, "SELECT * FROM pragma_table_xinfo(?, 'main') ORDER BY cid", p)) do
    if r.hidden ~= 1 then
      local col = { name = r.name, type = r.type or "", nullable = r.notnull == 0, default = r.dflt_value,
                    primary_key = r.pk }
      if r.hidden == 2 or r.hidden == 3 then
        local gen
        for _, c in ipairs((parsed_cols[r.name:lower()] or { clauses = {} }).clauses) do
          if c.kind == "generated" then gen = c end
        end
        col.generated = { sqltext = gen and gen.expr, persisted = r.hidden == 3 }
      end
      t.columns[#t.columns + 1] = col
      names[#names + 1] = r.name
      if r.pk > 0 then pk_cols[r.pk] = r.name end
    end
  end
  local pk = parsed_of(def, "pk")[1]
  t.primary_key = { name = pk and pk.name, columns = pk_cols }

  -- Foreign keys: columns and actions from the PRAGMA, names and deferrability from the text.
  local parsed_fks = {}
  for _, c in ipairs(parsed_of(def, "fk")) do
    local k = key(c.columns) .. ">" .. tostring(c.reftable):lower()
    parsed_fks[k] = parsed_fks[k] or {}
    table.insert(parsed_fks[k], c)
  end
  local by_id, order = {}, {}
  for _, r in ipairs(rows(raw, "SELECT * FROM pragma_foreign_key_list(?, 'main') ORDER BY id DESC, seq", p)) do
    local fk = by_id[r.id]
    if not fk then
      fk = { columns = {}, referred_table = r.table, referred_columns = {}, ondelete = action(r.on_delete),
             onupdate = action(r.on_update) }
      by_id[r.id] = fk
      order[#order + 1] = fk
    end
    fk.columns[#fk.columns + 1] = r.from
    if r.to ~= nil then fk.referred_columns[#fk.referred_columns + 1] = r.to end
  end
  for _, fk in ipairs(order) do
    local list = parsed_fks[key(fk.columns) .. ">" .. fk.referred_table:lower()]
    local c = list and table.remove(list, 1)
    if c then fk.name, fk.deferrable, fk.initially = c.name, c.deferrable, c.initially end
    if #fk.referred_columns == 0 then -- REFERENCES t with no columns: t's primary key
      for _, r in ipairs(rows(raw, "SELECT name FROM pragma_table_info(?, 'main') WHERE pk > 0 ORDER BY pk",
                              { n = 1, fk.referred_table })) do
        fk.referred_columns[#fk.referred_columns + 1] = r.name
      end
    end
    t.foreign_keys[#t.foreign_keys + 1] = fk
  end

  local parsed_uqs = {}
  for _, c in ipairs(parsed_of(def, "unique")) do
    parsed_uqs[key(c.columns)] = parsed_uqs[key(c.columns)] or {}
    table.insert(parsed_uqs[key(c.columns)], c)
  end
  for _, c in ipairs(parsed_of(def, "check")) do
    t.check_constraints[#t.check_constraints + 1] = { name = c.name, sqltext = c.expr,
                                                      columns = used_columns(c.expr, names) }
  end

  local list = rows(raw, "SELECT il.name, il.\"unique\", il.origin, m.sql FROM pragma_index_list(?, 'main') il "
                         .. "LEFT JOIN sqlite_master m ON m.type = 'index' AND m.name = il.name ORDER BY il.seq DESC", p)
  for _, ix in ipairs(list) do
    local cols, n = {}, 0
    for _, r in ipairs(rows(raw, "SELECT name, cid FROM pragma_index_xinfo(?, 'main') WHERE key = 1 ORDER BY seqno",
                            { n = 1, ix.name })) do
      n = n + 1
      cols[n] = r.name -- nil for an expression
    end
    if ix.origin == "u" then
      local plist = parsed_uqs[key(cols)]
      local c = plist and table.remove(plist, 1)
      t.unique_constraints[#t.unique_constraints + 1] = { name = c and c.name, columns = cols }
    elseif ix.origin == "c" then
      local parsed = reflect.parse_index(ix.sql)
      local entry = { name = ix.name, columns = cols, n = n, unique = ix.unique == 1, where = parsed.where,
                      sql = ix.sql }
      for i = 1, n do
        if cols[i] == nil then entry.expressions = parsed.elements break end
      end
      t.indexes[#t.indexes + 1] = entry
    end
  end
  table.sort(t.indexes, function(a, b) return a.name < b.name end)
  t.triggers = rows(raw, "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? "
                         .. "COLLATE NOCASE ORDER BY rowid", p)
  return t
end

-- The tables whose foreign keys refer to table `name` (itself included): { { table, fks = { fk } } }
-- with fk = { id, columns, referred_columns, ondelete, onupdate }.
function reflect.referencing(raw, name)
  local out, by = {}, {}
  for _, r in ipairs(rows(raw, "SELECT m.name AS child, f.id, f.\"from\", f.\"to\", f.on_delete, f.on_update "
                               .. "FROM sqlite_master m, pragma_foreign_key_list(m.name, 'main') f "
                               .. "WHERE m.type = 'table' AND f.\"table\" = ? COLLATE NOCASE ORDER BY m.name, f.id, f.seq",
                          { n = 1, name })) do
    local entry = by[r.child]
    if not entry then
      entry = { table = r.child, fks = {} }
      by[r.child] = entry
      out[#out + 1] = entry
    end
    local fk = entry.fks[#entry.fks]
    if not fk or fk.id ~= r.id then
      fk = { id = r.id, columns = {}, referred_columns = {}, ondelete = action(r.on_delete),
             onupdate = action(r.on_update) }
      entry.fks[#entry.fks + 1] = fk
    end
    fk.columns[#fk.columns + 1] = r.from
    if r.to ~= nil then fk.referred_columns[#fk.referred_columns + 1] = r.to end
  end
  return out
end

return reflect
