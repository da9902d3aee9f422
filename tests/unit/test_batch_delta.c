/*
 * test_batch_delta.c — batch records coded as differences
 * (relay/transport/batch_delta.c): any record comes back as it was, the
 * walsender's positions and clocks are coded, the pieces of a message
 * larger than a batch pass as they are, and a stream so coded compresses
 * to less; the welcome carries the capability only when asked.
 */
#include "pgferry/batch.h"
#include "pgferry/batch_delta.h"
#include "pgferry/byteorder.h"
#include "pgferry/wire.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static pgf_error_t err;

/* An XLogData record of a pgbench-like transaction message: kind is the
 * pgoutput type ('B', 'U', 'C'); positions and clocks grow by small steps. */
static size_t make_record(uint8_t *rec, char kind, uint64_t lsn, uint64_t t, uint32_t xid)
{
	size_t n = 25;

	rec[0] = 'w';
	be64_write(rec + 1, lsn);
	be64_write(rec + 9, lsn + 4096);
	be64_write(rec + 17, t);
	rec[n] = (uint8_t)kind;
	if (kind == 'B') {
		be64_write(rec + n + 1, lsn + 300);
		be64_write(rec + n + 9, t - 1000);
		be32_write(rec + n + 17, xid);
		return n + 21;
	}
	if (kind == 'C') {
		rec[n + 1] = 0;
		be64_write(rec + n + 2, lsn);
		be64_write(rec + n + 10, lsn + 48);
		be64_write(rec + n + 18, t - 1000);
		return n + 26;
	}
	{
		/* an Update's relation, 'N' and one column of text */
		static const uint8_t update[] = {0, 0, 64, 1, 'N', 0,   1,   't',
		                                 0, 0, 0,  4, '1', '2', '3', '4'};
		memcpy(rec + n + 1, update, sizeof(update));
		return n + 1 + sizeof(update);
	}
}

/* Codes one whole record in place, framed as a batch of one. */
static void code_one(batch_delta_t *s, uint8_t *rec, size_t len, bool encode)
{
	uint8_t raw[4 + 128];

	be32_write(raw, (uint32_t)len);
	memcpy(raw + 4, rec, len);
	if (encode)
		batch_delta_encode_records(s, raw, 4 + len);
	else
		batch_delta_decode_records(s, raw, 4 + len);
	memcpy(rec, raw + 4, len);
}

START_TEST(records_come_back)
{
	batch_delta_t enc, dec;
	uint8_t rec[128], orig[128];
	unsigned i;
	size_t len;

	batch_delta_reset(&enc);
	batch_delta_reset(&dec);
	srandom(7);
	for (i = 0; i < 5000; i++) {
		/* realistic records, and any bytes at all of any length */
		if (i % 3 == 0) {
			static const char kinds[] = "BUC";
			len = make_record(rec, kinds[i / 3 % 3], 0x10000000ull + i * 200,
			                  800000000000000ull + i * 37, 700 + i / 9);
		} else {
			size_t j;
			len = (size_t)random() % 64;
			for (j = 0; j < len; j++)
				rec[j] = (uint8_t)random();
			if (len > 0 && i % 2)
				rec[0] = 'w';
			if (len > 25 && i % 4 == 1)
				rec[25] = i % 8 == 1 ? 'B' : 'C';
		}
		memcpy(orig, rec, len);
		code_one(&enc, rec, len, true);
		code_one(&dec, rec, len, false);
		ck_assert_msg(memcmp(rec, orig, len) == 0, "record %u of %zu bytes changed", i,
		              len);
	}
}
END_TEST

