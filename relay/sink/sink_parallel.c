/*
 * sink_parallel.c — parallel apply (apply_workers > 1): the coordinator,
 * run by the sink's apply thread, and the worker threads. The design, and
 * why a crash at any point resumes exactly, is in pgferry/apply_parallel.h.
 *
 * The coordinator buffers whole source transactions into units (a run of
 * consecutive transactions, one DR transaction), finds what each unit
 * writes (depend.h) and hands it to a worker, or runs it itself on its own
 * connection ("main") when it is a barrier. Units are numbered in source
 * commit order; each DR commit waits for its turn (every unit before it
 * sent its COMMIT) and records the progress only where the unit before it
 * left it (pgferry.advance_progress), so commits happen in source order and
 * a failed one stops every later one.
 */
#include "sink_parallel.h"

#include "pgferry/buf.h"
#include "pgferry/decoder.h"
#include "pgferry/depend.h"
#include "pgferry/huge_change.h"
#include "pgferry/log.h"
#include "pgferry/replication.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS      16
#define UNITS_QUEUED     2   /* units waiting per worker */
#define UNIT_RING        256 /* units numbered and not yet reported */
#define UNIT_MAX_BYTES   (8u << 20)
#define DURABLE_EVERY_MS 50.0
#define MAX_INDEXES      16
#define MAX_KEY_COLUMNS  32

/* One record of a unit: this header, then len bytes (a huge change: its
 * file's path, NUL included). */
typedef struct unit_rec {
	pgoutput_facts_t facts; /* what the network thread decoded (queue.h) */
	uint64_t wal_start;
	uint32_t len;
	uint32_t xid;
	char kind; /* 'w' or 'h' */
	uint8_t type;
} unit_rec_t;

typedef struct unit {
	struct unit *next;
	uint64_t seq;
	buf_t recs;
	uint32_t nrecs;
	depend_footprint_t fp;
	apply_group_t stats; /* end_lsn, last_commit_time, transactions, rows, bytes */
	bool durable;
	bool has_huge;
} unit_t;

/* What the DR table's keys are, for footprints. */
typedef struct index_keys {
	uint32_t id;
	bool nulls_distinct;
	unsigned ncols;
	uint16_t cols[MAX_KEY_COLUMNS];
} index_keys_t;

typedef struct table_keys {
	uint32_t relid;
	uint64_t generation;
	bool barrier;   /* no usable key, or one whose values cannot be had */
	bool secondary; /* a unique index beyond the replica identity */
	bool use_ri;
	unsigned nri;
	uint16_t ri[MAX_KEY_COLUMNS];
	unsigned nidx;
	index_keys_t idx[MAX_INDEXES];
} table_keys_t;

typedef struct worker {
	struct sink_parallel *par;
	int index; /* 1.. */
	pthread_t thread;
	bool started;
	apply_t *apply;
	/* under par->lock */
	unit_t *head, *tail;
	unsigned queued;
	bool busy;
	bool reset;        /* roll back and forget (asked by the coordinator) */
	bool unread;       /* COMMITs sent whose result was not read */
	uint64_t unit_seq; /* the unit being applied */
	uint64_t sent[8];  /* seqs whose COMMIT is in flight, oldest first */
	unsigned sent_head, nsent;
	buf_t pending; /* Relation and Type messages it has not seen (coordinator) */
} worker_t;

struct sink_parallel {
	config_t cfg;         /* a copy: groups are cut by the coordinator only */
	const config_t *orig; /* apply_group_max_transactions: transactions in a unit */
	void (*committed)(void *arg, const apply_group_t *g);
	void *arg;
	apply_t *main;
	worker_t workers[MAX_WORKERS + 1];
	int nworkers;
	int last_worker; /* the worker chosen last (coordinator, under lock) */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* under lock */
	bool stop;
	bool failed;
	pgf_error_t fail_err;
	uint64_t fail_seq, fail_lsn;
	uint64_t sent_seq, sent_end; /* the turn: the newest unit whose COMMIT was sent */
	uint64_t committed_seq, durable_seq;
	apply_group_t ring[UNIT_RING];
	uint64_t main_sent[8]; /* main's COMMITs in flight */
	unsigned main_sent_head, main_nsent;

	/* the coordinator's own */
	uint64_t reported_seq;
	uint64_t main_seq; /* the unit main runs (0: none yet numbered) */
	depend_t dep;
	pgoutput_decoder_t decoder;
	pgoutput_message_t *msg;
	relcache_t *relcache;
	table_keys_t *tables;
	size_t ntables, tables_cap;
	PGconn *catalog;
	unit_t *cur;
	size_t txn_start; /* where the transaction being buffered starts in cur */
	uint32_t txn_nrecs_start;
	depend_footprint_t txn_fp;
	apply_group_t txn_stats;
	buf_t txn_relations; /* Relation and Type messages of the transaction */
	bool in_txn, skipping, in_stream;
	uint64_t skip_below;
	bool last_durable; /* the last unit dispatched commits durably */
	struct timespec durable_at;
};

static double ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1000.0 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* ---- units ----------------------------------------------------------------- */

static unit_t *unit_new(void)
{
	unit_t *u = calloc(1, sizeof(*u));

	if (u == NULL)
		return NULL;
	buf_init(&u->recs);
	depend_footprint_init(&u->fp);
	return u;
}

/* Frees u; the files of its huge changes go with it (a stream may have
 * taken one: then it is gone already). */
static void unit_free(unit_t *u)
{
	size_t off = 0;
	unit_rec_t h;

	if (u == NULL)
		return;
	while (u->has_huge && off + sizeof(h) <= u->recs.len) {
		memcpy(&h, u->recs.data + off, sizeof(h));
		if (h.kind == 'h')
			unlink(u->recs.data + off + sizeof(h));
		off += sizeof(h) + h.len;
	}
	buf_free(&u->recs);
	depend_footprint_free(&u->fp);
	free(u);
}

static void unit_append(unit_t *u, const queue_record_t *r, const void *data, uint32_t len)
{
	unit_rec_t h;
	char kind = r->kind;
	uint8_t type = r->type;
	uint32_t xid = r->xid;
	uint64_t wal_start = r->wal_start;

	memset(&h, 0, sizeof(h));
	h.facts = r->facts;
	h.kind = kind;
	h.type = type;
	h.xid = xid;
	h.wal_start = wal_start;
	h.len = len;
	buf_append(&u->recs, &h, sizeof(h));
	buf_append(&u->recs, data, len);
	u->nrecs++;
	if (kind == 'h')
		u->has_huge = true;
}

