/* host.c - every binding between C and LuaJIT (see host.h).
 *
 * Relies on LuaJIT 2.1 (Lua 5.1 API), the embedded modules of
 * tools/embed_lua.cmake, and a driver connection handed in by the runner.
 *
 * Each revision file runs in its own environment whose globals are the
 * revision's attributes, with `op` and `sa` preloaded and the standard
 * library visible through __index. The raw connection ("luamig.conn"), its
 * statements ("luamig.stmt") and op.bulk_insert's loaders ("luamig.loader")
 * are userdata; statements and loaders are tracked so the runner can
 * finalize them before a transaction ends.
 */
#include "host.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "embedded.h"

#define CONN_MT "luamig.conn"
#define STMT_MT "luamig.stmt"
#define LOADER_MT "luamig.loader"

/* A statement, or a loader (bulk_insert's fast path: rows of one column
 * set, through COPY where the driver has it, else a prepared INSERT). */
typedef struct host_stmt {
	lm_stmt *stmt;                 /* owned; NULL once closed (and for a loader that copies) */
	const lm_driver_methods *methods;
	struct host_stmt *prev, *next; /* the host's list of open statements */
	lm_host *host;
	int ncols;                     /* -1 until the column names are cached; a loader's columns */
	/* a loader's */
	lm_conn *conn;
	char *copy_sql;                /* owned: its COPY statement; NULL when it inserts through stmt */
	int copying;                   /* its COPY is open (see pause_copy) */
	int64_t copy_first;            /* the number of the open COPY's first row */
	int64_t first, rows;           /* its first row's number, rows it took */
	lm_value *values;              /* owned: one row, ncols values */
} host_stmt;

struct lm_host {
	lua_State *L;         /* owned */
	int op_view_ref;      /* read-only views of luamig.op and luamig.sa, */
	int sa_view_ref;      /* the `op` and `sa` migrations see */
	lm_run_context ctx;   /* current context; borrowed pointers */
	int has_ctx;
	host_stmt *open;      /* statements not yet finalized */
	host_stmt *copying;   /* the loader whose COPY is open, if any */
	const char *chunk;    /* "@path" of the migration running now, for error positions */
};

/* ---- small helpers ------------------------------------------------------ */

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* The file name (relative to the folder open as `folder`, or AT_FDCWD), NUL-terminated;
 * path names it in an error. */
