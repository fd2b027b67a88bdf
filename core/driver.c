/* driver.c - picks the driver a URL's scheme names (see driver.h). */
#include "driver.h"

#include <time.h>

static double monotonic_seconds(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

void lm_lock_wait_start(lm_lock_waiter *w)
{
	w->started = monotonic_seconds();
	w->pause_ns = 5 * 1000000;
}

int lm_lock_wait(lm_lock_waiter *w, double timeout)
{
	if (monotonic_seconds() - w->started >= timeout)
		return 0;
	struct timespec pause = { 0, w->pause_ns };
	nanosleep(&pause, NULL);
	if (w->pause_ns < 200 * 1000000)
		w->pause_ns *= 2;
	return 1;
}

int lm_driver_open(lm_conn **out, const lm_url *url, lm_error *err)
{
	const lm_driver_methods *m = url->backend == LM_BACKEND_POSTGRESQL
		? &lm_driver_pg : &lm_driver_sqlite;
	return m->open(out, url, err);
}

int lm_exec_rows(const lm_driver_methods *m, lm_stmt *s, const lm_value *params, int nparams,
	int nrows, int64_t *changes, int *failed, lm_error *err)
{
	*changes = 0;
	*failed = -1;
	for (int r = 0; r < nrows; r++) {
		int rc = m->bind(s, params + (size_t)r * (size_t)nparams, nparams, err);
		while (rc == 0 && (rc = m->step(s, err)) > 0)
			rc = 0;
		if (rc < 0) {
			*failed = r;
			return rc;
		}
		*changes += m->changes(s);
	}
	return 0;
}

int lm_exec_many(const lm_driver_methods *m, lm_stmt *s, const lm_value *params, int nparams,
	int nrows, int64_t *changes, int *failed, lm_error *err)
{
	if (m->version >= 2 && m->exec_many)
		return m->exec_many(s, params, nparams, nrows, changes, failed, err);
	return lm_exec_rows(m, s, params, nparams, nrows, changes, failed, err);
}
