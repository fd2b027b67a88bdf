-- Drives the real luamig binary in throwaway project folders.
local M = {}

M.bin = os.getenv("LUAMIG_BIN") or "./build/luamig"

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

-- Runs `luamig args...` in dir; returns { code, stdout, stderr }.
-- opts.env: table of environment variables to set for the run.
function M.run(dir, args, opts)
  opts = opts or {}
  local out, err = os.tmpname(), os.tmpname()
  local parts = { "cd", shell_quote(dir), "&&" }
  parts[#parts + 1] = "env -u DATABASE_URL -u LUAMIG_CONFIG"
  for k, v in pairs(opts.env or {}) do parts[#parts + 1] = k .. "=" .. shell_quote(v) end
  parts[#parts + 1] = shell_quote(M.bin)
  for _, a in ipairs(args) do parts[#parts + 1] = shell_quote(a) end
  parts[#parts + 1] = ">" .. out .. " 2>" .. err
  local ok, _, code = os.execute(table.concat(parts, " "))
  -- LuaJIT 2.1's os.execute returns the raw wait status
  if type(ok) == "number" then code = ok >= 256 and math.floor(ok / 256) or ok end
  local r = { code = code or 0, stdout = slurp(out), stderr = slurp(err) }
  os.remove(out)
  os.remove(err)
  return r
end

-- Runs a shell command, asserting success; returns its stdout.
function M.sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local s = p:read("*a")
  p:close()
  local body, rc = s:match("^(.*)rc=(%d+)%s*$")
  assert(rc == "0", "command failed: " .. cmd .. "\n" .. (body or s))
  return body
end

-- A fresh project folder made by `luamig init`; returns its path.
function M.project()
  local dir = M.sh("mktemp -d /tmp/luamig-spec.XXXXXX"):gsub("%s+$", "")
  local r = M.run(dir, { "init" })
  assert(r.code == 0, "luamig init failed: " .. r.stderr)
  return dir
end

function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

M.read = slurp

-- Writes a revision file into dir's migrations/versions with the given
-- fields; body is the Lua text of upgrade()/downgrade() (optional).
function M.revision(dir, name, fields)
  local lines = { "--[[ " .. (fields.message or name) .. " ]]" }
  lines[#lines + 1] = ("revision = %q"):format(fields.revision)
  local down = fields.down_revision
  if type(down) == "table" then
    local q = {}
    for i, d in ipairs(down) do q[i] = ("%q"):format(d) end
    lines[#lines + 1] = "down_revision = { " .. table.concat(q, ", ") .. " }"
  elseif down then
    lines[#lines + 1] = ("down_revision = %q"):format(down)
  end
  lines[#lines + 1] = "function upgrade()\n" .. (fields.upgrade or "") .. "\nend"
  lines[#lines + 1] = "function downgrade()\n" .. (fields.downgrade or "") .. "\nend"
  local path = dir .. "/migrations/versions/" .. name .. ".lua"
  M.write(path, table.concat(lines, "\n") .. "\n")
  return path
end

function M.rmtree(dir)
  if dir and dir:match("^/tmp/luamig%-spec%.") then os.execute("rm -rf " .. shell_quote(dir)) end
end

return M
