/*
 * pgsession.h — plain (non-replication) libpq sessions for the one-shot
 * commands (clone, verify): connecting and running a query, with errors
 * that name the side ("primary", "DR database") and the setting to check;
 * and the libpq helpers every folder shares (a connection's last error as
 * one line, quoted identifiers).
 */
#ifndef PGFERRY_PGSESSION_H
#define PGFERRY_PGSESSION_H

#include <libpq-fe.h>

#include "pgferry/error.h"

/* Connects with conninfo; options (may be NULL) is the startup "options"
 * string. NULL and err set on failure. */
PGconn *pgsession_connect(const char *conninfo, const char *application, const char *options,
                          const char *side, pgf_error_t *err);
/* Runs sql with n text parameters; the result, or NULL and err set (naming
 * the side and the statement). */
PGresult *pgsession_query(PGconn *c, const char *side, const char *sql, int n,
                          const char *const *params, pgf_error_t *err);

/* conninfo (keywords or URI) rewritten without its password, for a child
 * process's command line; *password gets the password (NULL if none), to be
 * handed over in the environment. Both are the caller's to free. NULL and
 * err set when conninfo does not parse. */
char *pgsession_conninfo_without_password(const char *conninfo, char **password, pgf_error_t *err);

/* c's last error (PQerrorMessage) copied into buf without its trailing
 * newlines, fit for the middle of a sentence; "out of memory" when c is
 * NULL (PQconnectdb could not allocate). Returns buf. */
const char *pgsession_error_text(const PGconn *c, char *buf, size_t len);
/* s quoted as an SQL identifier for c's server (PQescapeIdentifier), in
 * memory the caller frees with free(); NULL when out of memory. */
char *pgsession_quote_ident(PGconn *c, const char *s);

#endif
