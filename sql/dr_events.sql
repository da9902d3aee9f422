-- dr_events.sql -- the event history on the DR database. The sink records
-- every change of state (source connected or lost, apply error and
-- recovery, schema drift, fence, clock fault, slot WAL retention, the
-- promotion verdict turning safe or unsafe...) here and prunes past
-- lag_history_retention; `pgferry promote` adds the promotion.
-- `pgferry events` and the sink's /v1/events list them.

CREATE SCHEMA IF NOT EXISTS pgferry;

CREATE TABLE IF NOT EXISTS pgferry.events (
    id        bigserial PRIMARY KEY,          -- order of recording
    at        timestamptz NOT NULL,           -- when it happened (the recording host's clock)
    kind      text NOT NULL,                  -- source_lost, apply_error, verdict_unsafe...
    severity  text NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
    message   text NOT NULL,                  -- one sentence for a person
    detail    jsonb                           -- the facts, for scripts
);

CREATE INDEX IF NOT EXISTS events_at ON pgferry.events (at);

-- The last day, newest first, for a quick look.
CREATE OR REPLACE VIEW pgferry.recent_events AS
    SELECT * FROM pgferry.events WHERE at > now() - interval '1 day' ORDER BY id DESC;
