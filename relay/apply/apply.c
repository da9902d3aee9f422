/*
 * apply.c — the apply engine's life: create, connect to the DR database,
 * disconnect, reset after an error, free (see apply.h). The work is done
 * by the files listed in apply_internal.h.
 */
#include "apply_internal.h"

#include "pgferry/dr_state.h"
#include "pgferry/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double apply_elapsed_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

apply_t *apply_create(const config_t *cfg, const apply_hooks_t *hooks)
{
	apply_t *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	a->cfg = cfg;
	pthread_mutex_init(&a->cancel_lock, NULL);
	if (hooks)
		a->hooks = *hooks;
	buf_init(&a->sql);
	buf_init(&a->key);
	coalesce_init(&a->net);
	spill_init(&a->spill, cfg);
	dr_group_init(&a->group.sm);
	a->msg = malloc(sizeof(*a->msg));
	a->net_msg = malloc(sizeof(*a->net_msg));
	a->relcache = relcache_create();
	pipeline_init(&a->pl, &a->txn, a->relcache, group_commit_result, a);
	if (a->msg == NULL || a->net_msg == NULL || a->relcache == NULL) {
		apply_free(a);
		return NULL;
	}
	a->proto_version = 4;
	pgoutput_decoder_init(&a->decoder, a->proto_version);
	return a;
}

void apply_free(apply_t *a)
{
	if (a == NULL)
		return;
	apply_disconnect(a);
	pthread_mutex_destroy(&a->cancel_lock);
	spill_drop_all(&a->spill);
	pipeline_free(&a->pl);
	coalesce_free(&a->net);
	schema_clear(&a->schema);
	relcache_free(a->relcache);
	free(a->msg);
	free(a->net_msg);
	buf_free(&a->sql);
	buf_free(&a->key);
	free(a);
}

void apply_disconnect(apply_t *a)
{
	pgf_error_t ignored;

	pthread_mutex_lock(&a->cancel_lock);
	PQfreeCancel(a->cancel);
	a->cancel = NULL;
	pthread_mutex_unlock(&a->cancel_lock);
	if (a->pl.conn) {
		PQfinish(a->pl.conn);
		a->pl.conn = NULL;
	}
	a->origin[0] = '\0';      /* the session's hold on the origin ends with it */
	stmt_cache_clear(&a->pl); /* prepared statements die with the session */
	pipeline_forget(&a->pl);
	/* groups committed but not known durable: the source resends them,
	 * the origin skips what survived */
	dr_group_transition(&a->group.sm, DR_GROUP_FORGET, &ignored); /* always legal */
	a->group.nsent = 0;
	memset(&a->group.pending, 0, sizeof(a->group.pending));
	coalesce_clear(&a->net);
	/* the DR schema may change while we are away */
	schema_clear(&a->schema);
}

bool apply_connected(const apply_t *a)
{
	return a->pl.conn && PQstatus(a->pl.conn) == CONNECTION_OK;
}

uint64_t apply_progress(const apply_t *a)
{
	return a->group.progress_lsn;
}

int64_t apply_progress_time(const apply_t *a)
{
	return a->group.progress_time;
}

