/*
 * group.c — the DR transaction that groups source transactions, its commit
 * and its durability.
 *
 * Several source transactions are applied in one DR transaction; before
 * its COMMIT the stream's replication origin is advanced to the end of the
 * last grouped source commit (pg_replication_origin_xact_setup) and
 * pgferry.progress is written, so the DR commit and the progress record
 * are one atomic fact. Groups commit asynchronously (synchronous_commit =
 * off); every DURABLE_INTERVAL_MS under load, and whenever input pauses, a
 * group commits synchronously and so makes all before it durable: one WAL
 * flush for many groups. Only durable groups are reported (the committed
 * hook), because the source confirms what is reported to the slot.
 * The states of this life, and what a crash at each leaves behind, are in
 * pgferry/dr_group.h; every change of state goes through
 * dr_group_transition.
 */
#include "apply_internal.h"

#include "pgferry/own_sql.h"
#include "pgferry/replication.h"

#include <stdio.h>
#include <string.h>

#define DURABLE_INTERVAL_MS 50.0

int group_begin(apply_t *a, dr_group_event_t event, pgf_error_t *err)
{
	bool opens = !dr_group_open(&a->group.sm);

	if (dr_group_transition(&a->group.sm, event, err) != PGF_OK)
		return PGF_ERR;
	if (!opens)
		return PGF_OK; /* the next source transaction joins the open group */
	/* the fence check takes a lock that pgferry promote waits for: no DR
	 * transaction of this sink commits after the fence (sql/dr_state.sql) */
	if (pipeline_send_plain(&a->pl, "BEGIN", "begin", err) != PGF_OK ||
	    pipeline_send_plain(&a->pl, own_sql_fence_check, "fence check", err) != PGF_OK)
		return PGF_ERR;
	a->group.txns = a->group.rows = a->group.bytes = 0;
	a->group.end_lsn = 0;
	a->group.commit_time = 0;
	clock_gettime(CLOCK_MONOTONIC, &a->group.started);
	return PGF_OK;
}

/* The DR transaction failed: roll it back; committed groups stay. */
static int group_rollback(apply_t *a)
{
	pgf_error_t ignored;

	dr_group_transition(&a->group.sm, DR_GROUP_ROLLBACK, &ignored); /* always legal */
	pipeline_rollback(&a->pl);
	return PGF_ERR;
}

/* Adds the group just committed to those not yet reported. */
static void group_committed(apply_t *a)
{
	apply_group_t *p = &a->group.pending;

	a->group.progress_lsn = a->group.end_lsn;
	a->group.progress_time = a->group.commit_time;
	p->end_lsn = a->group.end_lsn;
	p->last_commit_time = a->group.commit_time;
	p->transactions += a->group.txns;
	p->rows += a->group.rows;
	p->bytes += a->group.bytes;
	p->seconds += apply_elapsed_since(&a->group.started);
}

/* Reports the groups committed since the last durable commit: they are
 * durable now (WAL is flushed in order). Only durable groups are reported,
 * because the source confirms what is reported to the primary's slot. */
static void report_durable(apply_t *a)
{
	if (a->hooks.committed)
		a->hooks.committed(a->hooks.arg, &a->group.pending);
	memset(&a->group.pending, 0, sizeof(a->group.pending));
	clock_gettime(CLOCK_MONOTONIC, &a->group.last_durable);
}

/* Sends the progress record and COMMIT of the open group and reads every
 * result: the origin's progress commits atomically with the changes. */
static int group_send_commit(apply_t *a, bool sync_now, pgf_error_t *err)
{
	char lsn[LSN_TEXT_LEN], ts[64];
	const char *params[2] = {lsn_format(a->group.end_lsn, lsn), ts};

	pgtime_format_iso(a->group.commit_time, ts);
	if (PQsendQueryParams(a->pl.conn, own_sql_origin_xact_setup, 2, NULL, params, NULL, NULL,
	                      0) != 1 ||
	    PQsendQueryParams(a->pl.conn, own_sql_progress_record, 2, NULL, params, NULL, NULL,
	                      0) != 1) {
		pgf_error_t ignored;
		dr_group_transition(&a->group.sm, DR_GROUP_ROLLBACK, &ignored);
		return apply_conn_error(err, a->pl.conn, "recording progress");
	}
	pipeline_push(&a->pl, "progress", 0, false, NULL);
	pipeline_push(&a->pl, "progress", 0, false, NULL);
	if ((sync_now && pipeline_send_plain(&a->pl, "SET LOCAL synchronous_commit = on",
	                                     "durability", err) != PGF_OK) ||
	    pipeline_send_plain(&a->pl, "COMMIT", "commit", err) != PGF_OK ||
	    pipeline_sync(&a->pl, err) != PGF_OK)
		return group_rollback(a);
	return PGF_OK;
}

