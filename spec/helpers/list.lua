-- Small list helpers the specs share.
local list = {}

-- The values of field key (default "name") of each item, in order.
function list.names(items, key)
  local out = {}
  for i, v in ipairs(items) do out[i] = v[key or "name"] end
  return out
end

-- The items by their name.
function list.by_name(items)
  local out = {}
  for _, v in ipairs(items) do out[v.name] = v end
  return out
end

return list
