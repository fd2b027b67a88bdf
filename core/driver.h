/* driver.h - one interface for every database backend.
 *
 * A driver opens a connection from a parsed URL, runs statements with bound
 * parameters, steps through result rows and controls transactions. Drivers
 * know nothing of Lua, the revision graph or the version table.
 *
 * SQL uses `?` placeholders on every backend (a driver that needs another
 * style rewrites them, skipping quoted strings, identifiers and comments).
 * Values handed in are borrowed for the duration of the call; values handed
 * out (lm_driver_methods.column) are borrowed until the next step, reset or
 * finalize of that statement.
 */
#ifndef LM_DRIVER_H
#define LM_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "url.h"

typedef enum lm_value_type {
	LM_NULL,
	LM_INT,
	LM_FLOAT,
	LM_TEXT,
	LM_BLOB,
	LM_BOOL,
} lm_value_type;

typedef struct lm_value {
	lm_value_type type;
	union {
		int64_t i; /* LM_INT, LM_BOOL (0 or 1) */
		double f;  /* LM_FLOAT */
		struct {
			const char *p; /* LM_TEXT, LM_BLOB; borrowed */
			size_t n;
		} s;
	} u;
} lm_value;

typedef struct lm_conn lm_conn; /* a driver's connection; starts with `const lm_driver_methods *methods` */
typedef struct lm_stmt lm_stmt; /* a driver's prepared statement */

