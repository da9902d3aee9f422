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
 */
#include "pgferry/batch.h"
#include "pgferry/check.h"
#include "pgferry/cli.h"
#include "pgferry/decoder.h"
#include "pgferry/dr_state.h"
#include "pgferry/log.h"
#include "pgferry/netconn.h"
#include "pgferry/pgsession.h"
#include "pgferry/primary_check.h"
#include "pgferry/reload.h"
#include "pgferry/source_http.h"
#include "pgferry/replication.h"
#include "pgferry/rpo_guard.h"
#include "pgferry/tls.h"
#include "pgferry/wire.h"

#include <ev.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	uint64_t batch_seq;

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
	uint64_t last_reported_flush;
	uint64_t last_record_lsn;

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

static void session_close(source_t *s, const char *why);
static void schedule_reconnect(source_t *s);

static uint64_t backpressure_limit(const source_t *s)
{
	return 4 * (uint64_t)s->cfg->batch_max_bytes;
}

/* ---- heartbeats and sequences ---------------------------------------------- */

/* One plain connection to the primary writes pgferry's logical messages:
 * heartbeats every heartbeat_interval, and the primary's sequence values
 * every sequence_sync_interval (only when they changed). One query at a
 * time; a tick that finds it busy is skipped (heartbeats) or remembered
 * (sequences, slot checks). */

enum { AUX_NONE, AUX_HEARTBEAT, AUX_SEQ_READ, AUX_SEQ_EMIT, AUX_SLOT };

/* How much WAL the slot holds back on the primary, every few seconds: a
 * forgotten or stuck slot retains WAL until the primary's disk is full. */
#define SLOT_CHECK_INTERVAL 5.0
static const char slot_sql[] =
        "SELECT (pg_current_wal_lsn() - restart_lsn)::bigint, safe_wal_size, wal_status, "
        "(SELECT r.state FROM pg_catalog.pg_stat_replication r WHERE r.pid = active_pid) "
        "FROM pg_catalog.pg_replication_slots WHERE slot_name = $1";

/* A heartbeat and a primary fact in one statement: every commit visible
 * before the statement started (statement_timestamp) has a commit record
 * inserted before the message's, so a smaller LSN. With heartbeats off,
 * the current insert position plays the message's part. */
static const char heartbeat_sql[] =
        "SELECT pg_logical_emit_message(true, 'pgferry.heartbeat', clock_timestamp()::text)"
        "::text, pg_current_wal_flush_lsn()::text, "
        "(extract(epoch FROM statement_timestamp()) * 1000000)::bigint";
static const char facts_sql[] =
        "SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_flush_lsn()::text, "
        "(extract(epoch FROM statement_timestamp()) * 1000000)::bigint";

static const char seq_read_sql[] =
        "SELECT coalesce(string_agg(format('%I.%I', schemaname, sequencename) || ' ' || "
        "last_value, E'\\n' ORDER BY schemaname, sequencename), '') FROM "
        "pg_catalog.pg_sequences WHERE last_value IS NOT NULL AND schemaname <> 'pgferry'";

static void heartbeat_close(source_t *s);

/* A session failed with err. A cause that repeats the last one (a missing
 * publication, wal_level below logical, a refused password, a sink that
 * refuses this primary) is logged once, not at every retry: the back-off
 * grows instead (schedule_reconnect). */
static void report_failure(source_t *s, const pgf_error_t *err)
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

static void note_error(source_t *s, const pgf_error_t *err)
{
	snprintf(s->last_error, sizeof(s->last_error), "%s", err->message);
}

/* The primary fact of a heartbeat row goes to the sink at once, on its own
 * frame: a stuck or failing walsender cannot hold it back. */
