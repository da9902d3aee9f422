/*
 * primary_check.c — checks of the primary's setup before a slot is used
 * (see primary_check.h): the source runs them on every session, clone
 * before it creates its slot; `pgferry check` runs them all.
 */
#include "pgferry/pgsession.h"
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

/* The primary's facts the pre-flight needs, in one round trip. $1 the
 * publication, $2 the slot. */
static const char setup_sql[] =
        "SELECT current_setting('wal_level'), "
        "current_setting('max_replication_slots')::int, "
        "(SELECT count(*) FROM pg_catalog.pg_replication_slots), "
        "current_setting('max_wal_senders')::int, "
        "(SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'walsender'), "
        "(SELECT rolreplication OR rolsuper FROM pg_catalog.pg_roles WHERE rolname = "
        "current_user), "
        "EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1), "
        "(SELECT count(*) FROM pg_catalog.pg_publication_tables WHERE pubname = $1), "
        "s.plugin, s.database, s.active_pid, s.wal_status, current_database(), "
        "quote_ident(current_user), "
        "(SELECT count(*) FROM pg_catalog.pg_publication_tables WHERE pubname = $1 AND NOT "
        "has_table_privilege(format('%I.%I', schemaname, tablename), 'SELECT')), "
        "(SELECT min(format('%I.%I', schemaname, tablename)) FROM "
        "pg_catalog.pg_publication_tables WHERE pubname = $1 AND NOT "
        "has_table_privilege(format('%I.%I', schemaname, tablename), 'SELECT')), "
        "(SELECT min(quote_ident(schemaname)) FROM pg_catalog.pg_publication_tables WHERE "
        "pubname = $1 AND NOT has_table_privilege(format('%I.%I', schemaname, tablename), "
        "'SELECT')) "
        "FROM (SELECT 1) one LEFT JOIN pg_catalog.pg_replication_slots s ON s.slot_name = $2";

enum {
	F_WAL_LEVEL,
	F_MAX_SLOTS,
	F_SLOTS,
	F_MAX_SENDERS,
	F_SENDERS,
	F_REPLICATION,
	F_PUB_EXISTS,
	F_PUB_TABLES,
	F_SLOT_PLUGIN,
	F_SLOT_DB,
	F_SLOT_PID,
	F_SLOT_WAL_STATUS,
	F_DATABASE,
	F_ROLE,
	F_NO_SELECT,
	F_NO_SELECT_FIRST,
	F_NO_SELECT_SCHEMA,
};

static void check_slots(PGresult *res, const config_t *cfg, bool for_clone, check_report_t *r)
{
	bool exists = !PQgetisnull(res, 0, F_SLOT_PLUGIN);
	int max = atoi(PQgetvalue(res, 0, F_MAX_SLOTS)), used = atoi(PQgetvalue(res, 0, F_SLOTS));
	const char *fix_conf = "raise max_replication_slots in postgresql.conf and restart the "
	                       "primary, or drop a slot nobody uses "
	                       "(SELECT pg_drop_replication_slot('name'))";

	if (exists && for_clone)
		check_add(r, CHECK_ERROR, "replication_slot",
		          "choose another slot_name for this DR copy, or drop the old slot if "
		          "nothing uses it (SELECT pg_drop_replication_slot(...))",
		          "the slot \"%s\" exists already on the primary; clone creates its own",
		          cfg->slot_name);
	else if (exists &&
	         (strcmp(PQgetvalue(res, 0, F_SLOT_PLUGIN), "pgoutput") != 0 ||
	          strcmp(PQgetvalue(res, 0, F_SLOT_DB), PQgetvalue(res, 0, F_DATABASE)) != 0))
		check_add(
		        r, CHECK_ERROR, "replication_slot",
		        "set slot_name to a slot of its own for pgferry",
		        "the slot \"%s\" exists but is not a pgoutput slot of the database \"%s\" "
		        "(plugin %s, database %s)",
		        cfg->slot_name, PQgetvalue(res, 0, F_DATABASE),
		        PQgetvalue(res, 0, F_SLOT_PLUGIN), PQgetvalue(res, 0, F_SLOT_DB));
	else if (exists && strcmp(PQgetvalue(res, 0, F_SLOT_WAL_STATUS), "lost") == 0)
		check_add(r, CHECK_ERROR, "replication_slot",
		          "the DR copy needs a new pgferry clone with a new slot",
		          "the slot \"%s\" has lost WAL it needed (wal_status lost)",
		          cfg->slot_name);
	else if (exists && !PQgetisnull(res, 0, F_SLOT_PID))
		check_add(r, CHECK_WARNING, "replication_slot",
		          "stop the other source (pg_stat_replication shows it); pgferry retries "
		          "until the slot is free",
		          "the slot \"%s\" is in use by the walsender with PID %s", cfg->slot_name,
		          PQgetvalue(res, 0, F_SLOT_PID));
	else if (exists)
		check_add(r, CHECK_OK, "replication_slot", NULL,
		          "the slot \"%s\" exists (pgoutput, database %s) and is free",
		          cfg->slot_name, PQgetvalue(res, 0, F_SLOT_DB));
	else if (used >= max)
		check_add(r, CHECK_ERROR, "replication_slot", fix_conf,
		          "no free replication slot for \"%s\": %d of max_replication_slots = %d "
		          "in use",
		          cfg->slot_name, used, max);
	else
		check_add(r, CHECK_OK, "replication_slot", NULL,
		          "the slot \"%s\" will be created; %d of %d slots free", cfg->slot_name,
		          max - used, max);
}

