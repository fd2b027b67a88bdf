-- luamig.metadata: the declared schema of models.lua, in SQLAlchemy Core's shape.
--
--   local md = sa.MetaData({ naming_convention = { ix = "ix_%(column_0_label)s" } })
--   sa.Table("users", md, sa.Column("id", sa.Integer, { primary_key = true }), sa.Index(...), ...)
--   return md
--
-- sa.MetaData and sa.Table live here rather than in luamig.sa: they only make sense for models.lua,
-- which metadata.load runs with an `sa` whose MetaData/Table are these and whose other names are
-- luamig.sa's. A Table is the same object sa.table/op.create_table build (sa._make_table), with
-- .constraints, .indexes and .opts, so luamig.ddl can render it as it is.
-- Errors name the constructor and the argument; metadata.load puts models.lua:line in front.

local util = require("luamig.util")
local sa = require("luamig.sa")

local kind = sa.kind
local format = string.format

local metadata = {}

local fail = util.fail

local function is_plain(v)
  return type(v) == "table" and kind(v) == nil
end

local MetaDataMT = { __kind = "MetaData" }
MetaDataMT.__index = {}
MetaDataMT.__tostring = function(md) return format("sa.MetaData(%d tables)", #md.tables) end

local metadata_options = { naming_convention = true, schema = true, info = true }

-- sa.MetaData({ naming_convention, schema })
function metadata.MetaData(opts)
  local where = "sa.MetaData"
  opts = opts or {}
  if not is_plain(opts) then fail("%s: argument 1 must be an options table", where) end
  for k in pairs(opts) do
    if not metadata_options[k] then fail("%s: unknown option '%s'", where, tostring(k)) end
  end
  local nc = opts.naming_convention
  if nc ~= nil then
    if not is_plain(nc) then fail("%s: option 'naming_convention' must be a table of key = template", where) end
    for k, v in pairs(nc) do
      if type(k) ~= "string" or type(v) ~= "string" then
        fail("%s: naming_convention entries must be strings (key = \"template\")", where)
      end
    end
  end
  return setmetatable({ naming_convention = nc, schema = opts.schema, tables = {}, by_name = {} }, MetaDataMT)
end

-- md:table(name) -> the Table or nil
function MetaDataMT.__index.table(md, name)
  return md.by_name[name]
end

local table_options = { comment = true, schema = true, sqlite_autoincrement = true, info = true,
                        prefixes = true, postgresql_partition_by = true }

local function element_columns(ix)
  local names = {}
  for _, e in ipairs(ix.expressions) do
    if type(e) == "string" then names[#names + 1] = e
    elseif kind(e) == "Column" or kind(e) == "column" then names[#names + 1] = e.name end
  end
  return names
end

-- sa.Table(name, md, columns / constraints / indexes..., { comment, schema, sqlite_autoincrement })
function metadata.Table(name, md, ...)
  local where = "sa.Table"
  if type(name) ~= "string" or name == "" then fail("%s: argument 1 must be the table name", where) end
  if kind(md) ~= "MetaData" then fail("%s: argument 2 of table '%s' must be a sa.MetaData", where, name) end
  local columns, constraints, indexes, opts, _, bad = sa._table_items(...)
  if bad then
    fail("%s: table '%s': argument %d must be a sa.Column, a constraint or a sa.Index", where, name, bad + 2)
  end
  opts = opts or {}
  for key in pairs(opts) do
    if not table_options[key] then fail("%s: table '%s': unknown option '%s'", where, name, tostring(key)) end
  end
  if #columns == 0 then fail("%s: table '%s' needs at least one sa.Column", where, name) end
  if md.by_name[name] then fail("%s: table '%s' is defined twice", where, name) end
  if opts.comment ~= nil and opts.comment ~= sa.null and type(opts.comment) ~= "string" then
    fail("%s: table '%s': option 'comment' must be a string", where, name)
  end
  local t = sa._make_table(where .. ": table '" .. name .. "'", name, opts.schema or md.schema, columns)
  t.constraints, t.indexes, t.opts, t.metadata = constraints, indexes, opts, md
  t.comment = opts.comment

  local function check(what, names)
    for _, c in ipairs(names) do
      if not t.c[c] then
        fail("%s: table '%s': %s names column '%s', which the table does not have", where, name, what, c)
      end
    end
  end
  local pks = 0
  for _, c in ipairs(constraints) do
    local k = kind(c)
    if k == "PrimaryKeyConstraint" then
      pks = pks + 1
      if pks > 1 then fail("%s: table '%s' has more than one sa.PrimaryKeyConstraint", where, name) end
    end
    if c.columns then check("a " .. k, c.columns) end
  end
  for _, ix in ipairs(indexes) do
    check(ix.name and ("index '" .. tostring(ix.name) .. "'") or "an index", element_columns(ix))
  end
  md.tables[#md.tables + 1] = t
  md.by_name[name] = t
  return t
end

metadata.element_columns = element_columns

-- The environment models.lua runs in: `sa` is luamig.sa plus MetaData and Table; there is no `op`;
-- the standard library is visible.
function metadata.environment()
  local proxy = setmetatable({ MetaData = metadata.MetaData, Table = metadata.Table }, { __index = sa })
  return setmetatable({ sa = proxy }, {
    __index = function(_, k)
      if k == "op" then return nil end
      return _G[k]
    end,
  })
end

-- The message of an error raised while models.lua runs, positioned at its line (as the host does
-- for migrations: the innermost frame of the models chunk).
local function positioned(chunkname, path)
  return function(msg)
    if type(msg) ~= "string" then
      local mt = getmetatable(msg)
      msg = (mt and mt.__tostring) and tostring(msg) or ("(error object is a " .. type(msg) .. " value)")
    end
    if msg:sub(1, #path + 1) == path .. ":" then return msg end
    for level = 2, 100 do
      local info = debug.getinfo(level, "Sl")
      if not info then break end
      if info.source == chunkname and (info.currentline or 0) > 0 then
        return format("%s:%d: %s", path, info.currentline, msg)
      end
    end
    return path .. ": " .. msg
  end
end

-- metadata.load(path) -> md: runs models.lua and returns the sa.MetaData it returns.
function metadata.load(path)
  local f = io.open(path, "rb")
  if not f then
    fail("no models file '%s': autogenerate and check compare it with the database", path)
  end
  f:close()
  local chunk, err = loadfile(path)
  if not chunk then error(err, 0) end
  setfenv(chunk, metadata.environment())
  local ok, md = xpcall(chunk, positioned("@" .. path, path))
  if not ok then error(md, 0) end
  if kind(md) ~= "MetaData" then
    fail("%s: models.lua must return its sa.MetaData (end it with `return md`), got %s", path,
         md == nil and "nothing" or ("a " .. (kind(md) or type(md))))
  end
  return md
end

return metadata
