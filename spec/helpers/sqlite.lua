-- Reads a real SQLite database through LuaJIT's FFI, so specs check the schema
-- and rows the luamig binary left behind, not a mock.
local ffi = require("ffi")

ffi.cdef([[
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
int sqlite3_open_v2(const char *filename, sqlite3 **db, int flags, const char *vfs);
int sqlite3_close_v2(sqlite3 *db);
const char *sqlite3_errmsg(sqlite3 *db);
int sqlite3_prepare_v2(sqlite3 *db, const char *sql, int n, sqlite3_stmt **stmt, const char **tail);
int sqlite3_step(sqlite3_stmt *stmt);
int sqlite3_finalize(sqlite3_stmt *stmt);
int sqlite3_column_count(sqlite3_stmt *stmt);
const char *sqlite3_column_name(sqlite3_stmt *stmt, int i);
int sqlite3_column_type(sqlite3_stmt *stmt, int i);
long long sqlite3_column_int64(sqlite3_stmt *stmt, int i);
double sqlite3_column_double(sqlite3_stmt *stmt, int i);
const unsigned char *sqlite3_column_text(sqlite3_stmt *stmt, int i);
int sqlite3_bind_text(sqlite3_stmt *stmt, int i, const char *s, int n, void *destructor);
int sqlite3_bind_int64(sqlite3_stmt *stmt, int i, long long v);
int sqlite3_exec(sqlite3 *db, const char *sql, void *cb, void *arg, char **errmsg);
]])

local lib = ffi.load("sqlite3")
local SQLITE_ROW, SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_NULL = 100, 1, 2, 5
local OPEN_READWRITE, OPEN_CREATE = 0x2, 0x4
local TRANSIENT = ffi.cast("void *", -1)

local M = {}

-- All rows of sql (with optional params) as tables keyed by column name.
function M.query(path, sql, params)
  local pdb = ffi.new("sqlite3 *[1]")
  assert(lib.sqlite3_open_v2(path, pdb, OPEN_READWRITE + OPEN_CREATE, nil) == 0, "cannot open " .. path)
  local db = pdb[0]
  local pst = ffi.new("sqlite3_stmt *[1]")
  if lib.sqlite3_prepare_v2(db, sql, -1, pst, nil) ~= 0 then
    local msg = ffi.string(lib.sqlite3_errmsg(db))
    lib.sqlite3_close_v2(db)
    error(msg .. " in: " .. sql, 2)
  end
  local st = pst[0]
  for i, v in ipairs(params or {}) do
    if type(v) == "number" then lib.sqlite3_bind_int64(st, i, v)
    else lib.sqlite3_bind_text(st, i, tostring(v), -1, TRANSIENT) end
  end
  local rows = {}
  while lib.sqlite3_step(st) == SQLITE_ROW do
    local row = {}
    for i = 0, lib.sqlite3_column_count(st) - 1 do
      local name = ffi.string(lib.sqlite3_column_name(st, i))
      local t = lib.sqlite3_column_type(st, i)
      if t == SQLITE_INTEGER then row[name] = tonumber(lib.sqlite3_column_int64(st, i))
      elseif t == SQLITE_FLOAT then row[name] = lib.sqlite3_column_double(st, i)
      elseif t ~= SQLITE_NULL then row[name] = ffi.string(lib.sqlite3_column_text(st, i)) end
    end
    rows[#rows + 1] = row
  end
  lib.sqlite3_finalize(st)
  lib.sqlite3_close_v2(db)
  return rows
end

function M.exec(path, sql)
  local pdb = ffi.new("sqlite3 *[1]")
  assert(lib.sqlite3_open_v2(path, pdb, OPEN_READWRITE + OPEN_CREATE, nil) == 0)
  local rc = lib.sqlite3_exec(pdb[0], sql, nil, nil, nil)
  local msg = rc ~= 0 and ffi.string(lib.sqlite3_errmsg(pdb[0]))
  lib.sqlite3_close_v2(pdb[0])
  if msg then error(msg, 2) end
end

-- Sorted user table names (no sqlite_ internals); none when the file does
-- not exist (luamig never created it).
function M.tables(path)
  local f = io.open(path, "rb")
  if not f then return {} end
  f:close()
  local names = {}
  for _, r in ipairs(M.query(path, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")) do
    names[#names + 1] = r.name
  end
  return names
end

function M.columns(path, tbl)
  return M.query(path, "SELECT * FROM pragma_table_info(?) ORDER BY cid", { tbl })
end

function M.indexes(path, tbl)
  return M.query(path, "SELECT * FROM pragma_index_list(?) ORDER BY name", { tbl })
end

function M.foreign_keys(path, tbl)
  return M.query(path, "SELECT * FROM pragma_foreign_key_list(?) ORDER BY id, seq", { tbl })
end

return M
