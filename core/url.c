/* url.c - parsing database URLs (see url.h).
 *
 * Relies on nothing but libc. The password is kept apart from `display`, the
 * only form of the URL any message may show.
 */
#include "url.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_range(const char *s, size_t n)
{
	char *out = malloc(n + 1);
	if (!out)
		return NULL;
	memcpy(out, s, n);
	out[n] = '\0';
	return out;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decodes s[0..n) into a new string ('+' stays '+': these are not
 * form-encoded). Returns NULL on bad escapes or no memory. */
static char *decode_range(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
			int lo = hi >= 0 ? hexval((unsigned char)s[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				free(out);
				return NULL;
			}
			*o++ = (char)(hi * 16 + lo);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

void lm_url_free(lm_url *u)
{
	if (!u)
		return;
	free(u->path);
	free(u->user);
	free(u->password);
	free(u->host);
	free(u->port);
	free(u->dbname);
	for (int i = 0; i < u->noptions; i++) {
		free(u->options[i].key);
		free(u->options[i].value);
	}
	free(u->options);
	free(u->display);
	memset(u, 0, sizeof *u);
}

void lm_url_mask(char *out, size_t size, const char *text)
{
	/* scheme://user:secret@host → scheme://user:***@host, wherever it occurs */
	size_t o = 0;
	if (size == 0)
		return;
	for (const char *p = text; *p && o + 1 < size;) {
		const char *sep = strstr(p, "://");
		if (!sep) {
			o += (size_t)snprintf(out + o, size - o, "%s", p);
			break;
		}
		const char *auth = sep + 3;
		size_t authlen = strcspn(auth, "/?# \t\n");
		const char *at = memchr(auth, '@', authlen);
		const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		if (colon) {
			o += (size_t)snprintf(out + o, size - o, "%.*s:***",
				(int)(colon - p), p);
			p = at;
		} else {
			o += (size_t)snprintf(out + o, size - o, "%.*s",
				(int)(auth + authlen - p), p);
			p = auth + authlen;
		}
		if (o >= size)
			o = size - 1;
	}
	out[o < size ? o : size - 1] = '\0';
}

static int parse_sqlite(lm_url *u, const char *rest, const char *base_dir,
	lm_error *err)
{
	/* rest follows "sqlite:": "" / "//" → memory, "///rel", "////abs" */
	const char *query = strchr(rest, '?');
	size_t n = query ? (size_t)(query - rest) : strlen(rest);
	char *raw = NULL;
	if (n < 2 || strncmp(rest, "//", 2) != 0)
		return lm_error_set(err, LM_EFAIL,
			"bad database url '%s': sqlite urls look like 'sqlite:///relative.db' or 'sqlite:////absolute.db'",
			u->display);
	rest += 2;
	n -= 2;
	if (n == 0 || (n == 1 && rest[0] == '/')) {
		u->path = strdup(":memory:");
		return u->path ? 0 : LM_ENOMEM;
	}
	if (rest[0] != '/')
		return lm_error_set(err, LM_EFAIL,
			"bad database url '%s': sqlite urls take no host; use 'sqlite:///path.db'",
			u->display);
	rest++;
	n--;
	raw = decode_range(rest, n);
	if (!raw)
		return lm_error_set(err, LM_EFAIL,
			"bad database url '%s': bad %%-escape in the path", u->display);
	if (strcmp(raw, ":memory:") == 0 || raw[0] == '/' || !base_dir ||
		!*base_dir || strcmp(base_dir, ".") == 0) {
		u->path = raw;
		return 0;
	}
	const char *rel = strncmp(raw, "./", 2) == 0 ? raw + 2 : raw;
	size_t len = strlen(base_dir) + strlen(rel) + 2;
	u->path = malloc(len);
	if (u->path)
		snprintf(u->path, len, "%s/%s", base_dir, rel);
	free(raw);
	return u->path ? 0 : LM_ENOMEM;
}

static int add_option(lm_url *u, const char *kv, size_t n)
{
	const char *eq = memchr(kv, '=', n);
	lm_url_option *grown = realloc(u->options,
		(size_t)(u->noptions + 1) * sizeof *grown);
	if (!grown)
		return LM_ENOMEM;
	u->options = grown;
	lm_url_option *o = &u->options[u->noptions];
	o->key = decode_range(kv, eq ? (size_t)(eq - kv) : n);
	o->value = eq ? decode_range(eq + 1, n - (size_t)(eq + 1 - kv))
		      : strdup("");
	u->noptions++;
	return o->key && o->value ? 0 : LM_EFAIL;
}

static int parse_postgresql(lm_url *u, const char *rest, lm_error *err)
{
	/* rest follows "postgresql:": //[user[:password]@][host][:port][/dbname][?k=v&…] */
	if (strncmp(rest, "//", 2) != 0)
		return lm_error_set(err, LM_EFAIL,
			"bad database url '%s': postgresql urls look like 'postgresql://user:password@host:port/dbname'",
			u->display);
	rest += 2;
	const char *query = strchr(rest, '?');
	size_t n = query ? (size_t)(query - rest) : strlen(rest);
	const char *slash = memchr(rest, '/', n);
	size_t authlen = slash ? (size_t)(slash - rest) : n;
	const char *at = NULL;
	for (size_t i = 0; i < authlen; i++) /* the last '@': passwords may hold one */
		if (rest[i] == '@')
			at = rest + i;
	const char *hostpart = rest;
	if (at) {
		const char *colon = memchr(rest, ':', (size_t)(at - rest));
		size_t userlen = colon ? (size_t)(colon - rest) : (size_t)(at - rest);
		if (userlen && !(u->user = decode_range(rest, userlen)))
			goto bad_escape;
		if (colon && !(u->password = decode_range(colon + 1,
				       (size_t)(at - colon - 1))))
			goto bad_escape;
		hostpart = at + 1;
	}
	size_t hostlen = (size_t)(rest + authlen - hostpart);
	const char *portsep = NULL;
	if (hostlen && hostpart[0] == '[') { /* [::1]:5432 */
		const char *close = memchr(hostpart, ']', hostlen);
		if (close && close + 1 < hostpart + hostlen && close[1] == ':')
			portsep = close + 1;
		if (close) {
			u->host = dup_range(hostpart + 1, (size_t)(close - hostpart - 1));
			hostlen = 0;
		}
	} else {
		portsep = memchr(hostpart, ':', hostlen);
	}
	if (hostlen) {
		size_t hl = portsep ? (size_t)(portsep - hostpart) : hostlen;
		if (hl && !(u->host = decode_range(hostpart, hl)))
			goto bad_escape;
	}
	if (portsep) {
		const char *p = portsep + 1, *end = rest + authlen;
		if (p == end)
			return lm_error_set(err, LM_EFAIL,
				"bad database url '%s': empty port", u->display);
		for (const char *q = p; q < end; q++)
			if (!isdigit((unsigned char)*q))
				return lm_error_set(err, LM_EFAIL,
					"bad database url '%s': port '%.*s' is not a number",
					u->display, (int)(end - p), p);
		u->port = dup_range(p, (size_t)(end - p));
	}
	if (slash && n > authlen + 1 &&
		!(u->dbname = decode_range(slash + 1, n - authlen - 1)))
		goto bad_escape;
	if (query) {
		const char *p = query + 1;
		while (*p) {
			size_t len = strcspn(p, "&");
			if (len && add_option(u, p, len) != 0)
				goto bad_escape;
			p += len;
			if (*p == '&')
				p++;
		}
	}
	return 0;
bad_escape:
	return lm_error_set(err, LM_EFAIL, "bad database url '%s': bad %%-escape",
		u->display);
}

int lm_url_parse(lm_url *out, const char *text, const char *base_dir,
	lm_error *err)
{
	memset(out, 0, sizeof *out);
	int rc;
	char display[1024];
	lm_url_mask(display, sizeof display, text);
	if (!(out->display = strdup(display)))
		return LM_ENOMEM;

	/* scheme[+driver]: */
	size_t schemelen = strcspn(text, ":");
	if (text[schemelen] != ':') {
		rc = lm_error_set(err, LM_EFAIL,
			"bad database url '%s': expected 'sqlite:///path.db' or 'postgresql://user@host/dbname'",
			display);
		goto done;
	}
	size_t baselen = strcspn(text, "+:");
	if (baselen == 6 && strncmp(text, "sqlite", 6) == 0) {
		out->backend = LM_BACKEND_SQLITE;
		rc = parse_sqlite(out, text + schemelen + 1, base_dir, err);
	} else if ((baselen == 10 && strncmp(text, "postgresql", 10) == 0) ||
		   (baselen == 8 && strncmp(text, "postgres", 8) == 0)) {
		out->backend = LM_BACKEND_POSTGRESQL;
		rc = parse_postgresql(out, text + schemelen + 1, err);
	} else {
		rc = lm_error_set(err, LM_EFAIL,
			"bad database url '%s': unknown database '%.*s'; luamig speaks sqlite and postgresql",
			display, (int)baselen, text);
	}
done:
	if (rc != 0) {
		if (rc == LM_ENOMEM)
			lm_error_set(err, LM_ENOMEM, "out of memory");
		lm_url_free(out);
	}
	return rc;
}
