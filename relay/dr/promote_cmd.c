/*
 * promote_cmd.c — `pgferry promote`: make the DR database the primary.
 *
 * Order matters: first drain (let the sink apply what it already received),
 * then fence (in the DR database, under a lock every apply transaction of
 * the sink takes, so nothing is applied after the fence commits, and the
 * fence survives any restart), then move sequences past the primary's last
 * known values, and record the promotion point in the same transaction.
 * The sink is asked over HTTP for the figures; when it is down, promote
 * goes on with the DR database alone and says so.
 *
 * cmd_promote parses its arguments and runs the steps below, each a
 * function; diagnostics go through the log module (log_format), the
 * promotion record to standard output.
 */
#include "pgferry/cli.h"
#include "pgferry/decoder.h"
#include "pgferry/dr_state.h"
#include "pgferry/http_client.h"
#include "pgferry/json_out.h"
#include "pgferry/log.h"
#include "pgferry/own_sql.h"
#include "pgferry/pgsession.h"
#include "pgferry/promote.h"
#include "pgferry/util.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef promote_sink_view_t sink_view_t;

static uint64_t json_lsn(json_t *o, const char *key)
{
	uint64_t lsn = 0;
	json_t *v = json_object_get(o, key);

	if (json_is_string(v))
		lsn_parse(json_string_value(v), &lsn);
	return lsn;
}

static uint64_t json_u64(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);

	if (b)
		v = json_object_get(v, b);
	return json_is_number(v) && json_number_value(v) > 0 ? (uint64_t)json_number_value(v) : 0;
}

void promote_read_sink(const char *url, sink_view_t *v)
{
	http_body_t body;
	long status;
	json_t *st;
	json_error_t je;

	memset(v, 0, sizeof(*v));
	status = http_client_get(url, "/v1/status", 3, &body, v->why, sizeof(v->why));
	if (status != 200) {
		if (v->why[0] == '\0')
			snprintf(v->why, sizeof(v->why), "the sink at %s answered HTTP %ld", url,
			         status);
		free(body.data);
		return;
	}
	st = json_loads(body.data, 0, &je);
	free(body.data);
	if (st == NULL) {
		snprintf(v->why, sizeof(v->why), "the sink's status is not JSON: %s", je.text);
		return;
	}
	v->reachable = true;
	v->fenced = json_is_true(json_object_get(st, "fenced"));
	v->received_lsn = json_lsn(st, "received_lsn");
	v->applied_lsn = json_lsn(st, "applied_lsn");
	v->primary_wal_lsn = json_lsn(st, "primary_wal_lsn");
	v->backlog_transactions = json_u64(st, "apply_backlog", "transactions");
	v->known_loss_transactions = json_u64(st, "known_loss", "transactions");
	v->known_loss_bytes = json_u64(st, "known_loss", "bytes");
	v->rpo_bound_ms = json_number_value(json_object_get(st, "rpo_bound_ms"));
	json_decref(st);
}

/* Waits until the sink applied what it had received when asked (new data
 * may keep coming while the primary lives: the target does not move). */
static bool drain(const char *url, sink_view_t *v, double timeout_s)
{
	uint64_t target = v->received_lsn;
	double t0 = util_monotonic_s();
	char lsn[LSN_TEXT_LEN], lsn2[LSN_TEXT_LEN];

	if (v->applied_lsn >= target || v->backlog_transactions == 0)
		return true;
	log_info("draining: the sink has received up to %s, applied %s", lsn_format(target, lsn),
	         lsn_format(v->applied_lsn, lsn2));
	while (util_monotonic_s() - t0 < timeout_s) {
		util_sleep_ms(100);
		promote_read_sink(url, v);
		if (!v->reachable)
			return false;
		if (v->applied_lsn >= target || v->backlog_transactions == 0)
			return true;
	}
	return false;
}