/* Feeds every record of u to a (a worker's engine, or main). */
static int unit_apply(apply_t *a, const unit_t *u, pgf_error_t *err)
{
	size_t off = 0;
	unit_rec_t h;

	while (off + sizeof(h) <= u->recs.len) {
		const char *data;
		memcpy(&h, u->recs.data + off, sizeof(h));
		data = u->recs.data + off + sizeof(h);
		if (h.kind == 'h') {
			if (apply_huge_record(a, h.wal_start, h.type, h.xid, &h.facts, data, err) !=
			    PGF_OK)
				return PGF_ERR;
		} else if (apply_record(a, h.wal_start, h.type, h.xid, &h.facts,
		                        (const uint8_t *)data, h.len, err) != PGF_OK) {
			return PGF_ERR;
		}
		off += sizeof(h) + h.len;
	}
	return PGF_OK;
}

/* ---- the shared state: turns, commits, failure ----------------------------- */

/* Under lock: the first failure in commit order is the one reported; later
 * units fail because of it. */
static void fail_locked(struct sink_parallel *par, uint64_t seq, uint64_t lsn,
                        const pgf_error_t *err)
{
	if (!par->failed || seq < par->fail_seq) {
		par->fail_err = *err;
		par->fail_seq = seq;
		par->fail_lsn = lsn;
	}
	par->failed = true;
	pthread_cond_broadcast(&par->cond);
}

static int failed_error(struct sink_parallel *par, pgf_error_t *err)
{
	*err = par->fail_err;
	return PGF_ERR;
}

static void committed_locked(struct sink_parallel *par, uint64_t seq, bool durable)
{
	/* its progress check proved every unit before it committed */
	if (seq > par->committed_seq)
		par->committed_seq = seq;
	if (durable && seq > par->durable_seq)
		par->durable_seq = seq;
	pthread_cond_broadcast(&par->cond);
}

static int worker_turn(void *arg, uint64_t end_lsn, uint64_t *expected, pgf_error_t *err)
{
	worker_t *w = arg;
	struct sink_parallel *par = w->par;
	int rc = PGF_OK;

	/* the turn passes when the COMMIT before came back: until then its
	 * progress record may not even have reached the server */
	pthread_mutex_lock(&par->lock);
	if (!par->failed && par->committed_seq + 1 < w->unit_seq)
		log_debug(
		        "parallel apply: worker %d waits with transaction group %llu for its turn "
		        "to commit (%llu committed)",
		        w->index, (unsigned long long)w->unit_seq,
		        (unsigned long long)par->committed_seq);
	while (!par->failed && !par->stop && par->committed_seq + 1 != w->unit_seq)
		pthread_cond_wait(&par->cond, &par->lock);
	if (par->failed || par->stop) {
		error_set(err, PGF_E_APPLY,
		          "parallel apply stopped before this transaction's turn");
		rc = PGF_ERR;
	} else {
		*expected = par->sent_end;
		par->sent_seq = w->unit_seq;
		par->sent_end = end_lsn;
		w->sent[(w->sent_head + w->nsent) % 8] = w->unit_seq;
		w->nsent++;
		w->unread = true;
		pthread_cond_broadcast(&par->cond);
	}
	pthread_mutex_unlock(&par->lock);
	return rc;
}

static void worker_group_committed(void *arg, const apply_group_t *g, bool durable)
{
	worker_t *w = arg;
	struct sink_parallel *par = w->par;
	uint64_t seq;

	(void)g;
	pthread_mutex_lock(&par->lock);
	if (w->nsent > 0) {
		seq = w->sent[w->sent_head];
		w->sent_head = (w->sent_head + 1) % 8;
		w->nsent--;
		committed_locked(par, seq, durable);
	}
	pthread_mutex_unlock(&par->lock);
}

/* main's turn: the coordinator runs main only once every unit before is
 * committed. A unit of main's own has its number; a DR transaction that
 * only records progress takes the next. */
static int main_turn(void *arg, uint64_t end_lsn, uint64_t *expected, pgf_error_t *err)
{
	struct sink_parallel *par = arg;
	depend_footprint_t barrier;
	depend_verdict_t v;
	uint64_t seq = par->main_seq;

	if (seq == 0) {
		depend_footprint_init(&barrier);
		depend_footprint_barrier(&barrier);
		depend_admit(&par->dep, &barrier, &v);
		depend_assign(&par->dep, &barrier, v.seq, 0);
		seq = v.seq;
		memset(&par->ring[seq % UNIT_RING], 0, sizeof(apply_group_t));
		par->ring[seq % UNIT_RING].end_lsn = end_lsn;
		par->ring[seq % UNIT_RING].last_commit_time = apply_progress_time(par->main);
	}
	par->main_seq = 0; /* one commit per number */
	pthread_mutex_lock(&par->lock);
	if (par->failed) {
		pthread_mutex_unlock(&par->lock);
		return error_set(err, PGF_E_APPLY, "parallel apply failed before this transaction");
	}
	*expected = par->sent_end;
	par->sent_seq = seq;
	par->sent_end = end_lsn;
	par->main_sent[(par->main_sent_head + par->main_nsent) % 8] = seq;
	par->main_nsent++;
	pthread_mutex_unlock(&par->lock);
	return PGF_OK;
}

static void main_group_committed(void *arg, const apply_group_t *g, bool durable)
{
	struct sink_parallel *par = arg;
	uint64_t seq;

	pthread_mutex_lock(&par->lock);
	if (par->main_nsent > 0) {
		seq = par->main_sent[par->main_sent_head];
		par->main_sent_head = (par->main_sent_head + 1) % 8;
		par->main_nsent--;
		if (g->transactions > 0)
			par->ring[seq % UNIT_RING] = *g;
		committed_locked(par, seq, durable);
	}
	pthread_mutex_unlock(&par->lock);
}

