/*
 * netconn.c — framed connections on libev, TLS or plaintext (netconn.h).
 *
 * One ev_io watcher per connection; its interest follows the state: while
 * connecting, writable; during the TLS handshake, whatever OpenSSL asks for;
 * when open, readable (unless paused) plus writable while output is queued.
 */
#include "pgferry/netconn.h"

#include "pgferry/buf.h"
#include "pgferry/log.h"
#include "pgferry/wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 65536
/* input buffer kept between frames; more is given back after a large one */
#define IN_KEEP (4 * READ_CHUNK)
/* the source: connect and TLS handshake with the sink */
#define HANDSHAKE_TIMEOUT 10.0
/*
 * The sink's admission: a TLS handshake takes a few round trips, so one
 * that is not done within SERVER_HANDSHAKE_TIMEOUT is dropped. At most
 * MAX_PENDING_HANDSHAKES are in progress, MAX_PENDING_PER_ADDRESS of them
 * from one address; a new connection past either limit is not refused but
 * replaces the pending handshake (of that address, or of all) that has been
 * idle longest. A real source finishes in milliseconds, so a flood of
 * connections that never finish can delay it by a retry at most, never
 * keep it out.
 */
#define SERVER_HANDSHAKE_TIMEOUT 3.0
#define MAX_PENDING_HANDSHAKES   64
#define MAX_PENDING_PER_ADDRESS  4
/* drops during a flood are logged at most this often, with a count */
#define DROP_REPORT_INTERVAL 10.0

typedef enum { NC_CONNECTING, NC_HANDSHAKE, NC_OPEN, NC_DEAD } nc_state_t;

struct netconn {
	struct ev_loop *loop;
	int fd;
	SSL *ssl;
	bool server;
	nc_state_t state;
	ev_io io;
	ev_timer handshake_timer;
	buf_t in;
	size_t in_off;
	uint64_t in_consumed; /* stream offset of in.data[0]: bytes of whole frames before it */
	uint64_t frames_in;
	bool peer_v1; /* the peer speaks protocol 1: a refusal goes out in its framing */
	buf_t out;
	size_t out_off;
	int64_t max_frame;
	netconn_callbacks_t cb;
	netconn_listener_t *listener;
	tls_context_t *tls;
	char host[256]; /* client: the name the sink's certificate must carry */
	char peer[384];
	char address[64];        /* server: the client's address, without the port */
	ev_tstamp last_activity; /* server, in the handshake: when it last sent bytes */
	ev_tstamp last_input;    /* open: when bytes (a TLS record) last arrived */
	struct netconn *pending_prev, *pending_next; /* the listener's handshakes */
	bool paused;
	int depth; /* callbacks in progress: free only at depth 0 */
	bool free_pending;
};

struct netconn_listener {
	struct ev_loop *loop;
	int fd;
	ev_io io;
	tls_context_t *tls;
	int64_t max_frame;
	netconn_callbacks_t cb;
	int pending; /* connections still in their handshake */
	netconn_t *pending_head;
	unsigned long dropped; /* handshakes dropped since the last report */
	ev_tstamp last_report;
};

static void nc_update_watcher(netconn_t *c, int events);
static void nc_io(struct ev_loop *loop, ev_io *w, int revents);
static void nc_kill(netconn_t *c);

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

static void pending_remove(netconn_t *c)
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
static void report_drop(netconn_listener_t *l, const netconn_t *c, const char *why)
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
	report_drop(l, idlest,
	            same >= MAX_PENDING_PER_ADDRESS
	                    ? "too many unfinished TLS handshakes from its address"
	                    : "too many unfinished TLS handshakes; it was idle longest");
	nc_kill(idlest);
}

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

static int resolve(const char *address, bool passive, struct addrinfo **res, pgf_error_t *err)
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

