/*
 * lag.c — the lag tracker (see lag.h): what the primary reported, what was
 * received and applied, the clock offset, and the promotion verdict.
 *
 * Received but unapplied commits wait in a FIFO (oldest first), so known
 * loss is counted exactly and the age of the oldest one is known. The FIFO
 * is bounded: past PENDING_MAX entries, new commits merge into the newest
 * entry (counts stay exact, only the per-commit ages of that tail blur).
 *
 * The RPO bound shrinks only on proof (README, "The RPO bound"): the proof
 * point is the newest primary moment before which the DR side provably
 * holds every commit. Proofs are an applied commit's time (commit order is
 * LSN order) and a primary fact (an LSN with the primary time before which
 * every commit lies below it, learned by the source on its own connection)
 * once applied_lsn reaches its LSN. Walsender keepalives prove only that
 * the primary is alive. Every moment is kept on the sink's monotonic clock
 * (converted once, when learned), so a clock that steps cannot shrink a
 * figure; a primary time that would lie in the future is a clock fault and
 * proves nothing.
 *
 * This file: create, and the events that feed the tracker. The clocks are
 * in lag_clock.c, the snapshot in lag_snapshot.c, the verdict in
 * lag_verdict.c, the shared state in lag_internal.h.
 */
#include "lag_internal.h"

#include "pgferry/decoder.h"
#include "pgferry/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double lag_histogram_bounds[LAG_HISTOGRAM_BUCKETS] = {
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

static int64_t real_clock(void *arg)
{
	(void)arg;
	return util_realtime_us();
}

static int64_t mono_clock(void *arg)
{
	(void)arg;
	/* never 0: 0 means "none" in the tracker */
	return util_monotonic_us() + 1;
}

lag_tracker_t *lag_tracker_create(const config_t *cfg)
{
	lag_tracker_t *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	l->pending = calloc(PENDING_MAX, sizeof(pending_t));
	l->facts = calloc(FACTS_MAX, sizeof(fact_t));
	if (l->pending == NULL || l->facts == NULL) {
		free(l->pending);
		free(l->facts);
		free(l);
		return NULL;
	}
	pthread_mutex_init(&l->lock, NULL);
	l->cfg = cfg;
	l->clock = real_clock;
	l->mono = mono_clock;
	l->identity_ok = true;
	l->dr_reachable = true;
	l->source_since_us = real_clock(NULL);
	l->received_moved_mono = mono_clock(NULL);
	return l;
}

void lag_tracker_free(lag_tracker_t *l)
{
	if (l == NULL)
		return;
	pthread_mutex_destroy(&l->lock);
	free(l->pending);
	free(l->facts);
	free(l);
}

void lag_tracker_set_clocks(lag_tracker_t *l, int64_t (*wall_us)(void *arg),
                            int64_t (*mono_us)(void *arg), void *arg)
{
	pthread_mutex_lock(&l->lock);
	l->clock = wall_us ? wall_us : real_clock;
	l->mono = mono_us ? mono_us : mono_clock;
	l->clock_arg = arg;
	l->wall_base_known = false;
	l->source_since_us = l->clock(l->clock_arg);
	l->received_moved_mono = l->mono(l->clock_arg);
	pthread_mutex_unlock(&l->lock);
}

void lag_tracker_set_clock(lag_tracker_t *l, int64_t (*now_us)(void *arg), void *arg)
{
	lag_tracker_set_clocks(l, now_us, now_us, arg);
}

/* Apply reached applied_lsn: facts at or below it are proof points. */
static void facts_settle(lag_tracker_t *l)
{
	while (l->fact_count && l->facts[l->fact_head].lsn <= l->applied_lsn) {
		if (l->facts[l->fact_head].at_mono > l->proof_mono)
			l->proof_mono = l->facts[l->fact_head].at_mono;
		l->fact_head = (l->fact_head + 1) % FACTS_MAX;
		l->fact_count--;
	}
	if (l->proof_mono > l->known_mono)
		l->known_mono = l->proof_mono;
}

static void histogram_add(lag_histogram_t *h, double v)
{
	int i;

	for (i = 0; i < LAG_HISTOGRAM_BUCKETS && v > lag_histogram_bounds[i]; i++)
		;
	h->counts[i]++;
	h->sum += v;
	h->count++;
}

void lag_set_identity(lag_tracker_t *l, uint64_t system_identifier, const char *database,
                      const char *slot)
{
	pthread_mutex_lock(&l->lock);
	l->identity_known = true;
	l->system_identifier = system_identifier;
	snprintf(l->database, sizeof(l->database), "%s", database);
	snprintf(l->slot, sizeof(l->slot), "%s", slot);
	l->identity_ok = true;
	pthread_mutex_unlock(&l->lock);
}

