/*
 * netconn.c — framed connections on libev, TLS or plaintext (netconn.h).
 *
 * One ev_io watcher per connection; its interest follows the state: while
 * connecting, writable; during the TLS handshake, whatever OpenSSL asks for;
 * when open, readable (unless paused) plus writable while output is queued.
 *
 * This file: addresses, the life of a connection (created, failed, killed,
 * freed only when no callback runs), its watcher, connecting and the TLS
 * handshake. The bytes are in netconn_io.c, the sink's listener and its
 * admission of handshakes in netconn_listen.c (netconn_internal.h).
 */
#include "netconn_internal.h"

#include "pgferry/log.h"
#include "pgferry/wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void nc_io(struct ev_loop *loop, ev_io *w, int revents);

int netconn_split_address(const char *address, char *host, size_t host_len, char *port,
                          size_t port_len)
{
	const char *colon;
	size_t n;

	if (address == NULL)
		return PGF_ERR;
	if (address[0] == '[') {
		const char *close = strchr(address, ']');
		if (close == NULL || close[1] != ':')
			return PGF_ERR;
		n = (size_t)(close - address - 1);
		colon = close + 1;
		address++;
	} else {
		colon = strrchr(address, ':');
		if (colon == NULL)
			return PGF_ERR;
		n = (size_t)(colon - address);
	}
	if (n == 0 || n >= host_len || strlen(colon + 1) == 0 || strlen(colon + 1) >= port_len)
		return PGF_ERR;
	memcpy(host, address, n);
	host[n] = '\0';
	snprintf(port, port_len, "%s", colon + 1);
	return PGF_OK;
}

