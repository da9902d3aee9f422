/*
 * sink.c — `pgferry sink`, next to the DR database.
 *
 * The network thread (a libev loop: this file, the receive path in
 * sink_receive.c, the apply thread's news in sink_events.c, their shared
 * state in sink_internal.h) accepts one source at a time over mutual TLS,
 * verifies each batch (checksum, decompression, every record's framing and
 * every message decoded but a change's row data) before anything of it is
 * queued, queues what it found in each record with it, feeds the lag
 * tracker with what the primary said, and acks what the DR database
 * committed. The apply thread (sink_apply.c) applies in order and owns the
 * DR connection.
 * The HTTP thread (http.c) answers /metrics, /v1/status and the promotion
 * question from the lag tracker, so it keeps answering while apply stalls.
 *
 * A bad batch is never applied, even partly: the connection is closed, the
 * failure is counted and logged, and the source resends from the last ack.
 */
#include "pgferry/batch.h"
#include "pgferry/check.h"
#include "pgferry/cli.h"
#include "pgferry/daemon.h"
#include "pgferry/decoder.h"
#include "pgferry/events.h"
#include "pgferry/http.h"
#include "pgferry/lag.h"
#include "pgferry/lag_history.h"
#include "pgferry/log.h"
#include "pgferry/netconn.h"
#include "pgferry/queue.h"
#include "pgferry/reload.h"
#include "pgferry/replication.h"
#include "pgferry/sink_apply.h"
#include "pgferry/tls.h"
#include "pgferry/version.h"
#include "pgferry/wire.h"

#include "sink_internal.h"

#include <errno.h>
#include <ev.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* the source sends its hello as soon as TLS is up: a connection silent this
 * long after it is not a source at work, and gives up the slot */
#define HELLO_TIMEOUT 3.0

/* ---- the source connection ---------------------------------------------------- */

static void send_frame(sink_t *s, uint8_t type, const buf_t *b)
{
	pgf_error_t err;

	if (s->conn == NULL)
		return;
	error_clear(&err);
	if (netconn_send(s->conn, type, b->data, b->len, &err) != PGF_OK)
		log_error_value(LOG_WARNING, &err);
}

static void send_ack(sink_t *s)
{
	wire_ack_t ack = {0};
	buf_t b;

	if (s->conn == NULL || !s->welcomed)
		return;
	pthread_mutex_lock(&s->lock);
	ack.applied_lsn = s->applied_lsn;
	s->applied_changed = false;
	pthread_mutex_unlock(&s->lock);
	ack.received_lsn = s->received_lsn;
	ack.batch_seq = s->expected_seq ? s->expected_seq - 1 : 0;
	if (!s->first_ack_sent && ack.applied_lsn > s->received_at_welcome) {
		s->first_ack_sent = true;
		log_step("first ack of applied data sent");
	}
	buf_init(&b);
	wire_encode_ack(&ack, &b);
	send_frame(s, WIRE_ACK, &b);
	buf_free(&b);
}

void sink_drop_source(sink_t *s, uint16_t code, const char *why)
{
	netconn_t *c = s->conn;
	queue_item_t *end;

	if (c == NULL)
		return;
	s->conn = NULL;
	s->welcomed = false;
	s->said_hello = false;
	s->awaiting_verdict = false;
	huge_change_abort(&s->huge); /* the source sends it again whole */
	end = queue_item_new(QUEUE_SESSION_END, s->session);
	if (end)
		queue_push(&s->queue, end);
	lag_set_source_state(s->lag, LAG_SOURCE_DISCONNECTED, 0);
	netconn_close(c, code, why);
}