void lag_set_identity_ok(lag_tracker_t *l, bool ok)
{
	pthread_mutex_lock(&l->lock);
	l->identity_ok = ok;
	pthread_mutex_unlock(&l->lock);
}

void lag_set_source_state(lag_tracker_t *l, lag_source_state_t state, uint64_t final_lsn)
{
	pthread_mutex_lock(&l->lock);
	/* a clean shutdown stays reported after the connection closes */
	if (!(state == LAG_SOURCE_DISCONNECTED && l->source_state == LAG_SOURCE_PRIMARY_SHUTDOWN) &&
	    state != l->source_state) {
		l->source_state = state;
		l->source_since_us = lag_now_us(l);
	}
	if (state == LAG_SOURCE_CONNECTED)
		l->source_connections++;
	if (state == LAG_SOURCE_PRIMARY_SHUTDOWN)
		l->primary_final_lsn = final_lsn;
	pthread_mutex_unlock(&l->lock);
}

void lag_on_heard_from_source(lag_tracker_t *l)
{
	(void)l;
}

void lag_on_primary_wal(lag_tracker_t *l, uint64_t wal_end, int64_t primary_send_time)
{
	int64_t wall, at;

	/* the walsender's word: the primary is alive and the walsender got this
	 * far; never a proof that nothing else was committed */
	pthread_mutex_lock(&l->lock);
	l->heard_from_primary = true;
	if (wal_end > l->primary_wal_lsn)
		l->primary_wal_lsn = wal_end;
	wall = lag_now_us(l);
	if (lag_primary_to_mono(l, primary_send_time, wall, lag_mono_us(l), "a walsender message",
	                        &at) &&
	    primary_send_time > l->primary_wal_time)
		l->primary_wal_time = primary_send_time;
	pthread_mutex_unlock(&l->lock);
}

void lag_on_slot_wal(lag_tracker_t *l, int64_t retained, int64_t safe, const char *wal_status,
                     int64_t warning_limit)
{
	pthread_mutex_lock(&l->lock);
	l->slot_known = true;
	l->slot_retained = retained;
	l->slot_safe = safe;
	l->slot_limit = warning_limit;
	snprintf(l->slot_status, sizeof(l->slot_status), "%s", wal_status ? wal_status : "");
	pthread_mutex_unlock(&l->lock);
}

void lag_set_last_drill(lag_tracker_t *l, const char *started_at, bool ok, double rto_ms,
                        const char *error)
{
	pthread_mutex_lock(&l->lock);
	l->drill_known = true;
	l->drill_ok = ok;
	l->drill_rto_ms = rto_ms;
	snprintf(l->drill_at, sizeof(l->drill_at), "%s", started_at);
	snprintf(l->drill_error, sizeof(l->drill_error), "%s", error ? error : "");
	pthread_mutex_unlock(&l->lock);
}

void lag_on_rpo_guard(lag_tracker_t *l, bool engaged, int64_t bound_ms, uint64_t engagements,
                      const char *reason)
{
	pthread_mutex_lock(&l->lock);
	l->guard_known = true;
	l->guard_engaged = engaged;
	l->guard_bound_ms = bound_ms;
	l->guard_engagements = engagements;
	snprintf(l->guard_reason, sizeof(l->guard_reason), "%s", reason ? reason : "");
	pthread_mutex_unlock(&l->lock);
}

void lag_on_primary_fact(lag_tracker_t *l, uint64_t position_lsn, uint64_t flush_lsn,
                         int64_t primary_time, const char *source_error)
{
	int64_t wall, mono, at;

	pthread_mutex_lock(&l->lock);
	l->heard_from_primary = true;
	wall = lag_now_us(l);
	mono = lag_mono_us(l);
	snprintf(l->source_error, sizeof(l->source_error), "%s", source_error ? source_error : "");
	if (flush_lsn > l->fact_flush_lsn)
		l->fact_flush_lsn = flush_lsn;
	if (position_lsn == 0) {
		/* a flush position only (relayed from a keepalive): no proof */
		pthread_mutex_unlock(&l->lock);
		return;
	}
	if (position_lsn > l->fact_lsn)
		l->fact_lsn = position_lsn;
	if (!lag_primary_to_mono(l, primary_time, wall, mono, "a primary fact from the source",
	                         &at)) {
		pthread_mutex_unlock(&l->lock);
		return;
	}
	if (mono - at > 10 * (l->cfg->max_clock_offset * 1000 + 1000000))
		lag_clock_fault(
		        l,
		        "a primary fact from the source is stamped %.3f s in the past of the "
		        "sink's clock: the primary's clock or this sink's is wrong",
		        (double)(mono - at) / 1e6);
	l->fact_learned_mono = mono;
	if (at > l->known_mono)
		l->known_mono = at;
	if (position_lsn <= l->applied_lsn) {
		if (at > l->proof_mono)
			l->proof_mono = at;
	} else if (l->fact_count == FACTS_MAX) {
		/* full: the newest entry moves forward (a later proof, never a
		 * false one) */
		fact_t *tail = &l->facts[(l->fact_head + l->fact_count - 1) % FACTS_MAX];
		if (position_lsn >= tail->lsn && at >= tail->at_mono) {
			tail->lsn = position_lsn;
			tail->at_mono = at;
		}
	} else {
		const fact_t *tail =
		        &l->facts[(l->fact_head + l->fact_count + FACTS_MAX - 1) % FACTS_MAX];
		/* in order of LSN and of time, or it adds nothing */
		if (l->fact_count == 0 || (position_lsn > tail->lsn && at > tail->at_mono)) {
			fact_t *f = &l->facts[(l->fact_head + l->fact_count) % FACTS_MAX];
			f->lsn = position_lsn;
			f->at_mono = at;
			l->fact_count++;
		}
	}
	facts_settle(l);
	pthread_mutex_unlock(&l->lock);
}

