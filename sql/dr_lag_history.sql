-- dr_lag_history.sql -- lag history on the DR database. The sink writes one
-- sample a second (and prunes past lag_history_retention); these are the
-- objects it creates, and the views DBAs read.

CREATE SCHEMA IF NOT EXISTS pgferry;

CREATE TABLE IF NOT EXISTS pgferry.lag_history (
    sampled_at               timestamptz PRIMARY KEY,
    applied_lsn              pg_lsn NOT NULL,
    primary_wal_lsn          pg_lsn NOT NULL,
    commit_lag_ms            double precision NOT NULL, -- primary commit to DR commit, last applied
    rpo_bound_ms             double precision,          -- NULL: nothing proved a bound (cannot tell)
    unknown_window_ms        double precision,          -- NULL: unknown
    known_loss_transactions  bigint NOT NULL,
    known_loss_bytes         bigint NOT NULL,
    backlog_transactions     bigint NOT NULL,
    source_state             text NOT NULL
);

-- Tables made by older versions refused the samples in which nothing proved a
-- bound, so exactly the moments of "cannot tell" were missing from the history.
ALTER TABLE pgferry.lag_history ALTER COLUMN rpo_bound_ms DROP NOT NULL,
                                ALTER COLUMN unknown_window_ms DROP NOT NULL;

-- The newest sample, for a quick look.
CREATE OR REPLACE VIEW pgferry.current_lag AS
    SELECT * FROM pgferry.lag_history ORDER BY sampled_at DESC LIMIT 1;

-- Per hour: percentiles and maximum of the commit lag and of the RPO bound.
CREATE OR REPLACE VIEW pgferry.lag_hourly AS
    SELECT date_trunc('hour', sampled_at) AS hour,
           count(*) AS samples,
           percentile_cont(0.5)  WITHIN GROUP (ORDER BY commit_lag_ms) AS lag_p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY commit_lag_ms) AS lag_p95_ms,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY commit_lag_ms) AS lag_p99_ms,
           max(commit_lag_ms) AS lag_max_ms,
           percentile_cont(0.5)  WITHIN GROUP (ORDER BY rpo_bound_ms) AS rpo_p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY rpo_bound_ms) AS rpo_p95_ms,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY rpo_bound_ms) AS rpo_p99_ms,
           max(rpo_bound_ms) AS rpo_max_ms,
           -- percentiles skip the samples without a bound: count them, so an
           -- hour of "cannot tell" never reads as a good hour
           count(*) FILTER (WHERE rpo_bound_ms IS NULL) AS rpo_unknown_samples
      FROM pgferry.lag_history
     GROUP BY 1
     ORDER BY 1 DESC;