static PGresult *run(PGconn *conn, const char *sql, int n, const char *const *params,
                     pgf_error_t *err)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	int st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		char msg[400];

		error_set(err, PGF_E_DATABASE, "promote failed on the DR database: %s",
		          PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
		                  ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
		                  : pgsession_error_text(conn, msg, sizeof(msg)));
		error_where(err, "%.200s", sql);
		PQclear(res);
		return NULL;
	}
	return res;
}

/* One run of promote: what its steps share. */
typedef struct promote_run {
	cli_t cli;
	const char *url, *reason;
	double drain_timeout;
	bool as_json, drained;
	sink_view_t v;
	PGconn *conn;
	int nseq;
	char promoted_at[64], applied[64], commit_time[64], margin[32];
	char wal[LSN_TEXT_LEN], klt[32], klb[32];
	char summary[4096];
	/* what differs for pgferry drill (promote_copy) */
	const char *who;          /* the command, in messages and the record */
	int64_t sequence_margin;  /* promote_sequence_margin */
	bool point_from_progress; /* a copy: the point is pgferry.progress */
} promote_run_t;

static int parse_args(promote_run_t *r, int argc, char **argv, pgf_error_t *err)
{
	int i;

	if (cli_load(argc, argv, 0, &r->cli, err) != PGF_OK)
		return PGF_ERR;
	cli_configure_logging(&r->cli, "promote");
	r->url = r->cli.cfg.sink_url;
	r->reason = "pgferry promote";
	r->who = "pgferry promote";
	r->sequence_margin = r->cli.cfg.promote_sequence_margin;
	r->drain_timeout = 60;
	for (i = 1; i < r->cli.argc; i++) {
		const char *a = r->cli.argv[i];
		int64_t ms;

		if (strcmp(a, "--json") == 0)
			r->as_json = true;
		else if (strcmp(a, "--url") == 0 && i + 1 < r->cli.argc)
			r->url = r->cli.argv[++i];
		else if (strcmp(a, "--reason") == 0 && i + 1 < r->cli.argc)
			r->reason = r->cli.argv[++i];
		else if (strcmp(a, "--drain-timeout") == 0 && i + 1 < r->cli.argc) {
			/* a duration with its unit, as everywhere (a bare number
			 * could mean ms or s) */
			if (config_parse_duration(r->cli.argv[++i], &ms) != PGF_OK || ms < 0) {
				error_set(err, PGF_E_USAGE,
				          "--drain-timeout \"%s\" is not a duration",
				          r->cli.argv[i]);
				error_hint(err,
				           "Write a number with a unit (ms, s, min, h), e.g. 60s.");
				return PGF_ERR;
			}
			r->drain_timeout = (double)ms / 1000.0;
		} else {
			error_set(err, PGF_E_USAGE, "unexpected argument \"%s\"", a);
			error_hint(err, "pgferry promote [--config FILE] [-c key=value ...] [--url "
			                "SINK_URL] [--drain-timeout 60s] [--reason TEXT] [--json]");
			return PGF_ERR;
		}
	}
	if (r->cli.cfg.dr_conninfo == NULL || r->cli.cfg.dr_conninfo[0] == '\0') {
		error_set(err, PGF_E_CONFIG, "dr_conninfo is not set");
		error_hint(err, "promote works on the DR database; give its connection string "
		                "with -c dr_conninfo=...");
		return PGF_ERR;
	}
	return PGF_OK;
}

/* 1. The sink's view, and drain what it already received. */
static void drain_sink(promote_run_t *r)
{
	promote_read_sink(r->url, &r->v);
	if (!r->v.reachable) {
		log_warning("%s; fencing the DR database directly. Figures come from the sink's "
		            "last lag sample.",
		            r->v.why);
		return;
	}
	r->drained = drain(r->url, &r->v, r->drain_timeout);
	if (!r->drained)
		log_warning("the sink did not apply everything it had received within %.0f s "
		            "(%" PRIu64 " transactions left); they are lost by this promotion",
		            r->drain_timeout, r->v.backlog_transactions);
}

