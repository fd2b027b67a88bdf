--[[ add user preferences table

Revision ID: abc123def456
Revises: 0001
Create Date: 2026-01-23 14:30:52.123456
]]
revision = "abc123def456"
down_revision = "0001"
branch_labels = nil
depends_on = nil

function upgrade()
  op.create_table("user_preferences",
    sa.Column("id", sa.Integer, { primary_key = true }),
    sa.Column("user_id", sa.Integer, { sa.ForeignKey("users.id", { ondelete = "CASCADE" }), nullable = false, unique = true }),
    sa.Column("theme", sa.String(50), { nullable = false, server_default = "light" }),
    sa.Column("email_notifications", sa.Boolean, { nullable = false, server_default = sa.true_() }),
    sa.Column("created_at", sa.DateTime, { server_default = sa.func.now() }))
  op.create_index("ix_user_preferences_user_id", "user_preferences", { "user_id" })
end

function downgrade()
  op.drop_index("ix_user_preferences_user_id", { table_name = "user_preferences" })
  op.drop_table("user_preferences")
end
