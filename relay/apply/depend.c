/*
 * depend.c — which source transactions may be applied at the same time
 * (depend.h): footprints of row identities and the table of those written
 * by transactions in flight. The coordinator of parallel apply admits each
 * transaction here before it hands it to a worker.
 */
#include "pgferry/depend.h"

#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET 14695981039346656037ull
#define FNV_PRIME  1099511628211ull

void depend_footprint_init(depend_footprint_t *fp)
{
	memset(fp, 0, sizeof(*fp));
}

void depend_footprint_reset(depend_footprint_t *fp)
{
	fp->barrier = false;
	fp->nkeys = 0;
}

void depend_footprint_free(depend_footprint_t *fp)
{
	free(fp->keys);
	depend_footprint_init(fp);
}

void depend_footprint_barrier(depend_footprint_t *fp)
{
	fp->barrier = true;
	fp->nkeys = 0;
}

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= FNV_PRIME;
	}
	return h;
}

static bool footprint_push(depend_footprint_t *fp, uint64_t key)
{
	if (fp->nkeys == fp->cap) {
		size_t cap = fp->cap ? fp->cap * 2 : 64;
		uint64_t *k;
		if (cap > DEPEND_MAX_KEYS)
			return false;
		k = realloc(fp->keys, cap * sizeof(*k));
		if (k == NULL)
			return false;
		fp->keys = k;
		fp->cap = cap;
	}
	fp->keys[fp->nkeys++] = key;
	return true;
}

void depend_footprint_add(depend_footprint_t *fp, uint32_t relid, uint32_t index_id,
                          const tuple_t *t, const uint16_t *cols, unsigned ncols,
                          bool nulls_distinct)
{
	uint64_t h = FNV_OFFSET;
	unsigned i;

	if (fp->barrier)
		return;
	if (ncols == 0) {
		depend_footprint_barrier(fp); /* no key: nothing identifies the row */
		return;
	}
	h = fnv(h, &relid, sizeof(relid));
	h = fnv(h, &index_id, sizeof(index_id));
	for (i = 0; i < ncols; i++) {
		const tuple_column_t *c;
		uint32_t len;
		if (cols[i] >= t->ncolumns) {
			depend_footprint_barrier(fp);
			return;
		}
		c = &t->columns[cols[i]];
		if (c->kind == 'u') {
			depend_footprint_barrier(fp); /* its value is not in the stream */
			return;
		}
		if (c->kind == 'n' && nulls_distinct)
			return; /* a NULL is equal to nothing in a unique index */
		/* kind, length and bytes: "ab","c" and "a","bc" differ */
		len = c->kind == 'n' ? 0 : c->len;
		h = fnv(h, &c->kind, 1);
		h = fnv(h, &len, sizeof(len));
		if (len > 0)
			h = fnv(h, c->data, len);
	}
	if (h == 0)
		h = 1; /* 0 marks an empty slot */
	if (!footprint_push(fp, h))
		depend_footprint_barrier(fp);
}

void depend_init(depend_t *d)
{
	memset(d, 0, sizeof(*d));
	d->next_seq = 1;
	d->barrier_worker = -1;
}

void depend_free(depend_t *d)
{
	free(d->slots);
	d->slots = NULL;
	d->nslots = d->used = 0;
}

void depend_reset(depend_t *d)
{
	if (d->slots)
		memset(d->slots, 0, d->nslots * sizeof(*d->slots));
	d->used = 0;
	d->committed = d->next_seq - 1;
	d->barrier = 0;
	d->barrier_worker = -1;
}

static depend_entry_t *slot_find(const depend_t *d, uint64_t key)
{
	size_t mask = d->nslots - 1, i;

	if (d->nslots == 0)
		return NULL;
	for (i = (size_t)key & mask;; i = (i + 1) & mask) {
		depend_entry_t *e = &d->slots[i];
		if (e->key == key || e->key == 0)
			return e;
	}
}

/* Grows (or rebuilds, dropping entries of committed transactions) so that
 * extra more entries keep the table at most half full. */
static bool table_make_room(depend_t *d, size_t extra)
{
	depend_entry_t *old = d->slots;
	size_t oldn = d->nslots, live = 0, n, i;

	if (d->used + extra <= d->nslots / 2)
		return true;
	for (i = 0; i < oldn; i++)
		if (old[i].key != 0 && old[i].seq > d->committed)
			live++;
	for (n = 256; n / 2 < live + extra; n *= 2)
		;
	d->slots = calloc(n, sizeof(*d->slots));
	if (d->slots == NULL) {
		d->slots = old;
		return false;
	}
	d->nslots = n;
	d->used = 0;
	for (i = 0; i < oldn; i++)
		if (old[i].key != 0 && old[i].seq > d->committed) {
			*slot_find(d, old[i].key) = old[i];
			d->used++;
		}
	free(old);
	return true;
}

/* The newest transaction in flight that fp conflicts with (0: none) among
 * those on a worker other than skip (-1: on any); *worker: its worker. A
 * barrier in flight conflicts with everything. */
static uint64_t newest_conflict(const depend_t *d, const depend_footprint_t *fp, int skip,
                                int *worker)
{
	uint64_t newest = 0;
	size_t i;

	*worker = -1;
	if (d->barrier > d->committed && (skip < 0 || d->barrier_worker != skip)) {
		newest = d->barrier;
		*worker = d->barrier_worker;
	}
	for (i = 0; i < fp->nkeys; i++) {
		const depend_entry_t *e = slot_find(d, fp->keys[i]);
		if (e == NULL || e->key == 0 || e->seq <= d->committed || e->seq <= newest ||
		    (skip >= 0 && e->worker == skip))
			continue;
		newest = e->seq;
		*worker = e->worker;
	}
	return newest;
}

void depend_admit(depend_t *d, const depend_footprint_t *fp, depend_verdict_t *v)
{
	int worker, ignored;

	v->seq = d->next_seq++;
	v->wait_for = 0;
	v->worker = -1;
	if (fp->barrier) {
		/* everything before it commits first, wherever it ran */
		v->wait_for = v->seq - 1 > d->committed ? v->seq - 1 : 0;
		return;
	}
	if (newest_conflict(d, fp, -1, &worker) == 0)
		return;
	/* a worker applies its transactions in order: behind the newest it
	 * conflicts with, once those on other workers committed */
	v->worker = worker;
	v->wait_for = newest_conflict(d, fp, worker, &ignored);
}

bool depend_assign(depend_t *d, const depend_footprint_t *fp, uint64_t seq, int worker)
{
	size_t i;

	if (fp->barrier) {
		d->barrier = seq;
		d->barrier_worker = worker;
		return true;
	}
	if (!table_make_room(d, fp->nkeys))
		return false;
	for (i = 0; i < fp->nkeys; i++) {
		depend_entry_t *e = slot_find(d, fp->keys[i]);
		if (e->key == 0) {
			e->key = fp->keys[i];
			d->used++;
		}
		e->seq = seq;
		e->worker = worker;
	}
	return true;
}

void depend_committed(depend_t *d, uint64_t seq)
{
	if (seq > d->committed)
		d->committed = seq;
	/* nothing in flight: every entry has expired */
	if (d->committed + 1 == d->next_seq && d->used > 0) {
		memset(d->slots, 0, d->nslots * sizeof(*d->slots));
		d->used = 0;
	}
}
