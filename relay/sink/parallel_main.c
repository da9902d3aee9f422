/*
 * parallel_main.c — what parallel apply runs alone on the coordinator's
 * own connection ("main"): barrier units, streamed transactions, and a
 * transaction that outgrew a unit, applied as it arrives. Each runs once
 * everything before it committed, takes the next number and commits in it.
 * See sink_parallel.c for the coordinator.
 */
#include "parallel_internal.h"

/* The next number, for what main runs now. */
static uint64_t main_number(struct sink_parallel *par)
{
	depend_footprint_t barrier;
	depend_verdict_t v;

	depend_footprint_init(&barrier);
	depend_footprint_barrier(&barrier);
	depend_admit(&par->dep, &barrier, &v);
	depend_assign(&par->dep, &barrier, v.seq, 0);
	pthread_mutex_lock(&par->lock);
	memset(&par->ring[v.seq % UNIT_RING], 0, sizeof(apply_group_t));
	pthread_mutex_unlock(&par->lock);
	par->main_seq = v.seq;
	return v.seq;
}

/* Main's durable commit of number seq, once applying it went well (rc);
 * then the turn passes. */
static int main_commit(struct sink_parallel *par, uint64_t seq, int rc, pgf_error_t *err)
{
	if (rc == PGF_OK)
		rc = apply_commit_group(par->main, true, err);
	if (rc == PGF_OK && par->main_seq == seq) {
		/* applied before: skipped, nothing committed; the number passes */
		pthread_mutex_lock(&par->lock);
		par->sent_seq = seq;
		par_committed_locked(par, seq, true);
		pthread_mutex_unlock(&par->lock);
	}
	par->main_seq = 0;
	if (rc != PGF_OK) {
		pthread_mutex_lock(&par->lock);
		par_fail_locked(par, seq, apply_failed_lsn(par->main), err);
		pthread_mutex_unlock(&par->lock);
		return PGF_ERR;
	}
	depend_committed(&par->dep, seq);
	return par_wait_committed(par, seq, err);
}

/* A barrier unit, numbered already: everything before it committed. */
int par_run_on_main(struct sink_parallel *par, unit_t *u, pgf_error_t *err)
{
	par->main_seq = u->seq;
	return main_commit(par, u->seq, par_unit_apply(par->main, u, err), err);
}

/* A record inside a stream block, or a stream's end: main spills it or
 * applies the streamed transaction, alone. */
int par_stream_record(struct sink_parallel *par, const queue_record_t *r, const uint8_t *data,
                      const char *huge_path, pgf_error_t *err)
{
	uint64_t seq;

	if (r->type == PGOUTPUT_STREAM_COMMIT) {
		/* everything before it commits first */
		if (par_dispatch_current(par, true, err) != PGF_OK ||
		    par_wait_committed(par, par->dep.next_seq - 1, err) != PGF_OK)
			return PGF_ERR;
		seq = main_number(par);
		return main_commit(par, seq,
		                   apply_record(par->main, r->wal_start, r->type, r->xid, &r->facts,
		                                data, r->len, err),
		                   err);
	}
	if (huge_path != NULL)
		return apply_huge_record(par->main, r->wal_start, r->type, r->xid, &r->facts,
		                         huge_path, err);
	return apply_record(par->main, r->wal_start, r->type, r->xid, &r->facts, data, r->len, err);
}

/* The transaction being buffered is about to outgrow a unit: it runs alone
 * on main as it arrives, so the coordinator never holds more than a unit of
 * it, whatever its size. Everything before it commits first, then main
 * applies what was buffered of it and takes the rest record by record
 * (par_direct_record). */
int par_go_direct(struct sink_parallel *par, pgf_error_t *err)
{
	unit_t *t = par_unit_new();
	uint64_t seq;
	int rc;

	if (t == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory in parallel apply");
	buf_append(&t->recs, par->cur->recs.data + par->txn_start,
	           par->cur->recs.len - par->txn_start);
	t->nrecs = par->cur->nrecs - par->txn_nrecs_start;
	t->has_huge = par->cur->has_huge;
	par->cur->recs.len = par->txn_start;
	par->cur->nrecs = par->txn_nrecs_start;
	if (buf_failed(&t->recs)) {
		par_unit_free(t);
		return error_set(err, PGF_E_MEMORY, "out of memory in parallel apply");
	}
	if (par_dispatch_current(par, true, err) != PGF_OK ||
	    par_wait_committed(par, par->dep.next_seq - 1, err) != PGF_OK) {
		par_unit_free(t);
		return PGF_ERR;
	}
	par->txn_start = par->cur->recs.len;
	par->txn_nrecs_start = par->cur->nrecs;
	seq = main_number(par);
	log_debug("parallel apply: transaction group %llu outgrew %u MB: alone on the "
	          "coordinator's connection as it arrives",
	          (unsigned long long)seq, UNIT_MAX_BYTES >> 20);
	par->direct = true;
	rc = par_unit_apply(par->main, t, err);
	par_unit_free(t);
	return rc;
}

/* A record of the transaction main applies as it arrives; its COMMIT
 * commits it in its turn. */
int par_direct_record(struct sink_parallel *par, const queue_record_t *r, const uint8_t *data,
                      const char *huge_path, pgf_error_t *err)
{
	int rc;

	if (huge_path != NULL)
		return apply_huge_record(par->main, r->wal_start, r->type, r->xid, &r->facts,
		                         huge_path, err);
	rc = apply_record(par->main, r->wal_start, r->type, r->xid, &r->facts, data, r->len, err);
	if (r->type != PGOUTPUT_COMMIT)
		return rc;
	par->in_txn = par->direct = false;
	par->last_durable = true;
	if (main_commit(par, par->main_seq, rc, err) != PGF_OK)
		return PGF_ERR;
	par_relations_release(par);
	return PGF_OK;
}
