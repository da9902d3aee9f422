/*
 * source_stream.c — the source's walsender stream: CopyData messages read
 * from the slot are cut into batches (batch_max_bytes / batch_max_delay),
 * compressed, checksummed and shipped to the sink; the walsender is told
 * flush = what the sink reports committed on the DR database, never more
 * (standby status). Reading pauses while the link to the sink holds more
 * than backpressure_limit: the slot keeps the rest. Uses the source's state
 * (source_internal.h) and transport/.
 */
#include "source_internal.h"

#include "pgferry/decoder.h"
#include "pgferry/log.h"
#include "pgferry/wire.h"

#include <stdio.h>
#include <string.h>

/* The walsender reads only flushed WAL, so its keepalive's WAL end is a
 * flush position this side saw itself: the sink may let that keepalive
 * justify idle progress up to it (a shutting-down primary waits for that
 * confirmation, and its plain connections are gone by then). No time, no
 * position: it proves nothing about commits. */
static int send_flush_fact(source_t *s, pgf_error_t *err)
{
	wire_primary_facts_t f;
	buf_t b;
	int rc;

	memset(&f, 0, sizeof(f));
	f.flush_lsn = s->primary_flush_lsn;
	snprintf(f.source_error, sizeof(f.source_error), "%s", s->last_error);
	buf_init(&b);
	wire_encode_primary_facts(&f, &b);
	rc = netconn_send(s->sink, WIRE_PRIMARY_FACTS, b.data, b.len, err);
	buf_free(&b);
	return rc;
}

/* At most one flush fact per FLUSH_FACT_GAP, the newest: the walsender
 * sends a keepalive each time it waits for WAL while the DR side has not
 * written all it sent, which under a steady load of small transactions
 * across a long link is after nearly every transaction (2,300 a second
 * at 3,000 transactions a second), and each fact was a frame of its own
 * through TLS, the link and the sink's queue. The batches carry the
 * keepalives as well; a fact only bounds idle progress, which a fact 10
 * ms late bounds lower, never higher. After a quiet spell it goes at once. */
#define FLUSH_FACT_GAP 0.010

static int ship_flush_fact(source_t *s, pgf_error_t *err)
{
	ev_tstamp now;

	if (s->sink == NULL || s->state != SOURCE_STREAMING ||
	    s->primary_flush_lsn <= s->flush_fact_sent)
		return PGF_OK;
	now = ev_now(s->loop);
	if (s->flush_fact_at > 0 && now - s->flush_fact_at < FLUSH_FACT_GAP) {
		if (!ev_is_active(&s->fact_timer)) {
			ev_timer_set(&s->fact_timer, s->flush_fact_at + FLUSH_FACT_GAP - now, 0.0);
			ev_timer_start(s->loop, &s->fact_timer);
		}
		return PGF_OK;
	}
	if (send_flush_fact(s, err) != PGF_OK)
		return PGF_ERR;
	s->flush_fact_sent = s->primary_flush_lsn;
	s->flush_fact_at = now;
	s->stats.flush_facts++;
	return PGF_OK;
}

void source_fact_due(struct ev_loop *loop, ev_timer *w, int revents)
{
	source_t *s = w->data;
	pgf_error_t err;

	(void)loop;
	(void)revents;
	error_clear(&err);
	if (ship_flush_fact(s, &err) != PGF_OK)
		log_error_value(LOG_WARNING, &err);
}

/* The last error, on the same kind of fact, to a sink that reads facts
 * (source_note_error). */
void source_ship_error(source_t *s)
{
	pgf_error_t err;

	if (s->sink == NULL || (s->state != SOURCE_HELLO && s->state != SOURCE_STREAMING))
		return;
	error_clear(&err);
	if (send_flush_fact(s, &err) != PGF_OK)
		log_debug("the error did not reach the sink: %s", err.message);
}

/* ---- reporting to the walsender ------------------------------------------- */

