/*
 * apply_internal.h — how the apply engine's files share the work (private
 * to relay/apply/; the public face is include/pgferry/apply.h).
 *
 * struct apply is cut into the structs its pieces own; each file works on
 * its own struct, and only the top of the data path (dispatch.c, rows.c,
 * group.c, own_messages.c, identity.c, apply.c) sees the whole apply_t:
 *
 *   dispatch.c      one handler per pgoutput message kind behind
 *                   apply_message, and the error context (apply_txn_t)
 *   group.c         the DR transaction that groups source transactions,
 *                   its commit and durability (apply_group_state_t)
 *   dr_group.c      the states of a DR group and their one transition
 *                   function (dr_group_t, pure)
 *   pipeline.c      statements in flight on the DR connection and the
 *                   prepared-statement cache (apply_pipeline_t)
 *   rows.c          INSERT / UPDATE / DELETE / TRUNCATE statements
 *   batch.c         held net changes as set operations (arrays per column)
 *   coalesce.c      the net change per row (coalesce_t, pure)
 *   depend.c        what parallel apply may run at once (depend.h, pure)
 *   schema.c        Relation messages checked against the DR tables
 *                   (apply_schema_t)
 *   spill.c         streamed transactions spilled to files (apply_spill_t)
 *   huge.c          a change larger than a batch, from its file by COPY
 *   own_messages.c  pgferry's own logical messages: sequences, DDL, heartbeats
 *   identity.c      the stream's identity, the fence, the seeding, the origin
 *   apply.c         create, connect, reset, free
 */
#ifndef PGFERRY_APPLY_INTERNAL_H
#define PGFERRY_APPLY_INTERNAL_H

#include "pgferry/apply.h"
#include "pgferry/buf.h"
#include "pgferry/coalesce.h"
#include "pgferry/decoder.h"
#include "pgferry/dr_group.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define PIPELINE_BATCH 1000       /* statements between syncs */
#define PIPELINE_BYTES (4u << 20) /* or this many parameter bytes */
/* DR groups whose COMMIT is sent and whose result is not read yet: the
 * next groups are applied meanwhile (group.c) */
#define COMMITS_IN_FLIGHT 4
/* statements and syncs in flight: a segment (between two syncs) holds at
 * most PIPELINE_BATCH statements and a few of a group's own */
#define PIPELINE_SEGMENT (PIPELINE_BATCH + 16)
#define PIPELINE_RING    ((COMMITS_IN_FLIGHT + 2) * PIPELINE_SEGMENT)
#define PIPELINE_PARAMS  (2 * PGOUTPUT_MAX_COLUMNS + 2)
#define STMT_BUCKETS     1024
#define STMT_CACHE_MAX   20000
#define MAX_STREAMS      64
#define VERIFIED_SLOTS   4096

/* ---- dispatch.c: the source transaction being applied ------------------- */

/* What every error of apply names (the error context): the source
 * transaction, by xid and commit LSN (whether one is in progress: the DR
 * group's state, dr_group.h). */
typedef struct apply_txn {
	uint32_t xid;
	uint64_t lsn; /* its final/commit LSN */
} apply_txn_t;

/* ---- pipeline.c ----------------------------------------------------------- */

/* A prepared statement for one shape of change. */
typedef struct stmt {
	struct stmt *next;
	char *key; /* binary: operation, relation, its generation, column shape */
	size_t key_len;
	char *sql; /* for error messages */
	char name[24];
} stmt_t;

/* What an in-flight pipelined statement (or sync) was, for error messages. */
typedef struct inflight {
	char what[16];   /* "insert", "update", "commit"... */
	bool check_rows; /* update/delete: zero rows affected is an error */
	bool keep;       /* its result is wanted: pipeline_sync leaves it in kept */
	uint8_t sync;    /* a sync, not a statement (PIPELINE_SYNC_*) */
	uint32_t relid;
	uint32_t xid;
	uint64_t lsn;
	const stmt_t *stmt;
} inflight_t;

enum {
	PIPELINE_STATEMENT,
	PIPELINE_SYNC_PLAIN,  /* a sync inside a group, or after an empty one */
	PIPELINE_SYNC_COMMIT, /* the sync after a group's COMMIT: on_commit hears of it */
};

