/*
 * test_pgoutput.c — the pgoutput decoder, walsender wrappers, relation
 * cache and capture reader, from hand-built byte vectors (including
 * protocol 4, which PostgreSQL 15 cannot produce). Every message is also
 * decoded truncated at every length: each must fail cleanly.
 */
#include "pgferry/buf.h"
#include "pgferry/decoder.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static pgoutput_message_t *m;
static pgf_error_t err;

static void setup(void)
{
	m = malloc(sizeof(*m));
	memset(&err, 0, sizeof(err));
}

static void teardown(void)
{
	free(m);
}

static void str(buf_t *b, const char *s)
{
	buf_append(b, s, strlen(s) + 1);
}

static int decode(int proto, bool in_stream, const buf_t *b)
{
	pgoutput_decoder_t d;

	pgoutput_decoder_init(&d, proto);
	d.in_stream = in_stream;
	return pgoutput_decode(&d, (const uint8_t *)b->data, b->len, m, &err);
}

/* Every proper prefix must fail without reading past it (ASan checks). */
static void check_truncations(int proto, bool in_stream, const buf_t *b)
{
	/* its own message: a failed decode leaves the struct undefined */
	pgoutput_message_t *scratch = malloc(sizeof(*scratch));
	size_t n;

	for (n = 0; n < b->len; n++) {
		pgoutput_decoder_t d;
		uint8_t *copy = malloc(n ? n : 1);
		memcpy(copy, b->data, n);
		pgoutput_decoder_init(&d, proto);
		d.in_stream = in_stream;
		ck_assert_msg(pgoutput_decode(&d, copy, n, scratch, &err) == PGF_ERR,
		              "prefix of %zu bytes of a %zu-byte '%c' message decoded", n, b->len,
		              b->data[0]);
		ck_assert(err.message[0] != '\0');
		free(copy);
	}
	free(scratch);
}

static void tuple_text(buf_t *b, const char *const *vals, int n)
{
	int i;

	buf_append_be16(b, (uint16_t)n);
	for (i = 0; i < n; i++) {
		if (vals[i] == NULL)
			buf_append_u8(b, 'n');
		else if (strcmp(vals[i], "<u>") == 0)
			buf_append_u8(b, 'u');
		else {
			buf_append_u8(b, 't');
			buf_append_be32(b, (uint32_t)strlen(vals[i]));
			buf_append(b, vals[i], strlen(vals[i]));
		}
	}
}

START_TEST(begin_commit)
{
	buf_t b;

	buf_init(&b);
	buf_append_u8(&b, 'B');
	buf_append_be64(&b, 0x16B3748);
	buf_append_be64(&b, 1000000);
	buf_append_be32(&b, 742);
	ck_assert_int_eq(decode(1, false, &b), PGF_OK);
	ck_assert_int_eq(m->type, PGOUTPUT_BEGIN);
	ck_assert_uint_eq(m->u.begin.final_lsn, 0x16B3748);
	ck_assert_int_eq(m->u.begin.commit_time, 1000000);
	ck_assert_uint_eq(m->u.begin.xid, 742);
	check_truncations(1, false, &b);

	buf_reset(&b);
	buf_append_u8(&b, 'C');
	buf_append_u8(&b, 0);
	buf_append_be64(&b, 0x100);
	buf_append_be64(&b, 0x180);
	buf_append_be64(&b, (uint64_t)-5);
	ck_assert_int_eq(decode(1, false, &b), PGF_OK);
	ck_assert_uint_eq(m->u.commit.commit_lsn, 0x100);
	ck_assert_uint_eq(m->u.commit.end_lsn, 0x180);
	ck_assert_int_eq(m->u.commit.commit_time, -5);
	check_truncations(1, false, &b);
	/* a trailing byte is an error too */
	buf_append_u8(&b, 0);
	ck_assert_int_eq(decode(1, false, &b), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "unexpected bytes"));
	buf_free(&b);
}
END_TEST

static void relation_message(buf_t *b, bool with_xid)
{
	buf_append_u8(b, 'R');
	if (with_xid)
		buf_append_be32(b, 900);
	buf_append_be32(b, 16384);
	str(b, "public");
	str(b, "t \"q\"");
	buf_append_u8(b, 'd');
	buf_append_be16(b, 2);
	buf_append_u8(b, 1);
	str(b, "id");
	buf_append_be32(b, 23);
	buf_append_be32(b, (uint32_t)-1);
	buf_append_u8(b, 0);
	str(b, "v");
	buf_append_be32(b, 25);
	buf_append_be32(b, 14);
}

