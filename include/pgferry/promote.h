/*
 * promote.h — the steps of `pgferry promote` (promote_cmd.c), shared with
 * `pgferry drill`, which runs them on a copy of the DR database.
 */
#ifndef PGFERRY_PROMOTE_H
#define PGFERRY_PROMOTE_H

#include "pgferry/error.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

/* The sink's figures, from its /v1/status. */
typedef struct promote_sink_view {
	bool reachable;
	bool fenced;
	uint64_t received_lsn, applied_lsn, primary_wal_lsn;
	uint64_t backlog_transactions;
	uint64_t known_loss_transactions, known_loss_bytes;
	double rpo_bound_ms;
	char why[1400]; /* why it is not reachable */
} promote_sink_view_t;

/* Asks the sink at url; v->reachable false (and v->why) when it does not
 * answer. */
void promote_read_sink(const char *url, promote_sink_view_t *v);

typedef struct promote_record {
	bool already; /* promoted before: nothing changed, summary says when */
	char promoted_at[64];
	char applied[64];     /* the promotion point, a source LSN */
	char commit_time[64]; /* its commit time on the primary ("" unknown) */
	int sequences_moved;
	char summary[4096]; /* for a person, several lines */
} promote_record_t;

/* The steps of pgferry promote on a copy of the DR database (conn, a
 * database of its own): in one transaction the fence, every sequence moved
 * sequence_margin increments past the primary's last shipped value, and
 * the promotion point, taken from pgferry.progress (the copy shares the
 * live database's replication origin), with the figures of the sink at the
 * copy's moment, in pgferry.promotion and pgferry.events; who names the
 * command there. Rolls back and returns PGF_ERR with err set on failure. */
int promote_copy(PGconn *conn, const promote_sink_view_t *figures, int64_t sequence_margin,
                 const char *who, promote_record_t *out, pgf_error_t *err);

#endif
