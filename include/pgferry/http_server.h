/*
 * http_server.h — the small HTTP server of the daemons' APIs (the sink's
 * http.c, the source's source_http.c): libmicrohttpd in its own threads,
 * with admission limits so slow clients cannot silence it (http_server.c).
 * Only GET and HEAD, no request body; each answer closes its connection.
 */
#ifndef PGFERRY_HTTP_SERVER_H
#define PGFERRY_HTTP_SERVER_H

#include "pgferry/buf.h"
#include "pgferry/error.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct http_server http_server_t;

/* A request, valid during the route's call. */
typedef struct http_request {
	const char *url;
	void *conn; /* libmicrohttpd's connection */
} http_request_t;

/* What the route answers: status 200 and text/plain unless it says
 * otherwise; the body is the server's to free. */
typedef struct http_reply {
	unsigned status;
	const char *content_type; /* a static string */
	buf_t body;
} http_reply_t;

/* Called in the server's thread for every GET or HEAD. */
typedef void (*http_route_t)(void *arg, const http_request_t *req, http_reply_t *reply);

/* The query parameters, checked strictly: names (NULL-terminated, at most
 * 4) are those the URL takes; values[i] is the value of names[i] or NULL.
 * false, with error saying why, for an unknown, repeated or empty one (a
 * typo must never fall back to a default). */
bool http_request_query(const http_request_t *req, const char *const *names, const char **values,
                        char *error, size_t error_len);

/* Serves route(arg, ...) on listen_address (host:port); key names the
 * setting in errors and log lines. arg must outlive the server. */
http_server_t *http_server_start(const char *listen_address, const char *key, http_route_t route,
                                 void *arg, pgf_error_t *err);
void http_server_stop(http_server_t *h);

#endif
