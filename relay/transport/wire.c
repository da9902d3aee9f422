/*
 * wire.c — encoding and decoding of pgferry's frames (see wire.h and
 * docs/PROTOCOL.md). Every decoder reads through reader_t and insists that
 * the payload is consumed exactly: trailing bytes are an error too.
 */
#include "pgferry/wire.h"

#include "pgferry/byteorder.h"
#include "pgferry/decoder.h"

#include <string.h>

static const char *const type_names[] = {
        "?",    "hello", "welcome", "batch",         "ack",
        "ping", "pong",  "error",   "end-of-stream", "primary-facts"};

const char *wire_type_name(uint8_t type)
{
	return type >= 1 && type <= WIRE_TYPE_MAX ? type_names[type] : "unknown";
}

/* CRC-32C (Castagnoli), bit by bit: it runs over 5 bytes per frame, and
 * unlike a hash it detects every error of up to 3 bits and every burst of
 * up to 32 bits in them. */
uint32_t wire_crc32c(const void *data, size_t n)
{
	const uint8_t *p = data;
	uint32_t crc = 0xffffffffu;

	while (n-- > 0) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
	}
	return ~crc;
}

void wire_append_header(buf_t *b, uint8_t type, uint32_t len)
{
	uint8_t h[5] = {type};

	be32_write(h + 1, len);

	buf_append(b, h, sizeof(h));
	buf_append_be32(b, wire_crc32c(h, sizeof(h)));
}

void wire_append_header_v1(buf_t *b, uint8_t type, uint32_t len)
{
	buf_append_u8(b, type);
	buf_append_be32(b, len);
}

int wire_check_header(const uint8_t *hdr, uint64_t offset, int64_t max_frame_bytes, uint8_t *type,
                      uint32_t *len, pgf_error_t *err)
{
	uint32_t carried = be32_read(hdr + 5), computed = wire_crc32c(hdr, 5);

	*type = hdr[0];
	*len = be32_read(hdr + 1);
	/* the check first: type and length mean nothing in a damaged header */
	if (carried != computed) {
		error_set(err, PGF_E_PROTOCOL,
		          "damaged frame header at byte %llu of the stream: its check does not "
		          "match its type and length",
		          (unsigned long long)offset);
		error_detail(err,
		             "The header reads type %u, length %u, check 0x%08x, but CRC-32C of "
		             "that type and length is 0x%08x. Bytes were altered on the way (with "
		             "tls = off nothing else protects them), or the peer is not a pgferry "
		             "of wire protocol %d. Nothing of this frame was used.",
		             *type, *len, carried, computed, WIRE_PROTOCOL_VERSION);
		error_hint(err,
		           "The connection is dropped and the source resends from the DR "
		           "database's committed progress: nothing is lost or applied twice. If "
		           "it recurs, find what alters bytes between the hosts (a proxy, a "
		           "faulty network card), or use tls = on, which refuses any alteration.");
		return PGF_ERR;
	}
	if (*type < 1 || *type > WIRE_TYPE_MAX) {
		error_set(err, PGF_E_PROTOCOL, "unknown frame type %u at byte %llu of the stream",
		          *type, (unsigned long long)offset);
		error_detail(err,
		             "The peer is not a pgferry %s of wire protocol %d, or a newer one.",
		             "process", WIRE_PROTOCOL_VERSION);
		return PGF_ERR;
	}
	if ((int64_t)*len > max_frame_bytes) {
		error_set(err, PGF_E_PROTOCOL,
		          "%s frame of %u bytes exceeds max_frame_bytes (%lld)",
		          wire_type_name(*type), *len, (long long)max_frame_bytes);
		error_hint(err, "If the peer is a genuine pgferry, give both sides the same "
		                "max_frame_bytes.");
		return PGF_ERR;
	}
	return PGF_OK;
}

/*
 * Protocol 1 had 5-byte headers (type, length) and no check. What an older
 * peer sends first is recognisable from its first 7 bytes: a source's hello
 * starts its payload with version 1, a sink's answer is an error frame
 * whose code comes first (a version 2 header has its check there).
 */
bool wire_header_is_v1(const uint8_t *p, size_t avail, int64_t max_frame_bytes, uint8_t *type,
                       uint32_t *len)
{
	uint16_t first;

	if (avail < WIRE_HEADER_LEN)
		return false;
	*type = p[0];
	*len = be32_read(p + 1);
	first = (uint16_t)((p[5] << 8) | p[6]);
	if ((int64_t)*len > max_frame_bytes || *len < 2)
		return false;
	if (*type == WIRE_HELLO)
		return first == 1;
	if (*type == WIRE_ERROR)
		return first >= WIRE_ERR_PROTOCOL && first <= WIRE_ERR_TOO_LARGE;
	return false;
}

