/*
 * lag_render.c — the lag snapshot as /v1/status JSON, as the promotion
 * verdict's JSON body (both built with jansson: key order as listed here,
 * a figure nobody can know is null), and as Prometheus text (names
 * pgferry_*, base units).
 */
#include "pgferry/decoder.h"
#include "pgferry/json_out.h"
#include "pgferry/lag.h"
#include "pgferry/prom.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <time.h>

/* a moment on the sink's clock (Unix µs); 0: none, null */
static json_t *iso_time(int64_t unix_us)
{
	return unix_us == 0 ? json_null() : json_out_pgtime(unix_us_to_pgtime(unix_us));
}

/* a figure that cannot be known (negative) is null, not 0 */
static json_t *figure(double v)
{
	return v < 0 ? json_null() : json_out_number(v, 3);
}

static json_t *u64(uint64_t v)
{
	return json_integer((json_int_t)v);
}

static void set_verdict(json_t *o, const lag_verdict_t *v)
{
	json_t *reasons = json_array();
	int i;

	json_out_set(o, "verdict", json_string(lag_verdict_name(v->verdict)));
	for (i = 0; i < v->nreasons; i++)
		json_array_append_new(reasons, json_out_cstring(v->reasons[i]));
	json_out_set(o, "reasons", reasons);
}

static json_t *identity_json(const lag_snapshot_t *s)
{
	char sysid[24];
	json_t *o;

	if (!s->identity_known)
		return json_null();
	/* a string: a 64-bit identifier does not survive a JavaScript reader */
	snprintf(sysid, sizeof(sysid), "%" PRIu64, s->system_identifier);
	o = json_object();
	json_out_set(o, "system_identifier", json_string(sysid));
	json_out_set(o, "database", json_out_cstring(s->database));
	json_out_set(o, "slot", json_out_cstring(s->slot));
	json_out_set(o, "consistent", json_out_bool(s->identity_ok));
	return o;
}

static json_t *primary_json(const lag_snapshot_t *s)
{
	json_t *o = json_object();

	json_out_set(o, "position_lsn", json_out_lsn(s->primary_position_lsn));
	json_out_set(o, "flush_lsn", json_out_lsn(s->primary_flush_lsn));
	json_out_set(o, "fact_age_ms", figure(s->fact_age_ms));
	json_out_set(o, "stream_idle_ms", json_out_number(s->stream_idle_ms, 3));
	json_out_set(o, "source_error", json_out_cstring_or_null(s->source_error));
	return o;
}

/* the slot's WAL retention on the primary: a warning, not a verdict */
static void set_slot(json_t *o, const lag_snapshot_t *s)
{
	bool k = s->slot_known;

	json_out_set(o, "slot_retained_wal_bytes",
	             k && s->slot_retained_bytes >= 0 ? json_integer(s->slot_retained_bytes)
	                                              : json_null());
	json_out_set(o, "slot_safe_wal_size_bytes",
	             k && s->slot_safe_wal_size >= 0 ? json_integer(s->slot_safe_wal_size)
	                                             : json_null());
	json_out_set(o, "slot_wal_status", k ? json_out_cstring(s->slot_wal_status) : json_null());
	json_out_set(o, "slot_wal_warning", json_out_cstring_or_null(s->slot_wal_warning));
}

/* the last pgferry drill (pgferry.drills): null before the first */
static json_t *last_drill_json(const lag_snapshot_t *s)
{
	json_t *o;

	if (!s->last_drill_known)
		return json_null();
	o = json_object();
	json_out_set(o, "started_at", json_out_cstring(s->last_drill_at));
	json_out_set(o, "result", json_out_cstring(s->last_drill_ok ? "passed" : "failed"));
	json_out_set(o, "rto_ms",
	             s->last_drill_rto_ms < 0 ? json_null()
	                                      : json_out_number(s->last_drill_rto_ms, 3));
	json_out_set(o, "error", json_out_cstring_or_null(s->last_drill_error));
	return o;
}