/* Versioned like sqlite3_io_methods: later versions only append members. */
typedef struct lm_driver_methods {
	int version; /* 3 */
	const char *dialect; /* "sqlite", "postgresql" */

	/* Opens *out from url. On failure *out is NULL and err says why (the
	 * password never appears in it). */
	int (*open)(lm_conn **out, const lm_url *url, lm_error *err);
	void (*close)(lm_conn *c); /* accepts NULL; finalizes nothing: finalize statements first */

	/* Runs sql (with params, or several `;`-separated statements when
	 * nparams is 0) to completion; *changes (may be NULL) gets the rows
	 * affected by the last statement. */
	int (*exec)(lm_conn *c, const char *sql, const lm_value *params, int nparams,
		int64_t *changes, lm_error *err);

	/* Prepares one statement. */
	int (*prepare)(lm_conn *c, const char *sql, lm_stmt **out, lm_error *err);
	/* Resets the statement and binds params (nparams must match). */
	int (*bind)(lm_stmt *s, const lm_value *params, int nparams, lm_error *err);
	/* Runs one step: 1 = a row is ready, 0 = done, < 0 = error. */
	int (*step)(lm_stmt *s, lm_error *err);
	int (*column_count)(lm_stmt *s);
	const char *(*column_name)(lm_stmt *s, int i); /* borrowed, valid until finalize */
	void (*column)(lm_stmt *s, int i, lm_value *out);
	int64_t (*changes)(lm_stmt *s); /* rows affected once step returned 0 */
	void (*finalize)(lm_stmt *s); /* accepts NULL */

	/* Transactions. begin's `immediate` takes the write lock at once
	 * (SQLite BEGIN IMMEDIATE; ignored where it means nothing). */
	int (*begin)(lm_conn *c, int immediate, lm_error *err);
	int (*commit)(lm_conn *c, lm_error *err);
	int (*rollback)(lm_conn *c, lm_error *err); /* safe to call with no transaction open */

	/* While on, statements that would end or start a transaction
	 * (COMMIT, ROLLBACK, BEGIN; not SAVEPOINT) fail: a migration cannot
	 * commit behind the runner's back. */
	int (*guard_transactions)(lm_conn *c, int on);

	/* Takes the migration lock for the whole command so concurrent runners
	 * serialise: name identifies what is locked (the version table), and
	 * after timeout seconds the error names who holds it. unlock accepts
	 * a connection holding no lock. */
	int (*lock)(lm_conn *c, const char *name, double timeout, lm_error *err);
	void (*unlock)(lm_conn *c);

	/* Version 2; each may be NULL. */

	/* Runs the statement once per row of params: nrows rows of nparams
	 * values, row after row. *changes gets the rows affected, summed; on
	 * failure *failed is the 0-based row that failed. Rows before it have
	 * run; inside a transaction, the database has aborted it. NULL: the
	 * host binds and steps row by row. */
	int (*exec_many)(lm_stmt *s, const lm_value *params, int nparams, int nrows,
		int64_t *changes, int *failed, lm_error *err);

	/* Bulk loading: copy_begin runs sql (the dialect's statement that
	 * starts a load, e.g. COPY t (a, b) FROM STDIN), copy_row queues one row
	 * of n values, copy_end sends what is left (or, with abort, makes the
	 * database discard the load) and reports the outcome, with *failed
	 * (0-based, -1 when unknown) the row an error concerns. After copy_begin
	 * succeeded, copy_end must be called, also after a failed copy_row.
	 * NULL: the database has no such path; the host inserts row by row. */
	int (*copy_begin)(lm_conn *c, const char *sql, lm_error *err);
	int (*copy_row)(lm_conn *c, const lm_value *row, int n, lm_error *err);
	int (*copy_end)(lm_conn *c, int abort, int *failed, lm_error *err);

	/* Whether the statement's next step talks to the database (a step
	 * served from rows already read does not). NULL: every step may. */
	int (*step_needs_conn)(lm_stmt *s);

	/* Version 3; each may be NULL. */

	/* Queued rows (SQLite's bulk path): queue_row copies one row of n
	 * values for the prepared statement s and returns at once; a writer
	 * thread binds and steps the rows in queue order while the caller goes
	 * on (the database works while Lua makes the next rows, as a PostgreSQL
	 * server does during a COPY). Every other call on the connection waits
	 * until the queue is empty, except the step of a statement already
	 * stepping (a cursor open before the rows were queued reads on). A
	 * row's failure is reported once, by the first call that finds it, as
	 * "row <tag>: <message>"; the rows queued after it are skipped. flush
	 * waits for the queue and reports a failure. */
	int (*queue_row)(lm_stmt *s, const lm_value *row, int n, int64_t tag, lm_error *err);
	int (*flush)(lm_conn *c, lm_error *err);

	/* exec, then commit, in one round trip where the database allows (the
	 * runner's version-row update rides with its COMMIT). On failure the
	 * transaction is rolled back. NULL: the host calls exec, then commit. */
	int (*exec_commit)(lm_conn *c, const char *sql, const lm_value *params, int nparams,
		lm_error *err);
} lm_driver_methods;

struct lm_conn {
	const lm_driver_methods *methods;
};

extern const lm_driver_methods lm_driver_sqlite;
extern const lm_driver_methods lm_driver_pg;

/* Opens a connection with the driver the URL's scheme names. */
int lm_driver_open(lm_conn **out, const lm_url *url, lm_error *err);

/* Waiting for the migration lock: lm_lock_wait sleeps a pause that doubles
 * from 5 ms up to 320 ms and returns 1, or returns 0 at once when timeout
 * seconds have passed since lm_lock_wait_start. */
typedef struct lm_lock_waiter {
	double started; /* seconds, monotonic */
	long pause_ns;
} lm_lock_waiter;
void lm_lock_wait_start(lm_lock_waiter *w);
int lm_lock_wait(lm_lock_waiter *w, double timeout);

/* exec_many through the driver's own when it has one; lm_exec_rows binds
 * and steps row by row. */
int lm_exec_many(const lm_driver_methods *m, lm_stmt *s, const lm_value *params, int nparams,
	int nrows, int64_t *changes, int *failed, lm_error *err);
int lm_exec_rows(const lm_driver_methods *m, lm_stmt *s, const lm_value *params, int nparams,
	int nrows, int64_t *changes, int *failed, lm_error *err);

#endif
