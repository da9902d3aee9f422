-- dr_state.sql -- pgferry's own state on the DR database. The sink, clone and
-- promote run this file (it is built into the binary) on every start; it is
-- idempotent. The stream's replication origin (see pgferry.origin_name)
-- holds the apply progress: the source commit LSN of the last applied
-- transaction, committed atomically with it.

CREATE SCHEMA IF NOT EXISTS pgferry;

-- The primary this DR copy follows, recorded on first contact; any other
-- stream is refused afterwards (crossed wires after a failover lose data).
CREATE TABLE IF NOT EXISTS pgferry.identity (
    singleton          boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    system_identifier  numeric NOT NULL,
    database           text NOT NULL,
    slot               text NOT NULL,
    first_contact      timestamptz NOT NULL DEFAULT now(),
    origin             text
);
-- before 0.2 the table had no origin column: every DR database used the one
-- origin "pgferry" (migrated below)
ALTER TABLE pgferry.identity ADD COLUMN IF NOT EXISTS origin text;

-- Fencing: once promoted, the sink refuses every stream, durably. A row
-- here means "fenced".
CREATE TABLE IF NOT EXISTS pgferry.fence (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    fenced_at     timestamptz NOT NULL DEFAULT now(),
    reason        text NOT NULL
);

-- Every DR transaction of the sink calls this first. The ROW SHARE lock
-- conflicts with the EXCLUSIVE lock that `pgferry promote` takes before it
-- writes the fence: promote waits for the transaction being applied, and
-- every later one waits for promote and then sees the fence. So no change
-- is applied after the fence commits, whatever the sink is doing.
CREATE OR REPLACE FUNCTION pgferry.assert_not_fenced() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    f record;
BEGIN
    LOCK TABLE pgferry.fence IN ROW SHARE MODE;
    SELECT fenced_at, reason INTO f FROM pgferry.fence;
    IF FOUND THEN
        RAISE EXCEPTION 'this DR database was promoted at % (%); it applies nothing more',
            f.fenced_at, f.reason
            USING ERRCODE = 'PF001';
    END IF;
END
$$;

-- Every DR transaction of the sink starts with this: the fence check, and
-- the proof that the sink's DR transaction before it committed. The sink
-- sends a group's COMMIT and applies the next group without waiting for its
-- result; had that COMMIT failed, the origin would not stand at expected,
-- and this transaction must not commit either: it would skip the failed one.
-- The session holds the origin, so nothing else moves it meanwhile.
CREATE OR REPLACE FUNCTION pgferry.assert_apply_position(expected pg_lsn) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    origin_at pg_lsn := coalesce(pg_replication_origin_session_progress(false), '0/0');
BEGIN
    PERFORM pgferry.assert_not_fenced();
    IF origin_at <> expected THEN
        RAISE EXCEPTION 'the DR transaction before this one did not commit: the origin is at %, not at %',
            origin_at, expected
            USING ERRCODE = 'PF005';
    END IF;
END
$$;

