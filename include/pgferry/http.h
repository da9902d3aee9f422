/*
 * http.h — the sink's HTTP API on http_listen, served by libmicrohttpd in
 * its own thread from lag snapshots, so it answers while apply is stalled:
 *   GET /metrics                 Prometheus text
 *   GET /v1/status               JSON figures and the verdict
 *   GET /v1/promotion-safety     200 safe, 409 unsafe, 503 unknown
 *                                (?max_rpo=1s&max_apply_backlog=0)
 *   GET /healthz                 200 "ok"
 * Any other query parameter is a 400. Admission (limits, request deadline)
 * is described in http.c.
 */
#ifndef PGFERRY_HTTP_H
#define PGFERRY_HTTP_H

#include "pgferry/config.h"
#include "pgferry/error.h"
#include "pgferry/lag.h"

typedef struct http_server http_server_t;

/* cfg and lag must outlive the server. */
http_server_t *http_server_start(const config_t *cfg, lag_tracker_t *lag, pgf_error_t *err);
void http_server_stop(http_server_t *h);

#endif
