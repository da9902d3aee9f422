-- primary_setup.sql — what a DBA runs once on the primary before starting
-- `pgferry source`. The source creates its own slot; it needs a role with
-- REPLICATION (for the slot and the stream) that may also call
-- pg_logical_emit_message (heartbeats) and read the published tables.
--
--   postgresql.conf:  wal_level = logical
--                     max_replication_slots, max_wal_senders >= 1 more than now
--                     track_commit_timestamp = on   (optional: commit times for verify)
--
-- Publish every table (or list them: CREATE PUBLICATION pgferry FOR TABLE a, b):
CREATE PUBLICATION pgferry FOR ALL TABLES WITH (publish_via_partition_root = true);

-- A role for the source (choose your own password and pg_hba.conf entry):
-- CREATE ROLE pgferry_source WITH LOGIN REPLICATION PASSWORD '...';
-- GRANT SELECT ON ALL TABLES IN SCHEMA public TO pgferry_source;  -- for verify and clone
