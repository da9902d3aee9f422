/*
 * check_net.c — the network side of `pgferry check` (check.h): the
 * certificate files as the daemons load them (tls.c), their chain, expiry
 * and names; the sink's ports; and, for a source, a real TLS handshake with
 * the sink, which is the only way to learn that each side takes the other's
 * certificate.
 */
#include "pgferry/check.h"

#include "pgferry/netconn.h"
#include "pgferry/tls.h"

#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define EXPIRY_WARNING_DAYS 30
#define PROBE_TIMEOUT_MS    5000

/* Every name of cert (DNS and IP SANs, else the CN) as "a, b". */
static void certificate_names(X509 *cert, char *out, size_t len)
{
	GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	int i;

	out[0] = '\0';
	for (i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
		char one[80] = "";
		if (g->type == GEN_DNS)
			snprintf(one, sizeof(one), "%.*s", ASN1_STRING_length(g->d.dNSName),
			         (const char *)ASN1_STRING_get0_data(g->d.dNSName));
		else if (g->type == GEN_IPADD && ASN1_STRING_length(g->d.iPAddress) == 4) {
			const unsigned char *a = ASN1_STRING_get0_data(g->d.iPAddress);
			snprintf(one, sizeof(one), "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
		} else if (g->type == GEN_IPADD)
			snprintf(one, sizeof(one), "(an IPv6 address)");
		if (one[0])
			snprintf(out + strlen(out), len - strlen(out), "%s%s", out[0] ? ", " : "",
			         one);
	}
	GENERAL_NAMES_free(sans);
	if (out[0] == '\0')
		X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out,
		                          (int)len);
}

/* Expired, not yet valid, or expiring within EXPIRY_WARNING_DAYS. */
static void check_expiry(X509 *cert, const char *what, const char *file, check_report_t *r)
{
	int days = 0, secs = 0;
	char fix[300];

	snprintf(fix, sizeof(fix),
	         "issue a new %s (deploy/make-certs.sh) and restart the process that uses it",
	         what);
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notBefore(cert)) && (days > 0 || secs > 0))
		check_add(r, CHECK_ERROR, "tls_expiry", fix,
		          "the %s \"%s\" is not valid yet (for %d days)", what, file, days);
	else if (!ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert)))
		check_add(r, CHECK_ERROR, "tls_expiry", fix,
		          "the %s \"%s\" has an unreadable expiry", what, file);
	else if (days < 0 || secs < 0)
		check_add(r, CHECK_ERROR, "tls_expiry", fix, "the %s \"%s\" expired %d days ago",
		          what, file, -days);
	else if (days < EXPIRY_WARNING_DAYS)
		check_add(r, CHECK_WARNING, "tls_expiry", fix, "the %s \"%s\" expires in %d days",
		          what, file, days);
	else
		check_add(r, CHECK_OK, "tls_expiry", NULL,
		          "the %s \"%s\" is valid for %d more days", what, file, days);
}

/* The certificate verified against tls_ca as the peer will (one CA on
 * both sides), then the expiry of each certificate of the chain. */
