/*
 * lag_history.c — the sink's history thread (see lag_history.h): a sample a
 * second into pgferry.lag_history, pruning once a minute, and the last
 * hour's percentiles every ten seconds. Failures are logged once and
 * retried: history is a record, never a reason to stop replicating.
 * It also looks for events (events_watch) ten times a second and writes
 * the queued events (events.h) to pgferry.events, and keeps the last hour's
 * samples in memory for the status page (loaded from the table at start).
 */
#include "pgferry/lag_history.h"

#include "pgferry/decoder.h"
#include "pgferry/dr_state.h"
#include "pgferry/events.h"
#include "pgferry/log.h"
#include "pgferry/util.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct lag_history {
	const config_t *cfg;
	lag_tracker_t *lag;
	pthread_t thread;
	volatile int stop;
	PGconn *conn;
	bool failing; /* the last attempt failed: log again only on recovery */
	events_watch_t watch;

	pthread_mutex_t points_lock;                    /* points, npoints, first */
	lag_history_point_t points[LAG_HISTORY_POINTS]; /* a ring */
	int npoints, first;
	bool points_loaded; /* the last hour was read from pgferry.lag_history */
};

static bool run(lag_history_t *h, const char *sql, int n, const char *const *params,
                PGresult **out);

static void point_push(lag_history_t *h, int64_t time_us, double rpo_ms, double lag_ms)
{
	lag_history_point_t *p;

	pthread_mutex_lock(&h->points_lock);
	if (h->npoints == LAG_HISTORY_POINTS) {
		h->first = (h->first + 1) % LAG_HISTORY_POINTS;
		h->npoints--;
	}
	p = &h->points[(h->first + h->npoints) % LAG_HISTORY_POINTS];
	p->time_us = time_us;
	p->rpo_bound_ms = rpo_ms;
	p->commit_lag_ms = lag_ms;
	h->npoints++;
	pthread_mutex_unlock(&h->points_lock);
}

int lag_history_recent(lag_history_t *h, int64_t since_us, lag_history_point_t *out, int max)
{
	int i, n = 0;

	if (h == NULL)
		return 0;
	pthread_mutex_lock(&h->points_lock);
	for (i = 0; i < h->npoints && n < max; i++) {
		const lag_history_point_t *p = &h->points[(h->first + i) % LAG_HISTORY_POINTS];
		if (p->time_us > since_us)
			out[n++] = *p;
	}
	pthread_mutex_unlock(&h->points_lock);
	return n;
}

/* Once, before the first sample of this run: the last hour as stored, so a
 * restarted sink draws what came before it. */
static void load_points(lag_history_t *h)
{
	PGresult *res = NULL;
	int i;

	if (h->points_loaded ||
	    !run(h,
	         "SELECT (extract(epoch FROM sampled_at) * 1000000)::bigint, rpo_bound_ms, "
	         "commit_lag_ms FROM pgferry.lag_history WHERE sampled_at > clock_timestamp() - "
	         "interval '1 hour' ORDER BY sampled_at",
	         0, NULL, &res))
		return;
	for (i = 0; i < PQntuples(res); i++)
		point_push(h, strtoll(PQgetvalue(res, i, 0), NULL, 10),
		           PQgetisnull(res, i, 1) ? -1 : atof(PQgetvalue(res, i, 1)),
		           atof(PQgetvalue(res, i, 2)));
	PQclear(res);
	h->points_loaded = true;
}

static bool run(lag_history_t *h, const char *sql, int n, const char *const *params, PGresult **out)
{
	PGresult *res = PQexecParams(h->conn, sql, n, NULL, params, NULL, NULL, 0);
	int st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		if (!h->failing)
			log_warning("lag history: %s", PQresultErrorMessage(res));
		h->failing = true;
		PQclear(res);
		return false;
	}
	if (out)
		*out = res;
	else
		PQclear(res);
	return true;
}

static bool connect_db(lag_history_t *h)
{
	const char *keys[] = {"dbname", "fallback_application_name", "connect_timeout", NULL};
	const char *values[] = {h->cfg->dr_conninfo, "pgferry sink history", "10", NULL};
	pgf_error_t err;

	if (h->conn && PQstatus(h->conn) == CONNECTION_OK)
		return true;
	PQfinish(h->conn);
	h->conn = PQconnectdbParams(keys, values, 1);
	if (h->conn == NULL || PQstatus(h->conn) != CONNECTION_OK) {
		if (!h->failing)
			log_warning("lag history: cannot connect to the DR database; retrying");
		h->failing = true;
		return false;
	}
	if (dr_state_run(h->conn, pgferry_sql_dr_lag_history,
	                 "the lag history (sql/dr_lag_history.sql)", &err) != PGF_OK) {
		if (!h->failing)
			log_warning("lag history: %s", err.message);
		h->failing = true;
		return false;
	}
	if (events_install(h->conn, &err) != PGF_OK) {
		if (!h->failing)
			log_warning("lag history: %s", err.message);
		h->failing = true;
		PQfinish(h->conn);
		h->conn = NULL; /* installed again on the next connection */
		return false;
	}
	return true;
}

static void flush_events(lag_history_t *h)
{
	pgf_error_t err;

	if (events_flush(h->conn, &err) != PGF_OK) {
		if (!h->failing)
			log_warning("event history: %s", err.message);
		h->failing = true;
	}
}