/* the source's RPO guard: null when the source runs none */
static json_t *rpo_guard_json(const lag_snapshot_t *s)
{
	json_t *o;

	if (!s->rpo_guard_known)
		return json_null();
	o = json_object();
	json_out_set(o, "state", json_out_cstring(s->rpo_guard_engaged ? "engaged" : "released"));
	json_out_set(o, "reason", json_out_cstring(s->rpo_guard_reason));
	json_out_set(o, "source_rpo_bound_ms",
	             s->rpo_guard_bound_ms < 0 ? json_null() : json_integer(s->rpo_guard_bound_ms));
	json_out_set(o, "engagements", u64(s->rpo_guard_engagements));
	return o;
}

static json_t *clock_json(const lag_snapshot_t *s)
{
	json_t *o = json_object();

	json_out_set(o, "offset_ms",
	             s->clock_known ? json_out_number(s->clock_offset_ms, 3) : json_null());
	json_out_set(o, "uncertainty_ms",
	             s->clock_known ? json_out_number(s->clock_uncertainty_ms, 3) : json_null());
	json_out_set(o, "faults", u64(s->clock_faults));
	json_out_set(o, "last_fault", json_out_cstring_or_null(s->clock_fault));
	json_out_set(o, "last_fault_age_ms", figure(s->clock_fault_age_ms));
	return o;
}

static json_t *apply_error_json(const lag_snapshot_t *s, bool shown)
{
	json_t *o;

	if (!shown)
		return json_null();
	o = json_object();
	json_out_set(o, "message", json_out_cstring(s->apply_error_message));
	json_out_set(o, "where", json_out_cstring(s->apply_error_where));
	return o;
}

