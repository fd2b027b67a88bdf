--[[ normalise job statuses and guard them with a check constraint

A data migration, then a batch: statuses written by older app versions are
mapped onto the current set in Lua, then the column is widened and a CHECK
added. On SQLite that ALTER needs batch mode (move and copy); the rows,
indexes and foreign keys pointing in and out survive it. On PostgreSQL the
same batch runs as plain ALTER TABLE statements.

Revision ID: 7c4d2e9f1a3b
Revises: 5e1f0c2a9b7d
Create Date: 2026-01-25 10:00:00.000000
]]
revision = "7c4d2e9f1a3b"
down_revision = "5e1f0c2a9b7d"
branch_labels = nil
depends_on = nil

local STATUSES = { "applied", "interviewing", "offer", "rejected", "withdrawn" }
local LEGACY = { interview = "interviewing", offered = "offer", declined = "rejected", ghosted = "rejected" }

function upgrade()
  local conn = op.get_bind()
  local known = {}
  for _, s in ipairs(STATUSES) do known[s] = true end
  local fix = conn:prepare("UPDATE job_applications SET status = ? WHERE id = ?")
  for job in conn:rows("SELECT id, status FROM job_applications") do
    local status = job.status:lower():gsub("%s+", "")
    status = LEGACY[status] or status
    if not known[status] then status = "applied" end
    if status ~= job.status then fix:execute({ status, job.id }) end
  end
  fix:close()

  op.batch_alter_table("job_applications", function(batch)
    batch.alter_column("status", { type = sa.String(30), existing_type = sa.String(20),
      existing_nullable = false, existing_server_default = "applied" })
    batch.create_check_constraint("ck_job_applications_status",
      "status IN ('" .. table.concat(STATUSES, "', '") .. "')")
  end)
end

function downgrade()
  op.batch_alter_table("job_applications", function(batch)
    batch.drop_constraint("ck_job_applications_status", { type = "check" })
    batch.alter_column("status", { type = sa.String(20), existing_type = sa.String(30),
      existing_nullable = false, existing_server_default = "applied" })
  end)
end
