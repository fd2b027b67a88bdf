-- tools/killtest with a few trials: luamig upgrade head SIGKILLed at random
-- moments never leaves a half-migrated database, and upgrade head finishes
-- the job (see tools/killtest for the checks). PostgreSQL too when
-- LUAMIG_TEST_PG_URL is set.
local cli = require("spec.helpers.cli")
local backend = require("spec.helpers.backend")

local TRIALS = 5

describe("tools/killtest", function()
  it(("finds every database consistent after %d kills per backend"):format(TRIALS), function()
    local which = backend.pg_url() and "both" or "sqlite"
    local out = os.tmpname()
    local ok, _, code = os.execute(("LUAMIG_BIN=%s tools/killtest --trials %d --backend %s >%s 2>&1")
      :format(cli.shell_quote(cli.bin), TRIALS, which, out))
    if type(ok) == "number" then code = ok >= 256 and math.floor(ok / 256) or ok end
    local text = cli.read(out)
    os.remove(out)
    assert.are.equal(0, code, text)
    local names = which == "both" and { "sqlite", "postgresql" } or { "sqlite" }
    local parts = {}
    for i, name in ipairs(names) do parts[i] = name .. " %d/" .. TRIALS .. " killed mid%-run" end
    assert.matches("\nkilltest: all trials consistent %(" .. table.concat(parts, ", ") .. "%)\n$", text)
    for _, name in ipairs(names) do
      local trials = 0
      for _ in text:gmatch("\n" .. name .. " trial %d+/" .. TRIALS .. ": [^\n]*upgrade head finished the job") do
        trials = trials + 1
      end
      assert.are.equal(TRIALS, trials, text)
    end
  end)
end)