static json_t *status_json(const lag_snapshot_t *s, const lag_verdict_t *v)
{
	json_t *o = json_object(), *x;

	json_out_set(o, "identity", identity_json(s));
	json_out_set(o, "primary_wal_lsn", json_out_lsn(s->primary_wal_lsn));
	json_out_set(o, "primary_wal_time", iso_time(s->primary_wal_time_us));
	json_out_set(o, "received_lsn", json_out_lsn(s->received_lsn));
	json_out_set(o, "applied_lsn", json_out_lsn(s->applied_lsn));
	json_out_set(o, "last_applied_commit_time", iso_time(s->last_applied_commit_time_us));
	json_out_set(o, "last_commit_lag_ms", json_out_number(s->last_commit_lag_ms, 3));
	json_out_set(o, "caught_up", json_out_bool(s->caught_up));
	x = json_object();
	json_out_set(x, "transactions", u64(s->known_loss_transactions));
	json_out_set(x, "bytes", u64(s->known_loss_bytes));
	json_out_set(x, "oldest_commit_age_ms", json_out_number(s->oldest_commit_age_ms, 3));
	json_out_set(x, "window_ms", figure(s->known_loss_window_ms));
	json_out_set(o, "known_loss", x);
	json_out_set(o, "unknown_window_ms", figure(s->unknown_window_ms));
	json_out_set(o, "rpo_bound_ms", figure(s->rpo_bound_ms));
	json_out_set(o, "proof_time", iso_time(s->rpo_known ? s->proof_time_us : 0));
	json_out_set(o, "primary", primary_json(s));
	set_slot(o, s);
	json_out_set(o, "rpo_guard", rpo_guard_json(s));
	json_out_set(o, "last_drill", last_drill_json(s));
	x = json_object();
	json_out_set(x, "transactions", u64(s->backlog_transactions));
	json_out_set(x, "bytes", u64(s->backlog_bytes));
	json_out_set(x, "spooled_bytes", u64(s->spooled_bytes));
	json_out_set(x, "spool_error", json_out_cstring_or_null(s->spool_error));
	json_out_set(x, "spool_failures", u64(s->spool_failures));
	json_out_set(x, "drain_estimate_ms",
	             s->drain_estimate_ms < 0 ? json_null()
	                                      : json_out_number(s->drain_estimate_ms, 0));
	json_out_set(o, "apply_backlog", x);
	x = json_object();
	json_out_set(x, "transactions_per_s", json_out_number(s->transactions_per_s, 1));
	json_out_set(x, "rows_per_s", json_out_number(s->rows_per_s, 1));
	json_out_set(x, "bytes_per_s", json_out_number(s->bytes_per_s, 0));
	json_out_set(o, "apply_rate", x);
	json_out_set(o, "clock", clock_json(s));
	x = json_object();
	json_out_set(x, "state", json_string(lag_source_state_name(s->source_state)));
	json_out_set(x, "since", iso_time(s->source_since_us));
	if (s->source_state == LAG_SOURCE_PRIMARY_SHUTDOWN)
		json_out_set(x, "primary_final_lsn", json_out_lsn(s->primary_final_lsn));
	json_out_set(o, "source_connection", x);
	json_out_set(o, "dr_reachable", json_out_bool(s->dr_reachable));
	json_out_set(o, "fenced", json_out_bool(s->fenced));
	json_out_set(o, "stream_blocked", json_out_cstring_or_null(s->stream_blocked));
	json_out_set(o, "stream_refused", json_out_cstring_or_null(s->stream_refused));
	x = json_object();
	json_out_set(x, "apply", apply_error_json(s, s->apply_error));
	json_out_set(x, "schema_drift", apply_error_json(s, s->apply_error && s->schema_drift));
	json_out_set(x, "bad_batches", u64(s->bad_batches));
	json_out_set(o, "errors", x);
	if (s->history_known) {
		x = json_object();
		json_out_set(x, "window", json_string("1 hour"));
		json_out_set(x, "p50_ms", json_out_number(s->history_p50_ms, 3));
		json_out_set(x, "p95_ms", json_out_number(s->history_p95_ms, 3));
		json_out_set(x, "p99_ms", json_out_number(s->history_p99_ms, 3));
		json_out_set(x, "max_ms", json_out_number(s->history_max_ms, 3));
	} else
		x = json_null();
	json_out_set(o, "lag_history", x);
	x = json_object();
	set_verdict(x, v);
	json_out_set(x, "max_rpo_ms", json_integer(s->max_rpo_ms));
	json_out_set(x, "max_apply_backlog", json_integer(s->max_apply_backlog));
	json_out_set(o, "promotion", x);
	return o;
}

static void render(buf_t *b, json_t *doc)
{
	if (json_out_append(b, doc) == PGF_OK)
		buf_append_char(b, '\n');
	json_decref(doc);
}

void lag_render_status_json(const lag_snapshot_t *s, const lag_verdict_t *v, buf_t *b)
{
	render(b, status_json(s, v));
}