static void source_closed(netconn_t *c, void *arg, const pgf_error_t *err)
{
	sink_t *s = arg;

	if (s->conn != c)
		return;
	/* before its hello a peer has sent nothing to lose (pgferry check
	 * hangs up right after the handshake) */
	if (err && err->message[0])
		log_error_value(s->said_hello ? LOG_WARNING : LOG_INFO, err);
	log_info("the source disconnected");
	s->conn = NULL; /* netconn frees itself after this callback */
	s->welcomed = false;
	s->said_hello = false;
	s->awaiting_verdict = false;
	huge_change_abort(&s->huge);
	queue_push(&s->queue, queue_item_new(QUEUE_SESSION_END, s->session));
	lag_set_source_state(s->lag, LAG_SOURCE_DISCONNECTED, 0);
}

static void on_hello(sink_t *s, const uint8_t *payload, size_t len)
{
	wire_hello_t h;
	pgf_error_t err;
	queue_item_t *it;

	error_clear(&err);
	if (s->welcomed || wire_decode_hello(payload, len, &h, &err) != PGF_OK) {
		if (err.message[0] == '\0')
			error_set(&err, PGF_E_PROTOCOL, "a second hello on one connection");
		log_error_value(LOG_ERROR, &err);
		sink_drop_source(s, WIRE_ERR_PROTOCOL, err.message);
		return;
	}
	if (h.protocol_version != WIRE_PROTOCOL_VERSION) {
		char why[160];
		snprintf(why, sizeof(why),
		         "the source speaks wire protocol %u, this sink %u: upgrade the %s so both "
		         "run the same pgferry version",
		         h.protocol_version, (unsigned)WIRE_PROTOCOL_VERSION,
		         h.protocol_version < WIRE_PROTOCOL_VERSION ? "source" : "sink");
		log_error("refused the source at %s: %s", netconn_peer_name(s->conn), why);
		sink_drop_source(s, WIRE_ERR_VERSION, why);
		return;
	}
	log_step("hello received");
	s->said_hello = true;
	s->session++;
	s->expected_seq = 1;
	/* what another session said about the primary justifies nothing here */
	s->primary_flush = 0;
	s->txn_bytes = 0;
	pgoutput_decoder_init(&s->pgo, h.proto_version);
	batch_decoder_reset(s->decoder);
	/* the source codes its batches as differences once welcomed */
	s->delta = (h.capabilities & WIRE_CAP_DELTA) != 0;
	s->early = (h.capabilities & WIRE_CAP_EARLY_STREAM) != 0;
	s->early_from = h.stream_from;
	s->early_flush = h.primary_flush;
	batch_decoder_set_delta(s->decoder, s->delta);
	lag_set_identity(s->lag, h.system_identifier, h.database, h.slot);
	it = queue_item_new(QUEUE_SESSION_START, s->session);
	if (it == NULL) {
		sink_drop_source(s, WIRE_ERR_INTERNAL, "out of memory");
		return;
	}
	it->system_identifier = h.system_identifier;
	it->timeline = h.timeline;
	it->proto_version = h.proto_version;
	snprintf(it->database, sizeof(it->database), "%s", h.database);
	snprintf(it->slot, sizeof(it->slot), "%s", h.slot);
	log_info("hello from system %" PRIu64 ", database \"%s\", slot \"%s\", timeline %u",
	         h.system_identifier, h.database, h.slot, h.timeline);
	queue_push(&s->queue, it);
	/* nothing after the hello is read until the DR database accepted this
	 * stream: a source that streams before the welcome (the TLS handshake
	 * told it this sink waits) finds its batches handled only then, or
	 * never if the stream is refused */
	s->awaiting_verdict = true;
	netconn_pause(s->conn, true);
}

static void send_ping(sink_t *s)
{
	wire_ping_t p;
	buf_t b;

	if (s->conn == NULL || !s->welcomed)
		return;
	p.t1 = daemon_clock_now(s->cfg);
	buf_init(&b);
	wire_encode_ping(&p, &b);
	send_frame(s, WIRE_PING, &b);
	buf_free(&b);
}