static void ship_facts(source_t *s, PGresult *res, bool welcomed, double sent_at)
{
	wire_primary_facts_t f;
	pgf_error_t err;
	buf_t b;

	memset(&f, 0, sizeof(f));
	if (PQntuples(res) != 1 || PQnfields(res) != 3 ||
	    lsn_parse(PQgetvalue(res, 0, 0), &f.position_lsn) != PGF_OK ||
	    lsn_parse(PQgetvalue(res, 0, 1), &f.flush_lsn) != PGF_OK)
		return;
	/* the primary's clock, like commit times (test_clock_skew shifts this
	 * process's clock, not the primary's) */
	f.primary_time = unix_us_to_pgtime(strtoll(PQgetvalue(res, 0, 2), NULL, 10));
	if (f.flush_lsn > s->primary_flush_lsn)
		s->primary_flush_lsn = f.flush_lsn;
	snprintf(f.source_error, sizeof(f.source_error), "%s", s->last_error);
	f.slot_known = s->slot_known;
	f.slot_retained_bytes = s->slot_retained;
	f.slot_safe_wal_size = s->slot_safe;
	f.slot_wal_status = s->slot_status;
	f.slot_wal_warning = s->cfg->slot_wal_warning;
	rpo_guard_on_fact(s->guard, f.position_lsn, sent_at);
	if (s->guard != NULL) {
		rpo_guard_report_t g;
		rpo_guard_fill_report(s->guard, &g);
		f.rpo_guard_known = true;
		f.rpo_guard_state = g.state;
		f.rpo_guard_bound_ms = g.bound_ms;
		f.rpo_guard_engagements = g.engagements;
		snprintf(f.rpo_guard_reason, sizeof(f.rpo_guard_reason), "%s", g.reason);
	}
	if (s->sink == NULL || (s->state != SOURCE_STREAMING && !welcomed))
		return;
	buf_init(&b);
	error_clear(&err);
	wire_encode_primary_facts(&f, &b);
	if (netconn_send(s->sink, WIRE_PRIMARY_FACTS, b.data, b.len, &err) != PGF_OK)
		log_error_value(LOG_WARNING, &err);
	buf_free(&b);
}

static bool aux_send(source_t *s, int kind, const char *sql, const char *param)
{
	const char *params[1] = {param};

	if (PQsendQueryParams(s->heartbeat_conn, sql, param ? 1 : 0, NULL, params, NULL, NULL, 0) !=
	    1) {
		char msg[400];

		log_warning("could not send to the primary: %s",
		            pgsession_error_text(s->heartbeat_conn, msg, sizeof(msg)));
		return false;
	}
	s->aux_kind = kind;
	s->aux_ok = false;
	s->aux_sent = rpo_guard_clock();
	s->heartbeat_busy = true;
	PQflush(s->heartbeat_conn);
	return true;
}

/* The previous query finished: go on with the sequence work it started. */
static void aux_done(source_t *s)
{
	if (s->aux_kind == AUX_SEQ_READ && s->aux_ok && s->seq_candidate != NULL) {
		if (s->seq_last == NULL || strcmp(s->seq_last, s->seq_candidate) != 0) {
			if (s->seq_candidate[0] != '\0' &&
			    aux_send(
			            s, AUX_SEQ_EMIT,
			            "SELECT pg_logical_emit_message(true, 'pgferry.sequences', $1)",
			            s->seq_candidate))
				return;
		}
	} else if (s->aux_kind == AUX_SEQ_EMIT && s->aux_ok) {
		/* shipped: later reads compare against it */
		free(s->seq_last);
		s->seq_last = s->seq_candidate;
		s->seq_candidate = NULL;
	}
	s->aux_kind = AUX_NONE;
	if (s->seq_due) {
		s->seq_due = false;
		aux_send(s, AUX_SEQ_READ, seq_read_sql, NULL);
	} else if (s->slot_due) {
		s->slot_due = false;
		aux_send(s, AUX_SLOT, slot_sql, s->cfg->slot_name);
	}
}

/* A row of slot_sql: remember it for the next facts, and warn once when
 * the retention crosses slot_wal_warning (and once when back under). */
