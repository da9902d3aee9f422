/*
 * sink_apply.c — the sink's apply thread: takes verified records from the
 * queue in stream order and applies them through apply.c. It owns the DR
 * connection, so every DR-side decision runs here too: the identity check
 * on a source's hello, reconnecting to a DR database that went away, and
 * backing off after an apply error (never skipping: the same transaction
 * is tried again after the source resends it).
 *
 * It talks back to the network thread only through sink_apply_events_t
 * (called from this thread; the network side wakes its loop with ev_async).
 */
#include "pgferry/sink_apply.h"

#include "sink_parallel.h"

#include "pgferry/decoder.h"
#include "pgferry/huge_change.h"
#include "pgferry/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <malloc.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* a stop waits this long for the open DR transaction, then cancels it */
#define STOP_GRACE_SECONDS  5
#define STOP_CANCEL_SECONDS 10

struct sink_apply {
	const config_t *cfg;
	queue_t *queue;
	apply_t *apply;       /* with parallel apply: the coordinator's (par owns it) */
	sink_parallel_t *par; /* apply_workers > 1 (sink_parallel.c); NULL otherwise */
	sink_apply_events_t events;
	pthread_t thread;
	volatile int stop;
	bool started;

	uint64_t session;  /* the source connection being applied */
	bool session_ok;   /* identity accepted and no apply error since */
	int backoff_ms;    /* after an apply error or a lost DR connection */
	uint64_t idle_lsn; /* newest keepalive position seen between transactions */
	bool dr_reachable;
	bool fenced;                 /* pgferry promote fenced the DR database */
	struct timespec fence_check; /* when the fence was last looked at */
};

static void sleep_ms(sink_apply_t *sa, int ms)
{
	struct timespec ts;

	/* in slices, so that a stop request is seen quickly */
	while (ms > 0 && !sa->stop) {
		int slice = ms > 50 ? 50 : ms;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)slice * 1000000L;
		nanosleep(&ts, NULL);
		ms -= slice;
	}
}

static void next_backoff(sink_apply_t *sa)
{
	sa->backoff_ms = sa->backoff_ms ? sa->backoff_ms * 2 : 100;
	if (sa->backoff_ms > sa->cfg->reconnect_max_delay)
		sa->backoff_ms = (int)sa->cfg->reconnect_max_delay;
}

static void on_committed(void *arg, const apply_group_t *g)
{
	sink_apply_t *sa = arg;

	sa->backoff_ms = 0;
	if (sa->events.applied)
		sa->events.applied(sa->events.arg, g);
}

/* Whole transactions received: the queue knows, from what was pushed. */
static uint64_t received_commit(void *arg)
{
	sink_apply_t *sa = arg;

	return queue_received_commit(sa->queue);
}

/* The current session cannot go on: tell the network side to drop it (the
 * source reconnects and resends from the committed progress). */
static void drop_session(sink_apply_t *sa, const pgf_error_t *err)
{
	if (sa->par)
		sink_parallel_reset(sa->par);
	apply_reset(sa->apply);
	if (sa->session_ok && sa->events.session_failed)
		sa->events.session_failed(sa->events.arg, sa->session, err);
	sa->session_ok = false;
}

static uint64_t failed_lsn(const sink_apply_t *sa)
{
	if (sa->par && sink_parallel_failed_lsn(sa->par) != 0)
		return sink_parallel_failed_lsn(sa->par);
	return apply_failed_lsn(sa->apply);
}

static bool in_transaction(const sink_apply_t *sa)
{
	return sa->par ? sink_parallel_in_transaction(sa->par) : apply_in_transaction(sa->apply);
}

static void became_fenced(sink_apply_t *sa, const char *why)
{
	if (!sa->fenced) {
		log_error("%s; the sink applies nothing more and refuses every stream", why);
		if (sa->events.fenced)
			sa->events.fenced(sa->events.arg, why);
	}
	sa->fenced = true;
}

