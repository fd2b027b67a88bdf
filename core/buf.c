/* buf.c - growable strings (see buf.h). */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(lm_buf *b, size_t extra)
{
	if (b->failed)
		return -1;
	if (b->len + extra + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *grown = realloc(b->data, cap);
	if (!grown) {
		b->failed = 1;
		return -1;
	}
	b->data = grown;
	b->cap = cap;
	return 0;
}

void lm_buf_add(lm_buf *b, const char *s, size_t n)
{
	if (reserve(b, n) != 0)
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void lm_buf_puts(lm_buf *b, const char *s)
{
	lm_buf_add(b, s, strlen(s));
}

void lm_buf_printf(lm_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || reserve(b, (size_t)n) != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static void add_quoted(lm_buf *b, const char *s, size_t n, char q)
{
	lm_buf_add(b, &q, 1);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == q)
			lm_buf_add(b, &q, 1);
		lm_buf_add(b, &s[i], 1);
	}
	lm_buf_add(b, &q, 1);
}

void lm_buf_ident(lm_buf *b, const char *s)
{
	add_quoted(b, s, strlen(s), '"');
}

void lm_buf_literal(lm_buf *b, const char *s, size_t n)
{
	add_quoted(b, s, n, '\'');
}

void lm_buf_json(lm_buf *b, const char *s, size_t n)
{
	lm_buf_puts(b, "\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			lm_buf_printf(b, "\\%c", c);
		else if (c < 0x20)
			lm_buf_printf(b, "\\u%04x", c);
		else
			lm_buf_add(b, &s[i], 1);
	}
	lm_buf_puts(b, "\"");
}

const char *lm_buf_str(lm_buf *b)
{
	return b->data ? b->data : "";
}

void lm_buf_free(lm_buf *b)
{
	if (!b)
		return;
	free(b->data);
	memset(b, 0, sizeof *b);
}