void lag_on_received_commit(lag_tracker_t *l, uint64_t commit_lsn, uint64_t end_lsn,
                            int64_t commit_time, uint64_t bytes, uint64_t rows, bool internal)
{
	pending_t *tail;
	int64_t at;

	(void)commit_lsn;
	pthread_mutex_lock(&l->lock);
	/* a commit is known to exist: knowledge, not proof */
	if (lag_primary_to_mono(l, commit_time, lag_now_us(l), lag_mono_us(l), "a commit", &at) &&
	    at > l->known_mono)
		l->known_mono = at;
	/* applied already, or received before a reconnect and listed */
	tail = l->count ? &l->pending[(l->head + l->count - 1) % PENDING_MAX] : NULL;
	if (end_lsn <= l->applied_lsn || (tail && end_lsn <= tail->end_lsn)) {
		pthread_mutex_unlock(&l->lock);
		return;
	}
	if (tail != NULL && l->count == PENDING_MAX) {
		tail->end_lsn = end_lsn;
		tail->transactions++;
		tail->internal += internal ? 1 : 0;
		tail->bytes += bytes;
		tail->rows += rows;
	} else {
		pending_t *p = &l->pending[(l->head + l->count) % PENDING_MAX];
		/* pending is allocated at create */
		// NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
		p->end_lsn = end_lsn;
		p->commit_time = commit_time;
		p->transactions = 1;
		p->internal = internal ? 1 : 0;
		p->bytes = bytes;
		p->rows = rows;
		l->count++;
	}
	pthread_mutex_unlock(&l->lock);
}

void lag_on_received(lag_tracker_t *l, uint64_t lsn)
{
	pthread_mutex_lock(&l->lock);
	if (lsn > l->received_lsn) {
		l->received_lsn = lsn;
		l->received_moved_mono = lag_mono_us(l);
	}
	pthread_mutex_unlock(&l->lock);
}

void lag_on_heartbeat(lag_tracker_t *l)
{
	pthread_mutex_lock(&l->lock);
	l->heartbeats++;
	pthread_mutex_unlock(&l->lock);
}

void lag_reset_received(lag_tracker_t *l, uint64_t resume_lsn)
{
	pthread_mutex_lock(&l->lock);
	/* the pending list stays: those commits still exist on the primary and
	 * are resent; what is at or below the resume point was applied */
	if (resume_lsn > l->applied_lsn)
		l->applied_lsn = resume_lsn;
	while (l->count && l->pending[l->head].end_lsn <= l->applied_lsn) {
		l->head = (l->head + 1) % PENDING_MAX;
		l->count--;
	}
	facts_settle(l);
	l->received_lsn = resume_lsn;
	pthread_mutex_unlock(&l->lock);
}

void lag_count_batch(lag_tracker_t *l, uint64_t wire_bytes, uint64_t raw_bytes)
{
	pthread_mutex_lock(&l->lock);
	l->batches++;
	l->batch_wire_bytes += wire_bytes;
	l->batch_raw_bytes += raw_bytes;
	pthread_mutex_unlock(&l->lock);
}

void lag_count_bad_batch(lag_tracker_t *l)
{
	pthread_mutex_lock(&l->lock);
	l->bad_batches++;
	pthread_mutex_unlock(&l->lock);
}

