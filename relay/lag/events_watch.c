/*
 * events_watch.c — events found by comparing successive lag snapshots (see
 * events.h). The lag tracker already holds every state that matters (source
 * connection, DR reachability, apply error, drift, fence, clock faults, the
 * slot's retention, the verdict's inputs), so one comparison a few times a
 * second finds each change without hooks in the threads that cause them.
 * Counters catch what came and went between two looks (a source that
 * reconnected, a second apply error).
 */
#include "pgferry/events.h"

#include "pgferry/decoder.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* at most one clock_fault event this often: a bad clock faults on every
 * timestamp */
#define CLOCK_EVENT_INTERVAL_US 60000000LL

static json_t *source_detail(const lag_snapshot_t *s)
{
	json_t *d = json_object();

	json_object_set_new(d, "state", json_string(lag_source_state_name(s->source_state)));
	json_object_set_new(d, "connections", json_integer((json_int_t)s->source_connections));
	if (s->identity_known) {
		json_object_set_new(d, "database", json_string(s->database));
		json_object_set_new(d, "slot", json_string(s->slot));
	}
	return d;
}

/*
 * A source that reconnects within SOURCE_LOST_GRACE (the sink dropped it
 * after an apply failure, a bad frame...) is no event: sessions come and go
 * (pgferry_source_connections_total counts them). Lost means gone for that
 * long while the sink itself has no reason to refuse it (an apply error, the
 * fence, a refused stream are events of their own).
 */
static void watch_source(events_watch_t *w, const lag_snapshot_t *s)
{
	bool is = s->source_state == LAG_SOURCE_CONNECTED;
	bool sink_side = s->apply_error || s->fenced || s->stream_refused[0] || !s->dr_reachable;

	if (s->source_state == LAG_SOURCE_PRIMARY_SHUTDOWN &&
	    w->source_state != LAG_SOURCE_PRIMARY_SHUTDOWN) {
		char lsn[LSN_TEXT_LEN];
		events_record("primary_shutdown", EVENT_WARNING, source_detail(s),
		              "the primary shut down cleanly; its stream ended at %s",
		              lsn_format(s->primary_final_lsn, lsn));
	}
	w->source_state = s->source_state;
	if (is) {
		w->source_down_since_us = 0;
		if (!w->source_up)
			events_record("source_connected", EVENT_INFO, source_detail(s),
			              "a source connected");
		w->source_up = true;
		return;
	}
	if (!w->source_up)
		return;
	if (w->source_down_since_us == 0)
		w->source_down_since_us = s->now_us;
	if (s->now_us - w->source_down_since_us >= EVENTS_SOURCE_LOST_GRACE_US && !sink_side) {
		events_record("source_lost", EVENT_WARNING, source_detail(s),
		              "the source disconnected %.1f s ago and has not come back",
		              (double)(s->now_us - w->source_down_since_us) / 1e6);
		w->source_up = false;
	}
}

static json_t *apply_detail(const lag_snapshot_t *s)
{
	json_t *d = json_object();
	char lsn[LSN_TEXT_LEN];

	json_object_set_new(d, "message", json_string(s->apply_error_message));
	json_object_set_new(d, "where", json_string(s->apply_error_where));
	json_object_set_new(d, "applied_lsn", json_string(lsn_format(s->applied_lsn, lsn)));
	return d;
}

