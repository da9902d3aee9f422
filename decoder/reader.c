/*
 * reader.c — the bounds-checked cursor every outside byte passes through,
 * and LSN / timestamp text forms (see decoder.h).
 */
#include "pgferry/byteorder.h"
#include "pgferry/decoder.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int reader_u8(reader_t *r, uint8_t *v)
{
	if (reader_remaining(r) < 1)
		return PGF_ERR;
	*v = r->data[r->pos++];
	return PGF_OK;
}

int reader_u16(reader_t *r, uint16_t *v)
{
	if (reader_remaining(r) < 2)
		return PGF_ERR;
	*v = be16_read(r->data + r->pos);
	r->pos += 2;
	return PGF_OK;
}

int reader_u32(reader_t *r, uint32_t *v)
{
	if (reader_remaining(r) < 4)
		return PGF_ERR;
	*v = be32_read(r->data + r->pos);
	r->pos += 4;
	return PGF_OK;
}

int reader_u64(reader_t *r, uint64_t *v)
{
	if (reader_remaining(r) < 8)
		return PGF_ERR;
	*v = be64_read(r->data + r->pos);
	r->pos += 8;
	return PGF_OK;
}

int reader_i64(reader_t *r, int64_t *v)
{
	uint64_t u;

	if (reader_u64(r, &u) != PGF_OK)
		return PGF_ERR;
	*v = (int64_t)u;
	return PGF_OK;
}

int reader_bytes(reader_t *r, size_t n, const uint8_t **p)
{
	if (reader_remaining(r) < n)
		return PGF_ERR;
	*p = r->data + r->pos;
	r->pos += n;
	return PGF_OK;
}

int reader_cstring(reader_t *r, const char **s)
{
	const uint8_t *start = r->data + r->pos;
	const uint8_t *nul = memchr(start, 0, reader_remaining(r));

	if (nul == NULL)
		return PGF_ERR;
	*s = (const char *)start;
	r->pos += (size_t)(nul - start) + 1;
	return PGF_OK;
}

char *lsn_format(uint64_t lsn, char *buf)
{
	snprintf(buf, LSN_TEXT_LEN, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
	return buf;
}

static int hex_part(const char *s, const char *end, uint32_t *v)
{
	uint64_t x = 0;

	if (s == end || end - s > 8)
		return PGF_ERR;
	for (; s < end; s++) {
		int d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else
			return PGF_ERR;
		x = x * 16 + (uint64_t)d;
	}
	*v = (uint32_t)x;
	return PGF_OK;
}

int lsn_parse(const char *text, uint64_t *lsn)
{
	const char *slash = strchr(text, '/');
	uint32_t hi, lo;

	if (slash == NULL || hex_part(text, slash, &hi) != PGF_OK ||
	    hex_part(slash + 1, slash + 1 + strlen(slash + 1), &lo) != PGF_OK)
		return PGF_ERR;
	*lsn = ((uint64_t)hi << 32) | lo;
	return PGF_OK;
}

char *pgtime_format_iso(int64_t pgtime, char *buf)
{
	int64_t us, sec, frac;
	time_t t;
	struct tm tm;
	char date[24];

	/* PostgreSQL's DT_NOEND and DT_NOBEGIN */
	if (pgtime == INT64_MAX || pgtime == INT64_MIN) {
		snprintf(buf, 32, "%s", pgtime == INT64_MAX ? "infinity" : "-infinity");
		return buf;
	}
	us = pgtime_to_unix_us(pgtime);
	sec = us / 1000000;
	frac = us % 1000000;
	if (frac < 0) {
		frac += 1000000;
		sec -= 1;
	}
	t = (time_t)sec;
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year > 9999 - 1900 || tm.tm_year < -4713 - 1900) {
		snprintf(buf, 32, "invalid");
		return buf;
	}
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, 32, "%s.%06dZ", date, (int)frac);
	return buf;
}