int apply_commit_group(apply_t *a, bool durable, pgf_error_t *err)
{
	dr_group_t *g = &a->group.sm;
	bool sync_now;

	if (g->state == DR_GROUP_IDLE || dr_group_in_source_transaction(g))
		return PGF_OK;
	if (g->state == DR_GROUP_COMMITTED) {
		if (!durable)
			return PGF_OK;
		/* make the groups committed asynchronously durable: a transaction
		 * that writes (the same progress again), committed synchronously,
		 * flushes the WAL of every one before it */
		if (group_begin(a, DR_GROUP_FLUSH, err) != PGF_OK)
			return PGF_ERR;
		a->group.end_lsn = a->group.progress_lsn;
		a->group.commit_time = a->group.progress_time;
	}
	if (!coalesce_empty(&a->net) && rows_flush_held(a, err) != PGF_OK)
		return group_rollback(a);
	if (g->state == DR_GROUP_OPEN && a->group.txns == 0) {
		/* nothing to record: end the empty transaction */
		if (pipeline_send_plain(&a->pl, "COMMIT", "commit", err) != PGF_OK ||
		    pipeline_sync(&a->pl, err) != PGF_OK)
			return group_rollback(a);
		return dr_group_transition(g, DR_GROUP_COMMIT_EMPTY, err);
	}
	/* the DR session commits asynchronously (synchronous_commit = off);
	 * every DURABLE_INTERVAL_MS under load, and whenever input pauses, a
	 * group commits synchronously and so makes all before it durable: one
	 * WAL flush for many groups instead of one each */
	sync_now = durable || g->state == DR_GROUP_FLUSHING ||
	           apply_elapsed_since(&a->group.last_durable) * 1000.0 >= DURABLE_INTERVAL_MS;
	if (group_send_commit(a, sync_now, err) != PGF_OK)
		return PGF_ERR;
	group_committed(a);
	if (dr_group_transition(g, sync_now ? DR_GROUP_COMMIT_DURABLE : DR_GROUP_COMMIT, err) !=
	    PGF_OK)
		return PGF_ERR;
	if (sync_now)
		report_durable(a);
	return PGF_OK;
}

static bool group_full(apply_t *a)
{
	if ((int64_t)a->group.txns >= a->cfg->apply_group_max_transactions)
		return true;
	return apply_elapsed_since(&a->group.started) * 1000.0 >=
	       (double)a->cfg->apply_group_max_delay;
}

int group_source_commit(apply_t *a, uint64_t end_lsn, int64_t commit_time, pgf_error_t *err)
{
	if (dr_group_transition(&a->group.sm, DR_GROUP_SOURCE_COMMIT, err) != PGF_OK)
		return PGF_ERR;
	a->group.txns++;
	a->group.end_lsn = end_lsn;
	a->group.commit_time = commit_time;
	if (group_full(a))
		return apply_commit_group(a, false, err);
	return PGF_OK;
}

/* When nothing is in flight (no transaction, no streamed transaction, no
 * open group), records lsn (a keepalive's position, which has no commit of
 * its own) as the progress, in a small DR transaction. Without it the
 * primary's walsender would wait forever at shutdown for the client to
 * confirm its final WAL. A transaction committing after lsn is sent again
 * in full after any restart, so confirming lsn loses nothing. */
static int advance_idle(apply_t *a, uint64_t lsn, pgf_error_t *err)
{
	dr_group_state_t s = a->group.sm.state;

	/* not while a streamed transaction is open (spilled, not committed) */
	if (!apply_connected(a) || (s != DR_GROUP_IDLE && s != DR_GROUP_COMMITTED) ||
	    a->spill.current != NULL || lsn <= a->group.progress_lsn || spill_any_open(&a->spill))
		return PGF_OK;
	if (group_begin(a, DR_GROUP_FLUSH, err) != PGF_OK)
		return PGF_ERR;
	a->group.end_lsn = lsn;
	a->group.commit_time = a->group.progress_time; /* the last commit's time stays */
	return apply_commit_group(a, true, err);
}

int apply_input_paused(apply_t *a, uint64_t idle_lsn, pgf_error_t *err)
{
	struct timespec now;

	if (dr_group_in_source_transaction(&a->group.sm))
		return PGF_OK;
	if (apply_commit_group(a, true, err) != PGF_OK)
		return PGF_ERR;
	/* at most once a second: heartbeats advance progress anyway; this is
	 * for WAL without commits (a shutdown checkpoint, heartbeats off) */
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (idle_lsn <= a->group.progress_lsn || now.tv_sec == a->group.idle_advanced.tv_sec)
		return PGF_OK;
	a->group.idle_advanced = now;
	return advance_idle(a, idle_lsn, err);
}