static void watch_apply(events_watch_t *w, const lag_snapshot_t *s)
{
	if (w->dr_reachable && !s->dr_reachable)
		events_record("dr_unreachable", EVENT_ERROR, apply_detail(s),
		              "the DR database is unreachable: %s", s->apply_error_message);
	else if (!w->dr_reachable && s->dr_reachable)
		events_record("dr_reachable", EVENT_INFO, NULL,
		              "the DR database is reachable again");
	w->dr_reachable = s->dr_reachable;

	if (s->apply_error &&
	    (!w->apply_error || (s->apply_errors != w->apply_errors &&
	                         strncmp(s->apply_error_message, w->apply_error_message,
	                                 sizeof(w->apply_error_message) - 1) != 0))) {
		if (s->schema_drift)
			events_record("schema_drift", EVENT_ERROR, apply_detail(s),
			              "schema drift stops apply: %s%s%s", s->apply_error_message,
			              s->apply_error_where[0] ? " at " : "", s->apply_error_where);
		else
			events_record("apply_error", EVENT_ERROR, apply_detail(s),
			              "apply stopped: %s%s%s", s->apply_error_message,
			              s->apply_error_where[0] ? " at " : "", s->apply_error_where);
	} else if (w->apply_error && !s->apply_error) {
		char lsn[LSN_TEXT_LEN];
		events_record("apply_recovered", EVENT_INFO, apply_detail(s),
		              "apply recovered%s: applied up to %s",
		              w->schema_drift ? " from schema drift" : "",
		              lsn_format(s->applied_lsn, lsn));
	}
	w->apply_error = s->apply_error;
	w->schema_drift = s->apply_error && s->schema_drift;
	w->apply_errors = s->apply_errors;
	snprintf(w->apply_error_message, sizeof(w->apply_error_message), "%.*s",
	         (int)sizeof(w->apply_error_message) - 1,
	         s->apply_error ? s->apply_error_message : "");
}

static void watch_flags(events_watch_t *w, const lag_snapshot_t *s)
{
	bool slot = s->slot_wal_warning[0] != '\0';
	bool refused = s->stream_refused[0] != '\0';
	bool blocked = s->stream_blocked[0] != '\0';

	if (s->fenced && !w->fenced)
		events_record(
		        "fenced", EVENT_WARNING, NULL,
		        "this DR database is fenced (promoted): the sink applies nothing more");
	w->fenced = s->fenced;

	if (w->identity_ok && !s->identity_ok)
		events_record("identity_refused", EVENT_ERROR, source_detail(s),
		              "refused a stream from another primary, database or slot than the "
		              "one this DR database follows");
	w->identity_ok = s->identity_ok;

	if (s->clock_faults > w->clock_faults &&
	    (w->clock_event_us == 0 || s->now_us - w->clock_event_us >= CLOCK_EVENT_INTERVAL_US)) {
		json_t *d = json_object();
		json_object_set_new(d, "faults", json_integer((json_int_t)s->clock_faults));
		/* the tracker logged "clock fault: ..." already; this line names the event */
		events_record("clock_fault", EVENT_WARNING, d, "%s", s->clock_fault);
		w->clock_event_us = s->now_us;
	}
	/* faults within the interval are counted (pgferry_clock_faults_total), not events */
	w->clock_faults = s->clock_faults;

	if (slot && !w->slot_warning) {
		json_t *d = json_object();
		json_object_set_new(d, "retained_bytes", json_integer(s->slot_retained_bytes));
		json_object_set_new(d, "wal_status", json_string(s->slot_wal_status));
		events_record("slot_wal_warning", EVENT_WARNING, d, "%s", s->slot_wal_warning);
	} else if (!slot && w->slot_warning)
		events_record("slot_wal_ok", EVENT_INFO, NULL,
		              "the slot's WAL retention is back under slot_wal_warning");
	w->slot_warning = slot;

	if (refused && !w->stream_refused)
		events_record("stream_refused", EVENT_ERROR, NULL, "the sink refuses to apply: %s",
		              s->stream_refused);
	else if (!refused && w->stream_refused)
		events_record("stream_accepted", EVENT_INFO, NULL,
		              "the sink applies the stream again");
	w->stream_refused = refused;

	if (blocked && !w->stream_blocked)
		events_record("stream_blocked", EVENT_ERROR, NULL,
		              "the source cannot ship a change: %s", s->stream_blocked);
	else if (!blocked && w->stream_blocked)
		events_record("stream_unblocked", EVENT_INFO, NULL,
		              "the change the source could not ship has passed");
	w->stream_blocked = blocked;
}

/* The source's RPO guard (rpo_guard.h): each engage and release, with the
 * source's figures. A count that moved while engaged is a new engage (the
 * guard released and engaged again between two snapshots, or the source
 * restarted). */
