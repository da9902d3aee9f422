/*
 * test_wire.c — wire messages and batches: round trips, and every kind of
 * damage (flipped bits, truncation, lying lengths, wrong sequence), none of
 * which may hand out a record.
 */
#include "pgferry/batch.h"
#include "pgferry/wire.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pgf_error_t err;

/* Keeps the first n payload bytes of b (dropping its check), appends the
 * byte extra unless it is -1, and seals it again: a frame whose check is
 * right but whose content is not. */
static void resealed(buf_t *b, size_t n, int extra)
{
	uint32_t crc;

	b->len = n;
	if (extra >= 0)
		buf_append_u8(b, (uint8_t)extra);
	crc = wire_crc32c(b->data, b->len);
	buf_append_be32(b, crc);
}

/* Control frames carry a CRC-32C of their payload: every flipped bit of an
 * ACK (whose applied LSN the source confirms to the slot) is refused, never
 * read as another position. */
START_TEST(control_frame_bit_flips)
{
	wire_ack_t a = {0x1000000, 0x0FF0000, 42}, a2;
	wire_primary_facts_t f = {.primary_time = 7, .position_lsn = 0x5A3F0, .flush_lsn = 0x5A000},
	                     f2;
	wire_ping_t pi = {12345}, pi2;
	buf_t b;
	size_t i;
	int bit;

	buf_init(&b);
	wire_encode_ack(&a, &b);
	for (i = 0; i < b.len; i++)
		for (bit = 0; bit < 8; bit++) {
			b.data[i] ^= (char)(1 << bit);
			ck_assert_msg(
			        wire_decode_ack((uint8_t *)b.data, b.len, &a2, &err) == PGF_ERR,
			        "an ACK with bit %d of byte %zu flipped was accepted", bit, i);
			ck_assert_ptr_nonnull(strstr(err.message, "damaged ack frame"));
			b.data[i] ^= (char)(1 << bit);
		}
	buf_reset(&b);
	wire_encode_primary_facts(&f, &b);
	for (i = 0; i < b.len; i++) {
		b.data[i] ^= 0x10;
		ck_assert_int_eq(wire_decode_primary_facts((uint8_t *)b.data, b.len, &f2, &err),
		                 PGF_ERR);
		b.data[i] ^= 0x10;
	}
	buf_reset(&b);
	wire_encode_ping(&pi, &b);
	b.data[7] ^= 0x01;
	ck_assert_int_eq(wire_decode_ping((uint8_t *)b.data, b.len, &pi2, &err), PGF_ERR);
	buf_free(&b);
}
END_TEST

