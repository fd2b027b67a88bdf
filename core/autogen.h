/* autogen.h - filling a new revision from the difference between models.lua
 * and the database (cmd_autogen.c). */
#ifndef LM_AUTOGEN_H
#define LM_AUTOGEN_H

#include "app.h"
#include "buf.h"

/* Connects, checks the database is at every head ("Target database is not
 * up to date." otherwise), and appends the Lua bodies of upgrade() and
 * downgrade() to upgrades/downgrades. Tells stderr what it found. */
int lm_autogenerate(lm_app *app, lm_buf *upgrades, lm_buf *downgrades,
	int *ndiffs, lm_error *err);

#endif
