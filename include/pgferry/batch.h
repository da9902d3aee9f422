/*
 * batch.h — the batch codec: walsender messages in, a checksummed,
 * compressed frame payload out, and back.
 *
 * Payload layout (big-endian):
 *   u64 seq | u64 first_lsn | u64 last_lsn | u32 nrecords | u32 raw_len |
 *   u64 checksum | zstd data
 * raw (after decompression) = nrecords × (u32 length | CopyData message).
 * A message larger than a batch travels as pieces in consecutive records
 * (possibly of several batches): each piece but the last has the length's
 * top bit (BATCH_RECORD_CONTINUES) set, so no frame need hold a whole row
 * and the sink need not either.
 * checksum = XXH3-64 over the 32 header bytes before it and the raw bytes,
 * verified after decompression and before any record is handed out.
 *
 * Compression is one zstd stream per connection (each batch ends with a
 * flush, so it decodes as soon as it arrives): later batches use earlier
 * ones as history, which matters for small batches of similar rows. Both
 * ends restart the stream on reconnect (batch_*_reset).
 */
#ifndef PGFERRY_BATCH_H
#define PGFERRY_BATCH_H

#include "pgferry/buf.h"
#include "pgferry/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BATCH_HEADER_LEN       40
#define BATCH_RECORD_CONTINUES 0x80000000u /* the message goes on in the next record */
#define BATCH_RECORD_LEN_MASK  0x7fffffffu

typedef struct batch_encoder batch_encoder_t;

/* max_raw bounds one batch's uncompressed size (max_frame_bytes). */
batch_encoder_t *batch_encoder_create(int level, size_t max_raw, pgf_error_t *err);
void batch_encoder_free(batch_encoder_t *e);
/* Drops pending records and starts a new compression stream. */
void batch_encoder_reset(batch_encoder_t *e);
/* From the next batch on, records are coded as differences (batch_delta.h):
 * only once the peer said it reads them (WIRE_CAP_DELTA). A reset turns it
 * off. */
void batch_encoder_set_delta(batch_encoder_t *e, bool on);
/* Appends one CopyData message; lsn orders it (WAL start, or WAL end for a
 * keepalive). Fails if the record alone would exceed max_raw. */
int batch_encoder_add(batch_encoder_t *e, const uint8_t *data, size_t len, uint64_t lsn,
                      pgf_error_t *err);
/* Appends one piece of a message: continues says that more of the same
 * message follows in the next piece. */
int batch_encoder_add_piece(batch_encoder_t *e, const uint8_t *data, size_t len, uint64_t lsn,
                            bool continues, pgf_error_t *err);
uint32_t batch_encoder_records(const batch_encoder_t *e);
size_t batch_encoder_bytes(const batch_encoder_t *e);
/* Compresses the pending records into *out (replacing its contents) as
 * batch number seq, and empties the batch. */
int batch_encoder_finish(batch_encoder_t *e, uint64_t seq, buf_t *out, pgf_error_t *err);

/* A verified batch; raw points into the decoder, valid until the next
 * batch_decode or reset. */
typedef struct batch_view {
	uint64_t seq;
	uint64_t first_lsn;
	uint64_t last_lsn;
	uint32_t nrecords;
	const uint8_t *raw;
	size_t raw_len;
	const uint32_t *offsets; /* of each record's message within raw */
} batch_view_t;

typedef struct batch_decoder batch_decoder_t;

batch_decoder_t *batch_decoder_create(size_t max_raw, pgf_error_t *err);
void batch_decoder_free(batch_decoder_t *d);
void batch_decoder_reset(batch_decoder_t *d);
/* Batches from now on come coded as differences (a reset turns it off). */
void batch_decoder_set_delta(batch_decoder_t *d, bool on);
/* Verifies and decompresses one payload. expected_seq 0 accepts any. On
 * error nothing of the batch is exposed, and the decoder must be reset
 * (the compression stream is broken): close the connection. */
int batch_decode(batch_decoder_t *d, const uint8_t *payload, size_t len, uint64_t expected_seq,
                 batch_view_t *out, pgf_error_t *err);
/* Every raw buffer keeps 8 bytes and per_record bytes a record free after
 * the raw bytes, for whoever takes it (the sink puts what it found in each
 * record there). 0 at creation. */
void batch_decoder_reserve(batch_decoder_t *d, size_t per_record);
/* Hands the caller the buffer of the last view's raw bytes, at least size
 * bytes long (free() it; NULL: out of memory, the decoder keeps it); the
 * decoder allocates a new one for the next batch. For a large batch: no
 * copy, and its memory goes back when the caller is done with it. */
uint8_t *batch_decoder_take_raw(batch_decoder_t *d, size_t size);
/* Record i of a view (0-based). */
void batch_view_record(const batch_view_t *v, uint32_t i, const uint8_t **data, size_t *len);
/* Whether record i is a piece of a message that goes on in the next record. */
bool batch_view_record_continues(const batch_view_t *v, uint32_t i);

#endif