START_TEST(messages_round_trip)
{
	buf_t b;
	wire_hello_t h = {WIRE_PROTOCOL_VERSION, 7311, 2, 3, 0, -5, "postgres", "pgferry", 0, 0},
	             h2;
	wire_ack_t a = {10, 9, 8}, a2;
	wire_pong_t p = {1, 2, 3}, p2;
	wire_error_t e = {WIRE_ERR_IDENTITY, "another primary"}, e2;
	wire_welcome_t w = {WIRE_PROTOCOL_VERSION, 0x1234, 99, 0}, w2;
	size_t n;

	buf_init(&b);
	wire_encode_hello(&h, &b);
	ck_assert_int_eq(wire_decode_hello((uint8_t *)b.data, b.len, &h2, &err), PGF_OK);
	ck_assert_uint_eq(h2.system_identifier, 7311);
	ck_assert_str_eq(h2.slot, "pgferry");
	ck_assert_int_eq(h2.source_time, -5);
	for (n = 2; n < b.len; n++)
		ck_assert_int_eq(wire_decode_hello((uint8_t *)b.data, n, &h2, &err), PGF_ERR);
	/* streaming before the welcome: the start and the flush position follow */
	buf_reset(&b);
	h.capabilities = WIRE_CAP_EARLY_STREAM;
	h.stream_from = 0x10;
	h.primary_flush = 0x20;
	wire_encode_hello(&h, &b);
	ck_assert_int_eq(wire_decode_hello((uint8_t *)b.data, b.len, &h2, &err), PGF_OK);
	ck_assert_uint_eq(h2.stream_from, 0x10);
	ck_assert_uint_eq(h2.primary_flush, 0x20);
	for (n = 2; n < b.len; n++)
		ck_assert_int_eq(wire_decode_hello((uint8_t *)b.data, n, &h2, &err), PGF_ERR);
	buf_reset(&b);
	wire_encode_ack(&a, &b);
	ck_assert_int_eq(wire_decode_ack((uint8_t *)b.data, b.len, &a2, &err), PGF_OK);
	ck_assert_uint_eq(a2.applied_lsn, 9);
	ck_assert_int_eq(wire_decode_ack((uint8_t *)b.data, b.len - 1, &a2, &err), PGF_ERR);
	buf_append_u8(&b, 0);
	ck_assert_int_eq(wire_decode_ack((uint8_t *)b.data, b.len, &a2, &err), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "fails its check"));
	/* a trailing byte under a valid check */
	resealed(&b, b.len - 5, 0);
	ck_assert_int_eq(wire_decode_ack((uint8_t *)b.data, b.len, &a2, &err), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "trailing"));
	buf_reset(&b);
	wire_encode_pong(&p, &b);
	ck_assert_int_eq(wire_decode_pong((uint8_t *)b.data, b.len, &p2, &err), PGF_OK);
	ck_assert_int_eq(p2.t3, 3);
	buf_reset(&b);
	wire_encode_error(&e, &b);
	ck_assert_int_eq(wire_decode_error((uint8_t *)b.data, b.len, &e2, &err), PGF_OK);
	ck_assert_str_eq(e2.message, "another primary");
	buf_reset(&b);
	wire_encode_welcome(&w, &b);
	ck_assert_int_eq(wire_decode_welcome((uint8_t *)b.data, b.len, &w2, &err), PGF_OK);
	ck_assert_uint_eq(w2.resume_lsn, 0x1234);
	/* a welcome of another protocol version is refused */
	b.data[1] = 9;
	ck_assert_int_eq(wire_decode_welcome((uint8_t *)b.data, b.len, &w2, &err), PGF_ERR);
	/* a hello of another version parses the version only */
	buf_reset(&b);
	buf_append_be16(&b, 99);
	ck_assert_int_eq(wire_decode_hello((uint8_t *)b.data, b.len, &h2, &err), PGF_OK);
	ck_assert_int_eq(h2.protocol_version, 99);
	buf_free(&b);
}
END_TEST

START_TEST(primary_facts_round_trip)
{
	buf_t b;
	wire_primary_facts_t f = {.primary_time = -7,
	                          .position_lsn = 0x5A3F0,
	                          .flush_lsn = 0x5A000,
	                          .source_error = "publication \"x\" does not exist"},
	                     f2;
	size_t n;

	buf_init(&b);
	wire_encode_primary_facts(&f, &b);
	ck_assert_int_eq(wire_decode_primary_facts((uint8_t *)b.data, b.len, &f2, &err), PGF_OK);
	ck_assert_int_eq(f2.primary_time, -7);
	ck_assert_uint_eq(f2.position_lsn, 0x5A3F0);
	ck_assert_uint_eq(f2.flush_lsn, 0x5A000);
	ck_assert_str_eq(f2.source_error, f.source_error);
	for (n = 0; n < b.len; n++)
		ck_assert_int_eq(wire_decode_primary_facts((uint8_t *)b.data, n, &f2, &err),
		                 PGF_ERR);
	buf_append_u8(&b, 0);
	ck_assert_int_eq(wire_decode_primary_facts((uint8_t *)b.data, b.len, &f2, &err), PGF_ERR);
	ck_assert_str_eq(wire_type_name(WIRE_PRIMARY_FACTS), "primary-facts");
	buf_free(&b);
}
END_TEST