START_TEST(relation_and_cache)
{
	buf_t b;
	relcache_t *rc = relcache_create();
	const relcache_entry_t *e;
	uint64_t gen;

	buf_init(&b);
	relation_message(&b, false);
	ck_assert_int_eq(decode(2, false, &b), PGF_OK);
	ck_assert_uint_eq(m->u.relation.relid, 16384);
	ck_assert_str_eq(m->u.relation.namespace, "public");
	ck_assert_str_eq(m->u.relation.name, "t \"q\"");
	ck_assert_int_eq(m->u.relation.ncolumns, 2);
	ck_assert_int_eq(m->u.relation.columns[0].flags, 1);
	ck_assert_int_eq(m->u.relation.columns[0].type_mod, -1);
	ck_assert_int_eq(m->u.relation.columns[1].type_mod, 14);
	check_truncations(2, false, &b);
	ck_assert_int_eq(relcache_update(rc, m, &err), PGF_OK);
	e = relcache_get(rc, 16384);
	ck_assert_ptr_nonnull(e);
	ck_assert(e->columns[0].key);
	ck_assert(!e->columns[1].key);
	ck_assert_str_eq(e->columns[1].name, "v");
	/* the same description again (the walsender re-sends it after a VACUUM
	 * or ANALYZE) keeps the entry and its generation: what apply checked
	 * and prepared for it holds */
	gen = e->generation;
	ck_assert(relcache_same(rc, m));
	ck_assert_int_eq(relcache_update(rc, m, &err), PGF_OK);
	ck_assert_ptr_eq(relcache_get(rc, 16384), e);
	ck_assert_uint_eq(e->generation, gen);
	/* any difference is a new description with a new generation */
	m->u.relation.columns[1].type_mod = 15;
	ck_assert(!relcache_same(rc, m));
	ck_assert_int_eq(relcache_update(rc, m, &err), PGF_OK);
	ck_assert_uint_gt(relcache_get(rc, 16384)->generation, gen);
	gen = relcache_get(rc, 16384)->generation;
	m->u.relation.columns[0].flags = 0;
	ck_assert(!relcache_same(rc, m));
	ck_assert_int_eq(relcache_update(rc, m, &err), PGF_OK);
	ck_assert_uint_gt(relcache_get(rc, 16384)->generation, gen);
	m->u.relation.replica_identity = 'f';
	ck_assert(!relcache_same(rc, m));
	m->u.relation.replica_identity = 'd';
	m->u.relation.name = "t2";
	ck_assert(!relcache_same(rc, m));
	m->u.relation.name = "t \"q\"";
	m->u.relation.columns[1].name = "w";
	ck_assert(!relcache_same(rc, m));
	m->u.relation.columns[1].name = "v";
	ck_assert(relcache_same(rc, m));
	/* a re-sent Relation with another column list replaces the entry */
	m->u.relation.ncolumns = 1;
	ck_assert(!relcache_same(rc, m));
	ck_assert_int_eq(relcache_update(rc, m, &err), PGF_OK);
	ck_assert_int_eq(relcache_get(rc, 16384)->ncolumns, 1);
	ck_assert_ptr_null(relcache_get(rc, 1));
	/* inside a stream block the xid comes first */
	buf_reset(&b);
	relation_message(&b, true);
	ck_assert_int_eq(decode(2, true, &b), PGF_OK);
	ck_assert(m->has_xid);
	ck_assert_uint_eq(m->xid, 900);
	check_truncations(2, true, &b);
	/* a column count the message cannot hold is refused before reading */
	buf_reset(&b);
	buf_append_u8(&b, 'R');
	buf_append_be32(&b, 1);
	str(&b, "s");
	str(&b, "t");
	buf_append_u8(&b, 'd');
	buf_append_be16(&b, 60000);
	ck_assert_int_eq(decode(2, false, &b), PGF_ERR);
	relcache_clear(rc);
	ck_assert_ptr_null(relcache_get(rc, 16384));
	relcache_free(rc);
	buf_free(&b);
}
END_TEST

START_TEST(type_and_origin)
{
	buf_t b;
	relcache_t *rc = relcache_create();

	buf_init(&b);
	buf_append_u8(&b, 'Y');
	buf_append_be32(&b, 70000);
	str(&b, "public");
	str(&b, "mood");
	ck_assert_int_eq(decode(1, false, &b), PGF_OK);
	ck_assert_uint_eq(m->u.type.type_oid, 70000);
	ck_assert_int_eq(relcache_update_type(rc, m, &err), PGF_OK);
	ck_assert_str_eq(relcache_type_name(rc, 70000), "public.mood");
	check_truncations(1, false, &b);
	buf_reset(&b);
	buf_append_u8(&b, 'O');
	buf_append_be64(&b, 77);
	str(&b, "other");
	ck_assert_int_eq(decode(1, false, &b), PGF_OK);
	ck_assert_str_eq(m->u.origin.name, "other");
	check_truncations(1, false, &b);
	relcache_free(rc);
	buf_free(&b);
}
END_TEST

