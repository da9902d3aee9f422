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
 */
#include "pgferry/cli.h"
#include "pgferry/decoder.h"
#include "pgferry/dr_state.h"
#include "pgferry/http_client.h"
#include "pgferry/log.h"
#include "pgferry/pgsession.h"
#include "pgferry/util.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct sink_view {
	bool reachable;
	bool fenced;
	uint64_t received_lsn, applied_lsn, primary_wal_lsn;
	uint64_t backlog_transactions;
	uint64_t known_loss_transactions, known_loss_bytes;
	double rpo_bound_ms;
	char why[1400];
} sink_view_t;

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

static void read_sink(const char *url, sink_view_t *v)
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
	fprintf(stderr, "pgferry promote: draining: the sink has received up to %s, applied %s\n",
	        lsn_format(target, lsn), lsn_format(v->applied_lsn, lsn2));
	while (util_monotonic_s() - t0 < timeout_s) {
		util_sleep_ms(100);
		read_sink(url, v);
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

static void usage(void)
{
	fprintf(stderr,
	        "usage: pgferry promote [--config FILE] [-c key=value ...] [--url SINK_URL]\n"
	        "                       [--drain-timeout 60s] [--reason TEXT] [--json]\n"
	        "Fences the sink, drains it, moves sequences past the primary's, and records\n"
	        "the promotion point in pgferry.promotion. Needs dr_conninfo; asks the sink\n"
	        "at sink_url for its figures (goes on without it if it is down).\n");
}

int cmd_promote(int argc, char **argv)
{
	cli_t cli;
	pgf_error_t err;
	const char *url, *reason = "pgferry promote";
	double drain_timeout = 60;
	bool as_json = false, drained = false;
	sink_view_t v;
	PGconn *conn = NULL;
	PGresult *res = NULL;
	int i, rc = EXIT_ERROR, nseq = 0;
	char margin[32], applied[64] = "", commit_time[64] = "", promoted_at[64] = "";
	char wal[LSN_TEXT_LEN], klt[32], klb[32], rpo[32], nseq_text[16];
	char summary[4096];

	error_clear(&err);
	if (cli_load(argc, argv, 0, &cli, &err) != PGF_OK) {
		log_error_value(LOG_ERROR, &err);
		cli_free(&cli);
		return EXIT_ERROR;
	}
	cli_configure_logging(&cli, "promote");
	url = cli.cfg.sink_url;
	for (i = 1; i < cli.argc; i++) {
		const char *a = cli.argv[i];
		if (strcmp(a, "--json") == 0)
			as_json = true;
		else if (strcmp(a, "--url") == 0 && i + 1 < cli.argc)
			url = cli.argv[++i];
		else if (strcmp(a, "--reason") == 0 && i + 1 < cli.argc)
			reason = cli.argv[++i];
		else if (strcmp(a, "--drain-timeout") == 0 && i + 1 < cli.argc) {
			int64_t ms;
			/* a duration with its unit, as everywhere (a bare number
			 * could mean ms or s) */
			if (config_parse_duration(cli.argv[++i], &ms) != PGF_OK || ms < 0) {
				fprintf(stderr,
				        "pgferry promote: --drain-timeout \"%s\" is not a "
				        "duration; "
				        "write a number with a unit (ms, s, min, h), e.g. 60s\n",
				        cli.argv[i]);
				goto out;
			}
			drain_timeout = (double)ms / 1000.0;
		} else {
			usage();
			goto out;
		}
	}
	if (cli.cfg.dr_conninfo == NULL || cli.cfg.dr_conninfo[0] == '\0') {
		fprintf(stderr,
		        "pgferry promote: dr_conninfo is not set\nHINT: promote works on the "
		        "DR database; give its connection string with -c dr_conninfo=...\n");
		goto out;
	}

	/* 1. the sink's view, and drain what it already received */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	read_sink(url, &v);
	if (v.reachable) {
		drained = drain(url, &v, drain_timeout);
		if (!drained)
			fprintf(stderr,
			        "pgferry promote: WARNING: the sink did not apply everything it "
			        "had "
			        "received within %.0f s (%" PRIu64 " transactions left); they are "
			        "lost by this promotion\n",
			        drain_timeout, v.backlog_transactions);
	} else
		fprintf(stderr,
		        "pgferry promote: WARNING: %s; fencing the DR database directly. Figures "
		        "come from the sink's last lag sample.\n",
		        v.why);

	/* 2. fence, sequences and the promotion record: one DR transaction */
	{
		const char *keys[] = {"dbname", "fallback_application_name", "options", NULL};
		const char *values[] = {cli.cfg.dr_conninfo, "pgferry promote", "-c TimeZone=UTC",
		                        NULL};
		conn = PQconnectdbParams(keys, values, 1);
	}
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		char msg[400];

		error_set(&err, PGF_E_DATABASE, "cannot connect to the DR database: %s",
		          pgsession_error_text(conn, msg, sizeof(msg)));
		error_hint(&err, "Check dr_conninfo and that the DR server is up; nothing was "
		                 "changed.");
		log_error_value(LOG_ERROR, &err);
		goto out;
	}
	if (dr_state_install(conn, &err) != PGF_OK ||
	    dr_state_run(conn, pgferry_sql_dr_events, "the event history (sql/dr_events.sql)",
	                 &err) != PGF_OK) {
		log_error_value(LOG_ERROR, &err);
		goto out;
	}
	if ((res = run(conn, "BEGIN", 0, NULL, &err)) == NULL)
		goto failed;
	PQclear(res);
	/* waits for the DR transaction the sink is applying, if any; every
	 * later one waits for this one and then finds the fence */
	if ((res = run(conn, "LOCK TABLE pgferry.fence IN EXCLUSIVE MODE", 0, NULL, &err)) == NULL)
		goto failed;
	PQclear(res);
	if ((res = run(conn, "SELECT fenced_at, reason FROM pgferry.fence", 0, NULL, &err)) == NULL)
		goto failed;
	if (PQntuples(res) > 0) {
		printf("pgferry promote: this DR database was already promoted at %s (%s); "
		       "nothing to do. The promotion point is in pgferry.promotion.\n",
		       PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
		PQclear(res);
		res = PQexec(conn, "ROLLBACK");
		PQclear(res);
		res = NULL;
		rc = 0;
		goto out;
	}
	PQclear(res);
	{
		const char *p[1] = {reason};
		if ((res = run(conn,
		               "INSERT INTO pgferry.fence (reason) VALUES ($1) RETURNING "
		               "to_char(fenced_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
		               1, p, &err)) == NULL)
			goto failed;
		snprintf(promoted_at, sizeof(promoted_at), "%s", PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	if ((res = run(conn,
	               "SELECT coalesce(pg_replication_origin_progress(pgferry.origin(), true), "
	               "'0/0')::text, "
	               "coalesce((SELECT to_char(source_commit_time, "
	               "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM pgferry.progress), '')",
	               0, NULL, &err)) == NULL)
		goto failed;
	snprintf(applied, sizeof(applied), "%s", PQgetvalue(res, 0, 0));
	snprintf(commit_time, sizeof(commit_time), "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	if (!v.reachable) {
		/* the sink's last word, from its lag history, if any */
		res = PQexec(conn, "SAVEPOINT history");
		PQclear(res);
		res = PQexec(conn, "SELECT primary_wal_lsn::text, known_loss_transactions, "
		                   "known_loss_bytes, rpo_bound_ms FROM pgferry.current_lag");
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
			lsn_parse(PQgetvalue(res, 0, 0), &v.primary_wal_lsn);
			v.known_loss_transactions = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
			v.known_loss_bytes = strtoull(PQgetvalue(res, 0, 2), NULL, 10);
			v.rpo_bound_ms = strtod(PQgetvalue(res, 0, 3), NULL);
			PQclear(res);
			res = PQexec(conn, "RELEASE SAVEPOINT history");
		} else {
			PQclear(res);
			res = PQexec(conn, "ROLLBACK TO SAVEPOINT history");
		}
		PQclear(res);
		res = NULL;
	}
	snprintf(margin, sizeof(margin), "%" PRId64, cli.cfg.promote_sequence_margin);
	{
		const char *p[1] = {margin};
		if ((res = run(conn, "SELECT * FROM pgferry.bump_sequences($1::int8)", 1, p,
		               &err)) == NULL)
			goto failed;
		nseq = PQntuples(res);
		PQclear(res);
	}
	lsn_format(v.primary_wal_lsn, wal);
	snprintf(klt, sizeof(klt), "%" PRIu64, v.known_loss_transactions);
	snprintf(klb, sizeof(klb), "%" PRIu64, v.known_loss_bytes);
	snprintf(rpo, sizeof(rpo), "%.3f", v.rpo_bound_ms);
	snprintf(nseq_text, sizeof(nseq_text), "%d", nseq);
	snprintf(summary, sizeof(summary),
	         "pgferry promote: this DR database is now the primary.\n"
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
	         promoted_at, applied, commit_time[0] ? commit_time : "(none)", wal, klt, klb,
	         v.rpo_bound_ms,
	         v.reachable ? (drained ? "reachable, drained, fenced"
	                                : "reachable, NOT fully drained, fenced")
	                     : "unreachable (figures from its last lag sample), fenced",
	         nseq, margin);
	{
		const char *p[11] = {applied,
		                     commit_time[0] ? commit_time : NULL,
		                     v.primary_wal_lsn ? wal : NULL,
		                     klt,
		                     klb,
		                     rpo,
		                     nseq_text,
		                     margin,
		                     v.reachable ? "true" : "false",
		                     drained ? "true" : "false",
		                     summary};
		if ((res = run(
		             conn,
		             "INSERT INTO pgferry.promotion (promoted_at, applied_lsn, "
		             "last_applied_commit_time, primary_wal_lsn, known_loss_transactions, "
		             "known_loss_bytes, rpo_bound_ms, sequences_moved, sequence_margin, "
		             "sink_reachable, drained, summary) SELECT fenced_at, $1::pg_lsn, "
		             "$2::timestamptz, $3::pg_lsn, $4::int8, $5::int8, $6::float8, "
		             "$7::int4, $8::int8, $9::bool, $10::bool, $11 FROM pgferry.fence",
		             11, p, &err)) == NULL)
			goto failed;
		PQclear(res);
	}
	{
		/* in the event history too, in the same transaction (sql/dr_events.sql) */
		char msg[300];
		const char *p[2] = {msg, reason};
		snprintf(msg, sizeof(msg),
		         "promoted by pgferry promote: applied up to source LSN %s; known loss %s "
		         "transactions",
		         applied, klt);
		if ((res = run(conn,
		               "INSERT INTO pgferry.events (at, kind, severity, message, detail) "
		               "SELECT fenced_at, 'promoted', 'warning', $1, "
		               "jsonb_build_object('reason', $2::text) FROM pgferry.fence",
		               2, p, &err)) == NULL)
			goto failed;
		PQclear(res);
	}
	if ((res = run(conn, "COMMIT", 0, NULL, &err)) == NULL)
		goto failed;
	PQclear(res);
	res = NULL;

	/* 3. the sink sees the fence within a second; say whether it did */
	if (v.reachable) {
		double t0 = util_monotonic_s();
		sink_view_t after;
		do {
			read_sink(url, &after);
			if (after.fenced)
				break;
			util_sleep_ms(200);
		} while (util_monotonic_s() - t0 < 10);
		if (!after.fenced)
			fprintf(stderr,
			        "pgferry promote: WARNING: the sink does not report the fence "
			        "yet; it cannot apply anything more regardless (the fence is "
			        "checked in every DR transaction)\n");
	}
	if (as_json) {
		json_t *o =
		        json_pack("{s:s, s:s, s:s?, s:s?, s:I, s:I, s:f, s:i, s:I, s:b, s:b}",
		                  "promoted_at", promoted_at, "applied_lsn", applied,
		                  "last_applied_commit_time", commit_time[0] ? commit_time : NULL,
		                  "primary_wal_lsn", v.primary_wal_lsn ? wal : NULL,
		                  "known_loss_transactions", (json_int_t)v.known_loss_transactions,
		                  "known_loss_bytes", (json_int_t)v.known_loss_bytes,
		                  "rpo_bound_ms", v.rpo_bound_ms, "sequences_moved", nseq,
		                  "sequence_margin", (json_int_t)cli.cfg.promote_sequence_margin,
		                  "sink_reachable", v.reachable, "drained", drained);
		char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
		if (text)
			printf("%s\n", text);
		free(text);
		json_decref(o);
	} else
		fputs(summary, stdout);
	rc = 0;
	goto out;

failed:
	log_error_value(LOG_ERROR, &err);
	fprintf(stderr, "pgferry promote: nothing was changed (the transaction was rolled back)\n");
	res = PQexec(conn, "ROLLBACK");
	PQclear(res);
out:
	PQfinish(conn);
	cli_free(&cli);
	return rc;
}
