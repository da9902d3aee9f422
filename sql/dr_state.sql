-- dr_state.sql — pgferry's own state on the DR database. The sink runs this
-- (idempotently) on every start; it is here for DBAs to read and review.
-- The replication origin "pgferry" holds the apply progress: the source
-- commit LSN of the last applied transaction, committed atomically with it.

CREATE SCHEMA IF NOT EXISTS pgferry;

-- The primary this DR copy follows, recorded on first contact; any other
-- stream is refused afterwards (crossed wires after a failover lose data).
CREATE TABLE IF NOT EXISTS pgferry.identity (
    singleton          boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    system_identifier  numeric NOT NULL,
    database           text NOT NULL,
    slot               text NOT NULL,
    first_contact      timestamptz NOT NULL DEFAULT now()
);

-- Fencing: once promoted, the sink refuses every stream, durably.
CREATE TABLE IF NOT EXISTS pgferry.fence (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    fenced_at     timestamptz NOT NULL DEFAULT now(),
    reason        text NOT NULL
);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = 'pgferry') THEN
        PERFORM pg_replication_origin_create('pgferry');
    END IF;
END
$$;

-- The last applied source commit, written in the same DR transaction as the
-- origin's progress, so lag figures are right at once after a restart.
CREATE TABLE IF NOT EXISTS pgferry.progress (
    singleton           boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    source_lsn          pg_lsn NOT NULL,
    source_commit_time  timestamptz NOT NULL,
    applied_at          timestamptz NOT NULL
);