START_TEST(insert_update_delete)
{
	const char *row[] = {"1", "héllo", NULL, "<u>"};
	buf_t b;

	buf_init(&b);
	buf_append_u8(&b, 'I');
	buf_append_be32(&b, 16384);
	buf_append_u8(&b, 'N');
	tuple_text(&b, row, 3);
	ck_assert_int_eq(decode(1, false, &b), PGF_OK);
	ck_assert_int_eq(m->u.insert.new_tuple.ncolumns, 3);
	ck_assert_int_eq(m->u.insert.new_tuple.columns[0].kind, 't');
	ck_assert_int_eq(m->u.insert.new_tuple.columns[1].len, strlen("héllo"));
	ck_assert(memcmp(m->u.insert.new_tuple.columns[1].data, "héllo", strlen("héllo")) == 0);
	ck_assert_int_eq(m->u.insert.new_tuple.columns[2].kind, 'n');
	check_truncations(1, false, &b);

	/* update with the old key, and an unchanged TOAST column */
	buf_reset(&b);
	buf_append_u8(&b, 'U');
	buf_append_be32(&b, 16384);
	buf_append_u8(&b, 'K');
	tuple_text(&b, row, 1);
	buf_append_u8(&b, 'N');
	tuple_text(&b, row, 4);
	ck_assert_int_eq(decode(1, false, &b), PGF_OK);
	ck_assert_int_eq(m->u.update.old_kind, 'K');
	ck_assert_int_eq(m->u.update.old_tuple.ncolumns, 1);
	ck_assert_int_eq(m->u.update.new_tuple.columns[3].kind, 'u');
	check_truncations(1, false, &b);

	/* update without an old tuple, streamed (xid first) */
	buf_reset(&b);
	buf_append_u8(&b, 'U');
	buf_append_be32(&b, 555);
	buf_append_be32(&b, 16384);
	buf_append_u8(&b, 'N');
	tuple_text(&b, row, 2);
	ck_assert_int_eq(decode(3, true, &b), PGF_OK);
	ck_assert_int_eq(m->u.update.old_kind, 0);
	ck_assert_uint_eq(m->xid, 555);
	check_truncations(3, true, &b);

	/* delete with the whole old row (REPLICA IDENTITY FULL) */
	buf_reset(&b);
	buf_append_u8(&b, 'D');
	buf_append_be32(&b, 16384);
	buf_append_u8(&b, 'O');
	tuple_text(&b, row, 3);
	ck_assert_int_eq(decode(1, false, &b), PGF_OK);
	ck_assert_int_eq(m->u.delete_.old_kind, 'O');
	check_truncations(1, false, &b);

	/* binary column */
	buf_reset(&b);
	buf_append_u8(&b, 'I');
	buf_append_be32(&b, 1);
	buf_append_u8(&b, 'N');
	buf_append_be16(&b, 1);
	buf_append_u8(&b, 'b');
	buf_append_be32(&b, 3);
	buf_append(&b, "\x00\xff\x10", 3);
	ck_assert_int_eq(decode(1, false, &b), PGF_OK);
	ck_assert_int_eq(m->u.insert.new_tuple.columns[0].kind, 'b');
	ck_assert_int_eq(m->u.insert.new_tuple.columns[0].len, 3);
	buf_free(&b);
}
END_TEST

START_TEST(malformed_changes)
{
	buf_t b;

	buf_init(&b);
	/* unknown column kind */
	buf_append_u8(&b, 'I');
	buf_append_be32(&b, 1);
	buf_append_u8(&b, 'N');
	buf_append_be16(&b, 1);
	buf_append_u8(&b, 'x');
	ck_assert_int_eq(decode(1, false, &b), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "column kind"));
	ck_assert_ptr_nonnull(strstr(err.message, "insert"));
	ck_assert_ptr_nonnull(strstr(err.message, "byte 8"));
	/* a value length beyond the message */
	buf_reset(&b);
	buf_append_u8(&b, 'I');
	buf_append_be32(&b, 1);
	buf_append_u8(&b, 'N');
	buf_append_be16(&b, 1);
	buf_append_u8(&b, 't');
	buf_append_be32(&b, 0x7fffffff);
	buf_append(&b, "abc", 3);
	ck_assert_int_eq(decode(1, false, &b), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "truncated"));
	/* too many columns */
	buf_reset(&b);
	buf_append_u8(&b, 'I');
	buf_append_be32(&b, 1);
	buf_append_u8(&b, 'N');
	buf_append_be16(&b, 2000);
	ck_assert_int_eq(decode(1, false, &b), PGF_ERR);
	/* missing N marker */
	buf_reset(&b);
	buf_append_u8(&b, 'I');
	buf_append_be32(&b, 1);
	buf_append_u8(&b, 'Q');
	ck_assert_int_eq(decode(1, false, &b), PGF_ERR);
	/* delete needs K or O */
	buf_reset(&b);
	buf_append_u8(&b, 'D');
	buf_append_be32(&b, 1);
	buf_append_u8(&b, 'N');
	ck_assert_int_eq(decode(1, false, &b), PGF_ERR);
	/* unknown message type, empty message */
	buf_reset(&b);
	buf_append_u8(&b, 'Z');
	ck_assert_int_eq(decode(1, false, &b), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "unknown pgoutput message type 0x5a"));
	buf_reset(&b);
	ck_assert_int_eq(decode(1, false, &b), PGF_ERR);
	/* stream stop outside a block */
	buf_append_u8(&b, 'E');
	ck_assert_int_eq(decode(2, false, &b), PGF_ERR);
	buf_free(&b);
}
END_TEST

