-- dr_setup.sql -- what a DBA runs once, as a superuser, in the DR database
-- (created empty, or with the schema clone will fill) before starting
-- `pgferry sink` or `pgferry clone`, so that both run as a role that is no
-- superuser (PostgreSQL 15 or later):
--
--   createdb app
--   psql -d app -f /usr/share/pgferry/sql/dr_setup.sql
--   psql -d app -c '\password pgferry_dr'
--
-- pg_hba.conf on the DR server (the sink connects as an ordinary client):
--   host  app  pgferry_dr  127.0.0.1/32  scram-sha-256
--
-- Everything below is idempotent: run it again after adding schemas or
-- tables that another role created.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pgferry_dr') THEN
        CREATE ROLE pgferry_dr WITH LOGIN;
    END IF;
END
$$;

-- The sink keeps its state in its own schema "pgferry" (sql/dr_state.sql,
-- sql/dr_lag_history.sql, sql/dr_events.sql), which it creates; clone also creates the schemas
-- of the published tables. :"DBNAME" is the database psql is connected to.
GRANT CREATE ON DATABASE :"DBNAME" TO pgferry_dr;

-- The apply progress is a replication origin, advanced in the same DR
-- transaction as the changes it covers. These functions are the
-- superuser's unless granted.
GRANT SELECT ON pg_catalog.pg_replication_origin TO pgferry_dr;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_replication_origin_create(text) TO pgferry_dr;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_replication_origin_oid(text) TO pgferry_dr;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_replication_origin_session_setup(text) TO pgferry_dr;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_replication_origin_session_reset() TO pgferry_dr;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_replication_origin_session_is_setup() TO pgferry_dr;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_replication_origin_session_progress(boolean) TO pgferry_dr;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_replication_origin_xact_setup(pg_lsn, timestamp with time zone) TO pgferry_dr;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_replication_origin_xact_reset() TO pgferry_dr;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_replication_origin_advance(text, pg_lsn) TO pgferry_dr;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_replication_origin_progress(text, boolean) TO pgferry_dr;

-- Applied changes fire no triggers and check no foreign keys on the DR
-- side (the primary did both): session_replication_role = replica, which
-- only a superuser may set unless granted.
GRANT SET ON PARAMETER session_replication_role TO pgferry_dr;

-- The replicated tables and sequences, in every schema they live in (repeat
-- for each). CREATE lets clone create the tables (PostgreSQL 15 grants no
-- one CREATE on schema public); tables clone creates are the DR role's own
-- and need none of the grants that follow, tables restored by the DBA do.
GRANT USAGE, CREATE ON SCHEMA public TO pgferry_dr;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO pgferry_dr;
GRANT SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO pgferry_dr;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO pgferry_dr;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, UPDATE ON SEQUENCES TO pgferry_dr;

-- replicate_ddl = on: the sink runs the primary's DDL as this role, so the
-- role must own the tables it alters (ALTER TABLE ... OWNER TO pgferry_dr).

-- pgferry drill copies the DR database into a new database of this cluster
-- (and drops it after): the role needs CREATEDB. Only when asked for:
-- psql -v drill=on -d app -f dr_setup.sql
\if :{?drill}
ALTER ROLE pgferry_dr CREATEDB;
\endif