static void put_string(buf_t *b, const char *s)
{
	size_t n = strlen(s);

	buf_append_be16(b, (uint16_t)(n > 0xffff ? 0xffff : n));
	buf_append(b, s, n > 0xffff ? 0xffff : n);
}

static int get_string(reader_t *r, char *out, size_t cap)
{
	uint16_t n;
	const uint8_t *p;

	if (reader_u16(r, &n) != PGF_OK || reader_bytes(r, n, &p) != PGF_OK || n >= cap ||
	    memchr(p, 0, n) != NULL)
		return PGF_ERR;
	memcpy(out, p, n);
	out[n] = '\0';
	return PGF_OK;
}

static int malformed(pgf_error_t *err, const char *what, const reader_t *r)
{
	error_set(err, PGF_E_PROTOCOL, "malformed %s frame at byte %zu of %zu", what, r->pos,
	          r->len);
	return PGF_ERR;
}

static int finish(pgf_error_t *err, const char *what, const reader_t *r)
{
	if (reader_remaining(r) != 0) {
		error_set(err, PGF_E_PROTOCOL, "%s frame has %zu unexpected trailing bytes", what,
		          reader_remaining(r));
		return PGF_ERR;
	}
	return PGF_OK;
}

/*
 * Every frame but BATCH (its own XXH3) and ERROR ends with a CRC-32C of the
 * payload before it: with tls = off nothing else protects an ACK or a
 * PRIMARY_FACTS, and one flipped bit in an applied LSN could make the
 * source confirm past what the DR side holds. ERROR goes unchecked so a
 * peer of another version still reads why it is refused; it only closes.
 */
static void seal(buf_t *b, size_t start)
{
	buf_append_be32(b, wire_crc32c(b->data + start, b->len - start));
}

static int unseal(const uint8_t *p, size_t *len, const char *what, pgf_error_t *err)
{
	uint32_t carried, computed;

	if (*len < 4)
		return error_set(err, PGF_E_PROTOCOL,
		                 "%s frame of %zu bytes is too short for its payload check", what,
		                 *len);
	carried = be32_read(p + *len - 4);
	computed = wire_crc32c(p, *len - 4);
	if (carried != computed) {
		error_set(err, PGF_E_PROTOCOL, "damaged %s frame: its payload fails its check",
		          what);
		error_detail(err,
		             "The frame carries CRC-32C %08x; its %zu payload bytes give %08x.",
		             carried, *len - 4, computed);
		error_hint(err,
		           "Bytes changed on the way (with tls = off nothing else protects "
		           "them). The connection is dropped and the source resends from the DR "
		           "side's committed progress; check the network if it recurs.");
		return PGF_ERR;
	}
	*len -= 4;
	return PGF_OK;
}

void wire_encode_hello(const wire_hello_t *m, buf_t *b)
{
	size_t start = b->len;

	buf_append_be16(b, m->protocol_version);
	buf_append_be64(b, m->system_identifier);
	buf_append_be32(b, m->timeline);
	buf_append_u8(b, m->proto_version);
	buf_append_be32(b, m->capabilities);
	buf_append_be64(b, (uint64_t)m->source_time);
	put_string(b, m->database);
	put_string(b, m->slot);
	if (m->capabilities & WIRE_CAP_EARLY_STREAM) {
		buf_append_be64(b, m->stream_from);
		buf_append_be64(b, m->primary_flush);
	}
	seal(b, start);
}

int wire_decode_hello(const uint8_t *p, size_t len, wire_hello_t *m, pgf_error_t *err)
{
	reader_t r;

	memset(m, 0, sizeof(*m));
	reader_init(&r, p, len);
	/* the version first, alone: a newer peer's hello may not parse further */
	if (reader_u16(&r, &m->protocol_version) != PGF_OK)
		return malformed(err, "hello", &r);
	if (m->protocol_version != WIRE_PROTOCOL_VERSION)
		return PGF_OK;
	if (unseal(p, &len, "hello", err) != PGF_OK)
		return PGF_ERR;
	reader_init(&r, p, len);
	r.pos = 2;
	if (reader_u64(&r, &m->system_identifier) != PGF_OK ||
	    reader_u32(&r, &m->timeline) != PGF_OK || reader_u8(&r, &m->proto_version) != PGF_OK ||
	    reader_u32(&r, &m->capabilities) != PGF_OK ||
	    reader_i64(&r, &m->source_time) != PGF_OK ||
	    get_string(&r, m->database, sizeof(m->database)) != PGF_OK ||
	    get_string(&r, m->slot, sizeof(m->slot)) != PGF_OK ||
	    ((m->capabilities & WIRE_CAP_EARLY_STREAM) &&
	     (reader_u64(&r, &m->stream_from) != PGF_OK ||
	      reader_u64(&r, &m->primary_flush) != PGF_OK)))
		return malformed(err, "hello", &r);
	if (m->proto_version < 1 || m->proto_version > 4) {
		error_set(err, PGF_E_PROTOCOL, "hello names pgoutput protocol %u; 1 to 4 are known",
		          m->proto_version);
		return PGF_ERR;
	}
	return finish(err, "hello", &r);
}