START_TEST(truncate_and_message)
{
	buf_t b;

	buf_init(&b);
	buf_append_u8(&b, 'T');
	buf_append_be32(&b, 2);
	buf_append_u8(&b, 3);
	buf_append_be32(&b, 16384);
	buf_append_be32(&b, 16390);
	ck_assert_int_eq(decode(1, false, &b), PGF_OK);
	ck_assert_uint_eq(m->u.truncate.nrelids, 2);
	ck_assert_uint_eq(m->u.truncate.options, 3);
	ck_assert_uint_eq(pgoutput_truncate_relid(m, 1), 16390);
	check_truncations(1, false, &b);
	/* a count the message cannot hold */
	buf_reset(&b);
	buf_append_u8(&b, 'T');
	buf_append_be32(&b, 0x40000000);
	buf_append_u8(&b, 0);
	ck_assert_int_eq(decode(1, false, &b), PGF_ERR);

	buf_reset(&b);
	buf_append_u8(&b, 'M');
	buf_append_u8(&b, 1);
	buf_append_be64(&b, 0x500);
	str(&b, "pgferry.heartbeat");
	buf_append_be32(&b, 5);
	buf_append(&b, "x\0y\xffz", 5);
	ck_assert_int_eq(decode(1, false, &b), PGF_OK);
	ck_assert_int_eq(m->u.message.flags, 1);
	ck_assert_str_eq(m->u.message.prefix, "pgferry.heartbeat");
	ck_assert_uint_eq(m->u.message.content_len, 5);
	check_truncations(1, false, &b);
	buf_free(&b);
}
END_TEST

START_TEST(streams_v2_to_v4)
{
	buf_t b;
	pgoutput_decoder_t d;

	buf_init(&b);
	buf_append_u8(&b, 'S');
	buf_append_be32(&b, 900);
	buf_append_u8(&b, 1);
	pgoutput_decoder_init(&d, 2);
	ck_assert_int_eq(pgoutput_decode(&d, (uint8_t *)b.data, b.len, m, &err), PGF_OK);
	ck_assert(d.in_stream);
	ck_assert_uint_eq(m->u.stream_start.xid, 900);
	/* a second start inside the block is malformed */
	ck_assert_int_eq(pgoutput_decode(&d, (uint8_t *)b.data, b.len, m, &err), PGF_ERR);
	check_truncations(2, false, &b);
	buf_reset(&b);
	buf_append_u8(&b, 'E');
	ck_assert_int_eq(pgoutput_decode(&d, (uint8_t *)b.data, b.len, m, &err), PGF_OK);
	ck_assert(!d.in_stream);

	buf_reset(&b);
	buf_append_u8(&b, 'c');
	buf_append_be32(&b, 900);
	buf_append_u8(&b, 0);
	buf_append_be64(&b, 0x700);
	buf_append_be64(&b, 0x780);
	buf_append_be64(&b, 42);
	ck_assert_int_eq(decode(2, false, &b), PGF_OK);
	ck_assert_uint_eq(m->u.stream_commit.end_lsn, 0x780);
	check_truncations(2, false, &b);

	/* stream abort, protocol 2/3: xid and subxid */
	buf_reset(&b);
	buf_append_u8(&b, 'A');
	buf_append_be32(&b, 900);
	buf_append_be32(&b, 901);
	ck_assert_int_eq(decode(3, false, &b), PGF_OK);
	ck_assert(!m->u.stream_abort.has_abort_lsn);
	ck_assert_uint_eq(m->u.stream_abort.subxid, 901);
	check_truncations(3, false, &b);
	/* protocol 4 with parallel streaming adds the abort LSN and time */
	buf_append_be64(&b, 0x900);
	buf_append_be64(&b, 77);
	ck_assert_int_eq(decode(4, false, &b), PGF_OK);
	ck_assert(m->u.stream_abort.has_abort_lsn);
	ck_assert_uint_eq(m->u.stream_abort.abort_lsn, 0x900);
	ck_assert_int_eq(m->u.stream_abort.abort_time, 77);
	/* ... which a protocol 3 decoder refuses as trailing bytes */
	ck_assert_int_eq(decode(3, false, &b), PGF_ERR);
	buf_free(&b);
}
END_TEST

