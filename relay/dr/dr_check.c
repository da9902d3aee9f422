/*
 * dr_check.c — the pre-flight of the DR database (see dr_check.h). The
 * list of functions is the one sql/dr_setup.sql grants.
 */
#include "pgferry/dr_check.h"
#include "pgferry/pgsession.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What apply and clone call on the DR side; a superuser's unless granted. */
static const char *const origin_functions[] = {
        "pg_catalog.pg_replication_origin_create(text)",
        "pg_catalog.pg_replication_origin_oid(text)",
        "pg_catalog.pg_replication_origin_session_setup(text)",
        "pg_catalog.pg_replication_origin_session_reset()",
        "pg_catalog.pg_replication_origin_session_is_setup()",
        "pg_catalog.pg_replication_origin_session_progress(boolean)",
        "pg_catalog.pg_replication_origin_xact_setup(pg_lsn,timestamp with time zone)",
        "pg_catalog.pg_replication_origin_xact_reset()",
        "pg_catalog.pg_replication_origin_advance(text,pg_lsn)",
        "pg_catalog.pg_replication_origin_progress(text,boolean)",
        NULL,
};

static const char rights_sql[] =
        "SELECT quote_ident(current_user), current_database(), "
        "has_database_privilege(current_database(), 'CREATE'), "
        "(SELECT pg_get_userbyid(nspowner) FROM pg_catalog.pg_namespace WHERE nspname = "
        "'pgferry'), "
        "(SELECT pg_has_role(current_user, nspowner, 'USAGE') FROM pg_catalog.pg_namespace "
        "WHERE nspname = 'pgferry'), "
        "has_parameter_privilege('session_replication_role', 'SET'), "
        "has_table_privilege('pg_catalog.pg_replication_origin', 'SELECT'), "
        "(SELECT string_agg(f, ', ' ORDER BY o) FROM unnest($1::text[]) WITH ORDINALITY u(f, "
        "o) WHERE NOT has_function_privilege(f, 'EXECUTE'))";

static void query_failed(PGconn *conn, PGresult *res, const char *name, check_report_t *r)
{
	const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	char msg[400];

	check_add(r, CHECK_ERROR, name,
	          "check dr_conninfo and the DR server's version (15 or later)",
	          "reading the DR database's setup failed: %s",
	          m ? m : pgsession_error_text(conn, msg, sizeof(msg)));
}

void dr_check_rights(PGconn *conn, check_report_t *r)
{
	char list[2048] = "{";
	const char *params[1] = {list};
	PGresult *res;
	const char *role, *db;
	char fix[600];
	int i;

	for (i = 0; origin_functions[i]; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s\"%s\"", i ? "," : "",
		         origin_functions[i]);
	snprintf(list + strlen(list), sizeof(list) - strlen(list), "}");
	res = PQexecParams(conn, rights_sql, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		query_failed(conn, res, "dr_rights", r);
		PQclear(res);
		return;
	}
	role = PQgetvalue(res, 0, 0);
	db = PQgetvalue(res, 0, 1);
	/* the sink keeps its state in the schema pgferry, which it creates
	 * and whose functions it replaces at every start */
	if (!PQgetisnull(res, 0, 3) && strcmp(PQgetvalue(res, 0, 4), "t") != 0) {
		snprintf(fix, sizeof(fix),
		         "as a superuser on the DR database: REASSIGN OWNED BY %s TO %s, or run "
		         "the sink as that role",
		         PQgetvalue(res, 0, 3), role);
		check_add(
		        r, CHECK_ERROR, "dr_schema", fix,
		        "the schema pgferry belongs to %s: the role %s cannot update its functions",
		        PQgetvalue(res, 0, 3), role);
	} else if (!PQgetisnull(res, 0, 3))
		check_add(r, CHECK_OK, "dr_schema", NULL, "the schema pgferry exists and is %s's",
		          PQgetvalue(res, 0, 3));
	else if (strcmp(PQgetvalue(res, 0, 2), "t") != 0) {
		snprintf(fix, sizeof(fix),
		         "on the DR database: GRANT CREATE ON DATABASE %s TO %s; (see "
		         "sql/dr_setup.sql)",
		         db, role);
		check_add(r, CHECK_ERROR, "dr_schema", fix,
		          "the role %s may not create the schema pgferry in the database %s", role,
		          db);
	} else
		check_add(r, CHECK_OK, "dr_schema", NULL,
		          "the role %s may create the schema pgferry", role);

	if (!PQgetisnull(res, 0, 7) || strcmp(PQgetvalue(res, 0, 6), "t") != 0) {
		snprintf(fix, sizeof(fix),
		         "run sql/dr_setup.sql on the DR database as a superuser (it grants "
		         "EXECUTE on the pg_replication_origin_* functions and SELECT on "
		         "pg_replication_origin to %s)",
		         role);
		check_add(r, CHECK_ERROR, "dr_origin_rights", fix,
		          "the role %s may not use replication origins (the apply progress): no "
		          "%s%s",
		          role,
		          PQgetisnull(res, 0, 7) ? "SELECT on pg_replication_origin"
		                                 : "EXECUTE on ",
		          PQgetisnull(res, 0, 7) ? "" : PQgetvalue(res, 0, 7));
	} else
		check_add(r, CHECK_OK, "dr_origin_rights", NULL,
		          "the role %s may use replication origins", role);

	if (strcmp(PQgetvalue(res, 0, 5), "t") != 0) {
		snprintf(fix, sizeof(fix),
		         "on the DR database: GRANT SET ON PARAMETER session_replication_role TO "
		         "%s;",
		         role);
		check_add(r, CHECK_ERROR, "dr_replication_role", fix,
		          "the role %s may not set session_replication_role: applied rows would "
		          "fire the DR side's triggers and foreign-key checks",
		          role);
	} else
		check_add(r, CHECK_OK, "dr_replication_role", NULL,
		          "the role %s may set session_replication_role", role);
	PQclear(res);
}

