/*
 * source_internal.h — the state of `pgferry source`, shared by its files
 * only: source.c (sessions, signals, cmd_source), source_heartbeat.c (the
 * plain connection to the primary), source_stream.c (the walsender stream,
 * batches, standby status) and source_link.c (the link to the sink). One
 * libev loop runs all of it, so nothing here is locked.
 */
#ifndef PGFERRY_SOURCE_INTERNAL_H
#define PGFERRY_SOURCE_INTERNAL_H

#include "pgferry/batch.h"
#include "pgferry/config.h"
#include "pgferry/netconn.h"
#include "pgferry/replication.h"
#include "pgferry/rpo_guard.h"
#include "pgferry/ship_rule.h"
#include "pgferry/source_http.h"
#include "pgferry/tls.h"

#include <ev.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum {
	SOURCE_IDLE,      /* waiting for the reconnect timer */
	SOURCE_HELLO,     /* connected to the sink, hello sent, waiting for welcome */
	SOURCE_STREAMING, /* replication running */
} source_state_t;

typedef struct source {
	config_t *cfg;
	struct ev_loop *loop;
	source_state_t state;

	replication_conn_t repl;
	bool repl_open;
	ev_io repl_watcher;
	int proto_version;

	PGconn *heartbeat_conn;
	ev_io heartbeat_watcher;
	ev_timer heartbeat_timer;
	ev_timer sequence_timer;
	bool heartbeat_busy; /* a query is running on heartbeat_conn */
	int aux_kind;        /* which (AUX_*) */
	bool aux_ok;         /* it succeeded */
	bool seq_due;        /* a sequence read waits for the connection */
	char *seq_candidate; /* sequence values read, not shipped yet */
	char *seq_last;      /* sequence values last shipped */
	ev_timer slot_timer;
	bool slot_due;           /* a slot check waits for the connection */
	bool slot_known;         /* the slot's retention below was read */
	int64_t slot_retained;   /* bytes; -1: no restart_lsn */
	int64_t slot_safe;       /* safe_wal_size; -1: NULL (unlimited) */
	uint8_t slot_status;     /* WIRE_SLOT_WAL_* */
	bool slot_warned;        /* the over-the-limit warning was logged */
	bool slot_status_warned; /* the unreserved/lost warning was logged */

	netconn_t *sink;
	ev_tstamp sink_heard; /* when the sink last sent anything (it pings) */
	ev_timer watch_timer;
	tls_context_t *tls;
	ev_timer reconnect_timer;
	int backoff_ms;

	batch_encoder_t *encoder;
	ev_timer batch_timer;
	bool batch_timer_armed;
	ev_timer round_timer; /* reading waits for the next round (source_stream.c) */
	uint64_t batch_seq;
	ship_rule_t ship; /* whether a batch ships before batch_max_delay */

	ev_timer status_timer;
	uint64_t sink_received_lsn;
	uint64_t sink_applied_lsn;
	/* the primary's WAL flush position as far as this side knows it (its
	 * own connections only): nothing past it is confirmed */
	uint64_t primary_flush_lsn;
	char last_error[512];      /* the last session error, shipped in PRIMARY_FACTS */
	char last_cause[512];      /* the last session failure's message, for the log */
	bool same_cause;           /* the last failure repeated the one before */
	ev_tstamp streaming_since; /* when this session started streaming (0: not yet) */
	uint64_t flush_fact_sent;  /* the flush position last sent on its own */
	ev_tstamp flush_fact_at;   /* when (source_stream.c: at most one per FLUSH_FACT_GAP) */
	ev_timer fact_timer;       /* a newer one waits for its turn */
	uint64_t last_reported_flush;
	uint64_t last_record_lsn;
	/* the furthest record delivered when last_error was noted: records up
	 * to it come again on the next session and prove nothing mended */
	uint64_t error_frontier;
	bool first_data_seen; /* this session's first XLogData came (its step is logged) */
	/* streaming before the welcome (source_link.c), from early_from: the
	 * slot's confirmed position when it started */
	bool early;
	uint64_t early_from;
	/* the last TLS handshake showed a sink that does not hold a stream
	 * before its welcome: no session streams early until one does */
	bool sink_holds_no_early;

	rpo_guard_t *guard; /* rpo_guard = on (rpo_guard.h), else NULL */
	ev_timer guard_timer;
	double aux_sent; /* when the query in flight on heartbeat_conn was sent */

	ev_signal sigint, sigterm;
	bool streamed_once; /* a session reached streaming since the start */
	bool setup_refused; /* check_primary found a setup that would lose data */
	int exit_code;

	source_stats_t stats; /* for source_http, published by watch_tick */
	source_http_t *http;
} source_t;

static inline uint64_t backpressure_limit(const source_t *s)
{
	return 4 * (uint64_t)s->cfg->batch_max_bytes;
}

/* source.c: a session's failure, logged once per cause; the last error,
 * shipped in the next primary facts; the end of a session (a new one
 * follows after a backoff) */
void source_report_failure(source_t *s, const pgf_error_t *err);
void source_note_error(source_t *s, const pgf_error_t *err);
void source_ship_error(source_t *s);
void source_session_close(source_t *s, const char *why);

/* source_heartbeat.c: the plain connection to the primary */
extern const char source_facts_sql[];
/* heartbeat_open: err when it failed; warning when DDL capture could not
 * be installed (the session goes on) */
int source_heartbeat_open(source_t *s, pgf_error_t *err, pgf_error_t *warning);
void source_heartbeat_close(source_t *s);
/* Ships the primary fact of a row of source_facts_sql (or of a heartbeat)
 * to the sink; PGF_ERR (err) when it could not be sent. */
int source_ship_facts(source_t *s, PGresult *res, bool welcomed, double sent_at, pgf_error_t *err);

/* source_stream.c: the walsender stream and the batches cut from it;
 * start_streaming says where the stream starts (*from), and in warning
 * what went wrong without stopping it (the first fact not shipped) */
int source_start_streaming(source_t *s, uint64_t resume_lsn, uint64_t *from, pgf_error_t *err,
                           pgf_error_t *warning);
/* streams from early_from (the hello said so) before the welcome */
int source_stream_early(source_t *s, pgf_error_t *err, pgf_error_t *warning);
void source_repl_pause(source_t *s, bool pause);
void source_send_status(source_t *s, bool reply_requested);
void source_status_tick(struct ev_loop *loop, ev_timer *w, int revents);
void source_ship_batch(source_t *s);
void source_batch_deadline(struct ev_loop *loop, ev_timer *w, int revents);
void source_round_due(struct ev_loop *loop, ev_timer *w, int revents);
void source_fact_due(struct ev_loop *loop, ev_timer *w, int revents);

/* source_link.c: the callbacks of the link to the sink */
void source_link_callbacks(source_t *s, netconn_callbacks_t *cb);

#endif
