/*
 * own_sql.c — the statements over pgferry's own tables (own_sql.h), in one
 * place beside the schema they use (sql/dr_state.sql), so that apply, clone
 * and promote write each table the same way. Text only: no connection.
 */
#include "pgferry/own_sql.h"

/* ---- progress ---- */

const char own_sql_origin_xact_setup[] =
        "SELECT pg_replication_origin_xact_setup($1::pg_lsn, $2::timestamptz)";

const char own_sql_progress_record[] =
        "INSERT INTO pgferry.progress VALUES (true, $1::pg_lsn, $2::timestamptz, "
        "now()) ON CONFLICT (singleton) DO UPDATE SET source_lsn = "
        "excluded.source_lsn, source_commit_time = excluded.source_commit_time, "
        "applied_at = excluded.applied_at";

/* parallel apply: the progress where the DR transaction before left it */
const char own_sql_progress_advance[] =
        "SELECT pgferry.advance_progress($3::pg_lsn, $1::pg_lsn, $2::timestamptz)";

const char own_sql_progress_point[] =
        "SELECT coalesce((SELECT source_lsn FROM pgferry.progress), "
        "'0/0')::text, coalesce((SELECT to_char(source_commit_time, "
        "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM pgferry.progress), '')";

const char own_sql_origin_point[] =
        "SELECT coalesce(pgferry.applied_lsn(true), '0/0')::text, coalesce((SELECT "
        "to_char(source_commit_time, "
        "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM pgferry.progress), '')";

/* ---- identity ---- */

const char own_sql_identity_resume[] =
        "SELECT i.origin, p.source_lsn, "
        "(extract(epoch FROM p.source_commit_time - '2000-01-01 00:00:00+00'::timestamptz) "
        "* 1000000)::int8, EXISTS (SELECT 1 FROM pg_replication_origin o WHERE "
        "o.roname = i.origin) FROM pgferry.identity i LEFT JOIN pgferry.progress p ON "
        "true";

const char own_sql_identity_read[] =
        "SELECT system_identifier::text, database, slot FROM pgferry.identity";

const char own_sql_identity_record[] =
        "SELECT pgferry.record_identity($1::numeric, $2, $3, $4::boolean)";

const char own_sql_identity_set[] =
        "INSERT INTO pgferry.identity (system_identifier, database, slot, origin) "
        "VALUES ($1::numeric, $2, $3, $4) ON CONFLICT (singleton) DO UPDATE SET "
        "system_identifier = excluded.system_identifier, database = "
        "excluded.database, slot = excluded.slot, first_contact = now(), origin = "
        "excluded.origin";

/* ---- fence ---- */

const char own_sql_group_start_check[] = "SELECT pgferry.assert_apply_position($1::pg_lsn)";

const char own_sql_fence_read[] = "SELECT fenced_at, reason FROM pgferry.fence";

const char own_sql_fence_lock[] = "LOCK TABLE pgferry.fence IN EXCLUSIVE MODE";

const char own_sql_fence_insert[] = "INSERT INTO pgferry.fence (reason) VALUES ($1) RETURNING "
                                    "to_char(fenced_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";

/* ---- sequences ---- */

const char own_sql_sequence_sync[] = "SELECT pgferry.sync_sequence($1, $2::int8)";

const char own_sql_sequences_bump[] = "SELECT * FROM pgferry.bump_sequences($1::int8)";

/* ---- clone ---- */

const char own_sql_clone_state[] =
        "SELECT slot, started_at, schema_restored_at IS NOT NULL, finished_at FROM pgferry.clone";

const char own_sql_clone_seeded[] =
        "SELECT finished_at IS NOT NULL, started_at, method FROM pgferry.clone";

const char own_sql_clone_start[] =
        "INSERT INTO pgferry.clone (slot) VALUES ($1) ON CONFLICT "
        "(singleton) DO UPDATE SET slot = excluded.slot, started_at = now()";

const char own_sql_clone_schema_restored[] = "UPDATE pgferry.clone SET schema_restored_at = now()";

const char own_sql_clone_origin[] = "SELECT pgferry.clone_origin($1::numeric, $2, $3)";

const char own_sql_clone_finish[] =
        "UPDATE pgferry.clone SET finished_at = now(), consistent_lsn = $1::pg_lsn, "
        "tables = $2::int, rows_copied = $3::int8, bytes_copied = $4::int8";

/* ---- promotion ---- */

const char own_sql_promotion_record[] =
        "INSERT INTO pgferry.promotion (promoted_at, applied_lsn, "
        "last_applied_commit_time, primary_wal_lsn, known_loss_transactions, "
        "known_loss_bytes, rpo_bound_ms, sequences_moved, sequence_margin, "
        "sink_reachable, drained, summary) SELECT fenced_at, $1::pg_lsn, "
        "$2::timestamptz, $3::pg_lsn, $4::int8, $5::int8, $6::float8, $7::int4, "
        "$8::int8, $9::bool, $10::bool, $11 FROM pgferry.fence";

const char own_sql_promotion_event[] = "INSERT INTO pgferry.events (at, kind, severity, message, "
                                       "detail) SELECT fenced_at, 'promoted', 'warning', $1, "
                                       "jsonb_build_object('reason', $2::text) FROM pgferry.fence";
