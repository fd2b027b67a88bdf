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
	char prefix[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	size_t n = strlen(prefix), size = sizeof err->message;
	if (n >= size)
		n = size - 1;
	memmove(err->message + n, err->message, size - n - 1);
	memcpy(err->message, prefix, n);
	err->message[size - 1] = '\0';
}

void lm_error_clear(lm_error *err)
{
	if (!err)
		return;
	err->code = 0;
	err->message[0] = '\0';
}