static void check_chain(tls_context_t *t, const config_t *cfg, check_role_t role, check_report_t *r)
{
	X509 *cert = SSL_CTX_get0_certificate(t->ctx);
	STACK_OF(X509) *extra = NULL;
	X509_STORE_CTX *vctx = X509_STORE_CTX_new();
	int i;

	SSL_CTX_get0_chain_certs(t->ctx, &extra);
	if (vctx == NULL || cert == NULL ||
	    X509_STORE_CTX_init(vctx, SSL_CTX_get_cert_store(t->ctx), cert, extra) != 1) {
		check_add(r, CHECK_ERROR, "tls_chain", "check tls_cert", "could not verify \"%s\"",
		          cfg->tls_cert);
		X509_STORE_CTX_free(vctx);
		return;
	}
	X509_STORE_CTX_set_purpose(vctx, role == CHECK_ROLE_SINK ? X509_PURPOSE_SSL_SERVER
	                                                         : X509_PURPOSE_SSL_CLIENT);
	/* expiry is told apart below, with a warning ahead of it */
	X509_STORE_CTX_set_flags(vctx, X509_V_FLAG_NO_CHECK_TIME);
	if (X509_verify_cert(vctx) != 1)
		check_add(r, CHECK_ERROR, "tls_chain",
		          "issue tls_cert from the CA in tls_ca (deploy/make-certs.sh), or point "
		          "tls_ca at the CA that signed it; both sides use the same CA",
		          "the certificate \"%s\" does not verify against tls_ca \"%s\": %s",
		          cfg->tls_cert, cfg->tls_ca,
		          X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
	else {
		STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(vctx);
		check_add(r, CHECK_OK, "tls_chain", NULL,
		          "the certificate \"%s\" is signed by tls_ca \"%s\"", cfg->tls_cert,
		          cfg->tls_ca);
		for (i = 0; chain && i < sk_X509_num(chain); i++)
			check_expiry(sk_X509_value(chain, i),
			             i == 0 ? "certificate" : "CA certificate",
			             i == 0 ? cfg->tls_cert : cfg->tls_ca, r);
	}
	X509_STORE_CTX_free(vctx);
}

static void check_names(tls_context_t *t, const config_t *cfg, check_role_t role, check_report_t *r)
{
	X509 *cert = SSL_CTX_get0_certificate(t->ctx);
	char names[512], host[256] = "", port[16];

	if (cert == NULL)
		return;
	certificate_names(cert, names, sizeof(names));
	if (role == CHECK_ROLE_SINK) {
		/* the sink's own certificate carrying the source's name would let
		 * anything holding it pass for the source */
		if (X509_check_host(cert, cfg->tls_peer_name, 0, 0, NULL) == 1)
			check_add(
			        r, CHECK_WARNING, "tls_peer_name",
			        "give the source a certificate of its own name and set "
			        "tls_peer_name to it",
			        "the sink's own certificate carries tls_peer_name \"%s\", the name "
			        "expected of the source",
			        cfg->tls_peer_name);
		else
			check_add(r, CHECK_OK, "tls_peer_name", NULL,
			          "only a source certificate naming \"%s\" is accepted; this "
			          "certificate names %s",
			          cfg->tls_peer_name, names);
		return;
	}
	if (cfg->tls_peer_name == NULL || !cfg->tls_peer_name[0])
		netconn_split_address(cfg->sink_address, host, sizeof(host), port, sizeof(port));
	check_add(r, CHECK_OK, "tls_peer_name", NULL,
	          "the sink's certificate must name \"%s\"%s; this certificate names %s",
	          cfg->tls_peer_name && cfg->tls_peer_name[0] ? cfg->tls_peer_name : host,
	          cfg->tls_peer_name && cfg->tls_peer_name[0] ? " (tls_peer_name)"
	                                                      : " (the host of sink_address)",
	          names);
}

void check_tls_files(const config_t *cfg, check_role_t role, check_report_t *r)
{
	const char *address = role == CHECK_ROLE_SINK ? cfg->listen_address : cfg->sink_address;
	tls_context_t *t;
	pgf_error_t err;

	if (!cfg->tls) {
		if (netconn_address_is_loopback(address))
			check_add(r, CHECK_WARNING, "tls",
			          "give both sides certificates (deploy/make-certs.sh) before "
			          "leaving "
			          "loopback",
			          "tls is off: allowed on loopback only (%s)", address);
		else
			check_add(r, CHECK_ERROR, "tls",
			          "give both sides certificates (tls_ca, tls_cert, tls_key)",
			          "tls is off but %s is not a loopback address", address);
		return;
	}
	error_clear(&err);
	t = tls_context_create(role == CHECK_ROLE_SINK ? TLS_ROLE_SERVER : TLS_ROLE_CLIENT,
	                       cfg->tls_ca, cfg->tls_cert, cfg->tls_key, cfg->tls_peer_name, &err);
	if (t == NULL) {
		check_add(r, CHECK_ERROR, strstr(err.message, "tls_key") ? "tls_key" : "tls_files",
		          err.hint, "%s", err.message);
		return;
	}
	check_add(r, CHECK_OK, "tls_key", NULL,
	          "tls_ca, tls_cert and tls_key load; the key matches and only its owner may "
	          "read it");
	check_chain(t, cfg, role, r);
	check_names(t, cfg, role, r);
	tls_context_free(t);
}

/* Binds address as the sink will (SO_REUSEADDR) and lets it go. */
static void check_bind(const char *key, const char *address, check_report_t *r)
{
	char host[256], port[16], fix[300];
	struct addrinfo hints = {0}, *ai = NULL;
	int fd, rc, one = 1, e;

	if (netconn_split_address(address, host, sizeof(host), port, sizeof(port)) != PGF_OK) {
		check_add(r, CHECK_ERROR, key, "write host:port", "\"%s\" is no host:port",
		          address);
		return;
	}
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0) {
		check_add(r, CHECK_ERROR, key, "correct the host", "cannot resolve \"%s\": %s",
		          host, gai_strerror(rc));
		return;
	}
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	rc = fd < 0 ? -1 : bind(fd, ai->ai_addr, ai->ai_addrlen);
	e = errno;
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	snprintf(fix, sizeof(fix),
	         e == EADDRINUSE ? "stop what listens there (another sink?) or choose another port"
	                         : "choose an address of this host that this user may bind");
	if (rc != 0)
		check_add(r, CHECK_ERROR, key, fix, "cannot listen on %s: %s", address,
		          strerror(e));
	else
		check_add(r, CHECK_OK, key, NULL, "%s can be bound", address);
}

void check_sink_ports(const config_t *cfg, check_report_t *r)
{
	check_bind("listen_address", cfg->listen_address, r);
	check_bind("http_listen", cfg->http_listen, r);
}