static char *read_file_at(int folder, const char *name, const char *path, size_t *size, lm_error *err)
{
	int fd = openat(folder, name, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	if (fd < 0 || fstat(fd, &st) != 0 || !(buf = malloc((size_t)st.st_size + 1)) ||
		read(fd, buf, (size_t)st.st_size) != (ssize_t)st.st_size) {
		free(buf);
		buf = NULL;
		lm_error_set(err, LM_EFAIL, "cannot read '%s'", path);
	} else {
		buf[st.st_size] = '\0';
		*size = (size_t)st.st_size;
	}
	if (fd >= 0)
		close(fd);
	return buf;
}

static char *read_file(const char *path, size_t *size, lm_error *err)
{
	return read_file_at(AT_FDCWD, path, path, size, err);
}

/* The message handler of every protected call: puts the position of the
 * user's file (the migration or config chunk) in front of the message, as
 * redis does for scripts, so errors raised in C or in lua/luamig/ still name
 * the migration line that called them. */
static int message_handler(lua_State *L)
{
	lm_host *h = lua_touserdata(L, lua_upvalueindex(1));
	const char *msg = lua_tostring(L, 1);
	if (!msg) {
		if (luaL_callmeta(L, 1, "__tostring") && lua_isstring(L, -1))
			msg = lua_tostring(L, -1);
		else
			msg = lua_pushfstring(L, "(error object is a %s value)",
				luaL_typename(L, 1));
	}
	if (!h->chunk)
		return 1;
	const char *file = h->chunk + 1;
	size_t flen = strlen(file);
	if (strncmp(msg, file, flen) == 0 && msg[flen] == ':')
		return 1; /* already positioned in the user's file */
	lua_Debug ar;
	for (int level = 1; lua_getstack(L, level, &ar); level++) {
		lua_getinfo(L, "Sl", &ar);
		if (ar.currentline > 0 && strcmp(ar.source, h->chunk) == 0) {
			lua_pushfstring(L, "%s:%d: %s", file, ar.currentline, msg);
			return 1;
		}
	}
	lua_pushfstring(L, "%s: %s", file, msg);
	return 1;
}

/* Calls the function below nargs arguments on the stack, protected; on error
 * copies the message into err and pops it. chunk ("@path") is the user file
 * errors are positioned in. */
static int protected_call(lm_host *h, int nargs, int nresults, const char *chunk,
	lm_error *err)
{
	lua_State *L = h->L;
	int base = lua_gettop(L) - nargs;
	const char *saved = h->chunk;
	h->chunk = chunk;
	lua_pushlightuserdata(L, h);
	lua_pushcclosure(L, message_handler, 1);
	lua_insert(L, base);
	int rc = lua_pcall(L, nargs, nresults, base);
	h->chunk = saved;
	lua_remove(L, base);
	if (rc != 0) {
		const char *msg = lua_tostring(L, -1);
		lm_error_set(err, LM_EFAIL, "%s", msg ? msg : "unknown lua error");
		lua_pop(L, 1);
		return LM_EFAIL;
	}
	return 0;
}

/* ---- values ------------------------------------------------------------- */

static void push_value(lua_State *L, const lm_value *v)
{
	switch (v->type) {
	case LM_INT: lua_pushnumber(L, (lua_Number)v->u.i); break;
	case LM_FLOAT: lua_pushnumber(L, v->u.f); break;
	case LM_BOOL: lua_pushboolean(L, v->u.i != 0); break;
	case LM_TEXT:
	case LM_BLOB: lua_pushlstring(L, v->u.s.p, v->u.s.n); break;
	default: lua_pushnil(L);
	}
}

/* Reads a nil, boolean, number or string at idx into *v (a string stays
 * borrowed from where Lua keeps it). Returns 1 for any other type. */
static int to_value(lua_State *L, int idx, lm_value *v)
{
	switch (lua_type(L, idx)) {
	case LUA_TNIL: v->type = LM_NULL; return 0;
	case LUA_TBOOLEAN:
		v->type = LM_BOOL;
		v->u.i = lua_toboolean(L, idx);
		return 0;
	case LUA_TNUMBER: {
		lua_Number d = lua_tonumber(L, idx);
		if (d == floor(d) && fabs(d) < 9.2e18) {
			v->type = LM_INT;
			v->u.i = (int64_t)d;
		} else {
			v->type = LM_FLOAT;
			v->u.f = d;
		}
		return 0;
	}
	case LUA_TSTRING:
		v->type = LM_TEXT;
		v->u.s.p = lua_tolstring(L, idx, &v->u.s.n);
		return 0;
	default: return 1;
	}
}

/* A table's length for parameters: t.n when set, else the largest integer
 * key, so nil holes bind NULL. */
static int params_length(lua_State *L, int idx)
{
	int n = 0;
	lua_getfield(L, idx, "n");
	if (lua_isnumber(L, -1)) {
		n = (int)lua_tointeger(L, -1);
	} else {
		lua_pushnil(L);
		while (lua_next(L, idx)) {
			lua_pop(L, 1);
			if (lua_type(L, -1) == LUA_TNUMBER) {
				lua_Number k = lua_tonumber(L, -1);
				if (k >= 1 && k == floor(k) && k > n)
					n = (int)k;
			}
		}
	}
	lua_pop(L, 1);
	return n;
}

/* Reads the params table at idx into values (caller frees). Strings stay
 * borrowed from the table, which the caller keeps on the stack. */
static int read_params(lua_State *L, int idx, lm_value **out, int *count)
{
	*out = NULL;
	*count = 0;
	if (lua_isnoneornil(L, idx))
		return 0;
	luaL_checktype(L, idx, LUA_TTABLE);
	int n = params_length(L, idx);
	if (n == 0)
		return 0;
	lm_value *v = calloc((size_t)n, sizeof *v);
	if (!v)
		return luaL_error(L, "out of memory");
	for (int i = 0; i < n; i++) {
		lua_rawgeti(L, idx, i + 1);
		if (to_value(L, -1, &v[i]) != 0) {
			const char *tn = luaL_typename(L, -1);
			free(v);
			return luaL_error(L, "parameter %d is a %s; parameters are nil, booleans, numbers or strings",
				i + 1, tn);
		}
		lua_pop(L, 1); /* the string stays alive in the table */
	}
	*out = v;
	*count = n;
	return 0;
}

/* to_value for rows of many values: also the null sentinel (sa.null, at
 * null_idx) and, through the function at convert_idx, cdata integers, whose
 * text is kept alive in the table at anchor_idx. */
static int row_value(lua_State *L, int idx, lm_value *v, int null_idx, int convert_idx,
	int anchor_idx)
{
	if (to_value(L, idx, v) == 0)
		return 0;
	if (lua_rawequal(L, idx, null_idx)) {
		v->type = LM_NULL;
		return 0;
	}
	if (lua_type(L, idx) != 10 /* LUA_TCDATA */ || !lua_isfunction(L, convert_idx))
		return 1;
	lua_pushvalue(L, convert_idx);
	lua_pushvalue(L, idx);
	lua_call(L, 1, 1);
	lua_pushvalue(L, -1);
	lua_rawseti(L, anchor_idx, (int)lua_objlen(L, anchor_idx) + 1);
	int rc = lua_type(L, -1) == LUA_TSTRING ? to_value(L, -1, v) : 1;
	lua_pop(L, 1);
	return rc;
}

/* ---- luamig.stmt -------------------------------------------------------- */

static void stmt_unlink(host_stmt *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else if (s->host->open == s)
		s->host->open = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
}

/* Ends a loader's open COPY (with abort, the database discards it); an
 * error names the row it concerns. */
static int copy_stop(host_stmt *s, int abort, lm_error *err)
{
	int failed = -1, rc;
	if (!s->copying)
		return 0;
	s->copying = 0;
	if (s->host->copying == s)
		s->host->copying = NULL;
	rc = s->methods->copy_end(s->conn, abort, &failed, err);
	if (rc != 0 && failed >= 0)
		lm_error_prefix(err, "row %lld: ", (long long)(s->copy_first + failed));
	return rc;
}

static void stmt_close(host_stmt *s)
{
	copy_stop(s, 1, NULL);
	if (s->stmt)
		s->methods->finalize(s->stmt);
	s->stmt = NULL;
	free(s->copy_sql);
	s->copy_sql = NULL;
	free(s->values);
	s->values = NULL;
	stmt_unlink(s);
}

static void stmt_track(host_stmt *s)
{
	lm_host *h = s->host;
	s->next = h->open;
	if (h->open)
		h->open->prev = s;
	h->open = s;
}

/* The object a method of a class (see register_class) is called on: its
 * metatable must be the method's upvalue. (luaL_checkudata would intern the
 * class name on every call of a per-row method.) */
static void *check_object(lua_State *L, const char *name)
{
	void *p = lua_touserdata(L, 1);
	if (p && lua_getmetatable(L, 1)) {
		int same = lua_rawequal(L, -1, lua_upvalueindex(1));
		lua_pop(L, 1);
		if (same)
			return p;
	}
	luaL_typerror(L, 1, name);
	return NULL;
}

static host_stmt *check_stmt(lua_State *L)
{
	host_stmt *s = check_object(L, STMT_MT);
	if (!s->stmt)
		luaL_error(L, "statement is closed (statements end with their revision's transaction)");
	return s;
}

/* Raises err's message without a position: the handler adds the user's. */
static int raise_error(lua_State *L, const lm_error *err)
{
	lua_pushstring(L, err->message);
	return lua_error(L);
}

/* A COPY holds the connection until it ends, so before any other command
 * the open one is ended; its loader starts another at its next row. (A
 * bulk_insert iterator may read through the connection it loads into.) */
static void pause_copy(lua_State *L, lm_host *h)
{
	lm_error err = {0};
	host_stmt *s = h->copying;
	if (s && copy_stop(s, 0, &err) != 0) {
		stmt_close(s);
		raise_error(L, &err);
	}
}

static int l_stmt_bind(lua_State *L)
{
	host_stmt *s = check_stmt(L);
	pause_copy(L, s->host);
	lm_value *params;
	int n;
	lm_error err = {0};
	read_params(L, 2, &params, &n);
	int rc = s->methods->bind(s->stmt, params, n, &err);
	free(params);
	if (rc != 0)
		return raise_error(L, &err);
	return 0;
}

/* Caches the column names in the statement's environment table, so each row
 * costs one table and no string interning. */
static void cache_columns(lua_State *L, host_stmt *s)
{
	int n = s->methods->column_count(s->stmt);
	lua_createtable(L, n, 0);
	for (int i = 0; i < n; i++) {
		lua_pushstring(L, s->methods->column_name(s->stmt, i));
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfenv(L, 1);
	s->ncols = n;
}

static int l_stmt_step(lua_State *L)
{
	host_stmt *s = check_stmt(L);
	if (s->host->copying && (s->methods->version < 2 || !s->methods->step_needs_conn ||
			s->methods->step_needs_conn(s->stmt)))
		pause_copy(L, s->host);
	lm_error err = {0};
	int rc = s->methods->step(s->stmt, &err);
	if (rc < 0)
		return raise_error(L, &err);
	if (rc == 0) {
		lua_pushnil(L);
		return 1;
	}
	if (s->ncols < 0)
		cache_columns(L, s);
	lua_getfenv(L, 1);
	int names = lua_gettop(L);
	lua_createtable(L, 0, s->ncols);
	for (int i = 0; i < s->ncols; i++) {
		lm_value v;
		s->methods->column(s->stmt, i, &v);
		lua_rawgeti(L, names, i + 1);
		push_value(L, &v);
		lua_rawset(L, -3);
	}
	return 1;
}

static int l_stmt_run(lua_State *L)
{
	host_stmt *s = check_stmt(L);
	pause_copy(L, s->host);
	lm_value *params;
	int n, rc;
	lm_error err = {0};
	int64_t changes;
	int failed;
	read_params(L, 2, &params, &n);
	rc = lm_exec_rows(s->methods, s->stmt, params, n, 1, &changes, &failed, &err);
	free(params);
	if (rc < 0)
		return raise_error(L, &err);
	lua_pushnumber(L, (lua_Number)changes);
	return 1;
}

/* stmt:run_many(rows, null, convert): runs the statement once per row (an
 * array of value arrays) and returns the rows affected. null is sa.null;
 * convert turns a cdata integer into its text. */
static int l_stmt_run_many(lua_State *L)
{
	host_stmt *s = check_stmt(L);
	pause_copy(L, s->host);
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 4);
	lua_newtable(L); /* 5: the anchor of converted values */
	lua_pushnil(L);  /* 6: the values, a userdata so that an error unwinding frees them */
	int nrows = (int)lua_objlen(L, 2), nparams = 0, failed = -1;
	lm_value *values = NULL;
	for (int r = 0; r < nrows; r++) {
		lua_rawgeti(L, 2, r + 1);
		int row = lua_gettop(L);
		if (!lua_istable(L, row))
			return luaL_error(L, "row %d is a %s; each row is an array of values", r + 1,
				luaL_typename(L, row));
		int n = params_length(L, row);
		if (r == 0) {
			nparams = n;
			values = lua_newuserdata(L, ((size_t)nrows * (size_t)n + 1) * sizeof *values);
			lua_replace(L, 6);
		} else if (n != nparams) {
			return luaL_error(L, "row %d has %d values; row 1 has %d", r + 1, n, nparams);
		}
		for (int i = 0; i < n; i++) {
			lua_rawgeti(L, row, i + 1);
			if (row_value(L, lua_gettop(L), &values[(size_t)r * (size_t)n + (size_t)i], 3, 4, 5) != 0)
				return luaL_error(L, "row %d: value %d is a %s; values are nil, booleans, numbers, strings or sa.null",
					r + 1, i + 1, luaL_typename(L, -1));
			lua_pop(L, 1); /* a string stays alive in its row */
		}
		lua_pop(L, 1);
	}
	int64_t changes = 0;
	lm_error err = {0};
	if (nrows > 0 && lm_exec_many(s->methods, s->stmt, values, nparams, nrows, &changes, &failed, &err) != 0) {
		if (failed >= 0)
			lm_error_prefix(&err, "row %d of %d: ", failed + 1, nrows);
		return raise_error(L, &err);
	}
	lua_pushnumber(L, (lua_Number)changes);
	return 1;
}

/* ---- luamig.loader ------------------------------------------------------ */

/* Whether the driver writes a loader's rows on a thread of its own (queue_row). */
static int queues(const lm_driver_methods *m)
{
	return m->version >= 3 && m->queue_row && m->flush;
}

static host_stmt *check_loader(lua_State *L)
{
	host_stmt *s = check_object(L, LOADER_MT);
	if (!s->stmt && !s->copy_sql)
		luaL_error(L, "the loader is finished");
	return s;
}

/* A loader's environment: its column names, then these (integer keys: a
 * string key would be interned on every row). */
enum { LOADER_NULL = 1, LOADER_CONVERT, LOADER_ANCHOR };

/* loader:put(row[, number]): loads a row whose keys are exactly the
 * loader's columns, each a plain value, sa.null or a cdata integer, and
 * returns true; returns false, loading nothing, for any other row
 * (op.bulk_insert then takes its general path). number is the row's, for
 * an error (default: the next after the loader's last). */
static int l_loader_put(lua_State *L)
{
	host_stmt *s = check_loader(L);
	luaL_checktype(L, 2, LUA_TTABLE);
	int64_t number = (int64_t)luaL_optnumber(L, 3, (lua_Number)(s->first + s->rows));
	lua_settop(L, 2);
	lua_getfenv(L, 1);                       /* 3: { column names..., null, convert, anchor } */
	lua_rawgeti(L, 3, s->ncols + LOADER_NULL);    /* 4 */
	lua_rawgeti(L, 3, s->ncols + LOADER_CONVERT); /* 5 */
	lua_rawgeti(L, 3, s->ncols + LOADER_ANCHOR);  /* 6 */
	int keys = 0;
	lua_pushnil(L);
	while (lua_next(L, 2)) {
		lua_pop(L, 1);
		if (++keys > s->ncols) {
			lua_pop(L, 1);
			break;
		}
	}
	for (int i = 0; keys == s->ncols && i < s->ncols; i++) {
		lua_rawgeti(L, 3, i + 1);
		lua_rawget(L, 2);
		if (lua_isnil(L, -1) || row_value(L, lua_gettop(L), &s->values[i], 4, 5, 6) != 0)
			keys = -1;
		lua_pop(L, 1); /* strings stay alive in the row or the anchor */
	}
	if (keys != s->ncols) {
		lua_pushboolean(L, 0);
		return 1;
	}
	lm_error err = {0};
	int rc = 0, named = 0;
	if (s->copy_sql) {
		if (!s->copying) {
			pause_copy(L, s->host); /* another loader's */
			rc = s->methods->copy_begin(s->conn, s->copy_sql, &err);
			if (rc == 0) {
				s->copying = 1;
				s->copy_first = number;
				s->host->copying = s;
			}
		}
		if (rc == 0)
			rc = s->methods->copy_row(s->conn, s->values, s->ncols, &err);
	} else if (queues(s->methods)) {
		pause_copy(L, s->host);
		rc = s->methods->queue_row(s->stmt, s->values, s->ncols, number, &err);
		named = 1; /* the failure may be an earlier row's */
	} else {
		int64_t changes;
		int failed;
		pause_copy(L, s->host);
		rc = lm_exec_rows(s->methods, s->stmt, s->values, s->ncols, 1, &changes, &failed, &err);
	}
	if (lua_objlen(L, 6) > 0) {
		lua_newtable(L);
		lua_rawseti(L, 3, s->ncols + LOADER_ANCHOR);
	}
	if (rc != 0) {
		if (!named)
			lm_error_prefix(&err, "row %lld: ", (long long)number);
		stmt_close(s);
		return raise_error(L, &err);
	}
	s->rows++;
	lua_pushboolean(L, 1);
	return 1;
}

/* loader:finish(): sends what is left; returns the rows it took. */
static int l_loader_finish(lua_State *L)
{
	host_stmt *s = check_loader(L);
	lm_error err = {0};
	int rc = copy_stop(s, 0, &err);
	if (rc == 0 && s->stmt && queues(s->methods))
		rc = s->methods->flush(s->conn, &err);
	stmt_close(s);
	if (rc != 0)
		return raise_error(L, &err);
	lua_pushnumber(L, (lua_Number)s->rows);
	return 1;
}

/* loader:close(): abandons the load (a COPY is discarded). */
static int l_loader_close(lua_State *L)
{
	stmt_close(luaL_checkudata(L, 1, LOADER_MT));
	return 0;
}

static int l_stmt_columns(lua_State *L)
{
	host_stmt *s = check_stmt(L);
	pause_copy(L, s->host);
	if (s->ncols < 0)
		cache_columns(L, s);
	lua_getfenv(L, 1);
	return 1;
}

static int l_stmt_is_open(lua_State *L)
{
	host_stmt *s = luaL_checkudata(L, 1, STMT_MT);
	lua_pushboolean(L, s->stmt != NULL);
	return 1;
}

static int l_stmt_close(lua_State *L)
{
	stmt_close(luaL_checkudata(L, 1, STMT_MT));
	return 0;
}

/* Makes the metatable of a userdata class: methods, each holding the
 * metatable as its upvalue (see check_object), and gc as __gc. */
static void register_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc)
{
	luaL_newmetatable(L, name);
	lua_pushcfunction(L, gc);
	lua_setfield(L, -2, "__gc");
	lua_newtable(L);
	for (const luaL_Reg *m = methods; m->name; m++) {
		lua_pushvalue(L, -2);
		lua_pushcclosure(L, m->func, 1);
		lua_setfield(L, -2, m->name);
	}
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
}