bool netconn_address_is_loopback(const char *address)
{
	char host[256], port[32];
	struct in_addr a4;
	struct in6_addr a6;

	if (netconn_split_address(address, host, sizeof(host), port, sizeof(port)) != PGF_OK)
		return false;
	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

int nc_resolve(const char *address, bool passive, struct addrinfo **res, pgf_error_t *err)
{
	char host[256], port[32];
	struct addrinfo hints;
	int rc;

	if (netconn_split_address(address, host, sizeof(host), port, sizeof(port)) != PGF_OK) {
		error_set(err, PGF_E_CONFIG, "invalid address \"%s\"", address);
		error_hint(err, "Write host:port, or [address]:port for IPv6.");
		return PGF_ERR;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = passive ? AI_PASSIVE : 0;
	rc = getaddrinfo(host, port, &hints, res);
	if (rc != 0) {
		error_set(err, PGF_E_CONFIG, "could not resolve \"%s\": %s", address,
		          gai_strerror(rc));
		return PGF_ERR;
	}
	return PGF_OK;
}

void nc_set_nonblocking(int fd)
{
	int one = 1;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	/* batches are written whole; small acks must not wait for Nagle */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

netconn_t *nc_new(struct ev_loop *loop, int fd, int64_t max_frame, const netconn_callbacks_t *cb)
{
	netconn_t *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->loop = loop;
	c->fd = fd;
	c->max_frame = max_frame;
	c->cb = *cb;
	buf_init(&c->in);
	buf_init(&c->out);
	ev_io_init(&c->io, nc_io, fd, 0);
	c->io.data = c;
	return c;
}

static void nc_free(netconn_t *c)
{
	ev_io_stop(c->loop, &c->io);
	ev_timer_stop(c->loop, &c->handshake_timer);
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
}

/* Tears the connection down now; the memory goes when no callback runs. */
void nc_kill(netconn_t *c)
{
	if (c->state == NC_DEAD)
		return;
	if (c->listener && c->state == NC_HANDSHAKE)
		nc_pending_remove(c);
	c->state = NC_DEAD;
	ev_io_stop(c->loop, &c->io);
	ev_timer_stop(c->loop, &c->handshake_timer);
	if (c->ssl) {
		SSL_shutdown(c->ssl); /* best effort, non-blocking */
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->depth == 0)
		nc_free(c);
	else
		c->free_pending = true;
}

void nc_enter(netconn_t *c)
{
	c->depth++;
}

/* true when c is still usable after the callbacks */
bool nc_leave(netconn_t *c)
{
	c->depth--;
	if (c->depth == 0 && c->free_pending) {
		nc_free(c);
		return false;
	}
	return c->state != NC_DEAD;
}

/* A close the owner did not ask for: tell it, then kill. A server-side
 * connection the owner never accepted is closed without a word to it. */
void nc_fail(netconn_t *c, const pgf_error_t *err)
{
	bool report;

	if (c->state == NC_DEAD)
		return;
	report = c->cb.closed && (c->state == NC_OPEN || !c->server);
	nc_enter(c);
	if (report)
		c->cb.closed(c, c->cb.arg, err);
	/* depth > 0 here (nc_enter above): nc_kill defers the free to nc_leave */
	nc_kill(c);  // NOLINT(clang-analyzer-unix.Malloc)
	nc_leave(c); // NOLINT(clang-analyzer-unix.Malloc)
}

void nc_fail_text(netconn_t *c, int code, const char *fmt, const char *arg)
{
	pgf_error_t err;

	error_set(&err, code, fmt, arg);
	error_where(&err, "%s", c->peer);
	nc_fail(c, &err);
}

void nc_update_watcher(netconn_t *c, int events)
{
	if (c->state == NC_DEAD)
		return;
	if (c->io.events == events && ev_is_active(&c->io))
		return;
	ev_io_stop(c->loop, &c->io);
	if (events) {
		ev_io_set(&c->io, c->fd, events);
		ev_io_start(c->loop, &c->io);
	}
}

void nc_watch_open(netconn_t *c)
{
	int ev = (c->paused ? 0 : EV_READ) | (netconn_queued_bytes(c) ? EV_WRITE : 0);

	nc_update_watcher(c, ev);
}

bool netconn_peer_is_v1(const netconn_t *c)
{
	return c->peer_v1;
}

bool netconn_early_stream(const netconn_t *c)
{
	return c->ssl != NULL && tls_early_stream(c->ssl);
}

const char *netconn_peer_name(const netconn_t *c)
{
	return c->peer;
}

double netconn_last_input(const netconn_t *c)
{
	return c->last_input;
}

/* ---- connection set-up -------------------------------------------------------------- */

static void nc_opened(netconn_t *c)
{
	char subject[256];

	ev_timer_stop(c->loop, &c->handshake_timer);
	log_step("%s with %s", c->ssl ? "TLS handshake done" : "connection open", c->peer);
	if (c->ssl) {
		size_t n = strlen(c->peer);
		tls_peer_subject(c->ssl, subject, sizeof(subject));
		snprintf(c->peer + n, sizeof(c->peer) - n, " (%s)", subject);
	}
	if (c->listener && c->state == NC_HANDSHAKE)
		nc_pending_remove(c);
	c->state = NC_OPEN;
	if (c->server) {
		if (c->cb.accept && !c->cb.accept(c, c->cb.arg)) {
			netconn_close(c, WIRE_ERR_BUSY, "another source is connected to this sink");
			return;
		}
	} else if (c->cb.connected)
		c->cb.connected(c, c->cb.arg);
	if (c->state != NC_OPEN)
		return;
	if (!nc_flush(c))
		return;
	nc_watch_open(c);
	nc_read(c);
}

static void nc_handshake(netconn_t *c)
{
	int r, e;

	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		nc_opened(c);
		return;
	}
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		nc_update_watcher(c, EV_READ);
		return;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		nc_update_watcher(c, EV_WRITE);
		return;
	}
	{
		char why[400];
		tls_describe_failure(c->ssl, why, sizeof(why));
		if (c->server) {
			/* a stranger (or a misconfigured source): refuse and say why; one
			 * that just hung up is counted with the flood, not logged each */
			if (strstr(why, "unexpected eof") || strstr(why, "closed the connection"))
				nc_report_drop(c->listener, c,
				               "it closed the connection in the TLS handshake");
			else
				log_warning(
				        "refused a connection from %s: TLS handshake failed: %s",
				        c->peer, why);
			nc_kill(c);
		} else {
			pgf_error_t err;
			long verify = SSL_get_verify_result(c->ssl);
			/* say which side objected, or that nobody did: a sink that drops
			 * unfinished handshakes (busy, restarting) is no certificate problem */
			if (verify != X509_V_OK) {
				error_set(&err, PGF_E_TLS, "the sink's certificate was refused: %s",
				          why);
				error_hint(&err,
				           "Check that tls_ca signs the sink's certificate and "
				           "that tls_peer_name (or the host of sink_address) is "
				           "a name it carries.");
			} else if (strstr(why, "alert") != NULL) {
				error_set(&err, PGF_E_TLS,
				          "the sink refused this source's certificate: %s", why);
				error_hint(&err,
				           "Check that the sink's tls_ca signs tls_cert and that "
				           "the sink's tls_peer_name is a name tls_cert carries; "
				           "the sink's log says which.");
			} else {
				error_set(
				        &err, PGF_E_IO,
				        "the sink closed the connection during the TLS handshake: "
				        "%s",
				        why);
				error_hint(
				        &err,
				        "No certificate was refused. The sink drops handshakes "
				        "that stall or come in a flood, or was restarting; pgferry "
				        "retries by itself. If this persists, see the sink's log.");
			}
			error_where(&err, "%s", c->peer);
			nc_fail(c, &err);
		}
	}
}

void nc_start_secure(netconn_t *c)
{
	pgf_error_t err;

	if (c->tls == NULL) {
		nc_opened(c);
		return;
	}
	c->ssl = tls_session_new(c->tls, c->fd, c->server ? NULL : c->host, &err);
	if (c->ssl == NULL) {
		nc_fail(c, &err);
		return;
	}
	c->state = NC_HANDSHAKE;
	nc_handshake(c);
}

static void nc_io(struct ev_loop *loop, ev_io *w, int revents)
{
	netconn_t *c = w->data;

	(void)loop;
	nc_enter(c);
	switch (c->state) {
	case NC_CONNECTING: {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr != 0) {
			pgf_error_t err;
			error_set(&err, PGF_E_IO, "could not connect to the sink at %s: %s",
			          c->peer, strerror(soerr));
			error_hint(&err, "Check sink_address and that the sink runs; pgferry "
			                 "retries by itself.");
			nc_fail(c, &err);
			break;
		}
		log_step("TCP connected to %s", c->peer);
		nc_start_secure(c);
		/* the client's first flight is out: the owner may work meanwhile */
		if (c->state == NC_HANDSHAKE && c->cb.handshaking)
			c->cb.handshaking(c, c->cb.arg);
		break;
	}
	case NC_HANDSHAKE:
		if (revents & EV_READ)
			c->last_activity = ev_now(c->loop);
		nc_handshake(c);
		break;
	case NC_OPEN:
		if (revents & EV_WRITE) {
			if (!nc_flush(c))
				break;
			if (netconn_queued_bytes(c) == 0 && c->cb.writable)
				c->cb.writable(c, c->cb.arg);
			if (c->state != NC_OPEN)
				break;
		}
		if (revents & EV_READ)
			nc_read(c);
		/* still allocated: nc_enter above defers any free to nc_leave */
		if (c->state == NC_OPEN) // NOLINT(clang-analyzer-unix.Malloc)
			nc_watch_open(c);
		break;
	case NC_DEAD:
		break;
	}
	nc_leave(c); // NOLINT(clang-analyzer-unix.Malloc)
}

