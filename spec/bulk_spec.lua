-- The bulk paths on both backends: op.bulk_insert's loader (COPY on
-- PostgreSQL, one prepared INSERT on SQLite) and executemany
-- (stmt:execute_many, conn:execute with an array of rows; a pipeline on
-- PostgreSQL). Values must arrive exactly, rows in their order, and an error
-- must name the row and leave nothing behind.
local cli = require("spec.helpers.cli")
local backend = require("spec.helpers.backend")

local create = [[
  local t = op.create_table("t",
    sa.Column("seq", sa.Integer, { primary_key = true, autoincrement = true }),
    sa.Column("id", sa.Integer),
    sa.Column("name", sa.Text, { nullable = false, server_default = "none" }),
    sa.Column("flag", sa.Boolean),
    sa.Column("f", sa.Float),
    sa.Column("big", sa.BigInteger))
]]

-- Text COPY must escape: tab, newline, carriage return, backslash, and a
-- backslash-N that is a string, not NULL.
local awkward = { "a\tb", "line1\nline2", "cr\rlf", [[back\slash]], [[\N]], "", "é ü 中", "x" }
-- Floats must come back as the same double (COPY sends them as text): Lua's value, then SQL's.
local floats = {
  { "0.1", "0.1" }, { "1/3", "CAST(1 AS DOUBLE PRECISION) / 3" }, { "1e300", "1e300" }, { "-0.5", "-0.5" },
  { "-1.25", "-1.25" }, { "123.45", "123.45" }, { "1e-7", "1e-7" }, { "2^40 + 0.25", "1099511627776.25" },
}

-- Migration text that loads rows id = 1..n into t from an iterator, each name the Lua expression
-- `name` of i; `before` runs first in each call.
local function load_rows(n, name, before)
  return ([[
        local i = 0
        op.bulk_insert(t, function()
          i = i + 1
          %s
          return i <= %d and { id = i, name = %s } or nil
        end)
]]):format(before or "", n, name)
end

-- Runs `upgrade head`, which must fail with stderr matching pattern and leave no table behind.
local function fails_leaving_nothing(b, dir, pattern)
  local r = b.run(dir, { "upgrade", "head" })
  assert.are.equal(1, r.code)
  assert.matches(pattern, r.stderr)
  assert.are.same({}, b.tables())
end