void lag_render_verdict_json(const lag_snapshot_t *s, const lag_verdict_t *v, int64_t max_rpo_ms,
                             int64_t max_backlog, buf_t *b)
{
	json_t *o = json_object(), *f = json_object();

	set_verdict(o, v);
	json_out_set(o, "rpo_bound_ms", figure(s->rpo_bound_ms));
	json_out_set(f, "known_loss_window_ms", figure(s->known_loss_window_ms));
	json_out_set(f, "unknown_window_ms", figure(s->unknown_window_ms));
	json_out_set(f, "oldest_commit_age_ms", json_out_number(s->oldest_commit_age_ms, 3));
	json_out_set(f, "known_loss_transactions", u64(s->known_loss_transactions));
	json_out_set(f, "known_loss_bytes", u64(s->known_loss_bytes));
	json_out_set(f, "apply_backlog_transactions", u64(s->backlog_transactions));
	json_out_set(f, "apply_error", json_out_bool(s->apply_error));
	json_out_set(f, "schema_drift", json_out_bool(s->apply_error && s->schema_drift));
	json_out_set(f, "dr_reachable", json_out_bool(s->dr_reachable));
	json_out_set(f, "identity_consistent", json_out_bool(s->identity_ok));
	json_out_set(f, "fenced", json_out_bool(s->fenced));
	json_out_set(f, "source_connection", json_string(lag_source_state_name(s->source_state)));
	if (s->clock_known) {
		json_out_set(f, "clock_offset_ms", json_out_number(s->clock_offset_ms, 3));
		json_out_set(f, "clock_uncertainty_ms",
		             json_out_number(s->clock_uncertainty_ms, 3));
	}
	json_out_set(f, "applied_lsn", json_out_lsn(s->applied_lsn));
	json_out_set(f, "primary_wal_lsn", json_out_lsn(s->primary_wal_lsn));
	json_out_set(o, "figures", f);
	json_out_set(o, "max_rpo_ms", json_integer(max_rpo_ms));
	json_out_set(o, "max_apply_backlog", json_integer(max_backlog));
	render(b, o);
}

static void histogram(buf_t *b, const char *name, const char *help, const lag_histogram_t *h)
{
	uint64_t cum = 0;
	int i;

	buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (i = 0; i < LAG_HISTOGRAM_BUCKETS; i++) {
		cum += h->counts[i];
		buf_printf(b, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, lag_histogram_bounds[i],
		           cum);
	}
	cum += h->counts[LAG_HISTOGRAM_BUCKETS];
	buf_printf(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cum);
	buf_printf(b, "%s_sum %.17g\n%s_count %" PRIu64 "\n", name, h->sum, name, h->count);
}

/* the RPO bound, the loss windows and what they rest on */
static void metrics_rpo(const lag_snapshot_t *s, buf_t *b)
{
	prom_gauge(b, "pgferry_rpo_bound_seconds",
	           "Time since the DR database provably held everything the primary had committed "
	           "(known loss window plus unknown window; NaN: no proof yet).",
	           s->rpo_known ? s->rpo_bound_ms / 1000.0 : NAN);
	prom_gauge(
	        b, "pgferry_known_loss_window_seconds",
	        "Primary commits known to exist that the DR side provably lacks, as time (NaN: no "
	        "proof yet).",
	        s->rpo_known ? s->known_loss_window_ms / 1000.0 : NAN);
	prom_gauge(b, "pgferry_known_loss_transactions",
	           "Committed source transactions received but not yet applied.",
	           (double)s->known_loss_transactions);
	prom_gauge(b, "pgferry_known_loss_bytes",
	           "WAL bytes the primary reported beyond what the DR database applied.",
	           (double)s->known_loss_bytes);
	prom_gauge(b, "pgferry_oldest_unapplied_commit_age_seconds",
	           "Age of the oldest committed source transaction not yet applied.",
	           s->oldest_commit_age_ms / 1000.0);
	prom_gauge(b, "pgferry_unknown_window_seconds",
	           "Time since the newest primary moment whose commits the sink knows (NaN: none).",
	           s->unknown_window_ms >= 0 ? s->unknown_window_ms / 1000.0 : NAN);
	prom_gauge(b, "pgferry_stream_idle_seconds",
	           "Time since the stream last delivered anything new.",
	           s->stream_idle_ms / 1000.0);
	prom_counter(b, "pgferry_clock_faults_total",
	             "Clock faults: primary times in the future of the sink's clock, steps of the "
	             "sink's clock.",
	             s->clock_faults);
}