-- Parallel apply (apply_workers > 1): several DR connections, each with an
-- origin of its own, commit strictly in source commit order, and each DR
-- transaction records its progress with this just before its COMMIT, where
-- the one before it left the progress. The row lock makes it wait until
-- that transaction's COMMIT finished (so the commit records reach the WAL
-- in order); should that COMMIT have failed, the progress is not at
-- expected and this transaction fails too instead of committing past it.
-- The fence check is here, at commit time, so that pgferry promote waits
-- only for the one transaction committing.
CREATE OR REPLACE FUNCTION pgferry.advance_progress(expected pg_lsn, new_lsn pg_lsn,
                                                    new_commit_time timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    at pg_lsn;
BEGIN
    PERFORM pgferry.assert_not_fenced();
    UPDATE pgferry.progress SET source_lsn = new_lsn, source_commit_time = new_commit_time,
           applied_at = now()
     WHERE source_lsn = expected;
    IF FOUND THEN
        RETURN;
    END IF;
    SELECT source_lsn INTO at FROM pgferry.progress;
    IF NOT FOUND AND expected = '0/0' THEN
        INSERT INTO pgferry.progress VALUES (true, new_lsn, new_commit_time, now());
        RETURN;
    END IF;
    RAISE EXCEPTION 'the DR transaction before this one did not commit: the progress is at %, not at %',
        coalesce(at, '0/0'), expected
        USING ERRCODE = 'PF005';
END
$$;

-- Where apply stands: the newest progress over the stream's origin and the
-- origins of its parallel apply connections ("<origin>_w<k>", also those of
-- an earlier run with more of them). Commits happen in source commit order,
-- so the newest is where everything before it is applied. flushed: only
-- what the DR server's WAL holds on disk.
CREATE OR REPLACE FUNCTION pgferry.applied_lsn(flushed boolean) RETURNS pg_lsn
LANGUAGE sql STABLE AS $$
    SELECT max(pg_replication_origin_progress(o.roname, flushed))
      FROM pg_replication_origin o, pgferry.identity i
     WHERE o.roname = i.origin
        OR (left(o.roname, length(i.origin) + 2) = i.origin || '_w'
            AND substr(o.roname, length(i.origin) + 3) ~ '^[0-9]+$')
$$;

-- Every UPDATE and DELETE of the sink ends in a check of how many rows it
-- changed; when that is not exactly one, the check calls this, so the
-- statement fails and nothing of its DR transaction can commit (the COMMIT
-- that follows it in the pipeline is skipped by the server).
CREATE OR REPLACE FUNCTION pgferry.row_not_found(op text, rel text, nrows bigint) RETURNS int
LANGUAGE plpgsql AS $$
BEGIN
    IF nrows = 0 THEN
        RAISE EXCEPTION 'row to % not found on the DR database in %', op, rel
            USING ERRCODE = 'PF002',
                  DETAIL = 'The DR copy differs from the primary: the row the primary changed does not exist on the DR side.';
    END IF;
    RAISE EXCEPTION 'row to % found % times on the DR database in %', op, nrows, rel
        USING ERRCODE = 'PF002',
              DETAIL = 'The DR copy differs from the primary: a change by key must match exactly one row (is the key unique on the DR side?).';
END
$$;

-- A row inserted and deleted again within one DR transaction is not
-- written (net changes), but its key must not exist on the DR side: in
-- order, the insert would have failed.
CREATE OR REPLACE FUNCTION pgferry.row_exists(rel text) RETURNS int
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'row to insert already exists on the DR database in %', rel
        USING ERRCODE = 'PF002',
              DETAIL = 'The DR copy differs from the primary: the DR side holds a row with the key of a row the primary inserted (and deleted again).';
END
$$;

-- Whether values of a type can be compared with the type's own equality
-- (what PostgreSQL's typcache calls its equality operator: the default
-- btree or hash operator class; arrays, composites, ranges and domains
-- through what they are made of). The sink finds a row of a REPLICA
-- IDENTITY FULL table by each column's equality where there is one, and
-- by the exact text of the value read into its type where there is none
-- (json, point, xml...).
CREATE OR REPLACE FUNCTION pgferry.type_has_equality(t oid) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    ty record;
BEGIN
    SELECT typtype, typbasetype, typelem, typrelid, typsubscript::text AS subscript
        INTO ty FROM pg_catalog.pg_type WHERE oid = t;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF ty.typtype = 'd' THEN
        RETURN pgferry.type_has_equality(ty.typbasetype);
    END IF;
    IF ty.subscript = 'array_subscript_handler' THEN
        RETURN pgferry.type_has_equality(ty.typelem);
    END IF;
    IF ty.typtype = 'c' THEN
        RETURN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                           WHERE a.attrelid = ty.typrelid AND a.attnum > 0
                             AND NOT a.attisdropped
                             AND NOT pgferry.type_has_equality(a.atttypid));
    END IF;
    IF ty.typtype = 'r' THEN
        RETURN pgferry.type_has_equality((SELECT rngsubtype FROM pg_catalog.pg_range
                                          WHERE rngtypid = t));
    END IF;
    IF ty.typtype = 'm' THEN
        RETURN pgferry.type_has_equality((SELECT rngsubtype FROM pg_catalog.pg_range
                                          WHERE rngmultitypid = t));
    END IF;
    IF ty.typtype = 'e' THEN
        RETURN true;
    END IF;
    RETURN EXISTS (SELECT 1 FROM pg_catalog.pg_opclass c
                   JOIN pg_catalog.pg_am m ON m.oid = c.opcmethod
                   WHERE c.opcdefault AND m.amname IN ('btree', 'hash')
                     AND (c.opcintype = t
                          OR EXISTS (SELECT 1 FROM pg_catalog.pg_cast k
                                     WHERE k.castsource = t AND k.casttarget = c.opcintype
                                       AND k.castmethod = 'b' AND k.castcontext = 'i')));
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

