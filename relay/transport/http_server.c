/*
 * http_server.c — an HTTP server on libmicrohttpd for the daemons' small
 * APIs (see http_server.h). A hardened parser, a per-connection memory
 * limit and a timeout keep garbage and huge headers away from replication.
 *
 * Admission is ours, so that slow clients cannot silence the API: a thread
 * accepts connections and hands them to libmicrohttpd. At most
 * HTTP_MAX_CLIENTS are served at once, HTTP_MAX_PER_ADDRESS from one
 * address; a client must have sent its whole request head within
 * HTTP_REQUEST_DEADLINE; a new connection past a limit replaces the oldest
 * one that has not (of its address, or of all) instead of being refused.
 * Answers take milliseconds and close the connection, so a failover tool's
 * request is answered however many slow or idle connections are open.
 */
#include "pgferry/http_server.h"

#include "pgferry/log.h"
#include "pgferry/netconn.h"
#include "pgferry/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HTTP_MAX_CLIENTS      64
#define HTTP_MAX_PER_ADDRESS  8
#define HTTP_REQUEST_DEADLINE 2.0 /* s from accept to a complete request head */
#define HTTP_IDLE_TIMEOUT     5   /* s of silence after which libmicrohttpd closes */
/* room for clients shut down but not yet closed by libmicrohttpd */
#define HTTP_SLOTS           (2 * HTTP_MAX_CLIENTS)
#define DROP_REPORT_INTERVAL 10.0

typedef struct http_client {
	bool in_use;
	bool started;      /* libmicrohttpd knows it (its socket context is this) */
	bool request_seen; /* the request head is complete: it is being answered */
	bool dropped;      /* shut down by us; libmicrohttpd closes it next */
	int fd;
	double accepted_at;
	char address[INET6_ADDRSTRLEN];
} http_client_t;

struct http_server {
	struct MHD_Daemon *daemon;
	http_route_t route;
	void *route_arg;
	char what[64]; /* "HTTP API (http_listen)" in log lines */
	int listen_fd;
	pthread_t acceptor;
	bool acceptor_running;
	bool stop;            /* atomic */
	pthread_mutex_t lock; /* clients[], dropped, last_report */
	http_client_t clients[HTTP_SLOTS];
	unsigned long dropped;
	double last_report;
};

/* Under the lock. shutdown(2), not close(2): the socket stays libmicrohttpd's
 * to close, which it does once it sees the end (and tells notify_connection
 * first, so the slot is free before the number can be reused). */
static void drop_client(http_server_t *h, http_client_t *c, const char *why)
{
	double now = util_monotonic_s();

	shutdown(c->fd, SHUT_RDWR);
	c->dropped = true;
	h->dropped++;
	if (now - h->last_report < DROP_REPORT_INTERVAL)
		return;
	if (h->dropped > 1)
		log_warning("%s: dropped %lu slow or idle clients in %.0f s, the last from "
		            "%s: %s",
		            h->what, h->dropped, now - h->last_report, c->address, why);
	else
		log_warning("%s: dropped a client from %s: %s", h->what, c->address, why);
	h->dropped = 0;
	h->last_report = now;
}

/* Under the lock: the oldest client still without a request head, of
 * address (or of all when NULL). */
static http_client_t *oldest_unfinished(http_server_t *h, const char *address)
{
	http_client_t *oldest = NULL;
	int i;

	for (i = 0; i < HTTP_SLOTS; i++) {
		http_client_t *c = &h->clients[i];
		if (!c->in_use || c->dropped || c->request_seen)
			continue;
		if (address && strcmp(c->address, address) != 0)
			continue;
		if (oldest == NULL || c->accepted_at < oldest->accepted_at)
			oldest = c;
	}
	return oldest;
}

/* Under the lock: a slot for a new client from address, making room by
 * dropping an unfinished one if a limit is reached; NULL: refuse it. */
static http_client_t *admit(http_server_t *h, int fd, const char *address)
{
	int i, live = 0, same = 0;
	http_client_t *slot = NULL, *victim = NULL;

	for (i = 0; i < HTTP_SLOTS; i++) {
		http_client_t *c = &h->clients[i];
		if (c->in_use && c->fd == fd)
			c->in_use = false; /* a number libmicrohttpd closed without a word */
		if (!c->in_use) {
			if (slot == NULL)
				slot = c;
			continue;
		}
		if (c->dropped)
			continue;
		live++;
		if (strcmp(c->address, address) == 0)
			same++;
	}
	if (same >= HTTP_MAX_PER_ADDRESS) {
		if ((victim = oldest_unfinished(h, address)) == NULL)
			return NULL;
		drop_client(h, victim, "too many clients from its address; it sent no request");
	} else if (live >= HTTP_MAX_CLIENTS) {
		if ((victim = oldest_unfinished(h, NULL)) == NULL)
			return NULL;
		drop_client(h, victim, "too many clients; it had sent no request the longest");
	}
	if (slot == NULL)
		return NULL;
	memset(slot, 0, sizeof(*slot));
	slot->in_use = true;
	slot->fd = fd;
	slot->accepted_at = util_monotonic_s();
	snprintf(slot->address, sizeof(slot->address), "%s", address);
	return slot;
}

