-- The databases specs run on: "sqlite" always, "postgresql" when
-- LUAMIG_TEST_PG_URL names a server (tools/test starts one). Each database
-- handed out is fresh: a new SQLite file in its own folder, or a new
-- PostgreSQL database `luamig_t_<random>` on that server, dropped after.
--
-- Every check reads the real schema: SQLite's PRAGMAs and sqlite_master,
-- PostgreSQL's pg_catalog. Both backends answer in the same shapes:
--   db.url                    the URL to give luamig (--url)
--   db.query(sql, params)     rows keyed by column name (`?` placeholders)
--   db.exec(sql)              `;`-separated statements, no parameters
--   db.tables()               sorted names of the user tables
--   db.columns(t)             in order: { name, type, nullable, default, primary_key }
--   db.indexes(t)             sorted by name, primary keys left out: { name, unique, columns }
--   db.foreign_keys(t)        { name (nil on SQLite), columns, referred_table,
--                               referred_columns, ondelete, onupdate }
--   db.versions(tbl)          sorted version_num rows of tbl (default luamig_version)
--   db.run(dir, args, opts)   cli.run with `--url db.url` appended
--   db.pick{ sqlite = a, postgresql = b }   the value for this backend
--
-- In a spec:
--   backend.each(function(b)     -- inside describe(b.name, ...)
--     it("...", function() ... b.run(dir, { "upgrade", "head" }) ... b.tables() ... end)
--   end)
-- b is a fresh database in every test of that describe (b.name is fixed).
-- Outside busted (tools/killtest): backend.names(), backend.open(name), db.drop().
local cli = require("spec.helpers.cli")
local sqlite = require("spec.helpers.sqlite")
local pg = require("spec.helpers.pg")

local M = {}

local PG_ACTIONS = { a = "NO ACTION", r = "RESTRICT", c = "CASCADE", n = "SET NULL", d = "SET DEFAULT" }

function M.pg_url()
  local url = os.getenv("LUAMIG_TEST_PG_URL")
  if url and url ~= "" then return url end
end

