/*
 * pgoutput.c — the logical replication protocol, versions 1 to 4, and the
 * walsender's CopyData wrappers (see decoder.h).
 *
 * Every field goes through reader_t; a short read becomes an error naming
 * the message type and the byte offset where it ran out. Nothing is
 * allocated: strings and values point into the caller's buffer.
 *
 * Version rules: changes, Relation, Type and Message carry an xid inside a
 * Stream Start/Stop block (protocol >= 2). Stream Abort carries its abort
 * LSN and time only when the publisher sends them (protocol 4 with parallel
 * streaming); since the version alone does not say, the message length
 * does: 8 bytes without, 24 with.
 */
#include "pgferry/byteorder.h"
#include "pgferry/decoder.h"

#include <stdio.h>
#include <string.h>

#define READ(call)                                                                                 \
	do {                                                                                       \
		if ((call) != PGF_OK)                                                              \
			return truncated(r, m, err);                                               \
	} while (0)

static const char *type_label(char t)
{
	const char *n = pgoutput_type_name((pgoutput_type_t)t);
	return strcmp(n, "unknown") == 0 ? "pgoutput" : n;
}

static int truncated(const reader_t *r, const pgoutput_message_t *m, pgf_error_t *err)
{
	error_set(err, PGF_E_PROTOCOL, "truncated %s message: %zu bytes, more needed at byte %zu",
	          type_label((char)m->type), r->len, r->pos);
	return PGF_ERR;
}

static int malformed(const reader_t *r, const pgoutput_message_t *m, pgf_error_t *err,
                     const char *what)
{
	error_set(err, PGF_E_PROTOCOL, "malformed %s message: %s at byte %zu",
	          type_label((char)m->type), what, r->pos);
	return PGF_ERR;
}

const char *pgoutput_type_name(pgoutput_type_t t)
{
	switch (t) {
	case PGOUTPUT_BEGIN:
		return "begin";
	case PGOUTPUT_COMMIT:
		return "commit";
	case PGOUTPUT_ORIGIN:
		return "origin";
	case PGOUTPUT_RELATION:
		return "relation";
	case PGOUTPUT_TYPE:
		return "type";
	case PGOUTPUT_INSERT:
		return "insert";
	case PGOUTPUT_UPDATE:
		return "update";
	case PGOUTPUT_DELETE:
		return "delete";
	case PGOUTPUT_TRUNCATE:
		return "truncate";
	case PGOUTPUT_MESSAGE:
		return "message";
	case PGOUTPUT_STREAM_START:
		return "stream_start";
	case PGOUTPUT_STREAM_STOP:
		return "stream_stop";
	case PGOUTPUT_STREAM_COMMIT:
		return "stream_commit";
	case PGOUTPUT_STREAM_ABORT:
		return "stream_abort";
	case PGOUTPUT_BEGIN_PREPARE:
		return "begin_prepare";
	case PGOUTPUT_PREPARE:
		return "prepare";
	case PGOUTPUT_COMMIT_PREPARED:
		return "commit_prepared";
	case PGOUTPUT_ROLLBACK_PREPARED:
		return "rollback_prepared";
	case PGOUTPUT_STREAM_PREPARE:
		return "stream_prepare";
	}
	return "unknown";
}

void pgoutput_decoder_init(pgoutput_decoder_t *d, int proto_version)
{
	d->proto_version = proto_version < 1 ? 1 : proto_version > 4 ? 4 : proto_version;
	d->in_stream = false;
}

uint32_t pgoutput_truncate_relid(const pgoutput_message_t *m, uint32_t i)
{
	return be32_read(m->u.truncate.relids_raw + 4 * (size_t)i);
}

static int read_tuple(reader_t *r, pgoutput_message_t *m, tuple_t *t, pgf_error_t *err)
{
	uint16_t n, i;

	READ(reader_u16(r, &n));
	if (n > PGOUTPUT_MAX_COLUMNS)
		return malformed(r, m, err, "more columns than PostgreSQL allows");
	/* each column takes at least one byte: refuse a count the rest cannot hold */
	if (n > reader_remaining(r))
		return truncated(r, m, err);
	t->ncolumns = n;
	for (i = 0; i < n; i++) {
		uint8_t kind;
		tuple_column_t *c = &t->columns[i];
		READ(reader_u8(r, &kind));
		c->kind = (char)kind;
		c->len = 0;
		c->data = NULL;
		switch (kind) {
		case 'n':
		case 'u':
			break;
		case 't':
		case 'b': {
			const uint8_t *p;
			READ(reader_u32(r, &c->len));
			READ(reader_bytes(r, c->len, &p));
			c->data = (const char *)p;
			break;
		}
		default: {
			char what[64];
			r->pos--;
			snprintf(what, sizeof(what), "unknown tuple column kind 0x%02x", kind);
			return malformed(r, m, err, what);
		}
		}
	}
	return PGF_OK;
}

