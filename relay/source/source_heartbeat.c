/*
 * source_heartbeat.c — the source's plain connection to the primary, beside
 * the walsender: a heartbeat logical message every heartbeat_interval (with
 * the primary's flush position and clock: the primary facts, shipped to the
 * sink at once), the primary's sequence values every sequence_sync_interval,
 * the slot's WAL retention every few seconds, and the DDL capture's event
 * triggers. Uses the source's state (source_internal.h), transport/ to ship
 * the facts, dr/ for the SQL it installs.
 */
#include "source_internal.h"

#include "pgferry/decoder.h"
#include "pgferry/dr_state.h"
#include "pgferry/log.h"
#include "pgferry/pgsession.h"
#include "pgferry/wire.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
const char source_facts_sql[] =
        "SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_flush_lsn()::text, "
        "(extract(epoch FROM statement_timestamp()) * 1000000)::bigint";

static const char seq_read_sql[] =
        "SELECT coalesce(string_agg(format('%I.%I', schemaname, sequencename) || ' ' || "
        "last_value, E'\\n' ORDER BY schemaname, sequencename), '') FROM "
        "pg_catalog.pg_sequences WHERE last_value IS NOT NULL AND schemaname <> 'pgferry'";

/* The primary fact of a heartbeat row goes to the sink at once, on its own
 * frame: a stuck or failing walsender cannot hold it back. */
int source_ship_facts(source_t *s, PGresult *res, bool welcomed, double sent_at, pgf_error_t *err)
{
	wire_primary_facts_t f;
	buf_t b;
	int rc;

	memset(&f, 0, sizeof(f));
	if (PQntuples(res) != 1 || PQnfields(res) != 3 ||
	    lsn_parse(PQgetvalue(res, 0, 0), &f.position_lsn) != PGF_OK ||
	    lsn_parse(PQgetvalue(res, 0, 1), &f.flush_lsn) != PGF_OK)
		return PGF_OK;
	/* the primary's clock, like commit times (test_clock_skew shifts this
	 * process's clock, not the primary's) */
	f.primary_time = unix_us_to_pgtime(strtoll(PQgetvalue(res, 0, 2), NULL, 10));
	if (f.flush_lsn > s->primary_flush_lsn)
		s->primary_flush_lsn = f.flush_lsn;
	ship_rule_note_primary_flush(&s->ship, f.flush_lsn);
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
		return PGF_OK;
	buf_init(&b);
	wire_encode_primary_facts(&f, &b);
	rc = netconn_send(s->sink, WIRE_PRIMARY_FACTS, b.data, b.len, err);
	buf_free(&b);
	return rc;
}

static int aux_send(source_t *s, int kind, const char *sql, const char *param, pgf_error_t *err)
{
	const char *params[1] = {param};

	if (PQsendQueryParams(s->heartbeat_conn, sql, param ? 1 : 0, NULL, params, NULL, NULL, 0) !=
	    1) {
		char msg[400];

		return error_set(err, PGF_E_DATABASE, "could not send to the primary: %s",
		                 pgsession_error_text(s->heartbeat_conn, msg, sizeof(msg)));
	}
	s->aux_kind = kind;
	s->aux_ok = false;
	s->aux_sent = rpo_guard_clock();
	s->heartbeat_busy = true;
	PQflush(s->heartbeat_conn);
	return PGF_OK;
}

/* The previous query finished: go on with the sequence work it started.
 * A query that could not be sent is in err (the first, if two). */
static int aux_done(source_t *s, pgf_error_t *err)
{
	pgf_error_t later;
	int rc = PGF_OK;

	if (s->aux_kind == AUX_SEQ_READ && s->aux_ok && s->seq_candidate != NULL) {
		if ((s->seq_last == NULL || strcmp(s->seq_last, s->seq_candidate) != 0) &&
		    s->seq_candidate[0] != '\0') {
			if (aux_send(
			            s, AUX_SEQ_EMIT,
			            "SELECT pg_logical_emit_message(true, 'pgferry.sequences', $1)",
			            s->seq_candidate, err) == PGF_OK)
				return PGF_OK;
			rc = PGF_ERR;
		}
	} else if (s->aux_kind == AUX_SEQ_EMIT && s->aux_ok) {
		/* shipped: later reads compare against it */
		free(s->seq_last);
		s->seq_last = s->seq_candidate;
		s->seq_candidate = NULL;
	}
	s->aux_kind = AUX_NONE;
	error_clear(&later);
	if (s->seq_due) {
		s->seq_due = false;
		if (aux_send(s, AUX_SEQ_READ, seq_read_sql, NULL, rc == PGF_OK ? err : &later) !=
		    PGF_OK)
			rc = PGF_ERR;
	} else if (s->slot_due) {
		s->slot_due = false;
		if (aux_send(s, AUX_SLOT, slot_sql, s->cfg->slot_name,
		             rc == PGF_OK ? err : &later) != PGF_OK)
			rc = PGF_ERR;
	}
	return rc;
}

/* A row of slot_sql: remember it for the next facts. A warning is due
 * once when the retention crosses slot_wal_warning (and once when back
 * under), and once when wal_status turns to losing WAL: their text goes
 * into warnings, for the loop to log; how many. */
