/*
 * depend.h — which source transactions may be applied at the same time
 * (parallel apply, apply_parallel.h).
 *
 * A transaction's footprint is the set of row identities it writes: for
 * each changed row, one hash per key it has (the replica identity, each
 * unique index of the DR table) over the table, the index and the key's
 * values, from the old and the new tuple. Two transactions conflict when
 * their footprints share a hash; a collision only adds a dependency that
 * was not needed, never loses one. A footprint that cannot be known (an
 * unchanged TOAST value in a key, a table without a usable key, a
 * TRUNCATE, DDL, a message, more than DEPEND_MAX_KEYS rows) is a barrier:
 * it waits for everything before it, and everything after waits for it.
 *
 * The tracker remembers, for each identity written by a transaction not
 * yet committed, the newest such transaction and the worker it was given
 * to. Transactions are numbered in source commit order from 1 and commit
 * in that order (depend_committed), which is what lets entries expire by
 * number alone.
 *
 * Pure: no connection, no clock, no thread. Ownership: a footprint owns
 * its array, the tracker its table; both are the caller's to free. Not
 * thread-safe (the coordinator alone uses it).
 */
#ifndef PGFERRY_DEPEND_H
#define PGFERRY_DEPEND_H

#include "pgferry/decoder.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* a transaction writing more rows than this is a barrier: its footprint
 * would cost more memory than running it alone costs time */
#define DEPEND_MAX_KEYS 65536

typedef struct depend_footprint {
	bool barrier;
	uint64_t *keys;
	size_t nkeys, cap;
} depend_footprint_t;

void depend_footprint_init(depend_footprint_t *fp);
/* Empties fp for the next transaction (keeps its array). */
void depend_footprint_reset(depend_footprint_t *fp);
void depend_footprint_free(depend_footprint_t *fp);
/* Makes fp a barrier (its keys no longer matter). */
void depend_footprint_barrier(depend_footprint_t *fp);
/*
 * Adds the identity of tuple t under one key of table relid: index_id names
 * the key (the replica identity's index, or a unique index), cols[0..ncols)
 * are its columns' positions in t. A key with a NULL column identifies
 * nothing when nulls_distinct (a unique index does not compare NULLs) and
 * is skipped; an unchanged TOAST value ('u'), a column past t's end, or
 * running out of room makes fp a barrier.
 */
void depend_footprint_add(depend_footprint_t *fp, uint32_t relid, uint32_t index_id,
                          const tuple_t *t, const uint16_t *cols, unsigned ncols,
                          bool nulls_distinct);

/* One identity written by a transaction in flight. */
typedef struct depend_entry {
	uint64_t key; /* 0: empty slot */
	uint64_t seq;
	int worker;
} depend_entry_t;

typedef struct depend {
	depend_entry_t *slots;
	size_t nslots, used; /* used counts entries that may have expired */
	uint64_t next_seq;   /* the number the next admitted transaction gets */
	uint64_t committed;  /* every transaction up to this one committed */
	uint64_t barrier;    /* the newest barrier admitted (0: none) */
	int barrier_worker;
} depend_t;

/* Where and when an admitted transaction may run. */
typedef struct depend_verdict {
	uint64_t seq;      /* its number in commit order */
	uint64_t wait_for; /* run it only once this one committed (0: at once) */
	int worker;        /* the worker it must go to (-1: any) */
} depend_verdict_t;

void depend_init(depend_t *d);
void depend_free(depend_t *d);
/* Forgets every transaction in flight; numbering goes on from next_seq. */
void depend_reset(depend_t *d);

/*
 * Numbers the next transaction and says where and when it may run:
 *  - a barrier waits for every transaction before it, on any worker;
 *  - a transaction that conflicts with none in flight runs at once anywhere;
 *  - one that conflicts goes to the worker of the newest transaction it
 *    conflicts with (a worker applies its transactions one after another)
 *    and waits for those on every other worker to commit first.
 * Then call depend_assign with the worker chosen.
 */
void depend_admit(depend_t *d, const depend_footprint_t *fp, depend_verdict_t *v);
/* Records that transaction seq (admitted last) with footprint fp runs on
 * worker; false when out of memory (then treat it as a barrier: wait for
 * it to commit before admitting the next). */
bool depend_assign(depend_t *d, const depend_footprint_t *fp, uint64_t seq, int worker);
/* Every transaction up to seq committed: their identities expire. */
void depend_committed(depend_t *d, uint64_t seq);
/* Transactions admitted and not yet committed. */
static inline uint64_t depend_in_flight(const depend_t *d)
{
	return d->next_seq - 1 - d->committed;
}

#endif
