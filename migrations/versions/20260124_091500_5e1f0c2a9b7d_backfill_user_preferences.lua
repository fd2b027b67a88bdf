--[[ backfill user preferences for existing users

A data migration: every user without preferences gets a row, with the theme
derived in Lua from the user's e-mail domain (company accounts get "dark").

Revision ID: 5e1f0c2a9b7d
Revises: abc123def456
Create Date: 2026-01-24 09:15:00.000000
]]
revision = "5e1f0c2a9b7d"
down_revision = "abc123def456"
branch_labels = nil
depends_on = nil

local personal_domains = { ["gmail.com"] = true, ["outlook.com"] = true, ["yahoo.com"] = true }

function upgrade()
  local conn = op.get_bind()
  local insert = conn:prepare("INSERT INTO user_preferences (user_id, theme) VALUES (?, ?)")
  for user in conn:rows([[
      SELECT u.id, u.email FROM users u
      LEFT JOIN user_preferences p ON p.user_id = u.id
      WHERE p.id IS NULL ORDER BY u.id]]) do
    local domain = user.email:match("@(.+)$")
    local theme = (domain and not personal_domains[domain:lower()]) and "dark" or "light"
    insert:execute({ user.id, theme })
  end
  insert:close()
end

function downgrade()
  -- The rows this revision added cannot be told apart from later ones:
  -- like most data migrations it is not reversed.
end
