/*
 * batch_delta.c — a batch's positions and clocks as differences (see
 * batch_delta.h). Every field is a big-endian u64 (or u32) replaced by its
 * difference, modulo 2^64, from what the other side knows already:
 *
 *   XLogData ('w', 25-byte header): wal_start from the last record's,
 *       wal_end from this wal_start, send_time from the last record's;
 *   pgoutput Begin ('B'): final LSN, commit time and xid from the last
 *       Begin's;
 *   pgoutput Commit ('C'): commit LSN and commit time from the last Begin's,
 *       end LSN from this commit LSN.
 *
 * Anything else (keepalives, short records, other messages, and every
 * piece of a message sent in pieces) stays as it is.
 */
#include "pgferry/batch_delta.h"

#include "pgferry/batch.h"
#include "pgferry/byteorder.h"

#include <string.h>

#define XLOGDATA_HEADER 25
#define BEGIN_LEN       21 /* type, final LSN, commit time, xid */
#define COMMIT_LEN      26 /* type, flags, commit LSN, end LSN, commit time */

void batch_delta_reset(batch_delta_t *s)
{
	memset(s, 0, sizeof(*s));
}

/* The field at p, coded (encode) or decoded against base; returns its
 * plain value. */
static uint64_t code64(uint8_t *p, uint64_t base, int encode)
{
	uint64_t v = be64_read(p);
	uint64_t plain = encode ? v : v + base;

	be64_write(p, encode ? v - base : plain);
	return plain;
}

static uint32_t code32(uint8_t *p, uint32_t base, int encode)
{
	uint32_t v = be32_read(p);
	uint32_t plain = encode ? v : v + base;

	be32_write(p, encode ? v - base : plain);
	return plain;
}

static void code(batch_delta_t *s, uint8_t *rec, size_t len, int encode)
{
	uint8_t *m = rec + XLOGDATA_HEADER;
	size_t n = len - XLOGDATA_HEADER;
	uint64_t start, commit;

	if (len < XLOGDATA_HEADER || rec[0] != 'w')
		return;
	start = code64(rec + 1, s->wal_start, encode);
	code64(rec + 9, start, encode);
	s->wal_start = start;
	s->send_time = code64(rec + 17, s->send_time, encode);
	if (n >= BEGIN_LEN && m[0] == 'B') {
		s->begin_final = code64(m + 1, s->begin_final, encode);
		s->begin_time = code64(m + 9, s->begin_time, encode);
		s->begin_xid = code32(m + 17, s->begin_xid, encode);
	} else if (n >= COMMIT_LEN && m[0] == 'C') {
		commit = code64(m + 2, s->begin_final, encode);
		code64(m + 10, commit, encode);
		code64(m + 18, s->begin_time, encode);
	}
}

/* Walks the records; a piece (its own length says "continues", or the
 * record before it did) is left alone: the first piece of a huge XLogData
 * starts with 'w' and its header, but its length word is not the message's,
 * and the pieces after it are row data. */
static void code_records(batch_delta_t *s, uint8_t *raw, size_t len, int encode)
{
	size_t off = 0;

	while (len - off >= 4) {
		uint32_t word = be32_read(raw + off);
		size_t rl = word & BATCH_RECORD_LEN_MASK;
		bool continues = (word & BATCH_RECORD_CONTINUES) != 0;

		if (rl > len - off - 4)
			return;
		if (!continues && !s->in_pieces)
			code(s, raw + off + 4, rl, encode);
		s->in_pieces = continues;
		off += 4 + rl;
	}
}

void batch_delta_encode_records(batch_delta_t *s, uint8_t *raw, size_t len)
{
	code_records(s, raw, len, 1);
}

void batch_delta_decode_records(batch_delta_t *s, uint8_t *raw, size_t len)
{
	code_records(s, raw, len, 0);
}
