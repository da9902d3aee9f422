/*
 * fuzz_frame.c — libFuzzer target for what the sink reads off the network:
 * frame headers, every wire message decoder and the batch decoder
 * (checksum, decompression, records coded as differences, record framing).
 */
#include "pgferry/batch.h"
#include "pgferry/byteorder.h"
#include "pgferry/wire.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every decoder of what the sink and the source read, by frame type. */
static void decode_payload(uint8_t type, const uint8_t *p, size_t n)
{
	static batch_decoder_t *bd;
	pgf_error_t err;

	if (bd == NULL)
		bd = batch_decoder_create(1 << 20, &err);
	switch (type) {
	case WIRE_HELLO: {
		wire_hello_t m;
		wire_decode_hello(p, n, &m, &err);
		break;
	}
	case WIRE_WELCOME: {
		wire_welcome_t m;
		wire_decode_welcome(p, n, &m, &err);
		break;
	}
	case WIRE_BATCH: {
		/* as sent plain and as coded as differences (WIRE_CAP_DELTA) */
		int delta;
		for (delta = 0; delta < 2; delta++) {
			batch_view_t v;
			batch_decoder_reset(bd);
			batch_decoder_set_delta(bd, delta);
			if (batch_decode(bd, p, n, 0, &v, &err) == PGF_OK) {
				uint32_t i;
				for (i = 0; i < v.nrecords; i++) {
					const uint8_t *r;
					size_t rl;
					batch_view_record(&v, i, &r, &rl);
					(void)batch_view_record_continues(&v, i);
				}
			}
		}
		break;
	}
	case WIRE_ACK: {
		wire_ack_t m;
		wire_decode_ack(p, n, &m, &err);
		break;
	}
	case WIRE_PING: {
		wire_ping_t m;
		wire_decode_ping(p, n, &m, &err);
		break;
	}
	case WIRE_PONG: {
		wire_pong_t m;
		wire_decode_pong(p, n, &m, &err);
		break;
	}
	case WIRE_ERROR: {
		wire_error_t m;
		wire_decode_error(p, n, &m, &err);
		break;
	}
	case WIRE_END_OF_STREAM: {
		wire_end_of_stream_t m;
		wire_decode_end_of_stream(p, n, &m, &err);
		break;
	}
	case WIRE_PRIMARY_FACTS: {
		wire_primary_facts_t m;
		wire_decode_primary_facts(p, n, &m, &err);
		break;
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pgf_error_t err;
	uint8_t type;
	uint32_t len;
	const uint8_t *p;
	size_t n;

	if (size < WIRE_HEADER_LEN)
		return 0;
	if (wire_check_header(data, 0, 1 << 20, &type, &len, &err) != PGF_OK) {
		/* the same header with a matching check, so that the decoders
		 * behind it are explored without the fuzzer guessing a CRC */
		uint8_t hdr[WIRE_HEADER_LEN];
		buf_t b;
		wire_header_is_v1(data, size, 1 << 20, &type, &len);
		buf_init(&b);
		wire_append_header(&b, data[0], be32_read(data + 1));
		memcpy(hdr, b.data, sizeof(hdr));
		buf_free(&b);
		if (wire_check_header(hdr, 0, 1 << 20, &type, &len, &err) != PGF_OK)
			return 0;
	}
	p = data + WIRE_HEADER_LEN;
	n = size - WIRE_HEADER_LEN;
	if (len < n)
		n = len;
	decode_payload(type, p, n);
	/* the same payload under a matching check, so that the control frames'
	 * decoders are explored without the fuzzer guessing a CRC */
	if (type != WIRE_BATCH && type != WIRE_ERROR && n >= 4) {
		uint8_t *fixed = malloc(n);
		if (fixed != NULL) {
			memcpy(fixed, p, n);
			be32_write(fixed + n - 4, wire_crc32c(fixed, n - 4));
			decode_payload(type, fixed, n);
			free(fixed);
		}
	}
	return 0;
}
