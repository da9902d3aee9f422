/*
 * batch.c — batches of walsender messages: zstd and XXH3 (see batch.h).
 */
#include "pgferry/batch.h"

#include "pgferry/batch_delta.h"
#include "pgferry/byteorder.h"
#include "pgferry/decoder.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

struct batch_encoder {
	ZSTD_CCtx *cctx;
	int level;
	size_t max_raw;
	buf_t raw;
	bool delta;          /* records coded as differences (batch_delta.h) */
	batch_delta_t state; /* ... over the connection so far */
	buf_t coded;         /* the batch so coded, compressed in its place */
	uint32_t nrecords;
	uint64_t first_lsn, last_lsn;
};

struct batch_decoder {
	ZSTD_DCtx *dctx;
	bool delta;          /* records come coded as differences */
	batch_delta_t state; /* ... over the connection so far */
	size_t max_raw;
	uint8_t *raw;
	size_t raw_cap;
	size_t record_room; /* bytes a record kept free after the raw bytes */
	uint32_t *offsets;
	size_t offsets_cap;
};

batch_encoder_t *batch_encoder_create(int level, size_t max_raw, pgf_error_t *err)
{
	batch_encoder_t *e = calloc(1, sizeof(*e));

	if (e == NULL || (e->cctx = ZSTD_createCCtx()) == NULL) {
		free(e);
		error_set(err, PGF_E_MEMORY, "out of memory creating a compressor");
		return NULL;
	}
	e->level = level;
	e->max_raw = max_raw;
	buf_init(&e->raw);
	buf_init(&e->coded);
	batch_encoder_reset(e);
	return e;
}

void batch_encoder_free(batch_encoder_t *e)
{
	if (e == NULL)
		return;
	ZSTD_freeCCtx(e->cctx);
	buf_free(&e->raw);
	buf_free(&e->coded);
	free(e);
}

void batch_encoder_reset(batch_encoder_t *e)
{
	ZSTD_CCtx_reset(e->cctx, ZSTD_reset_session_and_parameters);
	ZSTD_CCtx_setParameter(e->cctx, ZSTD_c_compressionLevel, e->level);
	buf_reset(&e->raw);
	e->nrecords = 0;
	e->delta = false;
	batch_delta_reset(&e->state);
}

void batch_encoder_set_delta(batch_encoder_t *e, bool on)
{
	e->delta = on;
}

/* The batch's records coded as differences, in e->coded. */
static const buf_t *code_records(batch_encoder_t *e, pgf_error_t *err)
{
	buf_reset(&e->coded);
	buf_append(&e->coded, e->raw.data, e->raw.len);
	if (buf_failed(&e->coded)) {
		error_set(err, PGF_E_MEMORY, "out of memory coding a batch");
		return NULL;
	}
	batch_delta_encode_records(&e->state, (uint8_t *)e->coded.data, e->coded.len);
	return &e->coded;
}

int batch_encoder_add_piece(batch_encoder_t *e, const uint8_t *data, size_t len, uint64_t lsn,
                            bool continues, pgf_error_t *err)
{
	char l[LSN_TEXT_LEN];

	if (len + 4 > e->max_raw || len > BATCH_RECORD_LEN_MASK) {
		error_set(err, PGF_E_PROTOCOL,
		          "a message of %zu bytes at %s is larger than max_frame_bytes (%zu)", len,
		          lsn_format(lsn, l), e->max_raw);
		error_hint(err, "Keep batch_max_bytes at most half of max_frame_bytes: larger "
		                "messages are sent in pieces of batch_max_bytes.");
		return PGF_ERR;
	}
	if (e->nrecords == 0)
		e->first_lsn = lsn;
	if (lsn > e->last_lsn || e->nrecords == 0)
		e->last_lsn = lsn;
	buf_append_be32(&e->raw, (uint32_t)len | (continues ? BATCH_RECORD_CONTINUES : 0));
	buf_append(&e->raw, data, len);
	if (buf_failed(&e->raw))
		return error_set(err, PGF_E_MEMORY, "out of memory batching %zu bytes", len);
	e->nrecords++;
	return PGF_OK;
}

