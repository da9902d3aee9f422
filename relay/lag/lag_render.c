/*
 * lag_render.c — the lag snapshot as /v1/status JSON, as the promotion
 * verdict's JSON body, and as Prometheus text (names pgferry_*, base units).
 */
#include "pgferry/decoder.h"
#include "pgferry/lag.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <time.h>

static void iso_time(buf_t *b, int64_t unix_us)
{
	if (unix_us == 0) {
		buf_append_str(b, "null");
		return;
	}
	char t[40];
	pgtime_format_iso(unix_us_to_pgtime(unix_us), t);
	buf_printf(b, "\"%s\"", t);
}

static void lsn_json(buf_t *b, uint64_t lsn)
{
	char t[LSN_TEXT_LEN];
	buf_printf(b, "\"%s\"", lsn_format(lsn, t));
}

/* a figure that cannot be known (negative) is null, not 0 */
static void figure(buf_t *b, const char *name, double v)
{
	if (v < 0)
		buf_printf(b, "\"%s\":null", name);
	else
		buf_printf(b, "\"%s\":%.3f", name, v);
}

static void verdict_fields(buf_t *b, const lag_verdict_t *v)
{
	int i;

	buf_printf(b, "\"verdict\":\"%s\",\"reasons\":[", lag_verdict_name(v->verdict));
	for (i = 0; i < v->nreasons; i++) {
		if (i)
			buf_append_char(b, ',');
		json_append_cstring(b, v->reasons[i]);
	}
	buf_append_char(b, ']');
}

