/*
 * source_link.c — the source's side of the link to the sink: the hello with
 * this primary's identity, the welcome that says where to resume (only then
 * is the slot created and the stream started), the sink's acknowledgements
 * (what it received and what the DR database committed), its pings, and its
 * errors. Uses the source's state (source_internal.h) and transport/.
 */
#include "source_internal.h"

#include "pgferry/daemon.h"
#include "pgferry/decoder.h"
#include "pgferry/log.h"
#include "pgferry/wire.h"

#include <stdio.h>

/* The sink's welcome: it accepted this primary's identity and says where
 * to resume. Only now is the slot made (a source pointed at the wrong
 * primary leaves none there) and the stream started. */
static int on_welcome(source_t *s, const uint8_t *payload, size_t len, pgf_error_t *err)
{
	wire_welcome_t w;
	pgf_error_t warning;
	bool created;
	int rc;
	uint64_t consistent, from;
	char lsn[LSN_TEXT_LEN];

	if (s->state != SOURCE_HELLO || wire_decode_welcome(payload, len, &w, err) != PGF_OK) {
		if (err->message[0] == '\0')
			error_set(err, PGF_E_PROTOCOL, "unexpected welcome from the sink");
		return PGF_ERR;
	}
	log_step("welcome received");
	log_info("the sink resumes at %s", lsn_format(w.resume_lsn, lsn));
	if (s->early && !(w.capabilities & WIRE_CAP_DELTA)) {
		error_set(err, PGF_E_PROTOCOL,
		          "the sink held batches coded as differences but does not read them");
		goto failed;
	}
	if (!s->early) {
		batch_encoder_reset(s->encoder);
		/* an older sink takes the records as the walsender sent them */
		batch_encoder_set_delta(s->encoder, (w.capabilities & WIRE_CAP_DELTA) != 0);
		s->batch_seq = 0;
		if (replication_ensure_slot(&s->repl, s->cfg->slot_name, false, &created,
		                            &consistent, err) != PGF_OK)
			goto failed;
		log_step("slot ensured");
		if (created)
			log_info("created replication slot \"%s\" at %s", s->cfg->slot_name,
			         lsn_format(consistent, lsn));
	}
	error_clear(&warning);
	rc = source_start_streaming(s, w.resume_lsn, &from, err, &warning);
	if (warning.message[0] != '\0')
		log_error_value(LOG_WARNING, &warning);
	if (rc != PGF_OK)
		goto failed;
	log_info("streaming slot \"%s\" from %s (pgoutput protocol %d)%s", s->cfg->slot_name,
	         lsn_format(from, lsn), s->proto_version,
	         s->early ? ", started before the welcome" : "");
	return PGF_OK;
failed:
	source_note_error(s, err);
	return PGF_ERR;
}

/* Whether this session streams before the welcome, saving the round trips
 * of the TLS handshake and of the welcome: only with TLS, unless the last
 * handshake showed a sink that does not hold what follows the hello until
 * the DR side accepted the stream (its ALPN answer, checked again when this
 * handshake is done: sink_connected), and only from a slot that exists (a
 * new one is made once the sink accepted this primary). The stream starts
 * where the slot stands, at or before the DR side's progress: the sink
 * skips what it committed already, and checks the start and the flush
 * position, which the hello carries, against its progress before it reads
 * a batch. A failed query here is asked again, and reported, on the usual
 * way after the welcome. */
static bool early_start_point(source_t *s)
{
	bool exists = false;
	uint64_t confirmed = 0;
	pgf_error_t err;

	/* after a failed session, wait for the welcome: a stream that fails
	 * again at once would close the link before the sink, holding what
	 * follows the hello, read the facts that carry the error */
	if (s->sink_holds_no_early || s->last_error[0] != '\0')
		return false;
	error_clear(&err);
	if (replication_slot_position(&s->repl, s->cfg->slot_name, &exists, &confirmed, &err) !=
	            PGF_OK ||
	    !exists || confirmed == 0 ||
	    replication_flush_position(&s->repl, &s->primary_flush_lsn, &err) != PGF_OK)
		return false;
	s->early_from = confirmed;
	return true;
}

/* The hello, first on the link (queued until the handshake is done). */
static int send_hello(source_t *s, netconn_t *c, bool early, pgf_error_t *err)
{
	wire_hello_t hello = {0};
	buf_t b;
	int rc;

	hello.protocol_version = WIRE_PROTOCOL_VERSION;
	hello.system_identifier = s->repl.system_identifier;
	hello.timeline = s->repl.timeline;
	hello.proto_version = (uint8_t)s->proto_version;
	snprintf(hello.database, sizeof(hello.database), "%s", s->repl.dbname);
	snprintf(hello.slot, sizeof(hello.slot), "%s", s->cfg->slot_name);
	hello.source_time = daemon_clock_now(s->cfg);
	hello.capabilities = WIRE_CAP_PRIMARY_FACTS | WIRE_CAP_DELTA;
	if (early) {
		hello.capabilities |= WIRE_CAP_EARLY_STREAM;
		hello.stream_from = s->early_from;
		hello.primary_flush = s->primary_flush_lsn;
	}
	buf_init(&b);
	wire_encode_hello(&hello, &b);
	rc = netconn_send(c, WIRE_HELLO, b.data, b.len, err);
	buf_free(&b);
	if (rc == PGF_OK)
		s->state = SOURCE_HELLO;
	return rc;
}

/* Streams from the slot's position before the welcome, the hello first;
 * on failure the session is reported and closed. */