/* Standby status: write = what the sink holds, flush = what the DR database
 * committed. The slot's confirmed_flush_lsn follows flush only. */
void source_send_status(source_t *s, bool reply_requested)
{
	pgf_error_t err;

	uint64_t flush = s->sink_applied_lsn, write = s->sink_received_lsn;

	if (!s->repl_open || s->state != SOURCE_STREAMING)
		return;
	/* never confirm what the primary has not even flushed: a sink that says
	 * so was misled (the slot would release WAL past a hole) */
	if (flush > s->primary_flush_lsn)
		flush = s->primary_flush_lsn;
	if (write > s->primary_flush_lsn)
		write = s->primary_flush_lsn;
	error_clear(&err);
	if (replication_send_status(&s->repl, write, flush, flush, reply_requested, &err) !=
	    PGF_OK) {
		source_report_failure(s, &err);
		source_note_error(s, &err);
		source_session_close(s, "the primary connection failed");
		return;
	}
	s->last_reported_flush = s->sink_applied_lsn;
}

void source_status_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	source_t *s = w->data;

	(void)loop;
	(void)revents;
	/* asking for a reply makes the primary send a keepalive: its WAL end
	 * and clock reach the sink even when nothing is written */
	source_send_status(s, true);
}

/* ---- batches ---------------------------------------------------------------- */

void source_ship_batch(source_t *s)
{
	pgf_error_t err;
	buf_t frame;
	uint64_t raw = batch_encoder_bytes(s->encoder);

	if (s->batch_timer_armed) {
		ev_timer_stop(s->loop, &s->batch_timer);
		s->batch_timer_armed = false;
	}
	ship_rule_shipped(&s->ship);
	if (batch_encoder_records(s->encoder) == 0 || s->sink == NULL)
		return;
	buf_init(&frame);
	error_clear(&err);
	if (batch_encoder_finish(s->encoder, ++s->batch_seq, &frame, &err) != PGF_OK ||
	    netconn_send(s->sink, WIRE_BATCH, frame.data, frame.len, &err) != PGF_OK) {
		buf_free(&frame);
		source_report_failure(s, &err);
		source_session_close(s, "could not ship a batch");
		return;
	}
	if (s->batch_seq == 1)
		log_step("first batch sent");
	s->stats.batches++;
	s->stats.raw_bytes += raw;
	s->stats.sent_bytes += frame.len;
	buf_free(&frame);
}

void source_batch_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	source_t *s = w->data;

	(void)loop;
	(void)revents;
	s->batch_timer_armed = false;
	source_ship_batch(s);
}

/* ---- the replication stream -------------------------------------------------- */

void source_repl_pause(source_t *s, bool pause)
{
	if (!s->repl_open)
		return;
	if (pause)
		ev_io_stop(s->loop, &s->repl_watcher);
	else if (!ev_is_active(&s->repl_watcher) && !ev_is_active(&s->round_timer))
		ev_io_start(s->loop, &s->repl_watcher); /* a round waits for its timer */
}

/*
 * Adds one walsender message to the batch. A message larger than
 * batch_max_bytes goes in pieces of that size, each in a batch of its own
 * (docs/PROTOCOL.md): no frame holds a whole huge row, and the sink can put
 * the pieces on disk as they come. The source still holds the message whole
 * (libpq hands it so) and queues its compressed pieces for the link.
 */
static int batch_message(source_t *s, const uint8_t *data, size_t len, uint64_t lsn,
                         pgf_error_t *err)
{
	size_t piece = (size_t)s->cfg->batch_max_bytes, off = 0;

	if (len <= piece)
		return batch_encoder_add(s->encoder, data, len, lsn, err);
	source_ship_batch(s);
	if (s->sink == NULL)
		return PGF_OK;
	while (off < len) {
		size_t n = len - off < piece ? len - off : piece;
		if (batch_encoder_add_piece(s->encoder, data + off, n, lsn, off + n < len, err) !=
		    PGF_OK)
			return PGF_ERR;
		off += n;
		if (off < len)
			source_ship_batch(s);
		if (s->sink == NULL)
			return PGF_OK; /* the session closed: data is gone with it */
	}
	return PGF_OK;
}

