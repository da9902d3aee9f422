/*
 * apply.h — applying decoded pgoutput to the DR database, exactly once.
 *
 * The apply engine owns one libpq connection to the DR database. It takes
 * pgoutput messages in stream order (apply_message) and turns them into
 * prepared INSERT / UPDATE / DELETE / TRUNCATE statements sent in pipeline
 * mode. Several source transactions are grouped into one DR transaction;
 * before each DR commit the replication origin "pgferry" is advanced to the
 * last grouped source commit (pg_replication_origin_xact_setup), so the DR
 * commit and the progress record are one atomic fact. After any crash,
 * apply_progress() is where streaming resumes: nothing lost, nothing twice.
 *
 * Streamed (large, in-progress) transactions are spilled to files under
 * work_dir until their Stream Commit and dropped on Stream Abort, so memory
 * stays bounded whatever the transaction size.
 *
 * Not thread-safe: one thread (the sink's apply thread) owns an apply_t;
 * only apply_cancel may be called from another.
 */
#ifndef PGFERRY_APPLY_H
#define PGFERRY_APPLY_H

#include "pgferry/config.h"
#include "pgferry/decoder.h"
#include "pgferry/error.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct apply apply_t;

/* What one DR commit applied (passed to the committed hook). */
typedef struct apply_group {
	uint64_t end_lsn;         /* origin progress now: end of the last source commit */
	int64_t last_commit_time; /* its commit time on the primary (pgtime) */
	uint64_t transactions;    /* source transactions in the group */
	uint64_t rows;            /* changes applied */
	uint64_t bytes;           /* pgoutput bytes applied */
	double seconds;           /* from the group's BEGIN to its COMMIT */
} apply_group_t;

typedef struct apply_hooks {
	void *arg;
	/* after each DR commit (in the apply thread) */
	void (*committed)(void *arg, const apply_group_t *group);
	/* The commit LSN up to which whole transactions have been received
	 * (NULL: everything given is whole, as in replay). Before a source
	 * transaction whose commit has not arrived yet, the open group is
	 * committed first: should the stream end inside that transaction,
	 * only it is rolled back, never the complete ones before it. */
	uint64_t (*received_commit)(void *arg);
	/* Parallel apply only (apply_parallel.h; NULL otherwise). turn: called
	 * before a group's progress and COMMIT are sent; waits until every DR
	 * transaction before it in source commit order was sent, and says where
	 * it leaves the progress (*expected); PGF_ERR (err set) when apply is
	 * failing and the group must roll back. group_committed: each group
	 * whose COMMIT came back committed (durable: synchronously). */
	int (*turn)(void *arg, uint64_t end_lsn, uint64_t *expected, pgf_error_t *err);
	void (*group_committed)(void *arg, const apply_group_t *group, bool durable);
} apply_hooks_t;

/* Ownership: cfg must outlive the apply_t; hooks are copied. */
apply_t *apply_create(const config_t *cfg, const apply_hooks_t *hooks);
/* Parallel apply: worker k >= 1 holds the origin "<stream origin>_w<k>"
 * and leaves the check of the stream's position to worker 0 (the
 * coordinator's). Call before apply_connect. */
void apply_set_worker(apply_t *a, int worker);
/* Parallel apply: the stream's progress as the coordinator knows it (other
 * connections committed it), so apply_progress and idle progress are
 * right. Between groups only. */
void apply_set_progress(apply_t *a, uint64_t lsn, int64_t commit_time);
/* Parallel apply: records lsn and commit_time as the progress in a DR
 * transaction of its own, committed durably (it makes every transaction
 * committed before it durable). Between groups only. */
int apply_record_progress(apply_t *a, uint64_t lsn, int64_t commit_time, pgf_error_t *err);
/* Reads the result of every COMMIT in flight (the group_committed hook
 * hears of them). */
int apply_wait_results(apply_t *a, pgf_error_t *err);
void apply_free(apply_t *a);

/* Connects to the DR database (dr_conninfo), creates pgferry's schema if
 * missing and, once an identity is recorded, takes the stream's replication
 * origin (pgferry.origin_name) and reads its progress; fails with
 * PGF_E_IDENTITY when another session holds the origin or its progress and
 * pgferry.progress disagree. */
int apply_connect(apply_t *a, pgf_error_t *err);
bool apply_connected(const apply_t *a);
/* Asks the DR server to cancel what the apply session runs now (a
 * statement waiting on a lock, say): its DR transaction fails and rolls
 * back, and the owner of a sees the error. The one call that another
 * thread may make on an apply_t; false when no session is open or the
 * request could not be sent. */
bool apply_cancel(apply_t *a);
void apply_disconnect(apply_t *a);

/* Committed progress: the end LSN of the last applied source transaction
 * and its commit time (0 when nothing was applied yet). */
