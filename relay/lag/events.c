/*
 * events.c — the event history (see events.h): recording from any thread,
 * the ring the HTTP thread reads, and the queue the history thread writes
 * to pgferry.events. One mutex; nothing under it waits on I/O except the
 * log line, which is one write(2).
 */
#include "pgferry/events.h"

#include "pgferry/decoder.h"
#include "pgferry/dr_state.h"
#include "pgferry/log.h"
#include "pgferry/util.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct pending {
	event_t event;
	struct pending *next;
} pending_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static event_t ring[EVENTS_RING]; /* oldest first */
static int ring_count;
static pending_t *pending_head, *pending_tail;
static int pending_count;
static uint64_t next_seq = 1;
static uint64_t dropped;
static uint64_t recorded[3];
static bool loaded; /* the stored events were read into the ring */

static const char *const severity_names[] = {"info", "warning", "error"};

const char *events_severity_name(event_severity_t s)
{
	return (unsigned)s < 3 ? severity_names[s] : "info";
}

static event_severity_t severity_parse(const char *name)
{
	int i;

	for (i = 0; i < 3; i++)
		if (strcmp(name, severity_names[i]) == 0)
			return (event_severity_t)i;
	return EVENT_INFO;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Under the lock: appends a copy of e to the ring, dropping the oldest. */
static void ring_push(const event_t *e)
{
	if (ring_count == EVENTS_RING) {
		free(ring[0].detail);
		memmove(ring, ring + 1, sizeof(ring[0]) * (EVENTS_RING - 1));
		ring_count--;
	}
	ring[ring_count] = *e;
	ring[ring_count].detail = dup_or_null(e->detail);
	ring_count++;
}

void events_record(const char *kind, event_severity_t severity, json_t *detail, const char *fmt,
                   ...)
{
	char raw[EVENT_MESSAGE_LEN];
	pending_t *p = calloc(1, sizeof(*p));
	event_t e = {0};
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	/* messages carry text from the database and the configuration */
	log_mask_secrets(raw, e.message, sizeof(e.message));
	snprintf(e.kind, sizeof(e.kind), "%s", kind);
	e.severity = severity;
	e.time_us = util_realtime_us();
	if (detail) {
		e.detail = json_dumps(detail, JSON_COMPACT);
		json_decref(detail);
	}
	log_write(severity == EVENT_ERROR     ? LOG_ERROR
	          : severity == EVENT_WARNING ? LOG_WARNING
	                                      : LOG_INFO,
	          "event %s: %s", e.kind, e.message);

	pthread_mutex_lock(&lock);
	e.seq = next_seq++;
	recorded[(unsigned)severity < 3 ? severity : 0]++;
	ring_push(&e);
	if (p == NULL) {
		dropped++;
		free(e.detail);
	} else {
		if (pending_count == EVENTS_PENDING_MAX) {
			pending_t *old = pending_head;
			pending_head = old->next;
			free(old->event.detail);
			free(old);
			pending_count--;
			dropped++;
		}
		p->event = e;
		if (pending_tail && pending_head)
			pending_tail->next = p;
		else
			pending_head = p;
		pending_tail = p;
		pending_count++;
	}
	pthread_mutex_unlock(&lock);
}

bool events_history_loaded(void)
{
	bool l;

	pthread_mutex_lock(&lock);
	l = loaded;
	pthread_mutex_unlock(&lock);
	return l;
}

int events_recent(int64_t since_us, event_t *out, int max)
{
	int i, first, n = 0;

	pthread_mutex_lock(&lock);
	for (first = 0; first < ring_count && ring[first].time_us <= since_us; first++)
		;
	if (ring_count - first > max)
		first = ring_count - max;
	for (i = first; i < ring_count; i++) {
		out[n] = ring[i];
		out[n].detail = dup_or_null(ring[i].detail);
		n++;
	}
	pthread_mutex_unlock(&lock);
	return n;
}

void events_free_copies(event_t *events, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		free(events[i].detail);
		events[i].detail = NULL;
	}
}