void lag_render_status_json(const lag_snapshot_t *s, const lag_verdict_t *v, buf_t *b)
{
	buf_append_str(b, "{\"identity\":");
	if (s->identity_known) {
		buf_printf(b, "{\"system_identifier\":\"%" PRIu64 "\",\"database\":",
		           s->system_identifier);
		json_append_cstring(b, s->database);
		buf_append_str(b, ",\"slot\":");
		json_append_cstring(b, s->slot);
		buf_printf(b, ",\"consistent\":%s}", s->identity_ok ? "true" : "false");
	} else
		buf_append_str(b, "null");
	buf_append_str(b, ",\"primary_wal_lsn\":");
	lsn_json(b, s->primary_wal_lsn);
	buf_append_str(b, ",\"primary_wal_time\":");
	iso_time(b, s->primary_wal_time_us);
	buf_append_str(b, ",\"received_lsn\":");
	lsn_json(b, s->received_lsn);
	buf_append_str(b, ",\"applied_lsn\":");
	lsn_json(b, s->applied_lsn);
	buf_append_str(b, ",\"last_applied_commit_time\":");
	iso_time(b, s->last_applied_commit_time_us);
	buf_printf(b, ",\"last_commit_lag_ms\":%.3f", s->last_commit_lag_ms);
	buf_printf(b, ",\"caught_up\":%s", s->caught_up ? "true" : "false");
	buf_printf(b,
	           ",\"known_loss\":{\"transactions\":%" PRIu64 ",\"bytes\":%" PRIu64
	           ",\"oldest_commit_age_ms\":%.3f,",
	           s->known_loss_transactions, s->known_loss_bytes, s->oldest_commit_age_ms);
	figure(b, "window_ms", s->known_loss_window_ms);
	buf_append_str(b, "},");
	figure(b, "unknown_window_ms", s->unknown_window_ms);
	buf_append_char(b, ',');
	figure(b, "rpo_bound_ms", s->rpo_bound_ms);
	buf_append_str(b, ",\"proof_time\":");
	iso_time(b, s->rpo_known ? s->proof_time_us : 0);
	buf_append_str(b, ",\"primary\":{\"position_lsn\":");
	lsn_json(b, s->primary_position_lsn);
	buf_append_str(b, ",\"flush_lsn\":");
	lsn_json(b, s->primary_flush_lsn);
	buf_append_char(b, ',');
	figure(b, "fact_age_ms", s->fact_age_ms);
	buf_printf(b, ",\"stream_idle_ms\":%.3f,\"source_error\":", s->stream_idle_ms);
	if (s->source_error[0])
		json_append_cstring(b, s->source_error);
	else
		buf_append_str(b, "null");
	buf_append_str(b, "}");
	/* the slot's WAL retention on the primary: a warning, not a verdict */
	if (s->slot_known) {
		buf_printf(b, ",\"slot_retained_wal_bytes\":");
		if (s->slot_retained_bytes < 0)
			buf_append_str(b, "null");
		else
			buf_printf(b, "%" PRId64, s->slot_retained_bytes);
		buf_printf(b, ",\"slot_safe_wal_size_bytes\":");
		if (s->slot_safe_wal_size < 0)
			buf_append_str(b, "null");
		else
			buf_printf(b, "%" PRId64, s->slot_safe_wal_size);
		buf_append_str(b, ",\"slot_wal_status\":");
		json_append_cstring(b, s->slot_wal_status);
	} else
		buf_append_str(
		        b, ",\"slot_retained_wal_bytes\":null,\"slot_safe_wal_size_bytes\":null,"
		           "\"slot_wal_status\":null");
	buf_append_str(b, ",\"slot_wal_warning\":");
	if (s->slot_wal_warning[0])
		json_append_cstring(b, s->slot_wal_warning);
	else
		buf_append_str(b, "null");
	buf_printf(b,
	           ",\"apply_backlog\":{\"transactions\":%" PRIu64 ",\"bytes\":%" PRIu64
	           ",\"spooled_bytes\":%" PRIu64 ",\"drain_estimate_ms\":",
	           s->backlog_transactions, s->backlog_bytes, s->spooled_bytes);
	if (s->drain_estimate_ms < 0)
		buf_append_str(b, "null}");
	else
		buf_printf(b, "%.0f}", s->drain_estimate_ms);
	buf_printf(b,
	           ",\"apply_rate\":{\"transactions_per_s\":%.1f,\"rows_per_s\":%.1f,"
	           "\"bytes_per_s\":%.0f}",
	           s->transactions_per_s, s->rows_per_s, s->bytes_per_s);
	if (s->clock_known)
		buf_printf(b, ",\"clock\":{\"offset_ms\":%.3f,\"uncertainty_ms\":%.3f",
		           s->clock_offset_ms, s->clock_uncertainty_ms);
	else
		buf_append_str(b, ",\"clock\":{\"offset_ms\":null,\"uncertainty_ms\":null");
	buf_printf(b, ",\"faults\":%" PRIu64 ",\"last_fault\":", s->clock_faults);
	if (s->clock_fault[0])
		json_append_cstring(b, s->clock_fault);
	else
		buf_append_str(b, "null");
	buf_append_char(b, ',');
	figure(b, "last_fault_age_ms", s->clock_fault_age_ms);
	buf_append_char(b, '}');
	buf_printf(b, ",\"source_connection\":{\"state\":\"%s\",\"since\":",
	           lag_source_state_name(s->source_state));
	iso_time(b, s->source_since_us);
	if (s->source_state == LAG_SOURCE_PRIMARY_SHUTDOWN) {
		buf_append_str(b, ",\"primary_final_lsn\":");
		lsn_json(b, s->primary_final_lsn);
	}
	buf_append_str(b, "}");
	buf_printf(b, ",\"dr_reachable\":%s,\"fenced\":%s", s->dr_reachable ? "true" : "false",
	           s->fenced ? "true" : "false");
	buf_append_str(b, ",\"stream_blocked\":");
	if (s->stream_blocked[0])
		json_append_cstring(b, s->stream_blocked);
	else
		buf_append_str(b, "null");
	buf_append_str(b, ",\"stream_refused\":");
	if (s->stream_refused[0])
		json_append_cstring(b, s->stream_refused);
	else
		buf_append_str(b, "null");
	buf_append_str(b, ",\"errors\":{\"apply\":");
	if (s->apply_error) {
		buf_append_str(b, "{\"message\":");
		json_append_cstring(b, s->apply_error_message);
		buf_append_str(b, ",\"where\":");
		json_append_cstring(b, s->apply_error_where);
		buf_append_str(b, "}");
	} else
		buf_append_str(b, "null");
	buf_append_str(b, ",\"schema_drift\":");
	if (s->apply_error && s->schema_drift) {
		buf_append_str(b, "{\"message\":");
		json_append_cstring(b, s->apply_error_message);
		buf_append_str(b, ",\"where\":");
		json_append_cstring(b, s->apply_error_where);
		buf_append_str(b, "}");
	} else
		buf_append_str(b, "null");
	buf_printf(b, ",\"bad_batches\":%" PRIu64 "}", s->bad_batches);
	if (s->history_known)
		buf_printf(
		        b,
		        ",\"lag_history\":{\"window\":\"1 hour\",\"p50_ms\":%.3f,\"p95_ms\":%.3f,"
		        "\"p99_ms\":%.3f,\"max_ms\":%.3f}",
		        s->history_p50_ms, s->history_p95_ms, s->history_p99_ms, s->history_max_ms);
	else
		buf_append_str(b, ",\"lag_history\":null");
	buf_append_str(b, ",\"promotion\":{");
	verdict_fields(b, v);
	buf_printf(b, ",\"max_rpo_ms\":%lld,\"max_apply_backlog\":%lld}}\n",
	           (long long)s->max_rpo_ms, (long long)s->max_apply_backlog);
}