/* Looks at the fence between groups, at most once a second, so that status
 * says "fenced" soon after pgferry promote even when no stream comes. */
static void check_fence(sink_apply_t *sa, bool now)
{
	struct timespec t;
	pgf_error_t err;
	char why[600];
	bool fenced;

	clock_gettime(CLOCK_MONOTONIC, &t);
	if (!now && t.tv_sec == sa->fence_check.tv_sec)
		return;
	sa->fence_check = t;
	error_clear(&err);
	if (apply_check_fence(sa->apply, &fenced, why, sizeof(why), &err) != PGF_OK) {
		if (!apply_connected(sa->apply))
			apply_disconnect(sa->apply);
		return;
	}
	if (fenced) {
		became_fenced(sa, why);
		if (sa->session_ok) {
			error_set(&err, PGF_E_FENCED, "%s", why);
			drop_session(sa, &err);
		}
	}
}

static void set_refused(sink_apply_t *sa, const char *why)
{
	if (sa->events.stream_refused)
		sa->events.stream_refused(sa->events.arg, why);
}

/* An error met once the sink stops (the stop's cancel of a statement that
 * waited too long, typically) is no apply error: the DR transaction rolls
 * back with the session, and the source sends it again. */
static bool stopping(sink_apply_t *sa, const pgf_error_t *err)
{
	if (!sa->stop)
		return false;
	log_info("stopping: the open DR transaction ended (%s) and is rolled back; the source "
	         "sends it again",
	         err->message);
	apply_disconnect(sa->apply);
	sa->session_ok = false;
	return true;
}

static bool ensure_connected(sink_apply_t *sa)
{
	pgf_error_t err;
	char why[1024];
	bool complete;

	if (apply_connected(sa->apply))
		return true;
	error_clear(&err);
	if (apply_connect(sa->apply, &err) != PGF_OK) {
		if (sa->dr_reachable || sa->backoff_ms == 0)
			log_error_value(LOG_ERROR, &err);
		/* the origin is held or moved by another: a refusal, not an outage */
		if (err.code == PGF_E_IDENTITY) {
			snprintf(why, sizeof(why), "%.600s%s%.400s", err.message,
			         err.hint[0] ? ". " : "", err.hint);
			set_refused(sa, why);
		}
		if (sa->dr_reachable || sa->backoff_ms == 0) {
			sa->dr_reachable = false;
			if (sa->events.dr_state)
				sa->events.dr_state(sa->events.arg, false, 0, 0, &err);
		}
		next_backoff(sa);
		sleep_ms(sa, sa->backoff_ms);
		return false;
	}
	if (!sa->dr_reachable) {
		char lsn[LSN_TEXT_LEN];
		log_info("connected to the DR database; applied up to %s",
		         lsn_format(apply_progress(sa->apply), lsn));
	}
	sa->dr_reachable = true;
	sa->backoff_ms = 0;
	if (sa->events.dr_state)
		sa->events.dr_state(sa->events.arg, true, apply_progress(sa->apply),
		                    apply_progress_time(sa->apply), NULL);
	/* say at once, not only when a source comes, that this copy is unseeded */
	if (apply_copy_complete(sa->apply, &complete, why, sizeof(why), &err) == PGF_OK)
		set_refused(sa, complete ? NULL : why);
	check_fence(sa, true);
	return true;
}