/* The slot's retention trails the frame: a frame without it (an older
 * source) still decodes, a frame cut inside it does not. */
START_TEST(primary_facts_slot_fields)
{
	buf_t b;
	wire_primary_facts_t f = {.primary_time = -7,
	                          .position_lsn = 0x5A3F0,
	                          .flush_lsn = 0x5A000},
	                     f2;
	size_t n, plain;

	buf_init(&b);
	wire_encode_primary_facts(&f, &b);
	plain = b.len;
	ck_assert_int_eq(wire_decode_primary_facts((uint8_t *)b.data, b.len, &f2, &err), PGF_OK);
	ck_assert(!f2.slot_known);
	buf_free(&b);

	f.slot_known = true;
	f.slot_retained_bytes = 12345678901LL;
	f.slot_safe_wal_size = -1;
	f.slot_wal_status = WIRE_SLOT_WAL_EXTENDED;
	f.slot_wal_warning = 1 << 20;
	buf_init(&b);
	wire_encode_primary_facts(&f, &b);
	ck_assert_uint_eq(b.len, plain + 25);
	ck_assert_int_eq(wire_decode_primary_facts((uint8_t *)b.data, b.len, &f2, &err), PGF_OK);
	ck_assert(f2.slot_known);
	ck_assert_int_eq(f2.slot_retained_bytes, 12345678901LL);
	ck_assert_int_eq(f2.slot_safe_wal_size, -1);
	ck_assert_uint_eq(f2.slot_wal_status, WIRE_SLOT_WAL_EXTENDED);
	ck_assert_int_eq(f2.slot_wal_warning, 1 << 20);
	ck_assert_uint_eq(f2.flush_lsn, 0x5A000);
	for (n = plain + 1; n < b.len; n++) {
		/* cut inside the optional fields, under a valid check */
		buf_t cut;
		buf_init(&cut);
		buf_append(&cut, b.data, b.len - 4);
		resealed(&cut, n - 4, -1);
		ck_assert_int_eq(wire_decode_primary_facts((uint8_t *)cut.data, cut.len, &f2, &err),
		                 PGF_ERR);
		ck_assert_ptr_nonnull(strstr(err.message, "malformed primary-facts frame"));
		buf_free(&cut);
		/* cut anywhere: the check fails */
		ck_assert_int_eq(wire_decode_primary_facts((uint8_t *)b.data, n, &f2, &err),
		                 PGF_ERR);
	}
	buf_append_u8(&b, 0);
	ck_assert_int_eq(wire_decode_primary_facts((uint8_t *)b.data, b.len, &f2, &err), PGF_ERR);
	buf_free(&b);

	ck_assert_str_eq(wire_slot_wal_status_name(WIRE_SLOT_WAL_LOST), "lost");
	ck_assert_uint_eq(wire_slot_wal_status_code("unreserved"), WIRE_SLOT_WAL_UNRESERVED);
	ck_assert_uint_eq(wire_slot_wal_status_code(NULL), WIRE_SLOT_WAL_UNKNOWN);
	ck_assert_uint_eq(wire_slot_wal_status_code("bogus"), WIRE_SLOT_WAL_UNKNOWN);
}
END_TEST