void lag_render_verdict_json(const lag_snapshot_t *s, const lag_verdict_t *v, int64_t max_rpo_ms,
                             int64_t max_backlog, buf_t *b)
{
	buf_append_char(b, '{');
	verdict_fields(b, v);
	buf_append_char(b, ',');
	figure(b, "rpo_bound_ms", s->rpo_bound_ms);
	buf_append_str(b, ",\"figures\":{");
	figure(b, "known_loss_window_ms", s->known_loss_window_ms);
	buf_append_char(b, ',');
	figure(b, "unknown_window_ms", s->unknown_window_ms);
	buf_printf(
	        b,
	        ",\"oldest_commit_age_ms\":%.3f,"
	        "\"known_loss_transactions\":%" PRIu64 ",\"known_loss_bytes\":%" PRIu64
	        ",\"apply_backlog_transactions\":%" PRIu64 ",\"apply_error\":%s,"
	        "\"schema_drift\":%s,\"dr_reachable\":%s,\"identity_consistent\":%s,\"fenced\":%s,"
	        "\"source_connection\":\"%s\"",
	        s->oldest_commit_age_ms, s->known_loss_transactions, s->known_loss_bytes,
	        s->backlog_transactions, s->apply_error ? "true" : "false",
	        s->apply_error && s->schema_drift ? "true" : "false",
	        s->dr_reachable ? "true" : "false", s->identity_ok ? "true" : "false",
	        s->fenced ? "true" : "false", lag_source_state_name(s->source_state));
	if (s->clock_known)
		buf_printf(b, ",\"clock_offset_ms\":%.3f,\"clock_uncertainty_ms\":%.3f",
		           s->clock_offset_ms, s->clock_uncertainty_ms);
	buf_append_str(b, ",\"applied_lsn\":");
	lsn_json(b, s->applied_lsn);
	buf_append_str(b, ",\"primary_wal_lsn\":");
	lsn_json(b, s->primary_wal_lsn);
	buf_printf(b, "},\"max_rpo_ms\":%lld,\"max_apply_backlog\":%lld}\n", (long long)max_rpo_ms,
	           (long long)max_backlog);
}

static void gauge(buf_t *b, const char *name, const char *help, double v)
{
	if (isnan(v))
		buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s NaN\n", name, help, name, name);
	else
		buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name,
		           v);
}

static void counter(buf_t *b, const char *name, const char *help, uint64_t v)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", name, help, name, name,
	           v);
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

