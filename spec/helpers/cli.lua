-- Drives the real luamig binary in throwaway project folders.
local M = {}

-- Runs happen inside project folders, so a relative LUAMIG_BIN is made
-- absolute against the folder the specs started in.
M.bin = os.getenv("LUAMIG_BIN") or "build/luamig"
if M.bin:sub(1, 1) ~= "/" then
  local p = io.popen("pwd")
  M.bin = p:read("*l") .. "/" .. M.bin:gsub("^%./", "")
  p:close()
end

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

-- The shell command that runs `luamig args...` in dir, with only the
-- environment opts.env adds (DATABASE_URL and LUAMIG_CONFIG unset); with
-- opts.exec the shell becomes luamig (same pid).
function M.command(dir, args, opts)
  opts = opts or {}
  local parts = { "cd", shell_quote(dir), "&&" }
  parts[#parts + 1] = (opts.exec and "exec " or "") .. "env -u DATABASE_URL -u LUAMIG_CONFIG"
  for k, v in pairs(opts.env or {}) do parts[#parts + 1] = k .. "=" .. shell_quote(v) end
  parts[#parts + 1] = shell_quote(M.bin)
  for _, a in ipairs(args) do parts[#parts + 1] = shell_quote(a) end
  return table.concat(parts, " ")
end

local function exit_code(ok, _, code)
  -- LuaJIT 2.1's os.execute returns the raw wait status
  if type(ok) == "number" then code = ok >= 256 and math.floor(ok / 256) or ok end
  return code or 0
end

-- Runs `luamig args...` in dir; returns { code, stdout, stderr }.
-- opts.env: table of environment variables to set for the run.
function M.run(dir, args, opts)
  local out, err = os.tmpname(), os.tmpname()
  local code = exit_code(os.execute(M.command(dir, args, opts) .. " >" .. out .. " 2>" .. err))
  local r = { code = code, stdout = slurp(out), stderr = slurp(err) }
  os.remove(out)
  os.remove(err)
  return r
end

local function read_number(path)
  local s = slurp(path)
  return tonumber(s:match("^%s*(%d+)%s*$"))
end

-- Starts every run of runs (each { dir, args, opts }) at once as background
-- jobs of one shell and waits for all; returns their { code, stdout, stderr }
-- in order.
function M.run_all(runs)
  local tmp = M.sh("mktemp -d /tmp/luamig-spec.XXXXXX"):gsub("%s+$", "")
  local jobs = {}
  for i, run in ipairs(runs) do
    local f = tmp .. "/" .. i
    jobs[i] = ("(%s >%s.out 2>%s.err; echo $? >%s.rc) &"):format(M.command(run[1], run[2], run[3]), f, f, f)
  end
  assert(exit_code(os.execute(table.concat(jobs, " ") .. " wait")) == 0)
  local out = {}
  for i = 1, #runs do
    local f = tmp .. "/" .. i
    out[i] = { code = read_number(f .. ".rc"), stdout = slurp(f .. ".out"), stderr = slurp(f .. ".err") }
  end
  M.rmtree(tmp)
  return out
end

local ffi = require("ffi")
pcall(ffi.cdef, [[
int poll(void *fds, unsigned long nfds, int timeout);
struct luamig_spec_timespec { long tv_sec; long tv_nsec; };
int clock_gettime(int clk, struct luamig_spec_timespec *ts);
]])

function M.sleep(seconds)
  ffi.C.poll(nil, 0, math.floor(seconds * 1000 + 0.5))
end

-- Seconds on a monotonic clock.
function M.now()
  local ts = ffi.new("struct luamig_spec_timespec")
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

-- Starts `luamig args...` in dir in the background; returns a process with
-- .pid (luamig's own), :stderr() (what it wrote so far), :running(),
-- :await_stderr(text), :wait() -> { code, stdout, stderr } and :close().
local Proc = {}
Proc.__index = Proc

function M.spawn(dir, args, opts)
  local tmp = M.sh("mktemp -d /tmp/luamig-spec.XXXXXX"):gsub("%s+$", "")
  local f = tmp .. "/p"
  local with_exec = { exec = true }
  for k, v in pairs(opts or {}) do with_exec[k] = v end
  -- the job execs env, which execs luamig: $! is luamig's pid; the rc file
  -- appears once it ended
  local cmd = ("( (%s) >%s.out 2>%s.err & echo $! >%s.pid.tmp; mv %s.pid.tmp %s.pid; wait $!; echo $? >%s.rc.tmp; mv %s.rc.tmp %s.rc) >/dev/null 2>&1 &")
    :format(M.command(dir, args, with_exec), f, f, f, f, f, f, f, f)
  assert(exit_code(os.execute(cmd)) == 0)
  local p = setmetatable({ tmp = tmp, file = f }, Proc)
  local deadline = M.now() + 10
  repeat
    p.pid = read_number(f .. ".pid")
    if not p.pid then M.sleep(0.005) end
  until p.pid or M.now() > deadline
  assert(p.pid, "the background luamig did not start")
  return p
end

function Proc:stderr() return slurp(self.file .. ".err") end

function Proc:running() return read_number(self.file .. ".rc") == nil end

-- Waits until what the process wrote to stderr contains text; false if it
-- ended without writing it or timeout seconds passed first.
function Proc:await_stderr(text, timeout)
  local deadline = M.now() + (timeout or 30)
  while M.now() < deadline do
    if self:stderr():find(text, 1, true) then return true end
    if not self:running() then return self:stderr():find(text, 1, true) ~= nil end
    M.sleep(0.01)
  end
  return false
end

-- Ends the process if it still runs (SIGKILL) and removes its files; for
-- cleanup after a failed test (busted's finally).
function Proc:close()
  if self.closed then return end
  self.closed = true
  if self:running() then
    os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
    local deadline = M.now() + 10
    while self:running() and M.now() < deadline do M.sleep(0.01) end
  end
  M.rmtree(self.tmp)
end

function Proc:wait(timeout)
  local deadline = M.now() + (timeout or 120)
  while self:running() and M.now() < deadline do M.sleep(0.01) end
  local code = read_number(self.file .. ".rc")
  assert(code, "the background luamig (pid " .. self.pid .. ") did not end in time")
  local r = { code = code, stdout = slurp(self.file .. ".out"), stderr = self:stderr() }
  self.closed = true
  M.rmtree(self.tmp)
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
  if r.code ~= 0 then
    M.rmtree(dir)
    error("luamig init failed: " .. r.stderr, 2)
  end
  return dir
end

function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

M.read = slurp

-- Writes a revision file into dir's migrations/versions with the given
-- fields (revision, down_revision, message, transactional, and upgrade /
-- downgrade: the Lua text of their bodies, optional); returns its path.
-- Line 1 is the message, then revision, down_revision and transactional
-- when given, then `function upgrade()`, whose body starts on the next line.
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
  if fields.transactional ~= nil then
    lines[#lines + 1] = "transactional = " .. tostring(fields.transactional)
  end
  lines[#lines + 1] = "function upgrade()\n" .. (fields.upgrade or "") .. "\nend"
  lines[#lines + 1] = "function downgrade()\n" .. (fields.downgrade or "") .. "\nend"
  local path = dir .. "/migrations/versions/" .. name .. ".lua"
  M.write(path, table.concat(lines, "\n") .. "\n")
  return path
end

-- Removes a folder made by the helpers (a project, or a database's folder).
function M.rmtree(dir)
  if dir and (dir:match("^/tmp/luamig%-spec%.") or dir:match("^/tmp/luamig%-spec%-db%.")) then
    os.execute("rm -rf " .. shell_quote(dir))
  end
end

return M