/* What the source read from the primary on its own connection. */
static int on_primary_facts(sink_t *s, const uint8_t *payload, size_t len, pgf_error_t *err)
{
	wire_primary_facts_t f;

	if (wire_decode_primary_facts(payload, len, &f, err) != PGF_OK)
		return PGF_ERR;
	/* only from a source whose stream was accepted */
	if (!s->welcomed)
		return PGF_OK;
	if (f.flush_lsn > s->primary_flush) {
		/* for the apply thread, which bounds idle progress by it */
		queue_set_primary_flush(&s->queue, s->session, f.flush_lsn);
		s->primary_flush = f.flush_lsn;
	}
	lag_on_primary_fact(s->lag, f.position_lsn, f.flush_lsn, f.primary_time, f.source_error);
	if (f.slot_known)
		lag_on_slot_wal(s->lag, f.slot_retained_bytes, f.slot_safe_wal_size,
		                wire_slot_wal_status_name(f.slot_wal_status), f.slot_wal_warning);
	if (f.rpo_guard_known)
		lag_on_rpo_guard(s->lag, f.rpo_guard_state == 2, f.rpo_guard_bound_ms,
		                 f.rpo_guard_engagements, f.rpo_guard_reason);
	return PGF_OK;
}

static void source_frame(netconn_t *c, void *arg, uint8_t type, const uint8_t *payload, size_t len)
{
	sink_t *s = arg;
	pgf_error_t err;

	if (c != s->conn)
		return;
	error_clear(&err);
	/* the source speaks first; anything else before its hello (pings to
	 * hold the one source slot, say) is refused */
	if (!s->said_hello && type != WIRE_HELLO) {
		error_set(&err, PGF_E_PROTOCOL, "frame type %u from %s before its hello", type,
		          netconn_peer_name(c));
		log_error_value(LOG_WARNING, &err);
		sink_drop_source(s, WIRE_ERR_PROTOCOL, err.message);
		return;
	}
	s->last_heard = ev_now(s->loop);
	lag_on_heard_from_source(s->lag);
	switch (type) {
	case WIRE_HELLO:
		on_hello(s, payload, len);
		return;
	case WIRE_BATCH:
		sink_on_batch(s, payload, len);
		return;
	case WIRE_PONG: {
		wire_pong_t p;
		if (wire_decode_pong(payload, len, &p, &err) == PGF_OK) {
			int64_t t4 = daemon_clock_now(s->cfg);
			lag_on_clock_sample(s->lag, p.t1, p.t2, p.t3, t4);
			return;
		}
		break;
	}
	case WIRE_PING:
		if (daemon_answer_ping(c, s->cfg, payload, len, &err) != PGF_OK)
			break;
		return;
	case WIRE_PRIMARY_FACTS:
		if (on_primary_facts(s, payload, len, &err) != PGF_OK)
			break;
		return;
	case WIRE_END_OF_STREAM: {
		wire_end_of_stream_t e;
		char lsn[LSN_TEXT_LEN];
		if (wire_decode_end_of_stream(payload, len, &e, &err) != PGF_OK)
			break;
		log_info("the primary shut down cleanly; its stream ended at %s",
		         lsn_format(e.final_lsn, lsn));
		lag_set_source_state(s->lag, LAG_SOURCE_PRIMARY_SHUTDOWN, e.final_lsn);
		return;
	}
	case WIRE_ERROR: {
		wire_error_t e;
		if (wire_decode_error(payload, len, &e, &err) == PGF_OK &&
		    e.code == WIRE_ERR_TOO_LARGE) {
			char first[32];
			uint64_t lsn;
			snprintf(first, sizeof(first), "%.*s", (int)strcspn(e.message, " "),
			         e.message);
			if (lsn_parse(first, &lsn) == PGF_OK && lsn > 0) {
				s->blocked_lsn = lsn;
				lag_set_stream_blocked(s->lag, e.message + strlen(first) + 1);
			}
			log_error("the source cannot ship a change: %s", e.message);
		} else if (err.code == 0)
			log_warning("the source reports an error: %s", e.message);
		sink_drop_source(s, 0, NULL);
		return;
	}
	default:
		error_set(&err, PGF_E_PROTOCOL, "unexpected frame type %u from the source", type);
		break;
	}
	log_error_value(LOG_ERROR, &err);
	sink_drop_source(s, WIRE_ERR_PROTOCOL, err.message);
}