static int read_xid_if_streamed(pgoutput_decoder_t *d, reader_t *r, pgoutput_message_t *m,
                                pgf_error_t *err)
{
	m->has_xid = false;
	if (d->in_stream && d->proto_version >= 2) {
		READ(reader_u32(r, &m->xid));
		m->has_xid = true;
	}
	return PGF_OK;
}

int walsender_parse(const uint8_t *data, size_t len, walsender_message_t *out, pgf_error_t *err)
{
	reader_t r;
	uint8_t kind;

	memset(out, 0, sizeof(*out));
	reader_init(&r, data, len);
	if (reader_u8(&r, &kind) != PGF_OK) {
		error_set(err, PGF_E_PROTOCOL, "empty walsender message");
		return PGF_ERR;
	}
	out->kind = (char)kind;
	if (kind == 'w') {
		if (reader_u64(&r, &out->wal_start) != PGF_OK ||
		    reader_u64(&r, &out->wal_end) != PGF_OK ||
		    reader_i64(&r, &out->send_time) != PGF_OK) {
			error_set(err, PGF_E_PROTOCOL,
			          "truncated XLogData message: %zu bytes, the header needs 25",
			          len);
			return PGF_ERR;
		}
		out->payload = data + r.pos;
		out->payload_len = reader_remaining(&r);
		if (out->payload_len == 0) {
			error_set(err, PGF_E_PROTOCOL, "XLogData message without a payload");
			return PGF_ERR;
		}
		return PGF_OK;
	}
	if (kind == 'k') {
		uint8_t reply;
		if (reader_u64(&r, &out->wal_end) != PGF_OK ||
		    reader_i64(&r, &out->send_time) != PGF_OK || reader_u8(&r, &reply) != PGF_OK) {
			error_set(err, PGF_E_PROTOCOL,
			          "truncated keepalive message: %zu bytes, 18 expected", len);
			return PGF_ERR;
		}
		if (reader_remaining(&r) != 0) {
			error_set(err, PGF_E_PROTOCOL,
			          "keepalive message of %zu bytes, 18 expected", len);
			return PGF_ERR;
		}
		out->reply_requested = reply != 0;
		return PGF_OK;
	}
	error_set(err, PGF_E_PROTOCOL, "unknown walsender message type 0x%02x at byte 0", kind);
	return PGF_ERR;
}

/* ---- one reader per kind of message ------------------------------------ */

static int read_begin_commit_origin(reader_t *r, pgoutput_message_t *m, pgf_error_t *err)
{
	switch (m->type) {
	case PGOUTPUT_BEGIN:
		READ(reader_u64(r, &m->u.begin.final_lsn));
		READ(reader_i64(r, &m->u.begin.commit_time));
		READ(reader_u32(r, &m->u.begin.xid));
		break;
	case PGOUTPUT_COMMIT:
		READ(reader_u8(r, &m->u.commit.flags));
		READ(reader_u64(r, &m->u.commit.commit_lsn));
		READ(reader_u64(r, &m->u.commit.end_lsn));
		READ(reader_i64(r, &m->u.commit.commit_time));
		break;
	default: /* PGOUTPUT_ORIGIN */
		READ(reader_u64(r, &m->u.origin.commit_lsn));
		READ(reader_cstring(r, &m->u.origin.name));
		break;
	}
	return PGF_OK;
}