/* ---- luamig.conn -------------------------------------------------------- */

static lm_conn *check_conn(lua_State *L)
{
	lm_conn **c = luaL_checkudata(L, 1, CONN_MT);
	if (!*c)
		luaL_error(L, "the connection is only available while a revision runs");
	return *c;
}

static int l_conn_exec(lua_State *L)
{
	lm_conn *c = check_conn(L);
	pause_copy(L, lua_touserdata(L, lua_upvalueindex(1)));
	const char *sql = luaL_checkstring(L, 2);
	lm_value *params;
	int n;
	int64_t changes = 0;
	lm_error err = {0};
	read_params(L, 3, &params, &n);
	int rc = c->methods->exec(c, sql, params, n, &changes, &err);
	free(params);
	if (rc != 0)
		return raise_error(L, &err);
	lua_pushnumber(L, (lua_Number)changes);
	return 1;
}

static int l_conn_prepare(lua_State *L)
{
	lm_conn *c = check_conn(L);
	const char *sql = luaL_checkstring(L, 2);
	lm_host *h = lua_touserdata(L, lua_upvalueindex(1));
	pause_copy(L, h);
	lm_error err = {0};
	host_stmt *s = lua_newuserdata(L, sizeof *s);
	memset(s, 0, sizeof *s);
	s->ncols = -1;
	s->host = h;
	s->methods = c->methods;
	luaL_getmetatable(L, STMT_MT);
	lua_setmetatable(L, -2);
	if (c->methods->prepare(c, sql, &s->stmt, &err) != 0)
		return raise_error(L, &err);
	stmt_track(s);
	return 1;
}

