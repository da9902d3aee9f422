/*
 * lag_internal.h — the lag tracker's state, shared by its files only
 * (private to relay/lag/; the public face is include/pgferry/lag.h):
 * lag.c (create, the events that feed it), lag_clock.c (the sink's clocks,
 * the offset to the primary's, clock faults), lag_snapshot.c (the figures
 * read under the lock). lag_verdict.c works on a snapshot alone. Every
 * field is guarded by lock.
 */
#ifndef PGFERRY_LAG_INTERNAL_H
#define PGFERRY_LAG_INTERNAL_H

#include "pgferry/lag.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define PENDING_MAX     262144
#define RATE_SLOTS      64       /* recent apply groups for the rate */
#define RATE_WINDOW_US  10000000 /* 10 s */
#define CLOCK_SAMPLES   32
#define FACTS_MAX       4096
#define STEP_US         1000000 /* a sink clock jump this large is a step */
#define FUTURE_SLACK_US 20000   /* on top of the offset's uncertainty */

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

/* lag_clock.c; the caller holds the lock */
int64_t lag_mono_us(const lag_tracker_t *l);
int64_t lag_now_us(lag_tracker_t *l);
void lag_clock_fault(lag_tracker_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const clock_sample_t *lag_best_clock(const lag_tracker_t *l);
int64_t lag_primary_to_sink_us(const lag_tracker_t *l, int64_t pgtime);
bool lag_primary_to_mono(lag_tracker_t *l, int64_t pgtime, int64_t wall, int64_t mono,
                         const char *what, int64_t *at);

#endif