void wire_encode_welcome(const wire_welcome_t *m, buf_t *b)
{
	size_t start = b->len;

	buf_append_be16(b, m->protocol_version);
	buf_append_be64(b, m->resume_lsn);
	buf_append_be64(b, (uint64_t)m->sink_time);
	if (m->capabilities != 0)
		buf_append_be32(b, m->capabilities);
	seal(b, start);
}

int wire_decode_welcome(const uint8_t *p, size_t len, wire_welcome_t *m, pgf_error_t *err)
{
	reader_t r;

	if (unseal(p, &len, "welcome", err) != PGF_OK)
		return PGF_ERR;
	reader_init(&r, p, len);
	m->capabilities = 0;
	if (reader_u16(&r, &m->protocol_version) != PGF_OK ||
	    reader_u64(&r, &m->resume_lsn) != PGF_OK || reader_i64(&r, &m->sink_time) != PGF_OK ||
	    (reader_remaining(&r) > 0 && reader_u32(&r, &m->capabilities) != PGF_OK))
		return malformed(err, "welcome", &r);
	if (m->protocol_version != WIRE_PROTOCOL_VERSION) {
		error_set(err, PGF_E_PROTOCOL, "the sink speaks wire protocol %u, this source %d",
		          m->protocol_version, WIRE_PROTOCOL_VERSION);
		return PGF_ERR;
	}
	return finish(err, "welcome", &r);
}

void wire_encode_ack(const wire_ack_t *m, buf_t *b)
{
	size_t start = b->len;

	buf_append_be64(b, m->received_lsn);
	buf_append_be64(b, m->applied_lsn);
	buf_append_be64(b, m->batch_seq);
	seal(b, start);
}

int wire_decode_ack(const uint8_t *p, size_t len, wire_ack_t *m, pgf_error_t *err)
{
	reader_t r;

	if (unseal(p, &len, "ack", err) != PGF_OK)
		return PGF_ERR;
	reader_init(&r, p, len);
	if (reader_u64(&r, &m->received_lsn) != PGF_OK ||
	    reader_u64(&r, &m->applied_lsn) != PGF_OK || reader_u64(&r, &m->batch_seq) != PGF_OK)
		return malformed(err, "ack", &r);
	return finish(err, "ack", &r);
}

void wire_encode_ping(const wire_ping_t *m, buf_t *b)
{
	size_t start = b->len;

	buf_append_be64(b, (uint64_t)m->t1);
	seal(b, start);
}

int wire_decode_ping(const uint8_t *p, size_t len, wire_ping_t *m, pgf_error_t *err)
{
	reader_t r;

	if (unseal(p, &len, "ping", err) != PGF_OK)
		return PGF_ERR;
	reader_init(&r, p, len);
	if (reader_i64(&r, &m->t1) != PGF_OK)
		return malformed(err, "ping", &r);
	return finish(err, "ping", &r);
}

void wire_encode_pong(const wire_pong_t *m, buf_t *b)
{
	size_t start = b->len;

	buf_append_be64(b, (uint64_t)m->t1);
	buf_append_be64(b, (uint64_t)m->t2);
	buf_append_be64(b, (uint64_t)m->t3);
	seal(b, start);
}

int wire_decode_pong(const uint8_t *p, size_t len, wire_pong_t *m, pgf_error_t *err)
{
	reader_t r;

	if (unseal(p, &len, "pong", err) != PGF_OK)
		return PGF_ERR;
	reader_init(&r, p, len);
	if (reader_i64(&r, &m->t1) != PGF_OK || reader_i64(&r, &m->t2) != PGF_OK ||
	    reader_i64(&r, &m->t3) != PGF_OK)
		return malformed(err, "pong", &r);
	return finish(err, "pong", &r);
}

void wire_encode_error(const wire_error_t *m, buf_t *b)
{
	buf_append_be16(b, m->code);
	put_string(b, m->message);
}

int wire_decode_error(const uint8_t *p, size_t len, wire_error_t *m, pgf_error_t *err)
{
	reader_t r;

	reader_init(&r, p, len);
	if (reader_u16(&r, &m->code) != PGF_OK ||
	    get_string(&r, m->message, sizeof(m->message)) != PGF_OK)
		return malformed(err, "error", &r);
	return finish(err, "error", &r);
}

void wire_encode_end_of_stream(const wire_end_of_stream_t *m, buf_t *b)
{
	size_t start = b->len;

	buf_append_be64(b, m->final_lsn);
	seal(b, start);
}