static void slot_checked(source_t *s, PGresult *res)
{
	int64_t limit = s->cfg->slot_wal_warning;
	bool over, serious;

	if (PQntuples(res) != 1 || PQnfields(res) != 4) {
		s->slot_known = false; /* no slot (yet): nothing retained */
		return;
	}
	snprintf(s->stats.walsender_state, sizeof(s->stats.walsender_state), "%s",
	         PQgetvalue(res, 0, 3));
	s->slot_known = true;
	s->slot_retained = PQgetisnull(res, 0, 0) ? -1 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	s->slot_safe = PQgetisnull(res, 0, 1) ? -1 : strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	s->slot_status =
	        wire_slot_wal_status_code(PQgetisnull(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2));
	over = limit > 0 && s->slot_retained > limit;
	if (over && !s->slot_warned)
		log_warning(
		        "slot \"%s\" retains %" PRId64 " bytes of WAL on the primary, more than "
		        "slot_wal_warning (%" PRId64 " bytes): the primary keeps that WAL until "
		        "the sink confirms it. Is the sink running and applying? A forgotten "
		        "slot is dropped with SELECT pg_drop_replication_slot('%s').",
		        s->cfg->slot_name, s->slot_retained, limit, s->cfg->slot_name);
	else if (!over && s->slot_warned)
		log_warning("slot \"%s\" retains %" PRId64 " bytes of WAL on the primary, back "
		            "under slot_wal_warning (%" PRId64 " bytes)",
		            s->cfg->slot_name, s->slot_retained, limit);
	s->slot_warned = over;
	serious =
	        s->slot_status == WIRE_SLOT_WAL_UNRESERVED || s->slot_status == WIRE_SLOT_WAL_LOST;
	if (serious && !s->slot_status_warned)
		log_warning("slot \"%s\" has wal_status %s: the primary removes (lost) or may "
		            "remove (unreserved) WAL the slot still needs, past "
		            "max_slot_wal_keep_size; once lost, only a new clone brings the DR "
		            "copy back",
		            s->cfg->slot_name, wire_slot_wal_status_name(s->slot_status));
	s->slot_status_warned = serious;
}

static void heartbeat_io(struct ev_loop *loop, ev_io *w, int revents)
{
	source_t *s = w->data;
	PGresult *res;
	char msg[400];

	(void)loop;
	(void)revents;
	if (PQconsumeInput(s->heartbeat_conn) == 0) {
		/* not the end of the session: a shutting-down primary ends plain
		 * backends first and the walsender last, after sending everything;
		 * keepalives (requested every status_interval) keep the sink
		 * informed until the next session reopens heartbeats */
		log_warning(
		        "heartbeat connection to the primary lost; no heartbeats until the next "
		        "session: %s",
		        pgsession_error_text(s->heartbeat_conn, msg, sizeof(msg)));
		heartbeat_close(s);
		return;
	}
	while (s->heartbeat_busy && !PQisBusy(s->heartbeat_conn)) {
		res = PQgetResult(s->heartbeat_conn);
		if (res == NULL) {
			s->heartbeat_busy = false;
			aux_done(s);
			continue;
		}
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			log_warning("%s failed on the primary: %s",
			            s->aux_kind == AUX_HEARTBEAT ? "heartbeat"
			            : s->aux_kind == AUX_SLOT    ? "slot WAL check"
			                                         : "sequence sync",
			            PQresultErrorMessage(res));
		} else {
			s->aux_ok = true;
			if (s->aux_kind == AUX_HEARTBEAT)
				ship_facts(s, res, false, s->aux_sent);
			if (s->aux_kind == AUX_SLOT)
				slot_checked(s, res);
			if (s->aux_kind == AUX_SEQ_READ && PQntuples(res) == 1) {
				free(s->seq_candidate);
				s->seq_candidate = strdup(PQgetvalue(res, 0, 0));
			}
		}
		PQclear(res);
	}
}

static void heartbeat_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	source_t *s = w->data;

	(void)loop;
	(void)revents;
	if (s->heartbeat_conn == NULL || s->heartbeat_busy)
		return;
	/* a transactional message: it commits, so the sink sees a commit time
	 * every interval even when nothing else changes, and the slot moves */
	aux_send(s, AUX_HEARTBEAT, s->cfg->heartbeat_interval > 0 ? heartbeat_sql : facts_sql,
	         NULL);
}

/* A periodic query on the plain connection: sent now, or remembered (*due)
 * while another one is in flight. */
static void aux_tick(source_t *s, bool *due, int kind, const char *sql, const char *param)
{
	if (s->heartbeat_conn == NULL)
		return;
	if (s->heartbeat_busy)
		*due = true;
	else
		aux_send(s, kind, sql, param);
}

static void slot_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	source_t *s = w->data;

	(void)loop;
	(void)revents;
	aux_tick(s, &s->slot_due, AUX_SLOT, slot_sql, s->cfg->slot_name);
}

static void sequence_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	source_t *s = w->data;

	(void)loop;
	(void)revents;
	aux_tick(s, &s->seq_due, AUX_SEQ_READ, seq_read_sql, NULL);
}