static int read_relation(reader_t *r, pgoutput_message_t *m, pgf_error_t *err)
{
	uint16_t n, i;
	uint8_t ri;

	READ(reader_u32(r, &m->u.relation.relid));
	READ(reader_cstring(r, &m->u.relation.namespace));
	READ(reader_cstring(r, &m->u.relation.name));
	READ(reader_u8(r, &ri));
	m->u.relation.replica_identity = (char)ri;
	READ(reader_u16(r, &n));
	if (n > PGOUTPUT_MAX_COLUMNS)
		return malformed(r, m, err, "more columns than PostgreSQL allows");
	if ((size_t)n * 10 > reader_remaining(r))
		return truncated(r, m, err);
	m->u.relation.ncolumns = n;
	for (i = 0; i < n; i++) {
		relation_column_t *c = &m->u.relation.columns[i];
		uint32_t typmod;
		READ(reader_u8(r, &c->flags));
		READ(reader_cstring(r, &c->name));
		READ(reader_u32(r, &c->type_oid));
		READ(reader_u32(r, &typmod));
		c->type_mod = (int32_t)typmod;
	}
	return PGF_OK;
}

static int read_type(reader_t *r, pgoutput_message_t *m, pgf_error_t *err)
{
	READ(reader_u32(r, &m->u.type.type_oid));
	READ(reader_cstring(r, &m->u.type.namespace));
	READ(reader_cstring(r, &m->u.type.name));
	return PGF_OK;
}

static int read_insert(reader_t *r, pgoutput_message_t *m, pgf_error_t *err)
{
	uint8_t n;

	READ(reader_u32(r, &m->u.insert.relid));
	READ(reader_u8(r, &n));
	if (n != 'N') {
		r->pos--;
		return malformed(r, m, err, "expected 'N' before the new tuple");
	}
	return read_tuple(r, m, &m->u.insert.new_tuple, err);
}

static int read_update(reader_t *r, pgoutput_message_t *m, pgf_error_t *err)
{
	uint8_t k;

	READ(reader_u32(r, &m->u.update.relid));
	READ(reader_u8(r, &k));
	m->u.update.old_kind = 0;
	if (k == 'K' || k == 'O') {
		m->u.update.old_kind = (char)k;
		if (read_tuple(r, m, &m->u.update.old_tuple, err) != PGF_OK)
			return PGF_ERR;
		READ(reader_u8(r, &k));
	}
	if (k != 'N') {
		r->pos--;
		return malformed(r, m, err, "expected 'N' before the new tuple");
	}
	return read_tuple(r, m, &m->u.update.new_tuple, err);
}

static int read_delete(reader_t *r, pgoutput_message_t *m, pgf_error_t *err)
{
	uint8_t k;

	READ(reader_u32(r, &m->u.delete_.relid));
	READ(reader_u8(r, &k));
	if (k != 'K' && k != 'O') {
		r->pos--;
		return malformed(r, m, err, "expected 'K' or 'O' before the old tuple");
	}
	m->u.delete_.old_kind = (char)k;
	return read_tuple(r, m, &m->u.delete_.old_tuple, err);
}

static int read_truncate(reader_t *r, pgoutput_message_t *m, pgf_error_t *err)
{
	const uint8_t *p;

	READ(reader_u32(r, &m->u.truncate.nrelids));
	READ(reader_u8(r, &m->u.truncate.options));
	if (m->u.truncate.nrelids > reader_remaining(r) / 4)
		return truncated(r, m, err);
	READ(reader_bytes(r, (size_t)m->u.truncate.nrelids * 4, &p));
	m->u.truncate.relids_raw = p;
	return PGF_OK;
}

static int read_message(reader_t *r, pgoutput_message_t *m, pgf_error_t *err)
{
	READ(reader_u8(r, &m->u.message.flags));
	READ(reader_u64(r, &m->u.message.lsn));
	READ(reader_cstring(r, &m->u.message.prefix));
	READ(reader_u32(r, &m->u.message.content_len));
	READ(reader_bytes(r, m->u.message.content_len, &m->u.message.content));
	return PGF_OK;
}

/* The messages that may carry a subtransaction's xid inside a stream block
 * (protocol 2 and later): the xid first, then the body. */
static int read_body(pgoutput_decoder_t *d, reader_t *r, pgoutput_message_t *m, pgf_error_t *err)
{
	if (read_xid_if_streamed(d, r, m, err) != PGF_OK)
		return PGF_ERR;
	switch (m->type) {
	case PGOUTPUT_RELATION:
		return read_relation(r, m, err);
	case PGOUTPUT_TYPE:
		return read_type(r, m, err);
	case PGOUTPUT_INSERT:
		return read_insert(r, m, err);
	case PGOUTPUT_UPDATE:
		return read_update(r, m, err);
	case PGOUTPUT_DELETE:
		return read_delete(r, m, err);
	case PGOUTPUT_TRUNCATE:
		return read_truncate(r, m, err);
	default: /* PGOUTPUT_MESSAGE */
		return read_message(r, m, err);
	}
}