static void set_nonblocking(int fd)
{
	int one = 1;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	/* batches are written whole; small acks must not wait for Nagle */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static netconn_t *nc_new(struct ev_loop *loop, int fd, int64_t max_frame,
                         const netconn_callbacks_t *cb)
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
static void nc_kill(netconn_t *c)
{
	if (c->state == NC_DEAD)
		return;
	if (c->listener && c->state == NC_HANDSHAKE)
		pending_remove(c);
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

static void nc_enter(netconn_t *c)
{
	c->depth++;
}

/* true when c is still usable after the callbacks */
static bool nc_leave(netconn_t *c)
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
static void nc_fail(netconn_t *c, const pgf_error_t *err)
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

static void nc_fail_text(netconn_t *c, int code, const char *fmt, const char *arg)
{
	pgf_error_t err;

	error_set(&err, code, fmt, arg);
	error_where(&err, "%s", c->peer);
	nc_fail(c, &err);
}

/* ---- output --------------------------------------------------------------------- */

size_t netconn_queued_bytes(const netconn_t *c)
{
	return c->out.len - c->out_off;
}

/* Writes what it can; returns false if the connection died. */
static bool nc_flush(netconn_t *c)
{
	while (c->out_off < c->out.len) {
		size_t n = c->out.len - c->out_off;
		ssize_t w;
		if (n > (1u << 30))
			n = 1u << 30;
		if (c->ssl) {
			int r;
			ERR_clear_error();
			r = SSL_write(c->ssl, c->out.data + c->out_off, (int)n);
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);
				if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
					break;
				nc_fail_text(c, PGF_E_IO, "TLS write to the peer failed%s", "");
				return false;
			}
			w = r;
		} else {
			w = write(c->fd, c->out.data + c->out_off, n);
			if (w < 0) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				nc_fail_text(c, PGF_E_IO, "write to the peer failed: %s",
				             strerror(errno));
				return false;
			}
		}
		c->out_off += (size_t)w;
	}
	if (c->out_off == c->out.len) {
		buf_reset(&c->out);
		c->out_off = 0;
	} else if (c->out_off > (1u << 20) && c->out_off > c->out.len / 2) {
		memmove(c->out.data, c->out.data + c->out_off, c->out.len - c->out_off);
		c->out.len -= c->out_off;
		c->out_off = 0;
	}
	return true;
}

static void nc_update_watcher(netconn_t *c, int events)
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

static void nc_watch_open(netconn_t *c)
{
	int ev = (c->paused ? 0 : EV_READ) | (netconn_queued_bytes(c) ? EV_WRITE : 0);

	nc_update_watcher(c, ev);
}

int netconn_send(netconn_t *c, uint8_t type, const void *payload, size_t len, pgf_error_t *err)
{
	if (c == NULL || c->state == NC_DEAD)
		return error_set(err, PGF_E_IO, "the connection is closed");
	if ((int64_t)len > c->max_frame)
		return error_set(err, PGF_E_PROTOCOL,
		                 "%s frame of %zu bytes exceeds max_frame_bytes",
		                 wire_type_name(type), len);
	wire_append_header(&c->out, type, (uint32_t)len);
	buf_append(&c->out, payload, len);
	if (buf_failed(&c->out))
		return error_set(err, PGF_E_MEMORY, "out of memory queueing %zu bytes", len);
	if (c->state != NC_OPEN)
		return PGF_OK; /* goes out once open */
	nc_enter(c);
	if (nc_flush(c))
		nc_watch_open(c);
	nc_leave(c);
	return PGF_OK;
}

void netconn_pause(netconn_t *c, bool pause)
{
	if (c == NULL || c->state != NC_OPEN)
		return;
	c->paused = pause;
	nc_watch_open(c);
	if (!pause && c->ssl && SSL_pending(c->ssl) > 0)
		ev_feed_event(c->loop, &c->io, EV_READ);
}

void netconn_close(netconn_t *c, uint16_t code, const char *message)
{
	if (c == NULL || c->state == NC_DEAD)
		return;
	if (code != 0 && c->state == NC_OPEN) {
		wire_error_t e;
		buf_t b;
		e.code = code;
		snprintf(e.message, sizeof(e.message), "%s", message ? message : "");
		buf_init(&b);
		wire_encode_error(&e, &b);
		if (c->peer_v1)
			wire_append_header_v1(&c->out, WIRE_ERROR, (uint32_t)b.len);
		else
			wire_append_header(&c->out, WIRE_ERROR, (uint32_t)b.len);
		buf_append(&c->out, b.data, b.len);
		buf_free(&b);
		nc_enter(c);
		nc_flush(c); /* best effort: the peer learns why */
		if (!nc_leave(c))
			return;
	}
	nc_kill(c);
}

bool netconn_peer_is_v1(const netconn_t *c)
{
	return c->peer_v1;
}

const char *netconn_peer_name(const netconn_t *c)
{
	return c->peer;
}

double netconn_last_input(const netconn_t *c)
{
	return c->last_input;
}

/* ---- input ---------------------------------------------------------------------- */

/*
 * A first frame that fails its check may come from a peer of protocol 1
 * (no check in its headers): say so instead of "damaged", and tell it in
 * its own framing. Returns false to wait for the rest of an old sink's
 * error frame, whose message is the most useful thing to report.
 */
static bool nc_refuse_v1(netconn_t *c, const uint8_t *h, size_t avail, pgf_error_t *err)
{
	uint8_t type;
	uint32_t len;
	wire_error_t e;

	if (c->frames_in > 0 || !wire_header_is_v1(h, avail, c->max_frame, &type, &len))
		return true;
	if (type == WIRE_ERROR && avail - WIRE_V1_HEADER_LEN < len)
		return false;
	c->peer_v1 = true;
	error_set(err, PGF_E_PROTOCOL,
	          "the peer speaks wire protocol 1 (an older pgferry); this one speaks %d",
	          WIRE_PROTOCOL_VERSION);
	if (type == WIRE_ERROR &&
	    wire_decode_error(h + WIRE_V1_HEADER_LEN, len, &e, &(pgf_error_t){0}) == PGF_OK)
		error_detail(err, "Its first frame was an error in protocol 1's framing: %s",
		             e.message);
	else
		error_detail(err,
		             "Its first frame was a %s in protocol 1's framing (no header check).",
		             wire_type_name(type));
	error_hint(err, "Run the same pgferry version on both sides. Nothing was streamed; the "
	                "source retries and its slot keeps everything until then.");
	return true;
}