static void source_bad_frame(netconn_t *c, void *arg, const pgf_error_t *err)
{
	sink_t *s = arg;

	if (c != s->conn)
		return;
	if (netconn_peer_is_v1(c)) {
		/* an older source: not damage, so not counted as a bad frame */
		log_error("refused the source at %s: %s", netconn_peer_name(c), err->message);
		char why[160];
		log_error("HINT: %s", err->hint);
		snprintf(why, sizeof(why),
		         "this sink speaks wire protocol %d (pgferry with checked frame headers); "
		         "upgrade the source to the sink's version",
		         WIRE_PROTOCOL_VERSION);
		sink_drop_source(s, WIRE_ERR_VERSION, why);
		return;
	}
	lag_count_bad_batch(s->lag);
	log_error("rejected a frame from %s: %s", netconn_peer_name(c), err->message);
	if (err->detail[0])
		log_error("DETAIL: %s", err->detail);
	if (err->hint[0])
		log_error("HINT: %s", err->hint);
	sink_drop_source(s, WIRE_ERR_PROTOCOL, err->message);
}

static bool source_accept(netconn_t *c, void *arg)
{
	sink_t *s = arg;

	if (s->conn != NULL && s->said_hello) {
		log_warning("refused a second source from %s: one source at a time (the first is "
		            "still connected)",
		            netconn_peer_name(c));
		return false;
	}
	if (s->conn != NULL) {
		/* the slot is held by a connection that never said hello: the newer
		 * one (a restarted source, typically) takes it */
		log_warning("dropping the connection from %s, which sent no hello in %.1f s, for "
		            "a new one from %s",
		            netconn_peer_name(s->conn), ev_now(s->loop) - s->connected_at,
		            netconn_peer_name(c));
		sink_drop_source(s, WIRE_ERR_PROTOCOL,
		                 "no hello; another connection takes the slot");
	}
	log_info("source connected from %s", netconn_peer_name(c));
	s->conn = c;
	s->welcomed = false;
	s->said_hello = false;
	s->paused = false;
	s->last_heard = s->connected_at = ev_now(s->loop);
	lag_set_source_state(s->lag, LAG_SOURCE_CONNECTED, 0);
	return true;
}

/* ---- the loop's own work ---------------------------------------------------------- */

/* A source that streamed before the welcome started where its slot stood
 * and could not check that against the DR side's progress: the sink does,
 * before it reads a batch. A slot past the progress released transactions
 * the DR database never got; progress past the primary's flush position
 * came from another stream. Either way nothing is applied. */
static bool early_stream_refused(sink_t *s, uint64_t resume_lsn)
{
	char why[600], a[LSN_TEXT_LEN], b[LSN_TEXT_LEN], c[LSN_TEXT_LEN];

	if (s->early_from > resume_lsn && resume_lsn != 0)
		snprintf(why, sizeof(why),
		         "the source's slot is ahead of the DR database: it confirmed %s but the "
		         "DR side committed only up to %s; rebuild the DR copy (pgferry clone)",
		         lsn_format(s->early_from, a), lsn_format(resume_lsn, b));
	else if (resume_lsn > s->early_flush)
		snprintf(why, sizeof(why),
		         "the DR database resumes at %s, beyond the primary's WAL flush position "
		         "%s: its progress came from another stream (forged or misdirected); "
		         "nothing is applied and the slot is not confirmed past %s; check who "
		         "holds a certificate this sink accepts, then rebuild the DR copy "
		         "(pgferry clone)",
		         lsn_format(resume_lsn, a), lsn_format(s->early_flush, b),
		         lsn_format(s->early_from, c));
	else
		return false;
	log_error("refusing the stream: %s", why);
	sink_drop_source(s, WIRE_ERR_IDENTITY, why);
	return true;
}