/* A round of at most this many messages that emptied the socket is a
 * trickle: a backlog is read in rounds of thousands. */
#define READ_ROUND_SMALL 64

static void repl_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	source_t *s = w->data;
	pgf_error_t err;
	int n = 0;
	bool drained = false, at_once = false;

	(void)loop;
	(void)revents;
	error_clear(&err);
	/* bounded per wake-up so the sink link and the timers get their turn */
	while (n++ < 10000) {
		const uint8_t *data;
		size_t len;
		walsender_message_t wm;
		int r = replication_read(&s->repl, &data, &len, &err);

		if (r == 0) {
			drained = true;
			break;
		}
		if (r == 2) {
			char lsn[LSN_TEXT_LEN];
			/* the primary ended the stream: it is shutting down after
			 * sending everything; tell the sink, it reports it */
			source_ship_batch(s);
			log_info("the primary ended the replication stream cleanly at %s",
			         lsn_format(s->last_record_lsn, lsn));
			if (s->sink) {
				buf_t b;
				wire_end_of_stream_t eos = {s->last_record_lsn};
				buf_init(&b);
				wire_encode_end_of_stream(&eos, &b);
				netconn_send(s->sink, WIRE_END_OF_STREAM, b.data, b.len, &err);
				buf_free(&b);
			}
			source_session_close(s, "the primary ended the stream");
			return;
		}
		if (r < 0) {
			source_report_failure(s, &err);
			source_note_error(s, &err);
			source_session_close(s, "the replication connection failed");
			return;
		}
		if (walsender_parse(data, len, &wm, &err) != PGF_OK) {
			source_report_failure(s, &err);
			source_session_close(s, "the primary sent a malformed message");
			return;
		}
		s->stats.messages++;
		s->stats.message_bytes += len;
		if (wm.kind == 'w') {
			if (!s->first_data_seen) {
				s->first_data_seen = true;
				log_step("first XLogData");
			}
			s->last_record_lsn = wm.wal_start;
			/* the stream delivers again: past what it delivered before
			 * the error, since a transaction the sink has not confirmed
			 * comes again before the change that fails */
			if (wm.wal_start > s->error_frontier)
				s->last_error[0] = '\0';
		}
		/* the walsender reads only flushed WAL */
		if (wm.wal_end > s->primary_flush_lsn)
			s->primary_flush_lsn = wm.wal_end;
		if (batch_message(s, data, len, wm.kind == 'w' ? wm.wal_start : wm.wal_end, &err) !=
		    PGF_OK) {
			source_report_failure(s, &err);
			if (err.code == PGF_E_PROTOCOL && s->sink != NULL) {
				/* the stream is stuck here until the setting is raised: the
				 * sink shows it in its status, metrics and verdict */
				char why[1100], l[LSN_TEXT_LEN];
				netconn_t *c = s->sink;
				/* docs/PROTOCOL.md: the message starts with the change's LSN */
				snprintf(why, sizeof(why), "%s %s. %s",
				         lsn_format(wm.kind == 'w' ? wm.wal_start : wm.wal_end, l),
				         err.message, err.hint);
				s->sink = NULL;
				netconn_close(c, WIRE_ERR_TOO_LARGE, why);
			}
			source_session_close(s, "could not batch a message");
			return;
		}
		ship_rule_note_message(&s->ship, &wm);
		if (wm.kind == 'k' && ship_flush_fact(s, &err) != PGF_OK)
			log_error_value(LOG_WARNING, &err);
		if (wm.kind == 'k' && wm.reply_requested)
			source_send_status(s, false);
		if ((int64_t)batch_encoder_bytes(s->encoder) >= s->cfg->batch_max_bytes)
			source_ship_batch(s);
		else if (!s->batch_timer_armed) {
			ev_timer_set(&s->batch_timer, (double)s->cfg->batch_max_delay / 1000.0,
			             0.0);
			ev_timer_start(s->loop, &s->batch_timer);
			s->batch_timer_armed = true;
		}
		if (s->sink == NULL)
			return;
		/* the sink (or the link) is slower than the primary: stop reading
		 * and let the slot hold the rest */
		if (netconn_queued_bytes(s->sink) > backpressure_limit(s)) {
			log_debug("reading the stream pauses: %zu bytes wait for the link",
			          netconn_queued_bytes(s->sink));
			source_repl_pause(s, true);
			return;
		}
	}
	/* nothing more to read now: a whole transaction need not wait for
	 * batch_max_delay when no backlog is known (ship_rule.h) */
	if (drained && ship_rule_at_once(&s->ship) && batch_encoder_records(s->encoder) > 0) {
		s->stats.batches_at_once++;
		source_ship_batch(s);
		at_once = true;
	}
	/* a trickle (small transactions committed one by one) would wake this
	 * process for each message the walsender sends, and make a batch, a
	 * frame and a DR transaction of each transaction: once a small round
	 * shipped whole transactions at once (no backlog known), the next
	 * waits read_round_delay and reads what came meanwhile at once (the
	 * socket holds it; the walsender does not wait). A transaction begun
	 * is read on at once; a backlog, whose batches fill, without pauses. */
	if (at_once && n <= READ_ROUND_SMALL && s->repl_open && s->cfg->read_round_delay > 0 &&
	    s->sink != NULL) {
		ev_io_stop(s->loop, &s->repl_watcher);
		ev_timer_set(&s->round_timer, (double)s->cfg->read_round_delay / 1000.0, 0.0);
		ev_timer_start(s->loop, &s->round_timer);
	}
}