static int stream_early(source_t *s, netconn_t *c)
{
	pgf_error_t err, warning;

	error_clear(&err);
	error_clear(&warning);
	if (send_hello(s, c, true, &err) != PGF_OK)
		goto failed;
	if (source_stream_early(s, &err, &warning) != PGF_OK) {
		source_note_error(s, &err);
		goto failed;
	}
	if (warning.message[0] != '\0')
		log_error_value(LOG_WARNING, &warning);
	return PGF_OK;
failed:
	source_report_failure(s, &err);
	source_session_close(s, "could not start the stream");
	return PGF_ERR;
}

/* TCP is up and the TLS handshake under way: a session that may stream
 * before the welcome starts now, its hello, facts and batches queued until
 * the handshake is done (and dropped if it fails: nothing leaves this host
 * before the sink's certificate is verified), so the walsender decodes
 * while the handshake crosses the link. Not before TCP is up: a sink that
 * is down would cost the primary a decoding start at every retry. */
static void sink_handshaking(netconn_t *c, void *arg)
{
	source_t *s = arg;

	if (early_start_point(s) && stream_early(s, c) == PGF_OK)
		log_step("streaming before the TLS handshake is done");
}

static void sink_connected(netconn_t *c, void *arg)
{
	source_t *s = arg;
	pgf_error_t err;
	bool holds = netconn_early_stream(c);

	log_info("connected to the sink at %s (%s)", s->cfg->sink_address, netconn_peer_name(c));
	error_clear(&err);
	if (s->early && !holds) {
		/* a sink older than the early stream would take the batches
		 * queued behind the hello before it accepted this primary */
		s->sink_holds_no_early = true;
		error_set(&err, PGF_E_PROTOCOL,
		          "the sink at %s does not hold a stream before its welcome (an older "
		          "pgferry sink); this session ends before anything is sent, and the next "
		          "waits for the welcome",
		          s->cfg->sink_address);
		error_hint(&err, "Upgrade the sink to this source's version; until then each "
		                 "session waits one round trip more.");
		source_report_failure(s, &err);
		source_session_close(s, "the sink does not hold an early stream");
		return;
	}
	s->sink_holds_no_early = !holds;
	if (s->early) {
		log_step("the hello and the stream behind it go out");
		return;
	}
	/* the handshake ended within its first step (a sink close by), or
	 * this one is the first to show a sink that holds the stream */
	if (holds && early_start_point(s)) {
		if (stream_early(s, c) == PGF_OK)
			log_step("streaming before the welcome");
		return;
	}
	if (send_hello(s, c, false, &err) != PGF_OK) {
		source_report_failure(s, &err);
		source_session_close(s, "could not greet the sink");
		return;
	}
	log_step("hello sent");
}

static void on_ack(source_t *s, const wire_ack_t *ack)
{
	if (ack->received_lsn > s->sink_received_lsn)
		s->sink_received_lsn = ack->received_lsn;
	if (ack->applied_lsn > s->sink_applied_lsn)
		s->sink_applied_lsn = ack->applied_lsn;
	rpo_guard_on_applied(s->guard, s->sink_applied_lsn);
	/* confirm promptly: the slot may release WAL up to what the DR side has */
	if (s->sink_applied_lsn != s->last_reported_flush)
		source_send_status(s, false);
}

static void sink_frame(netconn_t *c, void *arg, uint8_t type, const uint8_t *payload, size_t len)
{
	source_t *s = arg;
	pgf_error_t err;

	s->sink_heard = ev_now(s->loop);
	error_clear(&err);
	switch (type) {
	case WIRE_WELCOME:
		if (on_welcome(s, payload, len, &err) != PGF_OK)
			break;
		return;
	case WIRE_ACK: {
		wire_ack_t ack;
		if (wire_decode_ack(payload, len, &ack, &err) != PGF_OK)
			break;
		on_ack(s, &ack);
		/* the link drained: read the stream again */
		if (netconn_queued_bytes(c) <= backpressure_limit(s) / 2)
			source_repl_pause(s, false);
		return;
	}
	case WIRE_PING: {
		if (daemon_answer_ping(c, s->cfg, payload, len, &err) != PGF_OK)
			break;
		/* the link drained: read the stream again */
		if (netconn_queued_bytes(c) <= backpressure_limit(s) / 2)
			source_repl_pause(s, false);
		return;
	}
	case WIRE_ERROR: {
		wire_error_t e;
		if (wire_decode_error(payload, len, &e, &err) == PGF_OK) {
			error_set(&err, PGF_E_PROTOCOL, "the sink refused the stream: %s",
			          e.message);
			if (e.code == WIRE_ERR_IDENTITY || e.code == WIRE_ERR_FENCED)
				error_hint(&err,
				           "The sink follows another primary or was promoted; "
				           "this source must not feed it.");
		}
		break;
	}
	default:
		error_set(&err, PGF_E_PROTOCOL, "unexpected frame type %u from the sink", type);
		break;
	}
	source_report_failure(s, &err);
	source_session_close(s, "the sink session failed");
}

static void sink_writable(netconn_t *c, void *arg)
{
	source_t *s = arg;

	if (netconn_queued_bytes(c) <= backpressure_limit(s) / 2)
		source_repl_pause(s, false);
}

static void sink_closed(netconn_t *c, void *arg, const pgf_error_t *err)
{
	source_t *s = arg;

	(void)c;
	if (err && err->message[0])
		source_report_failure(s, err);
	s->sink = NULL; /* netconn frees itself after this callback */
	source_session_close(s, "the sink connection closed");
}

void source_link_callbacks(source_t *s, netconn_callbacks_t *cb)
{
	cb->arg = s;
	cb->handshaking = sink_handshaking;
	cb->connected = sink_connected;
	cb->frame = sink_frame;
	cb->writable = sink_writable;
	cb->closed = sink_closed;
}