void events_render_json(int64_t since_us, buf_t *out)
{
	event_t *copies = malloc(sizeof(*copies) * EVENTS_RING);
	json_t *doc = json_object(), *list = json_array();
	char *text;
	int i, n = copies ? events_recent(since_us, copies, EVENTS_RING) : 0;

	for (i = 0; i < n; i++) {
		json_t *e = json_object(), *msg;
		char when[40];

		pgtime_format_iso(unix_us_to_pgtime(copies[i].time_us), when);
		json_object_set_new(e, "time", json_string(when));
		json_object_set_new(e, "kind", json_string(copies[i].kind));
		json_object_set_new(e, "severity",
		                    json_string(events_severity_name(copies[i].severity)));
		/* json_string refuses invalid UTF-8: such text is kept, escaped */
		msg = json_string(copies[i].message);
		json_object_set_new(e, "message",
		                    msg ? msg : json_string("(a message that is not UTF-8)"));
		json_object_set_new(e, "detail",
		                    copies[i].detail ? json_loads(copies[i].detail, 0, NULL)
		                                     : json_null());
		json_array_append_new(list, e);
	}
	json_object_set_new(doc, "events", list);
	/* false until the events stored by earlier runs were read from the DR
	 * database: until then the list has only this run's */
	json_object_set_new(doc, "history_loaded", json_boolean(events_history_loaded()));
	text = json_dumps(doc, JSON_COMPACT);
	buf_append_str(out, text ? text : "{\"events\":[]}");
	buf_append_char(out, '\n');
	free(text);
	json_decref(doc);
	if (copies)
		events_free_copies(copies, n);
	free(copies);
}

static int pq_fail(PGresult *res, const char *what, pgf_error_t *err)
{
	error_set(err, PGF_E_DATABASE, "%s: %s", what, PQresultErrorMessage(res));
	PQclear(res);
	return PGF_ERR;
}