/* 2. The DR database, with pgferry's schema up to date. */
static int connect_dr(promote_run_t *r, pgf_error_t *err)
{
	const char *keys[] = {"dbname", "fallback_application_name", "options", NULL};
	const char *values[] = {r->cli.cfg.dr_conninfo, "pgferry promote", "-c TimeZone=UTC", NULL};
	char msg[400];

	r->conn = PQconnectdbParams(keys, values, 1);
	if (r->conn == NULL || PQstatus(r->conn) != CONNECTION_OK) {
		error_set(err, PGF_E_DATABASE, "cannot connect to the DR database: %s",
		          pgsession_error_text(r->conn, msg, sizeof(msg)));
		error_hint(err, "Check dr_conninfo and that the DR server is up; nothing was "
		                "changed.");
		return PGF_ERR;
	}
	if (dr_state_install(r->conn, err) != PGF_OK ||
	    dr_state_run(r->conn, pgferry_sql_dr_events, "the event history (sql/dr_events.sql)",
	                 err) != PGF_OK)
		return PGF_ERR;
	return PGF_OK;
}

/* Runs sql and throws its result away. */
static bool run_ok(promote_run_t *r, const char *sql, int n, const char *const *params,
                   pgf_error_t *err)
{
	PGresult *res = run(r->conn, sql, n, params, err);

	PQclear(res);
	return res != NULL;
}

/* 3. The fence, in the transaction that records the promotion; 1 when an
 * earlier promote already fenced this database (nothing to do). */
