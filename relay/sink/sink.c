/*
 * sink.c — `pgferry sink`, next to the DR database.
 *
 * The network thread (a libev loop, this file) accepts one source at a
 * time over mutual TLS, verifies each batch (checksum, decompression, every
 * record's framing and every message decoded but a change's row data)
 * before anything of it is queued, queues what it found in each record with
 * it, feeds the lag tracker with what the primary said, and acks what the
 * DR database committed. The apply thread (sink_apply.c) applies in order
 * and owns the DR connection.
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

#include <errno.h>
#include <ev.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HEARTBEAT_PREFIX "pgferry.heartbeat"
/* the source sends its hello as soon as TLS is up: a connection silent this
 * long after it is not a source at work, and gives up the slot */
#define HELLO_TIMEOUT    3.0
#define SEQUENCES_PREFIX "pgferry.sequences"

/* handed from the apply thread to the loop */
typedef struct session_verdict {
	bool pending;
	uint64_t session;
	bool accepted;
	sink_refusal_t refusal;
	char why[1024];
	uint64_t resume_lsn;
} session_verdict_t;

typedef struct session_failure {
	bool pending;
	uint64_t session;
	char why[600];
	bool fenced; /* the DR database was promoted: refuse, do not retry */
} session_failure_t;

typedef struct sink {
	config_t *cfg;
	struct ev_loop *loop;
	queue_t queue;
	sink_apply_t *applier;
	lag_tracker_t *lag;
	sink_http_t http;
	lag_history_t *history;
	tls_context_t *tls;
	netconn_listener_t *listener;

	/* the current source (network thread only) */
	netconn_t *conn;
	uint64_t session;
	bool said_hello; /* a connection that has not may be displaced by another */
	bool welcomed;
	bool paused; /* stopped reading: the apply queue is full */
	batch_decoder_t *decoder;
	uint64_t expected_seq;
	uint64_t received_lsn;
	pgoutput_decoder_t pgo;
	pgoutput_message_t *msg;
	uint64_t txn_bytes; /* pgoutput bytes of the transaction being received */
	uint64_t txn_rows;
	bool txn_internal;      /* only pgferry's own messages so far (heartbeat, sequences) */
	uint64_t primary_flush; /* this session's PRIMARY_FACTS flush position */
	ev_tstamp last_heard;
	ev_tstamp connected_at;
	uint64_t blocked_lsn; /* a change the source cannot ship (0: none) */

	/* set by the apply thread, read by the loop under lock */
	pthread_mutex_t lock;
	ev_async wakeup;
	uint64_t applied_lsn;
	bool applied_changed;
	session_verdict_t verdict;
	session_failure_t failed;

	ev_timer ping_timer;
	ev_timer ack_timer;
	ev_signal sigint, sigterm;
	bool stopping; /* a signal asked to stop */
} sink_t;

/* ---- events from the apply thread (called there; they only record and wake) -- */

static void ev_session_verdict(void *arg, uint64_t session, bool accepted, sink_refusal_t refusal,
                               const char *why, uint64_t resume_lsn)
{
	sink_t *s = arg;

	pthread_mutex_lock(&s->lock);
	s->verdict.pending = true;
	s->verdict.session = session;
	s->verdict.accepted = accepted;
	s->verdict.refusal = refusal;
	snprintf(s->verdict.why, sizeof(s->verdict.why), "%s", why ? why : "");
	s->verdict.resume_lsn = resume_lsn;
	pthread_mutex_unlock(&s->lock);
	if (!accepted)
		lag_set_identity_ok(s->lag, refusal != SINK_REFUSE_IDENTITY);
	ev_async_send(s->loop, &s->wakeup);
}

static void ev_stream_refused(void *arg, const char *why)
{
	sink_t *s = arg;

	lag_set_stream_refused(s->lag, why);
}

static void ev_applied(void *arg, const apply_group_t *g)
{
	sink_t *s = arg;

	lag_on_applied(s->lag, g->end_lsn, g->last_commit_time, g->transactions, g->rows, g->bytes,
	               g->seconds);
	pthread_mutex_lock(&s->lock);
	s->applied_lsn = g->end_lsn;
	s->applied_changed = true;
	pthread_mutex_unlock(&s->lock);
	ev_async_send(s->loop, &s->wakeup);
}

static void ev_apply_error(void *arg, const pgf_error_t *err, uint64_t lsn)
{
	sink_t *s = arg;

	lag_set_apply_error(s->lag, err, lsn);
}