static void sweep(http_server_t *h)
{
	double now = util_monotonic_s();
	int i;

	pthread_mutex_lock(&h->lock);
	for (i = 0; i < HTTP_SLOTS; i++) {
		http_client_t *c = &h->clients[i];
		if (c->in_use && !c->dropped && !c->request_seen &&
		    now - c->accepted_at > HTTP_REQUEST_DEADLINE)
			drop_client(h, c, "no complete request in time");
	}
	pthread_mutex_unlock(&h->lock);
}

static void *acceptor_main(void *arg)
{
	http_server_t *h = arg;

	while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd p = {.fd = h->listen_fd, .events = POLLIN};
		struct sockaddr_storage sa = {0};
		socklen_t sl = sizeof(sa);
		char address[INET6_ADDRSTRLEN] = "?";
		http_client_t *slot;
		int fd;

		sweep(h);
		if (poll(&p, 1, 100) <= 0)
			continue;
		fd = accept(h->listen_fd, (struct sockaddr *)&sa, &sl);
		if (fd < 0)
			continue;
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		if (sa.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, address,
			          sizeof(address));
		else if (sa.ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, address,
			          sizeof(address));
		pthread_mutex_lock(&h->lock);
		slot = admit(h, fd, address);
		pthread_mutex_unlock(&h->lock);
		if (slot == NULL) {
			close(fd); /* every slot busy answering: they finish in milliseconds */
			continue;
		}
		if (MHD_add_connection(h->daemon, fd, (struct sockaddr *)&sa, sl) != MHD_YES) {
			/* libmicrohttpd closed the socket */
			pthread_mutex_lock(&h->lock);
			if (!slot->started)
				slot->in_use = false;
			pthread_mutex_unlock(&h->lock);
		}
	}
	return NULL;
}

static void notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
	http_server_t *h = cls;
	const union MHD_ConnectionInfo *info;
	int i;

	pthread_mutex_lock(&h->lock);
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		for (i = 0; info && i < HTTP_SLOTS; i++) {
			http_client_t *c = &h->clients[i];
			if (c->in_use && !c->started && c->fd == info->connect_fd) {
				c->started = true;
				*socket_context = c;
				break;
			}
		}
	} else if (*socket_context != NULL) {
		((http_client_t *)*socket_context)->in_use = false;
		*socket_context = NULL;
	}
	pthread_mutex_unlock(&h->lock);
}

static void mark_request_seen(http_server_t *h, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info =
	        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	if (info == NULL || info->socket_context == NULL)
		return;
	pthread_mutex_lock(&h->lock);
	((http_client_t *)info->socket_context)->request_seen = true;
	pthread_mutex_unlock(&h->lock);
}

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
	/* one request a connection: nobody holds a slot between requests */
	MHD_add_response_header(r, "Connection", "close");
	rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* The query string, checked strictly: a misspelt, repeated or valueless
 * parameter is an error, never ignored (a typo must not fall back to a
 * default and say "safe"). */
typedef struct query {
	const char *const *names; /* the parameters this URL takes, NULL-terminated */
	const char *values[4];
	char error[256];
} query_t;

static enum MHD_Result query_collect(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
	query_t *q = cls;
	int i;

	(void)kind;
	if (q->error[0])
		return MHD_YES;
	for (i = 0; q->names[i]; i++)
		if (strcmp(key, q->names[i]) == 0)
			break;
	if (q->names[i] == NULL)
		snprintf(q->error, sizeof(q->error), "unknown parameter \"%.64s\"%s%s%s%s", key,
		         q->names[0] ? "; this URL takes " : "; this URL takes none",
		         q->names[0] ? q->names[0] : "", q->names[0] && q->names[1] ? " and " : "",
		         q->names[0] && q->names[1] ? q->names[1] : "");
	else if (q->values[i] != NULL)
		snprintf(q->error, sizeof(q->error), "parameter \"%s\" is given more than once",
		         key);
	else if (value == NULL || value[0] == '\0')
		snprintf(q->error, sizeof(q->error), "parameter \"%s\" has no value", key);
	else
		q->values[i] = value;
	return MHD_YES;
}