START_TEST(primary_facts_guard_fields)
{
	buf_t b;
	wire_primary_facts_t f = {.primary_time = 1, .position_lsn = 2, .flush_lsn = 3}, f2;
	size_t n, slot_only;

	f.slot_known = true;
	f.slot_wal_status = WIRE_SLOT_WAL_RESERVED;
	buf_init(&b);
	wire_encode_primary_facts(&f, &b);
	slot_only = b.len;
	ck_assert_int_eq(wire_decode_primary_facts((uint8_t *)b.data, b.len, &f2, &err), PGF_OK);
	ck_assert(!f2.rpo_guard_known);
	buf_free(&b);

	f.rpo_guard_known = true;
	f.rpo_guard_state = 2;
	f.rpo_guard_bound_ms = 2345;
	f.rpo_guard_engagements = 3;
	snprintf(f.rpo_guard_reason, sizeof(f.rpo_guard_reason), "engaged: over budget");
	buf_init(&b);
	wire_encode_primary_facts(&f, &b);
	ck_assert_int_eq(wire_decode_primary_facts((uint8_t *)b.data, b.len, &f2, &err), PGF_OK);
	ck_assert(f2.slot_known && f2.rpo_guard_known);
	ck_assert_uint_eq(f2.rpo_guard_state, 2);
	ck_assert_int_eq(f2.rpo_guard_bound_ms, 2345);
	ck_assert_uint_eq(f2.rpo_guard_engagements, 3);
	ck_assert_str_eq(f2.rpo_guard_reason, "engaged: over budget");
	for (n = slot_only + 1; n < b.len; n++)
		ck_assert_int_eq(wire_decode_primary_facts((uint8_t *)b.data, n, &f2, &err),
		                 PGF_ERR);
	/* a state the protocol does not name */
	b.data[slot_only] = 3;
	ck_assert_int_eq(wire_decode_primary_facts((uint8_t *)b.data, b.len, &f2, &err), PGF_ERR);
	buf_free(&b);
}
END_TEST

/* a header as wire_append_header writes it */
static void make_header(uint8_t *hdr, uint8_t type, uint32_t len)
{
	buf_t b;

	buf_init(&b);
	wire_append_header(&b, type, len);
	ck_assert_uint_eq(b.len, WIRE_HEADER_LEN);
	memcpy(hdr, b.data, WIRE_HEADER_LEN);
	buf_free(&b);
}

START_TEST(frame_headers)
{
	uint8_t hdr[WIRE_HEADER_LEN];
	uint8_t type;
	uint32_t len;

	/* the standard check value of CRC-32C */
	ck_assert_uint_eq(wire_crc32c("123456789", 9), 0xe3069283u);
	make_header(hdr, WIRE_BATCH, 256);
	ck_assert_uint_eq(hdr[0], WIRE_BATCH);
	ck_assert_uint_eq(hdr[3], 1);
	ck_assert_int_eq(wire_check_header(hdr, 0, 1024, &type, &len, &err), PGF_OK);
	ck_assert_uint_eq(type, WIRE_BATCH);
	ck_assert_uint_eq(len, 256);
	make_header(hdr, WIRE_BATCH, 0x7f000100);
	ck_assert_int_eq(wire_check_header(hdr, 0, 1 << 20, &type, &len, &err), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "exceeds max_frame_bytes"));
	make_header(hdr, 0, 16);
	ck_assert_int_eq(wire_check_header(hdr, 0, 1 << 20, &type, &len, &err), PGF_ERR);
	make_header(hdr, 'G', 16);
	ck_assert_int_eq(wire_check_header(hdr, 77, 1 << 20, &type, &len, &err), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "unknown frame type 71 at byte 77"));
}
END_TEST

/* Every single-bit flip in a header (type, length or the check itself) is
 * refused at once, naming the offset, before the length is believed. */
START_TEST(frame_header_bit_flips)
{
	uint8_t hdr[WIRE_HEADER_LEN];
	uint8_t type;
	uint32_t len;

	for (int bit = 0; bit < WIRE_HEADER_LEN * 8; bit++) {
		make_header(hdr, WIRE_BATCH, 4000);
		hdr[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		ck_assert_int_eq(wire_check_header(hdr, 123456, 1 << 26, &type, &len, &err),
		                 PGF_ERR);
		ck_assert_ptr_nonnull(strstr(err.message, "damaged frame header at byte 123456"));
		ck_assert_ptr_nonnull(strstr(err.hint, "tls = on"));
	}
	/* garbage is refused the same way */
	ck_assert_int_eq(
	        wire_check_header((const uint8_t *)"GET / HTTP", 0, 1 << 20, &type, &len, &err),
	        PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "damaged frame header at byte 0"));
}
END_TEST

