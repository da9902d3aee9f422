/*
 * http.c — the sink's HTTP API (see http.h): its routes, answered from lag
 * snapshots and the event ring, never from the DR database, so they answer
 * while apply is stalled. The server itself (admission, limits) is
 * http_server.c.
 */
#include "pgferry/http.h"

#include "pgferry/buf.h"
#include "pgferry/build_info.h"
#include "pgferry/events.h"
#include "pgferry/json_out.h"
#include "pgferry/prom.h"
#include "pgferry/status_page.h"
#include "pgferry/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reply_text(http_reply_t *r, unsigned status, const char *text)
{
	r->status = status;
	buf_append_str(&r->body, text);
}

static void reply_bad_request(http_reply_t *r, bool json, const char *why)
{
	r->status = 400;
	if (json) {
		/* {"error": why} and a newline */
		json_t *o = json_object();

		r->content_type = "application/json";
		json_out_set(o, "error", json_out_cstring(why));
		if (json_out_append(&r->body, o) == PGF_OK)
			buf_append_char(&r->body, '\n');
		json_decref(o);
	} else
		buf_printf(&r->body, "%s\n", why);
}

/* Whether the sink does its job now, and if not why (for /healthz and
 * pgferry_up): a source streams and the DR database takes it. */
static bool sink_applying(const lag_snapshot_t *snap, char *why, size_t len)
{
	if (snap->fenced)
		snprintf(why, len, "promoted");
	else if (!snap->dr_reachable)
		snprintf(why, len, "not applying: the DR database is unreachable: %s",
		         snap->apply_error_message);
	else if (snap->apply_error)
		snprintf(why, len, "not applying: apply is stopped by an error: %s",
		         snap->apply_error_message);
	else if (snap->source_state != LAG_SOURCE_CONNECTED)
		snprintf(why, len, "not applying: no source is connected (%s)",
		         lag_source_state_name(snap->source_state));
	else {
		snprintf(why, len, "applying");
		return true;
	}
	return false;
}

/* 200 "applying": up, a source streams, the DR database takes it; 503 "not
 * applying: why": the process is up but nothing is applied now; 410
 * "promoted": this DR database was promoted (README, "HTTP API"). */
static void healthz(const lag_snapshot_t *snap, http_reply_t *r)
{
	char text[1100];

	r->status = sink_applying(snap, text, sizeof(text)) ? 200 : snap->fenced ? 410 : 503;
	buf_printf(&r->body, "%s\n", text);
}

/* Every series carries slot and database (of the stream, once a source
 * said hello), so that one Prometheus tells many relays apart. */