backend.each(function(b)
  describe(b.name, function()
    local dir
    before_each(function() dir = cli.project() end)
    after_each(function() cli.rmtree(dir) end)

    it("bulk_insert stores awkward values exactly and keeps the order of mixed rows", function()
      local lines = {}
      for i, s in ipairs(awkward) do
        lines[#lines + 1] = ("{ id = %d, name = %q, flag = %s, f = %s, big = %s },"):format(
          i, s, i % 2 == 0 and "true" or "false", floats[i][1],
          i == 1 and "9007199254740993LL" or "sa.null")
      end
      cli.revision(dir, "001_load", { revision = "a1", upgrade = create .. [[
        local rows = {
          ]] .. table.concat(lines, "\n          ") .. [[

          { id = 100 },                                  -- another column set: name gets its default
          { id = 101, name = sa.func.upper("shout") },   -- an expression: inserted on its own
          { id = 102, name = "back to plain" },
        }
        op.bulk_insert(t, rows)]] })
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      local got = b.query("SELECT id, name FROM t ORDER BY seq")
      local want_ids = {}
      for i = 1, #awkward do want_ids[i] = i end
      for _, id in ipairs({ 100, 101, 102 }) do want_ids[#want_ids + 1] = id end
      local ids = {}
      for i, row in ipairs(got) do ids[i] = row.id end
      assert.are.same(want_ids, ids)
      for i, s in ipairs(awkward) do
        assert.are.same({ { n = 1 } }, b.query("SELECT count(*) AS n FROM t WHERE id = ? AND name = ?", { i, s }),
          "row " .. i .. " holds " .. got[i].name:gsub("\n", "\\n"))
      end
      assert.are.same({ { name = "none" } }, b.query("SELECT name FROM t WHERE id = 100"))
      assert.are.same({ { name = "SHOUT" } }, b.query("SELECT name FROM t WHERE id = 101"))
      for i, f in ipairs(floats) do
        assert.are.same({ { n = 1 } }, b.query("SELECT count(*) AS n FROM t WHERE id = ? AND f = " .. f[2], { i }), f[1])
      end
      assert.are.same({ { n = 1 } },
        b.query("SELECT count(*) AS n FROM t WHERE big = 9007199254740993 AND id = 1 AND flag = " ..
          b.pick { sqlite = "0", postgresql = "false" }))
      assert.are.same({ { n = #awkward - 1 } }, b.query("SELECT count(*) AS n FROM t WHERE big IS NULL AND id <= 8"))
    end)

    it("bulk_insert: a row the database refuses is named, and nothing is kept", function()
      cli.revision(dir, "001_load", { revision = "a1",
        upgrade = create .. load_rows(5000, [[i == 4321 and sa.null or ("n" .. i)]]) })
      fails_leaving_nothing(b, dir, "001_load.lua:%d+: op.bulk_insert: row 4321: [^\n]*[Nn][Uu][Ll][Ll]")
    end)

    it("bulk_insert: rows whose keys alternate keep their numbers in errors", function()
      cli.revision(dir, "001_load", { revision = "a1", upgrade = create .. [[
        op.bulk_insert(t, { { id = 1, name = "a" }, { id = 2 }, { id = 3, name = "c" }, { id = 4, name = sa.null } })]] })
      fails_leaving_nothing(b, dir, "001_load.lua:%d+: op.bulk_insert: row 4: [^\n]*[Nn][Uu][Ll][Ll]")
    end)

    it("bulk_insert: an error in the row iterator half way leaves nothing and the next run works", function()
      cli.revision(dir, "001_load", { revision = "a1", upgrade = create .. load_rows(4000, [["n" .. i]],
        [[if i == 3000 and not os.getenv("LOAD_ALL") then error("generator broke at " .. i) end]]) })
      fails_leaving_nothing(b, dir, "001_load.lua:%d+: generator broke at 3000")
      local r = b.run(dir, { "upgrade", "head" }, { env = { LOAD_ALL = "1" } })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({ { n = 4000 } }, b.query("SELECT count(*) AS n FROM t"))
    end)

    it("bulk_insert from an iterator that reads the same connection", function()
      cli.revision(dir, "001_load", { revision = "a1", upgrade = create .. [[
        op.bulk_insert(t, function() return nil end)
        op.execute("INSERT INTO t (id, name) SELECT g, 'n' || g FROM (" .. ]] ..
        b.pick { sqlite = "\"WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 3000) SELECT g FROM s\"",
                 postgresql = "\"SELECT generate_series(1, 3000) AS g\"" } .. [[ .. ") x")
        local copy = op.create_table("copy", sa.Column("id", sa.Integer), sa.Column("name", sa.Text))
        local rows = op.get_bind():rows("SELECT id, name FROM t ORDER BY id")
        op.bulk_insert(copy, function()
          local row = rows()
          return row and { id = row.id * 10, name = row.name:upper() }
        end)]] })
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({ { n = 3000, top = 30000 } }, b.query("SELECT count(*) AS n, max(id) AS top FROM copy"))
      assert.are.same({ { name = "N77" } }, b.query("SELECT name FROM copy WHERE id = 770"))
    end)

    it("bulk_insert: a query started during the load sees every row handed over before it", function()
      -- SQLite writes the rows on a thread of its own while the iterator makes the next ones; a
      -- statement that starts waits for it (PostgreSQL ends the COPY first). A value larger than
      -- the writer's chunk of rows goes through whole.
      cli.revision(dir, "001_load", { revision = "a1", upgrade = create .. [[
        local conn, i, seen = op.get_bind(), 0, {}
        local big = string.rep("0123456789", 40000)
        op.bulk_insert(t, function()
          i = i + 1
          if i % 2500 == 1 then seen[#seen + 1] = conn:scalar("SELECT count(*) FROM t") end
          if i > 10000 then return nil end
          return { id = i, name = i == 5000 and big or ("n" .. i) }
        end)
        assert(table.concat(seen, ",") == "0,2500,5000,7500,10000", table.concat(seen, ","))]] })
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({ { n = 10000, len = 400000 } },
        b.query("SELECT count(*) AS n, max(length(name)) AS len FROM t"))
      assert.are.same({ { n = 1 } }, b.query("SELECT count(*) AS n FROM t WHERE id = 5000 AND name = ?",
        { string.rep("0123456789", 40000) }))
    end)

    it("bulk_update: a refused row among rows read from the same connection is named, nothing kept", function()
      cli.revision(dir, "001_load", { revision = "a1", upgrade = create .. load_rows(20000, [["n" .. i]]) .. [[
        local rows = op.get_bind():rows("SELECT seq, id FROM t ORDER BY seq")
        op.bulk_update(t, function()
          local row = rows()
          return row and { seq = row.seq, name = row.id == 12345 and sa.null or ("m" .. row.id) }
        end)]] })
      fails_leaving_nothing(b, dir, "001_load.lua:%d+: op.bulk_update: " ..
        b.pick { sqlite = "row 12345", postgresql = "rows 1 to 20000" } .. ": [^\n]*[Nn][Uu][Ll][Ll]")
    end)

    it("bulk_update rewrites rows read from the same connection, by key, the later row winning", function()
      cli.revision(dir, "001_load", { revision = "a1",
        upgrade = create .. load_rows(25000, [["User" .. i .. "@Mail" .. (i % 7) .. ".ORG"]]) .. [[
        op.create_index("ix_t_id", "t", { "id" }, { unique = true })
        local keyed = sa.table("t", sa.column("id", sa.Integer), sa.column("name", sa.Text), sa.column("f", sa.Float),
          sa.column("flag", sa.Boolean))
        local rows = op.get_bind():rows("SELECT id, name FROM t ORDER BY id")
        op.bulk_update(keyed, function()
          local row = rows()
          if not row then return nil end
          return { id = row.id, name = row.name:lower(), f = row.id / 4 }
        end)
        op.bulk_update(keyed, {
          { id = 1, name = "first" }, { id = 1, name = "second" },           -- the later wins
          { id = 2, flag = true }, { id = 3, name = sa.func.upper("x") },    -- other columns; an expression
          { id = 999999, name = "nobody" },
        })]] })
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({ { n = 25000 - 2 } },
        b.query("SELECT count(*) AS n FROM t WHERE name = lower(name) AND name LIKE 'user%@mail_.org' AND f = id / 4.0"))
      assert.are.same({ { id = 1, name = "second" }, { id = 2, name = "user2@mail2.org" }, { id = 3, name = "X" } },
        b.query("SELECT id, name FROM t WHERE id <= 3 ORDER BY id"))
      assert.are.same({ { n = 1 } }, b.query("SELECT count(*) AS n FROM t WHERE flag = " .. b.pick { sqlite = "1", postgresql = "true" }))
    end)

    it("bulk_update: a value the database refuses fails the revision with nothing kept", function()
      cli.revision(dir, "001_load", { revision = "a1", upgrade = create .. [[
        op.bulk_insert(t, { { id = 1, name = "a" }, { id = 2, name = "b" }, { id = 3, name = "c" } })
        op.bulk_update(t, { { seq = 1, name = "x" }, { seq = 2, name = sa.null } })]] })
      fails_leaving_nothing(b, dir, "001_load.lua:%d+: op.bulk_update: rows? [%d to ]+: [^\n]*[Nn][Uu][Ll][Ll]")
      cli.revision(dir, "001_load", { revision = "a1", upgrade = create .. [[
        op.bulk_update(t, { { name = "no key" } })]] })
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(1, r.code)
      assert.matches("001_load.lua:%d+: op.bulk_update: row 1: the key column 'seq' has no value", r.stderr)
    end)

    it("stmt:execute_many and conn:execute with an array of rows run once per row", function()
      cli.revision(dir, "001_load", { revision = "a1", upgrade = create .. [[
        op.bulk_insert(t, { { id = 1, name = "a" }, { id = 2, name = "b" }, { id = 3, name = "c" } })
        local conn = op.get_bind()
        local ins = conn:prepare("INSERT INTO t (id, name, big) VALUES (?, ?, ?)")
        local rows = {}
        for i = 10, 2509 do rows[#rows + 1] = { i, "m" .. i, i % 2 == 0 and sa.null or i } end
        assert(ins:execute_many(rows) == 2500)
        ins:close()
        local changed = conn:execute("UPDATE t SET name = :name WHERE id = :id",
          { { id = 1, name = "one" }, { id = 2, name = "two" }, { id = 99999, name = "nobody" } })
        assert(changed == 2, "changed " .. tostring(changed))
        local named = conn:prepare(sa.text("UPDATE t SET flag = :flag WHERE id = :id"))
        assert(named:execute_many({ { id = 3, flag = true } }) == 1)
        named:close()
        assert(conn:execute("DELETE FROM t WHERE id = ?", { { 2508 }, { 2509 } }) == 2)]] })
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({ { n = 2499, nulls = 1250 } },
        b.query("SELECT count(*) AS n, count(*) - count(big) AS nulls FROM t WHERE id >= 10 OR id = 3"))
      assert.are.same({ { id = 1, name = "one" }, { id = 2, name = "two" } },
        b.query("SELECT id, name FROM t WHERE id < 3 ORDER BY id"))
      assert.are.same({ { n = 1 } }, b.query("SELECT count(*) AS n FROM t WHERE id = 3 AND flag = " ..
        b.pick { sqlite = "1", postgresql = "true" }))
    end)

    it("execute_many: the failing row is named, rows before it are not kept", function()
      cli.revision(dir, "001_load", { revision = "a1", upgrade = create .. [[
        conn_rows = {}
        for i = 1, 3000 do conn_rows[i] = { i, "v" .. i } end
        conn_rows[2345][2] = sa.null
        local ins = op.get_bind():prepare("INSERT INTO t (id, name) VALUES (?, ?)")
        ins:execute_many(conn_rows)]] })
      fails_leaving_nothing(b, dir, "001_load.lua:%d+: row 2345 of 3000: [^\n]*[Nn][Uu][Ll][Ll]")
    end)

    it("execute_many refuses rows of different lengths and values it cannot bind", function()
      cli.revision(dir, "001_load", { revision = "a1", upgrade = create .. [[
        local ins = op.get_bind():prepare("INSERT INTO t (id, name) VALUES (?, ?)")
        ins:execute_many({ { 1, "a" }, { 2 } })]] })
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(1, r.code)
      assert.matches("001_load.lua:%d+: row 2 has 1 values; row 1 has 2", r.stderr)
      cli.revision(dir, "001_load", { revision = "a1", upgrade = create .. [[
        local ins = op.get_bind():prepare("INSERT INTO t (id, name) VALUES (?, ?)")
        ins:execute_many({ { 1, "a" }, { 2, {} } })]] })
      fails_leaving_nothing(b, dir, "001_load.lua:%d+: row 2: value 2 is a table")
    end)
  end)
end)
