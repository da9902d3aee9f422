/*
 * identity.c — which stream this DR database takes (guarantee 4): the
 * primary's identity recorded on first contact and checked on every hello,
 * the fence pgferry promote sets, the proof that the initial copy is
 * complete, and the stream's replication origin, held by this session and
 * checked against pgferry.progress. Everything here runs between groups,
 * outside the pipeline.
 */
#include "apply_internal.h"

#include "pgferry/log.h"
#include "pgferry/own_sql.h"
#include "pgferry/replication.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Origins are not in a dump: a DR database restored on another cluster
 * has its progress only in pgferry.progress, written with the data; its
 * origin is created there. */
static int origin_create(apply_t *a, const char *lit, uint64_t recorded, pgf_error_t *err)
{
	char sql[700], lsn[LSN_TEXT_LEN];
	PGresult *res;

	snprintf(sql, sizeof(sql), "SELECT pg_replication_origin_create(%s)", lit);
	res = PQexec(a->pl.conn, sql);
	if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		/* committed first: an advance is not undone by a rollback */
		PQclear(res);
		snprintf(sql, sizeof(sql), "SELECT pg_replication_origin_advance(%s, '%s')", lit,
		         lsn_format(recorded, lsn));
		res = PQexec(a->pl.conn, sql);
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		apply_result_error(err, res, "creating the replication origin");
		PQclear(res);
		return PGF_ERR;
	}
	PQclear(res);
	log_warning("the replication origin \"%s\" was missing on this DR cluster; created "
	            "it at %s, where pgferry.progress says apply stands",
	            a->origin, lsn);
	return PGF_OK;
}

/* Whether pgferry promote fenced this DR database; why says when and why. */
static int read_fence(apply_t *a, bool *fenced, char *why, size_t why_len, pgf_error_t *err)
{
	PGresult *res;

	*fenced = false;
	res = pipeline_exec_outside(&a->pl, own_sql_fence_read, 0, NULL, err);
	if (res == NULL)
		return PGF_ERR;
	if (PQntuples(res) > 0) {
		*fenced = true;
		snprintf(why, why_len,
		         "this DR database was promoted at %s (%s); it takes no stream",
		         PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	return PGF_OK;
}

/* Parallel apply (apply_parallel.h) leaves the stream's newest position on
 * whichever connection committed last: the stream's origin is moved up to
 * the newest of the stream's origins (pgferry.applied_lsn) before this
 * session takes it, so that it says where apply stands whatever the number
 * of workers was and is. The newest must be what pgferry.progress says;
 * when it is not, the check after the session takes the origin refuses. */
static int origin_catch_up(apply_t *a, const char *lit, uint64_t recorded, pgf_error_t *err)
{
	char sql[1200], lsn[LSN_TEXT_LEN];
	uint64_t newest = 0, own = 0;
	PGresult *res;

	snprintf(sql, sizeof(sql),
	         "SELECT pgferry.applied_lsn(false), pg_replication_origin_progress(%s, false)",
	         lit);
	res = PQexec(a->pl.conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		apply_result_error(err, res, "reading the stream's origins");
		PQclear(res);
		return PGF_ERR;
	}
	if (!PQgetisnull(res, 0, 0))
		lsn_parse(PQgetvalue(res, 0, 0), &newest);
	if (!PQgetisnull(res, 0, 1))
		lsn_parse(PQgetvalue(res, 0, 1), &own);
	PQclear(res);
	if (newest <= own || newest != recorded)
		return PGF_OK;
	snprintf(sql, sizeof(sql), "SELECT pg_replication_origin_advance(%s, '%s')", lit,
	         lsn_format(newest, lsn));
	res = PQexec(a->pl.conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		apply_result_error(err, res, "moving the stream's origin to where apply stands");
		PQclear(res);
		return PGF_ERR;
	}
	PQclear(res);
	return PGF_OK;
}

/* A parallel apply worker's own origin, "<stream origin>_w<k>", created if
 * missing and taken for the session. Where apply stands is the
 * coordinator's to check; the worker starts from pgferry.progress. lit:
 * the stream's origin, quoted (freed here). */
static int worker_origin_attach(apply_t *a, char *lit, uint64_t recorded, pgf_error_t *err)
{
	char sql[1400], name[sizeof(a->origin)], *wlit;
	PGresult *res;

	PQfreemem(lit);
	/* origin names are at most 20 + 63 + 63 bytes and separators */
	snprintf(name, sizeof(name), "%.480s_w%d", a->origin, a->worker);
	snprintf(a->origin, sizeof(a->origin), "%s", name);
	wlit = PQescapeLiteral(a->pl.conn, a->origin, strlen(a->origin));
	if (wlit == NULL) {
		a->origin[0] = '\0';
		return apply_conn_error(err, a->pl.conn, "quoting the origin's name");
	}
	snprintf(sql, sizeof(sql),
	         "SELECT pg_replication_origin_create(%s) WHERE pg_replication_origin_oid(%s) IS "
	         "NULL",
	         wlit, wlit);
	res = PQexec(a->pl.conn, sql);
	if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		PQclear(res);
		snprintf(sql, sizeof(sql), "SELECT pg_replication_origin_session_setup(%s)", wlit);
		res = PQexec(a->pl.conn, sql);
	}
	PQfreemem(wlit);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		error_set(err, PGF_E_IDENTITY,
		          "could not take the replication origin \"%s\" of parallel apply: %s",
		          a->origin,
		          PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
		                  ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
		                  : "?");
		error_hint(err, "Another pgferry sink applies this stream on this DR cluster; only "
		                "one may (see pg_replication_origin_status).");
		PQclear(res);
		a->origin[0] = '\0';
		return PGF_ERR;
	}
	PQclear(res);
	a->group.progress_lsn = recorded;
	return PGF_OK;
}

