/* error.c - filling lm_error records (see error.h). */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int lm_error_set(lm_error *err, int code, const char *fmt, ...)
{
	if (!err)
		return code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	err->code = code;
	return code;
}

void lm_error_prefix(lm_error *err, const char *fmt, ...)
{
	if (!err)
		return;
	char prefix[512], old[sizeof err->message];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	memcpy(old, err->message, sizeof old);
	snprintf(err->message, sizeof err->message, "%s%s", prefix, old);
}

void lm_error_clear(lm_error *err)
{
	if (!err)
		return;
	err->code = 0;
	err->message[0] = '\0';
}