static void ev_session_failed(void *arg, uint64_t session, const pgf_error_t *err)
{
	sink_t *s = arg;

	pthread_mutex_lock(&s->lock);
	s->failed.pending = true;
	s->failed.session = session;
	snprintf(s->failed.why, sizeof(s->failed.why), "%s", err ? err->message : "apply failed");
	s->failed.fenced = err && err->code == PGF_E_FENCED;
	pthread_mutex_unlock(&s->lock);
	ev_async_send(s->loop, &s->wakeup);
}

static void ev_fenced(void *arg, const char *why)
{
	sink_t *s = arg;

	(void)why;
	lag_set_fenced(s->lag, true);
}

static void ev_dr_state(void *arg, bool reachable, uint64_t progress_lsn, int64_t progress_time,
                        const pgf_error_t *err)
{
	sink_t *s = arg;

	lag_set_dr_reachable(s->lag, reachable, err);
	if (reachable) {
		lag_restore_applied(s->lag, progress_lsn, progress_time);
		pthread_mutex_lock(&s->lock);
		if (progress_lsn > s->applied_lsn)
			s->applied_lsn = progress_lsn;
		pthread_mutex_unlock(&s->lock);
	}
}

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
	buf_init(&b);
	wire_encode_ack(&ack, &b);
	send_frame(s, WIRE_ACK, &b);
	buf_free(&b);
}

static void drop_source(sink_t *s, uint16_t code, const char *why)
{
	netconn_t *c = s->conn;
	queue_item_t *end;

	if (c == NULL)
		return;
	s->conn = NULL;
	s->welcomed = false;
	s->said_hello = false;
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
	queue_push(&s->queue, queue_item_new(QUEUE_SESSION_END, s->session));
	lag_set_source_state(s->lag, LAG_SOURCE_DISCONNECTED, 0);
}

static void reject_batch(sink_t *s, const pgf_error_t *err)
{
	char msg[1200];

	lag_count_bad_batch(s->lag);
	snprintf(msg, sizeof(msg), "rejected a batch from the source: %s%s%s", err->message,
	         err->where[0] ? " at " : "", err->where);
	log_error("%s", msg);
	if (err->detail[0])
		log_error("DETAIL: %s", err->detail);
	log_info("closing the connection; the source resends from the last acknowledged position");
	drop_source(s, WIRE_ERR_BAD_BATCH, msg);
}

/* What the lag tracker learns from one message. */
static void note_message(sink_t *s, queue_item_t *it, size_t len)
{
	const pgoutput_message_t *m = s->msg;

	s->txn_bytes += len;
	switch (m->type) {
	case PGOUTPUT_BEGIN:
		s->txn_bytes = len;
		s->txn_rows = 0;
		s->txn_internal = true;
		break;
	case PGOUTPUT_INSERT:
	case PGOUTPUT_UPDATE:
	case PGOUTPUT_DELETE:
	case PGOUTPUT_TRUNCATE:
		s->txn_rows++;
		s->txn_internal = false;
		break;
	case PGOUTPUT_MESSAGE:
		if (strcmp(m->u.message.prefix, HEARTBEAT_PREFIX) == 0)
			lag_on_heartbeat(s->lag);
		else if (strcmp(m->u.message.prefix, SEQUENCES_PREFIX) != 0)
			s->txn_internal = false; /* DDL, or a message of the application */
		break;
	case PGOUTPUT_COMMIT:
		/* travels with the item: the apply thread judges a BEGIN by it */
		it->commit_lsn = m->u.commit.commit_lsn;
		lag_on_received_commit(s->lag, m->u.commit.commit_lsn, m->u.commit.end_lsn,
		                       m->u.commit.commit_time, s->txn_bytes, s->txn_rows,
		                       s->txn_internal);
		s->txn_internal = false;
		s->txn_bytes = 0;
		break;
	case PGOUTPUT_STREAM_COMMIT:
		lag_on_received_commit(s->lag, m->u.stream_commit.commit_lsn,
		                       m->u.stream_commit.end_lsn, m->u.stream_commit.commit_time,
		                       s->txn_bytes, s->txn_rows, false);
		s->txn_bytes = 0;
		break;
	default:
		break;
	}
}

/*
 * Checks every record of a verified batch, once for the whole sink, and
 * collects the primary's facts for the lag tracker (the newest WAL end with
 * its clock time, and each committed transaction: commit LSN, end LSN,
 * commit time, size). What it finds in each record goes into records[i],
 * with the message's offset in the raw bytes: the apply thread parses
 * nothing again.
 */