/* Reports what is durable now, merged, to the sink (coordinator only). */
static void report(struct sink_parallel *par)
{
	apply_group_t merged;
	uint64_t durable, s;

	pthread_mutex_lock(&par->lock);
	durable = par->durable_seq;
	memset(&merged, 0, sizeof(merged));
	for (s = par->reported_seq + 1; s <= durable; s++) {
		const apply_group_t *g = &par->ring[s % UNIT_RING];
		if (g->end_lsn > merged.end_lsn) {
			merged.end_lsn = g->end_lsn;
			merged.last_commit_time = g->last_commit_time;
		}
		merged.transactions += g->transactions;
		merged.rows += g->rows;
		merged.bytes += g->bytes;
		merged.seconds += g->seconds;
	}
	pthread_mutex_unlock(&par->lock);
	if (durable <= par->reported_seq)
		return;
	par->reported_seq = durable;
	depend_committed(&par->dep, durable);
	if (merged.end_lsn == 0)
		return;
	apply_set_progress(par->main, merged.end_lsn, merged.last_commit_time);
	if (par->committed)
		par->committed(par->arg, &merged);
}

/* Waits until every unit up to seq committed (0: at once); PGF_ERR when
 * apply failed meanwhile. */
static int wait_committed(struct sink_parallel *par, uint64_t seq, pgf_error_t *err)
{
	int rc = PGF_OK;

	pthread_mutex_lock(&par->lock);
	while (!par->failed && par->committed_seq < seq)
		pthread_cond_wait(&par->cond, &par->lock);
	if (par->failed)
		rc = failed_error(par, err);
	pthread_mutex_unlock(&par->lock);
	report(par);
	return rc;
}

/* ---- the workers --------------------------------------------------------------- */

static int worker_apply_unit(worker_t *w, unit_t *u, pgf_error_t *err)
{
	if (!apply_connected(w->apply) && apply_connect(w->apply, err) != PGF_OK)
		return PGF_ERR;
	if (unit_apply(w->apply, u, err) != PGF_OK)
		return PGF_ERR;
	/* the unit is one DR transaction: its turn, progress and COMMIT, whose
	 * result gives the turn to the next */
	if (apply_commit_group(w->apply, u->durable, err) != PGF_OK)
		return PGF_ERR;
	return apply_wait_results(w->apply, err);
}

static void *worker_main(void *arg)
{
	worker_t *w = arg;
	struct sink_parallel *par = w->par;
	pgf_error_t err;

	pthread_mutex_lock(&par->lock);
	while (!par->stop) {
		unit_t *u;
		int rc;
		if (w->reset) {
			w->busy = true;
			pthread_mutex_unlock(&par->lock);
			apply_reset(w->apply);
			if (!apply_connected(w->apply))
				apply_disconnect(w->apply);
			pthread_mutex_lock(&par->lock);
			w->reset = false;
			w->busy = false;
			w->nsent = 0;
			w->unread = false;
			pthread_cond_broadcast(&par->cond);
			continue;
		}
		if (w->head == NULL || par->failed) {
			if (w->unread && !par->failed) {
				/* idle: read what is in flight, so commits are heard of */
				w->unread = false;
				pthread_mutex_unlock(&par->lock);
				error_clear(&err);
				rc = apply_wait_results(w->apply, &err);
				pthread_mutex_lock(&par->lock);
				if (rc != PGF_OK)
					fail_locked(par, w->nsent ? w->sent[w->sent_head] : 0,
					            apply_failed_lsn(w->apply), &err);
				continue;
			}
			pthread_cond_wait(&par->cond, &par->lock);
			continue;
		}
		u = w->head;
		w->head = u->next;
		if (w->head == NULL)
			w->tail = NULL;
		w->queued--;
		w->busy = true;
		w->unit_seq = u->seq;
		pthread_cond_broadcast(&par->cond);
		pthread_mutex_unlock(&par->lock);
		error_clear(&err);
		rc = worker_apply_unit(w, u, &err);
		if (rc != PGF_OK) {
			uint64_t lsn = apply_failed_lsn(w->apply);
			bool gone = !apply_connected(w->apply);
			pthread_mutex_lock(&par->lock);
			fail_locked(par, u->seq, lsn, &err);
			pthread_mutex_unlock(&par->lock);
			/* rolls back; the COMMITs whose result comes back stay */
			apply_reset(w->apply);
			if (gone)
				apply_disconnect(w->apply);
		}
		unit_free(u);
		pthread_mutex_lock(&par->lock);
		w->busy = false;
		if (rc != PGF_OK)
			w->nsent = 0;
		pthread_cond_broadcast(&par->cond);
	}
	pthread_mutex_unlock(&par->lock);
	return NULL;
}

/* ---- what a table's keys are (the DR table's unique indexes) ------------------ */

static const char index_sql[] =
        "SELECT i.indexrelid::int8, i.indnullsnotdistinct, "
        "i.indexprs IS NULL AND i.indpred IS NULL AND i.indimmediate AND NOT "
        "i.indisexclusion, a.attname "
        "FROM pg_catalog.pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH "
        "ORDINALITY k(n, o) LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND "
        "a.attnum = k.n WHERE i.indrelid = to_regclass(pg_catalog.quote_ident($1) || '.' || "
        "pg_catalog.quote_ident($2)) AND (i.indisunique OR i.indisexclusion) AND i.indislive ORDER "
        "BY "
        "i.indexrelid, k.o";

static int column_of(const relcache_entry_t *rel, const char *name)
{
	int i;

	for (i = 0; i < rel->ncolumns; i++)
		if (strcmp(rel->columns[i].name, name) == 0)
			return i;
	return -1;
}

static bool within_ri(const table_keys_t *t, const index_keys_t *x)
{
	unsigned i, j;

	for (i = 0; i < x->ncols; i++) {
		for (j = 0; j < t->nri && t->ri[j] != x->cols[i]; j++)
			;
		if (j == t->nri)
			return false;
	}
	return true;
}

/* Reads the unique indexes of rel's DR table; a query that fails leaves the
 * table a barrier (applied alone: slower, never wrong). */
