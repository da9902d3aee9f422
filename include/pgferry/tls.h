/*
 * tls.h — OpenSSL contexts for the source–sink link: TLS 1.3 at least,
 * mutual authentication against one CA, and a name check of the peer.
 *
 * Server (sink): demands a client certificate signed by tls_ca and, when
 * peer_name is set, carrying that name. Client (source): verifies the
 * sink's certificate against tls_ca and its name (peer_name, else the host
 * of sink_address).
 */
#ifndef PGFERRY_TLS_H
#define PGFERRY_TLS_H

#include "pgferry/error.h"

#include <openssl/ssl.h>
#include <stdbool.h>

typedef enum { TLS_ROLE_CLIENT, TLS_ROLE_SERVER } tls_role_t;

typedef struct tls_context {
	SSL_CTX *ctx;
	tls_role_t role;
	char *peer_name; /* may be NULL */
} tls_context_t;

tls_context_t *tls_context_create(tls_role_t role, const char *ca_file, const char *cert_file,
                                  const char *key_file, const char *peer_name, pgf_error_t *err);
void tls_context_free(tls_context_t *t);

/* A new session on a connected socket; host is the name expected of a
 * server when no peer_name was configured (clients only). */
SSL *tls_session_new(tls_context_t *t, int fd, const char *host, pgf_error_t *err);

/* After a failed handshake: why, in words (OpenSSL's reason and the
 * certificate verification result). */
void tls_describe_failure(SSL *ssl, char *out, size_t len);
/* The peer certificate's subject, for log lines ("" if none). */
void tls_peer_subject(SSL *ssl, char *out, size_t len);
/* After the handshake, on the source's side: whether the sink said (by
 * ALPN, in its first flight) that batches may follow the hello before its
 * welcome. An older sink ignores the offer: false. */
bool tls_early_stream(SSL *ssl);

#endif