static int inspect_records(sink_t *s, const batch_view_t *v, queue_item_t *it,
                           queue_record_t *records, pgf_error_t *err)
{
	uint32_t i;

	for (i = 0; i < v->nrecords; i++) {
		queue_record_t *qr = &records[i];
		const uint8_t *rec;
		size_t len;
		walsender_message_t wm;
		char lsn[LSN_TEXT_LEN];

		batch_view_record(v, i, &rec, &len);
		if (walsender_parse(rec, len, &wm, err) != PGF_OK) {
			error_where(err, "record %u of batch %" PRIu64, i + 1, v->seq);
			return PGF_ERR;
		}
		lag_on_primary_wal(s->lag, wm.wal_end, wm.send_time);
		qr->kind = wm.kind;
		qr->wal_end = wm.wal_end;
		if (wm.kind != 'w')
			continue;
		if (pgoutput_decode_header(&s->pgo, wm.payload, wm.payload_len, s->msg, err) !=
		    PGF_OK) {
			error_where(err, "record %u of batch %" PRIu64 ", WAL %s", i + 1, v->seq,
			            lsn_format(wm.wal_start, lsn));
			return PGF_ERR;
		}
		qr->wal_start = wm.wal_start;
		qr->type = (uint8_t)s->msg->type;
		qr->xid = s->msg->has_xid ? s->msg->xid : 0;
		qr->offset = (uint32_t)(wm.payload - v->raw);
		qr->len = (uint32_t)wm.payload_len;
		it->last_lsn = wm.wal_start;
		note_message(s, it, wm.payload_len);
	}
	return PGF_OK;
}

/* The batch's raw records with room for what is found in them: a large
 * batch's buffer is taken from the decoder (no second copy), a small one
 * is copied, so the decoder's buffer is reused. NULL: out of memory. */
static uint8_t *records_buffer(sink_t *s, const batch_view_t *v)
{
	size_t size = queue_records_size(v->raw_len, v->nrecords);
	uint8_t *data;

	if (v->raw_len >= QUEUE_LARGE_ITEM)
		return batch_decoder_take_raw(s->decoder, size);
	data = malloc(size);
	if (data != NULL)
		memcpy(data, v->raw, v->raw_len);
	return data;
}

/* Whether what waits to be applied passes the limits (divided by div). */
static bool queue_over(sink_t *s, int div)
{
	return (int64_t)queue_memory_bytes(&s->queue) > s->cfg->spool_memory_limit / div ||
	       (int64_t)queue_bytes(&s->queue) >
	               (s->cfg->spool_memory_limit + s->cfg->spool_disk_limit) / div;
}

/* Reads from the source again once apply has taken half of what waited. */
static void maybe_resume(sink_t *s)
{
	if (s->paused && s->conn && !queue_over(s, 2)) {
		netconn_pause(s->conn, false);
		s->paused = false;
		/* the silence while paused was ours, not the source's */
		s->last_heard = ev_now(s->loop);
	}
}

