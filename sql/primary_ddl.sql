-- primary_ddl.sql -- DDL capture on the primary (replicate_ddl = on). The
-- source installs this (it is built into the binary) when replicate_ddl is
-- on; creating event triggers needs a superuser, so a DBA may run it by
-- hand instead. It is idempotent.
--
-- Each DDL command becomes a transactional logical message with prefix
-- 'pgferry.ddl' (content: the search_path, a newline, the command text),
-- written at the command's place in its transaction, so the sink runs it at
-- the same point of the stream: before the changes that need it.
--
-- The text is the client's query string (current_query()). Send each DDL
-- statement on its own (psql -f does): a single query string that mixes
-- DDL with data changes would be run whole on the DR side, and its data
-- changes would then also arrive through replication.

CREATE SCHEMA IF NOT EXISTS pgferry;

-- DROP of temporary objects only (or of pgferry's own): nothing to ship.
CREATE OR REPLACE FUNCTION pgferry.ddl_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects()
                    WHERE NOT is_temporary
                      AND schema_name IS DISTINCT FROM 'pgferry'
                      AND object_type NOT IN ('publication', 'subscription', 'event trigger')) THEN
        PERFORM set_config('pgferry.ddl_skip', current_query(), true);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION pgferry.ddl_command_end() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    q text := current_query();
BEGIN
    -- what is not schema: replication plumbing, and anything pgferry's own
    IF tg_tag IN ('CREATE PUBLICATION', 'ALTER PUBLICATION', 'DROP PUBLICATION',
                  'CREATE SUBSCRIPTION', 'ALTER SUBSCRIPTION', 'DROP SUBSCRIPTION',
                  'CREATE EVENT TRIGGER', 'ALTER EVENT TRIGGER', 'DROP EVENT TRIGGER',
                  'SECURITY LABEL', 'GRANT', 'REVOKE', 'ALTER DEFAULT PRIVILEGES') THEN
        RETURN;
    END IF;
    IF current_setting('pgferry.ddl_skip', true) = q THEN
        RETURN;
    END IF;
    IF tg_tag NOT LIKE 'DROP %' AND NOT EXISTS (
            SELECT 1 FROM pg_event_trigger_ddl_commands()
             WHERE NOT in_extension
               AND schema_name IS DISTINCT FROM 'pgferry'
               AND NOT (object_type = 'schema' AND object_identity = 'pgferry')
               AND coalesce(schema_name, '') NOT LIKE 'pg\_temp%') THEN
        RETURN;
    END IF;
    -- one message per query string: a string with several DDL statements
    -- fires this trigger once per statement
    IF current_setting('pgferry.ddl_last', true) = q THEN
        RETURN;
    END IF;
    PERFORM set_config('pgferry.ddl_last', q, true);
    -- the DR side runs it in a transaction block, where CONCURRENTLY is refused
    IF tg_tag IN ('CREATE INDEX', 'DROP INDEX', 'REINDEX') THEN
        q := regexp_replace(q, '\mconcurrently\M', '', 'gi');
    END IF;
    PERFORM pg_logical_emit_message(true, 'pgferry.ddl',
                                    current_setting('search_path') || E'\n' || q);
END
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'pgferry_ddl_sql_drop') THEN
        CREATE EVENT TRIGGER pgferry_ddl_sql_drop ON sql_drop
            EXECUTE FUNCTION pgferry.ddl_sql_drop();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'pgferry_ddl_command_end') THEN
        CREATE EVENT TRIGGER pgferry_ddl_command_end ON ddl_command_end
            EXECUTE FUNCTION pgferry.ddl_command_end();
    END IF;
END
$$;