void lag_render_metrics(const lag_snapshot_t *s, buf_t *b)
{
	lag_verdict_t v;

	lag_verdict(s, -1, -1, &v);
	gauge(b, "pgferry_rpo_bound_seconds",
	      "Time since the DR database provably held everything the primary had committed "
	      "(known loss window plus unknown window; NaN: no proof yet).",
	      s->rpo_known ? s->rpo_bound_ms / 1000.0 : NAN);
	gauge(b, "pgferry_known_loss_window_seconds",
	      "Primary commits known to exist that the DR side provably lacks, as time (NaN: no "
	      "proof yet).",
	      s->rpo_known ? s->known_loss_window_ms / 1000.0 : NAN);
	gauge(b, "pgferry_known_loss_transactions",
	      "Committed source transactions received but not yet applied.",
	      (double)s->known_loss_transactions);
	gauge(b, "pgferry_known_loss_bytes",
	      "WAL bytes the primary reported beyond what the DR database applied.",
	      (double)s->known_loss_bytes);
	gauge(b, "pgferry_oldest_unapplied_commit_age_seconds",
	      "Age of the oldest committed source transaction not yet applied.",
	      s->oldest_commit_age_ms / 1000.0);
	gauge(b, "pgferry_unknown_window_seconds",
	      "Time since the newest primary moment whose commits the sink knows (NaN: none).",
	      s->unknown_window_ms >= 0 ? s->unknown_window_ms / 1000.0 : NAN);
	gauge(b, "pgferry_stream_idle_seconds",
	      "Time since the stream last delivered anything new.", s->stream_idle_ms / 1000.0);
	counter(b, "pgferry_clock_faults_total",
	        "Clock faults: primary times in the future of the sink's clock, steps of the "
	        "sink's clock.",
	        s->clock_faults);
	gauge(b, "pgferry_apply_backlog_transactions", "Received transactions not yet applied.",
	      (double)s->backlog_transactions);
	gauge(b, "pgferry_apply_backlog_bytes", "pgoutput bytes received but not yet applied.",
	      (double)s->backlog_bytes);
	gauge(b, "pgferry_receive_spool_bytes",
	      "Received batches waiting on disk in work_dir (decompressed bytes).",
	      (double)s->spooled_bytes);
	gauge(b, "pgferry_apply_drain_estimate_seconds",
	      "Time to apply the backlog at the current apply rate (-1: unknown).",
	      s->drain_estimate_ms < 0 ? -1 : s->drain_estimate_ms / 1000.0);
	gauge(b, "pgferry_apply_rate_transactions_per_second",
	      "Source transactions applied per second, recent window.", s->transactions_per_s);
	gauge(b, "pgferry_apply_rate_rows_per_second", "Rows applied per second, recent window.",
	      s->rows_per_s);
	gauge(b, "pgferry_apply_rate_bytes_per_second",
	      "pgoutput bytes applied per second, recent window.", s->bytes_per_s);
	gauge(b, "pgferry_last_commit_lag_seconds",
	      "Commit on the primary to commit on the DR database, last applied transaction.",
	      s->last_commit_lag_ms / 1000.0);
	gauge(b, "pgferry_primary_wal_lsn_bytes", "Newest end of WAL the primary reported.",
	      (double)s->primary_wal_lsn);
	gauge(b, "pgferry_received_lsn_bytes", "Newest WAL position verified and held by the sink.",
	      (double)s->received_lsn);
	gauge(b, "pgferry_applied_lsn_bytes", "End of the last source commit applied on DR.",
	      (double)s->applied_lsn);
	gauge(b, "pgferry_clock_offset_seconds",
	      "Estimated clock of the primary's host minus the sink's clock.",
	      s->clock_offset_ms / 1000.0);
	gauge(b, "pgferry_clock_uncertainty_seconds", "Uncertainty of the clock offset (half RTT).",
	      s->clock_uncertainty_ms / 1000.0);
	gauge(b, "pgferry_source_connected", "1 when a source is connected.",
	      s->source_state == LAG_SOURCE_CONNECTED ? 1 : 0);
	gauge(b, "pgferry_primary_clean_shutdown",
	      "1 when the primary ended its stream cleanly (shut down).",
	      s->source_state == LAG_SOURCE_PRIMARY_SHUTDOWN ? 1 : 0);
	gauge(b, "pgferry_dr_reachable", "1 when the DR database answers.",
	      s->dr_reachable ? 1 : 0);
	gauge(b, "pgferry_apply_error", "1 while apply is stopped by an error.",
	      s->apply_error ? 1 : 0);
	gauge(b, "pgferry_identity_consistent",
	      "0 when a stream from another primary was offered and refused.",
	      s->identity_ok ? 1 : 0);
	gauge(b, "pgferry_schema_drift",
	      "1 while apply is stopped because a DR table does not match the primary's.",
	      s->apply_error && s->schema_drift ? 1 : 0);
	gauge(b, "pgferry_slot_retained_wal_bytes",
	      "WAL the slot retains on the primary (current WAL position minus restart_lsn).",
	      s->slot_known && s->slot_retained_bytes >= 0 ? (double)s->slot_retained_bytes : NAN);
	gauge(b, "pgferry_slot_safe_wal_size_bytes",
	      "WAL that can still be written before the slot loses WAL it needs (NaN: unlimited).",
	      s->slot_known && s->slot_safe_wal_size >= 0 ? (double)s->slot_safe_wal_size : NAN);
	gauge(b, "pgferry_slot_wal_warning",
	      "1 when the slot retains more WAL than the source's slot_wal_warning, or its "
	      "wal_status is unreserved or lost.",
	      s->slot_wal_warning[0] ? 1 : 0);
	gauge(b, "pgferry_stream_blocked",
	      "1 while the source reports a change it cannot ship (larger than max_frame_bytes); "
	      "/v1/status stream_blocked names its LSN.",
	      s->stream_blocked[0] ? 1 : 0);
	gauge(b, "pgferry_stream_refused",
	      "1 while the sink refuses to apply (initial copy not complete, origin in dispute).",
	      s->stream_refused[0] ? 1 : 0);
	gauge(b, "pgferry_fenced", "1 when the DR database was promoted and the sink is fenced.",
	      s->fenced ? 1 : 0);
	gauge(b, "pgferry_promotion_safe",
	      "1 when a promotion now is safe under the configured max_rpo and backlog limit.",
	      v.verdict == VERDICT_SAFE ? 1 : 0);
	gauge(b, "pgferry_promoted", "1 when this DR database was promoted.",
	      v.verdict == VERDICT_PROMOTED ? 1 : 0);
	counter(b, "pgferry_batches_total", "Batches received and verified.", s->batches);
	counter(b, "pgferry_batch_compressed_bytes_total", "Batch bytes on the wire (compressed).",
	        s->batch_wire_bytes);
	counter(b, "pgferry_batch_raw_bytes_total", "Batch bytes after decompression.",
	        s->batch_raw_bytes);
	counter(b, "pgferry_bad_batches_total",
	        "Batches or frames rejected (checksum, decompression, decoding, framing).",
	        s->bad_batches);
	counter(b, "pgferry_source_connections_total", "Source connections accepted (reconnects).",
	        s->source_connections);
	counter(b, "pgferry_apply_errors_total", "Apply errors (each stops apply until resolved).",
	        s->apply_errors);
	counter(b, "pgferry_applied_transactions_total", "Source transactions applied.",
	        s->transactions_applied);
	counter(b, "pgferry_applied_rows_total", "Rows applied.", s->rows_applied);
	counter(b, "pgferry_heartbeats_total", "Heartbeat messages received from the primary.",
	        s->heartbeats);
	histogram(b, "pgferry_commit_lag_seconds",
	          "Commit on the primary to commit on the DR database, per DR transaction.",
	          &s->commit_lag);
	histogram(b, "pgferry_apply_group_seconds", "Duration of each DR transaction.",
	          &s->apply_group);
}
