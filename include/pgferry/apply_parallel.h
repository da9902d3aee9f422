/*
 * apply_parallel.h — parallel apply with source commit order kept
 * (apply_workers > 1): the design and why it is exact. The coordinator and
 * the workers are relay/sink/ (sink_parallel.c, parallel_units.c,
 * parallel_keys.c), the dependency tracker
 * depend.h; apply_workers = 1 runs the one-connection path unchanged.
 *
 * Threads and connections
 *
 *   The sink's apply thread stays the one reader of the queue and becomes
 *   the coordinator. It keeps its own apply_t on the stream's origin
 *   ("main" connection) for everything that must run alone: the identity
 *   check on a hello, the fence and seeding checks, idle progress from
 *   keepalives, and every barrier transaction (below). Beside it run
 *   apply_workers - 1 worker threads, each with an apply_t of its own on a
 *   DR connection of its own, holding a replication origin of its own,
 *   named "<stream origin>_w<k>" (origins are held by one session on
 *   PostgreSQL 15, so no two connections can share the stream's).
 *
 * What the coordinator does with each source transaction
 *
 *   1. It copies the transaction's records out of the queue item into the
 *      unit being filled (a run of consecutive transactions, at most
 *      apply_group_max_transactions, cut when input pauses) until its
 *      COMMIT.
 *   2. It computes the transaction's footprint (depend.h): for each row
 *      change, a hash of (table, index, key values) for the replica
 *      identity key and for each unique index of the DR table (read from
 *      pg_index on a connection of its own, once per relation and
 *      generation), from the
 *      old tuple and the new tuple. A change whose key or unique-index
 *      values are not all known (an unchanged TOAST column, a DELETE whose
 *      old tuple carries only the replica identity while the table has other
 *      unique indexes), a table without a usable key, a TRUNCATE, DDL,
 *      a sequence or any pgferry message, a streamed transaction and a
 *      huge change make the transaction a BARRIER.
 *   3. It gives the transaction the next sequence number S (source commit
 *      order) and admits it: depend_admit says which earlier transactions
 *      still in flight it conflicts with. None: any idle worker. All on one
 *      worker: that worker (its queue runs in order, so the transaction is
 *      applied after the one it depends on, never concurrently). On
 *      several: it waits until all but one of them committed. A barrier
 *      waits until everything before it committed and runs on the main
 *      connection; nothing after it is admitted until it committed.
 *   4. Relation and Type messages are decoded by the coordinator too (its
 *      relcache gives the key columns). The transaction that carries one is
 *      a barrier (a change before it in the same transaction may follow
 *      the older description, so it stays in place); once it committed,
 *      every worker is sent it ahead of its next unit.
 *
 * What a worker does with transaction S
 *
 *   BEGIN; its statements, exactly as today (rows.c, batch.c, coalesce);
 *   then it waits for its turn: every transaction before S committed (a
 *   shared counter under a mutex and condition variable). Then, in order:
 *   the fence check (LOCK pgferry.fence IN ROW SHARE, so promote waits for
 *   the one committing and no later one commits past the fence; taken at
 *   the turn, not at BEGIN, so that promote never waits on a transaction
 *   that waits for its turn behind another that waits for promote: it is
 *   inside advance_progress),
 *   pg_replication_origin_xact_setup(end of S) on its own origin,
 *   pgferry.advance_progress(expected = end of S-1, end of S), COMMIT,
 *   and it waits for that COMMIT's result, which gives the turn to S+1.
 *   The turn cannot pass when S's COMMIT is only sent: in pipeline mode
 *   its progress record may still sit in the client's buffer, or behind
 *   S's other statements on the server, when S+1's runs (t_parallel saw
 *   exactly that). advance_progress is an UPDATE of the one
 *   pgferry.progress row WHERE source_lsn = expected that raises (PF005)
 *   when it changes no row: should S-1 not have committed, S fails instead
 *   of committing past it.
 *
 * Why the resume point is exact
 *
 *   Commits reach the WAL strictly in source commit order, each with its
 *   origin's advance and pgferry.progress in the same transaction. The
 *   committed set after any crash is therefore a prefix of the stream, and
 *   its last member is the newest position over the stream's origins
 *   (pgferry.applied_lsn(flushed): the greatest progress of the stream's
 *   origin and of every "<origin>_w<k>" that exists, also those of an
 *   earlier run with more workers), equal to pgferry.progress. Start-up
 *   (identity.c) checks that the two agree and resumes from it; skipping
 *   "final_lsn < resume point" is done by the coordinator before dispatch,
 *   so nothing is applied twice. promote's point, verify's, drill's and
 *   the status figures read pgferry.applied_lsn instead of the one origin.
 *
 * Durability and what is reported
 *
 *   Workers commit with synchronous_commit = off. A commit with it on
 *   (every 50 ms under load and whenever input pauses, as today) flushes
 *   the WAL up to its commit record, so every transaction up to it, on any
 *   connection, is durable: the coordinator reports to the network thread
 *   (the committed hook, merged as today) only up to the newest such
 *   synchronous commit whose result came back. The slot is never confirmed
 *   past what the DR side keeps through a crash.
 *
 * Errors, deadlocks, stop
 *
 *   Any worker's error fails the session: the coordinator cancels every
 *   open worker transaction (apply_cancel), every worker rolls back, the
 *   committed prefix stays, the first failed transaction in commit order is
 *   reported, and the coordinator's connection is opened again so that it
 *   reads where apply stands (a COMMIT whose result was lost may have
 *   committed); the source resends from there. The footprint reads the DR
 *   table's own unique indexes (valid or being built), and a table with an
 *   exclusion constraint, an expression, partial or deferrable unique
 *   index is applied alone, so two workers never wait for each other's row
 *   locks: a wait the other way round (the transaction holding the turn
 *   waiting on a lock of a later one, which waits for its turn) would be
 *   seen by no deadlock detector. NOT BUILT: a watchdog for it
 *   (pg_blocking_pids of the transaction holding the turn), for what the
 *   footprint still cannot see (a lock a DBA takes on the DR side stalls
 *   one connection as it stalls the one connection of apply_workers = 1).
 *
 * Memory
 *
 *   The units in flight are bounded: at most UNITS_QUEUED waiting per
 *   worker and one being applied, each at most apply_group_max_transactions
 *   (or 8 MB, beyond which it is cut), and the coordinator stops taking
 *   from the queue while every worker is full, so the queue's
 *   spool_memory_limit and spool_disk_limit go on stopping the network
 *   thread. A transaction is copied whole before it is placed, up to 8 MB:
 *   one that grows past it becomes a barrier at once (everything before it
 *   commits first) and the main connection applies it as it arrives, what
 *   was copied first, so no size the primary leaves unstreamed (its
 *   logical_decoding_work_mem) makes the sink hold it whole. A streamed
 *   transaction is spilled by the coordinator's engine, as with one
 *   connection.
 */
#ifndef PGFERRY_APPLY_PARALLEL_H
#define PGFERRY_APPLY_PARALLEL_H

#include "pgferry/depend.h"

#endif
