/*
 * capture.c — reading capture files: "PGFCAP1\n", then records of a 4-byte
 * big-endian length and one walsender CopyData message (see decoder.h).
 */
#include "pgferry/decoder.h"

#include <string.h>

int capture_reader_init(capture_reader_t *cr, const uint8_t *data, size_t len, pgf_error_t *err)
{
	reader_init(&cr->r, data, len);
	cr->record_no = 0;
	cr->record_offset = 0;
	if (len < CAPTURE_MAGIC_LEN || memcmp(data, CAPTURE_MAGIC, CAPTURE_MAGIC_LEN) != 0) {
		error_set(err, PGF_E_PROTOCOL,
		          "not a pgferry capture file: it does not start with "
		          "PGFCAP1");
		error_where(err, "byte 0");
		return PGF_ERR;
	}
	cr->r.pos = CAPTURE_MAGIC_LEN;
	return PGF_OK;
}

int capture_reader_next(capture_reader_t *cr, const uint8_t **record, size_t *len, pgf_error_t *err)
{
	uint32_t n;
	size_t at = cr->r.pos;

	if (reader_remaining(&cr->r) == 0)
		return 0;
	if (reader_u32(&cr->r, &n) != PGF_OK) {
		error_set(err, PGF_E_PROTOCOL, "truncated length of record %llu",
		          (unsigned long long)cr->record_no + 1);
		error_where(err, "byte %zu", at);
		return PGF_ERR;
	}
	if (n == 0 || n > CAPTURE_MAX_RECORD || n > reader_remaining(&cr->r)) {
		error_set(err, PGF_E_PROTOCOL, "record %llu claims %u bytes but %zu remain",
		          (unsigned long long)cr->record_no + 1, n, reader_remaining(&cr->r));
		error_where(err, "byte %zu", at);
		cr->r.pos = at;
		return PGF_ERR;
	}
	reader_bytes(&cr->r, n, record);
	*len = n;
	cr->record_no++;
	cr->record_offset = at;
	return 1;
}
