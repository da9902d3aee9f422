/*
 * lag.h — the sink's lag and RPO figures (docs/ARCHITECTURE.md, "Lag and RPO").
 *
 * The network thread records what the primary said (WAL end and its clock
 * on every walsender message, each received commit, the source's primary
 * facts, clock samples), the apply thread records DR commits, the HTTP
 * thread takes snapshots. All calls are thread-safe (one mutex; every call
 * is short).
 *
 * RPO bound = known loss window + unknown window = time since the proof
 * point, the newest moment before which the DR side provably held every
 * primary commit (README, "The RPO bound"). Elapsed times run on the
 * monotonic clock.
 *
 * Times: primary times arrive as pgtime on the primary's clock and are
 * moved to the sink's clock with the estimated offset. Snapshot figures
 * are in milliseconds unless named otherwise.
 */
#ifndef PGFERRY_LAG_H
#define PGFERRY_LAG_H

#include "pgferry/buf.h"
#include "pgferry/config.h"
#include "pgferry/error.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum {
	LAG_SOURCE_NEVER = 0, /* no source since the sink started */
	LAG_SOURCE_CONNECTED,
	LAG_SOURCE_DISCONNECTED,
	LAG_SOURCE_PRIMARY_SHUTDOWN, /* the primary ended its stream cleanly */
} lag_source_state_t;

typedef struct lag_tracker lag_tracker_t;

#define LAG_HISTOGRAM_BUCKETS 14
extern const double lag_histogram_bounds[LAG_HISTOGRAM_BUCKETS]; /* seconds */

typedef struct lag_histogram {
	uint64_t counts[LAG_HISTOGRAM_BUCKETS + 1]; /* last: +Inf */
	double sum;
	uint64_t count;
} lag_histogram_t;

typedef struct lag_snapshot {
	int64_t now_us; /* sink clock, Unix µs */
	bool identity_known;
	uint64_t system_identifier;
	char database[128];
	char slot[128];
	bool identity_ok;

	bool heard_from_primary;
	uint64_t primary_wal_lsn;
	int64_t primary_wal_time_us; /* on the sink's clock, Unix µs */
	uint64_t received_lsn;
	uint64_t applied_lsn;
	int64_t last_applied_commit_time_us; /* sink clock; 0 = none */
	double last_commit_lag_ms;           /* commit on the primary → applied on DR */
	bool caught_up;

	uint64_t known_loss_transactions;
	uint64_t known_loss_bytes; /* WAL bytes the primary reported beyond what was applied */
	double oldest_commit_age_ms;
	/* proof point to the newest primary moment whose commits are known (-1:
	 * no proof yet) */
	double known_loss_window_ms;
	/* the newest primary moment whose commits are known, to now (-1: none) */
	double unknown_window_ms;
	bool rpo_known;        /* false: nothing proves what the DR side holds yet */
	double rpo_bound_ms;   /* known loss window + unknown window (-1: unknown) */
	int64_t proof_time_us; /* the proof point on the sink's clock */

	/* what the source learned on its own connection to the primary */
	bool fact_known;
	double fact_age_ms;            /* since the newest fact arrived (-1: none) */
	uint64_t primary_position_lsn; /* newest primary position known (facts, walsender) */
	uint64_t primary_flush_lsn;    /* the primary's WAL flush position (facts) */
	double stream_idle_ms;         /* since the stream last delivered anything new */
	char source_error[300];        /* the source's last session error ("" if none) */
	/* the slot's WAL retention on the primary, from the source's facts */
	bool slot_known;
	int64_t slot_retained_bytes; /* -1: the slot has no restart_lsn */
	int64_t slot_safe_wal_size;  /* -1: unlimited (max_slot_wal_keep_size = -1) */
	char slot_wal_status[16];    /* pg_replication_slots.wal_status */
	char slot_wal_warning[400];  /* why the retention needs attention ("": it does not) */
	/* the source's RPO guard (rpo_guard = on there), from its facts */
	/* the last pgferry drill recorded in pgferry.drills (the history thread
	 * reads it every ten seconds) */
	bool last_drill_known;
	bool last_drill_ok;
	char last_drill_at[40];
	double last_drill_rto_ms; /* -1: none (it failed before promote) */
	char last_drill_error[300];
	bool rpo_guard_known;
	bool rpo_guard_engaged;
	int64_t rpo_guard_bound_ms; /* the source's own bound, -1 unknown */
	uint64_t rpo_guard_engagements;
	char rpo_guard_reason[256];

	uint64_t clock_faults;
	char clock_fault[300];     /* the last one ("" if none) */
	double clock_fault_age_ms; /* -1: none */

	uint64_t backlog_transactions;
	uint64_t backlog_bytes;
	uint64_t spooled_bytes;   /* of the received batches, waiting on disk */
	double drain_estimate_ms; /* -1 when it cannot be estimated */
	char spool_error[300];    /* why the receive spool is off now ("": it is not) */
	uint64_t spool_failures;  /* since start */

	double transactions_per_s, rows_per_s, bytes_per_s;

	bool clock_known;
	double clock_offset_ms; /* primary (source host) clock minus sink clock */
	double clock_uncertainty_ms;

	lag_source_state_t source_state;
	int64_t source_since_us;
	uint64_t primary_final_lsn; /* with LAG_SOURCE_PRIMARY_SHUTDOWN */

	bool dr_reachable;
	bool apply_error;
	char apply_error_message[600];
	char apply_error_where[300];
	bool schema_drift; /* the apply error is a schema mismatch */
	bool fenced;
	char stream_refused[600]; /* why the sink refuses to apply ("": it does not) */
	char stream_blocked[600]; /* why the source cannot ship the next change ("": it can) */

	/* counters */
	uint64_t batches, batch_wire_bytes, batch_raw_bytes, bad_batches, source_connections,
	        apply_errors, transactions_applied, rows_applied, heartbeats;
	lag_histogram_t commit_lag;  /* seconds, per applied group's last commit */
	lag_histogram_t apply_group; /* seconds per DR transaction */

	/* the last hour, from pgferry.lag_history (lag_history.c) */
	bool history_known;
	double history_p50_ms, history_p95_ms, history_p99_ms, history_max_ms;

	/* the configured limits, for the verdict's defaults */
	int64_t max_rpo_ms;
	int64_t max_apply_backlog;
	int64_t max_clock_offset_ms;
} lag_snapshot_t;