uint64_t apply_progress(const apply_t *a);
int64_t apply_progress_time(const apply_t *a);

/* Applies one pgoutput message whose WAL record starts at wal_start. May
 * commit a group when it reaches apply_group_max_transactions or
 * apply_group_max_delay. On error (err names LSN, transaction, relation and
 * statement) the open DR transaction is rolled back; call apply_reset and
 * resume from apply_progress(). */
int apply_message(apply_t *a, uint64_t wal_start, const uint8_t *data, size_t len,
                  pgf_error_t *err);
/* The same for a message the sink's network thread decoded already: its
 * type, its xid (0: none) and, for a message that is not a change
 * (pgoutput_header_only), what it said (facts). A change inside a stream
 * block goes to its spill file undecoded; nothing is decoded twice. */
int apply_record(apply_t *a, uint64_t wal_start, uint8_t type, uint32_t xid,
                 const pgoutput_facts_t *facts, const uint8_t *data, size_t len, pgf_error_t *err);
/* A change larger than a batch, in the file at path (huge_change.h): applied
 * from the file (an INSERT or UPDATE by COPY, never held in memory), or
 * inside a stream block kept with the stream until its commit. The caller
 * removes the file afterwards (unless the stream took it). */
int apply_huge_record(apply_t *a, uint64_t wal_start, uint8_t type, uint32_t xid,
                      const pgoutput_facts_t *facts, const char *path, pgf_error_t *err);

/* Commits the open group, if any (apply_input_paused does this when no
 * more data is waiting, so an idle stream is never held back). Groups commit
 * asynchronously; the hook "committed" hears of them only once they are
 * durable: at a synchronous commit, made every 50 ms under load and
 * whenever durable is true (the caller found no more input). */
int apply_commit_group(apply_t *a, bool durable, pgf_error_t *err);
/* Input paused (nothing more waiting), or the stream ends: outside a
 * source transaction, commits the open group durably, and at most once a
 * second, when nothing is in flight (no transaction, no streamed
 * transaction, no open group), records idle_lsn (a keepalive's position,
 * which has no commit of its own; 0: none) as the progress, in a small DR
 * transaction. Without it the primary's walsender would wait forever at
 * shutdown for the client to confirm its final WAL. A transaction
 * committing after idle_lsn is sent again in full after any restart, so
 * confirming it loses nothing. */
int apply_input_paused(apply_t *a, uint64_t idle_lsn, pgf_error_t *err);
/* The commit LSN of the source transaction being applied (0 outside one):
 * after an error, the transaction that failed. */
uint64_t apply_failed_lsn(const apply_t *a);
/* Whether pgferry promote fenced the DR database (between groups only;
 * inside a group the group's own check runs). */
int apply_check_fence(apply_t *a, bool *fenced, char *why, size_t why_len, pgf_error_t *err);
/* true between a source transaction's BEGIN and its COMMIT */
bool apply_in_transaction(const apply_t *a);

/* The pgoutput protocol version the stream speaks (from the source's hello). */
void apply_set_proto_version(apply_t *a, int proto_version);

/* Forgets everything not committed (open group, partial transaction,
 * spill files, relation cache): the stream restarts at apply_progress(). */
void apply_reset(apply_t *a);

/* Guarantee 4: the first stream's identity is recorded; any other is refused. */
typedef enum {
	IDENTITY_RECORDED, /* first contact: recorded now */
	IDENTITY_MATCHES,
	IDENTITY_MISMATCH,        /* another primary, database or slot: refuse */
	IDENTITY_FENCED,          /* this DR database was promoted: refuse everything */
	IDENTITY_UNSEEDED,        /* the initial copy is not known complete: refuse */
	IDENTITY_ORIGIN_CONFLICT, /* the stream's origin is used or moved by another: refuse */
} identity_verdict_t;

/* Checks (and on first contact records) the primary's identity against
 * pgferry.identity, the fence, that the initial copy is complete (a
 * finished clone, or initial_copy = external, recorded on first contact),
 * and takes the stream's replication origin for the session, checking its
 * progress against pgferry.progress. why explains a refusal for the log and
 * the source. Call only between groups (no transaction open). */
int apply_check_identity(apply_t *a, uint64_t system_identifier, const char *database,
                         const char *slot, identity_verdict_t *verdict, char *why, size_t why_len,
                         pgf_error_t *err);

/* Whether the DR copy is known complete (a finished clone, or initial_copy
 * = external); why says what is missing when not. Between groups only. */
int apply_copy_complete(apply_t *a, bool *complete, char *why, size_t why_len, pgf_error_t *err);

/* The replication origin this session holds ("" before first contact). */
const char *apply_origin(const apply_t *a);

#endif
