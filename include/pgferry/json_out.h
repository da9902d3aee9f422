/*
 * json_out.h — every JSON document pgferry writes is built with jansson
 * and dumped through here: compact (no spaces, keys in insertion order),
 * always valid. Text that is not valid UTF-8 has each bad byte replaced by
 * U+FFFD; a number that is not finite (NaN, infinity) is null, since JSON
 * has no spelling for it.
 *
 * Ownership: every json_out_* constructor returns a new reference (NULL
 * only when out of memory), as jansson's own do; json_out_set steals it.
 */
#ifndef PGFERRY_JSON_OUT_H
#define PGFERRY_JSON_OUT_H

#include "pgferry/buf.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* s[0..len) as a JSON string (may hold NUL bytes). */
json_t *json_out_text(const char *s, size_t len);
/* A C string, or null when s is NULL. */
json_t *json_out_cstring(const char *s);
/* A C string, or null when s is NULL or empty. */
json_t *json_out_cstring_or_null(const char *s);
/* Bytes as "\\x" followed by lowercase hex, as PostgreSQL shows bytea. */
json_t *json_out_hex(const void *data, size_t len);
/* v rounded to decimals places (0: a JSON integer), or null when v is not
 * finite. */
json_t *json_out_number(double v, int decimals);
/* An LSN in PostgreSQL's X/Y form. */
json_t *json_out_lsn(uint64_t lsn);
/* A PostgreSQL timestamp (µs since 2000-01-01) in ISO 8601 UTC. */
json_t *json_out_pgtime(int64_t pgtime);
/* true or false. */
json_t *json_out_bool(int v);

/* obj[key] = v, taking v (a NULL v, out of memory, leaves the key out). */
void json_out_set(json_t *obj, const char *key, json_t *v);
/* The same for a key from outside (a column name), which may not be valid
 * UTF-8: bad bytes become U+FFFD instead of losing the key. */
void json_out_set_text_key(json_t *obj, const char *key, json_t *v);

/* Appends j, compact, to b. PGF_OK, or PGF_ERR when out of memory (b is
 * marked failed too). */
int json_out_append(buf_t *b, const json_t *j);

#endif