void source_round_due(struct ev_loop *loop, ev_timer *w, int revents)
{
	source_t *s = w->data;

	(void)loop;
	(void)revents;
	/* the link's backpressure restarts reading itself (sink_writable) */
	if (s->sink != NULL && netconn_queued_bytes(s->sink) > backpressure_limit(s))
		return;
	source_repl_pause(s, false);
}

/* A first fact, and the last error, at once: a walsender that fails on its
 * first change ends the session within milliseconds, before any heartbeat
 * (a replication connection takes plain SQL before START_REPLICATION). */
static void ship_first_facts(source_t *s, pgf_error_t *warning)
{
	double sent = rpo_guard_clock();
	PGresult *res = PQexec(s->repl.conn, source_facts_sql);

	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		source_ship_facts(s, res, true, sent, warning);
	PQclear(res);
	log_step("first primary facts shipped");
}

/* START_REPLICATION at start_lsn, and the loop's watch on the stream. */
static int open_stream(source_t *s, uint64_t start_lsn, pgf_error_t *err)
{
	replication_options_t opts = {0};

	opts.slot_name = s->cfg->slot_name;
	opts.publication = s->cfg->publication;
	opts.proto_version = s->proto_version;
	opts.streaming = true;
	opts.messages = true;
	/* prepared transactions are decoded when decided (see README) */
	opts.two_phase = false;
	if (replication_start(&s->repl, start_lsn, &opts, err) != PGF_OK)
		return PGF_ERR;
	log_step("START_REPLICATION done");
	s->first_data_seen = false;
	ev_io_init(&s->repl_watcher, repl_readable, replication_socket(&s->repl), EV_READ);
	s->repl_watcher.data = s;
	ev_io_start(s->loop, &s->repl_watcher);
	/* data may already be buffered by libpq */
	ev_feed_event(s->loop, &s->repl_watcher, EV_READ);
	return PGF_OK;
}