/* Takes the origin for this session and gives it back: the only way to
 * learn whether another session holds it (no view shows who does). */
static void try_origin(PGconn *conn, const char *origin, bool for_clone, check_report_t *r)
{
	const char *params[1] = {origin};
	PGresult *res = PQexecParams(conn, "SELECT pg_replication_origin_session_setup($1)", 1,
	                             NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		char msg[400];
		/* a sink retries until the origin is free; at start that is no reason
		 * to stop */
		check_add(r, r->at_start ? CHECK_WARNING : CHECK_ERROR, "replication_origin",
		          for_clone ? "stop the sink or clone that uses this DR database's stream"
		                    : "only one sink may apply a stream: stop the other sink or "
		                      "clone (pg_stat_activity shows that PID)",
		          "the replication origin \"%s\" of this stream is in use by another "
		          "session: %s",
		          origin, m ? m : pgsession_error_text(conn, msg, sizeof(msg)));
		PQclear(res);
		return;
	}
	PQclear(res);
	res = PQexec(conn, "SELECT pg_replication_origin_session_reset()");
	PQclear(res);
	check_add(r, CHECK_OK, "replication_origin", NULL,
	          "the replication origin \"%s\" of this stream is free", origin);
}

#define WORKER_ORIGINS_SQL                                                                         \
	"(SELECT string_agg(roname, ', ' ORDER BY roname) FROM pg_catalog.pg_replication_origin "  \
	"WHERE left(roname, length($1) + 2) = $1 || '_w' AND substr(roname, length($1) + 3) ~ "    \
	"'^[0-9]+$')"

void dr_check_origin(PGconn *conn, const char *origin, bool for_clone, check_report_t *r)
{
	PGresult *res;
	const char *params[1] = {origin};
	bool exists, mine;

	if (origin == NULL) {
		/* the table is named only once it exists: a query naming it fails
		 * at parse time even where it would not be read */
		res = PQexec(conn, "SELECT to_regclass('pgferry.identity') IS NULL");
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
		    strcmp(PQgetvalue(res, 0, 0), "f") == 0) {
			PQclear(res);
			res = PQexec(conn, "SELECT (SELECT origin FROM pgferry.identity)");
		} else if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			PQclear(res);
			res = PQexec(conn, "SELECT NULL::text");
		}
		if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
			query_failed(conn, res, "replication_origin", r);
			PQclear(res);
			return;
		}
		if (PQgetisnull(res, 0, 0)) {
			check_add(r, CHECK_OK, "replication_origin", NULL,
			          "no stream recorded yet: the origin is made on first contact");
			PQclear(res);
			return;
		}
		{
			char name[600];
			snprintf(name, sizeof(name), "%s", PQgetvalue(res, 0, 0));
			PQclear(res);
			/* a missing one is made again from pgferry.progress */
			try_origin(conn, name, false, r);
		}
		return;
	}
	res = PQexec(conn, "SELECT to_regclass('pgferry.clone') IS NOT NULL");
	mine = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	       strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	/* the third: parallel apply's origins a dropped copy left behind
	 * (clone refuses them: they would count in the applied position) */
	res = PQexecParams(conn,
	                   mine ? "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_origin "
	                          "WHERE roname = $1), EXISTS (SELECT 1 FROM pgferry.clone WHERE "
	                          "origin = $1), " WORKER_ORIGINS_SQL
	                        : "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_origin "
	                          "WHERE roname = $1), false, " WORKER_ORIGINS_SQL,
	                   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		query_failed(conn, res, "replication_origin", r);
		PQclear(res);
		return;
	}
	exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	mine = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	if (!exists && !PQgetisnull(res, 0, 2) && for_clone) {
		char fix[700];
		snprintf(fix, sizeof(fix),
		         "if nothing uses them any more: SELECT pg_replication_origin_drop(roname) "
		         "FROM pg_replication_origin WHERE starts_with(roname, '%s_w')",
		         origin);
		check_add(
		        r, CHECK_ERROR, "replication_origin", fix,
		        "replication origins of an earlier parallel apply of this stream exist "
		        "already on this DR cluster (%s): a dropped DR database left them behind, "
		        "and they would count in this copy's applied position",
		        PQgetvalue(res, 0, 2));
		PQclear(res);
		return;
	}
	PQclear(res);
	if (!exists)
		check_add(r, CHECK_OK, "replication_origin", NULL,
		          "the replication origin \"%s\" is free (clone creates it)", origin);
	else if (!mine && for_clone) {
		char fix[700];
		snprintf(fix, sizeof(fix),
		         "give each DR database its own slot (slot_name); if nothing uses the "
		         "origin any more: SELECT pg_replication_origin_drop('%s')",
		         origin);
		check_add(
		        r, CHECK_ERROR, "replication_origin", fix,
		        "the replication origin \"%s\" exists already on this DR cluster: another "
		        "DR database follows the same stream",
		        origin);
	} else
		try_origin(conn, origin, for_clone, r);
}
