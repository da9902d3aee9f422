/*
 * replication.c — the libpq side of a logical replication client (see
 * replication.h): the model is pg_recvlogical's loop.
 */
#include "pgferry/replication.h"

#include "pgferry/buf.h"
#include "pgferry/decoder.h"
#include "pgferry/pgsession.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int db_error(pgf_error_t *err, PGconn *conn, const char *what)
{
	char clean[400];

	pgsession_error_text(conn, clean, sizeof(clean));
	error_set(err, PGF_E_DATABASE, "%s failed on the primary: %s", what, clean);
	return PGF_ERR;
}

static int result_error(pgf_error_t *err, PGresult *res, const char *what)
{
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);

	error_set(err, PGF_E_DATABASE, "%s failed on the primary: %s", what,
	          msg ? msg : PQresultErrorMessage(res));
	if (detail)
		error_detail(err, "%s", detail);
	if (hint)
		error_hint(err, "%s", hint);
	return PGF_ERR;
}

int replication_connect(replication_conn_t *rc, const char *conninfo, pgf_error_t *err)
{
	const char *keys[] = {"dbname",
	                      "replication",
	                      "fallback_application_name",
	                      "connect_timeout",
	                      "options",
	                      "client_encoding",
	                      NULL};
	/* the walsender prints values in these settings, whatever the primary's
	 * defaults; the sink's DR session reads them back with the same ones
	 * (apply.c). pgoutput converts values and names to client_encoding. */
	const char *values[] = {
	        conninfo,
	        "database",
	        "pgferry",
	        "10",
	        "-c datestyle=ISO -c intervalstyle=postgres -c extra_float_digits=3 "
	        "-c timezone=UTC -c bytea_output=hex -c lc_monetary=C",
	        "UTF8",
	        NULL};
	PGresult *res;

	memset(rc, 0, sizeof(*rc));
	/* expand_dbname: conninfo may be a full connection string or URI */
	rc->conn = PQconnectdbParams(keys, values, 1);
	if (rc->conn == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory connecting to the primary");
	if (PQstatus(rc->conn) != CONNECTION_OK) {
		db_error(err, rc->conn, "connection");
		error_hint(err,
		           "Check primary_conninfo, that the server is up, and that pg_hba.conf "
		           "allows a replication connection for this user.");
		replication_close(rc);
		return PGF_ERR;
	}
	rc->server_version = PQserverVersion(rc->conn);
	res = PQexec(rc->conn, "IDENTIFY_SYSTEM");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < 4) {
		result_error(err, res, "IDENTIFY_SYSTEM");
		PQclear(res);
		replication_close(rc);
		return PGF_ERR;
	}
	rc->system_identifier = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	rc->timeline = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
	if (lsn_parse(PQgetvalue(res, 0, 2), &rc->xlogpos) != PGF_OK)
		rc->xlogpos = 0;
	if (PQgetisnull(res, 0, 3)) {
		PQclear(res);
		replication_close(rc);
		error_set(err, PGF_E_CONFIG,
		          "the replication connection is not bound to a database");
		error_hint(err, "Name the database in primary_conninfo (dbname=...).");
		return PGF_ERR;
	}
	snprintf(rc->dbname, sizeof(rc->dbname), "%s", PQgetvalue(res, 0, 3));
	PQclear(res);
	return PGF_OK;
}

int replication_flush_position(replication_conn_t *rc, uint64_t *flush_lsn, pgf_error_t *err)
{
	PGresult *res = PQexec(rc->conn, "IDENTIFY_SYSTEM");

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < 3 ||
	    lsn_parse(PQgetvalue(res, 0, 2), flush_lsn) != PGF_OK) {
		result_error(err, res, "IDENTIFY_SYSTEM");
		PQclear(res);
		return PGF_ERR;
	}
	PQclear(res);
	if (*flush_lsn > rc->xlogpos)
		rc->xlogpos = *flush_lsn;
	return PGF_OK;
}

void replication_close(replication_conn_t *rc)
{
	if (rc->copy_buffer) {
		PQfreemem(rc->copy_buffer);
		rc->copy_buffer = NULL;
	}
	if (rc->conn) {
		PQfinish(rc->conn);
		rc->conn = NULL;
	}
}

