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

/* cfg and lag must outlive it. NULL only when the thread cannot start. */
lag_history_t *lag_history_start(const config_t *cfg, lag_tracker_t *lag, pgf_error_t *err);
void lag_history_stop(lag_history_t *h);

#endif
