/*
 * parallel_units.c — parallel apply's units (whole source transactions
 * buffered for one DR transaction), the shared state that passes the turn
 * to commit in source order and reports what is durable, and the worker
 * threads. See sink_parallel.c for the coordinator.
 */
#include "parallel_internal.h"

/* ---- units ----------------------------------------------------------------- */

unit_t *par_unit_new(void)
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
void par_unit_free(unit_t *u)
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

void par_unit_append(unit_t *u, const queue_record_t *r, const void *data, uint32_t len)
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
int par_unit_apply(apply_t *a, const unit_t *u, pgf_error_t *err)
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
void par_fail_locked(struct sink_parallel *par, uint64_t seq, uint64_t lsn, const pgf_error_t *err)
{
	if (!par->failed || seq < par->fail_seq) {
		par->fail_err = *err;
		par->fail_seq = seq;
		par->fail_lsn = lsn;
	}
	par->failed = true;
	pthread_cond_broadcast(&par->cond);
}

int par_failed_error(struct sink_parallel *par, pgf_error_t *err)
{
	*err = par->fail_err;
	return PGF_ERR;
}

void par_committed_locked(struct sink_parallel *par, uint64_t seq, bool durable)
{
	/* its progress check proved every unit before it committed */
	if (seq > par->committed_seq)
		par->committed_seq = seq;
	if (durable && seq > par->durable_seq)
		par->durable_seq = seq;
	pthread_cond_broadcast(&par->cond);
}

int par_worker_turn(void *arg, uint64_t end_lsn, uint64_t *expected, pgf_error_t *err)
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

void par_worker_group_committed(void *arg, const apply_group_t *g, bool durable)
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
		par_committed_locked(par, seq, durable);
	}
	pthread_mutex_unlock(&par->lock);
}

/* main's turn: the coordinator runs main only once every unit before is
 * committed. A unit of main's own has its number; a DR transaction that
 * only records progress takes the next. */
int par_main_turn(void *arg, uint64_t end_lsn, uint64_t *expected, pgf_error_t *err)
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

void par_main_group_committed(void *arg, const apply_group_t *g, bool durable)
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
		par_committed_locked(par, seq, durable);
	}
	pthread_mutex_unlock(&par->lock);
}

/* Reports what is durable now, merged, to the sink (coordinator only). */
void par_report(struct sink_parallel *par)
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
int par_wait_committed(struct sink_parallel *par, uint64_t seq, pgf_error_t *err)
{
	int rc = PGF_OK;

	pthread_mutex_lock(&par->lock);
	while (!par->failed && par->committed_seq < seq)
		pthread_cond_wait(&par->cond, &par->lock);
	if (par->failed)
		rc = par_failed_error(par, err);
	pthread_mutex_unlock(&par->lock);
	par_report(par);
	return rc;
}

/* ---- the workers --------------------------------------------------------------- */

static int worker_apply_unit(worker_t *w, unit_t *u, pgf_error_t *err)
{
	if (!apply_connected(w->apply) && apply_connect(w->apply, err) != PGF_OK)
		return PGF_ERR;
	if (par_unit_apply(w->apply, u, err) != PGF_OK)
		return PGF_ERR;
	/* the unit is one DR transaction: its turn, progress and COMMIT, whose
	 * result gives the turn to the next */
	if (apply_commit_group(w->apply, u->durable, err) != PGF_OK)
		return PGF_ERR;
	return apply_wait_results(w->apply, err);
}

void *par_worker_main(void *arg)
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
					par_fail_locked(par, w->nsent ? w->sent[w->sent_head] : 0,
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
			par_fail_locked(par, u->seq, lsn, &err);
			pthread_mutex_unlock(&par->lock);
			/* rolls back; the COMMITs whose result comes back stay */
			apply_reset(w->apply);
			if (gone)
				apply_disconnect(w->apply);
		}
		par_unit_free(u);
		pthread_mutex_lock(&par->lock);
		w->busy = false;
		if (rc != PGF_OK)
			w->nsent = 0;
		pthread_cond_broadcast(&par->cond);
	}
	pthread_mutex_unlock(&par->lock);
	return NULL;
}
