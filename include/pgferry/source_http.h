/*
 * source_http.h — the source's own /metrics and /healthz on
 * source_http_listen (off by default: nothing listens on the primary's
 * host unless asked). The source's loop keeps a source_stats_t and
 * publishes a copy about once a second; the HTTP threads answer from the
 * last copy, so a busy or stuck loop never blocks a scrape.
 *   GET /metrics   Prometheus text, labels slot and database
 *   GET /healthz   200 "streaming", 503 "not streaming: why"
 */
#ifndef PGFERRY_SOURCE_HTTP_H
#define PGFERRY_SOURCE_HTTP_H

#include "pgferry/config.h"
#include "pgferry/error.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct source_stats {
	const char *session_state; /* "idle", "hello", "streaming" (a static string) */
	char database[128];        /* the primary's database, once connected */
	/* the slot on the primary, read every few seconds */
	bool slot_known;
	int64_t slot_retained_bytes; /* -1: no restart_lsn */
	int64_t slot_safe_wal_size;  /* -1: unlimited */
	char slot_wal_status[16];
	char walsender_state[16]; /* pg_stat_replication.state of the slot's walsender ("": none) */
	/* counters since the process started */
	uint64_t messages, message_bytes; /* walsender messages read (decoded), their bytes */
	uint64_t batches, raw_bytes, sent_bytes; /* batches shipped: bytes before and after zstd */
	uint64_t batches_at_once; /* ... of them shipped before batch_max_delay (ship_rule.h) */
	uint64_t flush_facts;     /* the walsender's flush positions shipped on their own */
	uint64_t sessions,
	        session_failures;  /* sessions started; sessions that ended on a failure */
	uint64_t confirmed_lsn;    /* flush reported to the walsender */
	uint64_t sink_applied_lsn; /* what the sink reports committed on the DR side */
	char last_error[512];      /* the last session error ("": none) */
} source_stats_t;

typedef struct source_http source_http_t;

/* NULL with err clear when source_http_listen is empty (off); NULL with err
 * set when it cannot listen. cfg must outlive it. */
source_http_t *source_http_start(const config_t *cfg, pgf_error_t *err);
/* Publishes a copy of st (the loop's own); h may be NULL. */
void source_http_publish(source_http_t *h, const source_stats_t *st);
void source_http_stop(source_http_t *h);

#endif