/* The network thread's decode: a change's body is left for the apply
 * thread; its type and, in a stream block, its xid are read; the rest is
 * decoded whole, with the stream state kept. */
START_TEST(header_only)
{
	const char *vals[2] = {"1", "x"};
	pgoutput_decoder_t d;
	buf_t b;

	buf_init(&b);
	pgoutput_decoder_init(&d, 2);
	/* an insert whose body would not decode: its header does */
	buf_append_u8(&b, 'I');
	buf_append_be32(&b, 16384);
	buf_append_u8(&b, 'N');
	buf_append_be16(&b, 1);
	buf_append_u8(&b, 'x');
	ck_assert_int_eq(pgoutput_decode_header(&d, (uint8_t *)b.data, b.len, m, &err), PGF_OK);
	ck_assert_int_eq(m->type, PGOUTPUT_INSERT);
	ck_assert(!m->has_xid);
	ck_assert_int_eq(pgoutput_decode(&d, (uint8_t *)b.data, b.len, m, &err), PGF_ERR);
	/* inside a stream block: the xid */
	buf_reset(&b);
	buf_append_u8(&b, 'S');
	buf_append_be32(&b, 900);
	buf_append_u8(&b, 1);
	ck_assert_int_eq(pgoutput_decode_header(&d, (uint8_t *)b.data, b.len, m, &err), PGF_OK);
	ck_assert(d.in_stream);
	buf_reset(&b);
	buf_append_u8(&b, 'U');
	buf_append_be32(&b, 901);
	buf_append_be32(&b, 16384);
	buf_append_u8(&b, 'N');
	tuple_text(&b, vals, 2);
	ck_assert_int_eq(pgoutput_decode_header(&d, (uint8_t *)b.data, b.len, m, &err), PGF_OK);
	ck_assert_int_eq(m->type, PGOUTPUT_UPDATE);
	ck_assert(m->has_xid);
	ck_assert_uint_eq(m->xid, 901);
	/* a body too short for its xid, and an empty message, fail */
	ck_assert_int_eq(pgoutput_decode_header(&d, (uint8_t *)b.data, 3, m, &err), PGF_ERR);
	ck_assert_int_eq(pgoutput_decode_header(&d, (uint8_t *)b.data, 0, m, &err), PGF_ERR);
	buf_reset(&b);
	buf_append_u8(&b, 'E');
	ck_assert_int_eq(pgoutput_decode_header(&d, (uint8_t *)b.data, b.len, m, &err), PGF_OK);
	ck_assert(!d.in_stream);
	/* boundaries whole */
	buf_reset(&b);
	buf_append_u8(&b, 'C');
	buf_append_u8(&b, 0);
	buf_append_be64(&b, 0x500);
	buf_append_be64(&b, 0x580);
	buf_append_be64(&b, 42);
	ck_assert_int_eq(pgoutput_decode_header(&d, (uint8_t *)b.data, b.len, m, &err), PGF_OK);
	ck_assert_uint_eq(m->u.commit.commit_lsn, 0x500);
	ck_assert_uint_eq(m->u.commit.end_lsn, 0x580);
	buf_free(&b);
}
END_TEST

/* The message rebuilt from its facts equals the message decoded, field by
 * field, for every kind the sink's apply thread does not decode again. */
