-- Data migrations with real logic on real tables of 100k+ rows, on both
-- backends: bulk_insert from an iterator, a conn:rows loop that writes as it
-- reads (a server-side cursor on PostgreSQL), each_batch, prepared
-- statements, sa.table expressions, and memory that stays flat.
local cli = require("spec.helpers.cli")
local backend = require("spec.helpers.backend")

local ROWS = 100000

local create_and_load = [[
  op.create_table("users",
    sa.Column("id", sa.Integer, { primary_key = true }),
    sa.Column("email", sa.String(200), { nullable = false }),
    sa.Column("domain", sa.String(200)),
    sa.Column("status", sa.String(20)),
    sa.Column("bio", sa.Text))
  local users = sa.table("users", sa.column("id", sa.Integer), sa.column("email", sa.String),
    sa.column("status", sa.String), sa.column("bio", sa.Text))
  local i = 0
  op.bulk_insert(users, function()
    i = i + 1
    if i > ROWS then return nil end
    return { id = i, email = ("User%d@Mail%d.EXAMPLE"):format(i, i % 5),
             status = i % 3 == 0 and "active" or nil, bio = ("x"):rep(200) }
  end)]]

-- Peak memory of this process so far, in KiB (Linux).
local peak_kib = [[
  local function peak_kib()
    local f = io.open("/proc/self/status")
    local kib = f:read("*a"):match("VmHWM:%s*(%d+)")
    f:close()
    return tonumber(kib)
  end]]

backend.each(function(b)
  describe(b.name, function()
    local dir
    before_each(function()
      dir = cli.project()
      cli.revision(dir, "001_load", { revision = "a1", upgrade = "local ROWS = " .. ROWS .. "\n" .. create_and_load })
    end)
    after_each(function() cli.rmtree(dir) end)

    it("bulk_insert streams rows from an iterator, with a progress line when asked", function()
      local r = b.run(dir, { "upgrade", "head" }, { env = { LUAMIG_PROGRESS = "always" } })
      assert.are.equal(0, r.code, r.stderr)
      assert.matches("luamig: op.bulk_insert users: " .. ROWS .. " rows\n", r.stderr, 1, true)
      assert.are.same({ { n = ROWS, actives = math.floor(ROWS / 3) } },
        b.query("SELECT count(*) AS n, count(status) AS actives FROM users"))
      assert.are.same({ { email = "User77@Mail2.EXAMPLE", status = nil } },
        b.query("SELECT email, status FROM users WHERE id = 77"))
    end)

    it("a conn:rows loop writes as it reads, with memory flat", function()
      cli.revision(dir, "002_domains", { revision = "b2", down_revision = "a1", upgrade = peak_kib .. [[
        local conn = op.get_bind()
        local before = peak_kib()
        local seen = 0
        for row in conn:rows("SELECT id, email, bio FROM users WHERE domain IS NULL ORDER BY id") do
          local email = row.email:lower()
          conn:execute("UPDATE users SET email = ?, domain = ? WHERE id = ?", { email, email:match("@(.+)$"), row.id })
          seen = seen + 1
        end
        conn:execute("CREATE TABLE stats (seen INTEGER, grew_kib INTEGER)")
        conn:execute("INSERT INTO stats VALUES (?, ?)", { seen, peak_kib() - before })]] })
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      local stats = b.query("SELECT seen, grew_kib FROM stats")[1]
      assert.are.equal(ROWS, stats.seen)
      if not os.getenv("ASAN_OPTIONS") then -- ASan's quarantine holds freed memory
        -- holding every row (with its 200-byte bio) would take well over 50 MiB
        assert.is_true(stats.grew_kib < 20 * 1024, "peak memory grew by " .. stats.grew_kib .. " KiB")
      end
      assert.are.same({ { n = ROWS } }, b.query("SELECT count(*) AS n FROM users WHERE email = lower(email) AND domain LIKE 'mail_.example'"))
      assert.are.same({ { domain = "mail0.example", n = ROWS / 5 } },
        b.query("SELECT domain, count(*) AS n FROM users WHERE domain = 'mail0.example' GROUP BY domain"))
    end)

    it("each_batch, prepare, first, scalar and sa.table expressions", function()
      cli.revision(dir, "002_tools", { revision = "b2", down_revision = "a1", upgrade = [[
        local conn = op.get_bind()
        local mark = conn:prepare("UPDATE users SET domain = ? WHERE id = ?")
        local batches = {}
        local total = conn:each_batch("users", { size = 20000, columns = "id, email", where = "id % ? = 0", params = { 2 } },
          function(rows)
            batches[#batches + 1] = #rows
            for _, row in ipairs(rows) do mark:execute({ "even", row.id }) end
          end)
        mark:close()
        assert(total == ]] .. ROWS / 2 .. [[, "each_batch saw " .. total)
        assert(#batches == 3 and batches[3] == 10000, "batches: " .. table.concat(batches, ","))
        assert(conn:scalar("SELECT count(*) FROM users WHERE domain = ?", { "even" }) == total)
        assert(conn:first("SELECT email FROM users WHERE id = ?", { 4 }).email == "User4@Mail4.EXAMPLE")
        assert(conn:first("SELECT email FROM users WHERE id = ?", { -1 }) == nil)
        local odd = 0
        local q = conn:prepare("SELECT id FROM users WHERE id <= ? AND domain IS NULL")
        for _ in q:rows({ 100 }) do odd = odd + 1 end
        q:close()
        assert(odd == 50, "odd rows: " .. odd)

        local users = sa.table("users", sa.column("id", sa.Integer), sa.column("status", sa.String))
        op.execute(users:update():where(users.c.status:is_(nil)):values({ status = "pending" }))
        op.execute(users:delete():where(sa.and_(users.c.id:gt(]] .. ROWS - 10 .. [[), users.c.status:eq("pending"))))]] })
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({ { n = 0 } }, b.query("SELECT count(*) AS n FROM users WHERE status IS NULL"))
      -- of ids ROWS-9..ROWS, the ones not divisible by 3 were pending and are gone
      local deleted = 0
      for id = ROWS - 9, ROWS do if id % 3 ~= 0 then deleted = deleted + 1 end end
      assert.are.same({ { n = ROWS - deleted } }, b.query("SELECT count(*) AS n FROM users"))
    end)

    it("a failure half way through a data migration keeps nothing of it", function()
      cli.revision(dir, "002_fails", { revision = "b2", down_revision = "a1", upgrade = [[
        local conn = op.get_bind()
        for row in conn:rows("SELECT id FROM users ORDER BY id") do
          conn:execute("UPDATE users SET status = 'touched' WHERE id = ?", { row.id })
          if row.id == 60000 then error("stopped at row " .. row.id) end
        end]] })
      local r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(1, r.code)
      assert.matches("luamig: error: migrations/versions/002_fails.lua:8: stopped at row 60000 %(upgrade b2%)\n$", r.stderr)
      assert.are.same({ { n = 0 } }, b.query("SELECT count(*) AS n FROM users WHERE status = 'touched'"))
      assert.are.same({ "a1" }, b.versions())
    end)
  end)
end)