/* PROMOTED: this DR database was promoted; there is nothing left to decide */
typedef enum { VERDICT_SAFE, VERDICT_UNSAFE, VERDICT_UNKNOWN, VERDICT_PROMOTED } verdict_t;

#define VERDICT_MAX_REASONS 12
typedef struct lag_verdict {
	verdict_t verdict;
	int nreasons;
	char reasons[VERDICT_MAX_REASONS][400];
} lag_verdict_t;

/* cfg must outlive the tracker. now_us NULL = the real clock (tests inject;
 * set_clock uses one function for the wall and the monotonic clock). */
lag_tracker_t *lag_tracker_create(const config_t *cfg);
void lag_tracker_free(lag_tracker_t *l);
void lag_tracker_set_clock(lag_tracker_t *l, int64_t (*now_us)(void *arg), void *arg);
void lag_tracker_set_clocks(lag_tracker_t *l, int64_t (*wall_us)(void *arg),
                            int64_t (*mono_us)(void *arg), void *arg);

/* network thread */
void lag_set_identity(lag_tracker_t *l, uint64_t system_identifier, const char *database,
                      const char *slot);
void lag_set_identity_ok(lag_tracker_t *l, bool ok);
void lag_set_source_state(lag_tracker_t *l, lag_source_state_t state, uint64_t final_lsn);
void lag_on_heard_from_source(lag_tracker_t *l);
void lag_on_primary_wal(lag_tracker_t *l, uint64_t wal_end, int64_t primary_send_time);
/* internal: a transaction of pgferry's own messages only (heartbeat,
 * sequences): it counts in no backlog */
void lag_on_received_commit(lag_tracker_t *l, uint64_t commit_lsn, uint64_t end_lsn,
                            int64_t commit_time, uint64_t bytes, uint64_t rows, bool internal);
/* A fact the source learned on its own connection to the primary: every
 * commit visible before primary_time has a commit LSN below position_lsn;
 * flush_lsn is the primary's WAL flush position then (position_lsn 0: only
 * that). source_error is the source's last session error ("" or NULL:
 * none). */