static int events_insert(PGconn *conn, int64_t time_us, const char *kind, event_severity_t severity,
                         const char *message, const char *detail, pgf_error_t *err)
{
	char at[32];
	const char *p[5] = {at, kind, events_severity_name(severity), message, detail};
	PGresult *res;

	snprintf(at, sizeof(at), "%" PRId64, time_us);
	res = PQexecParams(conn,
	                   "INSERT INTO pgferry.events (at, kind, severity, message, detail) "
	                   "VALUES (to_timestamp(0) + $1::bigint * interval '1 microsecond', "
	                   "$2, $3, $4, $5::jsonb)",
	                   5, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return pq_fail(res, "could not record an event in pgferry.events", err);
	PQclear(res);
	return PGF_OK;
}

/* Reads the newest stored events into the ring, before those of this run. */
static int load_stored(PGconn *conn, pgf_error_t *err)
{
	PGresult *res = PQexec(conn, "SELECT (extract(epoch FROM at) * 1000000)::bigint, kind, "
	                             "severity, message, detail::text FROM (SELECT * FROM "
	                             "pgferry.events ORDER BY id DESC LIMIT 100) e ORDER BY id");
	event_t *old;
	int i, n, keep;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return pq_fail(res, "could not read pgferry.events", err);
	n = PQntuples(res);
	pthread_mutex_lock(&lock);
	if (loaded) {
		pthread_mutex_unlock(&lock);
		PQclear(res);
		return PGF_OK;
	}
	/* only once, before the first flush: nothing of this run is stored yet */
	keep = n + ring_count > EVENTS_RING ? EVENTS_RING - ring_count : n;
	old = calloc((size_t)(keep > 0 ? keep : 1), sizeof(*old));
	if (old) {
		for (i = 0; i < keep; i++) {
			int r = n - keep + i;
			old[i].time_us = strtoll(PQgetvalue(res, r, 0), NULL, 10);
			snprintf(old[i].kind, sizeof(old[i].kind), "%s", PQgetvalue(res, r, 1));
			old[i].severity = severity_parse(PQgetvalue(res, r, 2));
			snprintf(old[i].message, sizeof(old[i].message), "%s",
			         PQgetvalue(res, r, 3));
			old[i].detail =
			        PQgetisnull(res, r, 4) ? NULL : strdup(PQgetvalue(res, r, 4));
		}
		memmove(ring + keep, ring, sizeof(ring[0]) * (size_t)ring_count);
		memcpy(ring, old, sizeof(ring[0]) * (size_t)keep);
		ring_count += keep;
		loaded = true;
	}
	pthread_mutex_unlock(&lock);
	free(old);
	PQclear(res);
	return PGF_OK;
}

int events_install(PGconn *conn, pgf_error_t *err)
{
	if (dr_state_run(conn, pgferry_sql_dr_events, "the event history (sql/dr_events.sql)",
	                 err) != PGF_OK)
		return PGF_ERR;
	return load_stored(conn, err);
}

int events_flush(PGconn *conn, pgf_error_t *err)
{
	for (;;) {
		event_t e;
		uint64_t seq;

		pthread_mutex_lock(&lock);
		if (pending_head == NULL) {
			pthread_mutex_unlock(&lock);
			return PGF_OK;
		}
		e = pending_head->event;
		e.detail = dup_or_null(e.detail);
		seq = e.seq;
		pthread_mutex_unlock(&lock);

		if (events_insert(conn, e.time_us, e.kind, e.severity, e.message, e.detail, err) !=
		    PGF_OK) {
			free(e.detail);
			return PGF_ERR;
		}
		free(e.detail);
		/* the head may have been dropped meanwhile (queue full): pop only it */
		pthread_mutex_lock(&lock);
		if (pending_head && pending_head->event.seq == seq) {
			pending_t *p = pending_head;
			pending_head = p->next;
			if (pending_head == NULL)
				pending_tail = NULL;
			pending_count--;
			free(p->event.detail);
			free(p);
		}
		pthread_mutex_unlock(&lock);
	}
}

int events_prune(PGconn *conn, int64_t retention_ms, pgf_error_t *err)
{
	char ms[32];
	const char *p[1] = {ms};
	PGresult *res;

	snprintf(ms, sizeof(ms), "%" PRId64, retention_ms);
	res = PQexecParams(conn,
	                   "DELETE FROM pgferry.events WHERE at < clock_timestamp() - "
	                   "make_interval(secs => $1::double precision / 1000)",
	                   1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return pq_fail(res, "could not prune pgferry.events", err);
	PQclear(res);
	return PGF_OK;
}

uint64_t events_dropped(void)
{
	uint64_t n;

	pthread_mutex_lock(&lock);
	n = dropped;
	pthread_mutex_unlock(&lock);
	return n;
}

uint64_t events_recorded(event_severity_t s)
{
	uint64_t n;

	pthread_mutex_lock(&lock);
	n = recorded[(unsigned)s < 3 ? s : 0];
	pthread_mutex_unlock(&lock);
	return n;
}

void events_reset(void)
{
	int i;

	pthread_mutex_lock(&lock);
	for (i = 0; i < ring_count; i++)
		free(ring[i].detail);
	ring_count = 0;
	while (pending_head) {
		pending_t *p = pending_head;
		pending_head = p->next;
		free(p->event.detail);
		free(p);
	}
	pending_tail = NULL;
	pending_count = 0;
	dropped = 0;
	memset(recorded, 0, sizeof(recorded));
	loaded = false;
	pthread_mutex_unlock(&lock);
}

void events_render_metrics(buf_t *out)
{
	int i;

	buf_append_str(out, "# HELP pgferry_events_total Events recorded since the process "
	                    "started (pgferry events), by severity.\n"
	                    "# TYPE pgferry_events_total counter\n");
	for (i = 0; i < 3; i++)
		buf_printf(out, "pgferry_events_total{severity=\"%s\"} %" PRIu64 "\n",
		           severity_names[i], events_recorded((event_severity_t)i));
	buf_printf(out,
	           "# HELP pgferry_events_dropped_total Events not written to the DR database: "
	           "more than %d waited while it was unreachable.\n"
	           "# TYPE pgferry_events_dropped_total counter\npgferry_events_dropped_total "
	           "%" PRIu64 "\n",
	           EVENTS_PENDING_MAX, events_dropped());
}
