-- luamig.conn: the connection a migration gets from op.get_bind().
--
-- Wraps the host's raw connection (userdata: raw:exec, raw:prepare -> stmt:bind/step/run/columns/close)
-- with the calls data migrations use: execute, rows (streaming), first, scalar, prepare. Statements
-- are SQL text with ? placeholders, sa.text (with :name parameters) or luamig.sa expressions.
-- Methods work with a colon or a dot (conn:execute(...) and conn.execute(...)).

local sa = require("luamig.sa")
local ddl = require("luamig.ddl")

local kind = sa.kind

local conn = {}

local function fail(fmt, ...)
  error(string.format(fmt, ...), 0)
end

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
local function iterate(stmt, owned)
  local done = false
  return function()
    if done then return nil end
    local row = stmt:step()
    if row == nil then
      done = true
      if owned then stmt:close() end
    end
    return row
  end
end

local Prepared = {}

function Prepared.execute(self, params)
  return self._stmt:run(self:_params("stmt:execute", params))
end

function Prepared.rows(self, params)
  local p = self:_params("stmt:rows", params)
  self._stmt:bind(p)
  return iterate(self._stmt, false)
end

function Prepared.close(self)
  if not self._closed then
    self._closed = true
    self._stmt:close()
  end
end

-- Prepared statements accept an array for ? placeholders, or a map when made from :name text.
local function prepared_params(self, where, params)
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

function Conn.execute(self, stmt, params)
  local sql, p = conn.compile(self._r, "conn:execute", stmt, params)
  return self._raw:exec(sql, p)
end

function Conn.rows(self, stmt, params)
  local sql, p = conn.compile(self._r, "conn:rows", stmt, params)
  local s = self._raw:prepare(sql)
  if p then s:bind(p) end
  return iterate(s, true)
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

-- conn.new(raw, renderer): renderer is a luamig.ddl renderer for the connection's dialect.
function conn.new(raw, renderer)
  local obj = { _raw = raw, _r = renderer, dialect = renderer.dialect }
  return bind_methods(obj, Conn)
end

return conn
