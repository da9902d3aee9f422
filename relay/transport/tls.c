/*
 * tls.c — OpenSSL set-up for mutual TLS (see tls.h).
 */
#include "pgferry/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int openssl_error(pgf_error_t *err, const char *what, const char *file)
{
	char reason[256] = "";
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	ERR_clear_error();
	error_set(err, PGF_E_TLS, "%s \"%s\": %s", what, file ? file : "", reason);
	return PGF_ERR;
}

/* As libpq and the PostgreSQL server: a private key others can read is
 * refused; one owned by root may be readable by its group (0640), so that a
 * group can share a key that root manages. */
static int check_key_permissions(const char *key_file, pgf_error_t *err)
{
	struct stat st;
	mode_t forbidden;

	if (stat(key_file, &st) != 0) {
		error_set(err, PGF_E_TLS, "could not read the private key (tls_key) \"%s\": %s",
		          key_file, strerror(errno));
		return PGF_ERR;
	}
	if (!S_ISREG(st.st_mode)) {
		error_set(err, PGF_E_TLS, "the private key (tls_key) \"%s\" is not a regular file",
		          key_file);
		return PGF_ERR;
	}
	forbidden = st.st_uid == 0 ? (S_IWGRP | S_IXGRP | S_IRWXO) : (S_IRWXG | S_IRWXO);
	if (st.st_mode & forbidden) {
		error_set(err, PGF_E_TLS,
		          "the private key (tls_key) \"%s\" has group or world access (mode %04o)",
		          key_file, (unsigned)(st.st_mode & 07777));
		error_detail(err, "A key others can read is no longer private; it is refused.");
		error_hint(err, "chmod 0600 the file (0640 is allowed when root owns it), and "
		                "replace the key if others may have read it.");
		return PGF_ERR;
	}
	return PGF_OK;
}

/* The ALPN name by which a sink says it holds what follows a hello until
 * its verdict, so a source may stream before the welcome (source_link.c) */
static const unsigned char early_stream_alpn[] = "\x14pgferry-early-stream";

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
	const unsigned char *p = in;

	(void)ssl;
	(void)arg;
	while (p < in + inlen && p + 1 + *p <= in + inlen) {
		if (*p + 1u == sizeof(early_stream_alpn) - 1 &&
		    memcmp(p, early_stream_alpn, sizeof(early_stream_alpn) - 1) == 0) {
			*out = p + 1;
			*outlen = *p;
			return SSL_TLSEXT_ERR_OK;
		}
		p += 1 + *p;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

bool tls_early_stream(SSL *ssl)
{
	const unsigned char *name = NULL;
	unsigned int len = 0;

	if (ssl == NULL)
		return false;
	SSL_get0_alpn_selected(ssl, &name, &len);
	return name != NULL && len + 1 == sizeof(early_stream_alpn) - 1 &&
	       memcmp(name, early_stream_alpn + 1, len) == 0;
}

tls_context_t *tls_context_create(tls_role_t role, const char *ca_file, const char *cert_file,
                                  const char *key_file, const char *peer_name, pgf_error_t *err)
{
	tls_context_t *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		error_set(err, PGF_E_MEMORY, "out of memory");
		return NULL;
	}
	t->role = role;
	t->ctx = SSL_CTX_new(role == TLS_ROLE_SERVER ? TLS_server_method() : TLS_client_method());
	if (t->ctx == NULL) {
		openssl_error(err, "could not create a TLS context", "");
		goto fail;
	}
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION);
	SSL_CTX_set_mode(t->ctx,
	                 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (role == TLS_ROLE_SERVER)
		SSL_CTX_set_alpn_select_cb(t->ctx, select_alpn, NULL);
	else if (SSL_CTX_set_alpn_protos(t->ctx, early_stream_alpn,
	                                 sizeof(early_stream_alpn) - 1) != 0) {
		openssl_error(err, "could not set up the TLS context", "ALPN");
		goto fail;
	}
	if (SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL) != 1) {
		openssl_error(err, "could not load the CA file (tls_ca)", ca_file);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(t->ctx, cert_file) != 1) {
		openssl_error(err, "could not load the certificate (tls_cert)", cert_file);
		goto fail;
	}
	if (check_key_permissions(key_file, err) != PGF_OK) {
		tls_context_free(t);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(t->ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		openssl_error(err, "could not load the private key (tls_key)", key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(t->ctx) != 1) {
		openssl_error(err, "the private key does not match the certificate", cert_file);
		goto fail;
	}
	/* both sides verify; the server refuses a client without a certificate */
	SSL_CTX_set_verify(t->ctx,
	                   role == TLS_ROLE_SERVER
	                           ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
	                           : SSL_VERIFY_PEER,
	                   NULL);
	if (role == TLS_ROLE_SERVER) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
		if (names)
			SSL_CTX_set_client_CA_list(t->ctx, names);
	}
	if (peer_name && peer_name[0]) {
		t->peer_name = strdup(peer_name);
		if (t->peer_name == NULL) {
			error_set(err, PGF_E_MEMORY, "out of memory");
			goto fail;
		}
	}
	return t;
fail:
	error_hint(err, "Check tls_ca, tls_cert and tls_key: PEM files readable by this process.");
	tls_context_free(t);
	return NULL;
}

void tls_context_free(tls_context_t *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	free(t->peer_name);
	free(t);
}

SSL *tls_session_new(tls_context_t *t, int fd, const char *host, pgf_error_t *err)
{
	SSL *ssl = SSL_new(t->ctx);
	const char *name = t->peer_name ? t->peer_name : host;
	X509_VERIFY_PARAM *param;

	if (ssl == NULL) {
		openssl_error(err, "could not start a TLS session", "");
		return NULL;
	}
	SSL_set_fd(ssl, fd);
	param = SSL_get0_param(ssl);
	if (name && name[0]) {
		unsigned char ip[16];
		/* an address is checked against IP SANs, a name against DNS SANs / CN */
		if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1)
			X509_VERIFY_PARAM_set1_ip_asc(param, name);
		else {
			X509_VERIFY_PARAM_set_hostflags(param,
			                                X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			X509_VERIFY_PARAM_set1_host(param, name, 0);
		}
	}
	if (t->role == TLS_ROLE_CLIENT) {
		unsigned char ip[16];
		/* SNI carries names only, never addresses */
		if (name && name[0] && inet_pton(AF_INET, name, ip) != 1 &&
		    inet_pton(AF_INET6, name, ip) != 1)
			SSL_set_tlsext_host_name(ssl, name);
		SSL_set_connect_state(ssl);
	} else
		SSL_set_accept_state(ssl);
	return ssl;
}

void tls_describe_failure(SSL *ssl, char *out, size_t len)
{
	char reason[256] = "";
	unsigned long e = ERR_peek_last_error();
	long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;

	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	ERR_clear_error();
	if (v != X509_V_OK)
		snprintf(out, len, "certificate verification failed: %s%s%s",
		         X509_verify_cert_error_string(v), reason[0] ? "; " : "", reason);
	else if (reason[0])
		snprintf(out, len, "%s", reason);
	else
		snprintf(out, len, "the peer closed the connection during the TLS handshake");
}

void tls_peer_subject(SSL *ssl, char *out, size_t len)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);

	out[0] = '\0';
	if (cert == NULL)
		return;
	X509_NAME_oneline(X509_get_subject_name(cert), out, (int)len);
	X509_free(cert);
}