/* the backlog, the spool, the apply rate, the positions */
static void metrics_apply(const lag_snapshot_t *s, buf_t *b)
{
	prom_gauge(b, "pgferry_apply_backlog_transactions",
	           "Received transactions not yet applied.", (double)s->backlog_transactions);
	prom_gauge(b, "pgferry_apply_backlog_bytes", "pgoutput bytes received but not yet applied.",
	           (double)s->backlog_bytes);
	prom_gauge(b, "pgferry_receive_spool_bytes",
	           "Received batches waiting on disk in work_dir (decompressed bytes).",
	           (double)s->spooled_bytes);
	prom_gauge(
	        b, "pgferry_receive_spool_failed",
	        "1 while the receive spool is off after a failure (a full work_dir, say): received "
	        "batches wait in memory only until it is tried again.",
	        s->spool_error[0] ? 1 : 0);
	prom_counter(b, "pgferry_receive_spool_failures_total",
	             "Writes to or reads from the receive spool that failed.", s->spool_failures);
	prom_gauge(b, "pgferry_apply_drain_estimate_seconds",
	           "Time to apply the backlog at the current apply rate (-1: unknown).",
	           s->drain_estimate_ms < 0 ? -1 : s->drain_estimate_ms / 1000.0);
	prom_gauge(b, "pgferry_apply_rate_transactions_per_second",
	           "Source transactions applied per second, recent window.", s->transactions_per_s);
	prom_gauge(b, "pgferry_apply_rate_rows_per_second",
	           "Rows applied per second, recent window.", s->rows_per_s);
	prom_gauge(b, "pgferry_apply_rate_bytes_per_second",
	           "pgoutput bytes applied per second, recent window.", s->bytes_per_s);
	prom_gauge(b, "pgferry_last_commit_lag_seconds",
	           "Commit on the primary to commit on the DR database, last applied transaction.",
	           s->last_commit_lag_ms / 1000.0);
	prom_gauge(b, "pgferry_primary_wal_lsn_bytes", "Newest end of WAL the primary reported.",
	           (double)s->primary_wal_lsn);
	prom_gauge(b, "pgferry_received_lsn_bytes",
	           "Newest WAL position verified and held by the sink.", (double)s->received_lsn);
	prom_gauge(b, "pgferry_applied_lsn_bytes", "End of the last source commit applied on DR.",
	           (double)s->applied_lsn);
}