/* What a protocol 1 peer sends first is recognised, so it is told "older
 * version" and not "damaged"; a version 2 frame is never taken for one. */
START_TEST(frame_header_v1_peer)
{
	static const uint8_t v1_hello[] = {WIRE_HELLO, 0, 0, 0, 40, 0, 1, 0, 0, 0};
	static const uint8_t v1_error[] = {WIRE_ERROR, 0, 0, 0, 6, 0, 2, 0, 2, 'n', 'o'};
	static const uint8_t v1_ack[] = {WIRE_ACK, 0, 0, 0, 24, 0, 0, 0, 0, 0, 0};
	uint8_t hdr[WIRE_HEADER_LEN];
	uint8_t type;
	uint32_t len;

	ck_assert_int_eq(wire_check_header(v1_hello, 0, 1 << 20, &type, &len, &err), PGF_ERR);
	ck_assert(wire_header_is_v1(v1_hello, sizeof(v1_hello), 1 << 20, &type, &len));
	ck_assert_uint_eq(type, WIRE_HELLO);
	ck_assert_uint_eq(len, 40);
	ck_assert(wire_header_is_v1(v1_error, sizeof(v1_error), 1 << 20, &type, &len));
	ck_assert_uint_eq(type, WIRE_ERROR);
	ck_assert_uint_eq(len, 6);
	ck_assert(!wire_header_is_v1(v1_ack, sizeof(v1_ack), 1 << 20, &type, &len));
	ck_assert(!wire_header_is_v1(v1_hello, WIRE_HEADER_LEN - 1, 1 << 20, &type, &len));
	ck_assert(!wire_header_is_v1(v1_hello, sizeof(v1_hello), 30, &type, &len));
	make_header(hdr, WIRE_HELLO, 40);
	ck_assert_int_eq(wire_check_header(hdr, 0, 1 << 20, &type, &len, &err), PGF_OK);
}
END_TEST

START_TEST(clock_offset)
{
	/* the peer is 500 ms ahead; 20 ms each way; 1 ms to answer */
	wire_pong_t p = {1000000, 1000000 + 20000 + 500000, 1000000 + 21000 + 500000};
	int64_t off, unc;

	wire_clock_offset(&p, 1000000 + 41000, &off, &unc);
	ck_assert_int_eq(off, 500000);
	ck_assert_int_eq(unc, 20000);
}
END_TEST

static void make_batch(batch_encoder_t *e, int n, uint64_t seq, buf_t *out)
{
	int i;

	for (i = 0; i < n; i++) {
		char rec[100];
		int len = snprintf(rec, sizeof(rec),
		                   "w record number %d with some text to compress", i);
		ck_assert_int_eq(
		        batch_encoder_add(e, (uint8_t *)rec, (size_t)len, (uint64_t)i, &err),
		        PGF_OK);
	}
	ck_assert_int_eq(batch_encoder_finish(e, seq, out, &err), PGF_OK);
}

