/* error.h - the one error record every layer fills.
 *
 * Functions return 0 on success or a negative LM_E* code, and describe the
 * failure in an lm_error the caller passes in. Only the CLI prints it.
 */
#ifndef LM_ERROR_H
#define LM_ERROR_H

#include <stddef.h>

enum {
	LM_OK = 0,
	LM_EFAIL = -1,  /* a failure the user must act on: exit 1 */
	LM_EUSAGE = -2, /* bad command line: exit 2 */
	LM_ENOMEM = -3,
};

typedef struct lm_error {
	int code;          /* one of LM_E*, 0 when no error is set */
	char message[1024]; /* one line, lowercase start, user values in quotes */
} lm_error;

/* Sets err (if not NULL) and returns code, so callers can write
 * `return lm_error_set(err, LM_EFAIL, "revision '%s' not found", id);`
 * A message already set is replaced. */
int lm_error_set(lm_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Puts "prefix" (printf-formatted) in front of the message already set. */
void lm_error_prefix(lm_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void lm_error_clear(lm_error *err);

#endif