/* replicate_ddl: the event triggers of sql/primary_ddl.sql. */
static void install_ddl_capture(source_t *s)
{
	pgf_error_t err;

	error_clear(&err);
	if (dr_state_run(s->heartbeat_conn, pgferry_sql_primary_ddl,
	                 "DDL capture on the primary (sql/primary_ddl.sql)", &err) != PGF_OK) {
		error_hint(&err,
		           "Creating event triggers needs a superuser: run sql/primary_ddl.sql "
		           "as one on the primary, or set replicate_ddl = off. Until then "
		           "schema changes are not shipped and stop apply as schema drift.");
		log_error_value(LOG_ERROR, &err);
	}
}

static int heartbeat_open(source_t *s, pgf_error_t *err)
{
	const char *keys[] = {"dbname", "fallback_application_name", "connect_timeout", NULL};
	const char *values[] = {s->cfg->primary_conninfo, "pgferry heartbeat", "10", NULL};
	char msg[400];

	s->heartbeat_conn = PQconnectdbParams(keys, values, 1);
	if (s->heartbeat_conn == NULL || PQstatus(s->heartbeat_conn) != CONNECTION_OK) {
		error_set(err, PGF_E_DATABASE, "heartbeat connection to the primary failed: %s",
		          pgsession_error_text(s->heartbeat_conn, msg, sizeof(msg)));
		PQfinish(s->heartbeat_conn);
		s->heartbeat_conn = NULL;
		return PGF_ERR;
	}
	if (s->cfg->replicate_ddl)
		install_ddl_capture(s);
	if (s->guard != NULL) {
		/* with the guard engaged, commits wait for this very source: its
		 * heartbeats and sequence messages must not, or the facts stop */
		PGresult *res = PQexec(s->heartbeat_conn, "SET synchronous_commit = local");
		PQclear(res);
	}
	PQsetnonblocking(s->heartbeat_conn, 1);
	s->heartbeat_busy = false;
	s->aux_kind = AUX_NONE;
	s->seq_due = false;
	s->slot_due = false;
	/* a new session ships the sequences once whatever was sent before */
	free(s->seq_last);
	s->seq_last = NULL;
	ev_io_init(&s->heartbeat_watcher, heartbeat_io, PQsocket(s->heartbeat_conn), EV_READ);
	s->heartbeat_watcher.data = s;
	ev_io_start(s->loop, &s->heartbeat_watcher);
	/* heartbeats off: the primary facts still go every status_interval */
	ev_timer_init(&s->heartbeat_timer, heartbeat_tick, 0.0,
	              (double)(s->cfg->heartbeat_interval > 0 ? s->cfg->heartbeat_interval
	                                                      : s->cfg->status_interval) /
	                      1000.0);
	s->heartbeat_timer.data = s;
	ev_timer_again(s->loop, &s->heartbeat_timer);
	ev_timer_init(&s->slot_timer, slot_tick, 0.0, SLOT_CHECK_INTERVAL);
	s->slot_timer.data = s;
	ev_timer_again(s->loop, &s->slot_timer);
	if (s->cfg->sequence_sync_interval > 0) {
		ev_timer_init(&s->sequence_timer, sequence_tick, 0.0,
		              (double)s->cfg->sequence_sync_interval / 1000.0);
		s->sequence_timer.data = s;
		ev_timer_again(s->loop, &s->sequence_timer);
	}
	return PGF_OK;
}

static void heartbeat_close(source_t *s)
{
	if (s->heartbeat_conn == NULL)
		return;
	ev_io_stop(s->loop, &s->heartbeat_watcher);
	ev_timer_stop(s->loop, &s->heartbeat_timer);
	ev_timer_stop(s->loop, &s->sequence_timer);
	ev_timer_stop(s->loop, &s->slot_timer);
	PQfinish(s->heartbeat_conn);
	s->heartbeat_conn = NULL;
	free(s->seq_candidate);
	s->seq_candidate = NULL;
}

/* The walsender reads only flushed WAL, so its keepalive's WAL end is a
 * flush position this side saw itself: the sink may let that keepalive
 * justify idle progress up to it (a shutting-down primary waits for that
 * confirmation, and its plain connections are gone by then). No time, no
 * position: it proves nothing about commits. */