/* The DR connection in pipeline mode: what is in flight, the prepared
 * statements, and the parameters of the statement being sent.
 *
 * Results are read in the order sent: at a sync that must wait (a query
 * whose answer is needed, the end of input, a rollback), and without waiting
 * whatever has arrived whenever a sync is sent. A group's COMMIT is followed
 * by a commit sync; when its results have come back, on_commit says whether
 * every statement of that segment succeeded. After the first error the
 * server skips the rest of the failed transaction (and every later one: the
 * next group's first statement checks that the one before it committed,
 * group.c), so the pipeline fails every call until pipeline_rollback. */
typedef struct apply_pipeline {
	PGconn *conn;
	const apply_txn_t *txn;     /* error context of what is pushed */
	const relcache_t *relcache; /* to name relations in errors */
	void (*on_commit)(void *arg, bool ok);
	void *commit_arg;

	inflight_t ring[PIPELINE_RING]; /* oldest at head */
	unsigned head, count;
	unsigned syncs, commits; /* syncs (commit syncs) in flight */
	int segment;             /* statements since the last sync */
	bool segment_failed;     /* a statement of the segment being read failed */
	bool failed;             /* an error was read: nothing more until a rollback */
	uint64_t failed_lsn;     /* the commit LSN of the transaction that failed
	                          * (kept through pipeline_forget: apply_reset
	                          * clears it, once the error was reported) */
	size_t bytes;            /* parameter bytes since the last sync */
	PGresult *kept;          /* the result of an inflight_t with keep */

	stmt_t *stmts[STMT_BUCKETS];
	unsigned nstmts;
	unsigned next_stmt_id;

	const char *values[PIPELINE_PARAMS];
	Oid types[PIPELINE_PARAMS]; /* of the statement being prepared */
	int lengths[PIPELINE_PARAMS];
	int formats[PIPELINE_PARAMS];
	buf_t scratch; /* text parameters with their terminators */
} apply_pipeline_t;

/* Fill err from a failed result (PostgreSQL's detail and hint, pgferry's
 * own SQLSTATEs) or from the connection's message; return PGF_ERR. */
int apply_result_error(pgf_error_t *err, const PGresult *res, const char *what);
int apply_conn_error(pgf_error_t *err, PGconn *conn, const char *what);

void pipeline_init(apply_pipeline_t *p, const apply_txn_t *txn, const relcache_t *relcache,
                   void (*on_commit)(void *arg, bool ok), void *commit_arg);
void pipeline_free(apply_pipeline_t *p);
/* Forgets what is in flight (the server side is rolled back or gone). */
void pipeline_forget(apply_pipeline_t *p);
inflight_t *pipeline_push(apply_pipeline_t *p, const char *what, uint32_t relid, bool check_rows,
                          const stmt_t *stmt);
/* Sends a sync and reads every result in flight. Returns the first error. */
int pipeline_sync(apply_pipeline_t *p, pgf_error_t *err);
/* Sends a sync (PIPELINE_SYNC_*) and reads what has arrived without
 * waiting, unless too much is in flight (COMMITS_IN_FLIGHT commit syncs, or
 * a full ring): then it waits for the oldest. */
int pipeline_sync_async(apply_pipeline_t *p, int kind, pgf_error_t *err);
/* Reads every result in flight (a sync must follow the last statement). */
int pipeline_drain(apply_pipeline_t *p, pgf_error_t *err);
/* Syncs (without waiting) when enough statements or bytes are in flight. */
int pipeline_maybe_sync(apply_pipeline_t *p, pgf_error_t *err);
int pipeline_send_plain(apply_pipeline_t *p, const char *sql, const char *what, pgf_error_t *err);
/* Sends sql with n text parameters (unnamed, not prepared). */
int pipeline_send_params(apply_pipeline_t *p, const char *sql, int n, const char *const *params,
                         const char *what, pgf_error_t *err);
/* Sends one of pgferry's own statements (sql: a constant, the same text
 * every time) with n text parameters, prepared once per session. */
int pipeline_send_own(apply_pipeline_t *p, const char *sql, int n, const char *const *params,
                      const char *what, pgf_error_t *err);
/* Sends sql and syncs; the result is left in p->kept. */
int pipeline_query(apply_pipeline_t *p, const char *sql, int nparams, const char *const *params,
                   const char *what, pgf_error_t *err);
