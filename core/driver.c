/* driver.c - picks the driver a URL's scheme names (see driver.h). */
#include "driver.h"

int lm_driver_open(lm_conn **out, const lm_url *url, lm_error *err)
{
	const lm_driver_methods *m = url->backend == LM_BACKEND_POSTGRESQL
		? &lm_driver_pg : &lm_driver_sqlite;
	return m->open(out, url, err);
}