/* Takes this DR database's replication origin for the session (once the
 * identity names it) and reads where apply stands. Every start checks that
 * the origin and pgferry.progress (both written by each DR commit) agree:
 * if they do not, something else moved the origin (another DR database or
 * clone on this cluster), and resuming from either could skip or repeat
 * transactions. Outside pipeline mode only. */
int identity_origin_attach(apply_t *a, pgf_error_t *err)
{
	char sql[700], *lit;
	PGresult *res;
	uint64_t recorded = 0, origin_lsn = 0;
	bool has_recorded, has_origin;

	if (a->origin[0] != '\0')
		return PGF_OK;
	res = PQexec(a->pl.conn, own_sql_identity_resume);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		apply_result_error(err, res, "reading the identity");
		PQclear(res);
		return PGF_ERR;
	}
	if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
		PQclear(res); /* no stream yet: first contact records one */
		return PGF_OK;
	}
	snprintf(a->origin, sizeof(a->origin), "%s", PQgetvalue(res, 0, 0));
	has_recorded = !PQgetisnull(res, 0, 1);
	if (has_recorded)
		lsn_parse(PQgetvalue(res, 0, 1), &recorded);
	a->group.progress_time = has_recorded ? strtoll(PQgetvalue(res, 0, 2), NULL, 10) : 0;
	has_origin = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
	PQclear(res);
	lit = PQescapeLiteral(a->pl.conn, a->origin, strlen(a->origin));
	if (lit == NULL) {
		a->origin[0] = '\0';
		return apply_conn_error(err, a->pl.conn, "quoting the origin's name");
	}
	if (a->worker > 0)
		return worker_origin_attach(a, lit, recorded, err);
	if (!has_origin && origin_create(a, lit, recorded, err) != PGF_OK) {
		PQfreemem(lit);
		a->origin[0] = '\0';
		return PGF_ERR;
	}
	if (origin_catch_up(a, lit, recorded, err) != PGF_OK) {
		PQfreemem(lit);
		a->origin[0] = '\0';
		return PGF_ERR;
	}
	snprintf(sql, sizeof(sql),
	         "SELECT pg_replication_origin_session_setup(%s), "
	         "pg_replication_origin_progress(%s, false)",
	         lit, lit);
	PQfreemem(lit);
	res = PQexec(a->pl.conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		error_set(err, PGF_E_IDENTITY,
		          "the replication origin \"%s\" of this stream is in use by another "
		          "session: %s",
		          a->origin,
		          PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
		                  ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
		                  : "?");
		error_hint(err, "Another pgferry sink or clone applies this stream on this DR "
		                "cluster; only one may (see pg_replication_origin_status and "
		                "pg_stat_activity for that PID).");
		PQclear(res);
		a->origin[0] = '\0';
		return PGF_ERR;
	}
	/* not flushed only: a committed group is visible in pgferry.progress
	 * before its WAL is flushed, and the two must be compared alike */
	origin_lsn = 0;
	if (!PQgetisnull(res, 0, 1))
		lsn_parse(PQgetvalue(res, 0, 1), &origin_lsn);
	PQclear(res);
	/* pgferry.progress again, now that this session holds the origin: the
	 * backend of a sink killed a moment ago commits the groups it had
	 * received until it notices, and holds the origin until then, so a
	 * figure read before the origin was ours may be older than it */
	res = PQexec(a->pl.conn, own_sql_identity_resume);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		apply_result_error(err, res, "reading the progress");
		PQclear(res);
		res = PQexec(a->pl.conn, "SELECT pg_replication_origin_session_reset()");
		PQclear(res);
		a->origin[0] = '\0';
		return PGF_ERR;
	}
	has_recorded = !PQgetisnull(res, 0, 1);
	recorded = 0;
	if (has_recorded)
		lsn_parse(PQgetvalue(res, 0, 1), &recorded);
	a->group.progress_time = has_recorded ? strtoll(PQgetvalue(res, 0, 2), NULL, 10) : 0;
	PQclear(res);
	if (origin_lsn != recorded) {
		char o[LSN_TEXT_LEN], r[LSN_TEXT_LEN];
		error_set(err, PGF_E_IDENTITY,
		          "the replication origin \"%s\" is at %s but this DR database recorded "
		          "%s as applied (pgferry.progress); refusing to apply",
		          a->origin, lsn_format(origin_lsn, o),
		          has_recorded ? lsn_format(recorded, r) : "nothing");
		error_detail(err, "Something else moved the origin: another DR database or clone "
		                  "on this cluster following the same stream, or a manual "
		                  "pg_replication_origin_advance. Resuming from either position "
		                  "could skip or repeat transactions.");
		error_hint(err, "Find what uses the origin (pg_replication_origin_status) and stop "
		                "it; give each DR database its own slot. If this copy is in doubt, "
		                "run pgferry verify, or clone again into a new database.");
		res = PQexec(a->pl.conn, "SELECT pg_replication_origin_session_reset()");
		PQclear(res);
		a->origin[0] = '\0';
		return PGF_ERR;
	}
	a->group.progress_lsn = recorded;
	return PGF_OK;
}