int apply_connect(apply_t *a, pgf_error_t *err)
{
	const char *keys[] = {"dbname",  "fallback_application_name", "connect_timeout",
	                      "options", "client_encoding",           NULL};
	/* the walsender prints values with the same settings (replication.c,
	 * pinned on its connection whatever the servers' defaults), and this
	 * session reads them back with these: every value round-trips exactly.
	 * Values travel in UTF8; each server converts from and to its own
	 * database encoding (as native logical replication does). JIT is off:
	 * it compiles each execution anew, no statement of this session gains
	 * from it, and the first (the identity, read from tables without
	 * statistics) spent 0.25 s compiling at every start of the sink. */
	const char *values[] = {
	        a->cfg->dr_conninfo,
	        "pgferry sink",
	        "10",
	        ("-c datestyle=ISO -c intervalstyle=postgres -c extra_float_digits=3 "
	         "-c timezone=UTC -c bytea_output=hex -c lc_monetary=C "
	         "-c standard_conforming_strings=on -c session_replication_role=replica "
	         "-c plan_cache_mode=force_generic_plan -c synchronous_commit=off -c jit=off"),
	        "UTF8",
	        NULL};

	apply_disconnect(a);
	a->pl.conn = PQconnectdbParams(keys, values, 1);
	if (a->pl.conn == NULL || PQstatus(a->pl.conn) != CONNECTION_OK) {
		apply_conn_error(err, a->pl.conn, "connecting");
		error_hint(err, "Check dr_conninfo and that the DR server is up; pgferry retries "
		                "by itself.");
		apply_disconnect(a);
		return PGF_ERR;
	}
	if (dr_state_install(a->pl.conn, err) != PGF_OK) {
		apply_disconnect(a);
		return PGF_ERR;
	}
	a->group.progress_lsn = 0;
	a->group.progress_time = 0;
	if (identity_origin_attach(a, err) != PGF_OK) {
		apply_disconnect(a);
		return PGF_ERR;
	}
	if (PQenterPipelineMode(a->pl.conn) != 1) {
		apply_conn_error(err, a->pl.conn, "entering pipeline mode");
		apply_disconnect(a);
		return PGF_ERR;
	}
	pthread_mutex_lock(&a->cancel_lock);
	a->cancel = PQgetCancel(a->pl.conn);
	pthread_mutex_unlock(&a->cancel_lock);
	return PGF_OK;
}

void apply_set_worker(apply_t *a, int worker)
{
	a->worker = worker;
}

void apply_set_progress(apply_t *a, uint64_t lsn, int64_t commit_time)
{
	if (lsn <= a->group.progress_lsn)
		return;
	a->group.progress_lsn = lsn;
	a->group.progress_time = commit_time;
}

int apply_wait_results(apply_t *a, pgf_error_t *err)
{
	if (!apply_connected(a) || a->pl.syncs == 0)
		return PGF_OK;
	if (pipeline_drain(&a->pl, err) != PGF_OK) {
		group_rollback_all(a);
		return PGF_ERR;
	}
	return PGF_OK;
}

bool apply_cancel(apply_t *a)
{
	char why[256];
	bool sent = false;

	pthread_mutex_lock(&a->cancel_lock);
	if (a->cancel != NULL)
		sent = PQcancel(a->cancel, why, sizeof(why)) == 1;
	pthread_mutex_unlock(&a->cancel_lock);
	return sent;
}

void apply_reset(apply_t *a)
{
	pgf_error_t err;

	if (dr_group_open(&a->group.sm) || a->pl.count > 0)
		group_rollback_all(a); /* groups whose COMMIT came back stay */
	dr_group_transition(&a->group.sm, DR_GROUP_ROLLBACK, &err); /* always legal */
	pipeline_forget(&a->pl);
	schema_clear(&a->schema);
	coalesce_clear(&a->net);
	/* groups committed before the one rolled back stay committed: make
	 * them durable and say so, or the figures would call them unapplied
	 * until the next stream (and promote would wait for them) */
	/* (with parallel apply the coordinator does this, in commit order) */
	if (a->group.sm.state == DR_GROUP_COMMITTED && apply_connected(a) && !apply_parallel(a)) {
		error_clear(&err);
		if (apply_commit_group(a, true, &err) != PGF_OK) {
			log_warning("could not make the last applied groups durable: %s",
			            err.message);
			group_rollback_all(a);
			dr_group_transition(&a->group.sm, DR_GROUP_FORGET, &err);
			memset(&a->group.pending, 0, sizeof(a->group.pending));
		}
	}
	a->pl.failed_lsn = 0; /* reported by now */
	spill_drop_all(&a->spill);
	relcache_clear(a->relcache);
	pgoutput_decoder_init(&a->decoder, a->proto_version);
}
