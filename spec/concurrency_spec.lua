-- Concurrent runners on one database, on every backend: the migration lock
-- serialises them so each revision runs exactly once, and a runner that
-- cannot get the lock in lock_timeout seconds fails naming the holder.
local cli = require("spec.helpers.cli")
local backend = require("spec.helpers.backend")

local REVISIONS = 10
local RUNNERS = 8

local function rev_id(i) return ("rev%02d"):format(i) end

-- REVISIONS revisions; each creates a table and an index, logs its id in
-- runlog and keeps the lock a little while (20 ms of work).
local function write_chain(dir)
  for i = 1, REVISIONS do
    local id = rev_id(i)
    local create_log = i == 1 and [[
      op.create_table("runlog", sa.Column("seq", sa.Integer, { primary_key = true }),
        sa.Column("rev", sa.String(32), { nullable = false }))
    ]] or ""
    cli.revision(dir, ("%02d_step"):format(i), {
      revision = id, down_revision = i > 1 and rev_id(i - 1) or nil, message = "step " .. i,
      upgrade = create_log .. ([[
      op.create_table("t_%s", sa.Column("id", sa.Integer, { primary_key = true }), sa.Column("v", sa.String(20)))
      op.create_index("ix_t_%s_v", "t_%s", { "v" })
      op.execute("INSERT INTO runlog (rev) VALUES (?)", { %q })
      local until_ = os.clock() + 0.02
      while os.clock() < until_ do end]]):format(id, id, id, id),
    })
  end
end

local function full_listing()
  local lines = {}
  for i = 1, REVISIONS do
    lines[i] = ("Running upgrade %s -> %s, step %d\n"):format(i > 1 and rev_id(i - 1) or "<base>", rev_id(i), i)
  end
  return table.concat(lines)
end

backend.each(function(b)
  describe("concurrent runners", function()
    local dir
    before_each(function()
      dir = cli.project()
      write_chain(dir)
    end)
    after_each(function() cli.rmtree(dir) end)

    for _, per_migration in ipairs({ true, false }) do
      it(("%d at once apply each revision exactly once (transaction_per_migration = %s)"):format(RUNNERS, tostring(per_migration)), function()
        cli.write(dir .. "/luamig.lua", ("return { transaction_per_migration = %s }\n"):format(tostring(per_migration)))
        local runs = {}
        for i = 1, RUNNERS do runs[i] = { dir, { "upgrade", "head", "--url", b.url } } end
        local results = cli.run_all(runs)

        local applied_by, idle = 0, 0
        for i, r in ipairs(results) do
          assert.are.equal(0, r.code, "runner " .. i .. ": " .. r.stderr)
          assert.are.equal("", r.stdout)
          if r.stderr == "" then
            idle = idle + 1
          else
            -- one runner did all the work, in order; the others found the database at head
            assert.are.equal(full_listing(), r.stderr)
            applied_by = applied_by + 1
          end
        end
        assert.are.equal(1, applied_by)
        assert.are.equal(RUNNERS - 1, idle)

        local log = b.query("SELECT rev FROM runlog ORDER BY seq")
        assert.are.equal(REVISIONS, #log)
        for i = 1, REVISIONS do assert.are.equal(rev_id(i), log[i].rev) end
        for _, row in ipairs(b.query("SELECT rev, COUNT(*) AS n FROM runlog GROUP BY rev")) do
          assert.are.equal(1, row.n, row.rev)
        end
        assert.are.same({ rev_id(REVISIONS) }, b.versions())
        local expected_tables = { "luamig_version", "runlog" }
        for i = 1, REVISIONS do expected_tables[#expected_tables + 1] = "t_" .. rev_id(i) end
        table.sort(expected_tables)
        assert.are.same(expected_tables, b.tables())
        for i = 1, REVISIONS do
          local t = "t_" .. rev_id(i)
          assert.are.same({ { name = "ix_" .. t .. "_v", unique = false, columns = { "v" } } }, b.indexes(t))
        end
        assert.are.equal(rev_id(REVISIONS) .. " (head)\n", b.run(dir, { "current" }).stdout)
      end)
    end
  end)

  describe("lock_timeout", function()
    local dir
    before_each(function()
      dir = cli.project()
      cli.write(dir .. "/luamig.lua", "return { lock_timeout = 0.5 }\n")
      cli.revision(dir, "01_slow", { revision = "slow01", message = "slow", upgrade = [[
        op.create_table("slow_done", sa.Column("id", sa.Integer, { primary_key = true }))
        os.execute("sleep 3")]] })
    end)
    after_each(function() cli.rmtree(dir) end)

    it("expires with one line naming the holder, and the holder finishes", function()
      local holder = cli.spawn(dir, { "upgrade", "head", "--url", b.url })
      finally(function() holder:close() end)
      assert.is_true(holder:await_stderr("Running upgrade <base> -> slow01, slow\n", 30), holder:stderr())

      -- who holds the lock, as the database or the OS knows it
      local expected
      if b.name == "sqlite" then
        expected = ("luamig: error: timed out after 0.5 s waiting for the migration lock '%s.lock': held by process %d\n")
          :format(b.path, holder.pid)
      else
        local who = b.query([[
          SELECT pid, usename, COALESCE(host(client_addr), 'local') AS client,
                 to_char(backend_start, 'YYYY-MM-DD HH24:MI:SS') AS started
          FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'luamig']])
        assert.are.equal(1, #who)
        expected = ("luamig: error: timed out after 0.5 s waiting for the migration lock '\"luamig_version\"': " ..
          "held by server process %d (application 'luamig', user '%s', client %s, connected %s)\n")
          :format(who[1].pid, who[1].usename, who[1].client, who[1].started)
      end

      local started = cli.now()
      local r = b.run(dir, { "upgrade", "head" })
      local waited = cli.now() - started
      assert.are.equal(1, r.code)
      assert.are.equal("", r.stdout)
      assert.are.equal(expected, r.stderr)
      assert.matches("^luamig: error: timed out after 0%.5 s waiting for the migration lock", r.stderr)
      assert.is_true(waited >= 0.5, ("gave up after %.3f s"):format(waited))
      assert.is_true(holder:running(), "the holder ended before the waiter gave up: the test proves nothing")

      local h = holder:wait()
      assert.are.equal(0, h.code, h.stderr)
      assert.are.equal("Running upgrade <base> -> slow01, slow\n", h.stderr)
      assert.are.same({ "luamig_version", "slow_done" }, b.tables())
      assert.are.same({ "slow01" }, b.versions())

      -- the lock went with the holder: the next runner gets it at once
      r = b.run(dir, { "upgrade", "head" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("", r.stderr)
    end)
  end)
end)