/* Reads what is in flight (groups whose COMMIT came back are committed),
 * then rolls back what is open and clears the error. */
void pipeline_rollback(apply_pipeline_t *p);
/* Runs one statement outside the pipeline (between groups only). */
PGresult *pipeline_exec_outside(apply_pipeline_t *p, const char *sql, int nparams,
                                const char *const *params, pgf_error_t *err);

/* The prepared statement for a change of this shape, or NULL. */
const stmt_t *stmt_find(apply_pipeline_t *p, const buf_t *key);
/* Prepares (in the pipeline) the statement for key from sql; parameter
 * types are p->types. */
const stmt_t *stmt_prepare(apply_pipeline_t *p, const buf_t *key, const buf_t *sql, int nparams,
                           pgf_error_t *err);
void stmt_cache_clear(apply_pipeline_t *p);
/* Adds a value as parameter *n and counts it. */
void pipeline_add_param(apply_pipeline_t *p, int *n, const tuple_column_t *c);
/* Sends prepared statement s with the n parameters added. */
int pipeline_send_prepared(apply_pipeline_t *p, const stmt_t *s, int n, const char *what,
                           uint32_t relid, bool check_rows, pgf_error_t *err);

/* ---- schema.c -------------------------------------------------------------- */

/* What the DR table says of one column of a relation (in the order of the
 * primary's Relation message). */
typedef struct dr_column {
	Oid type_oid;         /* parameters are sent as this type: values are
	                       * read by the column's own input function */
	Oid array_oid;        /* its array type (batch.c); 0: none, or its
	                       * elements are composite (unnest would expand them) */
	char array_delimiter; /* between elements of its array literals (box: ;) */
	bool equality;        /* the type has an equality operator */
	bool identity_always; /* GENERATED ALWAYS AS IDENTITY */
} dr_column_t;

/* Relations whose Relation message was checked against the DR table on
 * this connection (open addressing on relid; 0 = free). */
typedef struct apply_schema {
	struct {
		uint32_t relid;
		uint64_t generation;
		uint8_t mode;         /* coalesce_mode_t */
		bool key_unique;      /* see schema_key_unique */
		bool identity_always; /* a column is GENERATED ALWAYS AS IDENTITY */
		dr_column_t *columns; /* owned; one per column of the Relation message */
	} verified[VERIFIED_SLOTS];
	unsigned nverified;
} apply_schema_t;

/* Forgets which relations were checked (the DR tables may have changed). */
void schema_clear(apply_schema_t *s);
/* Compares rel with its DR table, once per relation and generation;
 * coalesce: whether apply_coalesce is on. */
int schema_check(apply_schema_t *s, apply_pipeline_t *p, const relcache_entry_t *rel, bool coalesce,
                 pgf_error_t *err);
/* Whether a unique index on rel's DR table, on exactly its key, finds at
 * most one row for each key (checked with apply_coalesce on; false when
 * not checked): then a set statement's rows changed, counted together,
 * say whether each of its rows found exactly one (batch.c). */
bool schema_key_unique(const apply_schema_t *s, const relcache_entry_t *rel);
/* How rel's changes may be coalesced (COALESCE_NONE when not checked). */
coalesce_mode_t schema_coalesce_mode(const apply_schema_t *s, const relcache_entry_t *rel);
/* The DR columns of a checked relation (valid until the next check), or
 * NULL when it was not checked in this generation. */
const dr_column_t *schema_columns(const apply_schema_t *s, const relcache_entry_t *rel,
                                  bool *identity_always);
bool relation_has_key(const relcache_entry_t *rel);

/* ---- spill.c --------------------------------------------------------------- */

/* Where a subtransaction's first change starts in its spill file. */
typedef struct subxact {
	uint32_t xid;
	off_t offset;
} subxact_t;

/* A streamed transaction being spilled to disk. Its subtransactions are
 * listed in the order their first change came (so in file order: an abort
 * cuts the file and the list at the same place), with a hash from xid to
 * list index beside it, since a change of an older subtransaction may come
 * after younger ones. Both grow by doubling: about 32 bytes for each
 * subtransaction that changed something, whatever their number. */