static void on_wakeup(struct ev_loop *loop, ev_async *w, int revents)
{
	sink_t *s = w->data;
	bool verdict = false, failed = false, applied;
	session_verdict_t v = {0};
	session_failure_t f = {0};

	(void)loop;
	(void)revents;
	pthread_mutex_lock(&s->lock);
	if (s->verdict.pending) {
		v = s->verdict;
		s->verdict.pending = false;
		verdict = true;
	}
	if (s->failed.pending) {
		f = s->failed;
		s->failed.pending = false;
		failed = true;
	}
	applied = s->applied_changed;
	pthread_mutex_unlock(&s->lock);

	if (verdict && s->conn && v.session == s->session && v.accepted && s->early &&
	    early_stream_refused(s, v.resume_lsn))
		verdict = false;
	if (verdict && s->conn && v.session == s->session) {
		if (v.accepted) {
			wire_welcome_t w = {0};
			buf_t b;
			char lsn[LSN_TEXT_LEN];
			w.protocol_version = WIRE_PROTOCOL_VERSION;
			w.resume_lsn = v.resume_lsn;
			w.sink_time = daemon_clock_now(s->cfg);
			w.capabilities = s->delta ? WIRE_CAP_DELTA : 0;
			buf_init(&b);
			wire_encode_welcome(&w, &b);
			send_frame(s, WIRE_WELCOME, &b);
			buf_free(&b);
			s->welcomed = true;
			s->awaiting_verdict = false;
			if (!s->paused)
				netconn_pause(s->conn, false);
			log_step("welcome sent");
			s->received_lsn = v.resume_lsn;
			s->received_at_welcome = v.resume_lsn;
			s->first_ack_sent = false;
			lag_reset_received(s->lag, v.resume_lsn);
			log_info("stream accepted; resuming at %s", lsn_format(v.resume_lsn, lsn));
			send_ping(s);
		} else {
			uint16_t code = v.refusal == SINK_REFUSE_FENCED     ? WIRE_ERR_FENCED
			                : v.refusal == SINK_REFUSE_IDENTITY ? WIRE_ERR_IDENTITY
			                                                    : WIRE_ERR_INTERNAL;
			sink_drop_source(s, code, v.why);
		}
	}
	if (failed && s->conn && f.session == s->session) {
		if (f.fenced)
			log_info("dropping the source: this DR database was promoted");
		else
			log_info("dropping the source after an apply failure; it resends from the "
			         "last committed position");
		sink_drop_source(s, f.fenced ? WIRE_ERR_FENCED : WIRE_ERR_APPLY, f.why);
	}
	if (applied)
		send_ack(s);
	sink_maybe_resume(s);
}

/* What the receive spool had to say: the queue logs nothing itself, its
 * notices wait for the loop. */
static void log_queue_notices(sink_t *s)
{
	queue_notice_t n;

	while (queue_take_notice(&s->queue, &n))
		log_write(n.level, "%s", n.text);
}

static void ping_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	sink_t *s = w->data;

	(void)revents;
	log_queue_notices(s);
	/* while paused the sink does not read, so it hears nothing: that is no
	 * sign of a source gone (TCP and the pongs queued behind the batches
	 * still tell) */
	if (s->conn && !s->said_hello && ev_now(loop) - s->connected_at > HELLO_TIMEOUT) {
		log_warning("no hello from %s within %.0f s; disconnecting it",
		            netconn_peer_name(s->conn), HELLO_TIMEOUT);
		sink_drop_source(s, WIRE_ERR_PROTOCOL, "no hello in time");
		return;
	}
	/* bytes of a frame still arriving are word from the source too: a row
	 * larger than the link carries in source_timeout is no silence */
	if (s->conn && netconn_last_input(s->conn) > s->last_heard)
		s->last_heard = netconn_last_input(s->conn);
	if (s->conn && !s->paused && !s->awaiting_verdict &&
	    ev_now(loop) - s->last_heard > (double)s->cfg->source_timeout / 1000.0) {
		log_error("nothing heard from the source for %.1f s; disconnecting it",
		          ev_now(loop) - s->last_heard);
		sink_drop_source(s, WIRE_ERR_PROTOCOL, "timeout");
		return;
	}
	send_ping(s);
	lag_set_spooled(s->lag, queue_spooled_bytes(&s->queue));
	{
		char why[256];
		uint64_t failures;
		queue_spool_fault(&s->queue, why, sizeof(why), &failures);
		lag_set_spool_fault(s->lag, why, failures);
	}
	sink_maybe_resume(s);
}

