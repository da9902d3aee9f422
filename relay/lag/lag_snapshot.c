/*
 * lag_snapshot.c — a copy of every lag figure at one moment, taken under the
 * tracker's lock (lag.h: lag_snapshot): the backlog, the RPO bound from the
 * proof point, the slot, the apply rate and its drain estimate, the clock
 * offset, the counters. The verdict and the renderings read only the
 * snapshot.
 */
#include "lag_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* where the primary is and what the DR side has */
static void snapshot_positions(const lag_tracker_t *l, lag_snapshot_t *s, int64_t mono)
{
	s->identity_known = l->identity_known;
	s->system_identifier = l->system_identifier;
	snprintf(s->database, sizeof(s->database), "%s", l->database);
	snprintf(s->slot, sizeof(s->slot), "%s", l->slot);
	s->identity_ok = l->identity_ok;
	s->heard_from_primary = l->heard_from_primary;
	s->primary_wal_lsn = l->primary_wal_lsn;
	s->primary_wal_time_us =
	        l->primary_wal_time ? lag_primary_to_sink_us(l, l->primary_wal_time) : 0;
	s->received_lsn = l->received_lsn;
	s->applied_lsn = l->applied_lsn;
	s->last_applied_commit_time_us =
	        l->last_applied_commit_time ? lag_primary_to_sink_us(l, l->last_applied_commit_time)
	                                    : 0;
	s->last_commit_lag_ms = l->last_commit_lag_s * 1000.0;
	s->primary_position_lsn =
	        l->fact_lsn > l->primary_wal_lsn ? l->fact_lsn : l->primary_wal_lsn;
	s->primary_flush_lsn = l->fact_flush_lsn;
	s->known_loss_bytes = s->primary_position_lsn > l->applied_lsn
	                              ? s->primary_position_lsn - l->applied_lsn
	                              : 0;
	s->fact_known = l->fact_learned_mono != 0;
	s->fact_age_ms = s->fact_known ? (double)(mono - l->fact_learned_mono) / 1000.0 : -1;
	s->stream_idle_ms = (double)(mono - l->received_moved_mono) / 1000.0;
	snprintf(s->source_error, sizeof(s->source_error), "%s", l->source_error);
}

/* the commits received and not applied yet */
static void snapshot_backlog(const lag_tracker_t *l, lag_snapshot_t *s)
{
	uint64_t txns = 0, bytes = 0;
	bool oldest_found = false;
	size_t i;

	for (i = 0; i < l->count; i++) {
		const pending_t *p = &l->pending[(l->head + i) % PENDING_MAX];
		/* pgferry's own transactions are no application backlog */
		txns += p->transactions - p->internal;
		bytes += p->bytes;
		if (!oldest_found && p->transactions > p->internal) {
			int64_t t = lag_primary_to_sink_us(l, p->commit_time);
			s->oldest_commit_age_ms =
			        s->now_us > t ? ((double)s->now_us - (double)t) / 1000.0 : 0;
			oldest_found = true;
		}
	}
	s->known_loss_transactions = txns;
	s->backlog_transactions = txns;
	s->backlog_bytes = bytes;
	s->caught_up = l->heard_from_primary && txns == 0;
}

/* the slot's WAL on the primary, the last drill, the RPO guard */
static void snapshot_source_side(const lag_tracker_t *l, lag_snapshot_t *s)
{
	s->slot_known = l->slot_known;
	s->slot_retained_bytes = l->slot_retained;
	s->slot_safe_wal_size = l->slot_safe;
	snprintf(s->slot_wal_status, sizeof(s->slot_wal_status), "%s", l->slot_status);
	s->slot_wal_warning[0] = '\0';
	s->last_drill_known = l->drill_known;
	s->last_drill_ok = l->drill_ok;
	s->last_drill_rto_ms = l->drill_rto_ms;
	snprintf(s->last_drill_at, sizeof(s->last_drill_at), "%s", l->drill_at);
	snprintf(s->last_drill_error, sizeof(s->last_drill_error), "%s", l->drill_error);
	s->rpo_guard_known = l->guard_known;
	s->rpo_guard_engaged = l->guard_engaged;
	s->rpo_guard_bound_ms = l->guard_bound_ms;
	s->rpo_guard_engagements = l->guard_engagements;
	snprintf(s->rpo_guard_reason, sizeof(s->rpo_guard_reason), "%s", l->guard_reason);
	if (l->slot_known &&
	    (strcmp(l->slot_status, "lost") == 0 || strcmp(l->slot_status, "unreserved") == 0))
		snprintf(s->slot_wal_warning, sizeof(s->slot_wal_warning),
		         "the slot's wal_status is %s: the primary removes or may remove WAL it "
		         "still needs (max_slot_wal_keep_size); once lost, only a new clone "
		         "brings the DR copy back",
		         l->slot_status);
	else if (l->slot_known && l->slot_limit > 0 && l->slot_retained > l->slot_limit)
		snprintf(s->slot_wal_warning, sizeof(s->slot_wal_warning),
		         "the slot retains %" PRId64 " bytes of WAL on the primary, over "
		         "slot_wal_warning (%" PRId64 "): is the sink applying? a forgotten slot "
		         "is dropped with pg_drop_replication_slot",
		         l->slot_retained, l->slot_limit);
}

