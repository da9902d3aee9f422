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
#include "parallel_internal.h"

static double ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1000.0 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
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
		par_unit_free(u);
		return PGF_OK;
	}
	/* numbers not yet reported stay in the ring: a durable commit soon */
	if (par->dep.next_seq - par->reported_seq >= UNIT_RING / 2)
		u->durable = true;
	if (par->dep.next_seq - par->reported_seq >= UNIT_RING - 1 &&
	    par_wait_committed(par, par->dep.next_seq - 1, err) != PGF_OK) {
		par_unit_free(u);
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
		if (par_wait_committed(par, v.wait_for, err) != PGF_OK) {
			par_unit_free(u);
			return PGF_ERR;
		}
		depend_assign(&par->dep, &u->fp, u->seq, 0);
		log_debug("parallel apply: transaction group %llu (%llu transactions) alone on the "
		          "coordinator's connection",
		          (unsigned long long)u->seq, (unsigned long long)u->stats.transactions);
		rc = par_run_on_main(par, u, err);
		par_unit_free(u);
		return rc;
	}
	if (v.wait_for && par_wait_committed(par, v.wait_for, err) != PGF_OK) {
		par_unit_free(u);
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
		int rc = par_failed_error(par, err);
		pthread_mutex_unlock(&par->lock);
		par_unit_free(u);
		return rc;
	}
	w = &par->workers[target];
	if (!depend_assign(&par->dep, &u->fp, u->seq, target) || !prepend_pending(w, u)) {
		pthread_mutex_unlock(&par->lock);
		par_unit_free(u);
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
	par_report(par);
	return PGF_OK;
}

/* The whole transactions of the unit being filled go (the transaction
 * being buffered, if any, stays). */
int par_dispatch_current(struct sink_parallel *par, bool durable, pgf_error_t *err)
{
	unit_t *u = par->cur, *rest;

	if (u == NULL || u->stats.transactions == 0)
		return PGF_OK;
	rest = par_unit_new();
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
void par_relations_release(struct sink_parallel *par)
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
		unit_t *bar = par_unit_new();
		if (bar == NULL)
			return error_set(err, PGF_E_MEMORY, "out of memory in parallel apply");
		buf_append(&bar->recs, u->recs.data + par->txn_start, u->recs.len - par->txn_start);
		bar->nrecs = u->nrecs - par->txn_nrecs_start;
		bar->has_huge = u->has_huge;
		u->recs.len = par->txn_start;
		u->nrecs = par->txn_nrecs_start;
		bar->stats = par->txn_stats;
		depend_footprint_barrier(&bar->fp);
		if (par_dispatch_current(par, false, err) != PGF_OK) {
			par_unit_free(bar);
			return PGF_ERR;
		}
		if (dispatch(par, bar, err) != PGF_OK)
			return PGF_ERR;
		par_relations_release(par);
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
		return par_dispatch_current(par, false, err);
	return PGF_OK;
}

/* A change larger than a batch: its transaction runs alone. */
static int huge_record(sink_parallel_t *par, const queue_record_t *r, const char *huge,
                       pgf_error_t *err)
{
	if (!par->in_txn)
		return error_set(err, PGF_E_PROTOCOL, "a change outside a transaction");
	if (par->skipping) {
		unlink(huge);
		return PGF_OK;
	}
	depend_footprint_barrier(&par->txn_fp);
	if (par->direct)
		return par_direct_record(par, r, NULL, huge, err);
	par_unit_append(par->cur, r, huge, (uint32_t)strlen(huge) + 1);
	return PGF_OK;
}

/* A source transaction starts: buffered from here into the current unit. */
static int txn_begin(sink_parallel_t *par, const pgoutput_message_t *m, pgf_error_t *err)
{
	if (par->in_txn)
		return error_set(err, PGF_E_PROTOCOL, "BEGIN inside a transaction");
	par->in_txn = true;
	par->skipping = m->u.begin.final_lsn < par->skip_below;
	buf_reset(&par->txn_relations);
	depend_footprint_reset(&par->txn_fp);
	memset(&par->txn_stats, 0, sizeof(par->txn_stats));
	par->txn_start = par->cur->recs.len;
	par->txn_nrecs_start = par->cur->nrecs;
	return PGF_OK;
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
		return par_stream_record(par, r, data, huge, err);
	}
	if (huge != NULL)
		return huge_record(par, r, huge, err);
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
		if (txn_begin(par, m, err) != PGF_OK)
			return PGF_ERR;
		break;
	case PGOUTPUT_COMMIT:
		if (!par->in_txn)
			return error_set(err, PGF_E_PROTOCOL, "COMMIT outside a transaction");
		if (par->skipping) {
			par->in_txn = par->skipping = false;
			return PGF_OK;
		}
		if (par->direct)
			return par_direct_record(par, r, data, NULL, err);
		par_unit_append(par->cur, r, data, r->len);
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
		par_footprint_change(par, m);
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
	if (!par->direct && par->cur->recs.len - par->txn_start + r->len > UNIT_MAX_BYTES &&
	    par_go_direct(par, err) != PGF_OK)
		return PGF_ERR;
	if (par->direct)
		return par_direct_record(par, r, data, NULL, err);
	par_unit_append(par->cur, r, data, r->len);
	if (buf_failed(&par->cur->recs))
		return error_set(err, PGF_E_MEMORY, "out of memory buffering a transaction");
	return PGF_OK;
}

int sink_parallel_paused(sink_parallel_t *par, uint64_t idle_lsn, pgf_error_t *err)
{
	bool flush;

	if (par->direct)
		return PGF_OK; /* everything before it committed; main has it open */
	if (par_dispatch_current(par, true, err) != PGF_OK)
		return PGF_ERR;
	flush = !par->last_durable;
	if (par_wait_committed(par, par->dep.next_seq - 1, err) != PGF_OK)
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
		    par_wait_committed(par, par->dep.next_seq - 1, err) != PGF_OK)
			return PGF_ERR;
	}
	if (apply_input_paused(par->main, idle_lsn, err) != PGF_OK)
		return PGF_ERR;
	par_report(par);
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
		par_fail_locked(par, UINT64_MAX, 0, &err);
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
			par_unit_free(u);
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
	par_unit_free(par->cur);
	par->cur = par_unit_new();
	par->in_txn = par->skipping = par->in_stream = par->direct = false;
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
	par->cur = par_unit_new();
	par->last_durable = true;
	hooks.arg = par;
	hooks.turn = par_main_turn;
	hooks.group_committed = par_main_group_committed;
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
		wh.turn = par_worker_turn;
		wh.group_committed = par_worker_group_committed;
		w->apply = apply_create(&par->cfg, &wh);
		if (w->apply == NULL)
			goto fail;
		apply_set_worker(w->apply, i);
		if (pthread_create(&w->thread, NULL, par_worker_main, w) != 0)
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
			par_unit_free(u);
		}
		apply_free(w->apply);
		buf_free(&w->pending);
	}
	apply_free(par->main);
	par_unit_free(par->cur);
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