/* the states of the clocks, the source, the slot, apply and the verdict */
static void metrics_state(const lag_snapshot_t *s, const lag_verdict_t *v, buf_t *b)
{
	prom_gauge(b, "pgferry_clock_offset_seconds",
	           "Estimated clock of the primary's host minus the sink's clock.",
	           s->clock_offset_ms / 1000.0);
	prom_gauge(b, "pgferry_clock_uncertainty_seconds",
	           "Uncertainty of the clock offset (half RTT).", s->clock_uncertainty_ms / 1000.0);
	prom_gauge(b, "pgferry_source_connected", "1 when a source is connected.",
	           s->source_state == LAG_SOURCE_CONNECTED ? 1 : 0);
	prom_gauge(b, "pgferry_primary_clean_shutdown",
	           "1 when the primary ended its stream cleanly (shut down).",
	           s->source_state == LAG_SOURCE_PRIMARY_SHUTDOWN ? 1 : 0);
	prom_gauge(b, "pgferry_dr_reachable", "1 when the DR database answers.",
	           s->dr_reachable ? 1 : 0);
	prom_gauge(b, "pgferry_apply_error", "1 while apply is stopped by an error.",
	           s->apply_error ? 1 : 0);
	prom_gauge(b, "pgferry_identity_consistent",
	           "0 when a stream from another primary was offered and refused.",
	           s->identity_ok ? 1 : 0);
	prom_gauge(b, "pgferry_schema_drift",
	           "1 while apply is stopped because a DR table does not match the primary's.",
	           s->apply_error && s->schema_drift ? 1 : 0);
	prom_gauge(b, "pgferry_slot_retained_wal_bytes",
	           "WAL the slot retains on the primary (current WAL position minus restart_lsn).",
	           s->slot_known && s->slot_retained_bytes >= 0 ? (double)s->slot_retained_bytes
	                                                        : NAN);
	prom_gauge(b, "pgferry_slot_safe_wal_size_bytes",
	           "WAL that can still be written before the slot loses WAL it needs (NaN: "
	           "unlimited).",
	           s->slot_known && s->slot_safe_wal_size >= 0 ? (double)s->slot_safe_wal_size
	                                                       : NAN);
	prom_gauge(
	        b, "pgferry_rpo_guard_engaged",
	        "1 while the source's RPO guard makes the primary's commits wait for the DR side "
	        "(0 released, NaN: no guard).",
	        s->rpo_guard_known ? (s->rpo_guard_engaged ? 1 : 0) : NAN);
	prom_counter(b, "pgferry_rpo_guard_engagements_total",
	             "Times the source's RPO guard engaged since the source started.",
	             s->rpo_guard_engagements);
	prom_gauge(b, "pgferry_slot_wal_warning",
	           "1 when the slot retains more WAL than the source's slot_wal_warning, or its "
	           "wal_status is unreserved or lost.",
	           s->slot_wal_warning[0] ? 1 : 0);
	prom_gauge(
	        b, "pgferry_stream_blocked",
	        "1 while the source reports a change it cannot ship (larger than max_frame_bytes); "
	        "/v1/status stream_blocked names its LSN.",
	        s->stream_blocked[0] ? 1 : 0);
	prom_gauge(
	        b, "pgferry_stream_refused",
	        "1 while the sink refuses to apply (initial copy not complete, origin in dispute).",
	        s->stream_refused[0] ? 1 : 0);
	prom_gauge(b, "pgferry_fenced",
	           "1 when the DR database was promoted and the sink is fenced.",
	           s->fenced ? 1 : 0);
	prom_gauge(b, "pgferry_promotion_safe",
	           "1 when a promotion now is safe under the configured max_rpo and backlog limit.",
	           v->verdict == VERDICT_SAFE ? 1 : 0);
	prom_gauge(b, "pgferry_promoted", "1 when this DR database was promoted.",
	           v->verdict == VERDICT_PROMOTED ? 1 : 0);
}

/* counters and histograms */
static void metrics_counters(const lag_snapshot_t *s, buf_t *b)
{
	prom_counter(b, "pgferry_batches_total", "Batches received and verified.", s->batches);
	prom_counter(b, "pgferry_batch_compressed_bytes_total",
	             "Batch bytes on the wire (compressed).", s->batch_wire_bytes);
	prom_counter(b, "pgferry_batch_raw_bytes_total", "Batch bytes after decompression.",
	             s->batch_raw_bytes);
	prom_counter(b, "pgferry_bad_batches_total",
	             "Batches or frames rejected (checksum, decompression, decoding, framing).",
	             s->bad_batches);
	prom_counter(b, "pgferry_source_connections_total",
	             "Source connections accepted (reconnects).", s->source_connections);
	prom_counter(b, "pgferry_apply_errors_total",
	             "Apply errors (each stops apply until resolved).", s->apply_errors);
	prom_counter(b, "pgferry_applied_transactions_total", "Source transactions applied.",
	             s->transactions_applied);
	prom_counter(b, "pgferry_applied_rows_total", "Rows applied.", s->rows_applied);
	prom_counter(b, "pgferry_heartbeats_total", "Heartbeat messages received from the primary.",
	             s->heartbeats);
	histogram(b, "pgferry_commit_lag_seconds",
	          "Commit on the primary to commit on the DR database, per DR transaction.",
	          &s->commit_lag);
	histogram(b, "pgferry_apply_group_seconds", "Duration of each DR transaction.",
	          &s->apply_group);
}

void lag_render_metrics(const lag_snapshot_t *s, buf_t *b)
{
	lag_verdict_t v;

	lag_verdict(s, -1, -1, &v);
	metrics_rpo(s, b);
	metrics_apply(s, b);
	metrics_state(s, &v, b);
	metrics_counters(s, b);
}
