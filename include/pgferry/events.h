/*
 * events.h — the event history: every change of state worth a DBA's
 * attention (a source connected or lost, an apply error and its recovery,
 * schema drift, the fence, a clock fault, a slot retaining too much WAL, a
 * verdict turning unsafe or safe...), logged when it happens and kept in
 * the DR database (pgferry.events, sql/dr_events.sql) for
 * lag_history_retention.
 *
 * events_record() may be called from any thread: it logs the event, keeps
 * it in a small ring in memory (for /v1/events and the status page) and
 * queues it; the sink's history thread (lag_history.c) writes the queue to
 * the DR database, so recording never waits on a database. A process that
 * runs no history thread (the source) only logs its events. The module is
 * process-wide, like the log.
 *
 * The sink also finds events by comparing successive lag snapshots
 * (events_watch), so the lag tracker and the threads that feed it need no
 * hook of their own.
 */
#ifndef PGFERRY_EVENTS_H
#define PGFERRY_EVENTS_H

#include "pgferry/buf.h"
#include "pgferry/error.h"
#include "pgferry/lag.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum { EVENT_INFO = 0, EVENT_WARNING, EVENT_ERROR } event_severity_t;

#define EVENT_KIND_LEN    48
#define EVENT_MESSAGE_LEN 600
/* the newest events kept in memory for /v1/events and the status page */
#define EVENTS_RING 200
/* events waiting for the DR database; past this, the oldest are dropped
 * (and counted): the DR database has been unreachable for a long time */
#define EVENTS_PENDING_MAX 2000

typedef struct event {
	uint64_t seq;    /* order of recording in this process (0: loaded from the database) */
	int64_t time_us; /* wall clock, Unix µs */
	char kind[EVENT_KIND_LEN];
	event_severity_t severity;
	char message[EVENT_MESSAGE_LEN];
	char *detail; /* JSON object text, or NULL; owned by the event */
} event_t;

/* Records an event now. kind is a short snake_case name ("source_lost"),
 * message one sentence for a person (secrets are masked), detail a JSON
 * object with the facts or NULL; the reference to detail is taken over. */
void events_record(const char *kind, event_severity_t severity, json_t *detail, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

const char *events_severity_name(event_severity_t s);

/* Copies the events newer than since_us (0: all kept), oldest first, at most
 * max; returns how many. Each copy's detail is the caller's to free with
 * events_free_copies. */
int events_recent(int64_t since_us, event_t *out, int max);
/* Whether the events stored by earlier runs were read in (a DR database
 * reached since the start). */
bool events_history_loaded(void);
void events_free_copies(event_t *events, int n);

/* {"events":[{"time","kind","severity","message","detail"}...],
 * "history_loaded":bool} of the kept
 * events newer than since_us, oldest first. */
void events_render_json(int64_t since_us, buf_t *out);

/* History thread, on each new DR connection: creates pgferry.events if
 * needed and, the first time, loads the newest stored events into the ring
 * (so a restarted sink shows what came before). */
int events_install(PGconn *conn, pgf_error_t *err);
/* History thread, after events_install: writes the queued events in order.
 * A failure keeps the queue and returns PGF_ERR with err set; the caller
 * retries. */
int events_flush(PGconn *conn, pgf_error_t *err);
/* Deletes events older than retention_ms. */
int events_prune(PGconn *conn, int64_t retention_ms, pgf_error_t *err);

/* Events dropped because the queue was full (for /metrics). */
uint64_t events_dropped(void);
/* Events recorded since the process started, by severity (for /metrics). */
uint64_t events_recorded(event_severity_t s);

/* pgferry_events_total{severity} and pgferry_events_dropped_total. */
void events_render_metrics(buf_t *out);

/* Forgets everything (unit tests). */
void events_reset(void);

/* ---- events found in lag snapshots ---- */

/* How long a new verdict must hold before it is an event: a bound hovering
 * around max_rpo under load would otherwise record one a second. */
#define EVENTS_VERDICT_HOLD_US 3000000
/* How long a source must stay away before it is lost (a reconnection
 * within it is no event). */
#define EVENTS_SOURCE_LOST_GRACE_US 2000000

typedef struct events_watch {
	bool started;
	lag_source_state_t source_state;
	bool source_up;               /* source_connected was the last source event */
	int64_t source_down_since_us; /* 0: connected, or nothing to wait for */
	bool dr_reachable, apply_error, schema_drift, fenced, identity_ok;
	uint64_t apply_errors, clock_faults;
	int64_t clock_event_us; /* the last clock_fault event (snapshot clock) */
	char apply_error_message[200];
	bool slot_warning, stream_refused, stream_blocked;
	bool rpo_guard_engaged;         /* the source's RPO guard, as last seen */
	uint64_t rpo_guard_engagements; /* its count then */
	bool verdict_known;             /* a verdict was recorded */
	verdict_t verdict;              /* the one recorded last */
	verdict_t candidate;
	int64_t candidate_since_us;
} events_watch_t;

/* Records the changes between the previous snapshot w saw and s (the first
 * call only notes what is wrong already). Called by the history thread a few
 * times a second. */
void events_watch(events_watch_t *w, const lag_snapshot_t *s);

#endif
