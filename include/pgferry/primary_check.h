/*
 * primary_check.h — checks of the primary's setup that the source and
 * clone run before they use a slot, so a setup that would lose data
 * silently stops them with the cause and the fix instead.
 */
#ifndef PGFERRY_PRIMARY_CHECK_H
#define PGFERRY_PRIMARY_CHECK_H

#include "pgferry/check.h"
#include "pgferry/config.h"
#include "pgferry/error.h"

#include <libpq-fe.h>

/* Every sequence that a table of the publication owns or takes defaults
 * from must be readable by the session's role: pg_sequences shows NULL for
 * one it may not read (as for one never used), so its value would never be
 * shipped and a promoted DR copy would hand out numbers the primary already
 * used. PGF_ERR with err naming the sequence, the table, the role and the
 * GRANT that fixes it (PGF_E_CONFIG), or the failed query (PGF_E_DATABASE).
 * conn: a plain session on the primary, not in pipeline mode. */
int primary_check_sequences(PGconn *conn, const char *publication, pgf_error_t *err);

/* The sequences of the publication's tables, one row each, ordered:
 * 0 sequence ("schema"."name" as format('%I.%I') writes it), 1 the first
 * table using it, 2 readable by the role ('t'/'f'), 3 its last value (NULL
 * when unreadable or never called), 4 its schema and 5 the role, quoted where needed (quote_ident).
 * The caller PQclears it; NULL and err set when the query fails. */
PGresult *primary_list_sequences(PGconn *conn, const char *publication, pgf_error_t *err);

/* The pre-flight of the primary (pgferry check): wal_level, a free slot
 * and WAL sender, REPLICATION, the publication and its tables, the role's
 * SELECT on the published tables and their sequences. One line each into
 * r. for_clone: clone creates the slot (an existing one is an error) and
 * reads the tables (no SELECT is an error, not a warning). conn: a plain
 * session on the primary as the configured role. */
void primary_check_report(PGconn *conn, const config_t *cfg, bool for_clone, check_report_t *r);

#endif
