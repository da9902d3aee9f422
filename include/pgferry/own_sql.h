/*
 * own_sql.h — the statements over pgferry's own tables in the DR database
 * (sql/dr_state.sql: progress, identity, fence, clone, promotion, and the
 * sequences' hand-over functions), shared by apply, clone and promote so
 * that one table is written one way. Each names its parameters ($n) and the
 * columns it returns; times come back as text in UTC with a "Z" where the
 * session runs with TimeZone = UTC, as every DR session of pgferry does.
 * Plain text constants: each caller runs them its own way (pipeline,
 * plain session), so this module has no connection and no state.
 */
#ifndef PGFERRY_OWN_SQL_H
#define PGFERRY_OWN_SQL_H

/* ---- progress: written in the same DR transaction as the data ------------ */

/* $1 source commit LSN (pg_lsn text), $2 its commit time (timestamptz
 * text): the replication origin's progress, set by this transaction's
 * commit. */
extern const char own_sql_origin_xact_setup[];
/* $1, $2 as above: pgferry.progress, the same point kept with the data (a
 * copy of the database carries it, an origin does not). */
extern const char own_sql_progress_record[];
/* Parallel apply: $1, $2 as above, $3 where the DR transaction before this
 * one left the progress (pgferry.advance_progress). */
extern const char own_sql_progress_advance[];
/* The point apply reached by pgferry.progress (a copy's own): source LSN
 * ('0/0': none), source commit time ('': none). */
extern const char own_sql_progress_point[];
/* The same by the stream's replication origins (pgferry.applied_lsn: with
 * parallel apply, the newest of them), the commit time from progress. */
extern const char own_sql_origin_point[];

/* ---- identity: which primary, database and slot this DR copy follows ----- */

/* The stream's origin, the recorded source LSN and commit time (pgtime µs,
 * NULL: none) and whether the origin exists on this cluster; no row: no
 * stream yet. */
extern const char own_sql_identity_resume[];
/* system_identifier (text), database, slot; no row: no stream yet. */
extern const char own_sql_identity_read[];
/* First contact (apply): $1 system identifier, $2 database, $3 slot, $4
 * whether the copy was seeded externally (boolean); creates the origin. */
extern const char own_sql_identity_record[];
/* After a clone: $1 system identifier, $2 database, $3 slot, $4 origin. */
extern const char own_sql_identity_set[];

/* ---- fence: set by promote, refused by apply ------------------------------ */

/* The first statement of every DR transaction of apply: raises PF001 in a
 * fenced DR database, and PF005 unless the session's origin stands at $1
 * (pg_lsn: where the DR transaction before it leaves it, sql/dr_state.sql). */
extern const char own_sql_group_start_check[];
/* fenced_at, reason; no row: not fenced. */
extern const char own_sql_fence_read[];
/* Waits for the DR transaction being applied; later ones find the fence. */
extern const char own_sql_fence_lock[];
/* $1 reason; returns fenced_at. */
extern const char own_sql_fence_insert[];

/* ---- sequences ------------------------------------------------------------ */

/* $1 qualified sequence name, $2 the primary's value (int8). */
extern const char own_sql_sequence_sync[];
/* $1 margin (int8): every sequence moved past its last value by it; one
 * row per sequence moved. */
extern const char own_sql_sequences_bump[];

/* ---- clone: the initial copy and its steps -------------------------------- */

/* slot, started_at, schema restored (boolean), finished_at. */
extern const char own_sql_clone_state[];
/* finished (boolean), started_at, method: whether apply may start. */
extern const char own_sql_clone_seeded[];
/* $1 slot: a clone starts (again). */
extern const char own_sql_clone_start[];
extern const char own_sql_clone_schema_restored[];
/* $1 system identifier, $2 database, $3 slot: the origin's name, created. */
extern const char own_sql_clone_origin[];
/* $1 consistent LSN, $2 tables, $3 rows, $4 bytes copied. */
extern const char own_sql_clone_finish[];

/* ---- promotion ------------------------------------------------------------ */

/* $1 applied LSN, $2 last applied commit time, $3 primary WAL LSN, $4 known
 * loss transactions, $5 known loss bytes, $6 RPO bound ms, $7 sequences
 * moved, $8 sequence margin, $9 sink reachable, $10 drained, $11 summary;
 * promoted_at is the fence's time. */
extern const char own_sql_promotion_record[];
/* $1 message, $2 reason: the promotion in pgferry.events, at the fence's
 * time. */
extern const char own_sql_promotion_event[];

#endif
