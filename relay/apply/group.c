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
 * flush for many groups. A group's COMMIT is sent without waiting for its
 * result (up to COMMITS_IN_FLIGHT of them), so the next groups are decoded
 * and sent while the DR server works; results are read in order, and only
 * durable groups whose result came back are reported (the committed hook),
 * because the source confirms what is reported to the slot.
 * The states of this life, and what a crash at each leaves behind, are in
 * pgferry/dr_group.h; every change of state goes through
 * dr_group_transition.
 */
#include "apply_internal.h"

#include "pgferry/log.h"
#include "pgferry/own_sql.h"
#include "pgferry/replication.h"

#include <stdio.h>
#include <string.h>

#define DURABLE_INTERVAL_MS 50.0
#define SENT_SLOTS          (COMMITS_IN_FLIGHT + 1)

/* Where the origin stands once every COMMIT sent has committed: the next
 * group's first statement checks it (pgferry.assert_apply_position). */
static uint64_t expected_origin(const apply_t *a)
{
	unsigned n = a->group.nsent;

	if (n == 0)
		return a->group.progress_lsn;
	return a->group.sent[(a->group.sent_head + n - 1) % SENT_SLOTS].applied.end_lsn;
}

int group_begin(apply_t *a, dr_group_event_t event, pgf_error_t *err)
{
	bool opens = !dr_group_open(&a->group.sm);
	char lsn[LSN_TEXT_LEN];
	const char *params[1];

	if (dr_group_transition(&a->group.sm, event, err) != PGF_OK)
		return PGF_ERR;
	if (!opens)
		return PGF_OK; /* the next source transaction joins the open group */
	/* the fence check takes a lock that pgferry promote waits for: no DR
	 * transaction of this sink commits after the fence (sql/dr_state.sql);
	 * the position check keeps this group from committing should the one
	 * before it, still in flight, fail */
	params[0] = lsn_format(expected_origin(a), lsn);
	if (pipeline_send_plain(&a->pl, "BEGIN", "begin", err) != PGF_OK)
		return PGF_ERR;
	/* parallel apply: both checks are made at the group's turn to commit
	 * (pgferry.advance_progress), never while it waits for it */
	if (!apply_parallel(a) && pipeline_send_own(&a->pl, own_sql_group_start_check, 1, params,
	                                            "fence check", err) != PGF_OK)
		return PGF_ERR;
	a->group.txns = a->group.rows = a->group.bytes = 0;
	a->group.end_lsn = 0;
	a->group.commit_time = 0;
	clock_gettime(CLOCK_MONOTONIC, &a->group.started);
	return PGF_OK;
}

void group_rollback_all(apply_t *a)
{
	pgf_error_t ignored;

	pipeline_rollback(&a->pl); /* reads what is in flight first */
	a->group.nsent = 0;
	dr_group_transition(&a->group.sm, DR_GROUP_ROLLBACK, &ignored); /* always legal */
}

/* The DR transaction failed: roll it back; committed groups stay. */
static int group_rollback(apply_t *a)
{
	group_rollback_all(a);
	return PGF_ERR;
}

/* Adds a group whose COMMIT came back to those not yet reported. */
static void group_committed(apply_t *a, const apply_group_t *g)
{
	apply_group_t *p = &a->group.pending;

	a->group.progress_lsn = g->end_lsn;
	a->group.progress_time = g->last_commit_time;
	p->end_lsn = g->end_lsn;
	p->last_commit_time = g->last_commit_time;
	p->transactions += g->transactions;
	p->rows += g->rows;
	p->bytes += g->bytes;
	p->seconds += g->seconds;
}

/* Reports the groups committed since the last durable commit: they are
 * durable now (WAL is flushed in order). Only durable groups are reported,
 * because the source confirms what is reported to the primary's slot. */
static void report_durable(apply_t *a)
{
	if (a->hooks.committed)
		a->hooks.committed(a->hooks.arg, &a->group.pending);
	memset(&a->group.pending, 0, sizeof(a->group.pending));
}