int replication_max_proto_version(int server_version)
{
	if (server_version >= 160000)
		return 4;
	if (server_version >= 150000)
		return 3;
	if (server_version >= 140000)
		return 2;
	return 1;
}

int replication_slot_position(replication_conn_t *rc, const char *slot, bool *exists,
                              uint64_t *confirmed_flush, pgf_error_t *err)
{
	char *literal;
	buf_t sql;
	PGresult *res;

	/* a replication connection takes plain SQL, but only the simple protocol */
	literal = PQescapeLiteral(rc->conn, slot, strlen(slot));
	if (literal == NULL)
		return db_error(err, rc->conn, "quoting the slot name");
	buf_init(&sql);
	buf_printf(&sql,
	           "SELECT confirmed_flush_lsn, plugin, database FROM pg_replication_slots "
	           "WHERE slot_name = %s",
	           literal);
	PQfreemem(literal);
	res = PQexec(rc->conn, sql.data);
	buf_free(&sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		result_error(err, res, "reading the slot");
		PQclear(res);
		return PGF_ERR;
	}
	*exists = PQntuples(res) == 1;
	*confirmed_flush = 0;
	if (*exists) {
		if (strcmp(PQgetvalue(res, 0, 1), "pgoutput") != 0 ||
		    strcmp(PQgetvalue(res, 0, 2), rc->dbname) != 0) {
			error_set(
			        err, PGF_E_CONFIG,
			        "slot \"%s\" exists but is not a pgoutput slot of database \"%s\"",
			        slot, rc->dbname);
			error_detail(err, "It uses plugin \"%s\" in database \"%s\".",
			             PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
			error_hint(err,
			           "Choose another slot_name, or drop that slot if it is unused.");
			PQclear(res);
			return PGF_ERR;
		}
		if (!PQgetisnull(res, 0, 0))
			lsn_parse(PQgetvalue(res, 0, 0), confirmed_flush);
	}
	PQclear(res);
	return PGF_OK;
}

int replication_ensure_slot(replication_conn_t *rc, const char *slot, bool two_phase, bool *created,
                            uint64_t *consistent_lsn, pgf_error_t *err)
{
	bool exists = false;
	uint64_t flush = 0;
	char *ident;
	buf_t sql;
	PGresult *res;

	*created = false;
	if (replication_slot_position(rc, slot, &exists, &flush, err) != PGF_OK)
		return PGF_ERR;
	if (exists) {
		*consistent_lsn = flush;
		return PGF_OK;
	}
	ident = PQescapeIdentifier(rc->conn, slot, strlen(slot));
	if (ident == NULL)
		return db_error(err, rc->conn, "quoting the slot name");
	buf_init(&sql);
	buf_printf(&sql, "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput%s", ident,
	           two_phase ? " (TWO_PHASE, SNAPSHOT 'nothing')" : " (SNAPSHOT 'nothing')");
	PQfreemem(ident);
	res = PQexec(rc->conn, sql.data);
	buf_free(&sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		result_error(err, res, "creating the replication slot");
		error_where(err, "slot %s", slot);
		PQclear(res);
		return PGF_ERR;
	}
	if (lsn_parse(PQgetvalue(res, 0, 1), consistent_lsn) != PGF_OK)
		*consistent_lsn = 0;
	PQclear(res);
	*created = true;
	return PGF_OK;
}

int replication_start(replication_conn_t *rc, uint64_t start_lsn, const replication_options_t *opts,
                      pgf_error_t *err)
{
	char lsn[LSN_TEXT_LEN];
	char *slot, *pub;
	int proto = opts->proto_version ? opts->proto_version
	                                : replication_max_proto_version(rc->server_version);
	buf_t sql;
	PGresult *res;

	slot = PQescapeIdentifier(rc->conn, opts->slot_name, strlen(opts->slot_name));
	pub = PQescapeLiteral(rc->conn, opts->publication, strlen(opts->publication));
	if (slot == NULL || pub == NULL) {
		PQfreemem(slot);
		PQfreemem(pub);
		return db_error(err, rc->conn, "quoting the slot or publication name");
	}
	buf_init(&sql);
	buf_printf(&sql,
	           "START_REPLICATION SLOT %s LOGICAL %s (proto_version '%d', publication_names %s",
	           slot, lsn_format(start_lsn, lsn), proto, pub);
	if (opts->binary)
		buf_append_str(&sql, ", binary 'true'");
	if (opts->streaming && proto >= 2)
		buf_append_str(&sql, ", streaming 'on'");
	if (opts->messages)
		buf_append_str(&sql, ", messages 'true'");
	if (opts->two_phase && proto >= 3)
		buf_append_str(&sql, ", two_phase 'true'");
	buf_append_char(&sql, ')');
	PQfreemem(slot);
	PQfreemem(pub);
	res = PQexec(rc->conn, sql.data);
	buf_free(&sql);
	if (PQresultStatus(res) != PGRES_COPY_BOTH) {
		result_error(err, res, "START_REPLICATION");
		error_where(err, "slot %s at %s", opts->slot_name, lsn);
		PQclear(res);
		return PGF_ERR;
	}
	PQclear(res);
	if (PQsetnonblocking(rc->conn, 1) != 0)
		return db_error(err, rc->conn, "switching to non-blocking mode");
	return PGF_OK;
}

int replication_read(replication_conn_t *rc, const uint8_t **data, size_t *len, pgf_error_t *err)
{
	int n;

	if (rc->copy_buffer) {
		PQfreemem(rc->copy_buffer);
		rc->copy_buffer = NULL;
	}
	n = PQgetCopyData(rc->conn, &rc->copy_buffer, 1);
	if (n > 0) {
		*data = (const uint8_t *)rc->copy_buffer;
		*len = (size_t)n;
		return 1;
	}
	if (n == 0) {
		if (PQconsumeInput(rc->conn) == 0)
			return db_error(err, rc->conn, "reading the replication stream");
		n = PQgetCopyData(rc->conn, &rc->copy_buffer, 1);
		if (n > 0) {
			*data = (const uint8_t *)rc->copy_buffer;
			*len = (size_t)n;
			return 1;
		}
		if (n == 0)
			return 0;
	}
	if (n == -1) {
		/* the server ended COPY: a clean end of the stream (e.g. shutdown) */
		PGresult *res = PQgetResult(rc->conn);
		int status = res ? PQresultStatus(res) : PGRES_COMMAND_OK;
		if (res && status != PGRES_COMMAND_OK && status != PGRES_COPY_IN) {
			result_error(err, res, "the replication stream");
			PQclear(res);
			return PGF_ERR;
		}
		PQclear(res);
		return 2;
	}
	return db_error(err, rc->conn, "reading the replication stream");
}

int replication_send_status(replication_conn_t *rc, uint64_t write_lsn, uint64_t flush_lsn,
                            uint64_t apply_lsn, bool reply_requested, pgf_error_t *err)
{
	buf_t msg;
	int rc_put;

	buf_init(&msg);
	buf_append_u8(&msg, 'r');
	buf_append_be64(&msg, write_lsn);
	buf_append_be64(&msg, flush_lsn);
	buf_append_be64(&msg, apply_lsn);
	buf_append_be64(&msg, (uint64_t)pgtime_now());
	buf_append_u8(&msg, reply_requested ? 1 : 0);
	if (buf_failed(&msg)) {
		buf_free(&msg);
		return error_set(err, PGF_E_MEMORY, "out of memory");
	}
	rc_put = PQputCopyData(rc->conn, msg.data, (int)msg.len);
	buf_free(&msg);
	if (rc_put < 0)
		return db_error(err, rc->conn, "sending a standby status update");
	return replication_flush(rc, err) < 0 ? PGF_ERR : PGF_OK;
}

int replication_flush(replication_conn_t *rc, pgf_error_t *err)
{
	int r = PQflush(rc->conn);

	if (r < 0)
		return db_error(err, rc->conn, "sending to the primary");
	return r;
}

int replication_socket(const replication_conn_t *rc)
{
	return PQsocket(rc->conn);
}