/* A TCP connection to address within PROBE_TIMEOUT_MS, or -1 with why. */
static int probe_connect(const char *address, char *why, size_t len, bool *lookup_failed)
{
	char host[256], port[16];
	struct addrinfo hints = {0}, *ai = NULL, *a;
	int fd = -1, rc;
	struct timeval tv = {PROBE_TIMEOUT_MS / 1000, 0};

	*lookup_failed = false;
	if (netconn_split_address(address, host, sizeof(host), port, sizeof(port)) != PGF_OK) {
		snprintf(why, len, "\"%s\" is no host:port", address);
		*lookup_failed = true;
		return -1;
	}
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(why, len, "cannot resolve \"%s\": %s", host, gai_strerror(rc));
		*lookup_failed = true;
		return -1;
	}
	snprintf(why, len, "no address");
	for (a = ai; a != NULL; a = a->ai_next) {
		fd = socket(a->ai_family, SOCK_STREAM, 0);
		if (fd < 0)
			continue;
		/* a blocking probe: bounded both ways */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		snprintf(why, len, "%s", strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* What OpenSSL says went wrong, in one line. */
static void tls_reason(SSL *ssl, char *out, size_t len)
{
	tls_describe_failure(ssl, out, len);
}

/* Which side objected to the handshake, and what to do about it. */
static void report_handshake_failure(SSL *ssl, const config_t *cfg, const char *expected,
                                     check_report_t *r)
{
	long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	char why[400], fix[600];

	tls_reason(ssl, why, sizeof(why));
	if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
		snprintf(fix, sizeof(fix),
		         "issue the sink's certificate for \"%s\" (deploy/make-certs.sh), or set "
		         "tls_peer_name on the source to a name it carries",
		         expected);
		check_add(r, CHECK_ERROR, "sink_tls", fix,
		          "the sink's certificate does not carry the name \"%s\": %s", expected,
		          why);
	} else if (verify != X509_V_OK)
		check_add(r, CHECK_ERROR, "sink_tls",
		          "both sides need certificates from the CA in tls_ca",
		          "the sink's certificate was refused: %s", why);
	else
		check_add(r, CHECK_ERROR, "sink_tls",
		          "check the sink's log; its tls_ca must sign this tls_cert and its "
		          "tls_peer_name be a name tls_cert carries",
		          "the TLS handshake with the sink at %s failed: %s", cfg->sink_address,
		          why);
}

void check_sink_reachable(const config_t *cfg, check_report_t *r)
{
	char why[400], host[256] = "", port[16], expected[300];
	bool lookup_failed;
	tls_context_t *t;
	pgf_error_t err;
	SSL *ssl;
	int fd, rc;

	fd = probe_connect(cfg->sink_address, why, sizeof(why), &lookup_failed);
	if (fd < 0) {
		check_add(r, lookup_failed ? CHECK_ERROR : CHECK_WARNING, "sink_reachable",
		          lookup_failed ? "correct sink_address"
		                        : "start the sink first (the source retries until it "
		                          "answers), and open the port between the hosts",
		          "the sink at %s does not answer: %s", cfg->sink_address, why);
		return;
	}
	if (!cfg->tls) {
		close(fd);
		check_add(r, CHECK_OK, "sink_reachable", NULL, "the sink at %s answers (tls off)",
		          cfg->sink_address);
		return;
	}
	error_clear(&err);
	t = tls_context_create(TLS_ROLE_CLIENT, cfg->tls_ca, cfg->tls_cert, cfg->tls_key,
	                       cfg->tls_peer_name, &err);
	if (t == NULL) {
		close(fd);
		return; /* check_tls_files said why */
	}
	netconn_split_address(cfg->sink_address, host, sizeof(host), port, sizeof(port));
	snprintf(expected, sizeof(expected), "%s",
	         cfg->tls_peer_name && cfg->tls_peer_name[0] ? cfg->tls_peer_name : host);
	ssl = tls_session_new(t, fd, host, &err);
	ERR_clear_error();
	rc = ssl ? SSL_connect(ssl) : -1;
	if (rc != 1)
		report_handshake_failure(ssl, cfg, expected, r);
	else {
		char buf[256];
		/* TLS 1.3: the sink checks this side's certificate after the client
		 * has finished; its verdict arrives before its answer to our
		 * close_notify, so reading to the end tells it */
		SSL_shutdown(ssl);
		ERR_clear_error();
		while ((rc = SSL_read(ssl, buf, sizeof(buf))) > 0)
			;
		if (SSL_get_error(ssl, rc) == SSL_ERROR_SSL) {
			tls_reason(ssl, why, sizeof(why));
			check_add(r, CHECK_ERROR, "sink_tls",
			          "the sink's tls_peer_name must be a name this side's tls_cert "
			          "carries "
			          "(the sink's log says which); issue it for that name "
			          "(deploy/make-certs.sh)",
			          "the sink refused this source's certificate: %s", why);
		} else
			check_add(
			        r, CHECK_OK, "sink_tls", NULL,
			        "the sink at %s carries the name \"%s\" and accepts this source's "
			        "certificate",
			        cfg->sink_address, expected);
	}
	if (ssl)
		SSL_free(ssl);
	close(fd);
	tls_context_free(t);
}
