/*
 * netconn_listen.c — the sink's side of netconn (netconn.h): the listening
 * socket, accepting, and the admission of TLS handshakes in progress (how
 * many, from where, and which one goes to make room; see
 * MAX_PENDING_HANDSHAKES). The connection's state is in netconn_internal.h.
 */
#include "netconn_internal.h"

#include "pgferry/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the sink's handshakes in progress ------------------------------------------ */

static void pending_add(netconn_listener_t *l, netconn_t *c)
{
	c->pending_prev = NULL;
	c->pending_next = l->pending_head;
	if (l->pending_head)
		l->pending_head->pending_prev = c;
	l->pending_head = c;
	l->pending++;
}

void nc_pending_remove(netconn_t *c)
{
	netconn_listener_t *l = c->listener;

	if (c->pending_prev)
		c->pending_prev->pending_next = c->pending_next;
	else
		l->pending_head = c->pending_next;
	if (c->pending_next)
		c->pending_next->pending_prev = c->pending_prev;
	c->pending_prev = c->pending_next = NULL;
	l->pending--;
}

/* A flood must not flood the log: the first drop after a quiet spell is
 * logged, then a count at most every DROP_REPORT_INTERVAL. */
void nc_report_drop(netconn_listener_t *l, const netconn_t *c, const char *why)
{
	ev_tstamp now = ev_now(l->loop);

	l->dropped++;
	if (now - l->last_report < DROP_REPORT_INTERVAL)
		return;
	if (l->dropped > 1)
		log_warning("dropped %lu unfinished TLS handshakes in %.0f s, the last from %s: %s",
		            l->dropped, now - l->last_report, c->peer, why);
	else
		log_warning("dropped a connection from %s: %s", c->peer, why);
	l->dropped = 0;
	l->last_report = now;
}

/* Makes room for a connection from address: the handshake idle longest (of
 * that address when it has its share, else of all) goes. */
static void pending_make_room(netconn_listener_t *l, const char *address)
{
	netconn_t *c, *idlest = NULL;
	int same = 0;

	for (c = l->pending_head; c; c = c->pending_next)
		if (strcmp(c->address, address) == 0) {
			same++;
			if (idlest == NULL || c->last_activity <= idlest->last_activity)
				idlest = c;
		}
	if (same < MAX_PENDING_PER_ADDRESS) {
		if (l->pending < MAX_PENDING_HANDSHAKES)
			return;
		idlest = NULL;
		for (c = l->pending_head; c; c = c->pending_next)
			if (idlest == NULL || c->last_activity <= idlest->last_activity)
				idlest = c;
	}
	if (idlest == NULL)
		return;
	nc_report_drop(l, idlest,
	               same >= MAX_PENDING_PER_ADDRESS
	                       ? "too many unfinished TLS handshakes from its address"
	                       : "too many unfinished TLS handshakes; it was idle longest");
	nc_kill(idlest);
}

static int port_of(const struct sockaddr_storage *sa)
{
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;

	if (sa->ss_family == AF_INET) {
		memcpy(&in4, sa, sizeof(in4));
		return ntohs(in4.sin_port);
	}
	if (sa->ss_family == AF_INET6) {
		memcpy(&in6, sa, sizeof(in6));
		return ntohs(in6.sin6_port);
	}
	return 0;
}

static void listener_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	netconn_listener_t *l = w->data;
	struct sockaddr_storage sa = {0};
	socklen_t sl = sizeof(sa);
	char host[INET6_ADDRSTRLEN] = "?";
	int fd;
	netconn_t *c;

	(void)revents;
	fd = accept(l->fd, (struct sockaddr *)&sa, &sl);
	if (fd < 0)
		return;
	if (sa.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, host, sizeof(host));
	else if (sa.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, host, sizeof(host));
	pending_make_room(l, host);
	nc_set_nonblocking(fd);
	c = nc_new(loop, fd, l->max_frame, &l->cb);
	if (c == NULL) {
		close(fd);
		return;
	}
	c->server = true;
	c->listener = l;
	snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port_of(&sa));
	snprintf(c->address, sizeof(c->address), "%s", host);
	c->last_activity = ev_now(loop);
	c->tls = l->tls;
	ev_timer_init(&c->handshake_timer, nc_handshake_timeout, SERVER_HANDSHAKE_TIMEOUT, 0.0);
	c->handshake_timer.data = c;
	ev_timer_start(loop, &c->handshake_timer);
	c->state = NC_HANDSHAKE;
	log_step("accepted a TCP connection from %s", c->peer);
	pending_add(l, c);
	nc_enter(c);
	nc_start_secure(c);
	nc_leave(c); // NOLINT(clang-analyzer-unix.Malloc): freed only here, at depth 0
}

netconn_listener_t *netconn_listen(struct ev_loop *loop, const char *address, tls_context_t *tls,
                                   int64_t max_frame_bytes, const netconn_callbacks_t *cb,
                                   pgf_error_t *err)
{
	struct addrinfo *res, *ai;
	netconn_listener_t *l;
	int fd = -1, one = 1;

	if (nc_resolve(address, true, &res, err) != PGF_OK)
		return NULL;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		error_set(err, PGF_E_IO, "could not listen on %s: %s", address, strerror(errno));
		error_hint(err, "Is another process using that port (listen_address)?");
		return NULL;
	}
	nc_set_nonblocking(fd);
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		close(fd);
		error_set(err, PGF_E_MEMORY, "out of memory");
		return NULL;
	}
	l->loop = loop;
	l->fd = fd;
	l->tls = tls;
	l->max_frame = max_frame_bytes;
	l->cb = *cb;
	ev_io_init(&l->io, listener_accept, fd, EV_READ);
	l->io.data = l;
	ev_io_start(loop, &l->io);
	return l;
}

void netconn_listener_free(netconn_listener_t *l)
{
	if (l == NULL)
		return;
	ev_io_stop(l->loop, &l->io);
	close(l->fd);
	free(l);
}
