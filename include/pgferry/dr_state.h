/*
 * dr_state.h — the SQL files of sql/, built into the binary, and the
 * installation of pgferry's state on the DR database.
 *
 * The files in sql/ are the one source of truth: what a DBA reviews is what
 * runs (relay/dr/sql_embed.c includes them byte for byte at build time).
 */
#ifndef PGFERRY_DR_STATE_H
#define PGFERRY_DR_STATE_H

#include "pgferry/error.h"

#include <libpq-fe.h>

/* NUL-terminated texts of sql/dr_state.sql, sql/dr_lag_history.sql,
 * sql/dr_events.sql and sql/primary_ddl.sql. */
extern const char pgferry_sql_dr_state[];
extern const char pgferry_sql_dr_lag_history[];
extern const char pgferry_sql_dr_events[];
extern const char pgferry_sql_primary_ddl[];

/* Runs one of those texts in a transaction, serialised with other pgferry
 * processes doing the same (an advisory lock), so two processes starting at
 * once do not trip over each other's CREATE OR REPLACE. what names it in an
 * error. conn must not be in pipeline mode. */
int dr_state_run(PGconn *conn, const char *sql, const char *what, pgf_error_t *err);

/* dr_state_run of sql/dr_state.sql. */
int dr_state_install(PGconn *conn, pgf_error_t *err);

#endif
