/*
 * dr_check.h — the pre-flight of the DR database (pgferry check, and the
 * sink at start): what the DR role must be allowed for the sink and clone
 * to run as a role that is no superuser (sql/dr_setup.sql grants it), and
 * whether the stream's replication origin is free.
 */
#ifndef PGFERRY_DR_CHECK_H
#define PGFERRY_DR_CHECK_H

#include "pgferry/check.h"

#include <libpq-fe.h>
#include <stdbool.h>

/* The DR role's rights: CREATE on the database (or the pgferry schema its
 * own), EXECUTE on the replication origin functions, SET on
 * session_replication_role. One line each into r. conn: a plain session on
 * the DR database as the configured role. */
void dr_check_rights(PGconn *conn, check_report_t *r);

/* Whether the stream's replication origin is free: origin is its name when
 * the caller knows the primary (clone), NULL to take it from
 * pgferry.identity (the sink). A clone meets an existing origin that is
 * not its own as an error; the sink one that another session holds (a
 * warning at start, where the sink waits for it). The check takes the
 * origin for a moment and gives it back. */
void dr_check_origin(PGconn *conn, const char *origin, bool for_clone, check_report_t *r);

#endif
