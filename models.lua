-- The declared schema of the example project (a job-application tracker), for
-- `luamig revision --autogenerate` and `luamig check`: what migrations/versions/ builds, table by
-- table. Change it first, then let autogenerate write the migration.
local md = sa.MetaData()

sa.Table("users", md,
  sa.Column("id", sa.Integer, { primary_key = true }),
  sa.Column("email", sa.String(120), { nullable = false, unique = true }),
  sa.Column("full_name", sa.String(200)),
  sa.Column("hashed_password", sa.String(255), { nullable = false }),
  sa.Column("is_active", sa.Boolean, { nullable = false, server_default = sa.true_() }),
  sa.Column("created_at", sa.DateTime, { server_default = sa.func.now() }))

sa.Table("resumes", md,
  sa.Column("id", sa.Integer, { primary_key = true }),
  sa.Column("user_id", sa.Integer, { sa.ForeignKey("users.id", { ondelete = "CASCADE" }), nullable = false }),
  sa.Column("title", sa.String(200), { nullable = false }),
  sa.Column("content", sa.Text),
  sa.Column("created_at", sa.DateTime, { server_default = sa.func.now() }),
  sa.Index("ix_resumes_user_id", "user_id"))

sa.Table("job_applications", md,
  sa.Column("id", sa.Integer, { primary_key = true }),
  sa.Column("user_id", sa.Integer, { sa.ForeignKey("users.id", { ondelete = "CASCADE" }), nullable = false }),
  sa.Column("resume_id", sa.Integer, { sa.ForeignKey("resumes.id", { ondelete = "SET NULL" }) }),
  sa.Column("company", sa.String(200), { nullable = false }),
  sa.Column("position", sa.String(200), { nullable = false }),
  sa.Column("status", sa.String(30), { nullable = false, server_default = "applied" }),
  sa.Column("applied_at", sa.DateTime, { server_default = sa.func.now() }),
  sa.Column("notes", sa.Text),
  sa.Index("ix_job_applications_user_id", "user_id"),
  sa.Index("ix_jobs_company_status", "company", "status"),
  sa.CheckConstraint("status IN ('applied', 'interviewing', 'offer', 'rejected', 'withdrawn')",
    { name = "ck_job_applications_status" }))

sa.Table("user_preferences", md,
  sa.Column("id", sa.Integer, { primary_key = true }),
  sa.Column("user_id", sa.Integer, { sa.ForeignKey("users.id", { ondelete = "CASCADE" }), nullable = false, unique = true }),
  sa.Column("theme", sa.String(50), { nullable = false, server_default = "light" }),
  sa.Column("email_notifications", sa.Boolean, { nullable = false, server_default = sa.true_() }),
  sa.Column("created_at", sa.DateTime, { server_default = sa.func.now() }),
  sa.Index("ix_user_preferences_user_id", "user_id"))

return md