static void ack_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	sink_t *s = w->data;

	(void)loop;
	(void)revents;
	send_ack(s);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	sink_t *s = w->data;

	(void)revents;
	log_info("shutting down (signal %d)", w->signum);
	s->stopping = true;
	sink_drop_source(s, 0, NULL);
	ev_break(loop, EVBREAK_ALL);
}

/* The work directory and, with spool_disk_limit, the receive spool in it. */
static int sink_open_work_dir(sink_t *s, pgf_error_t *err)
{
	const config_t *cfg = s->cfg;
	char path[1100];

	if (mkdir(cfg->work_dir, 0700) != 0 && errno != EEXIST)
		return error_set(err, PGF_E_CONFIG, "could not create work_dir \"%s\": %s",
		                 cfg->work_dir, strerror(errno));
	if (check_work_dir(cfg->work_dir, err) != PGF_OK)
		return PGF_ERR;
	huge_change_init(&s->huge, cfg->work_dir);
	if (huge_change_clean(cfg->work_dir) > 0)
		log_info("removed the files of huge changes an earlier run left in work_dir");
	if (cfg->spool_disk_limit <= 0)
		return PGF_OK;
	snprintf(path, sizeof(path), "%s/receive.spool", cfg->work_dir);
	if (queue_spool_open(&s->queue, path, (size_t)cfg->spool_memory_limit) != 0) {
		error_set(err, PGF_E_CONFIG, "could not create the receive spool \"%s\": %s", path,
		          strerror(errno));
		error_hint(err, "Check that work_dir is writable, or set spool_disk_limit = 0.");
		return PGF_ERR;
	}
	return PGF_OK;
}

/* The network thread's own state: decoders, the lag tracker, the loop. */
static int sink_create_receiver(sink_t *s, pgf_error_t *err)
{
	s->msg = malloc(sizeof(*s->msg));
	s->decoder = batch_decoder_create((size_t)s->cfg->max_frame_bytes, err);
	s->lag = lag_tracker_create(s->cfg);
	if (s->msg == NULL || s->decoder == NULL || s->lag == NULL) {
		if (err->message[0] == '\0')
			error_set(err, PGF_E_MEMORY, "out of memory");
		return PGF_ERR;
	}
	/* room for what inspect_records finds, so a large batch is queued as is */
	batch_decoder_reserve(s->decoder, sizeof(queue_record_t));
	s->loop = EV_DEFAULT;
	ev_async_init(&s->wakeup, on_wakeup);
	s->wakeup.data = s;
	ev_async_start(s->loop, &s->wakeup);
	return PGF_OK;
}

/* The history, HTTP and apply threads. */
static int sink_start_threads(sink_t *s, pgf_error_t *err)
{
	sink_apply_events_t events = {0};

	s->history = lag_history_start(s->cfg, s->lag, err);
	if (s->history == NULL)
		return PGF_ERR;
	if (sink_http_start(&s->http, s->cfg, s->lag, s->history, err) != PGF_OK)
		return PGF_ERR;
	sink_events_fill(s, &events);
	s->applier = sink_apply_start(s->cfg, &s->queue, &events, err);
	return s->applier != NULL ? PGF_OK : PGF_ERR;
}