void nc_handshake_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	netconn_t *c = w->data;

	(void)loop;
	(void)revents;
	if (c->state == NC_OPEN || c->state == NC_DEAD)
		return;
	nc_enter(c);
	if (c->server) {
		nc_report_drop(c->listener, c, "no TLS handshake within the time allowed");
		nc_kill(c);
	} else {
		pgf_error_t err;
		error_set(&err, PGF_E_IO, "connecting to the sink at %s timed out", c->peer);
		nc_fail(c, &err);
	}
	nc_leave(c); // NOLINT(clang-analyzer-unix.Malloc): freed only here, at depth 0
}

netconn_t *netconn_connect(struct ev_loop *loop, const char *address, tls_context_t *tls,
                           int64_t max_frame_bytes, const netconn_callbacks_t *cb, pgf_error_t *err)
{
	struct addrinfo *res, *ai;
	netconn_t *c;
	int fd = -1;
	char host[256], port[32];

	if (nc_resolve(address, false, &res, err) != PGF_OK)
		return NULL;
	netconn_split_address(address, host, sizeof(host), port, sizeof(port));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0)
			continue;
		nc_set_nonblocking(fd);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		error_set(err, PGF_E_IO, "could not connect to the sink at %s: %s", address,
		          strerror(errno));
		return NULL;
	}
	c = nc_new(loop, fd, max_frame_bytes, cb);
	if (c == NULL) {
		close(fd);
		error_set(err, PGF_E_MEMORY, "out of memory");
		return NULL;
	}
	snprintf(c->peer, sizeof(c->peer), "%s", address);
	snprintf(c->host, sizeof(c->host), "%s", host);
	c->tls = tls;
	c->state = NC_CONNECTING;
	ev_timer_init(&c->handshake_timer, nc_handshake_timeout, HANDSHAKE_TIMEOUT, 0.0);
	c->handshake_timer.data = c;
	ev_timer_start(loop, &c->handshake_timer);
	nc_update_watcher(c, EV_WRITE);
	return c;
}
