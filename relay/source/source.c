/*
 * source.c — `pgferry source`, next to the primary.
 *
 * One libev loop drives three connections: the logical replication stream
 * from the slot (libpq, non-blocking), a plain connection that writes a
 * heartbeat logical message every heartbeat_interval (and reads the slot's
 * WAL retention every few seconds), and the TLS link to
 * the sink. CopyData messages from the walsender are cut into batches
 * (batch_max_bytes / batch_max_delay), compressed, checksummed and shipped.
 * The walsender is told flush = what the sink reports committed on the DR
 * database, never more: the slot is the durable buffer on this side.
 * With rpo_guard = on, the RPO guard (rpo_guard.c) uses exactly that to make
 * the primary's commits wait for the DR side while the bound is too large.
 *
 * Any failure of either peer closes the session and starts a new one after
 * a backoff: the sink says where to resume (its committed progress), the
 * stream starts again there, nothing is lost and nothing applied twice.
 *
 * This file holds the sessions (open, close, the reconnect backoff), the
 * watch on the sink's pings, signals and cmd_source; the plain connection is
 * in source_heartbeat.c, the stream and its batches in source_stream.c, the
 * link to the sink in source_link.c, their shared state in source_internal.h.
 */
#include "source_internal.h"

#include "pgferry/check.h"
#include "pgferry/decoder.h"
#include "pgferry/cli.h"
#include "pgferry/daemon.h"
#include "pgferry/log.h"
#include "pgferry/pgsession.h"
#include "pgferry/primary_check.h"
#include "pgferry/reload.h"
#include "pgferry/wire.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void schedule_reconnect(source_t *s);

/* A session failed with err. A cause that repeats the last one (a missing
 * publication, wal_level below logical, a refused password, a sink that
 * refuses this primary) is logged once, not at every retry: the back-off
 * grows instead (schedule_reconnect). */
void source_report_failure(source_t *s, const pgf_error_t *err)
{
	s->same_cause = strcmp(err->message, s->last_cause) == 0;
	snprintf(s->last_cause, sizeof(s->last_cause), "%s", err->message);
	s->stats.session_failures++;
	snprintf(s->stats.last_error, sizeof(s->stats.last_error), "%s", err->message);
	if (!s->same_cause)
		log_error_value(LOG_ERROR, err);
	else
		log_debug("the session failed again for the same cause: %s", err->message);
}

/* The sink hears the error at once if it can: the next session may fail
 * before the sink reads anything of it (a DR database slow to accept the
 * stream), and the sink's status and verdict must not say "no error"
 * meanwhile. */
void source_note_error(source_t *s, const pgf_error_t *err)
{
	snprintf(s->last_error, sizeof(s->last_error), "%s", err->message);
	if (s->last_record_lsn > s->error_frontier)
		s->error_frontier = s->last_record_lsn;
	source_ship_error(s);
}

/* ---- sessions ------------------------------------------------------------------ */

void source_session_close(source_t *s, const char *why)
{
	if (s->state == SOURCE_IDLE && !s->repl_open && s->sink == NULL)
		return;
	if (s->same_cause)
		log_debug("session ended: %s", why);
	else
		log_info("session ended: %s", why);
	if (s->batch_timer_armed) {
		ev_timer_stop(s->loop, &s->batch_timer);
		s->batch_timer_armed = false;
	}
	ev_timer_stop(s->loop, &s->status_timer);
	ev_timer_stop(s->loop, &s->round_timer);
	ev_timer_stop(s->loop, &s->fact_timer);
	if (s->repl_open) {
		ev_io_stop(s->loop, &s->repl_watcher);
		replication_close(&s->repl);
		s->repl_open = false;
	}
	source_heartbeat_close(s);
	if (s->sink) {
		netconn_t *c = s->sink;
		s->sink = NULL;
		netconn_close(c, 0, NULL);
	}
	s->state = SOURCE_IDLE;
	s->early = false;
	schedule_reconnect(s);
}

/* What would lose data silently is checked on every session, before the
 * slot is used (see primary_check.h). */
static int check_primary(source_t *s, pgf_error_t *err)
{
	PGconn *c;
	int rc;

	c = pgsession_connect(s->cfg->primary_conninfo, "pgferry source", NULL, "primary", err);
	if (c == NULL)
		return PGF_ERR;
	rc = primary_check_sequences(c, s->cfg->publication, err);
	PQfinish(c);
	return rc;
}

