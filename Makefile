# The example project's database targets (the seed guide's workflow), using the
# luamig built by tools/build. See tools/luamig.mk.
LUAMIG ?= $(CURDIR)/build/luamig
include tools/luamig.mk