static void start_session(sink_apply_t *sa, const queue_item_t *it)
{
	identity_verdict_t verdict;
	char why[1024];
	pgf_error_t err;

	if (sa->par) {
		/* a failed session may have left main to read its progress again */
		sink_parallel_reset(sa->par);
		if (!apply_connected(sa->apply) && !ensure_connected(sa))
			return;
	}
	apply_reset(sa->apply);
	sa->session = it->session;
	sa->session_ok = false;
	sa->idle_lsn = 0;
	error_clear(&err);
	apply_set_proto_version(sa->apply, it->proto_version);
	if (apply_check_identity(sa->apply, it->system_identifier, it->database, it->slot, &verdict,
	                         why, sizeof(why), &err) != PGF_OK) {
		log_error_value(LOG_ERROR, &err);
		if (sa->events.session_verdict)
			sa->events.session_verdict(sa->events.arg, it->session, false,
			                           SINK_REFUSE_INTERNAL, err.message, 0);
		apply_disconnect(sa->apply);
		return;
	}
	if (verdict == IDENTITY_FENCED)
		became_fenced(sa, why);
	if (verdict == IDENTITY_UNSEEDED || verdict == IDENTITY_ORIGIN_CONFLICT)
		set_refused(sa, why);
	if (verdict != IDENTITY_MATCHES && verdict != IDENTITY_RECORDED) {
		sink_refusal_t refusal = verdict == IDENTITY_FENCED     ? SINK_REFUSE_FENCED
		                         : verdict == IDENTITY_UNSEEDED ? SINK_REFUSE_UNSEEDED
		                         : verdict == IDENTITY_ORIGIN_CONFLICT
		                                 ? SINK_REFUSE_ORIGIN
		                                 : SINK_REFUSE_IDENTITY;
		log_error("refusing the stream: %s", why);
		if (sa->events.session_verdict)
			sa->events.session_verdict(sa->events.arg, it->session, false, refusal, why,
			                           0);
		return;
	}
	set_refused(sa, NULL);
	log_step("the stream's identity checked on the DR database");
	if (verdict == IDENTITY_RECORDED)
		log_info(
		        "first contact: this DR database now follows system %llu, database \"%s\", "
		        "slot \"%s\", through the replication origin \"%s\"%s",
		        (unsigned long long)it->system_identifier, it->database, it->slot,
		        apply_origin(sa->apply),
		        sa->cfg->initial_copy == INITIAL_COPY_EXTERNAL
		                ? "; initial_copy = external: the copy is taken as seeded up to "
		                  "where the slot starts"
		                : "");
	sa->session_ok = true;
	if (sa->par)
		sink_parallel_session_start(sa->par, it->proto_version);
	if (sa->events.session_verdict)
		sa->events.session_verdict(sa->events.arg, it->session, true, 0, NULL,
		                           apply_progress(sa->apply));
}

/* Applies one queue item of records; false on an apply error. The network
 * thread verified and decoded them: what it found comes with each record. */
static bool apply_records(sink_apply_t *sa, const queue_item_t *it)
{
	const queue_record_t *records;
	pgf_error_t err;
	uint32_t i;

	error_clear(&err);
	if (it->data == NULL && it->len > 0) {
		/* the queue's notice says why (the loop logs it); the source
		 * resends the batch */
		error_set(&err, PGF_E_IO, "a received batch could not be read back from the spool");
		goto failed;
	}
	if (!queue_item_records(it, &records)) {
		error_set(&err, PGF_E_PROTOCOL, "corrupt records in the apply queue");
		goto failed;
	}
	for (i = 0; i < it->nrecords; i++) {
		const queue_record_t *r = &records[i];
		if (r->kind == 'k') {
			/* a keepalive carries how far the walsender has sent; between
			 * transactions everything up to there is here */
			if (!in_transaction(sa) && r->wal_end > sa->idle_lsn)
				sa->idle_lsn = r->wal_end;
			continue;
		}
		if (sa->par && (r->kind == 'h' || r->kind == 'w')) {
			if (sink_parallel_record(sa->par, it, r, &err) != PGF_OK)
				goto failed;
			continue;
		}
		if (r->kind == 'h') {
			char path[600];
			huge_change_path(sa->cfg->work_dir, it->session, r->offset, path,
			                 sizeof(path));
			if (apply_huge_record(sa->apply, r->wal_start, r->type, r->xid, &r->facts,
			                      path, &err) != PGF_OK)
				goto failed;
			continue;
		}
		if (r->kind != 'w')
			continue;
		if (apply_record(sa->apply, r->wal_start, r->type, r->xid, &r->facts,
		                 queue_record_message(it, r), r->len, &err) != PGF_OK)
			goto failed;
	}
	return true;
failed:
	if (err.code == PGF_E_FENCED) {
		became_fenced(sa, err.message);
		drop_session(sa, &err);
		return false;
	}
	if (stopping(sa, &err))
		return false;
	log_error_value(LOG_ERROR, &err);
	if (sa->events.apply_error)
		sa->events.apply_error(sa->events.arg, &err, failed_lsn(sa));
	if (!apply_connected(sa->apply) || err.code == PGF_E_DATABASE)
		apply_disconnect(sa->apply);
	drop_session(sa, &err);
	next_backoff(sa);
	sleep_ms(sa, sa->backoff_ms);
	return false;
}

