-- luamig.util: the two helpers every luamig module uses.
local util = {}
jit.off(true, true) -- called from rendering (see luamig.ddl)

-- Raises a formatted error without a position: the host puts the migration's file:line in front.
function util.fail(fmt, ...)
  error(string.format(fmt, ...), 0)
end

-- The set of a list's values: set { "a", "b" }.a == true.
function util.set(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

return util