static void ship_flush_fact(source_t *s)
{
	wire_primary_facts_t f;
	pgf_error_t err;
	buf_t b;

	if (s->sink == NULL || s->state != SOURCE_STREAMING ||
	    s->primary_flush_lsn <= s->flush_fact_sent)
		return;
	memset(&f, 0, sizeof(f));
	f.flush_lsn = s->primary_flush_lsn;
	snprintf(f.source_error, sizeof(f.source_error), "%s", s->last_error);
	buf_init(&b);
	error_clear(&err);
	wire_encode_primary_facts(&f, &b);
	if (netconn_send(s->sink, WIRE_PRIMARY_FACTS, b.data, b.len, &err) != PGF_OK)
		log_error_value(LOG_WARNING, &err);
	else
		s->flush_fact_sent = s->primary_flush_lsn;
	buf_free(&b);
}

/* ---- reporting to the walsender ------------------------------------------- */

/* Standby status: write = what the sink holds, flush = what the DR database
 * committed. The slot's confirmed_flush_lsn follows flush only. */
static void send_status(source_t *s, bool reply_requested)
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
		report_failure(s, &err);
		note_error(s, &err);
		session_close(s, "the primary connection failed");
		return;
	}
	s->last_reported_flush = s->sink_applied_lsn;
}

static void status_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	source_t *s = w->data;

	(void)loop;
	(void)revents;
	/* asking for a reply makes the primary send a keepalive: its WAL end
	 * and clock reach the sink even when nothing is written */
	send_status(s, true);
}

/* ---- batches ---------------------------------------------------------------- */

static void ship_batch(source_t *s)
{
	pgf_error_t err;
	buf_t frame;
	uint64_t raw = batch_encoder_bytes(s->encoder);

	if (s->batch_timer_armed) {
		ev_timer_stop(s->loop, &s->batch_timer);
		s->batch_timer_armed = false;
	}
	if (batch_encoder_records(s->encoder) == 0 || s->sink == NULL)
		return;
	buf_init(&frame);
	error_clear(&err);
	if (batch_encoder_finish(s->encoder, ++s->batch_seq, &frame, &err) != PGF_OK ||
	    netconn_send(s->sink, WIRE_BATCH, frame.data, frame.len, &err) != PGF_OK) {
		buf_free(&frame);
		report_failure(s, &err);
		session_close(s, "could not ship a batch");
		return;
	}
	s->stats.batches++;
	s->stats.raw_bytes += raw;
	s->stats.sent_bytes += frame.len;
	buf_free(&frame);
}

static void batch_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	source_t *s = w->data;

	(void)loop;
	(void)revents;
	s->batch_timer_armed = false;
	ship_batch(s);
}

/* ---- the replication stream -------------------------------------------------- */

static void repl_pause(source_t *s, bool pause)
{
	if (!s->repl_open)
		return;
	if (pause)
		ev_io_stop(s->loop, &s->repl_watcher);
	else if (!ev_is_active(&s->repl_watcher))
		ev_io_start(s->loop, &s->repl_watcher);
}

static void repl_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	source_t *s = w->data;
	pgf_error_t err;
	int n = 0;

	(void)loop;
	(void)revents;
	error_clear(&err);
	/* bounded per wake-up so the sink link and the timers get their turn */
	while (n++ < 10000) {
		const uint8_t *data;
		size_t len;
		walsender_message_t wm;
		int r = replication_read(&s->repl, &data, &len, &err);

		if (r == 0)
			break;
		if (r == 2) {
			char lsn[LSN_TEXT_LEN];
			/* the primary ended the stream: it is shutting down after
			 * sending everything; tell the sink, it reports it */
			ship_batch(s);
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
			session_close(s, "the primary ended the stream");
			return;
		}
		if (r < 0) {
			report_failure(s, &err);
			note_error(s, &err);
			session_close(s, "the replication connection failed");
			return;
		}
		if (walsender_parse(data, len, &wm, &err) != PGF_OK) {
			report_failure(s, &err);
			session_close(s, "the primary sent a malformed message");
			return;
		}
		s->stats.messages++;
		s->stats.message_bytes += len;
		if (wm.kind == 'w') {
			s->last_record_lsn = wm.wal_start;
			s->last_error[0] = '\0'; /* the stream delivers again */
		}
		/* the walsender reads only flushed WAL */
		if (wm.wal_end > s->primary_flush_lsn)
			s->primary_flush_lsn = wm.wal_end;
		if (batch_encoder_add(s->encoder, data, len,
		                      wm.kind == 'w' ? wm.wal_start : wm.wal_end, &err) != PGF_OK) {
			report_failure(s, &err);
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
			session_close(s, "could not batch a message");
			return;
		}
		if (wm.kind == 'k')
			ship_flush_fact(s);
		if (wm.kind == 'k' && wm.reply_requested)
			send_status(s, false);
		if ((int64_t)batch_encoder_bytes(s->encoder) >= s->cfg->batch_max_bytes)
			ship_batch(s);
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
			repl_pause(s, true);
			return;
		}
	}
}

