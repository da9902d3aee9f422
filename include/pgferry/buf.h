/*
 * buf.h — a growable byte buffer for building output (frames, SQL, text).
 *
 * The buffer owns its memory: buf_free releases it. Appends never fail
 * silently: on allocation failure the buffer is marked failed and further
 * appends are ignored; callers check buf_failed() once at the end.
 */
#ifndef PGFERRY_BUF_H
#define PGFERRY_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct buf {
	char *data; /* NUL-terminated when len < cap */
	size_t len;
	size_t cap;
	bool failed;
} buf_t;

void buf_init(buf_t *b);
void buf_free(buf_t *b);
void buf_reset(buf_t *b); /* len = 0, memory kept */
/* Drops what follows the first len bytes (len <= b->len), memory kept. */
void buf_truncate(buf_t *b, size_t len);
bool buf_reserve(buf_t *b, size_t extra);
/* Gives back what the buffer holds beyond max(keep, len + 1) bytes: after
 * one large message, so that it does not stay allocated for good. */
void buf_shrink(buf_t *b, size_t keep);
void buf_append(buf_t *b, const void *data, size_t len);
void buf_append_str(buf_t *b, const char *s);
void buf_append_char(buf_t *b, char c);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_append_u8(buf_t *b, uint8_t v);
void buf_append_be16(buf_t *b, uint16_t v);
void buf_append_be32(buf_t *b, uint32_t v);
void buf_append_be64(buf_t *b, uint64_t v);
static inline bool buf_failed(const buf_t *b)
{
	return b->failed;
}
/* FNV-1a of the bytes held: for hash tables keyed by a built key */
unsigned buf_hash(const buf_t *b);

/* s[0..len) with each byte that starts no valid UTF-8 sequence replaced
 * by U+FFFD, so the result is valid UTF-8 (NUL bytes are kept). JSON is
 * written with jansson (json_out.h), which needs valid UTF-8. */
void buf_append_utf8(buf_t *b, const char *s, size_t len);
/* true when s[0..len) is valid UTF-8 with no NUL */
bool utf8_valid(const char *s, size_t len);

#endif