/* raw:loader(insert_sql, copy_sql, names, first, null, convert): a loader of
 * rows with exactly the columns names lists (see l_loader_put); copy_sql
 * (or nil) starts the driver's bulk path, else insert_sql is prepared.
 * first is the number of its first row, for errors. */
static int l_conn_loader(lua_State *L)
{
	lm_conn *c = check_conn(L);
	const char *insert = luaL_checkstring(L, 2);
	const char *copy = luaL_optstring(L, 3, NULL);
	luaL_checktype(L, 4, LUA_TTABLE);
	lua_Number first = luaL_checknumber(L, 5);
	lm_host *h = lua_touserdata(L, lua_upvalueindex(1));
	int ncols = (int)lua_objlen(L, 4);
	lm_error err = {0};
	pause_copy(L, h);
	lua_settop(L, 7);
	host_stmt *s = lua_newuserdata(L, sizeof *s);
	memset(s, 0, sizeof *s);
	s->host = h;
	s->methods = c->methods;
	s->ncols = ncols;
	s->conn = c;
	s->first = (int64_t)first;
	luaL_getmetatable(L, LOADER_MT);
	lua_setmetatable(L, -2);
	lua_createtable(L, ncols + LOADER_ANCHOR, 0);
	for (int i = 1; i <= ncols; i++) {
		lua_rawgeti(L, 4, i);
		lua_rawseti(L, -2, i);
	}
	lua_pushvalue(L, 6);
	lua_rawseti(L, -2, ncols + LOADER_NULL);
	lua_pushvalue(L, 7);
	lua_rawseti(L, -2, ncols + LOADER_CONVERT);
	lua_newtable(L);
	lua_rawseti(L, -2, ncols + LOADER_ANCHOR);
	lua_setfenv(L, -2);
	if (!(s->values = calloc((size_t)ncols + 1, sizeof *s->values)))
		return luaL_error(L, "out of memory");
	if (copy && c->methods->version >= 2 && c->methods->copy_begin) {
		if (!(s->copy_sql = strdup(copy)))
			return luaL_error(L, "out of memory");
	} else if (c->methods->prepare(c, insert, &s->stmt, &err) != 0) {
		return raise_error(L, &err);
	}
	stmt_track(s);
	return 1;
}

static int l_conn_dialect(lua_State *L)
{
	lua_pushstring(L, check_conn(L)->methods->dialect);
	return 1;
}

/* ---- op context --------------------------------------------------------- */

static int l_emit(lua_State *L)
{
	lm_host *h = lua_touserdata(L, lua_upvalueindex(1));
	const char *sql = luaL_checkstring(L, 1);
	lm_value *params;
	int n;
	lm_error err = {0};
	if (!h->has_ctx)
		return luaL_error(L, "op.* can only be called while a revision runs");
	pause_copy(L, h);
	read_params(L, 2, &params, &n);
	int rc = h->ctx.sink.emit(h->ctx.sink.ud, sql, params, n, &err);
	free(params);
	if (rc != 0)
		return raise_error(L, &err);
	return 0;
}