static void on_batch(sink_t *s, const uint8_t *payload, size_t len)
{
	batch_view_t view;
	pgf_error_t err;
	queue_item_t *it;
	queue_record_t *records;
	uint8_t *data;
	uint64_t last_lsn;

	error_clear(&err);
	if (!s->welcomed) {
		error_set(&err, PGF_E_PROTOCOL, "batch before the handshake finished");
		reject_batch(s, &err);
		return;
	}
	if (batch_decode(s->decoder, payload, len, s->expected_seq, &view, &err) != PGF_OK) {
		reject_batch(s, &err);
		return;
	}
	it = queue_item_new(QUEUE_RECORDS, s->session);
	data = it != NULL ? records_buffer(s, &view) : NULL;
	if (data == NULL) {
		queue_item_free(it);
		error_set(&err, PGF_E_MEMORY, "out of memory queueing a batch");
		reject_batch(s, &err);
		return;
	}
	view.raw = data; /* the same bytes, where the item keeps them */
	records = queue_item_set_records(it, data, view.raw_len, view.nrecords);
	it->last_lsn = s->received_lsn;
	if (inspect_records(s, &view, it, records, &err) != PGF_OK) {
		queue_item_free(it);
		reject_batch(s, &err);
		return;
	}
	last_lsn = it->last_lsn;
	lag_count_batch(s->lag, len, view.raw_len);
	s->expected_seq = view.seq + 1;
	queue_push(&s->queue, it);
	s->received_lsn = last_lsn;
	if (s->blocked_lsn != 0 && last_lsn >= s->blocked_lsn) {
		log_info("the change the source could not ship has passed");
		s->blocked_lsn = 0;
		lag_set_stream_blocked(s->lag, NULL);
	}
	lag_on_received(s->lag, last_lsn);
	/* memory and spool stay bounded: past the limits, TCP (and the slot on
	 * the primary) holds the rest */
	if (!s->paused && queue_over(s, 1)) {
		log_info("apply is behind: %zu bytes wait in memory and %zu in the spool; reading "
		         "from the source pauses until apply has taken half",
		         queue_memory_bytes(&s->queue), queue_spooled_bytes(&s->queue));
		netconn_pause(s->conn, true);
		s->paused = true;
	}
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
		drop_source(s, WIRE_ERR_PROTOCOL, err.message);
		return;
	}
	if (h.protocol_version != WIRE_PROTOCOL_VERSION) {
		log_error("the source speaks wire protocol %u, this sink %u", h.protocol_version,
		          WIRE_PROTOCOL_VERSION);
		drop_source(s, WIRE_ERR_VERSION, "unsupported wire protocol version");
		return;
	}
	s->said_hello = true;
	s->session++;
	s->expected_seq = 1;
	/* what another session said about the primary justifies nothing here */
	s->primary_flush = 0;
	s->txn_bytes = 0;
	pgoutput_decoder_init(&s->pgo, h.proto_version);
	batch_decoder_reset(s->decoder);
	lag_set_identity(s->lag, h.system_identifier, h.database, h.slot);
	it = queue_item_new(QUEUE_SESSION_START, s->session);
	if (it == NULL) {
		drop_source(s, WIRE_ERR_INTERNAL, "out of memory");
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
		drop_source(s, WIRE_ERR_PROTOCOL, err.message);
		return;
	}
	s->last_heard = ev_now(s->loop);
	lag_on_heard_from_source(s->lag);
	switch (type) {
	case WIRE_HELLO:
		on_hello(s, payload, len);
		return;
	case WIRE_BATCH:
		on_batch(s, payload, len);
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
	case WIRE_PRIMARY_FACTS: {
		wire_primary_facts_t f;
		if (wire_decode_primary_facts(payload, len, &f, &err) != PGF_OK)
			break;
		/* only from a source whose stream was accepted */
		if (!s->welcomed)
			return;
		if (f.flush_lsn > s->primary_flush) {
			/* for the apply thread, which bounds idle progress by it */
			queue_set_primary_flush(&s->queue, s->session, f.flush_lsn);
			s->primary_flush = f.flush_lsn;
		}
		lag_on_primary_fact(s->lag, f.position_lsn, f.flush_lsn, f.primary_time,
		                    f.source_error);
		if (f.slot_known)
			lag_on_slot_wal(s->lag, f.slot_retained_bytes, f.slot_safe_wal_size,
			                wire_slot_wal_status_name(f.slot_wal_status),
			                f.slot_wal_warning);
		if (f.rpo_guard_known)
			lag_on_rpo_guard(s->lag, f.rpo_guard_state == 2, f.rpo_guard_bound_ms,
			                 f.rpo_guard_engagements, f.rpo_guard_reason);
		return;
	}
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
		drop_source(s, 0, NULL);
		return;
	}
	default:
		error_set(&err, PGF_E_PROTOCOL, "unexpected frame type %u from the source", type);
		break;
	}
	log_error_value(LOG_ERROR, &err);
	drop_source(s, WIRE_ERR_PROTOCOL, err.message);
}

