/*
 * sink_receive.c — the sink's receive path, on its network thread: a
 * verified batch's records are checked once, what is found in each goes
 * into the queue with it (so the apply thread parses nothing again), the
 * lag tracker learns the primary's facts, and reading from the source
 * pauses while too much waits to be applied. A bad batch is rejected whole.
 */
#include "pgferry/batch.h"
#include "pgferry/decoder.h"
#include "pgferry/huge_change.h"
#include "pgferry/lag.h"
#include "pgferry/log.h"
#include "pgferry/netconn.h"
#include "pgferry/queue.h"
#include "pgferry/replication.h"
#include "pgferry/wire.h"

#include "sink_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEARTBEAT_PREFIX "pgferry.heartbeat"
#define SEQUENCES_PREFIX "pgferry.sequences"

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
	sink_drop_source(s, WIRE_ERR_BAD_BATCH, msg);
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

/* One piece of a message larger than a batch: to its file ('p'). The last
 * piece makes the record of the whole message ('h', its file's number). */
static int take_piece(sink_t *s, const batch_view_t *v, uint32_t i, queue_record_t *qr,
                      queue_item_t *it, pgf_error_t *err)
{
	const uint8_t *rec;
	size_t len;
	bool complete, first = !huge_change_open(&s->huge);
	huge_change_t *h = &s->huge;

	batch_view_record(v, i, &rec, &len);
	if (huge_change_add(h, s->session, rec, len, batch_view_record_continues(v, i), &s->pgo,
	                    s->msg, &complete, err) != PGF_OK)
		return PGF_ERR;
	qr->kind = 'p';
	if (first)
		lag_on_primary_wal(s->lag, h->head.wal_end, h->head.send_time);
	if (!complete)
		return PGF_OK;
	qr->kind = 'h';
	qr->type = h->type;
	qr->xid = h->xid;
	qr->wal_start = h->head.wal_start;
	qr->facts = h->facts;
	qr->offset = (uint32_t)h->counter;
	it->last_lsn = qr->wal_start;
	note_message(s, it, h->len);
	return PGF_OK;
}

/*
 * Checks every record of a verified batch, once for the whole sink, and
 * collects the primary's facts for the lag tracker (the newest WAL end with
 * its clock time, and each committed transaction: commit LSN, end LSN,
 * commit time, size). What it finds in each record goes into records[i],
 * with the message's offset in the raw bytes and, for a message that is
 * not a change, what it said (pgoutput_facts_t): the apply thread parses
 * nothing again. The pieces of a message larger than a batch go to a
 * file; the last stands for the whole message.
 */
static int inspect_records(sink_t *s, const batch_view_t *v, queue_item_t *it,
                           queue_record_t *records, pgf_error_t *err)
{
	uint32_t i;
	uint64_t wal_end = 0;
	int64_t send_time = 0;
	bool heard = false;

	for (i = 0; i < v->nrecords; i++) {
		queue_record_t *qr = &records[i];
		const uint8_t *rec;
		size_t len;
		walsender_message_t wm;
		char lsn[LSN_TEXT_LEN];

		if (huge_change_open(&s->huge) || batch_view_record_continues(v, i)) {
			if (take_piece(s, v, i, qr, it, err) != PGF_OK) {
				error_where(err, "record %u of batch %" PRIu64, i + 1, v->seq);
				return PGF_ERR;
			}
			continue;
		}
		batch_view_record(v, i, &rec, &len);
		if (walsender_parse(rec, len, &wm, err) != PGF_OK) {
			error_where(err, "record %u of batch %" PRIu64, i + 1, v->seq);
			return PGF_ERR;
		}
		/* the tracker keeps the newest of each: told once per batch, it
		 * reads its clocks and takes its lock once, not per message */
		if (wm.wal_end > wal_end)
			wal_end = wm.wal_end;
		if (!heard || wm.send_time > send_time)
			send_time = wm.send_time;
		heard = true;
		qr->kind = wm.kind;
		if (wm.kind != 'w') {
			qr->wal_end = wm.wal_end;
			continue;
		}
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
		pgoutput_facts_set(s->msg, wm.payload, &qr->facts);
		it->last_lsn = wm.wal_start;
		note_message(s, it, wm.payload_len);
	}
	if (heard)
		lag_on_primary_wal(s->lag, wal_end, send_time);
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
void sink_maybe_resume(sink_t *s)
{
	if (s->paused && s->conn && !s->awaiting_verdict && !queue_over(s, 2)) {
		netconn_pause(s->conn, false);
		s->paused = false;
		/* the silence while paused was ours, not the source's */
		s->last_heard = ev_now(s->loop);
	}
}

void sink_on_batch(sink_t *s, const uint8_t *payload, size_t len)
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
	if (view.seq == 1)
		log_step("first batch received");
	lag_count_batch(s->lag, len, view.raw_len);
	s->expected_seq = view.seq + 1;
	queue_push(&s->queue, it);
	/* with the DR group's commits (group.c): a batch's time to the DR side */
	log_debug("batch %llu queued: %u records up to %X/%X", (unsigned long long)view.seq,
	          view.nrecords, (unsigned)(last_lsn >> 32), (unsigned)last_lsn);
	/* a stream started before the welcome resends what was applied */
	if (last_lsn > s->received_lsn)
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