int lm_host_set_context(lm_host *h, const lm_run_context *ctx, lm_error *err)
{
	lua_State *L = h->L;
	lm_conn **box;
	int top = lua_gettop(L);
	/* the one raw connection box: cleared so a leaked reference dies safely */
	lua_getfield(L, LUA_REGISTRYINDEX, "luamig.raw");
	box = lua_touserdata(L, -1);
	*box = ctx ? ctx->conn : NULL;
	lua_pop(L, 1);

	lua_getglobal(L, "require");
	lua_pushliteral(L, "luamig.op");
	if (protected_call(h, 1, 1, NULL, err) != 0)
		return LM_EFAIL;
	lua_getfield(L, -1, "_set_context");
	if (!ctx) {
		h->has_ctx = 0;
		lua_pushnil(L);
	} else {
		h->ctx = *ctx;
		h->has_ctx = 1;
		lua_createtable(L, 0, 6);
		lua_pushstring(L, ctx->dialect);
		lua_setfield(L, -2, "dialect");
		lua_pushboolean(L, ctx->offline);
		lua_setfield(L, -2, "offline");
		lua_createtable(L, 0, ctx->nx);
		for (int i = 0; i < ctx->nx; i++) {
			const char *eq = strchr(ctx->x[i], '=');
			if (eq) {
				lua_pushlstring(L, ctx->x[i], (size_t)(eq - ctx->x[i]));
				lua_pushstring(L, eq + 1);
			} else {
				lua_pushstring(L, ctx->x[i]);
				lua_pushliteral(L, "");
			}
			lua_rawset(L, -3);
		}
		lua_setfield(L, -2, "x");
		lua_getfield(L, LUA_REGISTRYINDEX, "luamig.config");
		lua_setfield(L, -2, "config");
		lua_pushlightuserdata(L, h);
		lua_pushcclosure(L, l_emit, 1);
		lua_setfield(L, -2, "emit");
		if (ctx->conn) {
			lua_getfield(L, LUA_REGISTRYINDEX, "luamig.raw");
			lua_setfield(L, -2, "raw");
		}
	}
	int rc = protected_call(h, 1, 0, NULL, err);
	lua_settop(L, top);
	return rc;
}

void lm_host_close_statements(lm_host *h)
{
	while (h->open)
		stmt_close(h->open);
}

/* ---- loading ------------------------------------------------------------ */

static int embedded_loader(lua_State *L)
{
	const lm_embedded_module *m = lua_touserdata(L, lua_upvalueindex(1));
	if (luaL_loadbuffer(L, m->source, m->size, m->chunkname) != 0)
		return lua_error(L);
	lua_pushstring(L, m->name);
	lua_call(L, 1, 1); /* inside require, itself inside a protected call */
	return 1;
}

static int l_read_only(lua_State *L)
{
	return luaL_error(L, "'%s' cannot be set: op and sa are shared by every revision",
		luaL_checkstring(L, 2));
}

/* __index of a view before its module is loaded: requires it (upvalue 1 is
 * the module name), then points the view's __index at the module, so the
 * modules cost nothing to commands that never run a migration. */
static int l_lazy_index(lua_State *L)
{
	lua_getglobal(L, "require");
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_call(L, 1, 1); /* inside a protected call: a failure reaches its handler */
	lua_getmetatable(L, 1);
	lua_pushvalue(L, -2);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
	lua_pushvalue(L, 2);
	lua_gettable(L, -2);
	return 1;
}

/* A table reading through to module `name` and refusing writes, so that one
 * revision cannot change op or sa for the revisions after it. */
static int read_only_view(lua_State *L, const char *name)
{
	lua_newtable(L);
	lua_createtable(L, 0, 3);
	lua_pushstring(L, name);
	lua_pushcclosure(L, l_lazy_index, 1);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, l_read_only);
	lua_setfield(L, -2, "__newindex");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	return luaL_ref(L, LUA_REGISTRYINDEX);
}

int lm_host_new(lm_host **out, lm_error *err)
{
	lm_host *h = calloc(1, sizeof *h);
	int rc = LM_EFAIL;
	*out = NULL;
	if (!h)
		return LM_ENOMEM;
	if (!(h->L = luaL_newstate())) {
		rc = lm_error_set(err, LM_ENOMEM, "cannot create a lua state");
		goto done;
	}
	lua_State *L = h->L;
	luaL_openlibs(L);

	/* package.preload["luamig.x"] for every embedded module */
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "preload");
	for (const lm_embedded_module *m = lm_embedded_modules; m->name; m++) {
		lua_pushlightuserdata(L, (void *)m);
		lua_pushcclosure(L, embedded_loader, 1);
		lua_setfield(L, -2, m->name);
	}
	lua_pop(L, 2);

	static const luaL_Reg stmt_methods[] = {
		{"bind", l_stmt_bind}, {"step", l_stmt_step}, {"run", l_stmt_run},
		{"run_many", l_stmt_run_many}, {"columns", l_stmt_columns},
		{"close", l_stmt_close}, {"is_open", l_stmt_is_open}, {NULL, NULL},
	};
	register_class(L, STMT_MT, stmt_methods, l_stmt_close);

	static const luaL_Reg loader_methods[] = {
		{"put", l_loader_put}, {"finish", l_loader_finish}, {"close", l_loader_close},
		{NULL, NULL},
	};
	register_class(L, LOADER_MT, loader_methods, l_loader_close);

	static const luaL_Reg conn_methods[] = {
		{"exec", l_conn_exec}, {"prepare", l_conn_prepare},
		{"loader", l_conn_loader}, {"dialect", l_conn_dialect}, {NULL, NULL},
	};
	luaL_newmetatable(L, CONN_MT);
	lua_newtable(L);
	for (const luaL_Reg *r = conn_methods; r->name; r++) {
		lua_pushlightuserdata(L, h);
		lua_pushcclosure(L, r->func, 1);
		lua_setfield(L, -2, r->name);
	}
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
	lm_conn **box = lua_newuserdata(L, sizeof *box);
	*box = NULL;
	luaL_getmetatable(L, CONN_MT);
	lua_setmetatable(L, -2);
	lua_setfield(L, LUA_REGISTRYINDEX, "luamig.raw");

	h->op_view_ref = read_only_view(L, "luamig.op");
	h->sa_view_ref = read_only_view(L, "luamig.sa");
	*out = h;
	rc = 0;
done:
	if (rc != 0)
		lm_host_free(h);
	return rc;
}

void lm_host_free(lm_host *h)
{
	if (!h)
		return;
	if (h->L) {
		lm_host_close_statements(h);
		lua_close(h->L);
	}
	free(h);
}

/* Runs a file's text as a chunk in a fresh environment whose globals fall
 * back to _G. Leaves the environment and the chunk's first result (or nil)
 * on the stack. */
static int run_file(lm_host *h, const char *path, const char *text, size_t size,
	int with_op, lm_error *err)
{
	lua_State *L = h->L;
	char chunk[4096];
	snprintf(chunk, sizeof chunk, "@%s", path);
	if (luaL_loadbuffer(L, text, size, chunk) != 0) {
		lm_error_set(err, LM_EFAIL, "%s", lua_tostring(L, -1));
		lua_pop(L, 1);
		return LM_EFAIL;
	}
	lua_newtable(L); /* env */
	if (with_op) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, h->op_view_ref);
		lua_setfield(L, -2, "op");
		lua_rawgeti(L, LUA_REGISTRYINDEX, h->sa_view_ref);
		lua_setfield(L, -2, "sa");
	}
	lua_createtable(L, 0, 1);
	lua_pushvalue(L, LUA_GLOBALSINDEX);
	lua_setfield(L, -2, "__index");
	lua_setmetatable(L, -2);
	lua_pushvalue(L, -1);
	lua_insert(L, -3); /* env, chunk, env */
	lua_setfenv(L, -2);
	if (protected_call(h, 0, 1, chunk, err) != 0) {
		lua_pop(L, 1);
		return LM_EFAIL;
	}
	return 0;
}