static void check_facts(int proto, bool in_stream, const buf_t *b)
{
	pgoutput_message_t *r = malloc(sizeof(*r));
	const uint8_t *data = (const uint8_t *)b->data;
	pgoutput_decoder_t d;
	pgoutput_facts_t f;

	pgoutput_decoder_init(&d, proto);
	d.in_stream = in_stream;
	ck_assert_int_eq(pgoutput_decode_header(&d, data, b->len, m, &err), PGF_OK);
	ck_assert(!pgoutput_header_only((uint8_t)m->type));
	pgoutput_facts_set(m, data, &f);
	memset(r, 0xa5, sizeof(*r));
	pgoutput_facts_message((uint8_t)m->type, m->has_xid ? m->xid : 0, &f, data, b->len, r);
	ck_assert_int_eq(r->type, m->type);
	ck_assert_uint_eq(r->length, m->length);
	ck_assert_int_eq(r->has_xid, m->has_xid);
	ck_assert_uint_eq(r->xid, m->xid);
	switch (m->type) {
	case PGOUTPUT_BEGIN:
		ck_assert_uint_eq(r->u.begin.final_lsn, m->u.begin.final_lsn);
		ck_assert_int_eq(r->u.begin.commit_time, m->u.begin.commit_time);
		ck_assert_uint_eq(r->u.begin.xid, m->u.begin.xid);
		break;
	case PGOUTPUT_COMMIT:
		ck_assert_uint_eq(r->u.commit.commit_lsn, m->u.commit.commit_lsn);
		ck_assert_uint_eq(r->u.commit.end_lsn, m->u.commit.end_lsn);
		ck_assert_int_eq(r->u.commit.commit_time, m->u.commit.commit_time);
		break;
	case PGOUTPUT_STREAM_COMMIT:
		ck_assert_uint_eq(r->u.stream_commit.xid, m->u.stream_commit.xid);
		ck_assert_uint_eq(r->u.stream_commit.commit_lsn, m->u.stream_commit.commit_lsn);
		ck_assert_uint_eq(r->u.stream_commit.end_lsn, m->u.stream_commit.end_lsn);
		ck_assert_int_eq(r->u.stream_commit.commit_time, m->u.stream_commit.commit_time);
		break;
	case PGOUTPUT_ORIGIN:
		ck_assert_uint_eq(r->u.origin.commit_lsn, m->u.origin.commit_lsn);
		ck_assert_ptr_eq(r->u.origin.name, m->u.origin.name);
		break;
	case PGOUTPUT_MESSAGE:
		ck_assert_uint_eq(r->u.message.flags, m->u.message.flags);
		ck_assert_uint_eq(r->u.message.lsn, m->u.message.lsn);
		ck_assert_ptr_eq(r->u.message.prefix, m->u.message.prefix);
		ck_assert_ptr_eq(r->u.message.content, m->u.message.content);
		ck_assert_uint_eq(r->u.message.content_len, m->u.message.content_len);
		break;
	case PGOUTPUT_STREAM_START:
		ck_assert_uint_eq(r->u.stream_start.xid, m->u.stream_start.xid);
		ck_assert_uint_eq(r->u.stream_start.first_segment, m->u.stream_start.first_segment);
		break;
	case PGOUTPUT_STREAM_ABORT:
		ck_assert_uint_eq(r->u.stream_abort.xid, m->u.stream_abort.xid);
		ck_assert_uint_eq(r->u.stream_abort.subxid, m->u.stream_abort.subxid);
		ck_assert_int_eq(r->u.stream_abort.has_abort_lsn, m->u.stream_abort.has_abort_lsn);
		ck_assert_uint_eq(r->u.stream_abort.abort_lsn, m->u.stream_abort.abort_lsn);
		ck_assert_int_eq(r->u.stream_abort.abort_time, m->u.stream_abort.abort_time);
		break;
	default: /* Stream Stop and two-phase messages: the type alone */
		break;
	}
	free(r);
}

START_TEST(facts_rebuild)
{
	buf_t b;

	buf_init(&b);
	buf_append_u8(&b, 'B');
	buf_append_be64(&b, 0x1234);
	buf_append_be64(&b, 777);
	buf_append_be32(&b, 42);
	check_facts(1, false, &b);
	buf_reset(&b);
	buf_append_u8(&b, 'C');
	buf_append_u8(&b, 0);
	buf_append_be64(&b, 0x500);
	buf_append_be64(&b, 0x580);
	buf_append_be64(&b, (uint64_t)-5);
	check_facts(1, false, &b);
	buf_reset(&b);
	buf_append_u8(&b, 'O');
	buf_append_be64(&b, 0x900);
	str(&b, "elsewhere");
	check_facts(1, false, &b);
	/* a message, outside a stream block and inside one (with its xid) */
	buf_reset(&b);
	buf_append_u8(&b, 'M');
	buf_append_u8(&b, 1);
	buf_append_be64(&b, 0x700);
	str(&b, "pgferry.sequences");
	buf_append_be32(&b, 3);
	buf_append(&b, "abc", 3);
	check_facts(2, false, &b);
	buf_reset(&b);
	buf_append_u8(&b, 'M');
	buf_append_be32(&b, 903);
	buf_append_u8(&b, 0);
	buf_append_be64(&b, 0x701);
	str(&b, "");
	buf_append_be32(&b, 0);
	check_facts(2, true, &b);
	buf_reset(&b);
	buf_append_u8(&b, 'S');
	buf_append_be32(&b, 900);
	buf_append_u8(&b, 1);
	check_facts(2, false, &b);
	buf_reset(&b);
	buf_append_u8(&b, 'E');
	check_facts(2, true, &b);
	buf_reset(&b);
	buf_append_u8(&b, 'c');
	buf_append_be32(&b, 900);
	buf_append_u8(&b, 0);
	buf_append_be64(&b, 0x800);
	buf_append_be64(&b, 0x880);
	buf_append_be64(&b, 99);
	check_facts(2, false, &b);
	/* stream abort without and with its LSN and time (protocol 4) */
	buf_reset(&b);
	buf_append_u8(&b, 'A');
	buf_append_be32(&b, 900);
	buf_append_be32(&b, 905);
	check_facts(2, false, &b);
	buf_append_be64(&b, 0x990);
	buf_append_be64(&b, 1234);
	check_facts(4, false, &b);
	buf_free(&b);
}
END_TEST