START_TEST(positions_and_clocks_are_coded)
{
	batch_delta_t s;
	uint8_t a[128], b[128];
	size_t n;

	batch_delta_reset(&s);
	n = make_record(a, 'B', 0x5000000, 123456789, 1000);
	code_one(&s, a, n, true);
	n = make_record(b, 'C', 0x5000100, 123456790, 1000);
	code_one(&s, b, n, true);
	/* the Commit's fields are differences: from its Begin, from its own
	 * commit LSN, from the record before */
	ck_assert_uint_eq(be64_read(b + 1), 0x100);
	ck_assert_uint_eq(be64_read(b + 9), 4096);
	ck_assert_uint_eq(be64_read(b + 17), 1);
	ck_assert_uint_eq(be64_read(b + 25 + 2), (uint64_t)0x5000100 - (0x5000000 + 300));
	ck_assert_uint_eq(be64_read(b + 25 + 10), 48);
	ck_assert_uint_eq(be64_read(b + 25 + 18), 1);
	/* keepalives and other kinds stay as they are */
	memset(a, 0x5a, 18);
	a[0] = 'k';
	memcpy(b, a, 18);
	code_one(&s, a, 18, true);
	ck_assert(memcmp(a, b, 18) == 0);
}
END_TEST

/* Appends a record to raw at *off: its length word, then n bytes of rec. */
static void frame(uint8_t *raw, size_t *off, const uint8_t *rec, size_t n, bool continues)
{
	be32_write(raw + *off, (uint32_t)n | (continues ? BATCH_RECORD_CONTINUES : 0));
	memcpy(raw + *off + 4, rec, n);
	*off += 4 + n;
}

/* A message in three pieces across two batches, between whole messages: the
 * coder leaves every piece as it is (each starts like an XLogData holding a
 * Begin or a Commit) and codes the whole messages after them as if the
 * pieces were not there. */
START_TEST(pieces_pass_unchanged)
{
	batch_delta_t enc, dec, ref;
	uint8_t head[64], mid[64], last[64], begin[64], commit[64];
	uint8_t raw1[512], raw2[512], orig1[512], orig2[512], alone[64];
	size_t n1 = 0, n2 = 0, hl, ml, ll, bl, cl;

	bl = make_record(begin, 'B', 0x7000000, 5000000, 55);
	cl = make_record(commit, 'C', 0x7000200, 5000100, 55);
	hl = make_record(head, 'B', 0x7000100, 5000050, 56);
	ml = make_record(mid, 'C', 0x7000180, 5000060, 57);
	ll = make_record(last, 'B', 0x7000190, 5000070, 58);
	frame(raw1, &n1, begin, bl, false);
	frame(raw1, &n1, head, hl, true);
	frame(raw1, &n1, mid, ml, true);
	frame(raw2, &n2, last, ll, false);
	frame(raw2, &n2, commit, cl, false);
	memcpy(orig1, raw1, n1);
	memcpy(orig2, raw2, n2);
	batch_delta_reset(&enc);
	batch_delta_encode_records(&enc, raw1, n1);
	batch_delta_encode_records(&enc, raw2, n2);
	/* the pieces as they were, whole messages coded */
	ck_assert(memcmp(raw1 + 4 + bl, orig1 + 4 + bl, n1 - 4 - bl) == 0);
	ck_assert(memcmp(raw2, orig2, 4 + ll) == 0);
	ck_assert(memcmp(raw1 + 4, orig1 + 4, bl) != 0);
	/* the Commit coded against the Begin before the pieces, as alone */
	batch_delta_reset(&ref);
	memcpy(alone, begin, bl);
	code_one(&ref, alone, bl, true);
	memcpy(alone, commit, cl);
	code_one(&ref, alone, cl, true);
	ck_assert(memcmp(raw2 + 4 + 4 + ll, alone, cl) == 0);
	/* and everything comes back */
	batch_delta_reset(&dec);
	batch_delta_decode_records(&dec, raw1, n1);
	batch_delta_decode_records(&dec, raw2, n2);
	ck_assert(memcmp(raw1, orig1, n1) == 0);
	ck_assert(memcmp(raw2, orig2, n2) == 0);
}
END_TEST

/* The same through the batch codec, as the source sends a row larger than
 * a batch: every batch passes its checksum and gives back the pieces. */