START_TEST(batch_round_trip)
{
	batch_encoder_t *e = batch_encoder_create(1, 1 << 20, &err);
	batch_decoder_t *d = batch_decoder_create(1 << 20, &err);
	batch_view_t v;
	buf_t out;
	const uint8_t *r;
	size_t len;
	int seq;

	buf_init(&out);
	batch_decoder_reserve(d, 32);
	/* several batches on one compression stream */
	for (seq = 1; seq <= 3; seq++) {
		make_batch(e, 50 * seq, (uint64_t)seq, &out);
		ck_assert_int_eq(
		        batch_decode(d, (uint8_t *)out.data, out.len, (uint64_t)seq, &v, &err),
		        PGF_OK);
		ck_assert_uint_eq(v.nrecords, (uint32_t)(50 * seq));
		ck_assert_uint_eq(v.seq, (uint64_t)seq);
		ck_assert_uint_eq(v.last_lsn, (uint64_t)(50 * seq - 1));
		batch_view_record(&v, 7, &r, &len);
		ck_assert(len > 10 && memcmp(r, "w record number 7 ", 18) == 0);
		if (seq == 2) {
			/* the caller takes the raw bytes, with the room reserved after
			 * them (written in full: the sanitizers check it is there); the
			 * next batch gets a new buffer */
			size_t size = v.raw_len + 8 + (size_t)v.nrecords * 32;
			uint8_t *raw = batch_decoder_take_raw(d, size);
			ck_assert_ptr_eq(raw, v.raw);
			ck_assert(memcmp(raw + 4, "w record number 0 ", 18) == 0);
			memset(raw + v.raw_len, 0, size - v.raw_len);
			free(raw);
		} else if (seq == 3) {
			/* more than was reserved: grown, the raw bytes kept */
			size_t size = v.raw_len + (1u << 16);
			uint8_t *raw = batch_decoder_take_raw(d, size);
			ck_assert_ptr_nonnull(raw);
			ck_assert(memcmp(raw + 4, "w record number 0 ", 18) == 0);
			memset(raw + v.raw_len, 0, size - v.raw_len);
			free(raw);
		}
	}
	/* an empty batch */
	ck_assert_int_eq(batch_encoder_finish(e, 4, &out, &err), PGF_OK);
	ck_assert_int_eq(batch_decode(d, (uint8_t *)out.data, out.len, 4, &v, &err), PGF_OK);
	ck_assert_uint_eq(v.nrecords, 0);
	/* a record larger than the maximum is refused when added */
	{
		uint8_t *big = calloc(1, 1 << 20);
		ck_assert_int_eq(batch_encoder_add(e, big, 1 << 20, 5, &err), PGF_ERR);
		ck_assert_ptr_nonnull(strstr(err.message, "max_frame_bytes"));
		free(big);
	}
	buf_free(&out);
	batch_encoder_free(e);
	batch_decoder_free(d);
}
END_TEST

START_TEST(batch_damage)
{
	batch_encoder_t *e = batch_encoder_create(3, 1 << 20, &err);
	batch_decoder_t *d = batch_decoder_create(1 << 20, &err);
	batch_view_t v;
	buf_t out;
	size_t i, n;
	int bit;

	uint8_t *good;
	size_t good_len;
	int caught = 0, harmless = 0;

	buf_init(&out);
	make_batch(e, 40, 1, &out);
	ck_assert_int_eq(batch_decode(d, (uint8_t *)out.data, out.len, 1, &v, &err), PGF_OK);
	good = malloc(v.raw_len);
	memcpy(good, v.raw, v.raw_len);
	good_len = v.raw_len;
	/* every flipped bit anywhere is caught, or (in zstd framing flags that
	 * do not change the content) yields exactly the original records:
	 * damaged records are never handed out */
	for (i = 0; i < out.len; i++) {
		for (bit = 0; bit < 8; bit++) {
			out.data[i] ^= (char)(1 << bit);
			batch_decoder_reset(d);
			if (batch_decode(d, (uint8_t *)out.data, out.len, 1, &v, &err) == PGF_ERR)
				caught++;
			else {
				ck_assert_msg(
				        v.raw_len == good_len && memcmp(v.raw, good, good_len) == 0,
				        "flipped bit %d of byte %zu handed out damaged records",
				        bit, i);
				harmless++;
			}
			out.data[i] ^= (char)(1 << bit);
		}
	}
	ck_assert_int_gt(caught, (int)(out.len * 8) - 64);
	free(good);
	/* every truncation */
	for (n = 0; n < out.len; n++) {
		batch_decoder_reset(d);
		ck_assert_int_eq(batch_decode(d, (uint8_t *)out.data, n, 1, &v, &err), PGF_ERR);
	}
	/* intact, but not the expected sequence number */
	batch_decoder_reset(d);
	ck_assert_int_eq(batch_decode(d, (uint8_t *)out.data, out.len, 2, &v, &err), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "expected"));
	/* a raw length over the limit is refused before allocating */
	batch_decoder_reset(d);
	out.data[28] = 0x7f;
	ck_assert_int_eq(batch_decode(d, (uint8_t *)out.data, out.len, 1, &v, &err), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "over the limit"));
	buf_free(&out);
	batch_encoder_free(e);
	batch_decoder_free(d);
}
END_TEST