START_TEST(two_phase)
{
	buf_t b;

	buf_init(&b);
	buf_append_u8(&b, 'b');
	buf_append_be64(&b, 0x10);
	buf_append_be64(&b, 0x20);
	buf_append_be64(&b, 5);
	buf_append_be32(&b, 77);
	str(&b, "gid-1");
	ck_assert_int_eq(decode(3, false, &b), PGF_OK);
	ck_assert_str_eq(m->u.begin_prepare.gid, "gid-1");
	check_truncations(3, false, &b);

	buf_reset(&b);
	buf_append_u8(&b, 'P');
	buf_append_u8(&b, 0);
	buf_append_be64(&b, 0x10);
	buf_append_be64(&b, 0x20);
	buf_append_be64(&b, 5);
	buf_append_be32(&b, 77);
	str(&b, "gid-1");
	ck_assert_int_eq(decode(3, false, &b), PGF_OK);
	ck_assert_uint_eq(m->u.prepare.end_lsn, 0x20);
	check_truncations(3, false, &b);
	b.data[0] = 'p'; /* stream prepare: same layout */
	ck_assert_int_eq(decode(3, false, &b), PGF_OK);
	ck_assert(m->has_xid);

	buf_reset(&b);
	buf_append_u8(&b, 'K');
	buf_append_u8(&b, 0);
	buf_append_be64(&b, 0x30);
	buf_append_be64(&b, 0x40);
	buf_append_be64(&b, 6);
	buf_append_be32(&b, 77);
	str(&b, "gid-1");
	ck_assert_int_eq(decode(3, false, &b), PGF_OK);
	ck_assert_uint_eq(m->u.commit_prepared.commit_lsn, 0x30);
	check_truncations(3, false, &b);

	buf_reset(&b);
	buf_append_u8(&b, 'r');
	buf_append_u8(&b, 0);
	buf_append_be64(&b, 0x20);
	buf_append_be64(&b, 0x50);
	buf_append_be64(&b, 5);
	buf_append_be64(&b, 9);
	buf_append_be32(&b, 77);
	str(&b, "gid-2");
	ck_assert_int_eq(decode(3, false, &b), PGF_OK);
	ck_assert_uint_eq(m->u.rollback_prepared.rollback_end_lsn, 0x50);
	ck_assert_int_eq(m->u.rollback_prepared.rollback_time, 9);
	check_truncations(3, false, &b);
	/* a gid without its terminator */
	b.len--;
	ck_assert_int_eq(decode(3, false, &b), PGF_ERR);
	buf_free(&b);
}
END_TEST

START_TEST(walsender_messages)
{
	buf_t b;
	walsender_message_t w;
	size_t n;

	buf_init(&b);
	buf_append_u8(&b, 'w');
	buf_append_be64(&b, 0x100);
	buf_append_be64(&b, 0x200);
	buf_append_be64(&b, 99);
	buf_append_u8(&b, 'E');
	ck_assert_int_eq(walsender_parse((uint8_t *)b.data, b.len, &w, &err), PGF_OK);
	ck_assert_int_eq(w.kind, 'w');
	ck_assert_uint_eq(w.wal_start, 0x100);
	ck_assert_uint_eq(w.wal_end, 0x200);
	ck_assert_uint_eq(w.payload_len, 1);
	for (n = 0; n < b.len; n++)
		ck_assert_int_eq(walsender_parse((uint8_t *)b.data, n, &w, &err), PGF_ERR);
	buf_reset(&b);
	buf_append_u8(&b, 'k');
	buf_append_be64(&b, 0x300);
	buf_append_be64(&b, 7);
	buf_append_u8(&b, 1);
	ck_assert_int_eq(walsender_parse((uint8_t *)b.data, b.len, &w, &err), PGF_OK);
	ck_assert(w.reply_requested);
	ck_assert_uint_eq(w.wal_end, 0x300);
	for (n = 0; n < b.len; n++)
		ck_assert_int_eq(walsender_parse((uint8_t *)b.data, n, &w, &err), PGF_ERR);
	buf_append_u8(&b, 0);
	ck_assert_int_eq(walsender_parse((uint8_t *)b.data, b.len, &w, &err), PGF_ERR);
	b.data[0] = 'q';
	ck_assert_int_eq(walsender_parse((uint8_t *)b.data, b.len, &w, &err), PGF_ERR);
	buf_free(&b);
}
END_TEST