void lm_config_free(lm_config *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->dir);
	free(c->script_location);
	for (int i = 0; i < c->nversion_locations; i++)
		free(c->version_locations[i]);
	free(c->version_locations);
	free(c->url);
	free(c->version_table);
	free(c->version_table_schema);
	free(c->file_template);
	free(c->models);
	memset(c, 0, sizeof *c);
}

static char *join_path(const char *dir, const char *rel)
{
	if (rel[0] == '/' || !dir || strcmp(dir, ".") == 0)
		return strdup(rel);
	size_t n = strlen(dir) + strlen(rel) + 2;
	char *out = malloc(n);
	if (out)
		snprintf(out, n, "%s/%s", dir, rel);
	return out;
}

/* Typed field readers for the config table on top of the stack. */
static int config_string(lua_State *L, const char *file, const char *key,
	const char *dflt, char **out, lm_error *err)
{
	lua_getfield(L, -1, key);
	int t = lua_type(L, -1);
	if (t != LUA_TNIL && t != LUA_TSTRING) {
		lua_pop(L, 1);
		return lm_error_set(err, LM_EFAIL, "%s: '%s' must be a string, not a %s",
			file, key, lua_typename(L, t));
	}
	*out = xstrdup(t == LUA_TSTRING ? lua_tostring(L, -1) : dflt);
	lua_pop(L, 1);
	return 0;
}

static int config_bool(lua_State *L, const char *file, const char *key,
	int dflt, int *out, lm_error *err)
{
	lua_getfield(L, -1, key);
	int t = lua_type(L, -1);
	if (t != LUA_TNIL && t != LUA_TBOOLEAN) {
		lua_pop(L, 1);
		return lm_error_set(err, LM_EFAIL, "%s: '%s' must be true or false, not a %s",
			file, key, lua_typename(L, t));
	}
	*out = t == LUA_TNIL ? dflt : lua_toboolean(L, -1);
	lua_pop(L, 1);
	return 0;
}

static int config_number(lua_State *L, const char *file, const char *key,
	double dflt, double *out, lm_error *err)
{
	lua_getfield(L, -1, key);
	int t = lua_type(L, -1);
	if (t != LUA_TNIL && t != LUA_TNUMBER) {
		lua_pop(L, 1);
		return lm_error_set(err, LM_EFAIL, "%s: '%s' must be a number, not a %s",
			file, key, lua_typename(L, t));
	}
	*out = t == LUA_TNIL ? dflt : lua_tonumber(L, -1);
	lua_pop(L, 1);
	return 0;
}

int lm_host_load_config(lm_host *h, const char *config_path,
	const char *url_override, lm_config *out, lm_error *err)
{
	lua_State *L = h->L;
	int top = lua_gettop(L);
	size_t size = 0;
	char *text = NULL, *location = NULL;
	double slug = 40;
	char *models = NULL;
	int rc;
	memset(out, 0, sizeof *out);
	if (!(text = read_file(config_path, &size, err))) {
		rc = lm_error_set(err, LM_EFAIL,
			"no config file '%s'; run 'luamig init' to create one, or name it with -c",
			config_path);
		goto done;
	}
	if ((rc = run_file(h, config_path, text, size, 0, err)) != 0)
		goto done;
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1); /* a chunk that only sets globals: use its environment */
	} else if (!lua_istable(L, -1)) {
		rc = lm_error_set(err, LM_EFAIL, "%s: must return a table of settings",
			config_path);
		goto done;
	}
	lua_pushvalue(L, -1);
	lua_setfield(L, LUA_REGISTRYINDEX, "luamig.config");

	out->path = strdup(config_path);
	const char *slash = strrchr(config_path, '/');
	out->dir = slash ? strndup(config_path, (size_t)(slash - config_path + (slash == config_path)))
			 : strdup(".");
	if ((rc = config_string(L, config_path, "script_location", "migrations", &location, err)) ||
		(rc = config_string(L, config_path, "url", "sqlite:///./data/app.db", &out->url, err)) ||
		(rc = config_string(L, config_path, "version_table", "luamig_version", &out->version_table, err)) ||
		(rc = config_string(L, config_path, "version_table_schema", NULL, &out->version_table_schema, err)) ||
		(rc = config_string(L, config_path, "file_template", "%Y%m%d_%H%M%S_{rev}_{slug}", &out->file_template, err)) ||
		(rc = config_number(L, config_path, "truncate_slug_length", 40, &slug, err)) ||
		(rc = config_bool(L, config_path, "transaction_per_migration", 1, &out->transaction_per_migration, err)) ||
		(rc = config_bool(L, config_path, "render_as_batch", 1, &out->render_as_batch, err)) ||
		(rc = config_bool(L, config_path, "lock", 1, &out->lock, err)) ||
		(rc = config_number(L, config_path, "lock_timeout", 60, &out->lock_timeout, err)) ||
		(rc = config_string(L, config_path, "models", "models.lua", &models, err)))
		goto done;
	out->models = join_path(out->dir, models);
	out->truncate_slug_length = (int)slug;
	out->script_location = join_path(out->dir, location);

	lua_getfield(L, -1, "version_locations");
	if (lua_isnil(L, -1)) {
		out->version_locations = calloc(1, sizeof *out->version_locations);
		out->version_locations[0] = join_path(out->script_location, "versions");
		out->nversion_locations = 1;
	} else if (lua_istable(L, -1)) {
		int n = (int)lua_objlen(L, -1);
		out->version_locations = calloc((size_t)n + 1, sizeof *out->version_locations);
		for (int i = 0; i < n; i++) {
			lua_rawgeti(L, -1, i + 1);
			if (!lua_isstring(L, -1)) {
				rc = lm_error_set(err, LM_EFAIL,
					"%s: 'version_locations' must be a list of folder names",
					config_path);
				goto done;
			}
			out->version_locations[out->nversion_locations++] =
				join_path(out->dir, lua_tostring(L, -1));
			lua_pop(L, 1);
		}
	} else {
		rc = lm_error_set(err, LM_EFAIL,
			"%s: 'version_locations' must be a list of folder names", config_path);
		goto done;
	}
	lua_pop(L, 1);

	const char *env_url = getenv("DATABASE_URL");
	if (url_override || (env_url && *env_url)) {
		free(out->url);
		out->url = strdup(url_override ? url_override : env_url);
	}
	rc = 0;
done:
	free(text);
	free(location);
	free(models);
	lua_settop(L, top);
	if (rc != 0)
		lm_config_free(out);
	return rc;
}

/* The leading block comment of a revision file (--[[ … ]] or --[=[ … ]=]):
 * sets *body and *body_end around its text and returns where the comment ends, or
 * returns NULL when the file does not start with one. */
