/*
 * lag.c — the lag tracker (see lag.h): what the primary reported, what was
 * received and applied, the clock offset, and the promotion verdict.
 *
 * Received but unapplied commits wait in a FIFO (oldest first), so known
 * loss is counted exactly and the age of the oldest one is known. The FIFO
 * is bounded: past PENDING_MAX entries, new commits merge into the newest
 * entry (counts stay exact, only the per-commit ages of that tail blur).
 */
#include "pgferry/lag.h"

#include "pgferry/decoder.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define PENDING_MAX    262144
#define RATE_SLOTS     64       /* recent apply groups for the rate */
#define RATE_WINDOW_US 10000000 /* 10 s */
#define CLOCK_SAMPLES  32

const double lag_histogram_bounds[LAG_HISTOGRAM_BUCKETS] = {
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

typedef struct pending {
	uint64_t end_lsn;
	int64_t commit_time; /* primary clock, pgtime */
	uint64_t transactions, bytes, rows;
} pending_t;

typedef struct rate_slot {
	int64_t at_us;
	uint64_t transactions, rows, bytes;
} rate_slot_t;

typedef struct clock_sample {
	int64_t offset_us, uncertainty_us, at_us;
} clock_sample_t;

struct lag_tracker {
	pthread_mutex_t lock;
	const config_t *cfg;
	int64_t (*clock)(void *arg);
	void *clock_arg;

	bool identity_known, identity_ok;
	uint64_t system_identifier;
	char database[128], slot[128];

	bool heard_from_primary;
	uint64_t primary_wal_lsn;
	int64_t primary_wal_time; /* pgtime, primary clock */
	int64_t last_primary_us;  /* the newest primary send time, on the sink clock */
	uint64_t received_lsn, applied_lsn;
	int64_t last_applied_commit_time; /* pgtime, primary clock; 0 = none */
	double last_commit_lag_s;

	pending_t *pending;
	size_t head, count; /* ring */

	rate_slot_t rates[RATE_SLOTS];
	int rate_next;

	clock_sample_t clocks[CLOCK_SAMPLES];
	int clock_next, clock_count;

	lag_source_state_t source_state;
	int64_t source_since_us;
	uint64_t primary_final_lsn;

	bool dr_reachable, apply_error, schema_drift, fenced;
	uint64_t spooled_bytes;
	uint64_t apply_error_lsn; /* the transaction that failed (0: none known) */
	char apply_error_message[600], apply_error_where[300];
	char stream_refused[600]; /* why the sink refuses to apply ("": it does not) */

	uint64_t batches, batch_wire_bytes, batch_raw_bytes, bad_batches, source_connections,
	        apply_errors, transactions_applied, rows_applied, heartbeats;
	lag_histogram_t commit_lag, apply_group;
	bool history_known;
	double history[4];
};

static int64_t real_clock(void *arg)
{
	struct timeval tv;

	(void)arg;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

lag_tracker_t *lag_tracker_create(const config_t *cfg)
{
	lag_tracker_t *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	l->pending = calloc(PENDING_MAX, sizeof(pending_t));
	if (l->pending == NULL) {
		free(l);
		return NULL;
	}
	pthread_mutex_init(&l->lock, NULL);
	l->cfg = cfg;
	l->clock = real_clock;
	l->identity_ok = true;
	l->dr_reachable = true;
	l->source_since_us = real_clock(NULL);
	return l;
}

void lag_tracker_free(lag_tracker_t *l)
{
	if (l == NULL)
		return;
	pthread_mutex_destroy(&l->lock);
	free(l->pending);
	free(l);
}

void lag_tracker_set_clock(lag_tracker_t *l, int64_t (*now_us)(void *arg), void *arg)
{
	pthread_mutex_lock(&l->lock);
	l->clock = now_us ? now_us : real_clock;
	l->clock_arg = arg;
	l->source_since_us = l->clock(l->clock_arg);
	pthread_mutex_unlock(&l->lock);
}

/* The test-only skew shifts this side's idea of now. */
static int64_t now_us(const lag_tracker_t *l)
{
	return l->clock(l->clock_arg) + l->cfg->test_clock_skew * 1000;
}

/* The best current offset estimate: the sample with the smallest
 * uncertainty among the recent ones (queueing only ever adds delay). */
static const clock_sample_t *best_clock(const lag_tracker_t *l)
{
	const clock_sample_t *best = NULL;
	int i;

	for (i = 0; i < l->clock_count; i++)
		if (best == NULL || l->clocks[i].uncertainty_us < best->uncertainty_us)
			best = &l->clocks[i];
	return best;
}

static int64_t offset_us(const lag_tracker_t *l)
{
	const clock_sample_t *c = best_clock(l);
	return c ? c->offset_us : 0;
}

/* a primary pgtime on the sink's clock, Unix µs */
static int64_t primary_to_sink_us(const lag_tracker_t *l, int64_t pgtime)
{
	int64_t u = pgtime_to_unix_us(pgtime), o = offset_us(l);

	/* a nonsense timestamp from outside must not overflow */
	if ((o < 0 && u > INT64_MAX + o) || (o > 0 && u < INT64_MIN + o))
		return u;
	return u - o;
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
		l->source_since_us = now_us(l);
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
	int64_t t;

	pthread_mutex_lock(&l->lock);
	l->heard_from_primary = true;
	if (wal_end > l->primary_wal_lsn)
		l->primary_wal_lsn = wal_end;
	if (primary_send_time > l->primary_wal_time)
		l->primary_wal_time = primary_send_time;
	t = primary_to_sink_us(l, primary_send_time);
	if (t > l->last_primary_us)
		l->last_primary_us = t;
	pthread_mutex_unlock(&l->lock);
}

void lag_on_received_commit(lag_tracker_t *l, uint64_t commit_lsn, uint64_t end_lsn,
                            int64_t commit_time, uint64_t bytes, uint64_t rows)
{
	pending_t *tail;

	(void)commit_lsn;
	pthread_mutex_lock(&l->lock);
	/* applied already, or received before a reconnect and listed */
	tail = l->count ? &l->pending[(l->head + l->count - 1) % PENDING_MAX] : NULL;
	if (end_lsn <= l->applied_lsn || (tail && end_lsn <= tail->end_lsn)) {
		pthread_mutex_unlock(&l->lock);
		return;
	}
	if (tail != NULL && l->count == PENDING_MAX) {
		tail->end_lsn = end_lsn;
		tail->transactions++;
		tail->bytes += bytes;
		tail->rows += rows;
	} else {
		pending_t *p = &l->pending[(l->head + l->count) % PENDING_MAX];
		/* pending is allocated at create */
		// NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
		p->end_lsn = end_lsn;
		p->commit_time = commit_time;
		p->transactions = 1;
		p->bytes = bytes;
		p->rows = rows;
		l->count++;
	}
	pthread_mutex_unlock(&l->lock);
}

void lag_on_received(lag_tracker_t *l, uint64_t lsn)
{
	pthread_mutex_lock(&l->lock);
	if (lsn > l->received_lsn)
		l->received_lsn = lsn;
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
	l->received_lsn = resume_lsn;
	pthread_mutex_unlock(&l->lock);
}

void lag_on_clock_sample(lag_tracker_t *l, int64_t t1, int64_t t2, int64_t t3, int64_t t4)
{
	/* t1, t4 on the sink's clock; t2, t3 on the source's */
	int64_t round_trip;
	clock_sample_t *c;

	/* samples are the peer's numbers: ignore any that cannot be sane */
	if (llabs(t1) > INT64_MAX / 4 || llabs(t2) > INT64_MAX / 4 || llabs(t3) > INT64_MAX / 4 ||
	    llabs(t4) > INT64_MAX / 4 || t4 < t1 || t3 < t2 || t4 - t1 > 60000000)
		return;
	round_trip = (t4 - t1) - (t3 - t2);
	if (round_trip < 0)
		round_trip = 0;
	pthread_mutex_lock(&l->lock);
	c = &l->clocks[l->clock_next];
	c->offset_us = ((t2 - t1) + (t3 - t4)) / 2;
	c->uncertainty_us = round_trip / 2;
	c->at_us = now_us(l);
	l->clock_next = (l->clock_next + 1) % CLOCK_SAMPLES;
	if (l->clock_count < CLOCK_SAMPLES)
		l->clock_count++;
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
	int64_t now;
	rate_slot_t *r;

	pthread_mutex_lock(&l->lock);
	now = now_us(l);
	if (end_lsn > l->applied_lsn)
		l->applied_lsn = end_lsn;
	l->last_applied_commit_time = last_commit_time;
	l->last_commit_lag_s =
	        ((double)now - (double)primary_to_sink_us(l, last_commit_time)) / 1e6;
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
	pthread_mutex_lock(&l->lock);
	if (lsn > l->applied_lsn)
		l->applied_lsn = lsn;
	if (commit_time && l->last_applied_commit_time == 0)
		l->last_applied_commit_time = commit_time;
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

void lag_snapshot(lag_tracker_t *l, lag_snapshot_t *s)
{
	const clock_sample_t *c;
	uint64_t txns = 0, bytes = 0, rt = 0, rr = 0, rb = 0;
	int64_t oldest_rate;
	size_t i;

	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&l->lock);
	s->now_us = now_us(l);
	s->identity_known = l->identity_known;
	s->system_identifier = l->system_identifier;
	snprintf(s->database, sizeof(s->database), "%s", l->database);
	snprintf(s->slot, sizeof(s->slot), "%s", l->slot);
	s->identity_ok = l->identity_ok;
	s->heard_from_primary = l->heard_from_primary;
	s->primary_wal_lsn = l->primary_wal_lsn;
	s->primary_wal_time_us =
	        l->primary_wal_time ? primary_to_sink_us(l, l->primary_wal_time) : 0;
	s->received_lsn = l->received_lsn;
	s->applied_lsn = l->applied_lsn;
	s->last_applied_commit_time_us =
	        l->last_applied_commit_time ? primary_to_sink_us(l, l->last_applied_commit_time)
	                                    : 0;
	s->last_commit_lag_ms = l->last_commit_lag_s * 1000.0;

	for (i = 0; i < l->count; i++) {
		const pending_t *p = &l->pending[(l->head + i) % PENDING_MAX];
		txns += p->transactions;
		bytes += p->bytes;
	}
	s->known_loss_transactions = txns;
	s->known_loss_bytes =
	        l->primary_wal_lsn > l->applied_lsn ? l->primary_wal_lsn - l->applied_lsn : 0;
	if (l->count) {
		int64_t t = primary_to_sink_us(l, l->pending[l->head].commit_time);
		s->oldest_commit_age_ms =
		        s->now_us > t ? ((double)s->now_us - (double)t) / 1000.0 : 0;
	}
	if (l->heard_from_primary)
		s->unknown_window_ms =
		        s->now_us > l->last_primary_us
		                ? ((double)s->now_us - (double)l->last_primary_us) / 1000.0
		                : 0;
	s->rpo_bound_ms = s->oldest_commit_age_ms + s->unknown_window_ms;
	s->backlog_transactions = txns;
	s->backlog_bytes = bytes;
	s->caught_up = l->heard_from_primary && txns == 0;

	oldest_rate = s->now_us;
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

	c = best_clock(l);
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
	s->spooled_bytes = l->spooled_bytes;
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
	pthread_mutex_unlock(&l->lock);
}

const char *lag_verdict_name(verdict_t v)
{
	return v == VERDICT_SAFE ? "safe" : v == VERDICT_UNSAFE ? "unsafe" : "unknown";
}

const char *lag_source_state_name(lag_source_state_t s)
{
	switch (s) {
	case LAG_SOURCE_NEVER:
		return "never_connected";
	case LAG_SOURCE_CONNECTED:
		return "connected";
	case LAG_SOURCE_DISCONNECTED:
		return "disconnected";
	case LAG_SOURCE_PRIMARY_SHUTDOWN:
		return "primary_shutdown";
	}
	return "?";
}

static void reason(lag_verdict_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reason(lag_verdict_t *v, const char *fmt, ...)
{
	va_list ap;

	if (v->nreasons >= VERDICT_MAX_REASONS)
		return;
	va_start(ap, fmt);
	vsnprintf(v->reasons[v->nreasons++], sizeof(v->reasons[0]), fmt, ap);
	va_end(ap);
}

void lag_verdict(const lag_snapshot_t *s, int64_t max_rpo_ms, int64_t max_backlog, lag_verdict_t *v)
{
	char lsn[LSN_TEXT_LEN];

	if (max_rpo_ms < 0)
		max_rpo_ms = s->max_rpo_ms;
	if (max_backlog < 0)
		max_backlog = s->max_apply_backlog;
	memset(v, 0, sizeof(*v));
	v->verdict = VERDICT_SAFE;
	if (s->fenced) {
		reason(v, "this DR database is fenced: it was promoted and applies nothing more");
		v->verdict = VERDICT_UNSAFE;
	}
	if (!s->heard_from_primary) {
		reason(v, "the sink has not heard from any primary since it started, so it cannot "
		          "tell what a promotion would lose");
		v->verdict = VERDICT_UNKNOWN;
	}
	if (!s->dr_reachable) {
		reason(v, "the DR database is unreachable from the sink: %s",
		       s->apply_error_message[0] ? s->apply_error_message : "no connection");
		v->verdict = VERDICT_UNKNOWN;
	}
	/* known, whatever else is not: this copy takes no stream */
	if (s->stream_refused[0]) {
		reason(v, "the sink refuses to apply: %s", s->stream_refused);
		v->verdict = VERDICT_UNSAFE;
	}
	if (v->verdict == VERDICT_UNKNOWN)
		return;
	if (s->source_state == LAG_SOURCE_PRIMARY_SHUTDOWN && s->known_loss_transactions == 0)
		reason(v,
		       "note: the primary shut down cleanly at %s and everything it sent is "
		       "applied",
		       lsn_format(s->primary_final_lsn, lsn));
	if (s->rpo_bound_ms > (double)max_rpo_ms) {
		if (s->oldest_commit_age_ms > 0 && s->unknown_window_ms > 0)
			reason(v,
			       "RPO bound %.1f s is over the %.1f s limit: the oldest unapplied "
			       "commit is %.1f s old and nothing was heard from the primary for "
			       "%.1f s",
			       s->rpo_bound_ms / 1000, (double)max_rpo_ms / 1000,
			       s->oldest_commit_age_ms / 1000, s->unknown_window_ms / 1000);
		else if (s->oldest_commit_age_ms > 0)
			reason(v,
			       "RPO bound %.1f s is over the %.1f s limit: the oldest unapplied "
			       "commit is %.1f s old",
			       s->rpo_bound_ms / 1000, (double)max_rpo_ms / 1000,
			       s->oldest_commit_age_ms / 1000);
		else
			reason(v,
			       "RPO bound %.1f s is over the %.1f s limit: nothing was heard from "
			       "the primary for %.1f s (source %s), so commits in that time may "
			       "be missing",
			       s->rpo_bound_ms / 1000, (double)max_rpo_ms / 1000,
			       s->unknown_window_ms / 1000, lag_source_state_name(s->source_state));
		v->verdict = VERDICT_UNSAFE;
	}
	if ((int64_t)s->backlog_transactions > max_backlog) {
		reason(v,
		       "%llu received transactions (%llu bytes) are not applied yet (limit %lld)%s",
		       (unsigned long long)s->backlog_transactions,
		       (unsigned long long)s->backlog_bytes, (long long)max_backlog,
		       s->drain_estimate_ms >= 0 ? "; wait for apply to drain them" : "");
		v->verdict = VERDICT_UNSAFE;
	}
	if (s->apply_error && s->schema_drift) {
		reason(v,
		       "apply is stopped by schema drift: %s%s%s; the DR schema must be fixed "
		       "first",
		       s->apply_error_message, s->apply_error_where[0] ? " at " : "",
		       s->apply_error_where);
		v->verdict = VERDICT_UNSAFE;
	} else if (s->apply_error) {
		reason(v, "apply is stopped by an error: %s%s%s", s->apply_error_message,
		       s->apply_error_where[0] ? " at " : "", s->apply_error_where);
		v->verdict = VERDICT_UNSAFE;
	}
	if (!s->identity_ok) {
		reason(v, "the stream offered comes from another primary than the one this DR "
		          "database follows");
		v->verdict = VERDICT_UNSAFE;
	}
	if (s->clock_known && fabs(s->clock_offset_ms) > (double)s->max_clock_offset_ms) {
		reason(v,
		       "the clocks of the primary and the sink differ by %.0f ms (more than %lld "
		       "ms): time-based figures are unreliable",
		       s->clock_offset_ms, (long long)s->max_clock_offset_ms);
		v->verdict = VERDICT_UNSAFE;
	}
}
