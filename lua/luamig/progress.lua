-- luamig.progress: a progress line on stderr for long work (bulk loads, batch
-- copies, scripted loops over many rows), shown only when stderr is a
-- terminal (or LUAMIG_PROGRESS=always), so logs and pipes stay clean.
--
--   local p = progress.new("conn:rows")   -- nil when progress is off
--   if p then p:tick(1) end ... if p then p:done() end

local ffi = require("ffi")

ffi.cdef("int isatty(int fd);")

local progress = {}

local enabled, always
local function is_enabled()
  if enabled == nil then
    local mode = os.getenv("LUAMIG_PROGRESS")
    always = mode == "always"
    if always then enabled = true
    elseif mode == "never" then enabled = false
    else enabled = ffi.C.isatty(2) == 1 end
  end
  return enabled
end

local EVERY = 4096 -- rows between clock reads: os.clock() is cheap, not free
local INTERVAL = 0.5 -- seconds between redraws

local Progress = {}
Progress.__index = Progress

local function draw(p, final)
  io.stderr:write(string.format("\rluamig: %s: %d rows%s", p.label, p.count, final and "\n" or ""))
  io.stderr:flush()
end

function Progress:tick(n)
  self.count = self.count + (n or 1)
  if self.count >= self.next_check then
    self.next_check = self.count + EVERY
    local now = os.clock()
    if now - self.last >= INTERVAL then
      self.last = now
      self.shown = true
      draw(self, false)
    end
  end
end

-- Ends the line; nothing is printed for work that finished before the first
-- redraw, unless LUAMIG_PROGRESS=always (then the final count always shows).
function Progress:done()
  if self.shown or (always and self.count > 0) then draw(self, true) end
  self.shown = false
end

function progress.new(label)
  if not is_enabled() then return nil end
  return setmetatable({ label = label, count = 0, next_check = EVERY, last = os.clock(), shown = false }, Progress)
end

return progress
