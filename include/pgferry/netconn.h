/*
 * netconn.h — a framed, non-blocking connection on libev, over TLS or (on
 * loopback only) plaintext: the sink listens, the source connects.
 *
 * Frames are wire.h's (type, length, payload). Incoming frames are handed
 * to the frame callback with the payload valid during the call only. Sends
 * are queued without limit here; callers apply backpressure by asking
 * netconn_queued_bytes. Callbacks may call netconn_close on their own
 * connection: freeing is deferred until the callback returns.
 *
 * Ownership: a netconn_t belongs to the library. After the closed callback
 * (a close the peer or an error caused) or after netconn_close (the owner's
 * own), the pointer must not be used again.
 */
#ifndef PGFERRY_NETCONN_H
#define PGFERRY_NETCONN_H

#include "pgferry/error.h"
#include "pgferry/tls.h"

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct netconn netconn_t;
typedef struct netconn_listener netconn_listener_t;

typedef struct netconn_callbacks {
	void *arg;
	/* server: a peer completed the handshake; false refuses it (busy) */
	bool (*accept)(netconn_t *c, void *arg);
	/* client, with TLS: TCP connected and the handshake's first flight
	 * sent; frames sent now are queued until the handshake is done, and
	 * dropped if it fails */
	void (*handshaking)(netconn_t *c, void *arg);
	/* client: connected and (with TLS) the sink's certificate verified */
	void (*connected)(netconn_t *c, void *arg);
	void (*frame)(netconn_t *c, void *arg, uint8_t type, const uint8_t *payload, size_t len);
	/* a frame header was refused (its check fails, unknown type, over
	 * max_frame_bytes, a peer of an older protocol);
	 * the connection closes after this call */
	void (*bad_frame)(netconn_t *c, void *arg, const pgf_error_t *err);
	/* everything queued was sent */
	void (*writable)(netconn_t *c, void *arg);
	/* closed by the peer or by an error (err says which); then freed */
	void (*closed)(netconn_t *c, void *arg, const pgf_error_t *err);
} netconn_callbacks_t;

/* Client. tls NULL means plaintext. Returns NULL only on an immediate error. */
netconn_t *netconn_connect(struct ev_loop *loop, const char *address, tls_context_t *tls,
                           int64_t max_frame_bytes, const netconn_callbacks_t *cb,
                           pgf_error_t *err);
/* Server: accepts connections on address. */
netconn_listener_t *netconn_listen(struct ev_loop *loop, const char *address, tls_context_t *tls,
                                   int64_t max_frame_bytes, const netconn_callbacks_t *cb,
                                   pgf_error_t *err);
void netconn_listener_free(netconn_listener_t *l);

int netconn_send(netconn_t *c, uint8_t type, const void *payload, size_t len, pgf_error_t *err);
size_t netconn_queued_bytes(const netconn_t *c);
/* Stop (true) or resume (false) reading: TCP then holds the peer back. */
void netconn_pause(netconn_t *c, bool pause);
/* Closes; with code != 0 an ERROR frame with message goes first (best
 * effort). The closed callback is not called. */
void netconn_close(netconn_t *c, uint16_t code, const char *message);
/* Whether the peer's first frame was in wire protocol 1's framing (an
 * older pgferry); netconn_close then answers it in that framing. */
bool netconn_peer_is_v1(const netconn_t *c);
/* The sink said in the TLS handshake that batches may follow the hello
 * before its welcome (tls_early_stream); false without TLS. */
bool netconn_early_stream(const netconn_t *c);
/* "address (certificate subject)" for log lines */
const char *netconn_peer_name(const netconn_t *c);
/* When bytes last arrived (the loop's clock; 0 before any): a large frame
 * on a slow link is a live peer, though no whole frame arrives for long. */
double netconn_last_input(const netconn_t *c);

/* host:port, [v6]:port; "localhost" and loopback addresses are loopback. */
int netconn_split_address(const char *address, char *host, size_t host_len, char *port,
                          size_t port_len);
bool netconn_address_is_loopback(const char *address);

#endif
