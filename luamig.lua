-- luamig configuration for the example project: a job-application tracker.
-- Every key is optional; see README.md for all of them.
return {
  script_location = "migrations",
  -- DATABASE_URL or --url override this, e.g.
  --   DATABASE_URL="postgresql://user:password@localhost/jobs" luamig upgrade head
  url = "sqlite:///./data/app.db",
  version_table = "luamig_version",
  file_template = "%Y%m%d_%H%M%S_{rev}_{slug}",
  transaction_per_migration = true,
}