START_TEST(pieces_through_the_codec)
{
	batch_encoder_t *e = batch_encoder_create(1, 1 << 20, &err);
	batch_decoder_t *d = batch_decoder_create(1 << 20, &err);
	uint8_t msg[3000], rec[128];
	size_t len, off;
	batch_view_t v;
	uint64_t seq = 0;
	buf_t out;
	unsigned i;

	buf_init(&out);
	batch_encoder_set_delta(e, true);
	batch_decoder_set_delta(d, true);
	/* an XLogData whose Insert is larger than a piece of 1000 bytes */
	make_record(msg, 'B', 0x8000000, 6000000, 70);
	msg[25] = 'I';
	for (i = 26; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 31);
	len = make_record(rec, 'B', 0x7ffff00, 5999990, 70);
	ck_assert_int_eq(batch_encoder_add(e, rec, len, 1, &err), PGF_OK);
	for (off = 0; off < sizeof(msg); off += 1000) {
		ck_assert_int_eq(batch_encoder_add_piece(e, msg + off, 1000, 2,
		                                         off + 1000 < sizeof(msg), &err),
		                 PGF_OK);
		if (off + 1000 < sizeof(msg)) {
			ck_assert_int_eq(batch_encoder_finish(e, ++seq, &out, &err), PGF_OK);
			ck_assert_msg(batch_decode(d, (uint8_t *)out.data, out.len, seq, &v,
			                           &err) == PGF_OK,
			              "batch %llu: %s", (unsigned long long)seq, err.message);
		}
	}
	len = make_record(rec, 'C', 0x8000100, 6000010, 0);
	ck_assert_int_eq(batch_encoder_add(e, rec, len, 3, &err), PGF_OK);
	ck_assert_int_eq(batch_encoder_finish(e, ++seq, &out, &err), PGF_OK);
	ck_assert_msg(batch_decode(d, (uint8_t *)out.data, out.len, seq, &v, &err) == PGF_OK,
	              "batch %llu: %s", (unsigned long long)seq, err.message);
	{
		const uint8_t *r;
		size_t rl;
		ck_assert_uint_eq(v.nrecords, 2);
		batch_view_record(&v, 0, &r, &rl);
		ck_assert(!batch_view_record_continues(&v, 0));
		ck_assert(memcmp(r, msg + 2000, rl) == 0);
		batch_view_record(&v, 1, &r, &rl);
		ck_assert(memcmp(r, rec, len) == 0);
	}
	buf_free(&out);
	batch_encoder_free(e);
	batch_decoder_free(d);
}
END_TEST

/* n transactions as batches of 200 records; returns the bytes on the wire. */
static size_t ship(bool delta, unsigned n)
{
	batch_encoder_t *e = batch_encoder_create(1, 1 << 20, &err);
	batch_decoder_t *d = batch_decoder_create(1 << 20, &err);
	uint8_t rec[128];
	buf_t out;
	batch_view_t v;
	size_t total = 0, len;
	uint64_t seq = 0;
	unsigned i, k;

	buf_init(&out);
	batch_encoder_set_delta(e, delta);
	batch_decoder_set_delta(d, delta);
	for (i = 0; i < n; i++) {
		for (k = 0; k < 3; k++) {
			uint64_t lsn = 0x20000000ull + i * 520 + k * 160 + (i * 7919) % 13;
			len = make_record(rec, "BUC"[k], lsn,
			                  800000000000000ull + i * 311 + k * 5 + (i * 104729) % 17,
			                  900 + i);
			ck_assert_int_eq(batch_encoder_add(e, rec, len, lsn, &err), PGF_OK);
		}
		if (batch_encoder_records(e) >= 200 || i == n - 1) {
			ck_assert_int_eq(batch_encoder_finish(e, ++seq, &out, &err), PGF_OK);
			ck_assert_int_eq(
			        batch_decode(d, (uint8_t *)out.data, out.len, seq, &v, &err),
			        PGF_OK);
			total += out.len;
		}
	}
	/* the records came back as they were sent */
	len = make_record(rec, "BUC"[(3 * n - 1) % 3], 0, 0, 0);
	{
		const uint8_t *r;
		size_t rl;
		batch_view_record(&v, v.nrecords - 1, &r, &rl);
		ck_assert_uint_eq(rl, len);
		ck_assert_uint_eq(be64_read(r + 1),
		                  0x20000000ull + (n - 1) * 520 + 2 * 160 + ((n - 1) * 7919) % 13);
	}
	buf_free(&out);
	batch_encoder_free(e);
	batch_decoder_free(d);
	return total;
}

