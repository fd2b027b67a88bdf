--[[ initial schema

Revision ID: 0001
Revises:
Create Date: 2026-01-23 00:00:00.000000
]]
revision = "0001"
down_revision = nil
branch_labels = nil
depends_on = nil

function upgrade()
  op.create_table("users",
    sa.Column("id", sa.Integer, { primary_key = true }),
    sa.Column("email", sa.String(120), { nullable = false, unique = true }),
    sa.Column("full_name", sa.String(200)),
    sa.Column("hashed_password", sa.String(255), { nullable = false }),
    sa.Column("is_active", sa.Boolean, { nullable = false, server_default = sa.true_() }),
    sa.Column("created_at", sa.DateTime, { server_default = sa.func.now() }))

  op.create_table("resumes",
    sa.Column("id", sa.Integer, { primary_key = true }),
    sa.Column("user_id", sa.Integer, { sa.ForeignKey("users.id", { ondelete = "CASCADE" }), nullable = false }),
    sa.Column("title", sa.String(200), { nullable = false }),
    sa.Column("content", sa.Text),
    sa.Column("created_at", sa.DateTime, { server_default = sa.func.now() }))
  op.create_index("ix_resumes_user_id", "resumes", { "user_id" })

  op.create_table("job_applications",
    sa.Column("id", sa.Integer, { primary_key = true }),
    sa.Column("user_id", sa.Integer, { sa.ForeignKey("users.id", { ondelete = "CASCADE" }), nullable = false }),
    sa.Column("resume_id", sa.Integer, { sa.ForeignKey("resumes.id", { ondelete = "SET NULL" }) }),
    sa.Column("company", sa.String(200), { nullable = false }),
    sa.Column("position", sa.String(200), { nullable = false }),
    sa.Column("status", sa.String(20), { nullable = false, server_default = "applied" }),
    sa.Column("applied_at", sa.DateTime, { server_default = sa.func.now() }),
    sa.Column("notes", sa.Text))
  op.create_index("ix_job_applications_user_id", "job_applications", { "user_id" })
  op.create_index("ix_jobs_company_status", "job_applications", { "company", "status" })
end

function downgrade()
  op.drop_index("ix_jobs_company_status", { table_name = "job_applications" })
  op.drop_index("ix_job_applications_user_id", { table_name = "job_applications" })
  op.drop_table("job_applications")
  op.drop_index("ix_resumes_user_id", { table_name = "resumes" })
  op.drop_table("resumes")
  op.drop_table("users")
end
