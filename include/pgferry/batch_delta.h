/*
 * batch_delta.h — the positions and clocks of a batch's records coded as
 * differences before zstd (wire capability WIRE_CAP_DELTA, PROTOCOL.md).
 *
 * The LSNs and microsecond clocks of the walsender's XLogData header and of
 * pgoutput's Begin and Commit grow by small steps from record to record, but
 * written whole they look random to zstd: about a third of a compressed
 * pgbench stream. Coded as differences from the record before (and a
 * Commit's from its Begin) they compress to little. The coding is done in
 * place, keeps every length, and depends only on bytes it leaves alone (the
 * record's kind, the pgoutput message type, the length), so decoding the
 * records in the order they were coded gives back the same bytes whatever
 * they hold; the batch checksum covers the bytes as the walsender sent
 * them. The state runs over the whole connection, like its zstd stream,
 * and starts over with it.
 *
 * Only whole messages are coded: the pieces of a message larger than a
 * batch (BATCH_RECORD_CONTINUES, batch.h) pass as they are, so that no
 * piece is read as a message of its own. A message's pieces may span
 * batches, hence the state remembers that one goes on.
 *
 * Pure: no allocation, no I/O. Not thread-safe: one state per direction of
 * one connection.
 */
#ifndef PGFERRY_BATCH_DELTA_H
#define PGFERRY_BATCH_DELTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct batch_delta {
	uint64_t wal_start, send_time;    /* of the last XLogData */
	uint64_t begin_final, begin_time; /* of the last Begin */
	uint32_t begin_xid;
	bool in_pieces; /* the last record was a piece of a message that goes on */
} batch_delta_t;

void batch_delta_reset(batch_delta_t *s);
/* Codes a batch's records in place: raw is len bytes of records framed as
 * batch.h says (u32 length, its top bit "continues", then the message).
 * Coding stops at a record that overruns len: the decoder's framing check,
 * or its checksum, refuses such a batch afterwards. */
void batch_delta_encode_records(batch_delta_t *s, uint8_t *raw, size_t len);
/* Gives back the records batch_delta_encode_records coded, in place. */
void batch_delta_decode_records(batch_delta_t *s, uint8_t *raw, size_t len);

#endif
