/*
 * sink_internal.h — the state of `pgferry sink` shared by its files, private
 * to relay/sink: sink.c (the network thread's loop, the source connection,
 * cmd_sink), sink_receive.c (the receive path) and sink_events.c (news from
 * the apply thread).
 */
#ifndef PGFERRY_SINK_INTERNAL_H
#define PGFERRY_SINK_INTERNAL_H

#include "pgferry/batch.h"
#include "pgferry/config.h"
#include "pgferry/decoder.h"
#include "pgferry/http.h"
#include "pgferry/huge_change.h"
#include "pgferry/lag.h"
#include "pgferry/lag_history.h"
#include "pgferry/netconn.h"
#include "pgferry/queue.h"
#include "pgferry/sink_apply.h"
#include "pgferry/tls.h"

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

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
	bool awaiting_verdict; /* hello taken, reading held until the DR side's verdict */
	bool early;            /* the source streams before the welcome (WIRE_CAP_EARLY_STREAM) */
	uint64_t early_from;   /* from where: its slot's confirmed position */
	uint64_t early_flush;  /* the primary's flush position then */
	uint64_t received_at_welcome; /* where this session resumed */
	bool first_ack_sent;          /* its first ack past that (its step is logged) */
	bool delta;  /* the source codes its batches as differences (WIRE_CAP_DELTA) */
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
	huge_change_t huge;   /* a message arriving in pieces, put together on disk */

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

/* sink.c: closes the source connection (code and why go to the source) */
void sink_drop_source(sink_t *s, uint16_t code, const char *why);
/* sink_receive.c: one WIRE_BATCH frame; reading resumes once apply caught up */
void sink_on_batch(sink_t *s, const uint8_t *payload, size_t len);
void sink_maybe_resume(sink_t *s);
/* sink_events.c: the callbacks the apply thread reports through */
void sink_events_fill(sink_t *s, sink_apply_events_t *events);

#endif