int wire_decode_end_of_stream(const uint8_t *p, size_t len, wire_end_of_stream_t *m,
                              pgf_error_t *err)
{
	reader_t r;

	if (unseal(p, &len, "end-of-stream", err) != PGF_OK)
		return PGF_ERR;
	reader_init(&r, p, len);
	if (reader_u64(&r, &m->final_lsn) != PGF_OK)
		return malformed(err, "end-of-stream", &r);
	return finish(err, "end-of-stream", &r);
}

void wire_encode_primary_facts(const wire_primary_facts_t *m, buf_t *b)
{
	size_t start = b->len;

	buf_append_be64(b, (uint64_t)m->primary_time);
	buf_append_be64(b, m->position_lsn);
	buf_append_be64(b, m->flush_lsn);
	put_string(b, m->source_error);
	if (m->slot_known) {
		buf_append_be64(b, (uint64_t)m->slot_retained_bytes);
		buf_append_be64(b, (uint64_t)m->slot_safe_wal_size);
		buf_append_u8(b, m->slot_wal_status);
		buf_append_be64(b, (uint64_t)m->slot_wal_warning);
		if (m->rpo_guard_known) {
			buf_append_u8(b, m->rpo_guard_state);
			buf_append_be64(b, (uint64_t)m->rpo_guard_bound_ms);
			buf_append_be64(b, m->rpo_guard_engagements);
			put_string(b, m->rpo_guard_reason);
		}
	}
	seal(b, start);
}

int wire_decode_primary_facts(const uint8_t *p, size_t len, wire_primary_facts_t *m,
                              pgf_error_t *err)
{
	reader_t r;

	memset(m, 0, sizeof(*m));
	if (unseal(p, &len, "primary-facts", err) != PGF_OK)
		return PGF_ERR;
	reader_init(&r, p, len);
	if (reader_i64(&r, &m->primary_time) != PGF_OK ||
	    reader_u64(&r, &m->position_lsn) != PGF_OK || reader_u64(&r, &m->flush_lsn) != PGF_OK ||
	    get_string(&r, m->source_error, sizeof(m->source_error)) != PGF_OK)
		return malformed(err, "primary-facts", &r);
	/* the slot's retention: optional, all or nothing */
	if (reader_remaining(&r) == 0)
		return PGF_OK;
	if (reader_i64(&r, &m->slot_retained_bytes) != PGF_OK ||
	    reader_i64(&r, &m->slot_safe_wal_size) != PGF_OK ||
	    reader_u8(&r, &m->slot_wal_status) != PGF_OK ||
	    reader_i64(&r, &m->slot_wal_warning) != PGF_OK)
		return malformed(err, "primary-facts", &r);
	if (m->slot_wal_status > WIRE_SLOT_WAL_LOST)
		m->slot_wal_status = WIRE_SLOT_WAL_UNKNOWN;
	m->slot_known = true;
	/* the RPO guard's state: optional, all or nothing */
	if (reader_remaining(&r) == 0)
		return PGF_OK;
	if (reader_u8(&r, &m->rpo_guard_state) != PGF_OK ||
	    reader_i64(&r, &m->rpo_guard_bound_ms) != PGF_OK ||
	    reader_u64(&r, &m->rpo_guard_engagements) != PGF_OK ||
	    get_string(&r, m->rpo_guard_reason, sizeof(m->rpo_guard_reason)) != PGF_OK)
		return malformed(err, "primary-facts", &r);
	if (m->rpo_guard_state < 1 || m->rpo_guard_state > 2)
		return malformed(err, "primary-facts", &r);
	m->rpo_guard_known = true;
	return finish(err, "primary-facts", &r);
}

static const char *const slot_wal_status_names[] = {"unknown", "reserved", "extended", "unreserved",
                                                    "lost"};

const char *wire_slot_wal_status_name(uint8_t code)
{
	return code <= WIRE_SLOT_WAL_LOST ? slot_wal_status_names[code] : "unknown";
}

uint8_t wire_slot_wal_status_code(const char *name)
{
	for (uint8_t i = 1; i <= WIRE_SLOT_WAL_LOST; i++)
		if (name != NULL && strcmp(name, slot_wal_status_names[i]) == 0)
			return i;
	return WIRE_SLOT_WAL_UNKNOWN;
}

void wire_clock_offset(const wire_pong_t *p, int64_t t4, int64_t *offset_us,
                       int64_t *uncertainty_us)
{
	int64_t round_trip = (t4 - p->t1) - (p->t3 - p->t2);

	*offset_us = ((p->t2 - p->t1) + (p->t3 - t4)) / 2;
	*uncertainty_us = round_trip > 0 ? round_trip / 2 : 0;
}