START_TEST(coded_stream_compresses_to_less)
{
	size_t plain = ship(false, 3000), coded = ship(true, 3000);

	ck_assert_msg(coded * 10 < plain * 8, "coded %zu bytes, plain %zu", coded, plain);
}
END_TEST

/* The decoder must be told: a coded batch read as plain fails its checksum
 * (never handed out), and after a reset both start over. */
START_TEST(both_sides_must_agree)
{
	batch_encoder_t *e = batch_encoder_create(1, 1 << 20, &err);
	batch_decoder_t *d = batch_decoder_create(1 << 20, &err);
	uint8_t rec[128];
	size_t len = make_record(rec, 'B', 0x3000000, 42, 7);
	batch_view_t v;
	buf_t out;

	buf_init(&out);
	batch_encoder_set_delta(e, true);
	ck_assert_int_eq(batch_encoder_add(e, rec, len, 1, &err), PGF_OK);
	ck_assert_int_eq(batch_encoder_finish(e, 1, &out, &err), PGF_OK);
	ck_assert_int_eq(batch_decode(d, (uint8_t *)out.data, out.len, 1, &v, &err), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "checksum"));
	/* a new connection: both reset, the decoder told */
	batch_encoder_reset(e);
	batch_decoder_reset(d);
	batch_encoder_set_delta(e, true);
	batch_decoder_set_delta(d, true);
	ck_assert_int_eq(batch_encoder_add(e, rec, len, 1, &err), PGF_OK);
	ck_assert_int_eq(batch_encoder_finish(e, 1, &out, &err), PGF_OK);
	ck_assert_int_eq(batch_decode(d, (uint8_t *)out.data, out.len, 1, &v, &err), PGF_OK);
	ck_assert(memcmp(v.raw + 4, rec, len) == 0);
	buf_free(&out);
	batch_encoder_free(e);
	batch_decoder_free(d);
}
END_TEST

/* An older source reads a welcome of exactly its fields and check: the capabilities
 * are sent only to a source that announced some. */
START_TEST(welcome_capabilities)
{
	wire_welcome_t w = {WIRE_PROTOCOL_VERSION, 0x1234, 99, 0}, w2;
	buf_t b;

	buf_init(&b);
	wire_encode_welcome(&w, &b);
	ck_assert_uint_eq(b.len, 22); /* with its check */
	ck_assert_int_eq(wire_decode_welcome((uint8_t *)b.data, b.len, &w2, &err), PGF_OK);
	ck_assert_uint_eq(w2.capabilities, 0);
	buf_reset(&b);
	w.capabilities = WIRE_CAP_DELTA;
	wire_encode_welcome(&w, &b);
	ck_assert_uint_eq(b.len, 26);
	ck_assert_int_eq(wire_decode_welcome((uint8_t *)b.data, b.len, &w2, &err), PGF_OK);
	ck_assert_uint_eq(w2.capabilities, WIRE_CAP_DELTA);
	ck_assert_int_eq(wire_decode_welcome((uint8_t *)b.data, b.len - 1, &w2, &err), PGF_ERR);
	buf_free(&b);
}
END_TEST

Suite *batch_delta_suite(void)
{
	Suite *s = suite_create("batch_delta");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, records_come_back);
	tcase_add_test(tc, positions_and_clocks_are_coded);
	tcase_add_test(tc, pieces_pass_unchanged);
	tcase_add_test(tc, pieces_through_the_codec);
	tcase_add_test(tc, coded_stream_compresses_to_less);
	tcase_add_test(tc, both_sides_must_agree);
	tcase_add_test(tc, welcome_capabilities);
	suite_add_tcase(s, tc);
	return s;
}
