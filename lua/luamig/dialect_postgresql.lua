-- luamig.dialect_postgresql: what PostgreSQL renders differently from the shared rules in luamig.ddl.
-- Each field mirrors what SQLAlchemy 1.4's PostgreSQL dialect (and Alembic 1.8's impl) emits.

local function words(s)
  local set = {}
  for w in s:gmatch("%S+") do set[w] = true end
  return set
end

local function with_tz(base)
  return function(t)
    return base .. (t.timezone and " WITH TIME ZONE" or " WITHOUT TIME ZONE")
  end
end

return {
  name = "postgresql",
  title = "PostgreSQL",

  -- sqlalchemy.dialects.postgresql.base.RESERVED_WORDS
  reserved = words [[
    all analyse analyze and any array as asc asymmetric authorization between binary both case cast check
    collate column constraint create cross current_catalog current_date current_role current_schema
    current_time current_timestamp current_user default deferrable desc distinct do else end except false
    fetch for foreign freeze from full grant group having ilike in initially inner intersect into is isnull
    join leading left like limit localtime localtimestamp natural new not notnull null of off offset old on
    only or order outer over overlaps placing primary references returning right select session_user
    similar some symmetric table then to trailing true union unique user using variadic verbose when where
    window with
  ]],

  literal_true = "true",
  literal_false = "false",

  types = {
    DateTime = with_tz("TIMESTAMP"),
    TIMESTAMP = with_tz("TIMESTAMP"),
    -- SQLAlchemy renders DATETIME and BLOB verbatim, which PostgreSQL rejects; use what they mean.
    DATETIME = with_tz("TIMESTAMP"),
    BLOB = "BYTEA",
    Time = with_tz("TIME"),
    TIME = with_tz("TIME"),
    LargeBinary = "BYTEA",
    Uuid = "UUID",
  },

  -- An autoincrementing integer primary key is a SERIAL pseudo-type (SQLAlchemy 1.4).
  serial_types = { BigInteger = "BIGSERIAL", BIGINT = "BIGSERIAL", SmallInteger = "SMALLSERIAL",
                   SMALLINT = "SMALLSERIAL", default = "SERIAL" },

  paren_default_expressions = false,
  func_names = {},

  native_boolean = true,
  native_enum = true,
  supports_comments = true,
  computed_always_stored = true, -- GENERATED ALWAYS AS (...) STORED even without persisted = true
  supports_virtual_computed = false,
  not_null_before_computed = false,
  alter_constraints = true,
  alter_column_properties = true,
  inline_add_column_constraints = false,
  index_where_option = "postgresql_where",
  index_schema_on_name = false,
  max_identifier_length = 63,
}