-- Replication origins are cluster-wide: two DR databases on one DR cluster
-- that shared one would move each other's resume point and skip
-- transactions. So each stream has its own, named for it (system
-- identifier, database and slot of the primary; at most 20 + 63 + 63 bytes
-- plus the separators, well under PostgreSQL's limit of 512).
CREATE OR REPLACE FUNCTION pgferry.origin_name(system_identifier numeric, database text, slot text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT format('pgferry_%s_%s_%s', system_identifier, database, slot)
$$;

-- The origin this DR database applies through (NULL before first contact).
CREATE OR REPLACE FUNCTION pgferry.origin() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT origin FROM pgferry.identity
$$;

-- The origins of parallel apply's workers (<origin>_w<k>) that a dropped DR
-- database of the same stream left behind: the applied position is the
-- newest of the stream's origins (applied_lsn), so one of them would count
-- in a new copy's position. A new stream's origin is refused while they
-- exist.
CREATE OR REPLACE FUNCTION pgferry.refuse_worker_origins(o text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    found text;
BEGIN
    SELECT string_agg(roname, ', ' ORDER BY roname) INTO found
      FROM pg_replication_origin
     WHERE left(roname, length(o) + 2) = o || '_w'
       AND substr(roname, length(o) + 3) ~ '^[0-9]+$';
    IF found IS NOT NULL THEN
        RAISE EXCEPTION 'replication origins of an earlier parallel apply of this stream exist already on this DR cluster: %', found
            USING ERRCODE = 'PF003',
                  DETAIL = 'A dropped DR database that followed the same stream left them behind; '
                           'they would count in this copy''s applied position.',
                  HINT = format('If nothing uses them any more: SELECT pg_replication_origin_drop(roname) '
                                'FROM pg_replication_origin WHERE starts_with(roname, %L)', o || '_w');
    END IF;
END
$$;

-- First contact: records the identity and creates the stream's origin in
-- one transaction. An origin of that name that exists already belongs to
-- another DR database of this cluster following the same stream (or is a
-- leftover of a dropped one): sharing it would skip transactions, so the
-- identity is not recorded and the caller is told. With external (the
-- operator set initial_copy = external), it also records that the copy was
-- seeded outside pgferry clone.
CREATE OR REPLACE FUNCTION pgferry.record_identity(sysid numeric, db text, slot_name text,
                                                   external boolean)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    o text := pgferry.origin_name(sysid, db, slot_name);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pgferry.identity) THEN
        IF EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = o) THEN
            RAISE EXCEPTION 'the replication origin "%" exists already on this DR cluster', o
                USING ERRCODE = 'PF003',
                      DETAIL = 'Another DR database of this cluster follows the same stream, '
                               'or a dropped one left it behind. Two DR databases sharing an '
                               'origin move each other''s resume point and skip transactions.',
                      HINT = format('Give each DR database its own slot. If nothing uses the '
                                    'origin any more: SELECT pg_replication_origin_drop(%L)', o);
        END IF;
        PERFORM pgferry.refuse_worker_origins(o);
        PERFORM pg_replication_origin_create(o);
        INSERT INTO pgferry.identity (system_identifier, database, slot, origin)
            VALUES (sysid, db, slot_name, o);
    END IF;
    IF external THEN
        INSERT INTO pgferry.clone (slot, method, started_at, finished_at)
            VALUES (slot_name, 'external', now(), now())
            ON CONFLICT (singleton) DO NOTHING;
    END IF;
    RETURN (SELECT origin FROM pgferry.identity);
END
$$;

-- Whether the stream's origin exists and is this clone's (a rerun); raises
-- when it is another's, or when parallel apply's origins of the stream are
-- left: clone asks before it creates its slot, and again at the hand-over.
CREATE OR REPLACE FUNCTION pgferry.clone_origin_check(sysid numeric, db text, slot_name text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    o text := pgferry.origin_name(sysid, db, slot_name);
BEGIN
    IF EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = o) THEN
        IF (SELECT origin FROM pgferry.clone) IS DISTINCT FROM o THEN
            RAISE EXCEPTION 'the replication origin "%" exists already on this DR cluster', o
                USING ERRCODE = 'PF003',
                      DETAIL = 'Another DR database of this cluster follows the same stream, '
                               'or a dropped one left it behind.',
                      HINT = format('Give each DR database its own slot (slot_name). If nothing '
                                    'uses the origin any more: SELECT '
                                    'pg_replication_origin_drop(%L)', o);
        END IF;
        RETURN true;
    END IF;
    PERFORM pgferry.refuse_worker_origins(o);
    RETURN false;
END
$$;

-- `pgferry clone`: the origin of the stream it hands over to, created (in
-- its own transaction, so that the hand-over can commit its progress
-- atomically) and noted in pgferry.clone; a rerun after an interruption
-- takes it again. One that exists and is not this clone's belongs to
-- another DR database following the same stream.
CREATE OR REPLACE FUNCTION pgferry.clone_origin(sysid numeric, db text, slot_name text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    o text := pgferry.origin_name(sysid, db, slot_name);
BEGIN
    IF NOT pgferry.clone_origin_check(sysid, db, slot_name) THEN
        PERFORM pg_replication_origin_create(o);
    END IF;
    UPDATE pgferry.clone SET origin = o;
    RETURN o;
END
$$;

-- The last sequence values shipped from the primary, for promote's margin.
CREATE TABLE IF NOT EXISTS pgferry.sequence_state (
    sequence_name  text PRIMARY KEY,
    primary_value  bigint NOT NULL,
    synced_at      timestamptz NOT NULL DEFAULT now()
);

-- Sequences: the source ships the primary's values in the stream; the sink
-- calls this for each, in the DR transaction that applies the message. A
-- sequence never moves backwards (a DBA may have set it ahead by hand). A
-- sequence missing on the DR side is not created: the answer is 'missing'
-- and the sink reports it.
CREATE OR REPLACE FUNCTION pgferry.sync_sequence(seq text, value bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    rel regclass := to_regclass(seq);
    cur bigint;
    called boolean;
    incr bigint;
BEGIN
    INSERT INTO pgferry.sequence_state VALUES (seq, value, now())
        ON CONFLICT (sequence_name) DO UPDATE
        SET primary_value = excluded.primary_value, synced_at = excluded.synced_at;
    IF rel IS NULL THEN
        RETURN 'missing';
    END IF;
    EXECUTE format('SELECT last_value, is_called FROM %s', rel) INTO cur, called;
    SELECT seqincrement INTO incr FROM pg_sequence WHERE seqrelid = rel;
    IF called AND ((incr > 0 AND value <= cur) OR (incr < 0 AND value >= cur)) THEN
        RETURN 'kept';
    END IF;
    PERFORM setval(rel, value, true);
    RETURN 'set';
END
$$;

-- At promotion: every sequence moves `margin` increments past the larger of
-- its own value and the primary's last shipped one (the primary may have
-- handed out more since the last sync), within the sequence's bounds.
CREATE OR REPLACE FUNCTION pgferry.bump_sequences(margin bigint)
RETURNS TABLE (sequence_name text, old_value bigint, new_value bigint)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    cur bigint;
    prim bigint;
    base numeric;
    target numeric;
BEGIN
    FOR r IN SELECT s.seqrelid::regclass AS rel, format('%I.%I', n.nspname, c.relname) AS name,
                    s.seqincrement AS incr, s.seqmin AS lo, s.seqmax AS hi
               FROM pg_sequence s
               JOIN pg_class c ON c.oid = s.seqrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname <> 'pgferry' AND n.nspname NOT LIKE 'pg\_temp%'
              ORDER BY 2 LOOP
        EXECUTE format('SELECT last_value FROM %s', r.rel) INTO cur;
        SELECT st.primary_value INTO prim FROM pgferry.sequence_state st
         WHERE st.sequence_name = r.name;
        base := cur;
        IF prim IS NOT NULL AND ((r.incr > 0 AND prim > base) OR (r.incr < 0 AND prim < base)) THEN
            base := prim;
        END IF;
        target := greatest(least(base + margin::numeric * r.incr, r.hi), r.lo);
        PERFORM setval(r.rel, target::bigint, true);
        sequence_name := r.name;
        old_value := cur;
        new_value := target::bigint;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Promotions of this DR database (`pgferry promote`): the point it took
-- over from, and what was known to be lost at that moment.
CREATE TABLE IF NOT EXISTS pgferry.promotion (
    promoted_at                  timestamptz PRIMARY KEY DEFAULT now(),
    applied_lsn                  pg_lsn NOT NULL,
    last_applied_commit_time     timestamptz,
    primary_wal_lsn              pg_lsn,
    known_loss_transactions      bigint,
    known_loss_bytes             bigint,
    rpo_bound_ms                 double precision,
    sequences_moved              integer NOT NULL,
    sequence_margin              bigint NOT NULL,
    sink_reachable               boolean NOT NULL,
    drained                      boolean NOT NULL,
    summary                      text NOT NULL
);

-- `pgferry drill`: failovers rehearsed on a copy of this DR database while
-- the relay ran: the copy's point, what a promotion then would have lost,
-- each step's time and the smoke script's result.
CREATE TABLE IF NOT EXISTS pgferry.drills (
    started_at               timestamptz PRIMARY KEY,
    finished_at              timestamptz NOT NULL,
    ok                       boolean NOT NULL,
    copy_name                text NOT NULL,
    kept                     boolean NOT NULL,     -- the promoted copy was kept (--keep)
    source_lsn               pg_lsn,               -- the copy holds the stream up to here
    source_commit_time       timestamptz,          -- that commit's time on the primary
    rpo_bound_ms             double precision,     -- the sink's, at the snapshot (NULL: no sink)
    known_loss_transactions  bigint,
    known_loss_bytes         bigint,
    sink_reachable           boolean NOT NULL,
    steps                    jsonb NOT NULL,       -- [{"step": "copy", "ms": 812.3}, ...]
    rto_ms                   double precision,     -- promote + smoke
    smoke_script             text,
    smoke_result             text,                 -- 'ok' or the error
    error                    text                  -- the step that failed and why
);

-- `pgferry clone`: where a clone of this DR database stands. A clone that
-- was interrupted (started, not finished) is started over by the next run;
-- a finished one is never overwritten.
CREATE TABLE IF NOT EXISTS pgferry.clone (
    singleton           boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    slot                text NOT NULL,
    started_at          timestamptz NOT NULL DEFAULT now(),
    schema_restored_at  timestamptz,
    finished_at         timestamptz,
    consistent_lsn      pg_lsn,
    tables              integer,
    rows_copied         bigint,
    bytes_copied        bigint
);
-- how the copy was seeded: 'clone', or 'external' (the operator said so with
-- initial_copy = external; the sink records it on first contact); and the
-- origin a clone created for its stream
ALTER TABLE pgferry.clone ADD COLUMN IF NOT EXISTS method text NOT NULL DEFAULT 'clone';
ALTER TABLE pgferry.clone ADD COLUMN IF NOT EXISTS origin text;

-- Upgrade from the single origin "pgferry": an identity without an origin
-- gets its stream's own, at the position pgferry.progress records (written
-- in the same DR transactions as the data, so it is this database's own
-- truth even where another DR database moved the shared origin since).
DO $$
DECLARE
    id record;
    o text;
    done pg_lsn;
    shared pg_lsn;
BEGIN
    SELECT * INTO id FROM pgferry.identity WHERE origin IS NULL;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    o := pgferry.origin_name(id.system_identifier, id.database, id.slot);
    SELECT source_lsn INTO done FROM pgferry.progress;
    IF EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = 'pgferry') THEN
        shared := pg_replication_origin_progress('pgferry', false);
    END IF;
    IF done IS NULL AND shared IS NOT NULL THEN
        RAISE EXCEPTION 'cannot move this DR database to its own replication origin: the '
                        'shared origin "pgferry" is at % but this database has no progress '
                        'record', shared
            USING ERRCODE = 'PF004',
                  HINT = 'Nothing tells where this copy stands: build it again with '
                         'pgferry clone into a new database.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = o) THEN
        RAISE EXCEPTION 'the replication origin "%" exists already on this DR cluster', o
            USING ERRCODE = 'PF003',
                  HINT = 'Another DR database follows the same stream; give each its own slot.';
    END IF;
    PERFORM pg_replication_origin_create(o);
    IF done IS NOT NULL THEN
        PERFORM pg_replication_origin_advance(o, done);
    END IF;
    UPDATE pgferry.identity SET origin = o;
    IF shared IS DISTINCT FROM done THEN
        RAISE WARNING 'the shared replication origin "pgferry" is at % but this DR database '
                      'applied up to %: another DR database on this cluster moved it',
                      shared, done
            USING HINT = 'Transactions may have been skipped before this upgrade: run pgferry verify.';
    END IF;
END
$$;
