/*
 * coalesce.h — the net change per row within one DR transaction
 * (apply_coalesce = on).
 *
 * Pure: no connection, no clock. The apply engine says per table how its
 * changes may be held (coalesce_mode_t, decided from the DR table by the
 * schema check), feeds changes in stream order, and writes what is held,
 * in order of first appearance, whenever coalesce_add does not take a
 * change (so that order is kept around it) and before the DR commit.
 *
 * Ownership: a coalesce_t owns the held images (copies of the values); a
 * row returned by coalesce_first stays valid until the next coalesce_add
 * or coalesce_clear. Not thread-safe.
 */
#ifndef PGFERRY_COALESCE_H
#define PGFERRY_COALESCE_H

#include "pgferry/buf.h"
#include "pgferry/decoder.h"
#include "pgferry/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COALESCE_BUCKETS   4096
#define COALESCE_MAX_ROWS  20000       /* held rows before they are written */
#define COALESCE_MAX_BYTES (16u << 20) /* or this many bytes of values */

typedef enum {
	COALESCE_NONE,   /* every change in order */
	COALESCE_APPEND, /* inserts may be held (in order) with other net changes */
	COALESCE_NET,    /* only the net change per row is written */
} coalesce_mode_t;

/* What writing a held row takes. */
typedef enum {
	COALESCE_WRITE_INSERT,       /* a new row: its final image */
	COALESCE_WRITE_UPDATE,       /* a row that existed: its final image, by key */
	COALESCE_WRITE_DELETE,       /* a row that existed and is gone */
	COALESCE_WRITE_CHECK_ABSENT, /* inserted and deleted again: nothing to
	                              * write, but the insert must have been
	                              * possible (no row with its key) */
} coalesce_write_t;

typedef struct coalesce_row {
	struct coalesce_row *next;  /* order of first appearance */
	struct coalesce_row *hnext; /* hash chain */
	uint32_t relid;
	unsigned hash;
	bool existed; /* the row existed before this transaction touched it */
	bool present; /* it exists after the changes so far */
	uint16_t ncolumns;
	tuple_column_t *cols; /* the image; data point into blob */
	char *blob;
	size_t blob_len;
	char *key; /* the identity columns, length-prefixed (NULL: keyless insert) */
	size_t key_len;
} coalesce_row_t;

typedef struct coalesce {
	coalesce_row_t *first, *last;
	coalesce_row_t *hash[COALESCE_BUCKETS];
	size_t count, bytes;
	buf_t key; /* scratch: the key of the change being added */
} coalesce_t;

void coalesce_init(coalesce_t *c);
/* Forgets every held change. */
void coalesce_clear(coalesce_t *c);
void coalesce_free(coalesce_t *c);
static inline bool coalesce_empty(const coalesce_t *c)
{
	return c->first == NULL;
}

/* Holds one change of rel (type PGOUTPUT_INSERT, _UPDATE or _DELETE; t
 * the new image, or the old key of a delete; old_key_sent: an update that
 * carries the old key, i.e. changes it) when mode allows it: *taken. When
 * not taken, the caller writes what is held and then applies the change as
 * it comes. t must have rel->ncolumns columns. Fails only out of memory. */
int coalesce_add(coalesce_t *c, coalesce_mode_t mode, const relcache_entry_t *rel,
                 pgoutput_type_t type, bool old_key_sent, const tuple_t *t, bool *taken,
                 pgf_error_t *err);

/* The held rows in order of first appearance (then row->next), or NULL. */
static inline const coalesce_row_t *coalesce_first(const coalesce_t *c)
{
	return c->first;
}
coalesce_write_t coalesce_row_write(const coalesce_row_t *r);

#endif
