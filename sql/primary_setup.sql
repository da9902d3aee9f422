-- primary_setup.sql -- what a DBA runs once, as a superuser, in the
-- replicated database on the primary before starting `pgferry source`:
--
--   psql -d app -f /usr/share/pgferry/sql/primary_setup.sql
--   psql -d app -c '\password pgferry_source'
--
-- postgresql.conf first (a restart is needed for the first three):
--   wal_level = logical
--   max_replication_slots, max_wal_senders: at least one more than in use now
--   track_commit_timestamp = on   (optional: commit times for verify)
--
-- pg_hba.conf: a logical replication connection is matched by the DATABASE
-- column (the database name), not by the keyword "replication", which is
-- only for physical replication:
--   host  app  pgferry_source  10.0.0.5/32  scram-sha-256
-- (10.0.0.5: where the source runs; 127.0.0.1/32 when it runs on the primary).
--
-- Everything below is idempotent: run it again after adding schemas.

-- The role of the source. REPLICATION lets it create the slot and read the
-- stream; it needs no other attribute. Set its password with \password.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pgferry_source') THEN
        CREATE ROLE pgferry_source WITH LOGIN REPLICATION;
    END IF;
END
$$;

-- What the source replicates: every table, or list them
-- (CREATE PUBLICATION pgferry FOR TABLE a, b). publish_via_partition_root
-- sends a partitioned table's rows under its own name.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = 'pgferry') THEN
        CREATE PUBLICATION pgferry FOR ALL TABLES WITH (publish_via_partition_root = true);
    END IF;
END
$$;

-- Reading the tables: clone and verify copy and compare them with this role.
-- Reading the sequences: the source ships their values every
-- sequence_sync_interval, and PostgreSQL shows a sequence's value only to a
-- role that may read it (pg_sequences.last_value is NULL otherwise, and the
-- sequence would silently not be shipped, and a promoted DR copy would hand
-- out numbers the primary already used; source and clone refuse to start
-- until every sequence of a published table is readable). Repeat for every
-- schema you publish.
GRANT USAGE ON SCHEMA public TO pgferry_source;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO pgferry_source;
GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO pgferry_source;
-- the same for tables and sequences the current role creates later (add
-- FOR ROLE app_owner for those another role creates)
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO pgferry_source;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON SEQUENCES TO pgferry_source;

-- Heartbeats and sequence values travel as logical messages written with
-- pg_logical_emit_message, which every role may call.

-- rpo_guard = on (the source makes the primary's commits wait for the DR
-- side while the RPO bound is over its budget) needs the right to change
-- synchronous_standby_names and to reload the configuration. Only when
-- asked for: psql -v rpo_guard=on -d app -f primary_setup.sql (a role that
-- may set this parameter can make every commit wait).
\if :{?rpo_guard}
GRANT ALTER SYSTEM ON PARAMETER synchronous_standby_names TO pgferry_source;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() TO pgferry_source;
\endif

-- replicate_ddl = on also needs the event triggers of primary_ddl.sql, which
-- only a superuser can create: psql -d app -f primary_ddl.sql