static void read_indexes(struct sink_parallel *par, const relcache_entry_t *rel, table_keys_t *t)
{
	const char *params[2] = {rel->namespace, rel->name};
	PGresult *res;
	int i;
	uint32_t cur = 0;

	if (par->catalog == NULL || PQstatus(par->catalog) != CONNECTION_OK) {
		PQfinish(par->catalog);
		par->catalog = PQconnectdb(par->cfg.dr_conninfo);
	}
	if (PQstatus(par->catalog) != CONNECTION_OK) {
		t->barrier = true;
		return;
	}
	res = PQexecParams(par->catalog, index_sql, 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		t->barrier = true;
		PQclear(res);
		return;
	}
	for (i = 0; i < PQntuples(res); i++) {
		uint32_t id = (uint32_t)strtoul(PQgetvalue(res, i, 0), NULL, 10);
		index_keys_t *x;
		int col;
		if (id != cur) {
			if (t->nidx == MAX_INDEXES) {
				t->barrier = true;
				break;
			}
			cur = id;
			x = &t->idx[t->nidx++];
			memset(x, 0, sizeof(*x));
			x->id = id;
			x->nulls_distinct = strcmp(PQgetvalue(res, i, 1), "t") != 0;
			/* an expression, a partial or a deferred index, an exclusion
			 * constraint: which rows meet is not known from the values */
			if (strcmp(PQgetvalue(res, i, 2), "t") != 0)
				t->barrier = true;
		}
		x = &t->idx[t->nidx - 1];
		col = PQgetisnull(res, i, 3) ? -1 : column_of(rel, PQgetvalue(res, i, 3));
		if (col < 0 || x->ncols == MAX_KEY_COLUMNS) {
			t->barrier = true; /* a column the stream does not carry */
			continue;
		}
		x->cols[x->ncols++] = (uint16_t)col;
	}
	PQclear(res);
}

static const table_keys_t *table_keys(struct sink_parallel *par, const relcache_entry_t *rel)
{
	table_keys_t *t = NULL;
	size_t i;
	int c;

	for (i = 0; i < par->ntables; i++)
		if (par->tables[i].relid == rel->relid) {
			t = &par->tables[i];
			break;
		}
	if (t != NULL && t->generation == rel->generation)
		return t;
	if (t == NULL) {
		if (par->ntables == par->tables_cap) {
			size_t cap = par->tables_cap ? par->tables_cap * 2 : 32;
			table_keys_t *n = realloc(par->tables, cap * sizeof(*n));
			if (n == NULL)
				return NULL;
			par->tables = n;
			par->tables_cap = cap;
		}
		t = &par->tables[par->ntables++];
	}
	memset(t, 0, sizeof(*t));
	t->relid = rel->relid;
	t->generation = rel->generation;
	for (c = 0; c < rel->ncolumns; c++)
		if (rel->columns[c].key) {
			if (t->nri == MAX_KEY_COLUMNS) {
				t->barrier = true;
				break;
			}
			t->ri[t->nri++] = (uint16_t)c;
		}
	/* FULL names every column: a row, not a key; NOTHING names none */
	t->use_ri = (rel->replica_identity == 'd' || rel->replica_identity == 'i') && t->nri > 0;
	read_indexes(par, rel, t);
	if (!t->use_ri && t->nidx == 0)
		t->barrier = true; /* nothing tells two rows apart */
	for (i = 0; i < t->nidx; i++)
		if (!t->use_ri || !within_ri(t, &t->idx[i]))
			t->secondary = true;
	return t;
}

/* Every key of t's row image under table k. */
static void add_keys(depend_footprint_t *fp, const relcache_entry_t *rel, const table_keys_t *k,
                     const tuple_t *t, bool ri_only)
{
	unsigned i;

	if (k->use_ri)
		depend_footprint_add(fp, rel->relid, 0, t, k->ri, k->nri, false);
	if (ri_only)
		return;
	for (i = 0; i < k->nidx; i++)
		depend_footprint_add(fp, rel->relid, k->idx[i].id, t, k->idx[i].cols,
		                     k->idx[i].ncols, k->idx[i].nulls_distinct);
}

/* What one change writes, into the transaction's footprint. */
static void footprint_change(struct sink_parallel *par, const pgoutput_message_t *m)
{
	depend_footprint_t *fp = &par->txn_fp;
	const relcache_entry_t *rel;
	const table_keys_t *k;
	uint32_t relid = m->type == PGOUTPUT_INSERT   ? m->u.insert.relid
	                 : m->type == PGOUTPUT_UPDATE ? m->u.update.relid
	                                              : m->u.delete_.relid;

	rel = relcache_get(par->relcache, relid);
	k = rel ? table_keys(par, rel) : NULL;
	if (k == NULL || k->barrier) {
		depend_footprint_barrier(fp);
		return;
	}
	switch (m->type) {
	case PGOUTPUT_INSERT:
		add_keys(fp, rel, k, &m->u.insert.new_tuple, false);
		break;
	case PGOUTPUT_UPDATE:
		add_keys(fp, rel, k, &m->u.update.new_tuple, false);
		if (m->u.update.old_kind == 'O')
			add_keys(fp, rel, k, &m->u.update.old_tuple, false);
		else if (k->secondary)
			depend_footprint_barrier(fp); /* the old unique values are unknown */
		else if (m->u.update.old_kind == 'K')
			add_keys(fp, rel, k, &m->u.update.old_tuple, true);
		break;
	default: /* DELETE */
		if (m->u.delete_.old_kind == 'O')
			add_keys(fp, rel, k, &m->u.delete_.old_tuple, false);
		else if (k->secondary)
			depend_footprint_barrier(fp);
		else
			add_keys(fp, rel, k, &m->u.delete_.old_tuple, true);
		break;
	}
}

/* ---- dispatch ------------------------------------------------------------------ */

/* The worker with the fewest units waiting, the one after the last chosen
 * first among equals (so that every connection takes its share); waits for
 * room. Under lock. */
static int pick_worker_locked(struct sink_parallel *par)
{
	int n, i, best = -1;

	for (;;) {
		for (n = 0; n < par->nworkers; n++) {
			worker_t *w;
			i = (par->last_worker + n) % par->nworkers + 1;
			w = &par->workers[i];
			unsigned load = w->queued + (w->busy ? 1 : 0);
			if (w->queued < UNITS_QUEUED &&
			    (best < 0 || load < par->workers[best].queued +
			                                 (par->workers[best].busy ? 1u : 0u)))
				best = i;
		}
		if (best >= 0 || par->failed) {
			if (best >= 0)
				par->last_worker = best;
			return best;
		}
		pthread_cond_wait(&par->cond, &par->lock);
	}
}

