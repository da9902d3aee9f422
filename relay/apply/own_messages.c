/*
 * own_messages.c — pgferry's own logical messages, written on the primary
 * into the stream at their place among the changes: "pgferry.sequences"
 * (the primary's sequence values, read by the source), "pgferry.ddl" (a
 * command captured by the event trigger of sql/primary_ddl.sql, applied
 * when replicate_ddl is on) and heartbeats (which change no table: their
 * transaction only moves progress).
 */
#include "apply_internal.h"

#include "pgferry/log.h"
#include "pgferry/own_sql.h"
#include "pgferry/replication.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "pgferry.sequences": lines of "qualified_name value", the primary's
 * sequences as the source read them. Applied in the pipeline, in order. */
static int apply_sequences(apply_t *a, const char *text, size_t len, pgf_error_t *err)
{
	size_t off = 0;

	while (off < len) {
		const char *line = text + off, *nl = memchr(line, '\n', len - off);
		size_t n = nl ? (size_t)(nl - line) : len - off;
		const char *sp = memrchr(line, ' ', n);
		char name[512], value[32];
		const char *params[2] = {name, value};

		off += n + 1;
		if (sp == NULL || (size_t)(sp - line) >= sizeof(name) ||
		    (size_t)(line + n - sp - 1) >= sizeof(value) || sp == line)
			return error_set(err, PGF_E_PROTOCOL,
			                 "malformed sequence line in a "
			                 "pgferry.sequences message");
		memcpy(name, line, (size_t)(sp - line));
		name[sp - line] = '\0';
		memcpy(value, sp + 1, (size_t)(line + n - sp - 1));
		value[line + n - sp - 1] = '\0';
		if (PQsendQueryParams(a->pl.conn, own_sql_sequence_sync, 2, NULL, params, NULL,
		                      NULL, 0) != 1)
			return apply_conn_error(err, a->pl.conn, "sending a sequence value");
		pipeline_push(&a->pl, "sequence", 0, false, NULL);
		if (pipeline_maybe_sync(&a->pl, err) != PGF_OK)
			return PGF_ERR;
	}
	return PGF_OK;
}

/* Whether a failed DDL only says that the DR side already has it: done by
 * hand by a DBA fixing drift, or applied before a crash of the pipeline. */
static bool ddl_already_done(const char *state)
{
	static const char *const codes[] = {
	        "42P07", /* duplicate_table */
	        "42701", /* duplicate_column */
	        "42710", /* duplicate_object */
	        "42P06", /* duplicate_schema */
	        "42723", /* duplicate_function */
	        "42P01", /* undefined_table (dropped already) */
	        "42703", /* undefined_column */
	        "42704", /* undefined_object */
	};
	size_t i;

	for (i = 0; state && i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(state, codes[i]) == 0)
			return true;
	return false;
}

static int exec_checked(apply_t *a, const char *sql, pgf_error_t *err)
{
	PGresult *res = PQexec(a->pl.conn, sql);
	int st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		apply_result_error(err, res, "DDL");
		PQclear(res);
		return PGF_ERR;
	}
	PQclear(res);
	return PGF_OK;
}

/* "pgferry.ddl": the search_path, a newline, the command as the primary ran
 * it (sql/primary_ddl.sql). Run at its place in the stream, inside the
 * group's DR transaction, outside the pipeline (the simple protocol takes a
 * string of several statements). */
static int apply_ddl(apply_t *a, const char *text, size_t len, pgf_error_t *err)
{
	const char *nl = memchr(text, '\n', len);
	char *path, *cmd;
	const char *params[1];
	PGresult *res;
	int rc = PGF_OK;

	if (!a->cfg->replicate_ddl) {
		if (!a->ddl_ignored_logged)
			log_warning(
			        "the primary sends DDL but replicate_ddl is off on the sink: not "
			        "applied; schema drift will stop apply if a table no longer "
			        "matches");
		a->ddl_ignored_logged = true;
		return PGF_OK;
	}
	if (nl == NULL || memchr(text, '\0', len) != NULL)
		return error_set(err, PGF_E_PROTOCOL, "malformed pgferry.ddl message");
	if ((!coalesce_empty(&a->net) && rows_flush_held(a, err) != PGF_OK) ||
	    pipeline_sync(&a->pl, err) != PGF_OK)
		return PGF_ERR;
	path = strndup(text, (size_t)(nl - text));
	cmd = strndup(nl + 1, len - (size_t)(nl - text) - 1);
	if (path == NULL || cmd == NULL) {
		free(path);
		free(cmd);
		return error_set(err, PGF_E_MEMORY, "out of memory");
	}
	if (PQexitPipelineMode(a->pl.conn) != 1) {
		free(path);
		free(cmd);
		return apply_conn_error(err, a->pl.conn, "leaving pipeline mode");
	}
	params[0] = path;
	res = PQexecParams(a->pl.conn, "SELECT set_config('search_path', $1, true)", 1, NULL,
	                   params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = apply_result_error(err, res, "setting the DDL's search_path");
	PQclear(res);
	if (rc == PGF_OK)
		rc = exec_checked(a, "SAVEPOINT pgferry_ddl", err);
	if (rc == PGF_OK) {
		res = PQexec(a->pl.conn, cmd);
		int st = PQresultStatus(res);
		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			if (ddl_already_done(state)) {
				log_warning("DDL from the primary skipped: the DR database already "
				            "has it (%s): %.300s",
				            PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY), cmd);
				rc = exec_checked(a, "ROLLBACK TO SAVEPOINT pgferry_ddl", err);
			} else {
				char lsn[LSN_TEXT_LEN];
				rc = apply_result_error(err, res, "DDL from the primary");
				error_where(err, "transaction %u ending at %s, command: %.150s",
				            a->txn.xid, lsn_format(a->txn.lsn, lsn), cmd);
				error_hint(
				        err,
				        "Make the DR schema ready for this command (or apply its "
				        "effect by hand: a command that finds its object already "
				        "there is skipped); apply retries by itself.");
			}
		} else
			log_info("applied DDL from the primary: %.300s", cmd);
		PQclear(res);
	}
	if (rc == PGF_OK)
		rc = exec_checked(
		        a, "RELEASE SAVEPOINT pgferry_ddl; SET LOCAL search_path TO DEFAULT", err);
	free(path);
	free(cmd);
	if (PQenterPipelineMode(a->pl.conn) != 1 && rc == PGF_OK)
		rc = apply_conn_error(err, a->pl.conn, "entering pipeline mode");
	/* tables may have changed under cached checks */
	schema_clear(&a->schema);
	return rc;
}

int own_message_apply(apply_t *a, const pgoutput_message_t *m, pgf_error_t *err)
{
	const char *prefix = m->u.message.prefix;
	const char *content = (const char *)m->u.message.content;
	size_t len = m->u.message.content_len;

	/* only transactional ones: they have a place in the stream */
	if (!(m->u.message.flags & 1))
		return PGF_OK;
	if (strcmp(prefix, "pgferry.sequences") == 0)
		return apply_sequences(a, content, len, err);
	if (strcmp(prefix, "pgferry.ddl") == 0)
		return apply_ddl(a, content, len, err);
	/* heartbeats and other messages change no table */
	return PGF_OK;
}