static int start_streaming(source_t *s, uint64_t resume_lsn, pgf_error_t *err)
{
	replication_options_t opts = {0};
	bool exists;
	uint64_t confirmed;
	char a[LSN_TEXT_LEN], b[LSN_TEXT_LEN];

	if (replication_slot_position(&s->repl, s->cfg->slot_name, &exists, &confirmed, err) !=
	    PGF_OK)
		return PGF_ERR;
	if (!exists)
		return error_set(err, PGF_E_CONFIG, "slot \"%s\" disappeared", s->cfg->slot_name);
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
	if (replication_flush_position(&s->repl, &s->primary_flush_lsn, err) != PGF_OK)
		return PGF_ERR;
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
	/* a first fact, and the last error, at once: a walsender that fails on
	 * its first change ends the session within milliseconds, before any
	 * heartbeat (a replication connection takes plain SQL before
	 * START_REPLICATION) */
	{
		double sent = rpo_guard_clock();
		PGresult *res = PQexec(s->repl.conn, facts_sql);
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			ship_facts(s, res, true, sent);
		PQclear(res);
	}
	opts.slot_name = s->cfg->slot_name;
	opts.publication = s->cfg->publication;
	opts.proto_version = s->proto_version;
	opts.streaming = true;
	opts.messages = true;
	/* prepared transactions are decoded when decided (see README) */
	opts.two_phase = false;
	if (replication_start(&s->repl, resume_lsn, &opts, err) != PGF_OK)
		return PGF_ERR;
	log_info("streaming slot \"%s\" from %s (pgoutput protocol %d)", s->cfg->slot_name,
	         lsn_format(resume_lsn ? resume_lsn : confirmed, a), s->proto_version);
	s->sink_applied_lsn = resume_lsn;
	s->sink_received_lsn = resume_lsn;
	s->flush_fact_sent = 0;
	ev_io_init(&s->repl_watcher, repl_readable, replication_socket(&s->repl), EV_READ);
	s->repl_watcher.data = s;
	ev_io_start(s->loop, &s->repl_watcher);
	s->state = SOURCE_STREAMING;
	s->streamed_once = true;
	s->streaming_since = ev_now(s->loop);
	ev_timer_again(s->loop, &s->status_timer);
	/* data may already be buffered by libpq */
	ev_feed_event(s->loop, &s->repl_watcher, EV_READ);
	return PGF_OK;
}

/* ---- the sink link ------------------------------------------------------------- */

/* Called once the sink accepted this primary's identity (its welcome): a
 * source pointed at the wrong primary leaves no slot there. */
static int ensure_slot(source_t *s, pgf_error_t *err)
{
	bool created;
	uint64_t consistent;
	char lsn[LSN_TEXT_LEN];

	if (replication_ensure_slot(&s->repl, s->cfg->slot_name, false, &created, &consistent,
	                            err) != PGF_OK)
		return PGF_ERR;
	if (created)
		log_info("created replication slot \"%s\" at %s", s->cfg->slot_name,
		         lsn_format(consistent, lsn));
	return PGF_OK;
}

static void sink_connected(netconn_t *c, void *arg)
{
	source_t *s = arg;
	wire_hello_t hello = {0};
	pgf_error_t err;
	buf_t b;

	log_info("connected to the sink at %s (%s)", s->cfg->sink_address, netconn_peer_name(c));
	hello.protocol_version = WIRE_PROTOCOL_VERSION;
	hello.system_identifier = s->repl.system_identifier;
	hello.timeline = s->repl.timeline;
	hello.proto_version = (uint8_t)s->proto_version;
	snprintf(hello.database, sizeof(hello.database), "%s", s->repl.dbname);
	snprintf(hello.slot, sizeof(hello.slot), "%s", s->cfg->slot_name);
	hello.source_time = pgtime_now() + s->cfg->test_clock_skew * 1000;
	hello.capabilities = WIRE_CAP_PRIMARY_FACTS;
	buf_init(&b);
	error_clear(&err);
	wire_encode_hello(&hello, &b);
	if (netconn_send(c, WIRE_HELLO, b.data, b.len, &err) != PGF_OK) {
		report_failure(s, &err);
		session_close(s, "could not greet the sink");
	} else
		s->state = SOURCE_HELLO;
	buf_free(&b);
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
		send_status(s, false);
}