/* Stream Start, Stop, Commit and Abort; they keep d's stream state. */
static int read_stream(pgoutput_decoder_t *d, reader_t *r, pgoutput_message_t *m, pgf_error_t *err)
{
	switch (m->type) {
	case PGOUTPUT_STREAM_START:
		if (d->in_stream)
			return malformed(r, m, err, "stream start inside a stream block");
		READ(reader_u32(r, &m->u.stream_start.xid));
		READ(reader_u8(r, &m->u.stream_start.first_segment));
		m->has_xid = true;
		m->xid = m->u.stream_start.xid;
		d->in_stream = true;
		break;
	case PGOUTPUT_STREAM_STOP:
		if (!d->in_stream)
			return malformed(r, m, err, "stream stop outside a stream block");
		d->in_stream = false;
		break;
	case PGOUTPUT_STREAM_COMMIT:
		READ(reader_u32(r, &m->u.stream_commit.xid));
		READ(reader_u8(r, &m->u.stream_commit.flags));
		READ(reader_u64(r, &m->u.stream_commit.commit_lsn));
		READ(reader_u64(r, &m->u.stream_commit.end_lsn));
		READ(reader_i64(r, &m->u.stream_commit.commit_time));
		m->has_xid = true;
		m->xid = m->u.stream_commit.xid;
		break;
	default: /* PGOUTPUT_STREAM_ABORT */
		READ(reader_u32(r, &m->u.stream_abort.xid));
		READ(reader_u32(r, &m->u.stream_abort.subxid));
		m->u.stream_abort.has_abort_lsn = false;
		m->u.stream_abort.abort_lsn = 0;
		m->u.stream_abort.abort_time = 0;
		if (d->proto_version >= 4 && reader_remaining(r) >= 16) {
			READ(reader_u64(r, &m->u.stream_abort.abort_lsn));
			READ(reader_i64(r, &m->u.stream_abort.abort_time));
			m->u.stream_abort.has_abort_lsn = true;
		}
		m->has_xid = true;
		m->xid = m->u.stream_abort.xid;
		break;
	}
	return PGF_OK;
}

/* Two-phase messages: decoded so that they can be refused by name. */
static int read_two_phase(reader_t *r, pgoutput_message_t *m, pgf_error_t *err)
{
	switch (m->type) {
	case PGOUTPUT_BEGIN_PREPARE:
		READ(reader_u64(r, &m->u.begin_prepare.prepare_lsn));
		READ(reader_u64(r, &m->u.begin_prepare.end_lsn));
		READ(reader_i64(r, &m->u.begin_prepare.prepare_time));
		READ(reader_u32(r, &m->u.begin_prepare.xid));
		READ(reader_cstring(r, &m->u.begin_prepare.gid));
		break;
	case PGOUTPUT_PREPARE:
	case PGOUTPUT_STREAM_PREPARE:
		READ(reader_u8(r, &m->u.prepare.flags));
		READ(reader_u64(r, &m->u.prepare.prepare_lsn));
		READ(reader_u64(r, &m->u.prepare.end_lsn));
		READ(reader_i64(r, &m->u.prepare.prepare_time));
		READ(reader_u32(r, &m->u.prepare.xid));
		READ(reader_cstring(r, &m->u.prepare.gid));
		if (m->type == PGOUTPUT_STREAM_PREPARE) {
			m->has_xid = true;
			m->xid = m->u.prepare.xid;
		}
		break;
	case PGOUTPUT_COMMIT_PREPARED:
		READ(reader_u8(r, &m->u.commit_prepared.flags));
		READ(reader_u64(r, &m->u.commit_prepared.commit_lsn));
		READ(reader_u64(r, &m->u.commit_prepared.end_lsn));
		READ(reader_i64(r, &m->u.commit_prepared.commit_time));
		READ(reader_u32(r, &m->u.commit_prepared.xid));
		READ(reader_cstring(r, &m->u.commit_prepared.gid));
		break;
	default: /* PGOUTPUT_ROLLBACK_PREPARED */
		READ(reader_u8(r, &m->u.rollback_prepared.flags));
		READ(reader_u64(r, &m->u.rollback_prepared.prepare_end_lsn));
		READ(reader_u64(r, &m->u.rollback_prepared.rollback_end_lsn));
		READ(reader_i64(r, &m->u.rollback_prepared.prepare_time));
		READ(reader_i64(r, &m->u.rollback_prepared.rollback_time));
		READ(reader_u32(r, &m->u.rollback_prepared.xid));
		READ(reader_cstring(r, &m->u.rollback_prepared.gid));
		break;
	}
	return PGF_OK;
}