/* warning: what went wrong without stopping the session */
static int session_open(source_t *s, pgf_error_t *err, pgf_error_t *warning)
{
	netconn_callbacks_t cb = {0};

	s->stats.sessions++;
	log_step("session %llu: connecting to the primary", (unsigned long long)s->stats.sessions);
	if (replication_connect(&s->repl, s->cfg->primary_conninfo, err) != PGF_OK)
		return PGF_ERR;
	log_step("replication connection ready (IDENTIFY_SYSTEM done)");
	s->repl_open = true;
	snprintf(s->stats.database, sizeof(s->stats.database), "%s", s->repl.dbname);
	/* the primary answered: connect to the sink now, so TCP's handshake
	 * crosses the link while the checks and the heartbeat connection below
	 * run (the hello goes once TLS is up, from the loop) */
	source_link_callbacks(s, &cb);
	s->sink = netconn_connect(s->loop, s->cfg->sink_address, s->tls, s->cfg->max_frame_bytes,
	                          &cb, err);
	if (s->sink == NULL)
		return PGF_ERR;
	s->sink_heard = ev_now(s->loop);
	log_step("connecting to the sink at %s", s->cfg->sink_address);
	if (check_primary(s, err) != PGF_OK) {
		s->setup_refused = err->code == PGF_E_CONFIG;
		return PGF_ERR;
	}
	log_step("primary checked (a plain connection, its sequences)");
	s->proto_version = replication_max_proto_version(s->repl.server_version);
	/* the slot is created only once the sink accepted this primary (see
	 * the welcome): one made on the wrong primary would hold its WAL */
	if (source_heartbeat_open(s, err, warning) != PGF_OK)
		return PGF_ERR;
	log_step("heartbeat connection ready");
	return PGF_OK;
}

/* The figures source_http serves, about once a second. */
static void publish_stats(source_t *s)
{
	s->stats.session_state = s->state == SOURCE_STREAMING ? "streaming"
	                         : s->state == SOURCE_HELLO   ? "hello"
	                                                      : "idle";
	s->stats.slot_known = s->slot_known;
	s->stats.slot_retained_bytes = s->slot_retained;
	s->stats.slot_safe_wal_size = s->slot_safe;
	snprintf(s->stats.slot_wal_status, sizeof(s->stats.slot_wal_status), "%s",
	         wire_slot_wal_status_name(s->slot_status));
	if (!s->slot_known)
		s->stats.walsender_state[0] = '\0';
	s->stats.confirmed_lsn = s->last_reported_flush;
	s->stats.sink_applied_lsn = s->sink_applied_lsn;
	source_http_publish(s->http, &s->stats);
}

/* A sink that vanished without a reset (a partitioned link, a frozen host)
 * would otherwise hold the session until TCP gives up, many minutes later;
 * its pings stopping says so within sink_timeout. */
static void watch_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	source_t *s = w->data;
	double silent = ev_now(loop) - s->sink_heard;

	(void)revents;
	publish_stats(s);
	if (s->sink == NULL || silent <= (double)s->cfg->sink_timeout / 1000.0)
		return;
	{
		pgf_error_t err;
		error_clear(&err);
		error_set(&err, PGF_E_IO,
		          "nothing heard from the sink at %s for %.1f s (it pings every 0.2 s); "
		          "restarting the session, the slot keeps everything unconfirmed",
		          s->cfg->sink_address, silent);
		source_report_failure(s, &err);
	}
	source_session_close(s, "the sink went silent");
}

static void guard_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	source_t *s = w->data;

	(void)loop;
	(void)revents;
	rpo_guard_tick(s->guard, s->state == SOURCE_STREAMING);
}

static void reconnect_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	source_t *s = w->data;
	pgf_error_t err, warning;
	int rc;

	(void)loop;
	(void)revents;
	error_clear(&err);
	error_clear(&warning);
	rc = session_open(s, &err, &warning);
	if (warning.message[0] != '\0')
		log_error_value(LOG_ERROR, &warning);
	if (rc != PGF_OK) {
		source_report_failure(s, &err);
		source_note_error(s, &err);
		if (s->setup_refused && !s->streamed_once) {
			/* a setup that would lose data: refuse to start */
			source_session_close(s, "the primary's setup is refused");
			ev_timer_stop(loop, &s->reconnect_timer);
			s->exit_code = EXIT_ERROR;
			ev_break(loop, EVBREAK_ALL);
			return;
		}
		source_session_close(s, "could not start a session");
		if (s->state == SOURCE_IDLE && !ev_is_active(&s->reconnect_timer))
			schedule_reconnect(s);
	}
}

static void schedule_reconnect(source_t *s)
{
	double delay;

	if (ev_is_active(&s->reconnect_timer))
		return;
	/* back off further only while the same cause repeats and no session
	 * streams for long: a new cause, or a session that streamed for 30 s,
	 * is retried at once */
	if (!s->same_cause ||
	    (s->streaming_since > 0 && ev_now(s->loop) - s->streaming_since >= 30.0))
		s->backoff_ms = 0;
	s->streaming_since = 0;
	s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : 100;
	if (s->backoff_ms > s->cfg->reconnect_max_delay)
		s->backoff_ms = (int)s->cfg->reconnect_max_delay;
	delay = (double)s->backoff_ms / 1000.0;
	ev_timer_set(&s->reconnect_timer, delay, 0.0);
	ev_timer_start(s->loop, &s->reconnect_timer);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	source_t *s = w->data;

	(void)revents;
	log_info("shutting down (signal %d)", w->signum);
	source_ship_batch(s);
	/* the last word to the slot: what the DR database committed, no more */
	source_send_status(s, false);
	if (s->state == SOURCE_STREAMING) {
		char lsn[32];
		log_info("confirmed %s to the slot (what the DR database committed); the slot "
		         "keeps the rest",
		         lsn_format(s->last_reported_flush, lsn));
	}
	rpo_guard_release(s->guard, "the source stops");
	source_session_close(s, "shutdown");
	ev_timer_stop(loop, &s->reconnect_timer);
	ev_break(loop, EVBREAK_ALL);
}