static int slot_checked(source_t *s, PGresult *res, char warnings[2][600])
{
	int64_t limit = s->cfg->slot_wal_warning;
	bool over, serious;
	int n = 0;

	if (PQntuples(res) != 1 || PQnfields(res) != 4) {
		s->slot_known = false; /* no slot (yet): nothing retained */
		return 0;
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
		snprintf(warnings[n++], 600,
		         "slot \"%s\" retains %" PRId64 " bytes of WAL on the primary, more than "
		         "slot_wal_warning (%" PRId64 " bytes): the primary keeps that WAL until "
		         "the sink confirms it. Is the sink running and applying? A forgotten "
		         "slot is dropped with SELECT pg_drop_replication_slot('%s').",
		         s->cfg->slot_name, s->slot_retained, limit, s->cfg->slot_name);
	else if (!over && s->slot_warned)
		snprintf(warnings[n++], 600,
		         "slot \"%s\" retains %" PRId64 " bytes of WAL on the primary, back "
		         "under slot_wal_warning (%" PRId64 " bytes)",
		         s->cfg->slot_name, s->slot_retained, limit);
	s->slot_warned = over;
	serious =
	        s->slot_status == WIRE_SLOT_WAL_UNRESERVED || s->slot_status == WIRE_SLOT_WAL_LOST;
	if (serious && !s->slot_status_warned)
		snprintf(warnings[n++], 600,
		         "slot \"%s\" has wal_status %s: the primary removes (lost) or may "
		         "remove (unreserved) WAL the slot still needs, past "
		         "max_slot_wal_keep_size; once lost, only a new clone brings the DR "
		         "copy back",
		         s->cfg->slot_name, wire_slot_wal_status_name(s->slot_status));
	s->slot_status_warned = serious;
	return n;
}

/* One result of the plain connection's query, as it came. */
static void aux_result(source_t *s, PGresult *res)
{
	char warnings[2][600];
	pgf_error_t err;
	int i, n;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warning("%s failed on the primary: %s",
		            s->aux_kind == AUX_HEARTBEAT ? "heartbeat"
		            : s->aux_kind == AUX_SLOT    ? "slot WAL check"
		                                         : "sequence sync",
		            PQresultErrorMessage(res));
		return;
	}
	s->aux_ok = true;
	error_clear(&err);
	if (s->aux_kind == AUX_HEARTBEAT &&
	    source_ship_facts(s, res, false, s->aux_sent, &err) != PGF_OK)
		log_error_value(LOG_WARNING, &err);
	if (s->aux_kind == AUX_SLOT) {
		n = slot_checked(s, res, warnings);
		for (i = 0; i < n; i++)
			log_warning("%s", warnings[i]);
	}
	if (s->aux_kind == AUX_SEQ_READ && PQntuples(res) == 1) {
		free(s->seq_candidate);
		s->seq_candidate = strdup(PQgetvalue(res, 0, 0));
	}
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
		source_heartbeat_close(s);
		return;
	}
	while (s->heartbeat_busy && !PQisBusy(s->heartbeat_conn)) {
		res = PQgetResult(s->heartbeat_conn);
		if (res == NULL) {
			pgf_error_t err;
			s->heartbeat_busy = false;
			error_clear(&err);
			if (aux_done(s, &err) != PGF_OK)
				log_error_value(LOG_WARNING, &err);
			continue;
		}
		aux_result(s, res);
		PQclear(res);
	}
}

static void heartbeat_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	source_t *s = w->data;
	pgf_error_t err;

	(void)loop;
	(void)revents;
	if (s->heartbeat_conn == NULL || s->heartbeat_busy)
		return;
	/* a transactional message: it commits, so the sink sees a commit time
	 * every interval even when nothing else changes, and the slot moves */
	error_clear(&err);
	if (aux_send(s, AUX_HEARTBEAT,
	             s->cfg->heartbeat_interval > 0 ? heartbeat_sql : source_facts_sql, NULL,
	             &err) != PGF_OK)
		log_error_value(LOG_WARNING, &err);
}

/* A periodic query on the plain connection: sent now, or remembered (*due)
 * while another one is in flight. */
static int aux_tick(source_t *s, bool *due, int kind, const char *sql, const char *param,
                    pgf_error_t *err)
{
	if (s->heartbeat_conn == NULL)
		return PGF_OK;
	if (s->heartbeat_busy) {
		*due = true;
		return PGF_OK;
	}
	return aux_send(s, kind, sql, param, err);
}

static void slot_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	source_t *s = w->data;
	pgf_error_t err;

	(void)loop;
	(void)revents;
	error_clear(&err);
	if (aux_tick(s, &s->slot_due, AUX_SLOT, slot_sql, s->cfg->slot_name, &err) != PGF_OK)
		log_error_value(LOG_WARNING, &err);
}

static void sequence_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	source_t *s = w->data;
	pgf_error_t err;

	(void)loop;
	(void)revents;
	error_clear(&err);
	if (aux_tick(s, &s->seq_due, AUX_SEQ_READ, seq_read_sql, NULL, &err) != PGF_OK)
		log_error_value(LOG_WARNING, &err);
}

/* replicate_ddl: the event triggers of sql/primary_ddl.sql. */
static int install_ddl_capture(source_t *s, pgf_error_t *err)
{
	if (dr_state_run(s->heartbeat_conn, pgferry_sql_primary_ddl,
	                 "DDL capture on the primary (sql/primary_ddl.sql)", err) == PGF_OK)
		return PGF_OK;
	error_hint(err, "Creating event triggers needs a superuser: run sql/primary_ddl.sql as "
	                "one on the primary, or set replicate_ddl = off. Until then schema "
	                "changes are not shipped and stop apply as schema drift.");
	return PGF_ERR;
}

int source_heartbeat_open(source_t *s, pgf_error_t *err, pgf_error_t *warning)
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
	/* not fatal: the stream runs, apply stops at the first schema change */
	if (s->cfg->replicate_ddl)
		install_ddl_capture(s, warning);
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

void source_heartbeat_close(source_t *s)
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