static const char *leading_comment(const char *text, const char **body,
	const char **body_end)
{
	const char *p = text;
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	if (strncmp(p, "--[", 3) != 0)
		return NULL;
	int level = 0;
	for (p += 3; *p == '='; p++)
		level++;
	if (*p != '[')
		return NULL;
	char close[16] = "]";
	for (int i = 0; i < level && i < 10; i++)
		strcat(close, "=");
	strcat(close, "]");
	const char *end = strstr(p + 1, close);
	if (!end)
		return NULL;
	*body = p + 1;
	*body_end = end;
	return end + strlen(close);
}

/* The leading comment, trimmed: its first paragraph is the revision's message. */
static char *leading_doc(const char *text)
{
	const char *p, *end;
	if (!leading_comment(text, &p, &end))
		return strdup("");
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' ||
				  end[-1] == '\n'))
		end--;
	return strndup(p, (size_t)(end - p));
}

/* Reads a revision attribute that is nil, a string or a list of strings. */
static int read_id_list(lua_State *L, int tbl, const char *path, const char *key,
	char ***out, int *count, lm_error *err)
{
	*out = NULL;
	*count = 0;
	lua_getfield(L, tbl, key);
	int t = lua_type(L, -1), rc = 0;
	if (t == LUA_TSTRING) {
		*out = calloc(1, sizeof **out);
		(*out)[0] = strdup(lua_tostring(L, -1));
		*count = 1;
	} else if (t == LUA_TTABLE) {
		int n = (int)lua_objlen(L, -1);
		*out = calloc((size_t)n + 1, sizeof **out);
		for (int i = 0; i < n; i++) {
			lua_rawgeti(L, -1, i + 1);
			if (lua_type(L, -1) != LUA_TSTRING) {
				rc = lm_error_set(err, LM_EFAIL,
					"%s: '%s' must be nil, a string or a list of strings",
					path, key);
				lua_pop(L, 1);
				break;
			}
			(*out)[(*count)++] = strdup(lua_tostring(L, -1));
			lua_pop(L, 1);
		}
	} else if (t != LUA_TNIL) {
		rc = lm_error_set(err, LM_EFAIL,
			"%s: '%s' must be nil, a string or a list of strings, not a %s",
			path, key, lua_typename(L, t));
	}
	lua_pop(L, 1);
	return rc;
}

/* ---- revision files ----------------------------------------------------- */

/* Where the leading --[[ … ]] comment ends (text itself when there is none). */
static const char *after_leading_doc(const char *text)
{
	const char *body, *body_end, *end = leading_comment(text, &body, &body_end);
	return end ? end : text;
}

/* One literal string, "…" or '…' without escapes, into a new string. */
static char *scan_string(const char **pp)
{
	const char *p = *pp;
	char q = *p;
	if (q != '"' && q != '\'')
		return NULL;
	const char *end = p + 1 + strcspn(p + 1, q == '"' ? "\"\\\n" : "'\\\n");
	if (*end != q)
		return NULL;
	*pp = end + 1;
	return strndup(p + 1, (size_t)(end - p - 1));
}

