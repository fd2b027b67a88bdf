# luamig.mk - the seed guide's database targets, for an application's Makefile:
#
#   include path/to/luamig.mk
#
#   make db-migrate MSG="add user preferences"   new revision from models.lua (autogenerate)
#   make db-upgrade                              apply all pending migrations
#   make db-downgrade                            roll back the last migration
#   make db-history                              show migration history
#   make db-current                              show the current revision
#   make db-stamp REV="0001"                     mark the database at a revision
#   make db-check                                exit 1 if models.lua and the database differ
#
# DATABASE_URL, when set, is the database (it overrides luamig.lua's url).
# LUAMIG names the binary; LUAMIG_FLAGS adds options (e.g. -c other/luamig.lua).

LUAMIG ?= luamig
LUAMIG_FLAGS ?=

.PHONY: db-migrate db-upgrade db-downgrade db-history db-current db-stamp db-check

db-migrate:
	@test -n "$(MSG)" || { echo 'usage: make db-migrate MSG="describe your changes"' >&2; exit 2; }
	$(LUAMIG) $(LUAMIG_FLAGS) revision --autogenerate -m "$(MSG)"

db-upgrade:
	$(LUAMIG) $(LUAMIG_FLAGS) upgrade head

db-downgrade:
	$(LUAMIG) $(LUAMIG_FLAGS) downgrade -1

db-history:
	$(LUAMIG) $(LUAMIG_FLAGS) history --verbose

db-current:
	$(LUAMIG) $(LUAMIG_FLAGS) current

db-stamp:
	@test -n "$(REV)" || { echo 'usage: make db-stamp REV="revision"' >&2; exit 2; }
	$(LUAMIG) $(LUAMIG_FLAGS) stamp "$(REV)"

db-check:
	$(LUAMIG) $(LUAMIG_FLAGS) check