/* The walsender sends each message with a send of its own and wakes the
 * source for it; under the normal policy each wake-up preempts the
 * walsender where it runs (some 60,000 times in a catch-up of 100,000
 * pgbench transactions), which then waits for a core to decode on.
 * SCHED_BATCH only turns off that preemption: woken, the source runs on a
 * free core or when the running process's slice ends, and reads the
 * messages that came meanwhile in one go. Threads started later inherit
 * the policy; the RPO guard's watchdog, forked before, keeps the normal
 * one. */
static void set_batch_scheduling(void)
{
	struct sched_param sp;

	memset(&sp, 0, sizeof(sp));
	if (sched_setscheduler(0, SCHED_BATCH, &sp) != 0)
		log_warning(
		        "the source could not run under SCHED_BATCH (%s): its wake-ups preempt the "
		        "walsender; batch_scheduling = off keeps the normal policy without this "
		        "warning",
		        strerror(errno));
	else
		log_debug("the source runs under SCHED_BATCH");
}

int cmd_source(int argc, char **argv)
{
	cli_t cli;
	pgf_error_t err;
	source_t s;
	reload_t *reload = NULL;
	int rc = EXIT_ERROR;

	error_clear(&err);
	memset(&s, 0, sizeof(s));
	/* an unexpected argument was refused by the command table (main.c) */
	if (daemon_load(argc, argv, ROLE_SOURCE, CHECK_ROLE_SOURCE, "source", &cli, &err) != PGF_OK)
		goto out;
	s.cfg = &cli.cfg;
	/* before the loop and its connections: it forks its watchdog */
	if (cli.cfg.rpo_guard && (s.guard = rpo_guard_create(&cli.cfg, &err)) == NULL)
		goto out;
	if (cli.cfg.batch_scheduling)
		set_batch_scheduling();
	if (daemon_tls(&cli.cfg, TLS_ROLE_CLIENT, "sink_address", cli.cfg.sink_address, &s.tls,
	               &err) != PGF_OK)
		goto out;
	s.stats.session_state = "idle";
	s.http = source_http_start(&cli.cfg, &err);
	if (s.http == NULL && err.code != 0)
		goto out;
	s.encoder = batch_encoder_create((int)cli.cfg.compression_level,
	                                 (size_t)cli.cfg.max_frame_bytes, &err);
	if (s.encoder == NULL)
		goto out;
	s.loop = EV_DEFAULT;
	ev_timer_init(&s.reconnect_timer, reconnect_tick, 0.0, 0.0);
	s.reconnect_timer.data = &s;
	ev_timer_init(&s.batch_timer, source_batch_deadline, 0.0, 0.0);
	s.batch_timer.data = &s;
	ev_timer_init(&s.round_timer, source_round_due, 0.0, 0.0);
	s.round_timer.data = &s;
	ev_timer_init(&s.fact_timer, source_fact_due, 0.0, 0.0);
	s.fact_timer.data = &s;
	ev_timer_init(&s.status_timer, source_status_tick, 0.0,
	              (double)cli.cfg.status_interval / 1000.0);
	s.status_timer.data = &s;
	{
		double every = (double)cli.cfg.sink_timeout / 4000.0;
		if (every > 1.0)
			every = 1.0;
		ev_timer_init(&s.watch_timer, watch_tick, every, every);
		s.watch_timer.data = &s;
		ev_timer_start(s.loop, &s.watch_timer);
	}
	if (s.guard != NULL) {
		ev_timer_init(&s.guard_timer, guard_tick, 0.2, 0.2);
		s.guard_timer.data = &s;
		ev_timer_start(s.loop, &s.guard_timer);
	}
	daemon_signals(s.loop, &s.sigint, &s.sigterm, on_signal, &s);
	log_step("the source starts");
	log_info("pgferry source starting: slot \"%s\", publication \"%s\", sink %s",
	         cli.cfg.slot_name, cli.cfg.publication, cli.cfg.sink_address);
	ev_timer_set(&s.reconnect_timer, 0.0, 0.0);
	ev_timer_start(s.loop, &s.reconnect_timer);
	reload = reload_start(s.loop, &cli, ROLE_SOURCE);
	ev_run(s.loop, 0);
	rc = s.exit_code;
out:
	reload_stop(reload);
	if (rc != 0 && err.message[0])
		log_error_value(LOG_ERROR, &err);
	rpo_guard_free(s.guard);
	source_http_stop(s.http);
	batch_encoder_free(s.encoder);
	free(s.seq_last);
	free(s.seq_candidate);
	tls_context_free(s.tls);
	cli_free(&cli);
	return rc;
}