/* Runs a barrier unit on main, alone: everything before it committed. */
static int run_on_main(struct sink_parallel *par, unit_t *u, pgf_error_t *err)
{
	int rc;

	par->main_seq = u->seq;
	rc = unit_apply(par->main, u, err);
	if (rc == PGF_OK)
		rc = apply_commit_group(par->main, true, err);
	if (rc == PGF_OK && par->main_seq == u->seq) {
		/* nothing to commit (cannot happen: a unit holds transactions):
		 * the number passes */
		pthread_mutex_lock(&par->lock);
		par->sent_seq = u->seq;
		committed_locked(par, u->seq, true);
		pthread_mutex_unlock(&par->lock);
	}
	par->main_seq = 0;
	if (rc != PGF_OK) {
		pthread_mutex_lock(&par->lock);
		fail_locked(par, u->seq, apply_failed_lsn(par->main), err);
		pthread_mutex_unlock(&par->lock);
		return PGF_ERR;
	}
	depend_committed(&par->dep, u->seq);
	return wait_committed(par, u->seq, err);
}

/* Sends the Relation and Type messages worker w has not seen before u. */
static bool prepend_pending(worker_t *w, unit_t *u)
{
	buf_t b;
	uint32_t n = 0;
	size_t off = 0;
	unit_rec_t h;

	if (w->pending.len == 0)
		return true;
	while (off + sizeof(h) <= w->pending.len) {
		memcpy(&h, w->pending.data + off, sizeof(h));
		off += sizeof(h) + h.len;
		n++;
	}
	buf_init(&b);
	buf_append(&b, w->pending.data, w->pending.len);
	buf_append(&b, u->recs.data, u->recs.len);
	if (buf_failed(&b)) {
		buf_free(&b);
		return false;
	}
	buf_free(&u->recs);
	u->recs = b;
	u->nrecs += n;
	buf_reset(&w->pending);
	return true;
}

/* Hands unit u (whole transactions) to a worker, or runs it on main. */
static int dispatch(struct sink_parallel *par, unit_t *u, pgf_error_t *err)
{
	depend_verdict_t v;
	worker_t *w;
	int target;

	if (u->nrecs == 0) {
		unit_free(u);
		return PGF_OK;
	}
	/* numbers not yet reported stay in the ring: a durable commit soon */
	if (par->dep.next_seq - par->reported_seq >= UNIT_RING / 2)
		u->durable = true;
	if (par->dep.next_seq - par->reported_seq >= UNIT_RING - 1 &&
	    wait_committed(par, par->dep.next_seq - 1, err) != PGF_OK) {
		unit_free(u);
		return PGF_ERR;
	}
	if (!u->durable && ms_since(&par->durable_at) >= DURABLE_EVERY_MS)
		u->durable = true;
	if (u->durable)
		clock_gettime(CLOCK_MONOTONIC, &par->durable_at);
	par->last_durable = u->durable;
	depend_admit(&par->dep, &u->fp, &v);
	u->seq = v.seq;
	pthread_mutex_lock(&par->lock);
	par->ring[u->seq % UNIT_RING] = u->stats;
	pthread_mutex_unlock(&par->lock);
	if (u->fp.barrier) {
		int rc;
		if (wait_committed(par, v.wait_for, err) != PGF_OK) {
			unit_free(u);
			return PGF_ERR;
		}
		depend_assign(&par->dep, &u->fp, u->seq, 0);
		log_debug("parallel apply: transaction group %llu (%llu transactions) alone on the "
		          "coordinator's connection",
		          (unsigned long long)u->seq, (unsigned long long)u->stats.transactions);
		rc = run_on_main(par, u, err);
		unit_free(u);
		return rc;
	}
	if (v.wait_for && wait_committed(par, v.wait_for, err) != PGF_OK) {
		unit_free(u);
		return PGF_ERR;
	}
	pthread_mutex_lock(&par->lock);
	target = v.worker;
	if (target <= 0) {
		target = pick_worker_locked(par);
	} else {
		while (!par->failed && par->workers[target].queued >= UNITS_QUEUED)
			pthread_cond_wait(&par->cond, &par->lock);
	}
	if (par->failed) {
		int rc = failed_error(par, err);
		pthread_mutex_unlock(&par->lock);
		unit_free(u);
		return rc;
	}
	w = &par->workers[target];
	if (!depend_assign(&par->dep, &u->fp, u->seq, target) || !prepend_pending(w, u)) {
		pthread_mutex_unlock(&par->lock);
		unit_free(u);
		return error_set(err, PGF_E_MEMORY, "out of memory in parallel apply");
	}
	log_debug("parallel apply: transaction group %llu (%llu transactions) to worker %d%s",
	          (unsigned long long)u->seq, (unsigned long long)u->stats.transactions, target,
	          v.worker > 0 ? ", behind one it depends on" : "");
	u->next = NULL;
	if (w->tail)
		w->tail->next = u;
	else
		w->head = u;
	w->tail = u;
	w->queued++;
	pthread_cond_broadcast(&par->cond);
	pthread_mutex_unlock(&par->lock);
	report(par);
	return PGF_OK;
}

/* The whole transactions of the unit being filled go (the transaction
 * being buffered, if any, stays). */