/* The listener for the source, and the loop's timers and signals. */
static int sink_listen(sink_t *s, pgf_error_t *err)
{
	netconn_callbacks_t cb = {0};

	cb.arg = s;
	cb.accept = source_accept;
	cb.frame = source_frame;
	cb.bad_frame = source_bad_frame;
	cb.closed = source_closed;
	s->listener = netconn_listen(s->loop, s->cfg->listen_address, s->tls,
	                             s->cfg->max_frame_bytes, &cb, err);
	if (s->listener == NULL)
		return PGF_ERR;
	log_step("the sink listens");
	log_info("pgferry sink listening on %s; HTTP on %s; DR database: %s",
	         s->cfg->listen_address, s->cfg->http_listen, s->cfg->dr_conninfo);
	events_record("sink_started", EVENT_INFO, NULL, "the sink started (pgferry %s)",
	              PGFERRY_VERSION);
	ev_timer_init(&s->ping_timer, ping_tick, 0.2, 0.2);
	s->ping_timer.data = s;
	ev_timer_start(s->loop, &s->ping_timer);
	ev_timer_init(&s->ack_timer, ack_tick, 1.0, 1.0);
	s->ack_timer.data = s;
	ev_timer_start(s->loop, &s->ack_timer);
	daemon_signals(s->loop, &s->sigint, &s->sigterm, on_signal, s);
	return PGF_OK;
}

/* Stops the threads (apply commits whole transactions first) and frees
 * what cmd_sink made; rc says whether it ran to a stop. */
static void sink_close(sink_t *s, int rc)
{
	netconn_listener_free(s->listener);
	sink_apply_stop(s->applier); /* commits whole transactions, then joins */
	log_queue_notices(s);
	if (s->stopping) {
		char lsn[32];
		/* the apply thread is gone: what it committed is final */
		log_info("stopped: the DR database holds every transaction up to %s (its "
		         "replication origin and pgferry.progress); a transaction it held only in "
		         "part was rolled back, and the source sends it again",
		         lsn_format(s->applied_lsn, lsn));
	}
	if (s->history)
		events_record("sink_stopped", EVENT_INFO, NULL, "the sink stopped%s",
		              rc == 0 ? "" : " on an error");
	sink_http_stop(&s->http);     /* it reads the history's chart */
	lag_history_stop(s->history); /* writes the last events */
	lag_tracker_free(s->lag);
	batch_decoder_free(s->decoder);
	free(s->msg);
	tls_context_free(s->tls);
	queue_destroy(&s->queue);
}

int cmd_sink(int argc, char **argv)
{
	cli_t cli;
	pgf_error_t err;
	sink_t s;
	reload_t *reload = NULL;
	int rc = EXIT_ERROR;

	error_clear(&err);
	memset(&s, 0, sizeof(s));
	pthread_mutex_init(&s.lock, NULL);
	queue_init(&s.queue);
	if (daemon_load(argc, argv, ROLE_SINK, CHECK_ROLE_SINK, "sink", &cli, &err) != PGF_OK)
		goto out;
	s.cfg = &cli.cfg;
	log_step("the sink starts");
	if (sink_open_work_dir(&s, &err) != PGF_OK ||
	    daemon_tls(&cli.cfg, TLS_ROLE_SERVER, "listen_address", cli.cfg.listen_address, &s.tls,
	               &err) != PGF_OK ||
	    sink_create_receiver(&s, &err) != PGF_OK || sink_start_threads(&s, &err) != PGF_OK ||
	    sink_listen(&s, &err) != PGF_OK)
		goto out;
	reload = reload_start(s.loop, &cli, ROLE_SINK);
	ev_run(s.loop, 0);
	rc = 0;
out:
	if (rc != 0)
		log_error_value(LOG_ERROR, &err);
	reload_stop(reload);
	sink_close(&s, rc);
	cli_free(&cli);
	return rc;
}