void lag_on_primary_fact(lag_tracker_t *l, uint64_t position_lsn, uint64_t flush_lsn,
                         int64_t primary_time, const char *source_error);
/* The slot's WAL retention the source read on the primary (retained -1:
 * no restart_lsn; safe -1: unlimited), its wal_status and the source's
 * slot_wal_warning (bytes, 0 = off). A warning, never a verdict. */
void lag_on_slot_wal(lag_tracker_t *l, int64_t retained, int64_t safe, const char *wal_status,
                     int64_t warning_limit);
/* The source's RPO guard: engaged or not, its own bound (-1 unknown), how
 * often it engaged since the source started, and why it is in that state. */
void lag_on_rpo_guard(lag_tracker_t *l, bool engaged, int64_t bound_ms, uint64_t engagements,
                      const char *reason);
void lag_on_received(lag_tracker_t *l, uint64_t lsn);
void lag_on_heartbeat(lag_tracker_t *l);
void lag_reset_received(lag_tracker_t *l, uint64_t resume_lsn);
void lag_on_clock_sample(lag_tracker_t *l, int64_t t1, int64_t t2, int64_t t3, int64_t t4);
void lag_count_batch(lag_tracker_t *l, uint64_t wire_bytes, uint64_t raw_bytes);
void lag_count_bad_batch(lag_tracker_t *l);

/* apply thread */
void lag_on_applied(lag_tracker_t *l, uint64_t end_lsn, int64_t last_commit_time,
                    uint64_t transactions, uint64_t rows, uint64_t bytes, double seconds);
void lag_restore_applied(lag_tracker_t *l, uint64_t lsn, int64_t commit_time);
/* Apply stopped with err in the source transaction committing at lsn (0 when
 * not in one); the error stands until a group applies past lsn. */
void lag_set_apply_error(lag_tracker_t *l, const pgf_error_t *err, uint64_t lsn);
void lag_set_dr_reachable(lag_tracker_t *l, bool reachable, const pgf_error_t *err);
void lag_set_fenced(lag_tracker_t *l, bool fenced);
/* The sink refuses to apply (an initial copy not known complete, the
 * stream's origin used or moved by another): why, or NULL when it does not. */
void lag_set_stream_refused(lag_tracker_t *l, const char *why);
/* The source reported a change it cannot ship (too large for
 * max_frame_bytes); NULL or "" when the stream passed it. */
void lag_set_stream_blocked(lag_tracker_t *l, const char *why);
/* Received batches waiting in the spool file (decompressed bytes). */
void lag_set_spooled(lag_tracker_t *l, uint64_t bytes);
/* The receive spool off after a failure (why; NULL or "": on), and the
 * failures since start. */
void lag_set_spool_fault(lag_tracker_t *l, const char *why, uint64_t failures);

/* history thread: the last hour's commit lag percentiles */
/* The last drill (pgferry.drills): when, passed or not, its RTO (-1: none)
 * and why it failed (""). */
void lag_set_last_drill(lag_tracker_t *l, const char *started_at, bool ok, double rto_ms,
                        const char *error);
void lag_set_history(lag_tracker_t *l, double p50_ms, double p95_ms, double p99_ms, double max_ms);

/* any thread */
void lag_snapshot(lag_tracker_t *l, lag_snapshot_t *s);
/* max_rpo_ms / max_backlog < 0: the configured defaults */
void lag_verdict(const lag_snapshot_t *s, int64_t max_rpo_ms, int64_t max_backlog,
                 lag_verdict_t *v);
const char *lag_verdict_name(verdict_t v);
const char *lag_source_state_name(lag_source_state_t s);

/* Renderers (status JSON, promotion JSON, Prometheus text). */
void lag_render_status_json(const lag_snapshot_t *s, const lag_verdict_t *v, buf_t *out);
void lag_render_verdict_json(const lag_snapshot_t *s, const lag_verdict_t *v, int64_t max_rpo_ms,
                             int64_t max_backlog, buf_t *out);
void lag_render_metrics(const lag_snapshot_t *s, buf_t *out);

#endif