bool http_request_query(const http_request_t *req, const char *const *names, const char **values,
                        char *error, size_t error_len)
{
	query_t q;
	int i;

	memset(&q, 0, sizeof(q));
	q.names = names;
	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_collect, &q);
	for (i = 0; i < 4 && names[i]; i++)
		values[i] = q.values[i];
	snprintf(error, error_len, "%s", q.error);
	return q.error[0] == '\0';
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **state)
{
	http_server_t *h = cls;
	http_request_t req = {url, conn};
	http_reply_t reply;
	enum MHD_Result rc;

	(void)version;
	(void)upload;
	if (*state == NULL) {
		/* first call: headers only; answer on the second */
		*state = h;
		mark_request_seen(h, conn);
		return MHD_YES;
	}
	memset(&reply, 0, sizeof(reply));
	buf_init(&reply.body);
	reply.status = MHD_HTTP_OK;
	reply.content_type = "text/plain; charset=utf-8";
	if (*upload_size != 0) {
		*upload_size = 0;
		reply.status = MHD_HTTP_BAD_REQUEST;
		buf_append_str(&reply.body, "no request body expected\n");
	} else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		reply.status = MHD_HTTP_METHOD_NOT_ALLOWED;
		buf_append_str(&reply.body, "only GET\n");
	} else
		h->route(h->route_arg, &req, &reply);
	rc = buf_failed(&reply.body) ? MHD_NO
	                             : respond(conn, reply.status, reply.content_type, &reply.body);
	buf_free(&reply.body);
	return rc;
}

http_server_t *http_server_start(const char *listen_address, const char *key, http_route_t route,
                                 void *arg, pgf_error_t *err)
{
	http_server_t *h;
	struct addrinfo hints, *res = NULL;
	char host[256], port[32];
	int one = 1;

	if (netconn_split_address(listen_address, host, sizeof(host), port, sizeof(port)) !=
	    PGF_OK) {
		error_set(err, PGF_E_CONFIG, "invalid %s \"%s\"", key, listen_address);
		error_hint(err, "Write host:port, e.g. 127.0.0.1:7480.");
		return NULL;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL) {
		error_set(err, PGF_E_CONFIG, "cannot resolve %s \"%s\"", key, listen_address);
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		freeaddrinfo(res);
		error_set(err, PGF_E_MEMORY, "out of memory");
		return NULL;
	}
	h->route = route;
	h->route_arg = arg;
	snprintf(h->what, sizeof(h->what), "HTTP API (%s)", key);
	h->listen_fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (h->listen_fd < 0 ||
	    setsockopt(h->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(h->listen_fd, res->ai_addr, res->ai_addrlen) != 0 ||
	    listen(h->listen_fd, 128) != 0) {
		error_set(err, PGF_E_IO, "could not serve HTTP on %s: %s", listen_address,
		          strerror(errno));
		error_hint(err, "Is the port in use? Change %s.", key);
		freeaddrinfo(res);
		if (h->listen_fd >= 0)
			close(h->listen_fd);
		free(h);
		return NULL;
	}
	freeaddrinfo(res);
	pthread_mutex_init(&h->lock, NULL);
	/* libmicrohttpd's own limit stays above ours: it must never close a
	 * connection we handed it without telling notify_connection */
	h->daemon = MHD_start_daemon(
	        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_NO_LISTEN_SOCKET |
	                MHD_USE_ITC,
	        0, NULL, NULL, handler, h, MHD_OPTION_CONNECTION_LIMIT, (unsigned)(HTTP_SLOTS + 16),
	        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_TIMEOUT,
	        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536, MHD_OPTION_NOTIFY_CONNECTION,
	        notify_connection, h, MHD_OPTION_END);
	if (h->daemon == NULL || pthread_create(&h->acceptor, NULL, acceptor_main, h) != 0) {
		error_set(err, PGF_E_IO, "could not start the HTTP API on %s", listen_address);
		http_server_stop(h);
		return NULL;
	}
	h->acceptor_running = true;
	return h;
}

void http_server_stop(http_server_t *h)
{
	if (h == NULL)
		return;
	__atomic_store_n(&h->stop, true, __ATOMIC_RELEASE);
	if (h->acceptor_running)
		pthread_join(h->acceptor, NULL);
	if (h->daemon)
		MHD_stop_daemon(h->daemon);
	close(h->listen_fd);
	pthread_mutex_destroy(&h->lock);
	free(h);
}
