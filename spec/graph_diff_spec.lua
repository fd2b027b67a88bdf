-- The differential test of the revision graph against Alembic 1.8.1, end to
-- end through both command lines (tools/graph-diff; run it alone for longer
-- runs: tools/graph-diff/run --graphs 1000). This is its suite size: the
-- hand-picked graphs plus a fixed set of seeded random graphs, sized to take
-- well under two minutes on two cores (the steps wait on fsync more than on the
-- CPU, hence four jobs).
local cli = require("spec.helpers.cli")

local ARGS = { "--seed", "101", "--seed", "102", "--graphs", "30", "--steps", "12", "--jobs", "4",
  "--max-report", "10" }

describe("graph-diff", function()
  it("finds no mismatch between luamig and Alembic", function()
    local parts = { "tools/graph-diff/run", "--luamig", cli.shell_quote(cli.bin) }
    for _, a in ipairs(ARGS) do parts[#parts + 1] = cli.shell_quote(a) end
    local p = assert(io.popen(table.concat(parts, " ") .. " 2>&1"))
    local out = p:read("*a")
    p:close()
    local graphs, steps, mismatches = out:match("graph%-diff: (%d+) graphs, (%d+) steps, (%d+) mismatches")
    assert(graphs, "no summary line from tools/graph-diff/run:\n" .. out)
    assert(tonumber(graphs) >= 80 and tonumber(steps) >= 900, "too little was compared:\n" .. out)
    assert(mismatches == "0", out)
  end)
end)