static void sink_frame(netconn_t *c, void *arg, uint8_t type, const uint8_t *payload, size_t len)
{
	source_t *s = arg;
	pgf_error_t err;

	s->sink_heard = ev_now(s->loop);
	error_clear(&err);
	switch (type) {
	case WIRE_WELCOME: {
		wire_welcome_t w;
		char lsn[LSN_TEXT_LEN];
		if (s->state != SOURCE_HELLO ||
		    wire_decode_welcome(payload, len, &w, &err) != PGF_OK) {
			if (err.message[0] == '\0')
				error_set(&err, PGF_E_PROTOCOL, "unexpected welcome from the sink");
			break;
		}
		log_info("the sink resumes at %s", lsn_format(w.resume_lsn, lsn));
		batch_encoder_reset(s->encoder);
		s->batch_seq = 0;
		if (ensure_slot(s, &err) != PGF_OK ||
		    start_streaming(s, w.resume_lsn, &err) != PGF_OK) {
			note_error(s, &err);
			break;
		}
		return;
	}
	case WIRE_ACK: {
		wire_ack_t ack;
		if (wire_decode_ack(payload, len, &ack, &err) != PGF_OK)
			break;
		on_ack(s, &ack);
		/* the link drained: read the stream again */
		if (netconn_queued_bytes(c) <= backpressure_limit(s) / 2)
			repl_pause(s, false);
		return;
	}
	case WIRE_PING: {
		wire_ping_t ping;
		wire_pong_t pong;
		buf_t b;
		if (wire_decode_ping(payload, len, &ping, &err) != PGF_OK)
			break;
		pong.t1 = ping.t1;
		pong.t2 = pgtime_now() + s->cfg->test_clock_skew * 1000;
		pong.t3 = pgtime_now() + s->cfg->test_clock_skew * 1000;
		buf_init(&b);
		wire_encode_pong(&pong, &b);
		netconn_send(c, WIRE_PONG, b.data, b.len, &err);
		buf_free(&b);
		/* the link drained: read the stream again */
		if (netconn_queued_bytes(c) <= backpressure_limit(s) / 2)
			repl_pause(s, false);
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
	report_failure(s, &err);
	session_close(s, "the sink session failed");
}

static void sink_writable(netconn_t *c, void *arg)
{
	source_t *s = arg;

	if (netconn_queued_bytes(c) <= backpressure_limit(s) / 2)
		repl_pause(s, false);
}

static void sink_closed(netconn_t *c, void *arg, const pgf_error_t *err)
{
	source_t *s = arg;

	(void)c;
	if (err && err->message[0])
		report_failure(s, err);
	s->sink = NULL; /* netconn frees itself after this callback */
	session_close(s, "the sink connection closed");
}

/* ---- sessions ------------------------------------------------------------------ */

static void session_close(source_t *s, const char *why)
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
	if (s->repl_open) {
		ev_io_stop(s->loop, &s->repl_watcher);
		replication_close(&s->repl);
		s->repl_open = false;
	}
	heartbeat_close(s);
	if (s->sink) {
		netconn_t *c = s->sink;
		s->sink = NULL;
		netconn_close(c, 0, NULL);
	}
	s->state = SOURCE_IDLE;
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

static int session_open(source_t *s, pgf_error_t *err)
{
	netconn_callbacks_t cb = {0};

	s->stats.sessions++;
	if (replication_connect(&s->repl, s->cfg->primary_conninfo, err) != PGF_OK)
		return PGF_ERR;
	s->repl_open = true;
	snprintf(s->stats.database, sizeof(s->stats.database), "%s", s->repl.dbname);
	if (check_primary(s, err) != PGF_OK) {
		s->setup_refused = err->code == PGF_E_CONFIG;
		return PGF_ERR;
	}
	s->proto_version = replication_max_proto_version(s->repl.server_version);
	/* the slot is created only once the sink accepted this primary (see
	 * the welcome): one made on the wrong primary would hold its WAL */
	if (heartbeat_open(s, err) != PGF_OK)
		return PGF_ERR;
	cb.arg = s;
	cb.connected = sink_connected;
	cb.frame = sink_frame;
	cb.writable = sink_writable;
	cb.closed = sink_closed;
	s->sink = netconn_connect(s->loop, s->cfg->sink_address, s->tls, s->cfg->max_frame_bytes,
	                          &cb, err);
	if (s->sink == NULL)
		return PGF_ERR;
	s->sink_heard = ev_now(s->loop);
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
		report_failure(s, &err);
	}
	session_close(s, "the sink went silent");
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
	pgf_error_t err;

	(void)loop;
	(void)revents;
	error_clear(&err);
	if (session_open(s, &err) != PGF_OK) {
		report_failure(s, &err);
		note_error(s, &err);
		if (s->setup_refused && !s->streamed_once) {
			/* a setup that would lose data: refuse to start */
			session_close(s, "the primary's setup is refused");
			ev_timer_stop(loop, &s->reconnect_timer);
			s->exit_code = EXIT_ERROR;
			ev_break(loop, EVBREAK_ALL);
			return;
		}
		session_close(s, "could not start a session");
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
	ship_batch(s);
	/* the last word to the slot: what the DR database committed, no more */
	send_status(s, false);
	if (s->state == SOURCE_STREAMING) {
		char lsn[32];
		log_info("confirmed %s to the slot (what the DR database committed); the slot "
		         "keeps the rest",
		         lsn_format(s->last_reported_flush, lsn));
	}
	rpo_guard_release(s->guard, "the source stops");
	session_close(s, "shutdown");
	ev_timer_stop(loop, &s->reconnect_timer);
	ev_break(loop, EVBREAK_ALL);
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
	if (cli_load(argc, argv, ROLE_SOURCE, &cli, &err) != PGF_OK) {
		log_error_value(LOG_ERROR, &err);
		cli_free(&cli);
		return EXIT_ERROR;
	}
	cli_configure_logging(&cli, "source");
	if (cli.argc > 1) {
		fprintf(stderr, "pgferry source: unexpected argument \"%s\"\n", cli.argv[1]);
		cli_free(&cli);
		return EXIT_ERROR;
	}
	s.cfg = &cli.cfg;
	signal(SIGPIPE, SIG_IGN);
	/* the same checks as pgferry check: a setup that cannot work stops here */
	if (check_at_start(&cli.cfg, CHECK_ROLE_SOURCE, &err) != PGF_OK)
		goto out;
	/* before the loop and its connections: it forks its watchdog */
	if (cli.cfg.rpo_guard && (s.guard = rpo_guard_create(&cli.cfg, &err)) == NULL)
		goto out;
	if (!cli.cfg.tls) {
		if (!netconn_address_is_loopback(cli.cfg.sink_address)) {
			error_set(&err, PGF_E_CONFIG,
			          "tls = off is allowed only when the sink is on loopback, not "
			          "\"%s\"",
			          cli.cfg.sink_address);
			error_hint(&err,
			           "Give both sides certificates (tls_ca, tls_cert, tls_key).");
			goto out;
		}
		log_warning("TLS is OFF: batches cross the link in plaintext and unauthenticated "
		            "(allowed on loopback only)");
	} else {
		s.tls = tls_context_create(TLS_ROLE_CLIENT, cli.cfg.tls_ca, cli.cfg.tls_cert,
		                           cli.cfg.tls_key, cli.cfg.tls_peer_name, &err);
		if (s.tls == NULL)
			goto out;
	}
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
	ev_timer_init(&s.batch_timer, batch_deadline, 0.0, 0.0);
	s.batch_timer.data = &s;
	ev_timer_init(&s.status_timer, status_tick, 0.0, (double)cli.cfg.status_interval / 1000.0);
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
	ev_signal_init(&s.sigint, on_signal, SIGINT);
	s.sigint.data = &s;
	ev_signal_start(s.loop, &s.sigint);
	ev_signal_init(&s.sigterm, on_signal, SIGTERM);
	s.sigterm.data = &s;
	ev_signal_start(s.loop, &s.sigterm);
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
