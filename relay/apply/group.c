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
 */
#include "apply_internal.h"

#include "pgferry/replication.h"

#include <stdio.h>
#include <string.h>

#define DURABLE_INTERVAL_MS 50.0

int group_begin(apply_t *a, pgf_error_t *err)
{
	if (a->group.open)
		return PGF_OK;
	/* the fence check takes a lock that pgferry promote waits for: no DR
	 * transaction of this sink commits after the fence (sql/dr_state.sql) */
	if (pipeline_send_plain(&a->pl, "BEGIN", "begin", err) != PGF_OK ||
	    pipeline_send_plain(&a->pl, "SELECT pgferry.assert_not_fenced()", "fence check", err) !=
	            PGF_OK)
		return PGF_ERR;
	a->group.open = true;
	a->group.txns = a->group.rows = a->group.bytes = 0;
	a->group.end_lsn = 0;
	a->group.commit_time = 0;
	clock_gettime(CLOCK_MONOTONIC, &a->group.started);
	return PGF_OK;
}

/* Reports the groups committed since the last durable commit: they are
 * durable now (WAL is flushed in order). Only durable groups are reported,
 * because the source confirms what is reported to the primary's slot. */
static void report_durable(apply_t *a)
{
	if (a->group.has_pending && a->hooks.committed)
		a->hooks.committed(a->hooks.arg, &a->group.pending);
	a->group.has_pending = false;
	memset(&a->group.pending, 0, sizeof(a->group.pending));
	clock_gettime(CLOCK_MONOTONIC, &a->group.last_durable);
}

int apply_commit_group(apply_t *a, bool durable, pgf_error_t *err)
{
	char lsn[LSN_TEXT_LEN], ts[64];
	const char *params[2];
	bool sync_now;

	if (a->txn.in_txn)
		return PGF_OK;
	if (!a->group.open) {
		if (!durable || !a->group.has_pending)
			return PGF_OK;
		/* make the groups committed asynchronously durable: a transaction
		 * that writes (the same progress again), committed synchronously,
		 * flushes the WAL of every one before it */
		if (group_begin(a, err) != PGF_OK)
			return PGF_ERR;
		a->group.progress_only = true;
		a->group.end_lsn = a->group.progress_lsn;
		a->group.commit_time = a->group.progress_time;
	}
	if (!coalesce_empty(&a->net) && rows_flush_held(a, err) != PGF_OK) {
		a->group.open = false;
		pipeline_rollback(&a->pl);
		return PGF_ERR;
	}
	if (a->group.txns == 0 && !a->group.progress_only) {
		/* nothing to record: end the empty transaction */
		if (pipeline_send_plain(&a->pl, "COMMIT", "commit", err) != PGF_OK ||
		    pipeline_sync(&a->pl, err) != PGF_OK) {
			a->group.open = false;
			pipeline_rollback(&a->pl);
			return PGF_ERR;
		}
		a->group.open = false;
		return PGF_OK;
	}
	/* the DR session commits asynchronously (synchronous_commit = off);
	 * every DURABLE_INTERVAL_MS under load, and whenever input pauses, a
	 * group commits synchronously and so makes all before it durable: one
	 * WAL flush for many groups instead of one each */
	sync_now = durable ||
	           apply_elapsed_since(&a->group.last_durable) * 1000.0 >= DURABLE_INTERVAL_MS;
	/* the origin's progress commits atomically with the group's changes */
	lsn_format(a->group.end_lsn, lsn);
	pgtime_format_iso(a->group.commit_time, ts);
	params[0] = lsn;
	params[1] = ts;
	if (PQsendQueryParams(
	            a->pl.conn,
	            "SELECT pg_replication_origin_xact_setup($1::pg_lsn, $2::timestamptz)", 2, NULL,
	            params, NULL, NULL, 0) != 1 ||
	    PQsendQueryParams(
	            a->pl.conn,
	            "INSERT INTO pgferry.progress VALUES (true, $1::pg_lsn, $2::timestamptz, "
	            "now()) ON CONFLICT (singleton) DO UPDATE SET source_lsn = "
	            "excluded.source_lsn, source_commit_time = excluded.source_commit_time, "
	            "applied_at = excluded.applied_at",
	            2, NULL, params, NULL, NULL, 0) != 1) {
		a->group.open = false;
		return apply_conn_error(err, a->pl.conn, "recording progress");
	}
	pipeline_push(&a->pl, "progress", 0, false, NULL);
	pipeline_push(&a->pl, "progress", 0, false, NULL);
	if ((sync_now && pipeline_send_plain(&a->pl, "SET LOCAL synchronous_commit = on",
	                                     "durability", err) != PGF_OK) ||
	    pipeline_send_plain(&a->pl, "COMMIT", "commit", err) != PGF_OK ||
	    pipeline_sync(&a->pl, err) != PGF_OK) {
		a->group.open = false;
		pipeline_rollback(&a->pl);
		return PGF_ERR;
	}
	a->group.open = false;
	a->group.progress_only = false;
	a->group.progress_lsn = a->group.end_lsn;
	a->group.progress_time = a->group.commit_time;
	a->group.pending.end_lsn = a->group.end_lsn;
	a->group.pending.last_commit_time = a->group.commit_time;
	a->group.pending.transactions += a->group.txns;
	a->group.pending.rows += a->group.rows;
	a->group.pending.bytes += a->group.bytes;
	a->group.pending.seconds += apply_elapsed_since(&a->group.started);
	a->group.has_pending = true;
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
	a->txn.in_txn = false;
	a->group.txns++;
	a->group.end_lsn = end_lsn;
	a->group.commit_time = commit_time;
	if (group_full(a))
		return apply_commit_group(a, false, err);
	return PGF_OK;
}

int apply_advance_idle(apply_t *a, uint64_t lsn, pgf_error_t *err)
{
	/* not while a streamed transaction is open (spilled, not committed) */
	if (!apply_connected(a) || a->group.open || a->txn.in_txn || a->spill.current != NULL ||
	    lsn <= a->group.progress_lsn || spill_any_open(&a->spill))
		return PGF_OK;
	if (group_begin(a, err) != PGF_OK)
		return PGF_ERR;
	a->group.progress_only = true;
	a->group.end_lsn = lsn;
	a->group.commit_time = a->group.progress_time; /* the last commit's time stays */
	return apply_commit_group(a, true, err);
}