/* Hands out every complete frame in the buffer. */
static bool nc_parse_frames(netconn_t *c)
{
	while (c->in.len - c->in_off >= WIRE_HEADER_LEN) {
		const uint8_t *h = (const uint8_t *)c->in.data + c->in_off;
		uint8_t type;
		uint32_t len;
		pgf_error_t err;

		if (wire_check_header(h, c->in_consumed + c->in_off, c->max_frame, &type, &len,
		                      &err) != PGF_OK) {
			if (!nc_refuse_v1(c, h, c->in.len - c->in_off, &err))
				break;
			error_where(&err, "%s", c->peer);
			if (c->cb.bad_frame)
				c->cb.bad_frame(c, c->cb.arg, &err);
			nc_fail(c, &err);
			return false;
		}
		if (c->in.len - c->in_off - WIRE_HEADER_LEN < len)
			break;
		c->in_off += WIRE_HEADER_LEN + len;
		c->frames_in++;
		if (c->cb.frame)
			c->cb.frame(c, c->cb.arg, type, h + WIRE_HEADER_LEN, len);
		if (c->state == NC_DEAD || c->paused)
			return c->state != NC_DEAD;
	}
	/* keep the buffer small: move the partial frame to the front */
	if (c->in_off > 0) {
		memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
		c->in.len -= c->in_off;
		c->in_consumed += c->in_off;
		c->in_off = 0;
	}
	/* a large frame grew the buffer: give it back once it has passed */
	if (c->in.cap > IN_KEEP && c->in.len < IN_KEEP / 2)
		buf_shrink(&c->in, IN_KEEP);
	return true;
}

static void nc_read(netconn_t *c)
{
	for (;;) {
		ssize_t n;
		if (c->paused)
			return;
		if (!buf_reserve(&c->in, READ_CHUNK)) {
			nc_fail_text(c, PGF_E_MEMORY, "out of memory reading from the peer%s", "");
			return;
		}
		if (c->ssl) {
			int r;
			ERR_clear_error();
			r = SSL_read(c->ssl, c->in.data + c->in.len, READ_CHUNK);
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
					return;
				if (e == SSL_ERROR_ZERO_RETURN)
					nc_fail_text(c, PGF_E_IO,
					             "the peer closed the connection%s", "");
				else {
					char why[300];
					tls_describe_failure(c->ssl, why, sizeof(why));
					nc_fail_text(c, PGF_E_TLS, "TLS read failed: %s", why);
				}
				return;
			}
			n = r;
		} else {
			n = read(c->fd, c->in.data + c->in.len, READ_CHUNK);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			if (n < 0) {
				nc_fail_text(c, PGF_E_IO, "read from the peer failed: %s",
				             strerror(errno));
				return;
			}
			if (n == 0) {
				nc_fail_text(c, PGF_E_IO, "the peer closed the connection%s", "");
				return;
			}
		}
		c->in.len += (size_t)n;
		c->last_input = ev_now(c->loop);
		if (!nc_parse_frames(c))
			return;
	}
}

/* ---- connection set-up -------------------------------------------------------------- */

static void nc_opened(netconn_t *c)
{
	char subject[256];

	ev_timer_stop(c->loop, &c->handshake_timer);
	if (c->ssl) {
		size_t n = strlen(c->peer);
		tls_peer_subject(c->ssl, subject, sizeof(subject));
		snprintf(c->peer + n, sizeof(c->peer) - n, " (%s)", subject);
	}
	if (c->listener && c->state == NC_HANDSHAKE)
		pending_remove(c);
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
				report_drop(c->listener, c,
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

static void nc_start_secure(netconn_t *c)
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
		nc_start_secure(c);
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

static void nc_handshake_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	netconn_t *c = w->data;

	(void)loop;
	(void)revents;
	if (c->state == NC_OPEN || c->state == NC_DEAD)
		return;
	nc_enter(c);
	if (c->server) {
		report_drop(c->listener, c, "no TLS handshake within the time allowed");
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

	if (resolve(address, false, &res, err) != PGF_OK)
		return NULL;
	netconn_split_address(address, host, sizeof(host), port, sizeof(port));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0)
			continue;
		set_nonblocking(fd);
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
	set_nonblocking(fd);
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

	if (resolve(address, true, &res, err) != PGF_OK)
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
	set_nonblocking(fd);
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