/* Input paused: the open group commits durably, and idle progress from
 * keepalives is recorded (apply_input_paused). */
static void commit_if_idle(sink_apply_t *sa)
{
	pgf_error_t err;
	uint64_t idle, flush;

	/* a keepalive is the peer's word: progress it justifies never passes
	 * the primary's flush position the source read on its own connection
	 * in this session (none read: no idle progress) */
	flush = queue_primary_flush(sa->queue, sa->session);
	idle = sa->idle_lsn < flush ? sa->idle_lsn : flush;
	error_clear(&err);
	if ((sa->par ? sink_parallel_paused(sa->par, idle, &err)
	             : apply_input_paused(sa->apply, idle, &err)) == PGF_OK)
		return;
	if (err.code == PGF_E_FENCED) {
		became_fenced(sa, err.message);
		drop_session(sa, &err);
		return;
	}
	if (stopping(sa, &err))
		return;
	log_error_value(LOG_ERROR, &err);
	if (sa->events.apply_error)
		sa->events.apply_error(sa->events.arg, &err, failed_lsn(sa));
	if (!apply_connected(sa->apply))
		apply_disconnect(sa->apply);
	drop_session(sa, &err);
	next_backoff(sa);
	sleep_ms(sa, sa->backoff_ms);
}

/* The file of each huge change goes with its item, applied or not (one
 * that a stream block took was moved: nothing to remove). */
static void remove_huge_files(sink_apply_t *sa, const queue_item_t *it)
{
	const queue_record_t *r;
	char path[600];
	uint32_t i;

	/* with parallel apply the coordinator owns them until applied */
	if (sa->par || it->kind != QUEUE_RECORDS || !queue_item_records(it, &r))
		return;
	for (i = 0; i < it->nrecords; i++)
		if (r[i].kind == 'h') {
			huge_change_path(sa->cfg->work_dir, it->session, r[i].offset, path,
			                 sizeof(path));
			unlink(path);
		}
}