/* bound = known loss window + unknown window = now - proof */
static void snapshot_rpo(const lag_tracker_t *l, lag_snapshot_t *s, int64_t mono)
{
	s->rpo_known = l->proof_mono != 0;
	if (s->rpo_known) {
		int64_t known = l->known_mono > l->proof_mono ? l->known_mono : l->proof_mono;
		s->known_loss_window_ms = (double)(known - l->proof_mono) / 1000.0;
		s->unknown_window_ms = mono > known ? (double)(mono - known) / 1000.0 : 0;
		s->rpo_bound_ms = s->known_loss_window_ms + s->unknown_window_ms;
		s->proof_time_us = s->now_us - (mono - l->proof_mono);
	} else {
		s->known_loss_window_ms = -1;
		s->unknown_window_ms = l->known_mono && mono > l->known_mono
		                               ? (double)(mono - l->known_mono) / 1000.0
		                               : -1;
		s->rpo_bound_ms = -1;
	}
}

/* the apply rate over the last RATE_WINDOW_US and the backlog's drain time */
static void snapshot_rates(const lag_tracker_t *l, lag_snapshot_t *s)
{
	uint64_t rt = 0, rr = 0, rb = 0, txns = s->backlog_transactions;
	int64_t oldest_rate = s->now_us;
	size_t i;

	for (i = 0; i < RATE_SLOTS; i++) {
		const rate_slot_t *r = &l->rates[i];
		if (r->at_us == 0 || s->now_us - r->at_us > RATE_WINDOW_US)
			continue;
		rt += r->transactions;
		rr += r->rows;
		rb += r->bytes;
		if (r->at_us < oldest_rate)
			oldest_rate = r->at_us;
	}
	{
		/* over the window, or since the oldest group it still holds */
		double span = (double)(s->now_us - oldest_rate) / 1e6;
		if (span < 1.0)
			span = 1.0;
		s->transactions_per_s = (double)rt / span;
		s->rows_per_s = (double)rr / span;
		s->bytes_per_s = (double)rb / span;
	}
	if (txns == 0)
		s->drain_estimate_ms = 0;
	else if (s->transactions_per_s > 0)
		s->drain_estimate_ms = (double)txns / s->transactions_per_s * 1000.0;
	else
		s->drain_estimate_ms = -1;
}

/* the clocks, the states of source and apply, the counters, the limits */
static void snapshot_state(const lag_tracker_t *l, lag_snapshot_t *s, int64_t mono)
{
	const clock_sample_t *c = lag_best_clock(l);

	s->clock_faults = l->clock_faults;
	snprintf(s->clock_fault, sizeof(s->clock_fault), "%s", l->clock_fault);
	s->clock_fault_age_ms =
	        l->clock_fault_mono ? (double)(mono - l->clock_fault_mono) / 1000.0 : -1;
	s->clock_known = c != NULL;
	s->clock_offset_ms = c ? (double)c->offset_us / 1000.0 : 0;
	s->clock_uncertainty_ms = c ? (double)c->uncertainty_us / 1000.0 : 0;
	s->source_state = l->source_state;
	s->source_since_us = l->source_since_us;
	s->primary_final_lsn = l->primary_final_lsn;
	s->dr_reachable = l->dr_reachable;
	s->apply_error = l->apply_error;
	s->schema_drift = l->schema_drift;
	snprintf(s->apply_error_message, sizeof(s->apply_error_message), "%s",
	         l->apply_error_message);
	snprintf(s->apply_error_where, sizeof(s->apply_error_where), "%s", l->apply_error_where);
	s->fenced = l->fenced;
	snprintf(s->stream_refused, sizeof(s->stream_refused), "%s", l->stream_refused);
	snprintf(s->stream_blocked, sizeof(s->stream_blocked), "%s", l->stream_blocked);
	s->spooled_bytes = l->spooled_bytes;
	snprintf(s->spool_error, sizeof(s->spool_error), "%s", l->spool_error);
	s->spool_failures = l->spool_failures;
	s->batches = l->batches;
	s->batch_wire_bytes = l->batch_wire_bytes;
	s->batch_raw_bytes = l->batch_raw_bytes;
	s->bad_batches = l->bad_batches;
	s->source_connections = l->source_connections;
	s->apply_errors = l->apply_errors;
	s->transactions_applied = l->transactions_applied;
	s->rows_applied = l->rows_applied;
	s->heartbeats = l->heartbeats;
	s->commit_lag = l->commit_lag;
	s->apply_group = l->apply_group;
	s->history_known = l->history_known;
	s->history_p50_ms = l->history[0];
	s->history_p95_ms = l->history[1];
	s->history_p99_ms = l->history[2];
	s->history_max_ms = l->history[3];
	s->max_rpo_ms = l->cfg->max_rpo;
	s->max_apply_backlog = l->cfg->max_apply_backlog;
	s->max_clock_offset_ms = l->cfg->max_clock_offset;
}

void lag_snapshot(lag_tracker_t *l, lag_snapshot_t *s)
{
	int64_t mono;

	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&l->lock);
	s->now_us = lag_now_us(l);
	mono = lag_mono_us(l);
	snapshot_positions(l, s, mono);
	snapshot_backlog(l, s);
	snapshot_source_side(l, s);
	snapshot_rpo(l, s, mono);
	snapshot_rates(l, s);
	snapshot_state(l, s, mono);
	pthread_mutex_unlock(&l->lock);
}