void lag_on_applied(lag_tracker_t *l, uint64_t end_lsn, int64_t last_commit_time,
                    uint64_t transactions, uint64_t rows, uint64_t bytes, double seconds)
{
	int64_t now, at;
	rate_slot_t *r;

	pthread_mutex_lock(&l->lock);
	now = lag_now_us(l);
	if (end_lsn > l->applied_lsn)
		l->applied_lsn = end_lsn;
	/* commit order is LSN order: with this commit applied, so is every
	 * commit before its time */
	if (last_commit_time != 0 &&
	    lag_primary_to_mono(l, last_commit_time, now, lag_mono_us(l), "an applied commit",
	                        &at) &&
	    at > l->proof_mono)
		l->proof_mono = at;
	facts_settle(l);
	l->last_applied_commit_time = last_commit_time;
	l->last_commit_lag_s =
	        ((double)now - (double)lag_primary_to_sink_us(l, last_commit_time)) / 1e6;
	if (l->last_commit_lag_s < 0)
		l->last_commit_lag_s = 0;
	histogram_add(&l->commit_lag, l->last_commit_lag_s);
	histogram_add(&l->apply_group, seconds);
	while (l->count && l->pending[l->head].end_lsn <= l->applied_lsn) {
		l->head = (l->head + 1) % PENDING_MAX;
		l->count--;
	}
	r = &l->rates[l->rate_next];
	r->at_us = now;
	r->transactions = transactions;
	r->rows = rows;
	r->bytes = bytes;
	l->rate_next = (l->rate_next + 1) % RATE_SLOTS;
	l->transactions_applied += transactions;
	l->rows_applied += rows;
	/* a source transaction went through: whatever stopped apply is gone
	 * (a commit that only records progress proves nothing) */
	if (transactions > 0 && end_lsn > l->apply_error_lsn) {
		l->apply_error = false;
		l->schema_drift = false;
	}
	l->dr_reachable = true;
	pthread_mutex_unlock(&l->lock);
}

void lag_restore_applied(lag_tracker_t *l, uint64_t lsn, int64_t commit_time)
{
	int64_t at;

	pthread_mutex_lock(&l->lock);
	if (lsn > l->applied_lsn)
		l->applied_lsn = lsn;
	if (commit_time && l->last_applied_commit_time == 0)
		l->last_applied_commit_time = commit_time;
	/* the DR side's own record: it holds everything committed before the
	 * last commit it applied */
	if (commit_time &&
	    lag_primary_to_mono(l, commit_time, lag_now_us(l), lag_mono_us(l),
	                        "the DR side's last commit", &at) &&
	    at > l->proof_mono)
		l->proof_mono = at;
	facts_settle(l);
	pthread_mutex_unlock(&l->lock);
}

void lag_set_apply_error(lag_tracker_t *l, const pgf_error_t *err, uint64_t lsn)
{
	pthread_mutex_lock(&l->lock);
	l->apply_error_lsn = lsn;
	l->apply_error = true;
	l->schema_drift = err->code == PGF_E_DRIFT;
	l->apply_errors++;
	snprintf(l->apply_error_message, sizeof(l->apply_error_message), "%s", err->message);
	snprintf(l->apply_error_where, sizeof(l->apply_error_where), "%s", err->where);
	pthread_mutex_unlock(&l->lock);
}

void lag_set_dr_reachable(lag_tracker_t *l, bool reachable, const pgf_error_t *err)
{
	pthread_mutex_lock(&l->lock);
	l->dr_reachable = reachable;
	if (!reachable && err)
		snprintf(l->apply_error_message, sizeof(l->apply_error_message), "%s",
		         err->message);
	pthread_mutex_unlock(&l->lock);
}

void lag_set_spooled(lag_tracker_t *l, uint64_t bytes)
{
	pthread_mutex_lock(&l->lock);
	l->spooled_bytes = bytes;
	pthread_mutex_unlock(&l->lock);
}

void lag_set_spool_fault(lag_tracker_t *l, const char *why, uint64_t failures)
{
	pthread_mutex_lock(&l->lock);
	snprintf(l->spool_error, sizeof(l->spool_error), "%s", why ? why : "");
	l->spool_failures = failures;
	pthread_mutex_unlock(&l->lock);
}

void lag_set_stream_blocked(lag_tracker_t *l, const char *why)
{
	pthread_mutex_lock(&l->lock);
	snprintf(l->stream_blocked, sizeof(l->stream_blocked), "%s", why ? why : "");
	pthread_mutex_unlock(&l->lock);
}

void lag_set_stream_refused(lag_tracker_t *l, const char *why)
{
	pthread_mutex_lock(&l->lock);
	snprintf(l->stream_refused, sizeof(l->stream_refused), "%s", why ? why : "");
	pthread_mutex_unlock(&l->lock);
}

void lag_set_fenced(lag_tracker_t *l, bool fenced)
{
	pthread_mutex_lock(&l->lock);
	l->fenced = fenced;
	pthread_mutex_unlock(&l->lock);
}

void lag_set_history(lag_tracker_t *l, double p50_ms, double p95_ms, double p99_ms, double max_ms)
{
	pthread_mutex_lock(&l->lock);
	l->history_known = true;
	l->history[0] = p50_ms;
	l->history[1] = p95_ms;
	l->history[2] = p99_ms;
	l->history[3] = max_ms;
	pthread_mutex_unlock(&l->lock);
}
