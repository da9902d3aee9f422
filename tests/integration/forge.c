/*
 * forge.c — test helper: a hostile peer that holds a certificate the sink
 * accepts. It greets the sink as the source of the recorded primary, waits
 * for WELCOME and sends one well-formed batch holding a single walsender
 * keepalive whose WAL end is the LSN given, then answers pings for a few
 * seconds (so the sink has time to act on it) and leaves. t_forge.sh shows
 * that nothing moves: a keepalive alone is no progress.
 *
 * forge HOST:PORT CA CERT KEY SYSTEM_ID DATABASE SLOT WAL_END SECONDS [SKEW_S]
 *
 * SKEW_S stamps the keepalive that many seconds off the real time (a clock
 * fault of the primary, as the sink sees it).
 */
#include "pgferry/batch.h"
#include "pgferry/buf.h"
#include "pgferry/byteorder.h"
#include "pgferry/decoder.h"
#include "pgferry/replication.h"
#include "pgferry/wire.h"

#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static SSL *ssl;

static void die(const char *what)
{
	fprintf(stderr, "forge: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

static void send_frame(uint8_t type, const buf_t *payload)
{
	buf_t f;

	buf_init(&f);
	wire_append_header(&f, type, (uint32_t)payload->len);
	buf_append(&f, payload->data, payload->len);
	if (SSL_write(ssl, f.data, (int)f.len) != (int)f.len)
		die("write failed");
	buf_free(&f);
}

static int read_full(uint8_t *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		int r = SSL_read(ssl, p + got, (int)(n - got));
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* Reads one frame; answers pings. Returns its type, payload in *out. */
static int read_frame(buf_t *out)
{
	uint8_t hdr[WIRE_HEADER_LEN];
	uint32_t len;

	if (read_full(hdr, sizeof(hdr)) != 0)
		return -1;
	len = be32_read(hdr + 1);
	buf_reset(out);
	buf_reserve(out, len + 1);
	if (read_full((uint8_t *)out->data, len) != 0)
		return -1;
	out->len = len;
	if (hdr[0] == WIRE_PING) {
		wire_ping_t ping;
		wire_pong_t pong;
		pgf_error_t err;
		buf_t b;
		if (wire_decode_ping((const uint8_t *)out->data, out->len, &ping, &err) == 0) {
			pong.t1 = ping.t1;
			pong.t2 = pong.t3 = pgtime_now();
			buf_init(&b);
			wire_encode_pong(&pong, &b);
			send_frame(WIRE_PONG, &b);
			buf_free(&b);
		}
	}
	return hdr[0];
}

int main(int argc, char **argv)
{
	char host[256], *port;
	struct addrinfo hints, *res;
	SSL_CTX *ctx;
	int fd, type;
	wire_hello_t hello = {0};
	wire_welcome_t welcome;
	pgf_error_t err;
	buf_t b, in, keepalive, batch;
	batch_encoder_t *enc;
	uint64_t wal_end;
	char lsn[LSN_TEXT_LEN], rlsn[LSN_TEXT_LEN];
	time_t until;

	if (argc != 10 && argc != 11) {
		fprintf(stderr, "usage: forge HOST:PORT CA CERT KEY SYSTEM_ID DATABASE SLOT "
		                "WAL_END SECONDS [SKEW_S]\n");
		return 2;
	}
	snprintf(host, sizeof(host), "%s", argv[1]);
	port = strrchr(host, ':');
	if (port == NULL || lsn_parse(argv[8], &wal_end) != 0)
		die("bad arguments");
	*port++ = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		die("cannot resolve");
	fd = socket(res->ai_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0)
		die("cannot connect");
	freeaddrinfo(res);
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, argv[2], NULL) != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, argv[3]) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, argv[4], SSL_FILETYPE_PEM) != 1)
		die("TLS set-up failed");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1)
		die("TLS handshake failed");

	hello.protocol_version = WIRE_PROTOCOL_VERSION;
	hello.system_identifier = strtoull(argv[5], NULL, 10);
	hello.timeline = 1;
	hello.proto_version = 3;
	hello.source_time = pgtime_now();
	snprintf(hello.database, sizeof(hello.database), "%s", argv[6]);
	snprintf(hello.slot, sizeof(hello.slot), "%s", argv[7]);
	buf_init(&b);
	buf_init(&in);
	wire_encode_hello(&hello, &b);
	send_frame(WIRE_HELLO, &b);
	do {
		type = read_frame(&in);
		if (type < 0 || type == WIRE_ERROR)
			die("the sink refused the hello");
	} while (type != WIRE_WELCOME);
	if (wire_decode_welcome((const uint8_t *)in.data, in.len, &welcome, &err) != 0)
		die("bad welcome");

	/* 'k' | u64 WAL end | i64 send time | u8 reply requested */
	buf_init(&keepalive);
	buf_append_u8(&keepalive, 'k');
	buf_append_be64(&keepalive, wal_end);
	buf_append_be64(&keepalive,
	                (uint64_t)(pgtime_now() + (argc == 11 ? atoll(argv[10]) : 0) * 1000000));
	buf_append_u8(&keepalive, 0);
	enc = batch_encoder_create(1, 1 << 20, &err);
	buf_init(&batch);
	if (enc == NULL ||
	    batch_encoder_add(enc, (const uint8_t *)keepalive.data, keepalive.len, wal_end, &err) !=
	            0 ||
	    batch_encoder_finish(enc, 1, &batch, &err) != 0)
		die("could not build the batch");
	send_frame(WIRE_BATCH, &batch);
	printf("forge: welcomed at %s; sent a keepalive with WAL end %s\n",
	       lsn_format(welcome.resume_lsn, rlsn), lsn_format(wal_end, lsn));
	fflush(stdout);
	until = time(NULL) + atoi(argv[9]);
	while (time(NULL) < until && read_frame(&in) >= 0)
		;
	SSL_shutdown(ssl);
	close(fd);
	buf_free(&b);
	buf_free(&in);
	buf_free(&keepalive);
	buf_free(&batch);
	batch_encoder_free(enc);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return 0;
}