typedef struct stream_file {
	uint32_t xid;
	int fd;
	char path[512];
	off_t size;
	size_t nsubxacts, subxacts_cap;
	subxact_t *subxacts;
	uint32_t *slots; /* list index + 1; 0 empty; may point past the list */
	size_t nslots, slots_used;
	unsigned nhuge; /* huge changes' files it refers to, removed with it */
} stream_file_t;

typedef struct apply_spill {
	const char *work_dir;
	int64_t max_record; /* max_frame_bytes: a longer record is corruption */
	stream_file_t *streams[MAX_STREAMS];
	stream_file_t *current; /* between Stream Start and Stop */
} apply_spill_t;

void spill_init(apply_spill_t *sp, const config_t *cfg);
stream_file_t *spill_find(apply_spill_t *sp, uint32_t xid);
/* The spill file of xid, created if new. */
stream_file_t *spill_open(apply_spill_t *sp, uint32_t xid, pgf_error_t *err);
void spill_close(apply_spill_t *sp, stream_file_t *s, bool remove);
void spill_drop_all(apply_spill_t *sp);
bool spill_any_open(const apply_spill_t *sp);
/* Appends one message; xid: its xid when it has one (0 otherwise); facts:
 * what the network thread decoded of a message that is not a change (NULL
 * for a change, decoded when replayed). */
int spill_append(stream_file_t *s, uint32_t xid, uint64_t wal_start, const pgoutput_facts_t *facts,
                 const uint8_t *data, size_t len, pgf_error_t *err);
/* Drops a streamed transaction, or one subtransaction and all after it. */
int spill_abort(apply_spill_t *sp, uint32_t xid, uint32_t subxid, pgf_error_t *err);
/* Appends a reference to a huge change's file (moved to a name of the
 * stream's own, removed with the stream). */
int spill_append_huge(apply_spill_t *sp, stream_file_t *s, uint32_t xid, uint64_t wal_start,
                      uint8_t type, const pgoutput_facts_t *facts, const char *path,
                      pgf_error_t *err);
/* A spilled record as read back: a message (with its facts when it is not
 * a change), or a reference to a huge change's file. */
typedef struct spilled {
	bool huge; /* path names the file of the change */
	uint8_t type;
	uint32_t xid;
	pgoutput_facts_t facts; /* of a message that is not a change: what it said */
	const uint8_t *data;    /* not huge: the message, inside the record read */
	size_t len;
	char path[600];
} spilled_t;
/* What the record in rec holds; false when it is too short for its kind. */
bool spill_record_parse(const buf_t *rec, spilled_t *out);
/* Reads the record at *pos into rec: 1, 0 at the end, PGF_ERR. */
int spill_read(const apply_spill_t *sp, const stream_file_t *s, off_t *pos, buf_t *rec,
               pgf_error_t *err);

/* ---- group.c --------------------------------------------------------------- */

/* A group whose COMMIT is sent: what it applied, until its result comes. */
typedef struct sent_group {
	apply_group_t applied; /* seconds: until the COMMIT was sent */
	bool durable;          /* committed with synchronous_commit = on */
} sent_group_t;

/* The DR transaction that groups source transactions, and what was
 * committed but is not yet known durable. */
typedef struct apply_group_state {
	dr_group_t sm; /* where the group is in its life: the only record of it */
	/* groups whose COMMIT is in flight, oldest first */
	sent_group_t sent[COMMITS_IN_FLIGHT + 1];
	unsigned sent_head, nsent;
	/* groups committed asynchronously, not yet known durable (merged) */
	apply_group_t pending;
	struct timespec last_durable;  /* when the last synchronous commit was sent */
	struct timespec idle_advanced; /* when progress was last advanced while idle */
	uint64_t txns, rows, bytes;
	uint64_t end_lsn;
	int64_t commit_time;
	struct timespec started;
	/* committed progress: the end LSN of the last applied source commit */
	uint64_t progress_lsn;
	int64_t progress_time;
} apply_group_state_t;

/* ---- the whole engine ---------------------------------------------------------- */

struct apply {
	const config_t *cfg;
	apply_hooks_t hooks;
	/* for apply_cancel from another thread: made at connect, freed at
	 * disconnect, both under cancel_lock */
	pthread_mutex_t cancel_lock;
	PGcancel *cancel;
	char origin[512]; /* the stream's replication origin, taken by this session ("": none) */
	int worker;       /* parallel apply: 0 the coordinator's, k >= 1 a worker's */