static void source_bad_frame(netconn_t *c, void *arg, const pgf_error_t *err)
{
	sink_t *s = arg;

	if (c != s->conn)
		return;
	if (netconn_peer_is_v1(c)) {
		/* an older source: not damage, so not counted as a bad frame */
		log_error("refused the source at %s: %s", netconn_peer_name(c), err->message);
		log_error("HINT: %s", err->hint);
		drop_source(s, WIRE_ERR_VERSION,
		            "this sink speaks wire protocol 2 (pgferry with checked frame "
		            "headers); upgrade the source to the sink's version");
		return;
	}
	lag_count_bad_batch(s->lag);
	log_error("rejected a frame from %s: %s", netconn_peer_name(c), err->message);
	if (err->detail[0])
		log_error("DETAIL: %s", err->detail);
	if (err->hint[0])
		log_error("HINT: %s", err->hint);
	drop_source(s, WIRE_ERR_PROTOCOL, err->message);
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
		drop_source(s, WIRE_ERR_PROTOCOL, "no hello; another connection takes the slot");
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

	if (verdict && s->conn && v.session == s->session) {
		if (v.accepted) {
			wire_welcome_t w = {0};
			buf_t b;
			char lsn[LSN_TEXT_LEN];
			w.protocol_version = WIRE_PROTOCOL_VERSION;
			w.resume_lsn = v.resume_lsn;
			w.sink_time = daemon_clock_now(s->cfg);
			buf_init(&b);
			wire_encode_welcome(&w, &b);
			send_frame(s, WIRE_WELCOME, &b);
			buf_free(&b);
			s->welcomed = true;
			s->received_lsn = v.resume_lsn;
			lag_reset_received(s->lag, v.resume_lsn);
			log_info("stream accepted; resuming at %s", lsn_format(v.resume_lsn, lsn));
			send_ping(s);
		} else {
			uint16_t code = v.refusal == SINK_REFUSE_FENCED     ? WIRE_ERR_FENCED
			                : v.refusal == SINK_REFUSE_IDENTITY ? WIRE_ERR_IDENTITY
			                                                    : WIRE_ERR_INTERNAL;
			drop_source(s, code, v.why);
		}
	}
	if (failed && s->conn && f.session == s->session) {
		if (f.fenced)
			log_info("dropping the source: this DR database was promoted");
		else
			log_info("dropping the source after an apply failure; it resends from the "
			         "last committed position");
		drop_source(s, f.fenced ? WIRE_ERR_FENCED : WIRE_ERR_APPLY, f.why);
	}
	if (applied)
		send_ack(s);
	maybe_resume(s);
}

static void ping_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	sink_t *s = w->data;

	(void)revents;
	/* while paused the sink does not read, so it hears nothing: that is no
	 * sign of a source gone (TCP and the pongs queued behind the batches
	 * still tell) */
	if (s->conn && !s->said_hello && ev_now(loop) - s->connected_at > HELLO_TIMEOUT) {
		log_warning("no hello from %s within %.0f s; disconnecting it",
		            netconn_peer_name(s->conn), HELLO_TIMEOUT);
		drop_source(s, WIRE_ERR_PROTOCOL, "no hello in time");
		return;
	}
	/* bytes of a frame still arriving are word from the source too: a row
	 * larger than the link carries in source_timeout is no silence */
	if (s->conn && netconn_last_input(s->conn) > s->last_heard)
		s->last_heard = netconn_last_input(s->conn);
	if (s->conn && !s->paused &&
	    ev_now(loop) - s->last_heard > (double)s->cfg->source_timeout / 1000.0) {
		log_error("nothing heard from the source for %.1f s; disconnecting it",
		          ev_now(loop) - s->last_heard);
		drop_source(s, WIRE_ERR_PROTOCOL, "timeout");
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
	maybe_resume(s);
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
	drop_source(s, 0, NULL);
	ev_break(loop, EVBREAK_ALL);
}

