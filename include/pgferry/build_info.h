/*
 * build_info.h — what pgferry is built of: its version and the versions of
 * the libraries the process runs with, for `pgferry version` and the
 * pgferry_build_info series of /metrics.
 */
#ifndef PGFERRY_BUILD_INFO_H
#define PGFERRY_BUILD_INFO_H

#include "pgferry/buf.h"

#include <stddef.h>

#define BUILD_INFO_LIBRARIES 8

typedef struct build_info_library {
	const char *name; /* "libpq" */
	char version[48]; /* "15.18", asked of the library at run time */
} build_info_library_t;

/* Fills libs with every library pgferry links (BUILD_INFO_LIBRARIES). */
void build_info_libraries(build_info_library_t libs[BUILD_INFO_LIBRARIES]);
/* Appends the pgferry_build_info series (value 1, versions as labels). */
void build_info_render_metrics(buf_t *b);

#endif
