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
 */
#include "pgferry/lag.h"

#include "pgferry/decoder.h"
#include "pgferry/log.h"
#include "pgferry/util.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PENDING_MAX     262144
#define RATE_SLOTS      64       /* recent apply groups for the rate */
#define RATE_WINDOW_US  10000000 /* 10 s */
#define CLOCK_SAMPLES   32
#define FACTS_MAX       4096
#define STEP_US         1000000 /* a sink clock jump this large is a step */
#define FUTURE_SLACK_US 20000   /* on top of the offset's uncertainty */

const double lag_histogram_bounds[LAG_HISTOGRAM_BUCKETS] = {
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

typedef struct pending {
	uint64_t end_lsn;
	int64_t commit_time; /* primary clock, pgtime */
	uint64_t transactions, bytes, rows;
	uint64_t internal; /* of transactions, pgferry's own (heartbeats, sequences) */
} pending_t;

/* a primary fact waiting for apply to reach its LSN */
typedef struct fact {
	uint64_t lsn;
	int64_t at_mono; /* the primary moment, on the sink's monotonic clock */
} fact_t;

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
	int64_t (*clock)(void *arg); /* wall, Unix µs */
	int64_t (*mono)(void *arg);  /* monotonic µs */
	void *clock_arg;
	bool wall_base_known;
	int64_t wall_base; /* wall minus monotonic, to detect steps */

	bool identity_known, identity_ok;
	uint64_t system_identifier;
	char database[128], slot[128];

	bool heard_from_primary;
	uint64_t primary_wal_lsn;
	int64_t primary_wal_time; /* pgtime, primary clock */
	uint64_t received_lsn, applied_lsn;
	int64_t received_moved_mono; /* when received_lsn last moved */

	/* proof and knowledge, monotonic µs (0 = none) */
	int64_t proof_mono; /* DR provably held every commit before this */
	int64_t known_mono; /* the newest primary moment whose commits are known */
	int64_t fact_learned_mono;
	uint64_t fact_lsn, fact_flush_lsn;
	fact_t *facts;
	size_t fact_head, fact_count;
	char source_error[300];
	bool slot_known;
	int64_t slot_retained, slot_safe, slot_limit;
	char slot_status[16];
	bool drill_known, drill_ok;
	char drill_at[40], drill_error[300];
	double drill_rto_ms;
	bool guard_known, guard_engaged;
	int64_t guard_bound_ms;
	uint64_t guard_engagements;
	char guard_reason[256];

	/* clock faults */
	uint64_t clock_faults;
	char clock_fault[300];
	int64_t clock_fault_mono;
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
	char spool_error[300];
	uint64_t spool_failures;
	uint64_t apply_error_lsn; /* the transaction that failed (0: none known) */
	char apply_error_message[600], apply_error_where[300];
	char stream_refused[600]; /* why the sink refuses to apply ("": it does not) */
	char stream_blocked[600]; /* why the source cannot ship the next change */

	uint64_t batches, batch_wire_bytes, batch_raw_bytes, bad_batches, source_connections,
	        apply_errors, transactions_applied, rows_applied, heartbeats;
	lag_histogram_t commit_lag, apply_group;
	bool history_known;
	double history[4];
};

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

static int64_t mono_us(const lag_tracker_t *l)
{
	return l->mono(l->clock_arg);
}

