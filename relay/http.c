/*
 * http.c — the sink's HTTP API on libmicrohttpd (see http.h). A hardened
 * parser, a connection limit, a per-connection memory limit and a timeout
 * keep garbage, huge headers and slow clients away from replication.
 */
#include "pgferry/http.h"

#include "pgferry/buf.h"
#include "pgferry/netconn.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct http_server {
	struct MHD_Daemon *daemon;
	const config_t *cfg;
	lag_tracker_t *lag;
	int port;
};

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *type,
                               buf_t *body)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	r = MHD_create_response_from_buffer(body->len, body->data ? body->data : (char *)"",
	                                    MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
	buf_t b;
	enum MHD_Result rc;

	buf_init(&b);
	buf_append_str(&b, text);
	rc = respond(conn, status, "text/plain; charset=utf-8", &b);
	buf_free(&b);
	return rc;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **state)
{
	http_server_t *h = cls;
	lag_snapshot_t *snap;
	lag_verdict_t v;
	buf_t body;
	enum MHD_Result rc;

	(void)version;
	(void)upload;
	if (*state == NULL) {
		/* first call: headers only; answer on the second */
		*state = h;
		return MHD_YES;
	}
	if (*upload_size != 0) {
		*upload_size = 0;
		return respond_text(conn, MHD_HTTP_BAD_REQUEST, "no request body expected\n");
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n");
	if (strcmp(url, "/healthz") == 0)
		return respond_text(conn, MHD_HTTP_OK, "ok\n");
	if (strcmp(url, "/metrics") != 0 && strcmp(url, "/v1/status") != 0 &&
	    strcmp(url, "/v1/promotion-safety") != 0)
		return respond_text(conn, MHD_HTTP_NOT_FOUND,
		                    "not found: try /v1/status, /v1/promotion-safety, /metrics, "
		                    "/healthz\n");
	snap = malloc(sizeof(*snap));
	if (snap == NULL)
		return MHD_NO;
	lag_snapshot(h->lag, snap);
	buf_init(&body);
	if (strcmp(url, "/metrics") == 0) {
		lag_render_metrics(snap, &body);
		rc = respond(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", &body);
	} else if (strcmp(url, "/v1/status") == 0) {
		lag_verdict(snap, -1, -1, &v);
		lag_render_status_json(snap, &v, &body);
		rc = respond(conn, MHD_HTTP_OK, "application/json", &body);
	} else {
		const char *p_rpo =
		        MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "max_rpo");
		const char *p_bl = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND,
		                                               "max_apply_backlog");
		int64_t max_rpo = h->cfg->max_rpo, max_bl = h->cfg->max_apply_backlog;
		char *end = NULL;
		unsigned status;

		if (p_rpo && (config_parse_duration(p_rpo, &max_rpo) != PGF_OK || max_rpo < 0)) {
			buf_printf(&body,
			           "{\"error\":\"max_rpo must be a duration such as 500ms, 1s "
			           "or 2min\"}\n");
			rc = respond(conn, MHD_HTTP_BAD_REQUEST, "application/json", &body);
			goto done;
		}
		if (p_bl) {
			max_bl = strtoll(p_bl, &end, 10);
			if (end == p_bl || *end != '\0' || max_bl < 0) {
				buf_printf(&body, "{\"error\":\"max_apply_backlog must be a whole "
				                  "number of transactions\"}\n");
				rc = respond(conn, MHD_HTTP_BAD_REQUEST, "application/json", &body);
				goto done;
			}
		}
		lag_verdict(snap, max_rpo, max_bl, &v);
		lag_render_verdict_json(snap, &v, max_rpo, max_bl, &body);
		status = v.verdict == VERDICT_SAFE     ? MHD_HTTP_OK
		         : v.verdict == VERDICT_UNSAFE ? MHD_HTTP_CONFLICT
		                                       : MHD_HTTP_SERVICE_UNAVAILABLE;
		rc = respond(conn, status, "application/json", &body);
	}
done:
	buf_free(&body);
	free(snap);
	return rc;
}

http_server_t *http_server_start(const config_t *cfg, lag_tracker_t *lag, pgf_error_t *err)
{
	http_server_t *h;
	struct addrinfo hints, *res = NULL;
	char host[256], port[32];
	const union MHD_DaemonInfo *info;

	if (netconn_split_address(cfg->http_listen, host, sizeof(host), port, sizeof(port)) !=
	    PGF_OK) {
		error_set(err, PGF_E_CONFIG, "invalid http_listen \"%s\"", cfg->http_listen);
		error_hint(err, "Write host:port, e.g. 127.0.0.1:7480.");
		return NULL;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL) {
		error_set(err, PGF_E_CONFIG, "cannot resolve http_listen \"%s\"", cfg->http_listen);
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		freeaddrinfo(res);
		error_set(err, PGF_E_MEMORY, "out of memory");
		return NULL;
	}
	h->cfg = cfg;
	h->lag = lag;
	h->daemon = MHD_start_daemon(
	        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
	                (res->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0),
	        0, NULL, NULL, handler, h, MHD_OPTION_SOCK_ADDR, res->ai_addr,
	        MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	        (unsigned)16, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
	        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536, MHD_OPTION_END);
	freeaddrinfo(res);
	if (h->daemon == NULL) {
		free(h);
		error_set(err, PGF_E_IO, "could not serve HTTP on %s", cfg->http_listen);
		error_hint(err, "Is the port in use? Change http_listen.");
		return NULL;
	}
	info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info ? info->port : 0;
	return h;
}

void http_server_stop(http_server_t *h)
{
	if (h == NULL)
		return;
	MHD_stop_daemon(h->daemon);
	free(h);
}

int http_server_port(const http_server_t *h)
{
	return h->port;
}