static int fence(promote_run_t *r, pgf_error_t *err)
{
	const char *p[1] = {r->reason};
	PGresult *res;

	/* the lock waits for the DR transaction the sink is applying, if any;
	 * every later one waits for this one and then finds the fence */
	if (!run_ok(r, "BEGIN", 0, NULL, err) || !run_ok(r, own_sql_fence_lock, 0, NULL, err) ||
	    (res = run(r->conn, own_sql_fence_read, 0, NULL, err)) == NULL)
		return PGF_ERR;
	if (PQntuples(res) > 0) {
		snprintf(r->summary, sizeof(r->summary),
		         "%s: this DR database was already promoted at %s (%s); nothing to do. "
		         "The promotion point is in pgferry.promotion.\n",
		         r->who, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
		PQclear(res);
		PQclear(PQexec(r->conn, "ROLLBACK"));
		return 1;
	}
	PQclear(res);
	if ((res = run(r->conn, own_sql_fence_insert, 1, p, err)) == NULL)
		return PGF_ERR;
	snprintf(r->promoted_at, sizeof(r->promoted_at), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return PGF_OK;
}

/* When the sink is down: its last word, from its lag history, if any. */
static void last_lag_sample(promote_run_t *r)
{
	PGresult *res;

	PQclear(PQexec(r->conn, "SAVEPOINT history"));
	res = PQexec(r->conn, "SELECT primary_wal_lsn::text, known_loss_transactions, "
	                      "known_loss_bytes, rpo_bound_ms FROM pgferry.current_lag");
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		lsn_parse(PQgetvalue(res, 0, 0), &r->v.primary_wal_lsn);
		r->v.known_loss_transactions = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
		r->v.known_loss_bytes = strtoull(PQgetvalue(res, 0, 2), NULL, 10);
		r->v.rpo_bound_ms = strtod(PQgetvalue(res, 0, 3), NULL);
		PQclear(res);
		PQclear(PQexec(r->conn, "RELEASE SAVEPOINT history"));
	} else {
		PQclear(res);
		PQclear(PQexec(r->conn, "ROLLBACK TO SAVEPOINT history"));
	}
}

/* 4. The promotion point (what the DR database applied) and the
 * sequences moved past the primary's last known values. */
static int promotion_point(promote_run_t *r, pgf_error_t *err)
{
	const char *p[1] = {r->margin};
	PGresult *res;

	/* a copy of the DR database shares the live one's origin (origins are
	 * cluster-wide): its point is the progress row copied with its data */
	if ((res = run(r->conn,
	               r->point_from_progress ? own_sql_progress_point : own_sql_origin_point, 0,
	               NULL, err)) == NULL)
		return PGF_ERR;
	snprintf(r->applied, sizeof(r->applied), "%s", PQgetvalue(res, 0, 0));
	snprintf(r->commit_time, sizeof(r->commit_time), "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	if (!r->v.reachable)
		last_lag_sample(r);
	snprintf(r->margin, sizeof(r->margin), "%" PRId64, r->sequence_margin);
	if ((res = run(r->conn, own_sql_sequences_bump, 1, p, err)) == NULL)
		return PGF_ERR;
	r->nseq = PQntuples(res);
	PQclear(res);
	lsn_format(r->v.primary_wal_lsn, r->wal);
	snprintf(r->klt, sizeof(r->klt), "%" PRIu64, r->v.known_loss_transactions);
	snprintf(r->klb, sizeof(r->klb), "%" PRIu64, r->v.known_loss_bytes);
	return PGF_OK;
}

static void write_summary(promote_run_t *r)
{
	const sink_view_t *v = &r->v;

	snprintf(r->summary, sizeof(r->summary),
	         "%s: this DR database is now the primary.\n"
	         "  promoted at          %s\n"
	         "  promotion point      applied up to source LSN %s, last applied commit %s\n"
	         "  primary WAL seen     %s (the newest end of WAL the primary reported)\n"
	         "  known loss           %s transactions, %s bytes committed on the primary but "
	         "not applied here\n"
	         "  RPO bound            %.1f ms (oldest unapplied commit + time the primary "
	         "was unheard)\n"
	         "  sink                 %s\n"
	         "  sequences moved      %d, each %s increments past the primary's last known "
	         "value\n"
	         "  recorded in          pgferry.promotion; the fence is pgferry.fence\n",
	         r->who, r->promoted_at, r->applied, r->commit_time[0] ? r->commit_time : "(none)",
	         r->wal, r->klt, r->klb, v->rpo_bound_ms,
	         v->reachable ? (r->drained ? "reachable, drained, fenced"
	                                    : "reachable, NOT fully drained, fenced")
	                      : "unreachable (figures from its last lag sample), fenced",
	         r->nseq, r->margin);
}

/* 5. The record: pgferry.promotion and the event history, then COMMIT. */
static int record(promote_run_t *r, pgf_error_t *err)
{
	char rpo[32], nseq[16], msg[300];
	const char *p[11] = {r->applied,
	                     r->commit_time[0] ? r->commit_time : NULL,
	                     r->v.primary_wal_lsn ? r->wal : NULL,
	                     r->klt,
	                     r->klb,
	                     rpo,
	                     nseq,
	                     r->margin,
	                     r->v.reachable ? "true" : "false",
	                     r->drained ? "true" : "false",
	                     r->summary};
	const char *pe[2] = {msg, r->reason};

	snprintf(rpo, sizeof(rpo), "%.3f", r->v.rpo_bound_ms);
	snprintf(nseq, sizeof(nseq), "%d", r->nseq);
	write_summary(r);
	/* in the event history too, in the same transaction (sql/dr_events.sql) */
	snprintf(msg, sizeof(msg),
	         "promoted by %s: applied up to source LSN %s; known loss %s transactions", r->who,
	         r->applied, r->klt);
	return run_ok(r, own_sql_promotion_record, 11, p, err) &&
	                       run_ok(r, own_sql_promotion_event, 2, pe, err) &&
	                       run_ok(r, "COMMIT", 0, NULL, err)
	               ? PGF_OK
	               : PGF_ERR;
}

/* 6. The sink sees the fence within a second; say whether it did. */
static void confirm_fence(promote_run_t *r)
{
	double t0 = util_monotonic_s();
	sink_view_t after;

	if (!r->v.reachable)
		return;
	do {
		promote_read_sink(r->url, &after);
		if (after.fenced)
			return;
		util_sleep_ms(200);
	} while (util_monotonic_s() - t0 < 10);
	log_warning("the sink does not report the fence yet; it cannot apply anything more "
	            "regardless (the fence is checked in every DR transaction)");
}

static void print_result(const promote_run_t *r)
{
	const sink_view_t *v = &r->v;
	json_t *o;
	char *text;

	if (!r->as_json) {
		fputs(r->summary, stdout);
		return;
	}
	o = json_pack("{s:s, s:s, s:s?, s:s?, s:I, s:I, s:o, s:i, s:I, s:b, s:b}", "promoted_at",
	              r->promoted_at, "applied_lsn", r->applied, "last_applied_commit_time",
	              r->commit_time[0] ? r->commit_time : NULL, "primary_wal_lsn",
	              v->primary_wal_lsn ? r->wal : NULL, "known_loss_transactions",
	              (json_int_t)v->known_loss_transactions, "known_loss_bytes",
	              (json_int_t)v->known_loss_bytes, "rpo_bound_ms",
	              json_out_number(v->rpo_bound_ms, 3), "sequences_moved", r->nseq,
	              "sequence_margin", (json_int_t)r->cli.cfg.promote_sequence_margin,
	              "sink_reachable", v->reachable, "drained", r->drained);
	text = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
	if (text)
		printf("%s\n", text);
	free(text);
	json_decref(o);
}

int promote_copy(PGconn *conn, const promote_sink_view_t *figures, int64_t sequence_margin,
                 const char *who, promote_record_t *out, pgf_error_t *err)
{
	promote_run_t *r = calloc(1, sizeof(*r));
	int st;

	memset(out, 0, sizeof(*out));
	if (r == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory");
	r->conn = conn;
	r->v = *figures;
	r->reason = who;
	r->who = who;
	r->drained = true;
	r->sequence_margin = sequence_margin;
	r->point_from_progress = true;
	st = fence(r, err);
	if (st == PGF_OK && (promotion_point(r, err) != PGF_OK || record(r, err) != PGF_OK)) {
		PQclear(PQexec(conn, "ROLLBACK"));
		st = PGF_ERR;
	}
	out->already = st == 1;
	snprintf(out->promoted_at, sizeof(out->promoted_at), "%s", r->promoted_at);
	snprintf(out->applied, sizeof(out->applied), "%s", r->applied);
	snprintf(out->commit_time, sizeof(out->commit_time), "%s", r->commit_time);
	out->sequences_moved = r->nseq;
	snprintf(out->summary, sizeof(out->summary), "%s", r->summary);
	free(r);
	return st == PGF_ERR ? PGF_ERR : PGF_OK;
}

int cmd_promote(int argc, char **argv)
{
	promote_run_t r;
	pgf_error_t err;
	int rc = EXIT_ERROR, st;

	memset(&r, 0, sizeof(r));
	error_clear(&err);
	if (parse_args(&r, argc, argv, &err) != PGF_OK) {
		log_error_value(LOG_ERROR, &err);
		goto out;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	drain_sink(&r);
	if (connect_dr(&r, &err) != PGF_OK) {
		log_error_value(LOG_ERROR, &err);
		goto out;
	}
	/* from here, one DR transaction: all of it or nothing */
	st = fence(&r, &err);
	if (st == 1) {
		fputs(r.summary, stdout);
		rc = 0;
		goto out;
	}
	if (st != PGF_OK || promotion_point(&r, &err) != PGF_OK || record(&r, &err) != PGF_OK) {
		log_error_value(LOG_ERROR, &err);
		log_info("nothing was changed (the transaction was rolled back)");
		PQclear(PQexec(r.conn, "ROLLBACK"));
		goto out;
	}
	confirm_fence(&r);
	print_result(&r);
	rc = 0;
out:
	PQfinish(r.conn);
	cli_free(&r.cli);
	return rc;
}