static void metrics(const lag_snapshot_t *snap, http_reply_t *r)
{
	buf_t raw;
	char why[1100];

	buf_init(&raw);
	buf_printf(&raw,
	           "# HELP pgferry_up 1 when the sink applies now (a source streams, the DR "
	           "database takes it, no apply error, not promoted), as /healthz.\n"
	           "# TYPE pgferry_up gauge\npgferry_up %d\n",
	           sink_applying(snap, why, sizeof(why)) ? 1 : 0);
	lag_render_metrics(snap, &raw);
	events_render_metrics(&raw);
	build_info_render_metrics(&raw);
	prom_add_labels(&raw, snap->identity_known ? snap->slot : "",
	                snap->identity_known ? snap->database : "", &r->body);
	buf_free(&raw);
	r->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* The events kept in memory (the last EVENTS_RING), newer than ?since=
 * (a duration: 10min, 1h). */
static void events_page(const char *since, http_reply_t *r)
{
	int64_t since_ms = 0, since_us = 0;

	if (since && (config_parse_duration(since, &since_ms) != PGF_OK || since_ms <= 0)) {
		reply_bad_request(r, true, "since must be a duration such as 10min, 1h or 2d");
		return;
	}
	if (since) {
		if (since_ms > INT64_C(1000000000000)) /* 30 years: all there is */
			since_ms = INT64_C(1000000000000);
		since_us = util_realtime_us() - since_ms * 1000;
	}
	events_render_json(since_us, &r->body);
	r->content_type = "application/json";
}

/* GET /: the page for people, from the same snapshot as /v1/status, the
 * history thread's last hour and the newest events. */
static void status_page(const sink_http_t *h, const lag_snapshot_t *snap, http_reply_t *r)
{
	lag_history_point_t *points = malloc(sizeof(*points) * LAG_HISTORY_POINTS);
	event_t *events = malloc(sizeof(*events) * STATUS_PAGE_EVENTS);
	int npoints = 0, nevents = 0;
	lag_verdict_t v;

	if (points)
		npoints = lag_history_recent(h->history, snap->now_us - 3600000000LL, points,
		                             LAG_HISTORY_POINTS);
	if (events)
		nevents = events_recent(0, events, STATUS_PAGE_EVENTS);
	lag_verdict(snap, -1, -1, &v);
	status_page_render(snap, &v, points, npoints, events, nevents, &r->body);
	r->content_type = "text/html; charset=utf-8";
	if (events)
		events_free_copies(events, nevents);
	free(events);
	free(points);
}

static void promotion_safety(const sink_http_t *h, const lag_snapshot_t *snap, const char *p_rpo,
                             const char *p_bl, http_reply_t *r)
{
	const config_key_t *rpo_key = config_find_key("max_rpo");
	int64_t max_rpo = h->cfg->max_rpo, max_bl = h->cfg->max_apply_backlog;
	char *end = NULL;
	lag_verdict_t v;

	if (p_rpo && (config_parse_duration(p_rpo, &max_rpo) != PGF_OK || max_rpo < 0)) {
		reply_bad_request(r, true, "max_rpo must be a duration such as 500ms, 1s or 2min");
		return;
	}
	if (p_rpo && rpo_key && (max_rpo < rpo_key->min || max_rpo > rpo_key->max)) {
		char why[200];
		snprintf(why, sizeof(why),
		         "max_rpo is out of range: it must be between %" PRId64 " ms and %" PRId64
		         " ms",
		         rpo_key->min, rpo_key->max);
		reply_bad_request(r, true, why);
		return;
	}
	if (p_bl) {
		errno = 0;
		max_bl = strtoll(p_bl, &end, 10);
		if (end == p_bl || *end != '\0' || max_bl < 0 || errno == ERANGE) {
			reply_bad_request(
			        r, true,
			        "max_apply_backlog must be a whole number of transactions");
			return;
		}
	}
	lag_verdict(snap, max_rpo, max_bl, &v);
	lag_render_verdict_json(snap, &v, max_rpo, max_bl, &r->body);
	r->content_type = "application/json";
	r->status = v.verdict == VERDICT_SAFE       ? 200
	            : v.verdict == VERDICT_UNSAFE   ? 409
	            : v.verdict == VERDICT_PROMOTED ? 410
	                                            : 503;
}

static void route(void *arg, const http_request_t *req, http_reply_t *r)
{
	static const char *const verdict_names[] = {"max_rpo", "max_apply_backlog", NULL};
	static const char *const events_names[] = {"since", NULL};
	static const char *const no_names[] = {NULL};
	sink_http_t *h = arg;
	const char *url = req->url;
	bool verdict = strcmp(url, "/v1/promotion-safety") == 0;
	bool events = strcmp(url, "/v1/events") == 0;
	const char *values[4] = {NULL};
	char error[256];
	lag_snapshot_t *snap;

	if (strcmp(url, "/metrics") != 0 && strcmp(url, "/v1/status") != 0 && !verdict &&
	    strcmp(url, "/healthz") != 0 && !events && strcmp(url, "/") != 0) {
		reply_text(r, 404,
		           "not found: try /, /v1/status, /v1/promotion-safety, /v1/events, "
		           "/metrics, /healthz\n");
		return;
	}
	if (!http_request_query(req,
	                        verdict  ? verdict_names
	                        : events ? events_names
	                                 : no_names,
	                        values, error, sizeof(error))) {
		reply_bad_request(r, verdict || events, error);
		return;
	}
	if (events) {
		events_page(values[0], r);
		return;
	}
	if ((snap = malloc(sizeof(*snap))) == NULL) {
		reply_text(r, 500, "out of memory\n");
		return;
	}
	lag_snapshot(h->lag, snap);
	if (strcmp(url, "/") == 0)
		status_page(h, snap, r);
	else if (strcmp(url, "/healthz") == 0)
		healthz(snap, r);
	else if (strcmp(url, "/metrics") == 0)
		metrics(snap, r);
	else if (strcmp(url, "/v1/status") == 0) {
		lag_verdict_t v;
		lag_verdict(snap, -1, -1, &v);
		lag_render_status_json(snap, &v, &r->body);
		r->content_type = "application/json";
	} else
		promotion_safety(h, snap, values[0], values[1], r);
	free(snap);
}

int sink_http_start(sink_http_t *h, const config_t *cfg, lag_tracker_t *lag, lag_history_t *history,
                    pgf_error_t *err)
{
	h->cfg = cfg;
	h->lag = lag;
	h->history = history;
	h->server = http_server_start(cfg->http_listen, "http_listen", route, h, err);
	return h->server ? PGF_OK : PGF_ERR;
}

void sink_http_stop(sink_http_t *h)
{
	http_server_stop(h->server);
	h->server = NULL;
}
