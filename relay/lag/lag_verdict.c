/*
 * lag_verdict.c — the promotion verdict (lag.h: lag_verdict): safe, unsafe
 * or cannot tell, with its reasons, from a snapshot alone (pure: no lock,
 * no clock), and the names of verdicts and source states.
 */
#include "pgferry/lag.h"

#include "pgferry/decoder.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
