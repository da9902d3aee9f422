/*
 * primary_check.c — checks of the primary's setup before a slot is used
 * (see primary_check.h): the source runs them on every session, clone
 * before it creates its slot.
 */
#include "pgferry/primary_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The sequences of the published tables (owned: serial and identity
 * columns; or named by a column default), each with the first table using
 * it, whether the role may read it, and its last value. has_sequence_privilege
 * tells "no privilege" from "never called", which pg_sequences shows alike
 * (NULL). */
static const char sequences_sql[] =
        "WITH pub AS (SELECT DISTINCT format('%I.%I', schemaname, tablename)::regclass AS rel "
        "FROM pg_catalog.pg_publication_tables WHERE pubname = $1), "
        "seqs AS (SELECT d.objid AS seq, d.refobjid AS rel FROM pg_catalog.pg_depend d "
        "JOIN pub ON d.refobjid = pub.rel WHERE d.classid = 'pg_catalog.pg_class'::regclass "
        "AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i') "
        "UNION SELECT d.refobjid, ad.adrelid FROM pg_catalog.pg_attrdef ad "
        "JOIN pub ON ad.adrelid = pub.rel JOIN pg_catalog.pg_depend d ON d.classid = "
        "'pg_catalog.pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = "
        "'pg_catalog.pg_class'::regclass) "
        "SELECT format('%I.%I', n.nspname, c.relname), min(format('%I.%I', tn.nspname, "
        "t.relname)), has_sequence_privilege(s.seq, 'SELECT, USAGE'), CASE WHEN "
        "has_sequence_privilege(s.seq, 'SELECT, USAGE') THEN "
        "pg_catalog.pg_sequence_last_value(s.seq::regclass)::text END, quote_ident(n.nspname), "
        "quote_ident(current_user) "
        "FROM seqs s JOIN pg_catalog.pg_class c ON c.oid = s.seq AND c.relkind = 'S' "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_catalog.pg_class t ON t.oid = s.rel "
        "JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace "
        "GROUP BY s.seq, 1, 5, 6 ORDER BY 1";

PGresult *primary_list_sequences(PGconn *conn, const char *publication, pgf_error_t *err)
{
	const char *params[1] = {publication};
	PGresult *res;

	res = PQexecParams(conn, sequences_sql, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		char msg[400];
		size_t n;
		snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
		n = strlen(msg);
		while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
			msg[--n] = '\0';
		PQclear(res);
		error_set(err, PGF_E_DATABASE,
		          "listing the published tables' sequences on the primary failed: %s", msg);
		return NULL;
	}
	return res;
}

int primary_check_sequences(PGconn *conn, const char *publication, pgf_error_t *err)
{
	PGresult *res = primary_list_sequences(conn, publication, err);
	const char *role, *schema;
	int i, first = -1, unreadable = 0;

	if (res == NULL)
		return PGF_ERR;
	for (i = 0; i < PQntuples(res); i++)
		if (strcmp(PQgetvalue(res, i, 2), "t") != 0 && unreadable++ == 0)
			first = i;
	if (first < 0) {
		PQclear(res);
		return PGF_OK;
	}
	role = PQgetvalue(res, first, 5);
	schema = PQgetvalue(res, first, 4);
	error_set(err, PGF_E_CONFIG,
	          "the role %s cannot read the sequence %s of the published table %s: it has "
	          "neither SELECT nor USAGE on it (%d such sequences in all)",
	          PQgetvalue(res, first, 5), PQgetvalue(res, first, 0), PQgetvalue(res, first, 1),
	          unreadable);
	error_detail(err, "pg_sequences shows no value for a sequence the role may not read, so "
	                  "it would never reach the DR side, and after a promotion the DR "
	                  "database would hand out numbers the primary already used.");
	error_hint(err,
	           "On the primary: GRANT SELECT ON ALL SEQUENCES IN SCHEMA %s TO %s; and, "
	           "for sequences made later, ALTER DEFAULT PRIVILEGES IN SCHEMA %s GRANT SELECT "
	           "ON SEQUENCES TO %s; (see sql/primary_setup.sql)",
	           schema, role, schema, role);
	PQclear(res);
	return PGF_ERR;
}
