-- luamig.conn: the connection a migration gets from op.get_bind().
--
-- Wraps the host's raw connection (userdata: raw:exec, raw:prepare -> stmt:bind/step/run/columns/close)
-- with the calls data migrations use: execute, rows (streaming), first, scalar, prepare. Statements
-- are SQL text with ? placeholders, sa.text (with :name parameters) or luamig.sa expressions.
-- Methods work with a colon or a dot (conn:execute(...) and conn.execute(...)).

local util = require("luamig.util")
local sa = require("luamig.sa")
local ddl = require("luamig.ddl")
local progress = require("luamig.progress")

local kind = sa.kind

local conn = {}

local fail = util.fail

local function is_map(t)
  return type(t) == "table" and kind(t) == nil and next(t) ~= nil and (t.n or #t) == 0
end

-- Parameters for the host: an array with .n, sa.null turned into nil; nil when there are none.
local function host_params(where, params)
  if params == nil then return nil end
  if type(params) ~= "table" or kind(params) then fail("%s: params must be an array of values", where) end
  local n = params.n or #params
  if n == 0 then return nil end
  local out = { n = n }
  for i = 1, n do
    local v = params[i]
    if v == sa.null then v = nil end
    local t = type(v)
    if t == "cdata" then v, t = ddl.cdata_integer(v), "string" end
    if v ~= nil and t ~= "string" and t ~= "number" and t ~= "boolean" and t ~= "cdata" then
      fail("%s: parameter %d is a %s; use a string, number, boolean or sa.null", where, i, t)
    end
    out[i] = v
  end
  return out
end
conn.host_params = host_params

-- compile(r, where, stmt, params, literal) -> sql, host params. A plain string with a map of :name
-- values is read as sa.text. With `literal` (offline) values are written into the SQL text.
function conn.compile(r, where, stmt, params, literal)
  if stmt == nil or (type(stmt) ~= "string" and kind(stmt) == nil) then
    fail("%s: argument 1 must be SQL text, sa.text(...) or an expression", where)
  end
  if params ~= nil and (type(params) ~= "table" or kind(params)) then
    fail("%s: argument 2 must be a table of parameters", where)
  end
  if type(stmt) == "string" and is_map(params) then stmt = sa.text(stmt) end
  if params ~= nil and not is_map(params) then params = host_params(where, params) end
  local ok, sql, p = pcall(r.compile, r, stmt, literal, params)
  if not ok then fail("%s: %s", where, sql) end
  return sql, host_params(where, p)
end

local function bind_methods(obj, methods)
  for name, fn in pairs(methods) do
    obj[name] = function(first, ...)
      if first == obj then return fn(obj, ...) end
      return fn(obj, first, ...)
    end
  end
  return obj
end

-- A row iterator over a statement; closes it at the end when `owned`.
local function iterate(stmt, owned, label)
  local done = false
  local p = progress.new(label)
  return function()
    if done then return nil end
    local row = stmt:step()
    if row == nil then
      done = true
      if owned then stmt:close() end
      if p then p:done() end
    elseif p then
      p:tick(1)
    end
    return row
  end
end

local Prepared = {}
local prepared_params

function Prepared.execute(self, params)
  return self._stmt:run(self:_params("stmt:execute", params))
end

-- Runs the statement once per row of rows (arrays for ? placeholders, maps for :name ones) and
-- returns the rows affected, summed. On PostgreSQL the rows go in a pipeline, a thousand per round
-- trip; an error names the row that failed.
function Prepared.execute_many(self, rows)
  local where = "stmt:execute_many"
  if type(rows) ~= "table" or kind(rows) then fail("%s: argument 1 must be an array of rows", where) end
  if is_map(rows[1]) then
    local arrays = {}
    for i, row in ipairs(rows) do arrays[i] = prepared_params(self, where, row) end
    rows = arrays
  end
  return self._stmt:run_many(rows, sa.null, ddl.cdata_integer)
end

function Prepared.rows(self, params)
  local p = self:_params("stmt:rows", params)
  self._stmt:bind(p)
  return iterate(self._stmt, false, "stmt:rows")
end

function Prepared.close(self)
  if not self._closed then
    self._closed = true
    self._stmt:close()
  end
end

-- Prepared statements accept an array for ? placeholders, or a map when made from :name text.
function prepared_params(self, where, params)
  if is_map(params) then
    if not self._names then fail("%s: the statement has ? placeholders; give an array of parameters", where) end
    local out = { n = #self._names }
    for i, name in ipairs(self._names) do
      local v = params[name]
      if v == nil then fail("%s: no value for the bind parameter ':%s'", where, name) end
      out[i] = v
    end
    params = out
  end
  return host_params(where, params) or { n = 0 }
end

local Conn = {}

-- Statements conn:execute ran with parameters, by SQL text, so a loop's
-- UPDATE is prepared once (and, on PostgreSQL, planned once). The host
-- closes them when the revision's transaction ends; is_open() tells.
local CACHE_SIZE = 32

-- An array of rows as params (each an array or a map) runs the statement once per row, like
-- SQLAlchemy's executemany.
function Conn.execute(self, stmt, params)
  if type(params) == "table" and kind(params) == nil and type(params[1]) == "table" and kind(params[1]) == nil then
    if type(stmt) == "string" and is_map(params[1]) then stmt = sa.text(stmt) end
    local prepared = self:prepare(stmt)
    local ok, changes = pcall(prepared.execute_many, prepared, params)
    prepared:close()
    if not ok then error(changes, 0) end
    return changes
  end
  local sql, p = conn.compile(self._r, "conn:execute", stmt, params)
  if not p then return self._raw:exec(sql, p) end
  local cache = self._cache
  local s = cache[sql]
  if not (s and s:is_open()) then
    if self._ncached >= CACHE_SIZE then
      for _, old in pairs(cache) do old:close() end
      cache, self._ncached = {}, 0
      self._cache = cache
    end
    s = self._raw:prepare(sql)
    cache[sql] = s
    self._ncached = self._ncached + 1
  end
  return s:run(p)
end

function Conn.rows(self, stmt, params)
  local sql, p = conn.compile(self._r, "conn:rows", stmt, params)
  local s = self._raw:prepare(sql)
  if p then s:bind(p) end
  return iterate(s, true, "conn:rows")
end

-- Walks a large table in chunks ordered by a unique key (keyset pagination,
-- so rows updated along the way are neither skipped nor seen twice), calling
-- fn(rows) with an array of up to opts.size rows each time. Returns the
-- number of rows seen. opts: key (default "id"), size (default 10000),
-- columns (SQL list, default "*"), where (SQL condition with ? placeholders),
-- params (for where).
function Conn.each_batch(self, table_name, opts, fn)
  local where = "conn:each_batch"
  if type(opts) == "function" then opts, fn = {}, opts end
  if type(table_name) ~= "string" or table_name == "" then fail("%s: argument 1 must be a table name", where) end
  if type(opts) ~= "table" then fail("%s: argument 2 must be an options table", where) end
  if type(fn) ~= "function" then fail("%s: argument 3 must be a function(rows)", where) end
  local key, size = opts.key or "id", opts.size or 10000
  if type(size) ~= "number" or size < 1 then fail("%s: size must be a positive number", where) end
  local q = function(name) return self._r:quote(name) end
  local cond = opts.where and (" AND (" .. opts.where .. ")") or ""
  local tail = cond .. " ORDER BY " .. q(key) .. " LIMIT " .. math.floor(size)
  local cols = opts.columns or "*"
  local first = self._raw:prepare("SELECT " .. cols .. " FROM " .. q(table_name) .. " WHERE 1 = 1" .. tail)
  local next_ = self._raw:prepare("SELECT " .. cols .. " FROM " .. q(table_name) .. " WHERE " .. q(key) .. " > ?" .. tail)
  local extra = opts.params or {}
  local p = progress.new("conn:each_batch " .. table_name)
  local total, last = 0, nil
  local ok, err = pcall(function()
    while true do
      local stmt = last == nil and first or next_
      local params = { n = (last == nil and 0 or 1) + #extra }
      if last ~= nil then params[1] = last end
      for i, v in ipairs(extra) do params[params.n - #extra + i] = v end
      stmt:bind(host_params(where, params) or { n = 0 })
      local rows = {}
      for row in iterate(stmt, false) do rows[#rows + 1] = row end
      if #rows == 0 then break end
      last = rows[#rows][key]
      if last == nil then fail("%s: the rows have no column '%s'; name the key with { key = ... }", where, key) end
      total = total + #rows
      fn(rows)
      if p then p:tick(#rows) end
      if #rows < size then break end
    end
  end)
  first:close()
  next_:close()
  if p then p:done() end
  if not ok then error(err, 0) end
  return total
end

function Conn.first(self, stmt, params)
  local sql, p = conn.compile(self._r, "conn:first", stmt, params)
  local s = self._raw:prepare(sql)
  local ok, row = pcall(function()
    if p then s:bind(p) end
    return s:step()
  end)
  s:close()
  if not ok then error(row, 0) end
  return row
end

function Conn.scalar(self, stmt, params)
  local sql, p = conn.compile(self._r, "conn:scalar", stmt, params)
  local s = self._raw:prepare(sql)
  local ok, value = pcall(function()
    if p then s:bind(p) end
    local row = s:step()
    return row and row[s:columns()[1]]
  end)
  s:close()
  if not ok then error(value, 0) end
  return value
end

function Conn.prepare(self, stmt)
  local where = "conn:prepare"
  local names
  if kind(stmt) == "text" and not stmt.binds then
    -- :name parameters become ? in order, so execute() can take a map.
    local found = {}
    local sql = ddl.substitute(stmt.sql, nil, function(name)
      found[#found + 1] = name
      return "?"
    end)
    if #found > 0 then names = found end
    stmt = sql
  end
  local sql, p = conn.compile(self._r, where, stmt, nil)
  if p then fail("%s: the statement has bound values; use ? placeholders and pass them to execute()", where) end
  local obj = { _stmt = self._raw:prepare(sql), _names = names, _params = prepared_params }
  return bind_methods(obj, Prepared)
end

-- The live schema, with SQLAlchemy Inspector's keys (luamig.inspect).
function Conn.inspect(self, opts)
  return require("luamig.inspect").new(self._raw, self.dialect, opts)
end

-- conn.new(raw, renderer): renderer is a luamig.ddl renderer for the connection's dialect.
function conn.new(raw, renderer)
  local obj = { _raw = raw, _r = renderer, dialect = renderer.dialect, _cache = {}, _ncached = 0 }
  return bind_methods(obj, Conn)
end

return conn