static void watch_rpo_guard(events_watch_t *w, const lag_snapshot_t *s)
{
	bool again;
	json_t *d;

	if (!s->rpo_guard_known)
		return;
	again = s->rpo_guard_engagements != w->rpo_guard_engagements;
	if (s->rpo_guard_engaged != w->rpo_guard_engaged || (s->rpo_guard_engaged && again)) {
		d = json_object();
		json_object_set_new(d, "source_rpo_bound_ms",
		                    s->rpo_guard_bound_ms < 0
		                            ? json_null()
		                            : json_integer(s->rpo_guard_bound_ms));
		json_object_set_new(d, "rpo_bound_ms",
		                    s->rpo_known ? json_real(s->rpo_bound_ms) : json_null());
		json_object_set_new(d, "engagements",
		                    json_integer((json_int_t)s->rpo_guard_engagements));
		if (s->rpo_guard_engaged)
			events_record(
			        "rpo_guard_engaged", EVENT_WARNING, d,
			        "the RPO guard makes the primary's commits wait for the DR side "
			        "(%s)",
			        s->rpo_guard_reason);
		else
			events_record(
			        "rpo_guard_released", EVENT_INFO, d,
			        "the RPO guard lets the primary commit asynchronously again (%s)",
			        s->rpo_guard_reason);
	}
	w->rpo_guard_engaged = s->rpo_guard_engaged;
	w->rpo_guard_engagements = s->rpo_guard_engagements;
}

static void watch_verdict(events_watch_t *w, const lag_snapshot_t *s)
{
	static const char *const kinds[] = {"verdict_safe", "verdict_unsafe", "verdict_unknown",
	                                    "verdict_promoted"};
	lag_verdict_t v;
	char reasons[EVENT_MESSAGE_LEN] = "";
	json_t *d, *list;
	int i;

	lag_verdict(s, -1, -1, &v);
	if (v.verdict != w->candidate) {
		w->candidate = v.verdict;
		w->candidate_since_us = s->now_us;
	}
	if ((w->verdict_known && w->candidate == w->verdict) ||
	    s->now_us - w->candidate_since_us < EVENTS_VERDICT_HOLD_US)
		return;
	d = json_object();
	list = json_array();
	for (i = 0; i < v.nreasons; i++) {
		size_t used = strlen(reasons);
		json_array_append_new(list, json_string(v.reasons[i]));
		snprintf(reasons + used, sizeof(reasons) - used, "%s%s", i ? "; " : ": ",
		         v.reasons[i]);
	}
	json_object_set_new(d, "verdict", json_string(lag_verdict_name(v.verdict)));
	json_object_set_new(d, "reasons", list);
	json_object_set_new(d, "rpo_bound_ms",
	                    s->rpo_known ? json_real(s->rpo_bound_ms) : json_null());
	json_object_set_new(d, "max_rpo_ms", json_integer(s->max_rpo_ms));
	events_record(kinds[v.verdict], v.verdict == VERDICT_SAFE ? EVENT_INFO : EVENT_WARNING, d,
	              "promotion is %s%s",
	              v.verdict == VERDICT_SAFE      ? "safe"
	              : v.verdict == VERDICT_UNSAFE  ? "unsafe"
	              : v.verdict == VERDICT_UNKNOWN ? "of unknown safety"
	                                             : "done: promoted",
	              reasons);
	w->verdict = v.verdict;
	w->verdict_known = true;
}

void events_watch(events_watch_t *w, const lag_snapshot_t *s)
{
	if (!w->started) {
		/* what a sink starts with: nothing is wrong yet */
		memset(w, 0, sizeof(*w));
		w->started = true;
		w->source_state = LAG_SOURCE_NEVER;
		w->dr_reachable = true;
		w->identity_ok = true;
		w->candidate = s->fenced ? VERDICT_PROMOTED : VERDICT_UNKNOWN;
		w->candidate_since_us = s->now_us;
	}
	watch_apply(w, s); /* an error cleared is said before the source it kept away */
	watch_source(w, s);
	watch_flags(w, s);
	watch_rpo_guard(w, s);
	watch_verdict(w, s);
}
