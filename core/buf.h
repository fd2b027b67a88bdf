/* buf.h - a growable string, for building SQL and output text. */
#ifndef LM_BUF_H
#define LM_BUF_H

#include <stddef.h>

typedef struct lm_buf {
	char *data; /* owned; always NUL-terminated once anything was added */
	size_t len;
	size_t cap;
	int failed; /* set when an allocation failed; the text is then incomplete */
} lm_buf;

void lm_buf_add(lm_buf *b, const char *s, size_t n);
void lm_buf_puts(lm_buf *b, const char *s);
void lm_buf_printf(lm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a double-quoted SQL identifier ("a""b"). */
void lm_buf_ident(lm_buf *b, const char *s);
/* Appends s as a single-quoted SQL string literal ('it''s'). */
void lm_buf_literal(lm_buf *b, const char *s, size_t n);
/* Appends s[0..n) as a JSON string. */
void lm_buf_json(lm_buf *b, const char *s, size_t n);
const char *lm_buf_str(lm_buf *b); /* "" when empty */
void lm_buf_free(lm_buf *b);

#endif
