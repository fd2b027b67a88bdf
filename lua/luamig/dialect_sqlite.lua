-- luamig.dialect_sqlite: what SQLite renders differently from the shared rules in luamig.ddl.
-- Each field mirrors what SQLAlchemy 1.4's SQLite dialect (and Alembic 1.8's SQLite impl) emits.

local function words(s)
  local set = {}
  for w in s:gmatch("%S+") do set[w] = true end
  return set
end

return {
  name = "sqlite",
  title = "SQLite",

  -- sqlalchemy.dialects.sqlite.base.SQLiteIdentifierPreparer.reserved_words
  reserved = words [[
    add after all alter analyze and as asc attach autoincrement before begin between by cascade case cast
    check collate column commit conflict constraint create cross current_date current_time current_timestamp
    database default deferrable deferred delete desc detach distinct drop each else end escape except
    exclusive exists explain fail false for foreign from full glob group having if ignore immediate in index
    indexed initially inner insert instead intersect into is isnull join key left like limit match natural
    not notnull null of offset on or order outer plan pragma primary query raise references reindex rename
    replace restrict right rollback row select set table temp temporary then to transaction trigger true
    union unique update using vacuum values view virtual when where
  ]],

  literal_true = "1",
  literal_false = "0",

  -- Type names that differ from the generic ones (luamig.ddl `generic_types`).
  types = {
    Float = "FLOAT", FLOAT = "FLOAT",   -- SQLite ignores a float precision
    Interval = "DATETIME",              -- stored as a datetime offset from the epoch, as SQLAlchemy does
  },

  -- SQLite evaluates an expression default only inside parentheses: DEFAULT (CURRENT_TIMESTAMP).
  paren_default_expressions = true,
  func_names = { now = "CURRENT_TIMESTAMP" },

  native_boolean = false,
  native_enum = false,
  supports_comments = false,
  computed_always_stored = false, -- without persisted, SQLite makes a VIRTUAL column
  supports_virtual_computed = true,
  not_null_before_computed = true,
  -- SQLite cannot ALTER constraints or most column properties: those need batch mode (move and copy).
  alter_constraints = false,
  alter_column_properties = false,
  -- ADD COLUMN may carry REFERENCES and CHECK inline, which is the only way SQLite adds them.
  inline_add_column_constraints = true,
  index_where_option = "sqlite_where",
  -- CREATE INDEX schema.ix ON t (...): the schema qualifies the index, not the table.
  index_schema_on_name = true,
  max_identifier_length = nil,
}
