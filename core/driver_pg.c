/* driver_pg.c - PostgreSQL driver (libpq). Placeholder until implemented. */
#include "driver.h"

static int pg_open(lm_conn **out, const lm_url *url, lm_error *err)
{
	(void)url;
	*out = NULL;
	return lm_error_set(err, LM_EFAIL, "postgresql support is not built yet");
}

const lm_driver_methods lm_driver_pg = {
	.version = 1,
	.dialect = "postgresql",
	.open = pg_open,
};
