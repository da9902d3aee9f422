/*
 * netconn_internal.h — the state of a framed connection and of the sink's
 * listener, shared by the files of netconn (private to relay/transport/;
 * the public face is include/pgferry/netconn.h): netconn.c (addresses, the
 * life of a connection, its watcher, connecting and the TLS handshake),
 * netconn_io.c (the bytes: queued output, frames read) and netconn_listen.c
 * (the sink's side: accepting, and the admission of handshakes in
 * progress).
 */
#ifndef PGFERRY_NETCONN_INTERNAL_H
#define PGFERRY_NETCONN_INTERNAL_H

#include "pgferry/buf.h"
#include "pgferry/netconn.h"

#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>

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

/* netconn.c */
int nc_resolve(const char *address, bool passive, struct addrinfo **res, pgf_error_t *err);
void nc_set_nonblocking(int fd);
netconn_t *nc_new(struct ev_loop *loop, int fd, int64_t max_frame, const netconn_callbacks_t *cb);
void nc_kill(netconn_t *c);
void nc_enter(netconn_t *c);
bool nc_leave(netconn_t *c);
void nc_fail(netconn_t *c, const pgf_error_t *err);
void nc_fail_text(netconn_t *c, int code, const char *fmt, const char *arg);
void nc_update_watcher(netconn_t *c, int events);
void nc_watch_open(netconn_t *c);
void nc_start_secure(netconn_t *c);
void nc_handshake_timeout(struct ev_loop *loop, ev_timer *w, int revents);

/* netconn_io.c */
bool nc_flush(netconn_t *c);
void nc_read(netconn_t *c);

/* netconn_listen.c */
void nc_pending_remove(netconn_t *c);
void nc_report_drop(netconn_listener_t *l, const netconn_t *c, const char *why);

#endif