int pgoutput_decode(pgoutput_decoder_t *d, const uint8_t *data, size_t len, pgoutput_message_t *m,
                    pgf_error_t *err)
{
	reader_t rs, *r = &rs;
	uint8_t t;
	int rc;

	reader_init(r, data, len);
	m->length = len;
	m->has_xid = false;
	m->xid = 0;
	m->type = (pgoutput_type_t)0;
	if (reader_u8(r, &t) != PGF_OK) {
		error_set(err, PGF_E_PROTOCOL, "empty pgoutput message");
		return PGF_ERR;
	}
	m->type = (pgoutput_type_t)t;
	switch (t) {
	case PGOUTPUT_BEGIN:
	case PGOUTPUT_COMMIT:
	case PGOUTPUT_ORIGIN:
		rc = read_begin_commit_origin(r, m, err);
		break;
	case PGOUTPUT_RELATION:
	case PGOUTPUT_TYPE:
	case PGOUTPUT_INSERT:
	case PGOUTPUT_UPDATE:
	case PGOUTPUT_DELETE:
	case PGOUTPUT_TRUNCATE:
	case PGOUTPUT_MESSAGE:
		rc = read_body(d, r, m, err);
		break;
	case PGOUTPUT_STREAM_START:
	case PGOUTPUT_STREAM_STOP:
	case PGOUTPUT_STREAM_COMMIT:
	case PGOUTPUT_STREAM_ABORT:
		rc = read_stream(d, r, m, err);
		break;
	case PGOUTPUT_BEGIN_PREPARE:
	case PGOUTPUT_PREPARE:
	case PGOUTPUT_STREAM_PREPARE:
	case PGOUTPUT_COMMIT_PREPARED:
	case PGOUTPUT_ROLLBACK_PREPARED:
		rc = read_two_phase(r, m, err);
		break;
	default:
		error_set(err, PGF_E_PROTOCOL, "unknown pgoutput message type 0x%02x at byte 0", t);
		return PGF_ERR;
	}
	if (rc != PGF_OK)
		return PGF_ERR;
	if (reader_remaining(r) != 0) {
		error_set(err, PGF_E_PROTOCOL, "%s message has %zu unexpected bytes at byte %zu",
		          type_label((char)t), reader_remaining(r), r->pos);
		return PGF_ERR;
	}
	return PGF_OK;
}

bool pgoutput_header_only(uint8_t type)
{
	return type == PGOUTPUT_INSERT || type == PGOUTPUT_UPDATE || type == PGOUTPUT_DELETE ||
	       type == PGOUTPUT_TRUNCATE || type == PGOUTPUT_RELATION || type == PGOUTPUT_TYPE;
}

int pgoutput_decode_header(pgoutput_decoder_t *d, const uint8_t *data, size_t len,
                           pgoutput_message_t *m, pgf_error_t *err)
{
	reader_t rs, *r = &rs;
	uint8_t t;

	if (len == 0 || !pgoutput_header_only(data[0]))
		return pgoutput_decode(d, data, len, m, err);
	/* a body: only what says where it belongs */
	reader_init(r, data, len);
	m->length = len;
	m->xid = 0;
	READ(reader_u8(r, &t));
	m->type = (pgoutput_type_t)t;
	return read_xid_if_streamed(d, r, m, err);
}

/* ---- the facts of a decoded message, and the message from them ---------- */