int source_stream_early(source_t *s, pgf_error_t *err, pgf_error_t *warning)
{
	ship_first_facts(s, warning);
	batch_encoder_reset(s->encoder);
	/* announced in the hello; a sink that holds early batches reads it */
	batch_encoder_set_delta(s->encoder, true);
	s->batch_seq = 0;
	if (open_stream(s, s->early_from, err) != PGF_OK)
		return PGF_ERR;
	s->early = true;
	return PGF_OK;
}

int source_start_streaming(source_t *s, uint64_t resume_lsn, uint64_t *from, pgf_error_t *err,
                           pgf_error_t *warning)
{
	bool exists = true;
	uint64_t confirmed = s->early_from;
	char a[LSN_TEXT_LEN], b[LSN_TEXT_LEN];

	/* streaming before the welcome: the slot's position and the flush
	 * position were read before START_REPLICATION (the sink checked them
	 * too, before it read a batch) */
	if (!s->early && replication_slot_position(&s->repl, s->cfg->slot_name, &exists, &confirmed,
	                                           err) != PGF_OK)
		return PGF_ERR;
	if (!exists)
		return error_set(err, PGF_E_CONFIG, "slot \"%s\" disappeared", s->cfg->slot_name);
	log_step("slot position read");
	/* guarantee 1 seen from here: if the slot already confirmed more than
	 * the DR side committed, the transactions in between are gone */
	if (resume_lsn != 0 && confirmed > resume_lsn) {
		error_set(
		        err, PGF_E_IDENTITY,
		        "slot \"%s\" is ahead of the DR database: it confirmed %s but the DR side "
		        "committed only up to %s",
		        s->cfg->slot_name, lsn_format(confirmed, a), lsn_format(resume_lsn, b));
		error_detail(err, "Transactions between these positions were released by the slot "
		                  "and cannot be streamed again.");
		error_hint(err, "Rebuild the DR copy (pgferry clone), or check that this sink and "
		                "slot belong together.");
		return PGF_ERR;
	}
	/* the sink's progress can only be a position the primary wrote: one
	 * beyond its flush position was recorded from a forged or misdirected
	 * stream, and streaming from there would skip what lies between */
	if (!s->early && replication_flush_position(&s->repl, &s->primary_flush_lsn, err) != PGF_OK)
		return PGF_ERR;
	log_step("the primary's flush position read");
	ship_rule_reset(&s->ship);
	ship_rule_note_primary_flush(&s->ship, s->primary_flush_lsn);
	if (resume_lsn > s->primary_flush_lsn) {
		error_set(err, PGF_E_IDENTITY,
		          "the sink resumes at %s, beyond the primary's WAL flush position %s",
		          lsn_format(resume_lsn, a), lsn_format(s->primary_flush_lsn, b));
		error_detail(err,
		             "The DR database recorded progress this primary never wrote (a "
		             "forged or misdirected stream, or another primary's). Streaming "
		             "from there would skip every transaction in between, so nothing is "
		             "streamed and slot \"%s\" is not confirmed past %s.",
		             s->cfg->slot_name, lsn_format(confirmed, b));
		error_hint(err,
		           "Check which primary this DR database follows and who else "
		           "holds a certificate the sink accepts (tls_peer_name); then rebuild "
		           "the DR copy with pgferry clone.");
		return PGF_ERR;
	}
	if (!s->early) {
		ship_first_facts(s, warning);
		if (open_stream(s, resume_lsn, err) != PGF_OK)
			return PGF_ERR;
	}
	*from = s->early ? s->early_from : resume_lsn ? resume_lsn : confirmed;
	s->sink_applied_lsn = resume_lsn;
	s->sink_received_lsn = resume_lsn;
	s->flush_fact_sent = 0;
	s->flush_fact_at = 0;
	s->state = SOURCE_STREAMING;
	s->streamed_once = true;
	s->streaming_since = ev_now(s->loop);
	ev_timer_again(s->loop, &s->status_timer);
	return PGF_OK;
}