static void *apply_thread_main(void *arg)
{
	sink_apply_t *sa = arg;
	bool trim = false; /* a large item was applied: give memory back when idle */

	while (!sa->stop) {
		queue_item_t *it;

		if (!ensure_connected(sa)) {
			/* whatever was in flight is gone with the connection */
			if (sa->session_ok) {
				pgf_error_t err;
				error_set(&err, PGF_E_DATABASE, "lost the DR database connection");
				drop_session(sa, &err);
			}
			continue;
		}
		/* wait briefly while a group is open, so it commits when input pauses */
		it = queue_pop(sa->queue, 20);
		if (it == NULL) {
			if (sa->session_ok)
				commit_if_idle(sa);
			if (trim && !apply_in_transaction(sa->apply)) {
				/* freed blocks of a large change go back to the system,
				 * also from the thread arenas free() alone keeps */
				malloc_trim(0);
				trim = false;
			}
			if (!sa->fenced)
				check_fence(sa, false);
			continue;
		}
		switch (it->kind) {
		case QUEUE_SESSION_START:
			start_session(sa, it);
			break;
		case QUEUE_RECORDS:
			trim = trim || it->len >= QUEUE_LARGE_ITEM;
			if (it->session == sa->session && sa->session_ok) {
				if (apply_records(sa, it) && queue_empty(sa->queue))
					commit_if_idle(sa);
			}
			break;
		case QUEUE_SESSION_END:
			if (it->session == sa->session && sa->session_ok) {
				/* whole transactions in the open group may still commit */
				commit_if_idle(sa);
				if (sa->par)
					sink_parallel_reset(sa->par);
				apply_reset(sa->apply);
				sa->session_ok = false;
			}
			break;
		}
		remove_huge_files(sa, it);
		queue_item_free(it);
	}
	if (apply_connected(sa->apply) && sa->session_ok)
		commit_if_idle(sa);
	apply_reset(sa->apply);
	return NULL;
}

sink_apply_t *sink_apply_start(const config_t *cfg, queue_t *queue,
                               const sink_apply_events_t *events, pgf_error_t *err)
{
	sink_apply_t *sa = calloc(1, sizeof(*sa));
	apply_hooks_t hooks = {0};

	if (sa == NULL) {
		error_set(err, PGF_E_MEMORY, "out of memory");
		return NULL;
	}
	sa->cfg = cfg;
	sa->queue = queue;
	sa->events = *events;
	sa->dr_reachable = true; /* so the first failure is logged */
	hooks.arg = sa;
	hooks.committed = on_committed;
	hooks.received_commit = received_commit;
	if (cfg->apply_workers > 1) {
		sa->par = sink_parallel_create(cfg, on_committed, sa, err);
		if (sa->par == NULL) {
			free(sa);
			return NULL;
		}
		sa->apply = sink_parallel_main(sa->par);
	} else {
		sa->apply = apply_create(cfg, &hooks);
	}
	if (sa->apply == NULL) {
		free(sa);
		error_set(err, PGF_E_MEMORY, "out of memory");
		return NULL;
	}
	if (pthread_create(&sa->thread, NULL, apply_thread_main, sa) != 0) {
		if (sa->par)
			sink_parallel_free(sa->par);
		else
			apply_free(sa->apply);
		free(sa);
		error_set(err, PGF_E_MEMORY, "could not start the apply thread");
		return NULL;
	}
	sa->started = true;
	return sa;
}

/* Waits up to seconds for the apply thread; true once it ended. */
static bool join_within(sink_apply_t *sa, int seconds)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += seconds;
	return pthread_timedjoin_np(sa->thread, NULL, &deadline) == 0;
}

void sink_apply_stop(sink_apply_t *sa)
{
	if (sa == NULL)
		return;
	sa->stop = 1;
	queue_close(sa->queue);
	/* whole transactions commit within the grace; a statement that waits
	 * longer (a lock a DBA holds on the DR side) would hold the stop for as
	 * long: it is cancelled, and its DR transaction rolls back */
	if (sa->started && !join_within(sa, STOP_GRACE_SECONDS)) {
		log_info(
		        "the DR transaction did not end within %d s of the stop (waiting on a lock "
		        "on the DR side?): cancelling it",
		        STOP_GRACE_SECONDS);
		apply_cancel(sa->apply);
		if (!join_within(sa, STOP_CANCEL_SECONDS)) {
			/* the DR server does not even answer: leave the thread to the
			 * process's exit, and the transaction to the server, which rolls
			 * it back when the connection drops */
			log_warning(
			        "the apply thread does not answer %d s after the cancel (the DR "
			        "server unreachable?); stopping without it",
			        STOP_CANCEL_SECONDS);
			return;
		}
	}
	if (sa->par)
		sink_parallel_free(sa->par);
	else
		apply_free(sa->apply);
	free(sa);
}
