/* embedded.h - Lua modules compiled into the binary (tools/embed_lua.cmake). */
#ifndef LM_EMBEDDED_H
#define LM_EMBEDDED_H

#include <stddef.h>

typedef struct lm_embedded_module {
	const char *name;      /* "luamig.op" */
	const char *chunkname; /* "@lua/luamig/op.lua": errors point at the source file */
	const char *source;
	size_t size;
} lm_embedded_module;

/* Terminated by an entry whose name is NULL. */
extern const lm_embedded_module lm_embedded_modules[];

#endif