/* Guarantee 4: a stream is applied only into a copy known complete: a
 * finished pgferry clone, or one the operator seeded otherwise and said so
 * (initial_copy = external). why says what is missing when it is not. */
static int check_seeded(apply_t *a, bool *seeded, bool *record_external, char *why, size_t why_len,
                        pgf_error_t *err)
{
	PGresult *res;

	*seeded = false;
	*record_external = false;
	res = pipeline_exec_outside(&a->pl, own_sql_clone_seeded, 0, NULL, err);
	if (res == NULL)
		return PGF_ERR;
	if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0)
		*seeded = true;
	else if (PQntuples(res) == 1)
		snprintf(why, why_len,
		         "the initial copy of this DR database is not complete: the pgferry clone "
		         "started at %s did not finish; run pgferry clone again (it starts over)",
		         PQgetvalue(res, 0, 1));
	else if (a->cfg->initial_copy == INITIAL_COPY_EXTERNAL)
		*seeded = *record_external = true;
	else
		snprintf(why, why_len,
		         "the initial copy of this DR database is not known to be complete: no "
		         "pgferry clone finished here; run pgferry clone into an empty database, "
		         "or set initial_copy = external if the copy was seeded otherwise from "
		         "the slot's consistent point");
	PQclear(res);
	return PGF_OK;
}

/* The origin of the stream, taken for this session (outside the pipeline);
 * a conflict over it is a refusal, anything else an error. */