static void sample(lag_history_t *h, const lag_snapshot_t *s)
{
	char applied[LSN_TEXT_LEN], wal[LSN_TEXT_LEN], lag[32], rpo[32], unk[32], lt[32], lb[32],
	        bt[32];
	const char *p[9] = {
	        applied, wal, lag, rpo, unk, lt, lb, bt, lag_source_state_name(s->source_state)};

	lsn_format(s->applied_lsn, applied);
	lsn_format(s->primary_wal_lsn, wal);
	snprintf(lag, sizeof(lag), "%.3f", s->last_commit_lag_ms);
	snprintf(rpo, sizeof(rpo), "%.3f", s->rpo_bound_ms);
	snprintf(unk, sizeof(unk), "%.3f", s->unknown_window_ms);
	snprintf(lt, sizeof(lt), "%llu", (unsigned long long)s->known_loss_transactions);
	snprintf(lb, sizeof(lb), "%llu", (unsigned long long)s->known_loss_bytes);
	snprintf(bt, sizeof(bt), "%llu", (unsigned long long)s->backlog_transactions);
	/* figures nothing proves yet are NULL, not a number */
	if (!s->rpo_known)
		p[3] = NULL;
	if (s->unknown_window_ms < 0)
		p[4] = NULL;
	point_push(h, s->now_us, s->rpo_known ? s->rpo_bound_ms : -1, s->last_commit_lag_ms);
	if (run(h,
	        "INSERT INTO pgferry.lag_history VALUES (clock_timestamp(), $1, $2, $3, $4, $5, "
	        "$6, "
	        "$7, $8, $9) ON CONFLICT DO NOTHING",
	        9, p, NULL) &&
	    h->failing) {
		log_info("lag history: recording again");
		h->failing = false;
	}
}

static void prune(lag_history_t *h)
{
	pgf_error_t err;
	char ms[32];
	const char *p[1] = {ms};

	snprintf(ms, sizeof(ms), "%lld", (long long)h->cfg->lag_history_retention);
	events_prune(h->conn, h->cfg->lag_history_retention, &err);
	run(h,
	    "DELETE FROM pgferry.lag_history WHERE sampled_at < clock_timestamp() - "
	    "make_interval(secs => $1::double precision / 1000)",
	    1, p, NULL);
}

static void percentiles(lag_history_t *h)
{
	PGresult *res = NULL;

	if (!run(h,
	         "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY commit_lag_ms), "
	         "percentile_cont(0.95) WITHIN GROUP (ORDER BY commit_lag_ms), "
	         "percentile_cont(0.99) WITHIN GROUP (ORDER BY commit_lag_ms), max(commit_lag_ms) "
	         "FROM pgferry.lag_history WHERE sampled_at > clock_timestamp() - interval '1 "
	         "hour'",
	         0, NULL, &res))
		return;
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		lag_set_history(h->lag, atof(PQgetvalue(res, 0, 0)), atof(PQgetvalue(res, 0, 1)),
		                atof(PQgetvalue(res, 0, 2)), atof(PQgetvalue(res, 0, 3)));
	PQclear(res);
}

/* The last pgferry drill, for /v1/status. */
static void last_drill(lag_history_t *h)
{
	PGresult *res = NULL;
	bool exists;

	/* pgferry.drills comes with the DR schema, made at the first contact
	 * with a source; before that there is no drill to show, and no error */
	if (!run(h, "SELECT to_regclass('pgferry.drills') IS NOT NULL", 0, NULL, &res))
		return;
	exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	res = NULL;
	if (!exists)
		return;
	if (!run(h,
	         "SELECT to_char(started_at AT TIME ZONE 'UTC', "
	         "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), ok, coalesce(rto_ms, -1), "
	         "coalesce(error, '') FROM pgferry.drills ORDER BY started_at DESC LIMIT 1",
	         0, NULL, &res))
		return;
	if (PQntuples(res) == 1)
		lag_set_last_drill(h->lag, PQgetvalue(res, 0, 0),
		                   strcmp(PQgetvalue(res, 0, 1), "t") == 0,
		                   atof(PQgetvalue(res, 0, 2)), PQgetvalue(res, 0, 3));
	PQclear(res);
}

static void *history_main(void *arg)
{
	lag_history_t *h = arg;
	lag_snapshot_t *s = malloc(sizeof(*s));
	unsigned tick = 0;

	while (!h->stop && s != NULL) {
		int slept;

		lag_snapshot(h->lag, s);
		events_watch(&h->watch, s);
		if (connect_db(h)) {
			/* nothing to record before the first word from a primary */
			load_points(h);
			if (s->heard_from_primary)
				sample(h, s);
			flush_events(h);
			if (tick % 10 == 0) {
				percentiles(h);
				last_drill(h);
			}
			if (tick % 60 == 0)
				prune(h);
		}
		tick++;
		for (slept = 0; slept < 10 && !h->stop; slept++) {
			util_sleep_ms(100);
			lag_snapshot(h->lag, s);
			events_watch(&h->watch, s);
		}
	}
	/* what happened last (the sink stopping) is recorded too */
	if (s != NULL && h->conn && PQstatus(h->conn) == CONNECTION_OK)
		flush_events(h);
	free(s);
	return NULL;
}

lag_history_t *lag_history_start(const config_t *cfg, lag_tracker_t *lag, pgf_error_t *err)
{
	lag_history_t *h = calloc(1, sizeof(*h));

	if (h == NULL) {
		error_set(err, PGF_E_MEMORY, "out of memory");
		return NULL;
	}
	h->cfg = cfg;
	h->lag = lag;
	pthread_mutex_init(&h->points_lock, NULL);
	if (pthread_create(&h->thread, NULL, history_main, h) != 0) {
		pthread_mutex_destroy(&h->points_lock);
		free(h);
		error_set(err, PGF_E_MEMORY, "could not start the lag history thread");
		return NULL;
	}
	return h;
}

void lag_history_stop(lag_history_t *h)
{
	if (h == NULL)
		return;
	h->stop = 1;
	pthread_join(h->thread, NULL);
	PQfinish(h->conn);
	pthread_mutex_destroy(&h->points_lock);
	free(h);
}