static void check_publication(PGresult *res, const config_t *cfg, bool for_clone, check_report_t *r)
{
	int tables = atoi(PQgetvalue(res, 0, F_PUB_TABLES));
	int no_select = atoi(PQgetvalue(res, 0, F_NO_SELECT));
	const char *role = PQgetvalue(res, 0, F_ROLE);
	char fix[600];

	if (strcmp(PQgetvalue(res, 0, F_PUB_EXISTS), "t") != 0) {
		snprintf(fix, sizeof(fix),
		         "run sql/primary_setup.sql on the primary, or CREATE PUBLICATION %s FOR "
		         "ALL TABLES, or set publication to the one that lists the tables",
		         cfg->publication);
		check_add(r, CHECK_ERROR, "publication", fix,
		          "the publication \"%s\" does not exist in the database \"%s\"",
		          cfg->publication, PQgetvalue(res, 0, F_DATABASE));
		return;
	}
	if (tables == 0)
		check_add(r, CHECK_WARNING, "publication",
		          "add the tables to replicate (ALTER PUBLICATION ... ADD TABLE)",
		          "the publication \"%s\" lists no table: nothing would be replicated",
		          cfg->publication);
	else
		check_add(r, CHECK_OK, "publication", NULL,
		          "the publication \"%s\" lists %d tables", cfg->publication, tables);
	if (no_select > 0) {
		const char *schema = PQgetvalue(res, 0, F_NO_SELECT_SCHEMA);
		snprintf(fix, sizeof(fix),
		         "on the primary: GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s; (see "
		         "sql/primary_setup.sql)",
		         schema, role);
		/* the stream itself needs no SELECT; clone and verify read the tables */
		check_add(r, for_clone ? CHECK_ERROR : CHECK_WARNING, "table_privileges", fix,
		          "the role %s cannot read %d published tables, %s first%s", role,
		          no_select, PQgetvalue(res, 0, F_NO_SELECT_FIRST),
		          for_clone ? "" : " (clone and verify read them as this role)");
	} else if (tables > 0)
		check_add(r, CHECK_OK, "table_privileges", NULL,
		          "the role %s may read every published table", role);
}

void primary_check_report(PGconn *conn, const config_t *cfg, bool for_clone, check_report_t *r)
{
	const char *params[2] = {cfg->publication, cfg->slot_name};
	PGresult *res = PQexecParams(conn, setup_sql, 2, NULL, params, NULL, NULL, 0);
	pgf_error_t err;
	int max, used;
	char msg[400];

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		check_add(r, CHECK_ERROR, "primary", "check that the role may read the catalog",
		          "reading the primary's setup failed: %s",
		          PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
		                  ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
		                  : pgsession_error_text(conn, msg, sizeof(msg)));
		PQclear(res);
		return;
	}
	if (strcmp(PQgetvalue(res, 0, F_WAL_LEVEL), "logical") != 0)
		check_add(r, CHECK_ERROR, "wal_level",
		          "set wal_level = logical in the primary's postgresql.conf and restart it",
		          "wal_level is %s on the primary; logical decoding needs logical",
		          PQgetvalue(res, 0, F_WAL_LEVEL));
	else
		check_add(r, CHECK_OK, "wal_level", NULL, "wal_level is logical");
	check_slots(res, cfg, for_clone, r);
	max = atoi(PQgetvalue(res, 0, F_MAX_SENDERS));
	used = atoi(PQgetvalue(res, 0, F_SENDERS));
	if (used >= max)
		check_add(r, CHECK_ERROR, "wal_senders",
		          "raise max_wal_senders in postgresql.conf and restart the primary",
		          "no free WAL sender: %d of max_wal_senders = %d in use", used, max);
	else
		check_add(r, CHECK_OK, "wal_senders", NULL, "%d of %d WAL senders free", max - used,
		          max);
	if (strcmp(PQgetvalue(res, 0, F_REPLICATION), "t") != 0) {
		char fix[300];
		snprintf(fix, sizeof(fix), "on the primary: ALTER ROLE %s REPLICATION;",
		         PQgetvalue(res, 0, F_ROLE));
		check_add(r, CHECK_ERROR, "replication_role", fix,
		          "the role %s has no REPLICATION attribute: it cannot read the slot",
		          PQgetvalue(res, 0, F_ROLE));
	} else
		check_add(r, CHECK_OK, "replication_role", NULL, "the role %s has REPLICATION",
		          PQgetvalue(res, 0, F_ROLE));
	check_publication(res, cfg, for_clone, r);
	PQclear(res);

	error_clear(&err);
	res = primary_list_sequences(conn, cfg->publication, &err);
	if (res == NULL) {
		check_add(r, CHECK_ERROR, "sequence_privileges", err.hint, "%s", err.message);
		return;
	}
	{
		int n = PQntuples(res);
		PQclear(res);
		if (primary_check_sequences(conn, cfg->publication, &err) != PGF_OK)
			check_add(r, CHECK_ERROR, "sequence_privileges", err.hint, "%s",
			          err.message);
		else
			check_add(r, CHECK_OK, "sequence_privileges", NULL,
			          "the role may read the %d sequences of the published tables", n);
	}
}