static int attach_for_session(apply_t *a, identity_verdict_t *verdict, char *why, size_t why_len,
                              pgf_error_t *err)
{
	int rc;

	if (PQpipelineStatus(a->pl.conn) != PQ_PIPELINE_OFF && PQexitPipelineMode(a->pl.conn) != 1)
		return apply_conn_error(err, a->pl.conn, "leaving pipeline mode");
	rc = identity_origin_attach(a, err);
	if (PQenterPipelineMode(a->pl.conn) != 1)
		return apply_conn_error(err, a->pl.conn, "entering pipeline mode");
	if (rc != PGF_OK && err->code == PGF_E_IDENTITY) {
		snprintf(why, why_len, "%s%s%s", err->message, err->hint[0] ? ". " : "", err->hint);
		*verdict = IDENTITY_ORIGIN_CONFLICT;
		error_clear(err);
		return PGF_OK;
	}
	return rc;
}

int apply_copy_complete(apply_t *a, bool *complete, char *why, size_t why_len, pgf_error_t *err)
{
	bool record_external;

	why[0] = '\0';
	if (!apply_connected(a))
		return error_set(err, PGF_E_DATABASE, "not connected to the DR database");
	if (!apply_between_groups(a))
		return error_set(err, PGF_E_APPLY, "copy check inside a transaction");
	return check_seeded(a, complete, &record_external, why, why_len, err);
}

const char *apply_origin(const apply_t *a)
{
	return a->origin;
}

int apply_check_identity(apply_t *a, uint64_t system_identifier, const char *database,
                         const char *slot, identity_verdict_t *verdict, char *why, size_t why_len,
                         pgf_error_t *err)
{
	char sysid[32];
	const char *params[4] = {sysid, database, slot, NULL};
	PGresult *res;
	bool seeded, record_external, fenced;

	if (!apply_connected(a))
		return error_set(err, PGF_E_DATABASE, "not connected to the DR database");
	if (!apply_between_groups(a))
		return error_set(err, PGF_E_APPLY, "identity check inside a transaction");
	why[0] = '\0';
	if (read_fence(a, &fenced, why, why_len, err) != PGF_OK)
		return PGF_ERR;
	if (fenced) {
		*verdict = IDENTITY_FENCED;
		return PGF_OK;
	}
	snprintf(sysid, sizeof(sysid), "%" PRIu64, system_identifier);
	res = pipeline_exec_outside(&a->pl, own_sql_identity_read, 0, NULL, err);
	if (res == NULL)
		return PGF_ERR;
	if (PQntuples(res) == 1 && (strcmp(PQgetvalue(res, 0, 0), sysid) != 0 ||
	                            strcmp(PQgetvalue(res, 0, 1), database) != 0 ||
	                            strcmp(PQgetvalue(res, 0, 2), slot) != 0)) {
		snprintf(why, why_len,
		         "this DR database follows system %s, database \"%s\", slot \"%s\"; the "
		         "stream offered comes from system %s, database \"%s\", slot \"%s\"",
		         PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), sysid,
		         database, slot);
		*verdict = IDENTITY_MISMATCH;
		PQclear(res);
		return PGF_OK;
	}
	*verdict = PQntuples(res) == 0 ? IDENTITY_RECORDED : IDENTITY_MATCHES;
	PQclear(res);
	if (check_seeded(a, &seeded, &record_external, why, why_len, err) != PGF_OK)
		return PGF_ERR;
	if (!seeded) {
		*verdict = IDENTITY_UNSEEDED;
		return PGF_OK;
	}
	params[3] = record_external ? "t" : "f";
	if (*verdict == IDENTITY_RECORDED || record_external) {
		/* first contact: identity, the stream's own origin and (with
		 * initial_copy = external) the operator's word, in one transaction */
		res = pipeline_exec_outside(&a->pl, own_sql_identity_record, 4, params, err);
		if (res == NULL) {
			if (strstr(err->message, "PF003") == NULL)
				return PGF_ERR;
			snprintf(why, why_len, "%s. %s", err->message, err->hint);
			error_clear(err);
			*verdict = IDENTITY_ORIGIN_CONFLICT;
			return PGF_OK;
		}
		PQclear(res);
	}
	return attach_for_session(a, verdict, why, why_len, err);
}

int apply_check_fence(apply_t *a, bool *fenced, char *why, size_t why_len, pgf_error_t *err)
{
	*fenced = false;
	if (!apply_connected(a))
		return error_set(err, PGF_E_DATABASE, "not connected to the DR database");
	if (!apply_between_groups(a))
		return PGF_OK; /* the group's own fence check covers it */
	return read_fence(a, fenced, why, why_len, err);
}