static void clock_fault(lag_tracker_t *l, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Counted and shown always; logged once per kind of fault (the first
 * words of the message), not once per timestamp. */
static void clock_fault(lag_tracker_t *l, const char *fmt, ...)
{
	char msg[sizeof(l->clock_fault)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	l->clock_faults++;
	l->clock_fault_mono = mono_us(l);
	if (strncmp(msg, l->clock_fault, 24) != 0)
		log_warning("clock fault: %s", msg);
	snprintf(l->clock_fault, sizeof(l->clock_fault), "%s", msg);
}

/* The sink's wall clock (the test-only skew shifts it). A step of it is a
 * clock fault: the offset samples, taken with the old clock, are dropped;
 * figures are monotonic and do not move with it. */
static int64_t now_us(lag_tracker_t *l)
{
	int64_t wall = l->clock(l->clock_arg) + l->cfg->test_clock_skew * 1000;
	int64_t base = wall - mono_us(l);

	if (l->wall_base_known && llabs(base - l->wall_base) > STEP_US) {
		clock_fault(l, "the sink's clock stepped by %+.3f s; clock offset samples reset",
		            (double)(base - l->wall_base) / 1e6);
		l->clock_count = 0;
		l->clock_next = 0;
	}
	l->wall_base = base;
	l->wall_base_known = true;
	return wall;
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

/*
 * A primary time moved to the sink's monotonic clock, as of now (wall and
 * mono read together). A time later than now by more than the offset's
 * uncertainty cannot be true (whatever it stamps already happened): it is
 * a clock fault and the caller must not use it (false).
 */
static bool primary_to_mono(lag_tracker_t *l, int64_t pgtime, int64_t wall, int64_t mono,
                            const char *what, int64_t *at)
{
	const clock_sample_t *c = best_clock(l);
	int64_t slack = (c ? c->uncertainty_us : 0) + FUTURE_SLACK_US;
	int64_t age = wall - primary_to_sink_us(l, pgtime);

	if (age < -slack) {
		clock_fault(l,
		            "%s stamped %.3f s in the future of the sink's clock (after the "
		            "estimated offset): the primary's clock or this sink's is wrong; it "
		            "proves nothing",
		            what, (double)-age / 1e6);
		return false;
	}
	*at = mono - (age > 0 ? age : 0);
	return true;
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
	int64_t wall, at;

	/* the walsender's word: the primary is alive and the walsender got this
	 * far; never a proof that nothing else was committed */
	pthread_mutex_lock(&l->lock);
	l->heard_from_primary = true;
	if (wal_end > l->primary_wal_lsn)
		l->primary_wal_lsn = wal_end;
	wall = now_us(l);
	if (primary_to_mono(l, primary_send_time, wall, mono_us(l), "a walsender message", &at) &&
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
	wall = now_us(l);
	mono = mono_us(l);
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
	if (!primary_to_mono(l, primary_time, wall, mono, "a primary fact from the source", &at)) {
		pthread_mutex_unlock(&l->lock);
		return;
	}
	if (mono - at > 10 * (l->cfg->max_clock_offset * 1000 + 1000000))
		clock_fault(l,
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
	if (primary_to_mono(l, commit_time, now_us(l), mono_us(l), "a commit", &at) &&
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
		l->received_moved_mono = mono_us(l);
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
	int64_t now, at;
	rate_slot_t *r;

	pthread_mutex_lock(&l->lock);
	now = now_us(l);
	if (end_lsn > l->applied_lsn)
		l->applied_lsn = end_lsn;
	/* commit order is LSN order: with this commit applied, so is every
	 * commit before its time */
	if (last_commit_time != 0 &&
	    primary_to_mono(l, last_commit_time, now, mono_us(l), "an applied commit", &at) &&
	    at > l->proof_mono)
		l->proof_mono = at;
	facts_settle(l);
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
	int64_t at;

	pthread_mutex_lock(&l->lock);
	if (lsn > l->applied_lsn)
		l->applied_lsn = lsn;
	if (commit_time && l->last_applied_commit_time == 0)
		l->last_applied_commit_time = commit_time;
	/* the DR side's own record: it holds everything committed before the
	 * last commit it applied */
	if (commit_time &&
	    primary_to_mono(l, commit_time, now_us(l), mono_us(l), "the DR side's last commit",
	                    &at) &&
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

void lag_snapshot(lag_tracker_t *l, lag_snapshot_t *s)
{
	const clock_sample_t *c;
	uint64_t txns = 0, bytes = 0, rt = 0, rr = 0, rb = 0;
	int64_t oldest_rate, mono;
	size_t i;
	bool oldest_found = false;

	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&l->lock);
	s->now_us = now_us(l);
	mono = mono_us(l);
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
		/* pgferry's own transactions are no application backlog */
		txns += p->transactions - p->internal;
		bytes += p->bytes;
		if (!oldest_found && p->transactions > p->internal) {
			int64_t t = primary_to_sink_us(l, p->commit_time);
			s->oldest_commit_age_ms =
			        s->now_us > t ? ((double)s->now_us - (double)t) / 1000.0 : 0;
			oldest_found = true;
		}
	}
	s->known_loss_transactions = txns;
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
	/* bound = known loss window + unknown window = now - proof */
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
	s->backlog_transactions = txns;
	s->backlog_bytes = bytes;
	s->caught_up = l->heard_from_primary && txns == 0;
	s->clock_faults = l->clock_faults;
	snprintf(s->clock_fault, sizeof(s->clock_fault), "%s", l->clock_fault);
	s->clock_fault_age_ms =
	        l->clock_fault_mono ? (double)(mono - l->clock_fault_mono) / 1000.0 : -1;

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
	pthread_mutex_unlock(&l->lock);
}

const char *lag_verdict_name(verdict_t v)
{
	switch (v) {
	case VERDICT_SAFE:
		return "safe";
	case VERDICT_UNSAFE:
		return "unsafe";
	case VERDICT_PROMOTED:
		return "promoted";
	case VERDICT_UNKNOWN:
		break;
	}
	return "unknown";
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

/* Why the bound is what it is: the known loss window and the unknown
 * window, each named with its cause. */
static void rpo_reasons(const lag_snapshot_t *s, int64_t max_rpo_ms, lag_verdict_t *v)
{
	char a[LSN_TEXT_LEN], b[LSN_TEXT_LEN];
	const char *err = s->source_error[0] ? s->source_error : NULL;

	if (s->backlog_transactions > 0 && s->oldest_commit_age_ms > 0)
		reason(v,
		       "RPO bound %.1f s is over the %.1f s limit: apply is behind, the oldest "
		       "unapplied commit is %.1f s old (%llu received transactions wait)",
		       s->rpo_bound_ms / 1000, (double)max_rpo_ms / 1000,
		       s->oldest_commit_age_ms / 1000, (unsigned long long)s->backlog_transactions);
	else if (s->known_loss_window_ms > 0 && s->primary_position_lsn > s->received_lsn)
		reason(v,
		       "RPO bound %.1f s is over the %.1f s limit: the primary is alive at %s but "
		       "the stream has delivered nothing past %s for %.1f s%s%s",
		       s->rpo_bound_ms / 1000, (double)max_rpo_ms / 1000,
		       lsn_format(s->primary_position_lsn, a), lsn_format(s->received_lsn, b),
		       s->stream_idle_ms / 1000, err ? ": " : "", err ? err : "");
	else if (s->known_loss_window_ms > 0)
		reason(v,
		       "RPO bound %.1f s is over the %.1f s limit: the DR side is known to lack "
		       "%.1f s of the primary's commits (applied up to %s)%s%s",
		       s->rpo_bound_ms / 1000, (double)max_rpo_ms / 1000,
		       s->known_loss_window_ms / 1000, lsn_format(s->applied_lsn, a),
		       err ? ": " : "", err ? err : "");
	if (s->unknown_window_ms > (double)max_rpo_ms / 2 || v->nreasons == 0)
		reason(v,
		       "RPO bound %.1f s is over the %.1f s limit: nothing new was learned about "
		       "the primary's commits for %.1f s (source %s)%s%s, so commits in that time "
		       "may be missing",
		       s->rpo_bound_ms / 1000, (double)max_rpo_ms / 1000,
		       s->unknown_window_ms / 1000, lag_source_state_name(s->source_state),
		       err ? ": " : "", err ? err : "");
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
		/* nothing to decide any more: a distinct answer, not "unsafe" */
		reason(v, "this DR database was promoted (it is fenced and applies nothing more); "
		          "it is the primary now");
		v->verdict = VERDICT_PROMOTED;
		return;
	}
	if (!s->heard_from_primary) {
		reason(v, "the sink has not heard from any primary since it started, so it cannot "
		          "tell what a promotion would lose");
		v->verdict = VERDICT_UNKNOWN;
	} else if (!s->rpo_known) {
		reason(v, "nothing applied yet proves what the DR database holds (no commit and "
		          "no heartbeat of the primary has been applied since the sink started)");
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
	/* nothing after that change can arrive: whatever the figures say now,
	 * they only grow */
	if (s->stream_blocked[0]) {
		reason(v, "the source cannot ship the next change: %s", s->stream_blocked);
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
		rpo_reasons(s, max_rpo_ms, v);
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
	if (s->clock_faults > 0 && s->clock_fault_age_ms >= 0 && s->clock_fault_age_ms < 60000)
		reason(v, "note: clock fault %.0f s ago: %s", s->clock_fault_age_ms / 1000,
		       s->clock_fault);
}