int cmd_sink(int argc, char **argv)
{
	cli_t cli;
	pgf_error_t err;
	sink_t s;
	sink_apply_events_t events = {0};
	reload_t *reload = NULL;
	netconn_callbacks_t cb = {0};
	int rc = EXIT_ERROR;

	error_clear(&err);
	memset(&s, 0, sizeof(s));
	pthread_mutex_init(&s.lock, NULL);
	queue_init(&s.queue);
	if (daemon_load(argc, argv, ROLE_SINK, CHECK_ROLE_SINK, "sink", &cli, &err) != PGF_OK)
		goto out;
	s.cfg = &cli.cfg;
	if (mkdir(cli.cfg.work_dir, 0700) != 0 && errno != EEXIST) {
		error_set(&err, PGF_E_CONFIG, "could not create work_dir \"%s\": %s",
		          cli.cfg.work_dir, strerror(errno));
		goto out;
	}
	if (check_work_dir(cli.cfg.work_dir, &err) != PGF_OK)
		goto out;
	if (cli.cfg.spool_disk_limit > 0) {
		char path[1100];
		snprintf(path, sizeof(path), "%s/receive.spool", cli.cfg.work_dir);
		if (queue_spool_open(&s.queue, path, (size_t)cli.cfg.spool_memory_limit) != 0) {
			error_set(&err, PGF_E_CONFIG,
			          "could not create the receive spool \"%s\": %s", path,
			          strerror(errno));
			error_hint(&err,
			           "Check that work_dir is writable, or set spool_disk_limit = 0.");
			goto out;
		}
	}
	if (daemon_tls(&cli.cfg, TLS_ROLE_SERVER, "listen_address", cli.cfg.listen_address, &s.tls,
	               &err) != PGF_OK)
		goto out;
	s.msg = malloc(sizeof(*s.msg));
	s.decoder = batch_decoder_create((size_t)cli.cfg.max_frame_bytes, &err);
	s.lag = lag_tracker_create(&cli.cfg);
	if (s.msg == NULL || s.decoder == NULL || s.lag == NULL) {
		if (err.message[0] == '\0')
			error_set(&err, PGF_E_MEMORY, "out of memory");
		goto out;
	}
	/* room for what inspect_records finds, so a large batch is queued as is */
	batch_decoder_reserve(s.decoder, sizeof(queue_record_t));
	s.loop = EV_DEFAULT;
	ev_async_init(&s.wakeup, on_wakeup);
	s.wakeup.data = &s;
	ev_async_start(s.loop, &s.wakeup);

	s.history = lag_history_start(&cli.cfg, s.lag, &err);
	if (s.history == NULL)
		goto out;
	if (sink_http_start(&s.http, &cli.cfg, s.lag, s.history, &err) != PGF_OK)
		goto out;
	events.arg = &s;
	events.session_verdict = ev_session_verdict;
	events.applied = ev_applied;
	events.apply_error = ev_apply_error;
	events.session_failed = ev_session_failed;
	events.dr_state = ev_dr_state;
	events.fenced = ev_fenced;
	events.stream_refused = ev_stream_refused;
	s.applier = sink_apply_start(&cli.cfg, &s.queue, &events, &err);
	if (s.applier == NULL)
		goto out;

	cb.arg = &s;
	cb.accept = source_accept;
	cb.frame = source_frame;
	cb.bad_frame = source_bad_frame;
	cb.closed = source_closed;
	s.listener = netconn_listen(s.loop, cli.cfg.listen_address, s.tls, cli.cfg.max_frame_bytes,
	                            &cb, &err);
	if (s.listener == NULL)
		goto out;
	log_info("pgferry sink listening on %s; HTTP on %s; DR database: %s",
	         cli.cfg.listen_address, cli.cfg.http_listen, cli.cfg.dr_conninfo);
	events_record("sink_started", EVENT_INFO, NULL, "the sink started (pgferry %s)",
	              PGFERRY_VERSION);

	ev_timer_init(&s.ping_timer, ping_tick, 0.2, 0.2);
	s.ping_timer.data = &s;
	ev_timer_start(s.loop, &s.ping_timer);
	ev_timer_init(&s.ack_timer, ack_tick, 1.0, 1.0);
	s.ack_timer.data = &s;
	ev_timer_start(s.loop, &s.ack_timer);
	daemon_signals(s.loop, &s.sigint, &s.sigterm, on_signal, &s);
	reload = reload_start(s.loop, &cli, ROLE_SINK);
	ev_run(s.loop, 0);
	rc = 0;
out:
	if (rc != 0)
		log_error_value(LOG_ERROR, &err);
	reload_stop(reload);
	netconn_listener_free(s.listener);
	sink_apply_stop(s.applier); /* commits whole transactions, then joins */
	if (s.stopping) {
		char lsn[32];
		/* the apply thread is gone: what it committed is final */
		log_info("stopped: the DR database holds every transaction up to %s (its "
		         "replication origin and pgferry.progress); a transaction it held only in "
		         "part was rolled back, and the source sends it again",
		         lsn_format(s.applied_lsn, lsn));
	}
	if (s.history)
		events_record("sink_stopped", EVENT_INFO, NULL, "the sink stopped%s",
		              rc == 0 ? "" : " on an error");
	sink_http_stop(&s.http);     /* it reads the history's chart */
	lag_history_stop(s.history); /* writes the last events */
	lag_tracker_free(s.lag);
	batch_decoder_free(s.decoder);
	free(s.msg);
	tls_context_free(s.tls);
	queue_destroy(&s.queue);
	cli_free(&cli);
	return rc;
}
