/*
 * http.h — the sink's HTTP API on http_listen, served by http_server.h in
 * its own threads from lag snapshots, so it answers while apply is stalled:
 *   GET /                        the status page for people (status_page.h)
 *   GET /metrics                 Prometheus text (labels slot, database)
 *   GET /v1/status               JSON figures and the verdict
 *   GET /v1/promotion-safety     200 safe, 409 unsafe, 503 unknown
 *                                (?max_rpo=1s&max_apply_backlog=0)
 *   GET /v1/events               the event history's last events (?since=1h)
 *   GET /healthz                 200 "applying", 503 "not applying: why", 410
 * Any other query parameter is a 400. Admission (limits, request deadline)
 * is described in http_server.c.
 */
#ifndef PGFERRY_HTTP_H
#define PGFERRY_HTTP_H

#include "pgferry/config.h"
#include "pgferry/error.h"
#include "pgferry/http_server.h"
#include "pgferry/lag.h"
#include "pgferry/lag_history.h"

typedef struct sink_http {
	const config_t *cfg;
	lag_tracker_t *lag;
	lag_history_t *history; /* the status page's chart (may be NULL) */
	http_server_t *server;
} sink_http_t;

/* Serves the API on cfg->http_listen; h, cfg, lag and history must outlive
 * it. */
int sink_http_start(sink_http_t *h, const config_t *cfg, lag_tracker_t *lag, lag_history_t *history,
                    pgf_error_t *err);
void sink_http_stop(sink_http_t *h);

#endif