void pgoutput_facts_set(const pgoutput_message_t *m, const uint8_t *data, pgoutput_facts_t *f)
{
	memset(f, 0, sizeof(*f));
	switch (m->type) {
	case PGOUTPUT_BEGIN:
		f->begin.final_lsn = m->u.begin.final_lsn;
		f->begin.commit_time = m->u.begin.commit_time;
		f->begin.xid = m->u.begin.xid;
		break;
	case PGOUTPUT_COMMIT:
		f->commit.commit_lsn = m->u.commit.commit_lsn;
		f->commit.end_lsn = m->u.commit.end_lsn;
		f->commit.commit_time = m->u.commit.commit_time;
		break;
	case PGOUTPUT_STREAM_COMMIT:
		f->commit.commit_lsn = m->u.stream_commit.commit_lsn;
		f->commit.end_lsn = m->u.stream_commit.end_lsn;
		f->commit.commit_time = m->u.stream_commit.commit_time;
		break;
	case PGOUTPUT_ORIGIN:
		f->origin.commit_lsn = m->u.origin.commit_lsn;
		f->origin.name = (uint32_t)((const uint8_t *)m->u.origin.name - data);
		break;
	case PGOUTPUT_MESSAGE:
		f->message.lsn = m->u.message.lsn;
		f->message.prefix = (uint32_t)((const uint8_t *)m->u.message.prefix - data);
		f->message.content = (uint32_t)(m->u.message.content - data);
		f->message.content_len = m->u.message.content_len;
		f->message.flags = m->u.message.flags;
		break;
	case PGOUTPUT_STREAM_START:
		f->stream_start.first_segment = m->u.stream_start.first_segment;
		break;
	case PGOUTPUT_STREAM_ABORT:
		f->stream_abort.subxid = m->u.stream_abort.subxid;
		f->stream_abort.has_abort_lsn = m->u.stream_abort.has_abort_lsn;
		f->stream_abort.abort_lsn = m->u.stream_abort.abort_lsn;
		f->stream_abort.abort_time = m->u.stream_abort.abort_time;
		break;
	default: /* the rest: nothing, or nothing apply takes */
		break;
	}
}

void pgoutput_facts_message(uint8_t type, uint32_t xid, const pgoutput_facts_t *f,
                            const uint8_t *data, size_t len, pgoutput_message_t *m)
{
	m->type = (pgoutput_type_t)type;
	m->length = len;
	m->has_xid = xid != 0;
	m->xid = xid;
	switch (type) {
	case PGOUTPUT_BEGIN:
		m->u.begin.final_lsn = f->begin.final_lsn;
		m->u.begin.commit_time = f->begin.commit_time;
		m->u.begin.xid = f->begin.xid;
		break;
	case PGOUTPUT_COMMIT:
		m->u.commit.flags = 0;
		m->u.commit.commit_lsn = f->commit.commit_lsn;
		m->u.commit.end_lsn = f->commit.end_lsn;
		m->u.commit.commit_time = f->commit.commit_time;
		break;
	case PGOUTPUT_STREAM_COMMIT:
		m->u.stream_commit.xid = xid;
		m->u.stream_commit.flags = 0;
		m->u.stream_commit.commit_lsn = f->commit.commit_lsn;
		m->u.stream_commit.end_lsn = f->commit.end_lsn;
		m->u.stream_commit.commit_time = f->commit.commit_time;
		break;
	case PGOUTPUT_ORIGIN:
		m->u.origin.commit_lsn = f->origin.commit_lsn;
		m->u.origin.name = (const char *)data + f->origin.name;
		break;
	case PGOUTPUT_MESSAGE:
		m->u.message.lsn = f->message.lsn;
		m->u.message.prefix = (const char *)data + f->message.prefix;
		m->u.message.content = data + f->message.content;
		m->u.message.content_len = f->message.content_len;
		m->u.message.flags = f->message.flags;
		break;
	case PGOUTPUT_STREAM_START:
		m->u.stream_start.xid = xid;
		m->u.stream_start.first_segment = f->stream_start.first_segment;
		break;
	case PGOUTPUT_STREAM_ABORT:
		m->u.stream_abort.xid = xid;
		m->u.stream_abort.subxid = f->stream_abort.subxid;
		m->u.stream_abort.has_abort_lsn = f->stream_abort.has_abort_lsn;
		m->u.stream_abort.abort_lsn = f->stream_abort.abort_lsn;
		m->u.stream_abort.abort_time = f->stream_abort.abort_time;
		break;
	default:
		break;
	}
}