	int proto_version;
	pgoutput_decoder_t decoder;
	pgoutput_message_t *msg;
	relcache_t *relcache;
	apply_txn_t txn;

	apply_pipeline_t pl;
	apply_schema_t schema;
	coalesce_t net;
	apply_spill_t spill;
	apply_group_state_t group;

	pgoutput_message_t *net_msg; /* scratch for writing held rows */
	buf_t sql;                   /* the statement being built */
	buf_t key;                   /* its cache key */
	bool ddl_ignored_logged;
};

double apply_elapsed_since(const struct timespec *t0);

/* Parallel apply (apply_parallel.h): progress is recorded in commit order
 * across connections (the turn hook), not by this session's origin alone. */
static inline bool apply_parallel(const apply_t *a)
{
	return a->hooks.turn != NULL;
}

/* No DR transaction open and no source transaction in progress. */
static inline bool apply_between_groups(const apply_t *a)
{
	return a->group.sm.state == DR_GROUP_IDLE || a->group.sm.state == DR_GROUP_COMMITTED;
}

/* group.c */
/* Moves the group by event (DR_GROUP_BEGIN or DR_GROUP_FLUSH), opening a DR
 * transaction unless one is open. */
int group_begin(apply_t *a, dr_group_event_t event, pgf_error_t *err);
/* The pipeline read the result of a group's COMMIT (ok: every statement of
 * it succeeded): it is committed, and reported if durable. */
void group_commit_result(void *arg, bool ok);
/* Reads every result in flight, then rolls back what is open: the groups
 * whose COMMIT came back stay committed. */
void group_rollback_all(apply_t *a);
/* A source transaction committed: count it, commit the group when full. */
int group_source_commit(apply_t *a, uint64_t end_lsn, int64_t commit_time, pgf_error_t *err);

/* rows.c */
/* SQL text of names, shared by the row statements and the set-based batches */
void apply_sql_ident(buf_t *b, const char *name);
void apply_sql_qualified(buf_t *b, const relcache_entry_t *rel);
void apply_sql_relation_literal(buf_t *b, const relcache_entry_t *rel);
/* "(a, b, ...)": every column of rel, in order (INSERT and COPY) */
void apply_sql_column_list(buf_t *b, const relcache_entry_t *rel);
/* The relation of a change, checked against its DR table. */
const relcache_entry_t *rows_relation(apply_t *a, uint32_t relid, pgf_error_t *err);
int rows_check_tuple(const relcache_entry_t *rel, const tuple_t *t, pgf_error_t *err);
int rows_insert(apply_t *a, uint32_t relid, const tuple_t *t, pgf_error_t *err);
int rows_update(apply_t *a, const pgoutput_message_t *m, pgf_error_t *err);
int rows_delete(apply_t *a, const pgoutput_message_t *m, pgf_error_t *err);
int rows_truncate(apply_t *a, const pgoutput_message_t *m, pgf_error_t *err);
/* Writes every held net change, in order of first appearance, and forgets
 * them. */
int rows_flush_held(apply_t *a, pgf_error_t *err);
/* Writes one held row as the statement it takes. */
int rows_write_held(apply_t *a, const coalesce_row_t *r, pgf_error_t *err);

/* batch.c */
/* Writes every held net change, as set operations where rows share a
 * table, a kind of write and a shape (row by row otherwise); the caller
 * forgets them. */
int batch_write_held(apply_t *a, pgf_error_t *err);

/* huge.c */
/* Applies the INSERT or UPDATE in the file at path by COPY, in order and in
 * the open DR transaction; *done false (and nothing written) when COPY
 * cannot write it exactly: the caller applies it in memory. */
int huge_apply(apply_t *a, const char *path, bool *done, pgf_error_t *err);

/* own_messages.c */
int own_message_apply(apply_t *a, const pgoutput_message_t *m, pgf_error_t *err);

/* identity.c */
/* Takes the stream's replication origin for the session (once the
 * identity names it) and reads where apply stands; outside pipeline mode. */
int identity_origin_attach(apply_t *a, pgf_error_t *err);

#endif