int batch_encoder_add(batch_encoder_t *e, const uint8_t *data, size_t len, uint64_t lsn,
                      pgf_error_t *err)
{
	return batch_encoder_add_piece(e, data, len, lsn, false, err);
}

uint32_t batch_encoder_records(const batch_encoder_t *e)
{
	return e->nrecords;
}
size_t batch_encoder_bytes(const batch_encoder_t *e)
{
	return e->raw.len;
}

int batch_encoder_finish(batch_encoder_t *e, uint64_t seq, buf_t *out, pgf_error_t *err)
{
	uint8_t hdr[BATCH_HEADER_LEN];
	XXH3_state_t *st;
	uint64_t sum;
	ZSTD_inBuffer in;
	ZSTD_outBuffer ob;
	size_t bound, rem;
	const buf_t *src = &e->raw;

	if (e->raw.len > e->max_raw)
		return error_set(err, PGF_E_PROTOCOL, "batch of %zu bytes exceeds max_frame_bytes",
		                 e->raw.len);
	be64_write(hdr, seq);
	be64_write(hdr + 8, e->first_lsn);
	be64_write(hdr + 16, e->last_lsn);
	be32_write(hdr + 24, e->nrecords);
	be32_write(hdr + 28, (uint32_t)e->raw.len);
	st = XXH3_createState();
	if (st == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory");
	XXH3_64bits_reset(st);
	XXH3_64bits_update(st, hdr, 32);
	XXH3_64bits_update(st, e->raw.data ? e->raw.data : "", e->raw.len);
	sum = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	be64_write(hdr + 32, sum);

	if (e->delta && (src = code_records(e, err)) == NULL)
		return PGF_ERR;
	buf_reset(out);
	bound = ZSTD_compressBound(e->raw.len) + 64;
	if (!buf_reserve(out, BATCH_HEADER_LEN + bound))
		return error_set(err, PGF_E_MEMORY, "out of memory compressing a batch");
	buf_append(out, hdr, sizeof(hdr));
	in.src = src->data;
	in.size = src->len;
	in.pos = 0;
	ob.dst = out->data + out->len;
	ob.size = out->cap - out->len - 1;
	ob.pos = 0;
	do {
		rem = ZSTD_compressStream2(e->cctx, &ob, &in, ZSTD_e_flush);
		if (ZSTD_isError(rem))
			return error_set(err, PGF_E_PROTOCOL, "compression failed: %s",
			                 ZSTD_getErrorName(rem));
	} while (rem != 0 && ob.pos < ob.size);
	if (rem != 0)
		return error_set(err, PGF_E_PROTOCOL, "compressed batch does not fit its bound");
	out->len += ob.pos;
	out->data[out->len] = '\0';
	buf_reset(&e->raw);
	e->nrecords = 0;
	return PGF_OK;
}

void batch_decoder_reserve(batch_decoder_t *d, size_t per_record)
{
	d->record_room = per_record;
}

uint8_t *batch_decoder_take_raw(batch_decoder_t *d, size_t size)
{
	uint8_t *raw = d->raw;

	if (size > d->raw_cap) {
		/* more than batch_decoder_reserve promised: grow, as a last resort */
		raw = realloc(d->raw, size);
		if (raw == NULL)
			return NULL;
	}
	d->raw = NULL;
	d->raw_cap = 0;
	return raw;
}

batch_decoder_t *batch_decoder_create(size_t max_raw, pgf_error_t *err)
{
	batch_decoder_t *d = calloc(1, sizeof(*d));

	if (d == NULL || (d->dctx = ZSTD_createDCtx()) == NULL) {
		free(d);
		error_set(err, PGF_E_MEMORY, "out of memory creating a decompressor");
		return NULL;
	}
	d->max_raw = max_raw;
	/* no single zstd window may exceed what a frame may hold */
	ZSTD_DCtx_setParameter(d->dctx, ZSTD_d_windowLogMax, 27);
	return d;
}

void batch_decoder_free(batch_decoder_t *d)
{
	if (d == NULL)
		return;
	ZSTD_freeDCtx(d->dctx);
	free(d->raw);
	free(d->offsets);
	free(d);
}

void batch_decoder_reset(batch_decoder_t *d)
{
	ZSTD_DCtx_reset(d->dctx, ZSTD_reset_session_only);
	d->delta = false;
	batch_delta_reset(&d->state);
}

void batch_decoder_set_delta(batch_decoder_t *d, bool on)
{
	d->delta = on;
}

/* Decompresses src into d->raw, which must come out exactly raw_len bytes:
 * more (a lying header) or less is an error. */
static int batch_decompress(batch_decoder_t *d, const uint8_t *src, size_t src_len, uint64_t seq,
                            uint32_t raw_len, pgf_error_t *err)
{
	ZSTD_inBuffer in = {src, src_len, 0};
	ZSTD_outBuffer ob = {d->raw, raw_len, 0};
	size_t rc;

	while (in.pos < in.size) {
		size_t before_in = in.pos, before_out = ob.pos;
		if (ob.pos < ob.size) {
			rc = ZSTD_decompressStream(d->dctx, &ob, &in);
		} else {
			/* output complete: what input remains may only be the end of
			 * the flushed block; more output means a lying header */
			uint8_t probe[1];
			ZSTD_outBuffer p1 = {probe, sizeof(probe), 0};
			rc = ZSTD_decompressStream(d->dctx, &p1, &in);
			if (!ZSTD_isError(rc) && p1.pos != 0) {
				error_set(err, PGF_E_PROTOCOL,
				          "batch %llu decompresses to more than its %u bytes",
				          (unsigned long long)seq, raw_len);
				return PGF_ERR;
			}
		}
		if (ZSTD_isError(rc)) {
			error_set(err, PGF_E_PROTOCOL, "batch %llu does not decompress: %s",
			          (unsigned long long)seq, ZSTD_getErrorName(rc));
			return PGF_ERR;
		}
		if (in.pos == before_in && ob.pos == before_out)
			break; /* no progress: reported below */
	}
	if (ob.pos != raw_len || in.pos != in.size) {
		error_set(err, PGF_E_PROTOCOL,
		          "batch %llu decompresses to %zu bytes, its header says %u",
		          (unsigned long long)seq, ob.pos, raw_len);
		return PGF_ERR;
	}
	return PGF_OK;
}

/* XXH3 of the 32 header bytes and the raw bytes against the header's sum. */
static int batch_verify_sum(const batch_decoder_t *d, const uint8_t *header, uint64_t seq,
                            uint32_t raw_len, uint64_t sum, pgf_error_t *err)
{
	XXH3_state_t *st = XXH3_createState();
	uint64_t check;

	if (st == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory");
	XXH3_64bits_reset(st);
	XXH3_64bits_update(st, header, 32);
	XXH3_64bits_update(st, d->raw, raw_len);
	check = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	if (check != sum) {
		error_set(err, PGF_E_PROTOCOL, "batch %llu fails its checksum",
		          (unsigned long long)seq);
		error_detail(err,
		             "XXH3 of the header and %u decompressed bytes is %016llx; the "
		             "batch says %016llx.",
		             raw_len, (unsigned long long)check, (unsigned long long)sum);
		return PGF_ERR;
	}
	return PGF_OK;
}

/* Record framing: every length within bounds, the count as announced;
 * each record's offset into d->offsets. */
static int batch_frame_records(batch_decoder_t *d, uint64_t seq, uint32_t raw_len,
                               uint32_t nrecords, pgf_error_t *err)
{
	reader_t r;
	uint32_t i;

	if (nrecords > d->offsets_cap) {
		uint32_t *o = realloc(d->offsets, (size_t)nrecords * sizeof(*o));
		if (o == NULL)
			return error_set(err, PGF_E_MEMORY, "out of memory");
		d->offsets = o;
		d->offsets_cap = nrecords;
	}
	reader_init(&r, d->raw, raw_len);
	for (i = 0; i < nrecords; i++) {
		uint32_t rl;
		const uint8_t *p;
		if (reader_u32(&r, &rl) != PGF_OK ||
		    reader_bytes(&r, rl & BATCH_RECORD_LEN_MASK, &p) != PGF_OK)
			return error_set(err, PGF_E_PROTOCOL,
			                 "batch %llu: record %u overruns the batch at byte %zu",
			                 (unsigned long long)seq, i + 1, r.pos);
		d->offsets[i] = (uint32_t)(p - d->raw);
	}
	if (reader_remaining(&r) != 0)
		return error_set(err, PGF_E_PROTOCOL, "batch %llu: %zu bytes after its %u records",
		                 (unsigned long long)seq, reader_remaining(&r), nrecords);
	return PGF_OK;
}

int batch_decode(batch_decoder_t *d, const uint8_t *payload, size_t len, uint64_t expected_seq,
                 batch_view_t *out, pgf_error_t *err)
{
	reader_t r;
	uint64_t seq, first, last, sum;
	uint32_t nrecords, raw_len;
	size_t need;

	reader_init(&r, payload, len);
	if (reader_u64(&r, &seq) != PGF_OK || reader_u64(&r, &first) != PGF_OK ||
	    reader_u64(&r, &last) != PGF_OK || reader_u32(&r, &nrecords) != PGF_OK ||
	    reader_u32(&r, &raw_len) != PGF_OK || reader_u64(&r, &sum) != PGF_OK)
		return error_set(err, PGF_E_PROTOCOL,
		                 "batch frame of %zu bytes is shorter than its "
		                 "header",
		                 len);
	if (expected_seq != 0 && seq != expected_seq) {
		error_set(err, PGF_E_PROTOCOL, "batch number %llu arrived where %llu was expected",
		          (unsigned long long)seq, (unsigned long long)expected_seq);
		return PGF_ERR;
	}
	/* lengths are checked before anything is allocated */
	if (raw_len > d->max_raw || nrecords > raw_len / 4 + 1)
		return error_set(err, PGF_E_PROTOCOL,
		                 "batch %llu claims %u bytes in %u records, over the limit of %zu",
		                 (unsigned long long)seq, raw_len, nrecords, d->max_raw);
	/* with the room promised after the raw bytes (batch_decoder_reserve) */
	need = (size_t)raw_len + 8 + (size_t)nrecords * d->record_room;
	if (need > d->raw_cap) {
		uint8_t *p = realloc(d->raw, need);
		if (p == NULL)
			return error_set(err, PGF_E_MEMORY, "out of memory for a batch of %u bytes",
			                 raw_len);
		d->raw = p;
		d->raw_cap = need;
	}
	if (batch_decompress(d, payload + r.pos, reader_remaining(&r), seq, raw_len, err) != PGF_OK)
		return PGF_ERR;
	/* the framing is checked after the checksum: a record that overruns
	 * ends the decoding there, and the checksum fails */
	if (d->delta)
		batch_delta_decode_records(&d->state, d->raw, raw_len);
	if (batch_verify_sum(d, payload, seq, raw_len, sum, err) != PGF_OK ||
	    batch_frame_records(d, seq, raw_len, nrecords, err) != PGF_OK)
		return PGF_ERR;
	out->seq = seq;
	out->first_lsn = first;
	out->last_lsn = last;
	out->nrecords = nrecords;
	out->raw = d->raw;
	out->raw_len = raw_len;
	out->offsets = d->offsets;
	return PGF_OK;
}

void batch_view_record(const batch_view_t *v, uint32_t i, const uint8_t **data, size_t *len)
{
	const uint8_t *p = v->raw + v->offsets[i];

	*data = p;
	*len = be32_read(p - 4) & BATCH_RECORD_LEN_MASK;
}

bool batch_view_record_continues(const batch_view_t *v, uint32_t i)
{
	return (be32_read(v->raw + v->offsets[i] - 4) & BATCH_RECORD_CONTINUES) != 0;
}
