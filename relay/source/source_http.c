/*
 * source_http.c — the source's /metrics and /healthz (see source_http.h),
 * on the HTTP server of http_server.c, from the last copy of the loop's
 * figures. Rates (decode, send, compression) are the counters' rate() in
 * Prometheus; deploy/prometheus/rules.yml records them.
 */
#include "pgferry/source_http.h"

#include "pgferry/build_info.h"
#include "pgferry/decoder.h"
#include "pgferry/http_server.h"
#include "pgferry/prom.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct source_http {
	const config_t *cfg;
	http_server_t *server;
	pthread_mutex_t lock;
	source_stats_t stats; /* under the lock */
};

static const char *const walsender_states[] = {"startup", "catchup", "streaming", "backup",
                                               "stopping"};

static void render_metrics(const source_stats_t *st, buf_t *b)
{
	size_t i;
	bool streaming = strcmp(st->session_state, "streaming") == 0;

	prom_gauge(b, "pgferry_up",
	           "1 when the source streams the slot to the sink now, as /healthz.", streaming);
	prom_gauge(
	        b, "pgferry_source_streaming",
	        "1 while a session streams (the sink accepted it); 0 while connecting or waiting "
	        "to reconnect.",
	        streaming);
	buf_append_str(b, "# HELP pgferry_walsender_state The state of the slot's walsender on the "
	                  "primary (pg_stat_replication.state): 1 for the current one; none "
	                  "when no walsender serves the slot.\n# TYPE pgferry_walsender_state "
	                  "gauge\n");
	for (i = 0; i < sizeof(walsender_states) / sizeof(walsender_states[0]); i++)
		buf_printf(b, "pgferry_walsender_state{state=\"%s\"} %d\n", walsender_states[i],
		           strcmp(st->walsender_state, walsender_states[i]) == 0);
	buf_printf(b, "pgferry_walsender_state{state=\"none\"} %d\n", st->walsender_state[0] == 0);
	if (st->slot_known) {
		prom_gauge(
		        b, "pgferry_slot_retained_wal_bytes",
		        "WAL the slot holds back on the primary (pg_current_wal_lsn - restart_lsn; "
		        "-1: no restart_lsn).",
		        (double)st->slot_retained_bytes);
		prom_gauge(b, "pgferry_slot_safe_wal_size_bytes",
		           "WAL that can still be written before the slot is in danger of losing "
		           "WAL (pg_replication_slots.safe_wal_size; -1: unlimited).",
		           (double)st->slot_safe_wal_size);
	}
	prom_counter(b, "pgferry_source_messages_total",
	             "Walsender messages read and decoded (changes, transaction boundaries, "
	             "keepalives).",
	             st->messages);
	prom_counter(b, "pgferry_source_message_bytes_total",
	             "Bytes of the walsender messages read.", st->message_bytes);
	prom_counter(b, "pgferry_source_batches_total", "Batches shipped to the sink.",
	             st->batches);
	prom_counter(b, "pgferry_source_batches_at_once_total",
	             "Batches shipped without waiting for batch_max_delay: the walsender had sent "
	             "everything the primary had flushed and the batch ended with a commit.",
	             st->batches_at_once);
	prom_counter(
	        b, "pgferry_source_flush_facts_total",
	        "The primary's flush position (from a walsender keepalive) shipped to the sink "
	        "on its own, at most once per 10 ms.",
	        st->flush_facts);
	prom_counter(b, "pgferry_source_batch_raw_bytes_total",
	             "Bytes of the batches shipped, before compression.", st->raw_bytes);
	prom_counter(b, "pgferry_source_batch_sent_bytes_total",
	             "Bytes of the batches shipped, after compression (frames on the wire).",
	             st->sent_bytes);
	prom_counter(b, "pgferry_source_sessions_total",
	             "Sessions started (each connects to the primary and the sink; reconnects "
	             "count).",
	             st->sessions);
	prom_counter(b, "pgferry_source_session_failures_total",
	             "Sessions that ended on a failure.", st->session_failures);
	prom_gauge(b, "pgferry_source_confirmed_lsn_bytes",
	           "The flush position reported to the walsender (what the DR side committed).",
	           (double)st->confirmed_lsn);
	prom_gauge(b, "pgferry_source_sink_applied_lsn_bytes",
	           "What the sink last reported committed on the DR database.",
	           (double)st->sink_applied_lsn);
}

static void route(void *arg, const http_request_t *req, http_reply_t *r)
{
	static const char *const no_names[] = {NULL};
	source_http_t *h = arg;
	source_stats_t *st;
	const char *values[4];
	char error[256];
	buf_t raw;

	if (strcmp(req->url, "/metrics") != 0 && strcmp(req->url, "/healthz") != 0) {
		r->status = 404;
		buf_append_str(&r->body, "not found: the source serves /metrics and /healthz\n");
		return;
	}
	if (!http_request_query(req, no_names, values, error, sizeof(error))) {
		r->status = 400;
		buf_printf(&r->body, "%s\n", error);
		return;
	}
	if ((st = malloc(sizeof(*st))) == NULL) {
		r->status = 500;
		return;
	}
	pthread_mutex_lock(&h->lock);
	*st = h->stats;
	pthread_mutex_unlock(&h->lock);
	if (strcmp(req->url, "/healthz") == 0) {
		if (strcmp(st->session_state, "streaming") == 0)
			buf_append_str(&r->body, "streaming\n");
		else {
			r->status = 503;
			buf_printf(&r->body, "not streaming (%s)%s%s\n", st->session_state,
			           st->last_error[0] ? ": " : "", st->last_error);
		}
	} else {
		buf_init(&raw);
		render_metrics(st, &raw);
		build_info_render_metrics(&raw);
		prom_add_labels(&raw, h->cfg->slot_name, st->database, &r->body);
		buf_free(&raw);
		r->content_type = "text/plain; version=0.0.4; charset=utf-8";
	}
	free(st);
}

source_http_t *source_http_start(const config_t *cfg, pgf_error_t *err)
{
	source_http_t *h;

	error_clear(err);
	if (cfg->source_http_listen == NULL || cfg->source_http_listen[0] == '\0')
		return NULL;
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		error_set(err, PGF_E_MEMORY, "out of memory");
		return NULL;
	}
	h->cfg = cfg;
	h->stats.session_state = "idle";
	pthread_mutex_init(&h->lock, NULL);
	h->server = http_server_start(cfg->source_http_listen, "source_http_listen", route, h, err);
	if (h->server == NULL) {
		pthread_mutex_destroy(&h->lock);
		free(h);
		return NULL;
	}
	return h;
}

void source_http_publish(source_http_t *h, const source_stats_t *st)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->lock);
	h->stats = *st;
	pthread_mutex_unlock(&h->lock);
}

void source_http_stop(source_http_t *h)
{
	if (h == NULL)
		return;
	http_server_stop(h->server);
	pthread_mutex_destroy(&h->lock);
	free(h);
}
