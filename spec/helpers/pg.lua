-- Reads and writes a real PostgreSQL database through libpq and LuaJIT's FFI,
-- so specs check the schema and rows the luamig binary left behind, not a
-- mock. SQL may use `?` placeholders (outside quotes and comments) as on
-- SQLite; they become $1..$n. Values come back typed by the column's type:
-- integers and floats as numbers, booleans as booleans, NULL as nil, the
-- rest as the server prints it.
local ffi = require("ffi")

ffi.cdef([[
typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;
typedef unsigned int Oid;
PGconn *PQconnectdb(const char *conninfo);
int PQstatus(const PGconn *conn);
char *PQerrorMessage(const PGconn *conn);
void PQfinish(PGconn *conn);
PGresult *PQexec(PGconn *conn, const char *query);
PGresult *PQexecParams(PGconn *conn, const char *command, int nParams, const Oid *paramTypes,
  const char *const *paramValues, const int *paramLengths, const int *paramFormats, int resultFormat);
int PQresultStatus(const PGresult *res);
char *PQresultErrorMessage(const PGresult *res);
int PQntuples(const PGresult *res);
int PQnfields(const PGresult *res);
char *PQfname(const PGresult *res, int field_num);
Oid PQftype(const PGresult *res, int field_num);
char *PQgetvalue(const PGresult *res, int tup_num, int field_num);
int PQgetisnull(const PGresult *res, int tup_num, int field_num);
void PQclear(PGresult *res);
typedef void (*PQnoticeReceiver)(void *arg, const PGresult *res);
PQnoticeReceiver PQsetNoticeReceiver(PGconn *conn, PQnoticeReceiver proc, void *arg);
]])

local lib = ffi.load("pq")
local CONNECTION_OK = 0
local PGRES_COMMAND_OK, PGRES_TUPLES_OK = 1, 2
local INTEGER_OIDS = { [20] = true, [21] = true, [23] = true, [26] = true }
local FLOAT_OIDS = { [700] = true, [701] = true, [1700] = true }
local BOOL_OID = 16
-- notices ("table does not exist, skipping") would go to stderr
local quiet = ffi.cast("PQnoticeReceiver", function() end)

local M = {}

-- Replaces each `?` outside '...', "...", -- and /* */ with $1..$n.
function M.placeholders(sql)
  local out, n, i = {}, 0, 1
  while i <= #sql do
    local c = sql:sub(i, i)
    if c == "'" or c == '"' then
      local j = i + 1
      while j <= #sql do
        if sql:sub(j, j) == c then
          if sql:sub(j + 1, j + 1) == c then j = j + 1 else break end
        end
        j = j + 1
      end
      out[#out + 1] = sql:sub(i, j)
      i = j + 1
    elseif sql:sub(i, i + 1) == "--" then
      local j = sql:find("\n", i, true) or #sql
      out[#out + 1] = sql:sub(i, j)
      i = j + 1
    elseif sql:sub(i, i + 1) == "/*" then
      local j = select(2, sql:find("*/", i + 2, true)) or #sql
      out[#out + 1] = sql:sub(i, j)
      i = j + 1
    elseif c == "?" then
      n = n + 1
      out[#out + 1] = "$" .. n
      i = i + 1
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  return table.concat(out), n
end

local Conn = {}
Conn.__index = Conn

-- Opens a connection from a postgresql:// URL (libpq reads URIs itself).
function M.connect(url)
  local pg = lib.PQconnectdb(url)
  if pg == nil then error("out of memory connecting to PostgreSQL", 2) end
  if lib.PQstatus(pg) ~= CONNECTION_OK then
    local msg = ffi.string(lib.PQerrorMessage(pg))
    lib.PQfinish(pg)
    error("cannot connect to PostgreSQL: " .. msg, 2)
  end
  lib.PQsetNoticeReceiver(pg, quiet, nil)
  return setmetatable({ pg = pg }, Conn)
end

function Conn:close()
  if self.pg ~= nil then lib.PQfinish(self.pg) end
  self.pg = nil
end

local function text_of(v)
  if type(v) == "boolean" then return v and "t" or "f" end
  if type(v) == "number" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then
    return ("%d"):format(v)
  end
  return tostring(v)
end

-- Turns a result into rows keyed by column name, then frees it.
local function collect(res, sql, level)
  local status = lib.PQresultStatus(res)
  if status ~= PGRES_COMMAND_OK and status ~= PGRES_TUPLES_OK then
    local msg = ffi.string(lib.PQresultErrorMessage(res)):gsub("%s+$", "")
    lib.PQclear(res)
    error(msg .. " in: " .. sql, level + 1)
  end
  local rows, nf = {}, lib.PQnfields(res)
  local names, oids = {}, {}
  for f = 0, nf - 1 do
    names[f] = ffi.string(lib.PQfname(res, f))
    oids[f] = lib.PQftype(res, f)
  end
  for r = 0, lib.PQntuples(res) - 1 do
    local row = {}
    for f = 0, nf - 1 do
      if lib.PQgetisnull(res, r, f) == 0 then
        local s, oid = ffi.string(lib.PQgetvalue(res, r, f)), oids[f]
        if INTEGER_OIDS[oid] or FLOAT_OIDS[oid] then row[names[f]] = tonumber(s) or s
        elseif oid == BOOL_OID then row[names[f]] = s == "t"
        else row[names[f]] = s end
      end
    end
    rows[#rows + 1] = row
  end
  lib.PQclear(res)
  return rows
end

-- All rows of one statement (with optional params, an array; nil elements
-- need params.n) as tables keyed by column name.
function Conn:query(sql, params)
  params = params or {}
  local text, n = M.placeholders(sql)
  local count = params.n or #params
  assert(n == count, ("%d placeholders but %d parameters in: %s"):format(n, count, sql))
  local values = ffi.new("const char *[?]", math.max(count, 1))
  local keep = {}
  for i = 1, count do
    if params[i] ~= nil then
      keep[i] = text_of(params[i])
      values[i - 1] = keep[i]
    end
  end
  local res = lib.PQexecParams(self.pg, text, count, nil, values, nil, nil, 0)
  if res == nil then error(ffi.string(lib.PQerrorMessage(self.pg)), 2) end
  return collect(res, sql, 2)
end

-- Runs one or more `;`-separated statements without parameters.
function Conn:exec(sql)
  local res = lib.PQexec(self.pg, sql)
  if res == nil then error(ffi.string(lib.PQerrorMessage(self.pg)), 2) end
  collect(res, sql, 2)
end

-- The URL with its database name replaced by dbname (query kept).
function M.with_dbname(url, dbname)
  local head, rest = url:match("^([%w+.-]+://[^/?]*)(.*)$")
  assert(head, "not a postgresql url: " .. url)
  local query = rest:match("(%?.*)$") or ""
  return head .. "/" .. dbname .. query
end

return M
