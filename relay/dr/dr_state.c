/*
 * dr_state.c — installs pgferry's state (sql/dr_state.sql) on the DR
 * database.
 */
#include "pgferry/dr_state.h"
#include "pgferry/pgsession.h"

#include <stdio.h>
#include <string.h>

int dr_state_run(PGconn *conn, const char *sql, const char *what, pgf_error_t *err)
{
	/* one transaction, serialised by an advisory lock: CREATE OR REPLACE
	 * FUNCTION from two sessions at once fails with "tuple concurrently
	 * updated" otherwise */
	static const char *const begin =
	        "BEGIN; SET LOCAL client_min_messages = warning; "
	        "SELECT pg_advisory_xact_lock(hashtext('pgferry.dr_state'))";
	PGresult *res;
	int st;

	res = PQexec(conn, begin);
	st = PQresultStatus(res);
	PQclear(res);
	if (st == PGRES_TUPLES_OK) {
		res = PQexec(conn, sql);
		st = PQresultStatus(res);
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
			PQclear(res);
			res = PQexec(conn, "COMMIT");
			st = PQresultStatus(res);
		}
	}
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		char msg[400];

		pgsession_error_text(conn, msg, sizeof(msg));
		PQclear(res);
		res = PQexec(conn, "ROLLBACK");
		PQclear(res);
		error_set(err, PGF_E_DATABASE, "installing %s failed: %s", what, msg);
		error_hint(err, "The role needs CREATE on the database and the REPLICATION "
		                "attribute or superuser (for replication origins).");
		return PGF_ERR;
	}
	PQclear(res);
	return PGF_OK;
}

int dr_state_install(PGconn *conn, pgf_error_t *err)
{
	return dr_state_run(conn, pgferry_sql_dr_state, "pgferry's state (sql/dr_state.sql)", err);
}
