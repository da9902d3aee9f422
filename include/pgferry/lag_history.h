/*
 * lag_history.h — one lag sample a second into pgferry.lag_history on the
 * DR database (sql/dr_lag_history.sql), pruned past lag_history_retention,
 * and the last hour's percentiles fed back to the tracker for /v1/status
 * and `pgferry lag`. Its own thread and its own DR connection, so a
 * stalled apply does not stop the record of the stall.
 */
#ifndef PGFERRY_LAG_HISTORY_H
#define PGFERRY_LAG_HISTORY_H

#include "pgferry/config.h"
#include "pgferry/lag.h"

typedef struct lag_history lag_history_t;

/* One sample of the last hour, kept in memory for the status page's chart
 * (loaded from pgferry.lag_history when the sink starts). */
#define LAG_HISTORY_POINTS 3600
typedef struct lag_history_point {
	int64_t time_us;     /* sink clock, Unix µs */
	double rpo_bound_ms; /* -1: nothing proved it */
	double commit_lag_ms;
} lag_history_point_t;

/* cfg and lag must outlive it. NULL only when the thread cannot start. */
lag_history_t *lag_history_start(const config_t *cfg, lag_tracker_t *lag, pgf_error_t *err);
void lag_history_stop(lag_history_t *h);
/* Any thread: copies the samples newer than since_us, oldest first, at most
 * max (h NULL: none). */
int lag_history_recent(lag_history_t *h, int64_t since_us, lag_history_point_t *out, int max);

#endif
