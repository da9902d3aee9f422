/*
 * buf.c — growable byte buffer and the JSON string writer (see buf.h).
 */
#include "pgferry/buf.h"
#include "pgferry/byteorder.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(buf_t *b)
{
	memset(b, 0, sizeof(*b));
}

void buf_free(buf_t *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void buf_reset(buf_t *b)
{
	b->len = 0;
	b->failed = false;
	if (b->data != NULL)
		b->data[0] = '\0';
}

void buf_truncate(buf_t *b, size_t len)
{
	if (len >= b->len)
		return;
	b->len = len;
	if (b->data != NULL)
		b->data[len] = '\0';
}

bool buf_reserve(buf_t *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (b->failed)
		return false;
	if (extra > SIZE_MAX - b->len - 1) {
		b->failed = true;
		return false;
	}
	need = b->len + extra + 1;
	if (need <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	p = realloc(b->data, cap);
	if (p == NULL) {
		b->failed = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void buf_shrink(buf_t *b, size_t keep)
{
	size_t cap = b->len + 1 > keep ? b->len + 1 : keep;
	char *p;

	if (b->failed || b->data == NULL || b->cap <= cap)
		return;
	p = realloc(b->data, cap);
	if (p == NULL)
		return; /* the larger block stays: still valid */
	b->data = p;
	b->cap = cap;
}

void buf_append(buf_t *b, const void *data, size_t len)
{
	if (!buf_reserve(b, len))
		return;
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void buf_append_str(buf_t *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void buf_append_char(buf_t *b, char c)
{
	buf_append(b, &c, 1);
}

void buf_printf(buf_t *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !buf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void buf_append_u8(buf_t *b, uint8_t v)
{
	buf_append(b, &v, 1);
}

void buf_append_be16(buf_t *b, uint16_t v)
{
	uint8_t x[2];

	be16_write(x, v);
	buf_append(b, x, sizeof(x));
}

void buf_append_be32(buf_t *b, uint32_t v)
{
	uint8_t x[4];

	be32_write(x, v);
	buf_append(b, x, sizeof(x));
}

void buf_append_be64(buf_t *b, uint64_t v)
{
	uint8_t x[8];

	be64_write(x, v);
	buf_append(b, x, sizeof(x));
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_sequence_length(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		cp = c & 0x07;
	} else
		return 0;
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	/* reject overlongs, surrogates and values past U+10FFFF */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

void buf_append_utf8(buf_t *b, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;

	while (i < len) {
		n = utf8_sequence_length(p + i, len - i);
		if (n == 0) {
			buf_append(b, "\xef\xbf\xbd", 3); /* U+FFFD */
			i++;
		} else {
			buf_append(b, s + i, n);
			i += n;
		}
	}
}

bool utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;

	while (i < len) {
		if (p[i] == 0)
			return false;
		n = utf8_sequence_length(p + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}
unsigned buf_hash(const buf_t *b)
{
	unsigned h = 2166136261u;
	size_t i;

	for (i = 0; i < b->len; i++)
		h = (h ^ (unsigned char)b->data[i]) * 16777619u;
	return h;
}