void group_commit_result(void *arg, bool ok)
{
	apply_t *a = arg;
	sent_group_t *sg;
	pgf_error_t err;

	if (a->group.nsent == 0)
		return; /* nothing recorded for it: cannot happen */
	sg = &a->group.sent[a->group.sent_head];
	a->group.sent_head = (a->group.sent_head + 1) % SENT_SLOTS;
	a->group.nsent--;
	if (!ok)
		return; /* not committed: the rollback that follows settles the state */
	group_committed(a, &sg->applied);
	log_debug("DR group up to %X/%X committed%s: %llu transactions",
	          (unsigned)(sg->applied.end_lsn >> 32), (unsigned)sg->applied.end_lsn,
	          sg->durable ? " durably" : "", (unsigned long long)sg->applied.transactions);
	if (a->hooks.group_committed)
		a->hooks.group_committed(a->hooks.arg, &sg->applied, sg->durable);
	if (dr_group_transition(&a->group.sm,
	                        sg->durable ? DR_GROUP_COMMIT_DURABLE : DR_GROUP_COMMIT,
	                        &err) != PGF_OK)
		log_error("%s", err.message); /* the counts disagree: a bug */
	if (sg->durable)
		report_durable(a);
}

/* Sends the progress record and COMMIT of the open group, and goes on: the
 * origin's progress commits atomically with the changes, and
 * group_commit_result hears of the result. */
static int group_send_commit(apply_t *a, bool sync_now, pgf_error_t *err)
{
	char lsn[LSN_TEXT_LEN], ts[64], prev[LSN_TEXT_LEN];
	const char *params[3] = {lsn_format(a->group.end_lsn, lsn), ts, prev};
	sent_group_t *sg;
	uint64_t expected = 0;
	bool parallel = apply_parallel(a);

	pgtime_format_iso(a->group.commit_time, ts);
	/* parallel apply: wait for every DR transaction before this one to be
	 * sent, and record the progress only where the one before left it */
	if (parallel && a->hooks.turn(a->hooks.arg, a->group.end_lsn, &expected, err) != PGF_OK)
		return group_rollback(a);
	lsn_format(expected, prev);
	if (pipeline_send_own(&a->pl, own_sql_origin_xact_setup, 2, params, "progress", err) !=
	            PGF_OK ||
	    pipeline_send_own(&a->pl, parallel ? own_sql_progress_advance : own_sql_progress_record,
	                      parallel ? 3 : 2, params, "progress", err) != PGF_OK ||
	    (sync_now && pipeline_send_plain(&a->pl, "SET LOCAL synchronous_commit = on",
	                                     "durability", err) != PGF_OK) ||
	    pipeline_send_plain(&a->pl, "COMMIT", "commit", err) != PGF_OK)
		return group_rollback(a);
	/* recorded before the sync: its result may be read at once */
	sg = &a->group.sent[(a->group.sent_head + a->group.nsent) % SENT_SLOTS];
	a->group.nsent++;
	memset(sg, 0, sizeof(*sg));
	sg->applied.end_lsn = a->group.end_lsn;
	sg->applied.last_commit_time = a->group.commit_time;
	sg->applied.transactions = a->group.txns;
	sg->applied.rows = a->group.rows;
	sg->applied.bytes = a->group.bytes;
	sg->applied.seconds = apply_elapsed_since(&a->group.started);
	sg->durable = sync_now;
	if (sync_now)
		clock_gettime(CLOCK_MONOTONIC, &a->group.last_durable);
	if (dr_group_transition(&a->group.sm, DR_GROUP_COMMIT_SENT, err) != PGF_OK ||
	    pipeline_sync_async(&a->pl, PIPELINE_SYNC_COMMIT, err) != PGF_OK)
		return group_rollback(a);
	return PGF_OK;
}

int apply_commit_group(apply_t *a, bool durable, pgf_error_t *err)
{
	dr_group_t *g = &a->group.sm;
	bool sync_now;

	if (dr_group_in_source_transaction(g))
		return PGF_OK;
	/* input paused: what is in flight comes back (and is reported) now */
	if (durable && a->pl.syncs > 0 && pipeline_drain(&a->pl, err) != PGF_OK)
		return group_rollback(a);
	if (g->state == DR_GROUP_IDLE)
		return PGF_OK;
	if (g->state == DR_GROUP_COMMITTED) {
		if (!durable || g->pending == 0)
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
		    pipeline_sync_async(&a->pl, PIPELINE_SYNC_PLAIN, err) != PGF_OK ||
		    (durable && pipeline_drain(&a->pl, err) != PGF_OK))
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
	if (durable && pipeline_drain(&a->pl, err) != PGF_OK)
		return group_rollback(a);
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

int apply_record_progress(apply_t *a, uint64_t lsn, int64_t commit_time, pgf_error_t *err)
{
	if (!apply_between_groups(a))
		return error_set(err, PGF_E_APPLY, "progress recorded inside a transaction");
	if (group_begin(a, DR_GROUP_FLUSH, err) != PGF_OK)
		return PGF_ERR;
	a->group.end_lsn = lsn;
	a->group.commit_time = commit_time;
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