static const char *skip_spaces(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* nil, "a" or { "a", "b" } on one line. Returns 0 when it is something else. */
static int scan_list(const char **pp, char ***out, int *count)
{
	const char *p = *pp;
	if (strncmp(p, "nil", 3) == 0) {
		*pp = p + 3;
		return 1;
	}
	int braces = *p == '{';
	if (braces)
		p = skip_spaces(p + 1);
	while (*p && *p != '}') {
		char *item = scan_string(&p);
		if (!item)
			return 0;
		char **grown = realloc(*out, (size_t)(*count + 2) * sizeof *grown);
		if (!grown) {
			free(item);
			return 0;
		}
		*out = grown;
		(*out)[(*count)++] = item;
		if (!braces)
			break;
		p = skip_spaces(p);
		if (*p == ',' || *p == ';')
			p = skip_spaces(p + 1);
		else if (*p != '}')
			return 0;
	}
	if (braces && *p++ != '}')
		return 0;
	*pp = p;
	return 1;
}

/* Reads a revision's attributes from its text without running it, when they
 * are plain top-level assignments of literals (the shape `luamig revision`
 * writes): `current`, `history` and `heads` over thousands of files then
 * cost no Lua. Returns 0 (nothing kept) for anything else; the file then runs
 * as Lua to read them. */
static int scan_header(const char *text, lm_script *out)
{
	static const char *const keys[] = {"revision", "down_revision", "branch_labels",
		"depends_on", "transactional"};
	int seen[5] = {0}, ok = 1;
	out->transactional = 1;
	for (const char *line = after_leading_doc(text); ok && *line;) {
		const char *eol = line + strcspn(line, "\n");
		if (*line == '\0' || !strchr("_bdrst", *line)) {
			/* no attribute or guard starts so (most lines: bodies are indented) */
			line = *eol ? eol + 1 : eol;
			continue;
		}
		if (strncmp(line, "return", 6) == 0 || strncmp(line, "_G", 2) == 0 ||
			strncmp(line, "setfenv", 7) == 0)
			ok = 0; /* the attributes may come from elsewhere */
		for (int k = 0; ok && k < 5; k++) {
			size_t n = strlen(keys[k]);
			const char *p = line;
			if (strncmp(p, keys[k], n) != 0)
				continue;
			p = skip_spaces(p + n);
			if (*p != '=' || p[1] == '=')
				continue;
			p = skip_spaces(p + 1);
			if (seen[k]++) {
				ok = 0;
			} else if (k == 0) {
				ok = (out->id = scan_string(&p)) != NULL && *out->id;
			} else if (k == 4) {
				if (strncmp(p, "false", 5) == 0) {
					out->transactional = 0;
					p += 5;
				} else if (strncmp(p, "true", 4) == 0 || strncmp(p, "nil", 3) == 0) {
					p += *p == 't' ? 4 : 3;
				} else {
					ok = 0;
				}
			} else {
				char ***list = k == 1 ? &out->down : k == 2 ? &out->labels : &out->depends_on;
				int *count = k == 1 ? &out->ndown : k == 2 ? &out->nlabels : &out->ndepends_on;
				ok = scan_list(&p, list, count);
			}
			p = skip_spaces(p);
			if (ok && *p == ';')
				p = skip_spaces(p + 1);
			if (ok && p < eol && *p != '\r' && strncmp(p, "--", 2) != 0)
				ok = 0; /* more on the line than one assignment */
		}
		line = *eol ? eol + 1 : eol;
	}
	return ok && seen[0];
}

/* Runs a revision file, leaving the table of its attributes in s->ref.
 * With read_attributes the attributes fill s; without, they must agree with
 * what scan_header read. */
static int run_script(lm_host *h, lm_script *s, const char *text, size_t size,
	int read_attributes, lm_error *err)
{
	lua_State *L = h->L;
	const char *path = s->path;
	int top = lua_gettop(L), rc;
	if ((rc = run_file(h, path, text, size, 1, err)) != 0)
		goto done;
	/* a file may return its attributes as a table instead of setting globals */
	if (!lua_istable(L, -1))
		lua_pop(L, 1);
	int tbl = lua_gettop(L);
	lua_getfield(L, tbl, "revision");
	if (lua_type(L, -1) != LUA_TSTRING || !*lua_tostring(L, -1)) {
		rc = lm_error_set(err, LM_EFAIL,
			"%s: no revision id: the file must set revision = \"<id>\"", path);
		goto done;
	}
	if (!read_attributes) {
		if (strcmp(s->id, lua_tostring(L, -1)) != 0)
			rc = lm_error_set(err, LM_EFAIL,
				"%s: running the file set revision = \"%s\", not \"%s\" as written",
				path, lua_tostring(L, -1), s->id);
		goto keep;
	}
	s->id = strdup(lua_tostring(L, -1));
	lua_pop(L, 1);
	if ((rc = read_id_list(L, tbl, path, "down_revision", &s->down, &s->ndown, err)) ||
		(rc = read_id_list(L, tbl, path, "depends_on", &s->depends_on, &s->ndepends_on, err)) ||
		(rc = read_id_list(L, tbl, path, "branch_labels", &s->labels, &s->nlabels, err)))
		goto done;
	lua_getfield(L, tbl, "transactional");
	s->transactional = lua_isnil(L, -1) || lua_toboolean(L, -1);
keep:
	if (rc == 0) {
		lua_pushvalue(L, tbl);
		s->ref = luaL_ref(L, LUA_REGISTRYINDEX);
	}
done:
	lua_settop(L, top);
	return rc;
}

int lm_host_load_script(lm_host *h, int folder, const char *name, const char *path,
	int keep_text, lm_script *out, lm_error *err)
{
	size_t size = 0;
	char *text;
	int rc = 0;
	memset(out, 0, sizeof *out);
	out->ref = LUA_NOREF;
	if (!(text = read_file_at(folder, name, path, &size, err)))
		return LM_EFAIL;
	out->path = strdup(path);
	out->doc = leading_doc(text);
	if (!scan_header(text, out)) {
		/* start over: the Lua run reads every attribute */
		char *keep_path = out->path, *keep_doc = out->doc;
		out->path = out->doc = NULL;
		lm_script_free(h, out);
		out->path = keep_path;
		out->doc = keep_doc;
		out->ref = LUA_NOREF;
		rc = run_script(h, out, text, size, 1, err);
	} else if (keep_text) {
		out->text = text;
		out->size = size;
		text = NULL;
	}
	free(text);
	if (rc != 0)
		lm_script_free(h, out);
	return rc;
}

int lm_host_prepare_script(lm_host *h, lm_script *s, lm_error *err)
{
	size_t size = 0;
	char *text;
	if (s->ref != LUA_NOREF)
		return 0;
	if (s->text) {
		text = s->text;
		size = s->size;
		s->text = NULL;
	} else if (!(text = read_file(s->path, &size, err))) {
		return LM_EFAIL;
	}
	int rc = run_script(h, s, text, size, 0, err);
	free(text);
	return rc;
}

static void free_list(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void lm_script_free(lm_host *h, lm_script *s)
{
	if (!s)
		return;
	if (h && s->ref != LUA_NOREF && s->ref > 0)
		luaL_unref(h->L, LUA_REGISTRYINDEX, s->ref);
	free(s->path);
	free(s->id);
	free_list(s->down, s->ndown);
	free_list(s->depends_on, s->ndepends_on);
	free_list(s->labels, s->nlabels);
	free(s->doc);
	free(s->text);
	memset(s, 0, sizeof *s);
}

int lm_host_run_script(lm_host *h, lm_script *s, int upgrade, lm_error *err)
{
	lua_State *L = h->L;
	const char *fn = upgrade ? "upgrade" : "downgrade";
	char chunk[4096];
	int top = lua_gettop(L), rc;
	if ((rc = lm_host_prepare_script(h, s, err)) != 0)
		return rc;
	snprintf(chunk, sizeof chunk, "@%s", s->path);
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref);
	lua_getfield(L, -1, fn);
	if (!lua_isfunction(L, -1)) {
		rc = lm_error_set(err, LM_EFAIL, "%s: no %s() function", s->path, fn);
		goto done;
	}
	rc = protected_call(h, 0, 0, chunk, err);
done:
	lua_settop(L, top);
	return rc;
}

/* ---- autogenerate ------------------------------------------------------- */

static void copy_field(lua_State *L, int tbl, const char *key, lm_buf *out)
{
	size_t n = 0;
	lua_getfield(L, tbl, key);
	const char *s = lua_tolstring(L, -1, &n);
	if (s)
		lm_buf_add(out, s, n);
	lua_pop(L, 1);
}

int lm_host_autogenerate(lm_host *h, lm_conn *conn, const lm_config *config,
	lm_buf *upgrades, lm_buf *downgrades, lm_buf *diffs, int *ndiffs,
	lm_error *err)
{
	lua_State *L = h->L;
	int top = lua_gettop(L), rc;
	char chunk[4096];
	lm_conn **box;
	*ndiffs = 0;
	snprintf(chunk, sizeof chunk, "@%s", config->models);
	lua_getfield(L, LUA_REGISTRYINDEX, "luamig.raw");
	box = lua_touserdata(L, -1);
	*box = conn;
	lua_pop(L, 1);

	lua_getglobal(L, "require");
	lua_pushliteral(L, "luamig.autogen");
	if ((rc = protected_call(h, 1, 1, NULL, err)) != 0)
		goto done;
	lua_getfield(L, -1, "run");
	lua_createtable(L, 0, 6);
	lua_pushstring(L, conn->methods->dialect);
	lua_setfield(L, -2, "dialect");
	lua_getfield(L, LUA_REGISTRYINDEX, "luamig.raw");
	lua_setfield(L, -2, "raw");
	lua_getfield(L, LUA_REGISTRYINDEX, "luamig.config");
	lua_setfield(L, -2, "config");
	lua_pushstring(L, config->models);
	lua_setfield(L, -2, "models");
	lua_pushstring(L, config->version_table);
	lua_setfield(L, -2, "version_table");
	if (config->version_table_schema) {
		lua_pushstring(L, config->version_table_schema);
		lua_setfield(L, -2, "version_table_schema");
	}
	/* errors in models.lua are positioned there */
	if ((rc = protected_call(h, 1, 1, chunk, err)) != 0)
		goto done;
	if (!lua_istable(L, -1)) {
		rc = lm_error_set(err, LM_EFAIL, "luamig.autogen.run returned no result table");
		goto done;
	}
	int result = lua_gettop(L);
	copy_field(L, result, "upgrades", upgrades);
	copy_field(L, result, "downgrades", downgrades);
	lua_getfield(L, result, "diffs");
	if (lua_istable(L, -1)) {
		*ndiffs = (int)lua_objlen(L, -1);
		for (int i = 1; i <= *ndiffs; i++) {
			lua_rawgeti(L, -1, i);
			lm_buf_printf(diffs, "%s\n", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
			lua_pop(L, 1);
		}
	}
	rc = 0;
done:
	h->has_ctx = 0;
	lm_host_close_statements(h);
	*box = NULL;
	lua_settop(L, top);
	return rc;
}