static int dispatch_current(struct sink_parallel *par, bool durable, pgf_error_t *err)
{
	unit_t *u = par->cur, *rest;

	if (u == NULL || u->stats.transactions == 0)
		return PGF_OK;
	rest = unit_new();
	if (rest == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory in parallel apply");
	if (par->in_txn) {
		buf_append(&rest->recs, u->recs.data + par->txn_start,
		           u->recs.len - par->txn_start);
		rest->nrecs = u->nrecs - par->txn_nrecs_start;
		rest->has_huge = u->has_huge;
		u->recs.len = par->txn_start;
		u->nrecs = par->txn_nrecs_start;
		par->txn_start = 0;
		par->txn_nrecs_start = 0;
	}
	par->cur = rest;
	u->durable = durable;
	return dispatch(par, u, err);
}

/* ---- records, in stream order --------------------------------------------------- */

/* Relation and Type messages: every worker is sent them ahead of its next
 * unit; later: once the transaction they came in (a barrier) committed. */
static void relation_for_all(struct sink_parallel *par, const queue_record_t *r,
                             const uint8_t *data, bool later)
{
	unit_rec_t h;
	int i;

	memset(&h, 0, sizeof(h));
	h.kind = 'w';
	h.type = r->type;
	h.wal_start = r->wal_start;
	h.len = r->len;
	if (later) {
		buf_append(&par->txn_relations, &h, sizeof(h));
		buf_append(&par->txn_relations, data, r->len);
		return;
	}
	pthread_mutex_lock(&par->lock);
	for (i = 1; i <= par->nworkers; i++) {
		buf_append(&par->workers[i].pending, &h, sizeof(h));
		buf_append(&par->workers[i].pending, data, r->len);
	}
	pthread_mutex_unlock(&par->lock);
}

/* The Relation and Type messages of a transaction that committed on main
 * go to every worker. */
static void relations_release(struct sink_parallel *par)
{
	int i;

	if (par->txn_relations.len == 0)
		return;
	pthread_mutex_lock(&par->lock);
	for (i = 1; i <= par->nworkers; i++)
		buf_append(&par->workers[i].pending, par->txn_relations.data,
		           par->txn_relations.len);
	pthread_mutex_unlock(&par->lock);
	buf_reset(&par->txn_relations);
}

/* A transaction's COMMIT: it joins the unit being filled; a barrier goes
 * alone, after what came before it. */
static int txn_commit(struct sink_parallel *par, const pgoutput_message_t *m, pgf_error_t *err)
{
	unit_t *u = par->cur;

	par->in_txn = false;
	par->txn_stats.transactions = 1;
	par->txn_stats.end_lsn = m->u.commit.end_lsn;
	par->txn_stats.last_commit_time = m->u.commit.commit_time;
	if (par->txn_fp.barrier) {
		unit_t *bar = unit_new();
		if (bar == NULL)
			return error_set(err, PGF_E_MEMORY, "out of memory in parallel apply");
		buf_append(&bar->recs, u->recs.data + par->txn_start, u->recs.len - par->txn_start);
		bar->nrecs = u->nrecs - par->txn_nrecs_start;
		bar->has_huge = u->has_huge;
		u->recs.len = par->txn_start;
		u->nrecs = par->txn_nrecs_start;
		bar->stats = par->txn_stats;
		depend_footprint_barrier(&bar->fp);
		if (dispatch_current(par, false, err) != PGF_OK) {
			unit_free(bar);
			return PGF_ERR;
		}
		if (dispatch(par, bar, err) != PGF_OK)
			return PGF_ERR;
		relations_release(par);
		return PGF_OK;
	}
	/* the unit's footprint takes the transaction's */
	{
		if (u->fp.nkeys + par->txn_fp.nkeys > DEPEND_MAX_KEYS) {
			depend_footprint_barrier(&u->fp);
		} else if (!u->fp.barrier) {
			uint64_t *k = realloc(u->fp.keys,
			                      (u->fp.nkeys + par->txn_fp.nkeys + 1) * sizeof(*k));
			if (k == NULL) {
				depend_footprint_barrier(&u->fp);
			} else {
				memcpy(k + u->fp.nkeys, par->txn_fp.keys,
				       par->txn_fp.nkeys * sizeof(*k));
				u->fp.keys = k;
				u->fp.nkeys += par->txn_fp.nkeys;
				u->fp.cap = u->fp.nkeys + 1;
			}
		}
	}
	u->stats.transactions++;
	u->stats.rows += par->txn_stats.rows;
	u->stats.bytes += par->txn_stats.bytes;
	u->stats.end_lsn = par->txn_stats.end_lsn;
	u->stats.last_commit_time = par->txn_stats.last_commit_time;
	par->txn_start = u->recs.len;
	par->txn_nrecs_start = u->nrecs;
	if ((int64_t)u->stats.transactions >= par->orig->apply_group_max_transactions ||
	    u->recs.len >= UNIT_MAX_BYTES)
		return dispatch_current(par, false, err);
	return PGF_OK;
}

/* A record inside a stream block, or a stream's end: main spills it or
 * applies the streamed transaction, alone. */
static int stream_record(struct sink_parallel *par, const queue_record_t *r, const uint8_t *data,
                         const char *huge_path, pgf_error_t *err)
{
	int rc;

	if (r->type == PGOUTPUT_STREAM_COMMIT) {
		depend_footprint_t barrier;
		depend_verdict_t v;
		/* everything before it commits first */
		if (dispatch_current(par, true, err) != PGF_OK ||
		    wait_committed(par, par->dep.next_seq - 1, err) != PGF_OK)
			return PGF_ERR;
		depend_footprint_init(&barrier);
		depend_footprint_barrier(&barrier);
		depend_admit(&par->dep, &barrier, &v);
		depend_assign(&par->dep, &barrier, v.seq, 0);
		pthread_mutex_lock(&par->lock);
		memset(&par->ring[v.seq % UNIT_RING], 0, sizeof(apply_group_t));
		pthread_mutex_unlock(&par->lock);
		par->main_seq = v.seq;
		rc = apply_record(par->main, r->wal_start, r->type, r->xid, &r->facts, data, r->len,
		                  err);
		if (rc == PGF_OK)
			rc = apply_commit_group(par->main, true, err);
		if (rc == PGF_OK && par->main_seq == v.seq) {
			/* applied before: skipped, nothing committed */
			pthread_mutex_lock(&par->lock);
			par->sent_seq = v.seq;
			committed_locked(par, v.seq, true);
			pthread_mutex_unlock(&par->lock);
		}
		par->main_seq = 0;
		if (rc != PGF_OK) {
			pthread_mutex_lock(&par->lock);
			fail_locked(par, v.seq, apply_failed_lsn(par->main), err);
			pthread_mutex_unlock(&par->lock);
			return PGF_ERR;
		}
		depend_committed(&par->dep, v.seq);
		return wait_committed(par, v.seq, err);
	}
	if (huge_path != NULL)
		return apply_huge_record(par->main, r->wal_start, r->type, r->xid, &r->facts,
		                         huge_path, err);
	return apply_record(par->main, r->wal_start, r->type, r->xid, &r->facts, data, r->len, err);
}

int sink_parallel_record(sink_parallel_t *par, const queue_item_t *it, const queue_record_t *r,
                         pgf_error_t *err)
{
	const uint8_t *data = NULL;
	char path[600];
	const char *huge = NULL;
	pgoutput_message_t *m = par->msg;

	if (r->kind == 'h') {
		huge_change_path(par->cfg.work_dir, it->session, r->offset, path, sizeof(path));
		huge = path;
	} else {
		data = queue_record_message(it, r);
	}
	/* stream blocks, and what ends a streamed transaction, go to main */
	if (r->type == PGOUTPUT_STREAM_START)
		par->in_stream = true;
	if (par->in_stream || r->type == PGOUTPUT_STREAM_COMMIT ||
	    r->type == PGOUTPUT_STREAM_ABORT) {
		if (r->type == PGOUTPUT_STREAM_STOP)
			par->in_stream = false;
		return stream_record(par, r, data, huge, err);
	}
	if (huge != NULL) {
		/* a change larger than a batch: its transaction runs alone */
		if (!par->in_txn)
			return error_set(err, PGF_E_PROTOCOL, "a change outside a transaction");
		if (par->skipping) {
			unlink(huge);
			return PGF_OK;
		}
		depend_footprint_barrier(&par->txn_fp);
		unit_append(par->cur, r, huge, (uint32_t)strlen(huge) + 1);
		return PGF_OK;
	}
	/* what is not a change was decoded by the network thread: its facts;
	 * a change's body the coordinator decodes for its keys (the worker
	 * decodes it again to apply it) */
	if (!pgoutput_header_only(r->type))
		pgoutput_facts_message(r->type, r->xid, &r->facts, data, r->len, m);
	else if (pgoutput_decode(&par->decoder, data, r->len, m, err) != PGF_OK) {
		char lsn[LSN_TEXT_LEN];
		error_where(err, "message at %s", lsn_format(r->wal_start, lsn));
		return PGF_ERR;
	}
	switch (m->type) {
	case PGOUTPUT_BEGIN:
		if (par->in_txn)
			return error_set(err, PGF_E_PROTOCOL, "BEGIN inside a transaction");
		par->in_txn = true;
		par->skipping = m->u.begin.final_lsn < par->skip_below;
		buf_reset(&par->txn_relations);
		depend_footprint_reset(&par->txn_fp);
		memset(&par->txn_stats, 0, sizeof(par->txn_stats));
		par->txn_start = par->cur->recs.len;
		par->txn_nrecs_start = par->cur->nrecs;
		break;
	case PGOUTPUT_COMMIT:
		if (!par->in_txn)
			return error_set(err, PGF_E_PROTOCOL, "COMMIT outside a transaction");
		if (par->skipping) {
			par->in_txn = par->skipping = false;
			return PGF_OK;
		}
		unit_append(par->cur, r, data, r->len);
		return txn_commit(par, m, err);
	case PGOUTPUT_RELATION:
	case PGOUTPUT_TYPE:
		if ((m->type == PGOUTPUT_RELATION
		             ? relcache_update(par->relcache, m, err)
		             : relcache_update_type(par->relcache, m, err)) != PGF_OK)
			return PGF_ERR;
		if (!par->in_txn || par->skipping) {
			/* main takes it now, every worker ahead of its next unit */
			relation_for_all(par, r, data, false);
			return apply_record(par->main, r->wal_start, r->type, r->xid, &r->facts,
			                    data, r->len, err);
		}
		/* in place for the transaction, which runs alone on main (a change
		 * before it in the same transaction may follow the older
		 * description); the workers get it once it committed */
		depend_footprint_barrier(&par->txn_fp);
		relation_for_all(par, r, data, true);
		break;
	case PGOUTPUT_INSERT:
	case PGOUTPUT_UPDATE:
	case PGOUTPUT_DELETE:
		if (!par->in_txn)
			return error_set(err, PGF_E_PROTOCOL, "%s outside a transaction",
			                 pgoutput_type_name(m->type));
		if (par->skipping)
			return PGF_OK;
		footprint_change(par, m);
		par->txn_stats.rows++;
		par->txn_stats.bytes += r->len;
		break;
	case PGOUTPUT_MESSAGE:
		if (!par->in_txn)
			return PGF_OK; /* non-transactional: changes nothing */
		if (par->skipping)
			return PGF_OK;
		depend_footprint_barrier(&par->txn_fp); /* sequences, DDL, heartbeats */
		break;
	case PGOUTPUT_ORIGIN:
		break;
	default:
		if (par->in_txn && par->skipping)
			return PGF_OK;
		/* TRUNCATE, and anything else inside a transaction, runs alone */
		depend_footprint_barrier(&par->txn_fp);
		par->txn_stats.bytes += r->len;
		break;
	}
	if (!par->in_txn)
		return apply_record(par->main, r->wal_start, r->type, r->xid, &r->facts, data,
		                    r->len, err);
	if (par->skipping)
		return PGF_OK;
	unit_append(par->cur, r, data, r->len);
	if (buf_failed(&par->cur->recs))
		return error_set(err, PGF_E_MEMORY, "out of memory buffering a transaction");
	return PGF_OK;
}

int sink_parallel_paused(sink_parallel_t *par, uint64_t idle_lsn, pgf_error_t *err)
{
	bool flush;

	if (dispatch_current(par, true, err) != PGF_OK)
		return PGF_ERR;
	flush = !par->last_durable;
	if (wait_committed(par, par->dep.next_seq - 1, err) != PGF_OK)
		return PGF_ERR;
	depend_committed(&par->dep, par->dep.next_seq - 1);
	if (par->in_txn || par->in_stream)
		return PGF_OK;
	/* the last unit committed asynchronously: one durable commit makes it
	 * and every one before it durable */
	if (flush && par->sent_end != 0) {
		uint64_t end;
		pthread_mutex_lock(&par->lock);
		end = par->sent_end;
		pthread_mutex_unlock(&par->lock);
		par->last_durable = true;
		if (apply_record_progress(par->main, end, apply_progress_time(par->main), err) !=
		            PGF_OK ||
		    wait_committed(par, par->dep.next_seq - 1, err) != PGF_OK)
			return PGF_ERR;
	}
	if (apply_input_paused(par->main, idle_lsn, err) != PGF_OK)
		return PGF_ERR;
	report(par);
	return PGF_OK;
}

void sink_parallel_session_start(sink_parallel_t *par, int proto_version)
{
	uint64_t at;
	int i;

	sink_parallel_reset(par);
	at = apply_progress(par->main);
	pthread_mutex_lock(&par->lock);
	par->failed = false;
	par->fail_seq = 0;
	par->sent_end = at;
	pthread_mutex_unlock(&par->lock);
	par->skip_below = at;
	pgoutput_decoder_init(&par->decoder, proto_version);
	/* the workers are idle (reset): they take it with their next unit */
	pthread_mutex_lock(&par->lock);
	for (i = 1; i <= par->nworkers; i++)
		apply_set_proto_version(par->workers[i].apply, proto_version);
	pthread_mutex_unlock(&par->lock);
}

void sink_parallel_reset(sink_parallel_t *par)
{
	int i;
	bool busy;

	pthread_mutex_lock(&par->lock);
	if (!par->failed) {
		pgf_error_t err;
		error_set(&err, PGF_E_APPLY, "parallel apply was reset");
		fail_locked(par, UINT64_MAX, 0, &err);
	}
	/* what waits on a lock is cancelled; every worker rolls back */
	for (i = 1; i <= par->nworkers; i++)
		par->workers[i].reset = true;
	pthread_cond_broadcast(&par->cond);
	for (;;) {
		busy = false;
		for (i = 1; i <= par->nworkers; i++)
			if (par->workers[i].busy || par->workers[i].reset) {
				busy = true;
				if (par->workers[i].busy)
					apply_cancel(par->workers[i].apply);
			}
		if (!busy)
			break;
		pthread_cond_wait(&par->cond, &par->lock);
	}
	/* a COMMIT whose result was lost may have committed: main reads where
	 * apply stands again (it reconnects) before the next session */
	if (par->fail_seq != UINT64_MAX && apply_connected(par->main)) {
		pthread_mutex_unlock(&par->lock);
		apply_disconnect(par->main);
		pthread_mutex_lock(&par->lock);
	}
	for (i = 1; i <= par->nworkers; i++) {
		worker_t *w = &par->workers[i];
		while (w->head) {
			unit_t *u = w->head;
			w->head = u->next;
			unit_free(u);
		}
		w->tail = NULL;
		w->queued = 0;
		w->nsent = 0;
		w->unread = false;
		buf_reset(&w->pending);
	}
	par->main_nsent = 0;
	pthread_mutex_unlock(&par->lock);
	/* workers' engines: what is open is rolled back (by their thread, on
	 * the error; here only the relation caches, for the next session) */
	depend_reset(&par->dep);
	pthread_mutex_lock(&par->lock);
	par->sent_seq = par->committed_seq = par->durable_seq = par->dep.next_seq - 1;
	pthread_mutex_unlock(&par->lock);
	par->reported_seq = par->dep.next_seq - 1;
	unit_free(par->cur);
	par->cur = unit_new();
	par->in_txn = par->skipping = par->in_stream = false;
	buf_reset(&par->txn_relations);
	par->txn_start = 0;
	par->txn_nrecs_start = 0;
	par->main_seq = 0;
	par->last_durable = true;
	relcache_clear(par->relcache);
	par->ntables = 0;
}

bool sink_parallel_in_transaction(const sink_parallel_t *par)
{
	return par->in_txn;
}

uint64_t sink_parallel_failed_lsn(const sink_parallel_t *par)
{
	return par->failed && par->fail_seq != UINT64_MAX ? par->fail_lsn : 0;
}

apply_t *sink_parallel_main(sink_parallel_t *par)
{
	return par->main;
}

sink_parallel_t *sink_parallel_create(const config_t *cfg,
                                      void (*committed)(void *arg, const apply_group_t *g),
                                      void *arg, pgf_error_t *err)
{
	sink_parallel_t *par = calloc(1, sizeof(*par));
	apply_hooks_t hooks = {0};
	int i;

	if (par == NULL) {
		error_set(err, PGF_E_MEMORY, "out of memory");
		return NULL;
	}
	par->cfg = *cfg;
	par->orig = cfg;
	/* a unit is one DR transaction: the coordinator cuts it, not the engine */
	par->cfg.apply_group_max_transactions = INT64_MAX / 2;
	par->cfg.apply_group_max_delay = INT64_MAX / 2;
	par->committed = committed;
	par->arg = arg;
	par->nworkers = (int)(cfg->apply_workers > MAX_WORKERS ? MAX_WORKERS : cfg->apply_workers);
	pthread_mutex_init(&par->lock, NULL);
	pthread_cond_init(&par->cond, NULL);
	depend_init(&par->dep);
	depend_footprint_init(&par->txn_fp);
	buf_init(&par->txn_relations);
	par->msg = malloc(sizeof(*par->msg));
	par->relcache = relcache_create();
	par->cur = unit_new();
	par->last_durable = true;
	hooks.arg = par;
	hooks.turn = main_turn;
	hooks.group_committed = main_group_committed;
	par->main = apply_create(&par->cfg, &hooks);
	if (par->msg == NULL || par->relcache == NULL || par->cur == NULL || par->main == NULL)
		goto fail;
	pgoutput_decoder_init(&par->decoder, 4);
	for (i = 1; i <= par->nworkers; i++) {
		worker_t *w = &par->workers[i];
		apply_hooks_t wh = {0};
		w->par = par;
		w->index = i;
		buf_init(&w->pending);
		wh.arg = w;
		wh.turn = worker_turn;
		wh.group_committed = worker_group_committed;
		w->apply = apply_create(&par->cfg, &wh);
		if (w->apply == NULL)
			goto fail;
		apply_set_worker(w->apply, i);
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
			goto fail;
		w->started = true;
	}
	return par;
fail:
	sink_parallel_free(par);
	error_set(err, PGF_E_MEMORY, "could not start the parallel apply workers");
	return NULL;
}

void sink_parallel_free(sink_parallel_t *par)
{
	int i;

	if (par == NULL)
		return;
	pthread_mutex_lock(&par->lock);
	par->stop = true;
	pthread_cond_broadcast(&par->cond);
	/* a statement waiting on a lock would hold the stop: it rolls back */
	for (i = 1; i <= par->nworkers; i++)
		if (par->workers[i].busy)
			apply_cancel(par->workers[i].apply);
	pthread_mutex_unlock(&par->lock);
	for (i = 1; i <= par->nworkers; i++) {
		worker_t *w = &par->workers[i];
		if (w->started)
			pthread_join(w->thread, NULL);
		while (w->head) {
			unit_t *u = w->head;
			w->head = u->next;
			unit_free(u);
		}
		apply_free(w->apply);
		buf_free(&w->pending);
	}
	apply_free(par->main);
	unit_free(par->cur);
	depend_free(&par->dep);
	depend_footprint_free(&par->txn_fp);
	buf_free(&par->txn_relations);
	relcache_free(par->relcache);
	free(par->msg);
	free(par->tables);
	PQfinish(par->catalog);
	pthread_mutex_destroy(&par->lock);
	pthread_cond_destroy(&par->cond);
	free(par);
}
