/*
 * pgtools.h — PostgreSQL's client programs run by clone and drill.
 */
#ifndef PGFERRY_PGTOOLS_H
#define PGFERRY_PGTOOLS_H

#include "pgferry/error.h"

#include <stdbool.h>
#include <stddef.h>

/* The directory of pg_dump and pg_restore: given (an option), else
 * PG_BINDIR, else pg_config --bindir, else "" (searched in PATH). */
void pgtools_find_bindir(const char *given, char *out, size_t len);

/* Runs argv[0] from bindir ("" : PATH) with stdout to out_path (NULL:
 * inherited), stderr to err_path and PGPASSWORD = password (NULL:
 * inherited); true when it exits 0, else false with err naming the program
 * and the first line it printed. */
bool pgtools_run(const char *bindir, char **argv, const char *password, const char *out_path,
                 const char *err_path, pgf_error_t *err);

#endif