/* A message in pieces across batches: each piece but the last says that it
 * continues, the lengths come back without the flag, and a damaged length
 * is still refused. */
START_TEST(batch_pieces)
{
	batch_encoder_t *e = batch_encoder_create(1, 4096, &err);
	batch_decoder_t *d = batch_decoder_create(4096, &err);
	batch_view_t v;
	buf_t out;
	uint8_t msg[5000], back[5000];
	size_t off = 0, got = 0, len;
	const uint8_t *r;
	uint64_t seq = 0;
	int i;

	for (i = 0; i < (int)sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 7);
	buf_init(&out);
	while (off < sizeof(msg)) {
		size_t n = sizeof(msg) - off < 2000 ? sizeof(msg) - off : 2000;
		ck_assert_int_eq(
		        batch_encoder_add_piece(e, msg + off, n, 77, off + n < sizeof(msg), &err),
		        PGF_OK);
		off += n;
		ck_assert_int_eq(batch_encoder_finish(e, ++seq, &out, &err), PGF_OK);
		ck_assert_int_eq(batch_decode(d, (uint8_t *)out.data, out.len, seq, &v, &err),
		                 PGF_OK);
		ck_assert_uint_eq(v.nrecords, 1);
		batch_view_record(&v, 0, &r, &len);
		ck_assert_uint_eq(len, n);
		ck_assert(batch_view_record_continues(&v, 0) == (off < sizeof(msg)));
		memcpy(back + got, r, len);
		got += len;
	}
	ck_assert_uint_eq(got, sizeof(msg));
	ck_assert(memcmp(back, msg, sizeof(msg)) == 0);
	/* a whole message after the pieces is not a piece */
	ck_assert_int_eq(batch_encoder_add(e, msg, 10, 78, &err), PGF_OK);
	ck_assert_int_eq(batch_encoder_finish(e, ++seq, &out, &err), PGF_OK);
	ck_assert_int_eq(batch_decode(d, (uint8_t *)out.data, out.len, seq, &v, &err), PGF_OK);
	ck_assert(!batch_view_record_continues(&v, 0));
	/* a piece is bounded like any record */
	ck_assert_int_eq(batch_encoder_add_piece(e, msg, 4093, 79, true, &err), PGF_ERR);
	buf_free(&out);
	batch_encoder_free(e);
	batch_decoder_free(d);
}
END_TEST

Suite *wire_suite(void)
{
	Suite *s = suite_create("wire");
	TCase *tc = tcase_create("wire");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, messages_round_trip);
	tcase_add_test(tc, control_frame_bit_flips);
	tcase_add_test(tc, primary_facts_round_trip);
	tcase_add_test(tc, primary_facts_slot_fields);
	tcase_add_test(tc, primary_facts_guard_fields);
	tcase_add_test(tc, frame_headers);
	tcase_add_test(tc, frame_header_bit_flips);
	tcase_add_test(tc, frame_header_v1_peer);
	tcase_add_test(tc, clock_offset);
	tcase_add_test(tc, batch_round_trip);
	tcase_add_test(tc, batch_damage);
	tcase_add_test(tc, batch_pieces);
	suite_add_tcase(s, tc);
	return s;
}