START_TEST(capture_reader)
{
	buf_t b;
	capture_reader_t cr;
	const uint8_t *rec;
	size_t len;

	buf_init(&b);
	buf_append(&b, CAPTURE_MAGIC, CAPTURE_MAGIC_LEN);
	buf_append_be32(&b, 3);
	buf_append(&b, "abc", 3);
	buf_append_be32(&b, 10);
	buf_append(&b, "xy", 2);
	ck_assert_int_eq(capture_reader_init(&cr, (uint8_t *)b.data, b.len, &err), PGF_OK);
	ck_assert_int_eq(capture_reader_next(&cr, &rec, &len, &err), 1);
	ck_assert_uint_eq(len, 3);
	ck_assert_int_eq(capture_reader_next(&cr, &rec, &len, &err), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "record 2"));
	ck_assert_str_eq(err.where, "byte 15");
	ck_assert_int_eq(capture_reader_init(&cr, (uint8_t *)"PGFCAP2\n", 8, &err), PGF_ERR);
	ck_assert_int_eq(capture_reader_init(&cr, (uint8_t *)"PG", 2, &err), PGF_ERR);
	buf_reset(&b);
	buf_append(&b, CAPTURE_MAGIC, CAPTURE_MAGIC_LEN);
	buf_append(&b, "\0\0", 2);
	capture_reader_init(&cr, (uint8_t *)b.data, b.len, &err);
	ck_assert_int_eq(capture_reader_next(&cr, &rec, &len, &err), PGF_ERR);
	buf_reset(&b);
	buf_append(&b, CAPTURE_MAGIC, CAPTURE_MAGIC_LEN);
	capture_reader_init(&cr, (uint8_t *)b.data, b.len, &err);
	ck_assert_int_eq(capture_reader_next(&cr, &rec, &len, &err), 0);
	buf_free(&b);
}
END_TEST

START_TEST(lsn_and_time_text)
{
	char t[40];
	uint64_t lsn;

	ck_assert_str_eq(lsn_format(0x16B3748, t), "0/16B3748");
	ck_assert_str_eq(lsn_format(0xABCDEF0012345678ULL, t), "ABCDEF00/12345678");
	ck_assert_int_eq(lsn_parse("ABCDEF00/12345678", &lsn), PGF_OK);
	ck_assert_uint_eq(lsn, 0xABCDEF0012345678ULL);
	ck_assert_int_eq(lsn_parse("0/0", &lsn), PGF_OK);
	ck_assert_int_eq(lsn_parse("0/", &lsn), PGF_ERR);
	ck_assert_int_eq(lsn_parse("/1", &lsn), PGF_ERR);
	ck_assert_int_eq(lsn_parse("1G/1", &lsn), PGF_ERR);
	ck_assert_int_eq(lsn_parse("123456789/1", &lsn), PGF_ERR);
	/* 2026-01-02T03:04:05.678901Z */
	ck_assert_str_eq(pgtime_format_iso(unix_us_to_pgtime(1767323045678901LL), t),
	                 "2026-01-02T03:04:05.678901Z");
	ck_assert_str_eq(pgtime_format_iso(-1, t), "1999-12-31T23:59:59.999999Z");
	/* found by fuzzing: extreme values must not overflow */
	ck_assert_str_eq(pgtime_format_iso(INT64_MAX, t), "infinity");
	ck_assert_str_eq(pgtime_format_iso(INT64_MIN, t), "-infinity");
	ck_assert_str_eq(pgtime_format_iso(9223090561878152021LL, t), "invalid");
	ck_assert_int_eq(pgtime_to_unix_us(INT64_MAX - 5), INT64_MAX);
	ck_assert_int_eq(unix_us_to_pgtime(INT64_MIN + 5), INT64_MIN);
}
END_TEST

Suite *pgoutput_suite(void)
{
	Suite *s = suite_create("pgoutput");
	TCase *tc = tcase_create("pgoutput");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, begin_commit);
	tcase_add_test(tc, relation_and_cache);
	tcase_add_test(tc, type_and_origin);
	tcase_add_test(tc, insert_update_delete);
	tcase_add_test(tc, malformed_changes);
	tcase_add_test(tc, truncate_and_message);
	tcase_add_test(tc, streams_v2_to_v4);
	tcase_add_test(tc, header_only);
	tcase_add_test(tc, facts_rebuild);
	tcase_add_test(tc, two_phase);
	tcase_add_test(tc, walsender_messages);
	tcase_add_test(tc, capture_reader);
	tcase_add_test(tc, lsn_and_time_text);
	suite_add_tcase(s, tc);
	return s;
}
