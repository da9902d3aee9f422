/*
 * coalesce.c — the net change per row within one DR transaction (see
 * coalesce.h). Only the row's final image is written, once, at the end:
 * an insert then updates of the same row become one insert, an update
 * then a delete one delete, an insert then a delete nothing but a check
 * that the insert was possible. Whether a table allows it is decided
 * elsewhere (schema.c); this file only keeps the images.
 */
#include "pgferry/coalesce.h"

#include <stdlib.h>
#include <string.h>

void coalesce_init(coalesce_t *c)
{
	memset(c, 0, sizeof(*c));
	buf_init(&c->key);
}

static void row_free(coalesce_row_t *r)
{
	free(r->cols);
	free(r->blob);
	free(r->key);
	free(r);
}

void coalesce_clear(coalesce_t *c)
{
	coalesce_row_t *r, *n;

	for (r = c->first; r; r = n) {
		n = r->next;
		row_free(r);
	}
	c->first = c->last = NULL;
	memset(c->hash, 0, sizeof(c->hash));
	c->count = c->bytes = 0;
}

void coalesce_free(coalesce_t *c)
{
	coalesce_clear(c);
	buf_free(&c->key);
}

/* The row's identity: its key columns, each as kind, length and bytes. */
static bool make_key(coalesce_t *c, const relcache_entry_t *rel, const tuple_t *t)
{
	int i;

	buf_reset(&c->key);
	buf_append_be32(&c->key, rel->relid);
	for (i = 0; i < rel->ncolumns; i++) {
		if (!rel->columns[i].key)
			continue;
		buf_append_u8(&c->key, (uint8_t)t->columns[i].kind);
		buf_append_be32(&c->key, t->columns[i].len);
		buf_append(&c->key, t->columns[i].data, t->columns[i].len);
	}
	return !buf_failed(&c->key);
}

static coalesce_row_t *row_find(coalesce_t *c, unsigned h)
{
	coalesce_row_t *r;

	for (r = c->hash[h % COALESCE_BUCKETS]; r; r = r->hnext)
		if (r->hash == h && r->key_len == c->key.len &&
		    memcmp(r->key, c->key.data, c->key.len) == 0)
			return r;
	return NULL;
}

/* Sets r's image to t, taking unchanged TOAST columns ('u') from the image
 * it had, where it had them. */
static bool row_set_image(coalesce_row_t *r, const tuple_t *t)
{
	size_t total = 0, off = 0;
	tuple_column_t *cols = malloc(sizeof(*cols) * (t->ncolumns ? t->ncolumns : 1));
	char *blob;
	int i;

	if (cols == NULL)
		return false;
	for (i = 0; i < t->ncolumns; i++) {
		cols[i] = t->columns[i];
		if (cols[i].kind == 'u' && r->cols && i < r->ncolumns && r->cols[i].kind != 'u')
			cols[i] = r->cols[i];
		if (cols[i].kind == 't' || cols[i].kind == 'b')
			total += cols[i].len;
	}
	blob = malloc(total ? total : 1);
	if (blob == NULL) {
		free(cols);
		return false;
	}
	for (i = 0; i < t->ncolumns; i++) {
		if (cols[i].kind != 't' && cols[i].kind != 'b') {
			cols[i].data = NULL;
			cols[i].len = 0;
			continue;
		}
		memcpy(blob + off, cols[i].data, cols[i].len);
		cols[i].data = blob + off;
		off += cols[i].len;
	}
	free(r->cols);
	free(r->blob);
	r->cols = cols;
	r->blob = blob;
	r->blob_len = total;
	r->ncolumns = t->ncolumns;
	return true;
}

static coalesce_row_t *row_new(coalesce_t *c, uint32_t relid, bool keyed, unsigned h)
{
	coalesce_row_t *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->relid = relid;
	if (keyed) {
		r->key = malloc(c->key.len);
		if (r->key == NULL) {
			free(r);
			return NULL;
		}
		memcpy(r->key, c->key.data, c->key.len);
		r->key_len = c->key.len;
		r->hash = h;
		r->hnext = c->hash[h % COALESCE_BUCKETS];
		c->hash[h % COALESCE_BUCKETS] = r;
	}
	if (c->last)
		c->last->next = r;
	else
		c->first = r;
	c->last = r;
	c->count++;
	return r;
}

static int out_of_memory(pgf_error_t *err)
{
	return error_set(err, PGF_E_MEMORY, "out of memory");
}

int coalesce_add(coalesce_t *c, coalesce_mode_t mode, const relcache_entry_t *rel,
                 pgoutput_type_t type, bool old_key_sent, const tuple_t *t, bool *taken,
                 pgf_error_t *err)
{
	coalesce_row_t *r;
	unsigned h;

	*taken = false;
	/* a key that changes, or a table that does not allow it: in order */
	if (mode == COALESCE_NONE || (mode == COALESCE_APPEND && type != PGOUTPUT_INSERT) ||
	    (type == PGOUTPUT_UPDATE && old_key_sent) || c->count >= COALESCE_MAX_ROWS ||
	    c->bytes >= COALESCE_MAX_BYTES)
		return PGF_OK;
	if (mode == COALESCE_APPEND) {
		/* an insert of a table without net changes: held, in order */
		if ((r = row_new(c, rel->relid, false, 0)) == NULL || !row_set_image(r, t))
			return out_of_memory(err);
		r->present = true;
		c->bytes += r->blob_len;
		*taken = true;
		return PGF_OK;
	}
	if (!make_key(c, rel, t))
		return out_of_memory(err);
	h = buf_hash(&c->key);
	r = row_find(c, h);
	if (r == NULL) {
		if ((r = row_new(c, rel->relid, true, h)) == NULL)
			return out_of_memory(err);
		r->existed = type != PGOUTPUT_INSERT;
		r->present = r->existed;
	}
	/* an insert of a row that is there, a change of one that is not: the
	 * DR side will say what is wrong, in order */
	if (type == PGOUTPUT_INSERT ? r->present : !r->present)
		return PGF_OK;
	c->bytes -= r->blob_len;
	if (!row_set_image(r, t))
		return out_of_memory(err);
	c->bytes += r->blob_len;
	r->present = type != PGOUTPUT_DELETE;
	*taken = true;
	return PGF_OK;
}

coalesce_write_t coalesce_row_write(const coalesce_row_t *r)
{
	if (!r->existed)
		return r->present ? COALESCE_WRITE_INSERT : COALESCE_WRITE_CHECK_ABSENT;
	return r->present ? COALESCE_WRITE_UPDATE : COALESCE_WRITE_DELETE;
}