function M.names()
  local out = { "sqlite" }
  if M.pg_url() then out[#out + 1] = "postgresql" end
  return out
end

local function random_hex(n)
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(n)
  f:close()
  return (bytes:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local function split(s)
  local out = {}
  for part in (s or ""):gmatch("[^\n]+") do out[#out + 1] = part end
  return out
end

local function sorted(list, key)
  table.sort(list, function(a, b) return key(a) < key(b) end)
  return list
end

-- ---- SQLite --------------------------------------------------------------

local function open_sqlite()
  local dir = cli.sh("mktemp -d /tmp/luamig-spec-db.XXXXXX"):gsub("%s+$", "")
  local path = dir .. "/test.db"
  local db = { name = "sqlite", path = path, url = "sqlite:///" .. path }

  function db.query(sql, params) return sqlite.query(path, sql, params) end
  function db.exec(sql) return sqlite.exec(path, sql) end
  function db.tables() return sqlite.tables(path) end

  local function exists()
    local f = io.open(path, "rb")
    if f then f:close() end
    return f ~= nil
  end

  function db.columns(t)
    if not exists() then return {} end
    local out = {}
    for i, c in ipairs(sqlite.columns(path, t)) do
      out[i] = { name = c.name, type = c.type, nullable = c.notnull == 0, default = c.dflt_value,
                 primary_key = c.pk > 0 }
    end
    return out
  end

  function db.indexes(t)
    if not exists() then return {} end
    local out = {}
    for _, ix in ipairs(sqlite.indexes(path, t)) do
      if ix.origin ~= "pk" then
        local cols = {}
        for _, c in ipairs(sqlite.query(path, "SELECT name FROM pragma_index_info(?) ORDER BY seqno", { ix.name })) do
          cols[#cols + 1] = c.name or "(expression)"
        end
        out[#out + 1] = { name = ix.name, unique = ix.unique == 1, columns = cols }
      end
    end
    return sorted(out, function(x) return x.name end)
  end

  function db.foreign_keys(t)
    if not exists() then return {} end
    local by_id, out = {}, {}
    for _, r in ipairs(sqlite.foreign_keys(path, t)) do
      local fk = by_id[r.id]
      if not fk then
        fk = { columns = {}, referred_table = r.table, referred_columns = {},
               ondelete = r.on_delete, onupdate = r.on_update }
        by_id[r.id] = fk
        out[#out + 1] = fk
      end
      fk.columns[#fk.columns + 1] = r.from
      fk.referred_columns[#fk.referred_columns + 1] = r.to
    end
    for _, fk in ipairs(out) do
      if #fk.referred_columns == 0 or fk.referred_columns[1] == nil then
        -- REFERENCES t with no column list: the referred table's primary key
        fk.referred_columns = {}
        for _, c in ipairs(sqlite.query(path, "SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk", { fk.referred_table })) do
          fk.referred_columns[#fk.referred_columns + 1] = c.name
        end
      end
    end
    return sorted(out, function(x) return table.concat(x.columns, ",") .. ">" .. x.referred_table end)
  end

  function db.drop() cli.rmtree(dir) end
  return db
end

-- ---- PostgreSQL ----------------------------------------------------------

local admin -- one connection to the server's own database, for CREATE/DROP DATABASE

local function open_pg()
  local server = assert(M.pg_url(), "LUAMIG_TEST_PG_URL is not set")
  admin = admin or pg.connect(server)
  local dbname = "luamig_t_" .. random_hex(6)
  admin:exec("CREATE DATABASE " .. dbname)
  local db = { name = "postgresql", dbname = dbname, url = pg.with_dbname(server, dbname) }
  local conn

  local function c()
    conn = conn or pg.connect(db.url)
    return conn
  end

  function db.query(sql, params) return c():query(sql, params) end
  function db.exec(sql) return c():exec(sql) end

  function db.tables()
    local out = {}
    for _, r in ipairs(db.query([[
        SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')]])) do
      out[#out + 1] = r.name
    end
    table.sort(out)
    return out
  end

  function db.columns(t)
    return db.query([[
      SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
             NOT a.attnotnull AS nullable, pg_get_expr(d.adbin, d.adrelid) AS "default",
             COALESCE(a.attnum = ANY (i.indkey), false) AS primary_key
      FROM pg_attribute a
      JOIN pg_class c ON c.oid = a.attrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
      WHERE n.nspname = current_schema() AND c.relname = ? AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum]], { t })
  end

  function db.indexes(t)
    local out = {}
    for _, r in ipairs(db.query([[
        SELECT ic.relname AS name, i.indisunique AS "unique",
               array_to_string(ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true)
                                     FROM generate_series(1, i.indnkeyatts) k ORDER BY k), E'\n') AS columns
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE n.nspname = current_schema() AND c.relname = ? AND NOT i.indisprimary]], { t })) do
      local columns = split(r.columns)
      for i, c in ipairs(columns) do -- a plain column name comes back quoted when it needs quotes
        columns[i] = c:match('^"(.*)"$') and c:sub(2, -2):gsub('""', '"') or c
      end
      out[#out + 1] = { name = r.name, unique = r.unique, columns = columns }
    end
    return sorted(out, function(x) return x.name end)
  end

  function db.foreign_keys(t)
    local out = {}
    for _, r in ipairs(db.query([[
        SELECT con.conname AS name, rc.relname AS referred_table,
               con.confdeltype AS ondelete, con.confupdtype AS onupdate,
               array_to_string(ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(num, ord)
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.ord), E'\n') AS columns,
               array_to_string(ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(num, ord)
                 JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.ord), E'\n') AS referred_columns
        FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_class rc ON rc.oid = con.confrelid
        WHERE con.contype = 'f' AND n.nspname = current_schema() AND c.relname = ?]], { t })) do
      out[#out + 1] = { name = r.name, columns = split(r.columns), referred_table = r.referred_table,
                        referred_columns = split(r.referred_columns),
                        ondelete = PG_ACTIONS[r.ondelete], onupdate = PG_ACTIONS[r.onupdate] }
    end
    return sorted(out, function(x) return table.concat(x.columns, ",") .. ">" .. x.referred_table end)
  end

  function db.drop()
    if conn then conn:close() end
    conn = nil
    -- WITH (FORCE) ends sessions a killed runner may have left behind
    admin:exec("DROP DATABASE IF EXISTS " .. dbname .. " WITH (FORCE)")
  end
  return db
end

-- ---- shared --------------------------------------------------------------

local function add_common(db)
  function db.versions(tbl)
    tbl = tbl or "luamig_version"
    local present = false
    for _, t in ipairs(db.tables()) do present = present or t == tbl end
    if not present then return {} end
    local out = {}
    for i, r in ipairs(db.query("SELECT version_num FROM " .. tbl .. " ORDER BY version_num")) do
      out[i] = r.version_num
    end
    return out
  end

  function db.run(dir, args, opts)
    local full = {}
    for i, a in ipairs(args) do full[i] = a end
    full[#full + 1] = "--url"
    full[#full + 1] = db.url
    return cli.run(dir, full, opts)
  end

  function db.pick(choices)
    local v = choices[db.name]
    assert(v ~= nil, "no choice for " .. db.name)
    return v
  end
  return db
end

-- A fresh database of backend name ("sqlite" or "postgresql"); call
-- db.drop() when done.
function M.open(name)
  if name == "sqlite" then return add_common(open_sqlite()) end
  if name == "postgresql" then return add_common(open_pg()) end
  error("unknown backend '" .. tostring(name) .. "'")
end

-- For each backend: describe(name, fn(b)) where b stands for a fresh
-- database in each test (made before the describe's own before_each hooks
-- run, dropped after its after_each hooks).
function M.each(fn)
  local busted = require("busted") -- describe & co. are not globals of a module
  local describe, before_each, after_each = busted.describe, busted.before_each, busted.after_each
  for _, name in ipairs(M.names()) do
    describe(name, function()
      local current
      local b = setmetatable({ name = name }, {
        __index = function(_, k)
          assert(current, "the database of '" .. name .. "' is only there inside a test")
          return current[k]
        end,
      })
      before_each(function() current = M.open(name) end)
      after_each(function()
        if current then current.drop() end
        current = nil
      end)
      fn(b)
    end)
  end
end

return M
