/*
 * sink_apply.h — the sink's apply thread (see sink_apply.c).
 *
 * The network thread pushes queue items; this thread applies them and
 * reports through the events below, which are called FROM THE APPLY THREAD:
 * implementations must only record facts and wake the network loop.
 */
#ifndef PGFERRY_SINK_APPLY_H
#define PGFERRY_SINK_APPLY_H

#include "pgferry/apply.h"
#include "pgferry/config.h"
#include "pgferry/queue.h"

/* Why a session was refused (the network side maps these to wire errors). */
typedef enum {
	SINK_REFUSE_IDENTITY = 1,
	SINK_REFUSE_FENCED,
	SINK_REFUSE_INTERNAL,
	SINK_REFUSE_UNSEEDED, /* the initial copy is not known complete */
	SINK_REFUSE_ORIGIN,   /* the stream's origin is used or moved by another */
} sink_refusal_t;

typedef struct sink_apply_events {
	void *arg;
	/* after a hello: accepted (resume_lsn: where the source must start) or
	 * refused (refusal and a sentence saying why) */
	void (*session_verdict)(void *arg, uint64_t session, bool accepted, sink_refusal_t refusal,
	                        const char *why, uint64_t resume_lsn);
	/* a DR commit */
	void (*applied)(void *arg, const apply_group_t *group);
	/* apply failed: the session must be dropped so the source resends */
	void (*apply_error)(void *arg, const pgf_error_t *err, uint64_t lsn);
	void (*session_failed)(void *arg, uint64_t session, const pgf_error_t *err);
	/* the DR database became reachable (with its progress) or not */
	void (*dr_state)(void *arg, bool reachable, uint64_t progress_lsn, int64_t progress_time,
	                 const pgf_error_t *err);
	/* pgferry promote fenced the DR database: nothing more is applied */
	void (*fenced)(void *arg, const char *why);
	/* the sink refuses to apply into this DR database (why), or no longer
	 * does (NULL): initial copy not complete, origin in dispute */
	void (*stream_refused)(void *arg, const char *why);
} sink_apply_events_t;

typedef struct sink_apply sink_apply_t;

/* Starts the thread. cfg and queue must outlive it. */
sink_apply_t *sink_apply_start(const config_t *cfg, queue_t *queue,
                               const sink_apply_events_t *events, pgf_error_t *err);
/* Closes the queue, commits whole transactions of the open group, joins. */
void sink_apply_stop(sink_apply_t *sa);

#endif
