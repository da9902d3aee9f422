/*
 * sink_events.c — what the apply thread tells the sink's network thread
 * (sink_apply_events_t): these run on the apply thread and only record the
 * news, in the lag tracker or under the sink's lock, and wake the loop,
 * which acts on it.
 */
#include "pgferry/lag.h"
#include "pgferry/sink_apply.h"

#include "sink_internal.h"

#include <stdio.h>

static void ev_session_verdict(void *arg, uint64_t session, bool accepted, sink_refusal_t refusal,
                               const char *why, uint64_t resume_lsn)
{
	sink_t *s = arg;

	pthread_mutex_lock(&s->lock);
	s->verdict.pending = true;
	s->verdict.session = session;
	s->verdict.accepted = accepted;
	s->verdict.refusal = refusal;
	snprintf(s->verdict.why, sizeof(s->verdict.why), "%s", why ? why : "");
	s->verdict.resume_lsn = resume_lsn;
	pthread_mutex_unlock(&s->lock);
	if (!accepted)
		lag_set_identity_ok(s->lag, refusal != SINK_REFUSE_IDENTITY);
	ev_async_send(s->loop, &s->wakeup);
}

static void ev_stream_refused(void *arg, const char *why)
{
	sink_t *s = arg;

	lag_set_stream_refused(s->lag, why);
}

static void ev_applied(void *arg, const apply_group_t *g)
{
	sink_t *s = arg;

	lag_on_applied(s->lag, g->end_lsn, g->last_commit_time, g->transactions, g->rows, g->bytes,
	               g->seconds);
	pthread_mutex_lock(&s->lock);
	s->applied_lsn = g->end_lsn;
	s->applied_changed = true;
	pthread_mutex_unlock(&s->lock);
	ev_async_send(s->loop, &s->wakeup);
}

static void ev_apply_error(void *arg, const pgf_error_t *err, uint64_t lsn)
{
	sink_t *s = arg;

	lag_set_apply_error(s->lag, err, lsn);
}

static void ev_session_failed(void *arg, uint64_t session, const pgf_error_t *err)
{
	sink_t *s = arg;

	pthread_mutex_lock(&s->lock);
	s->failed.pending = true;
	s->failed.session = session;
	snprintf(s->failed.why, sizeof(s->failed.why), "%s", err ? err->message : "apply failed");
	s->failed.fenced = err && err->code == PGF_E_FENCED;
	pthread_mutex_unlock(&s->lock);
	ev_async_send(s->loop, &s->wakeup);
}

static void ev_fenced(void *arg, const char *why)
{
	sink_t *s = arg;

	(void)why;
	lag_set_fenced(s->lag, true);
}

static void ev_dr_state(void *arg, bool reachable, uint64_t progress_lsn, int64_t progress_time,
                        const pgf_error_t *err)
{
	sink_t *s = arg;

	lag_set_dr_reachable(s->lag, reachable, err);
	if (reachable) {
		lag_restore_applied(s->lag, progress_lsn, progress_time);
		pthread_mutex_lock(&s->lock);
		if (progress_lsn > s->applied_lsn)
			s->applied_lsn = progress_lsn;
		pthread_mutex_unlock(&s->lock);
	}
}

void sink_events_fill(sink_t *s, sink_apply_events_t *events)
{
	events->arg = s;
	events->session_verdict = ev_session_verdict;
	events->applied = ev_applied;
	events->apply_error = ev_apply_error;
	events->session_failed = ev_session_failed;
	events->dr_state = ev_dr_state;
	events->fenced = ev_fenced;
	events->stream_refused = ev_stream_refused;
}
