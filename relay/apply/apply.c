/*
 * apply.c — pgoutput to SQL on the DR database, exactly once (see apply.h).
 *
 * Data flow: apply_message decodes one message; changes become prepared
 * statements sent in libpq pipeline mode inside one DR transaction that
 * groups several source transactions. Results are read at each pipeline
 * sync (every PIPELINE_BATCH statements and at commit), so a constraint
 * violation stops apply at that statement; the ring of in-flight statements
 * tells which one it was. The COMMIT goes out in the same pipeline before
 * the results are read, so every check that must hold it back is made by
 * the server inside the statement: an UPDATE or DELETE that does not change
 * exactly one row raises (pgferry.row_not_found), the server skips the rest
 * of the pipeline, and the DR transaction, its origin progress and
 * pgferry.progress roll back together.
 *
 * Parameters are text (pgoutput sends each value in its type's text form,
 * printed under settings both connections pin) and are declared with the
 * DR column's type, so the DR server reads each value with that type's
 * input function and finds rows by typed values, never by text.
 */
#include "pgferry/apply.h"

#include "pgferry/buf.h"
#include "pgferry/decoder.h"
#include "pgferry/dr_state.h"
#include "pgferry/log.h"
#include "pgferry/replication.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PIPELINE_BATCH      1000       /* statements between syncs */
#define PIPELINE_BYTES      (4u << 20) /* or this many parameter bytes */
#define STMT_BUCKETS        1024
#define STMT_CACHE_MAX      20000
#define MAX_STREAMS         64
#define VERIFIED_SLOTS      4096
#define DURABLE_INTERVAL_MS 50.0
#define NET_BUCKETS         4096
#define NET_NONE            0 /* every change in order */
#define NET_APPEND          1 /* inserts may be held (in order) with other net changes */
#define NET_COALESCE        2 /* only the net change per row is written */
#define NET_MAX_ROWS        20000
#define NET_MAX_BYTES       (16u << 20)

typedef enum { OP_INSERT, OP_UPDATE, OP_DELETE } op_t;

/* The net change to one row within a DR transaction (apply_coalesce): only
 * the row's final image is written, once, at the end. */
typedef struct net_row {
	struct net_row *next;  /* order of first appearance */
	struct net_row *hnext; /* hash chain */
	uint32_t relid;
	unsigned hash;
	bool existed; /* the row existed before this transaction touched it */
	bool present; /* it exists after the changes so far */
	uint16_t ncolumns;
	tuple_column_t *cols; /* the image; data point into blob */
	char *blob;
	size_t blob_len;
	char *key; /* the identity columns, length-prefixed (NULL: keyless insert) */
	size_t key_len;
} net_row_t;

/* What the DR table says of one column of a relation (in the order of the
 * primary's Relation message). */
typedef struct dr_column {
	Oid type_oid;         /* parameters are sent as this type: values are
	                       * read by the column's own input function */
	bool equality;        /* the type has an equality operator */
	bool identity_always; /* GENERATED ALWAYS AS IDENTITY */
} dr_column_t;

/* A prepared statement for one shape of change. */
typedef struct stmt {
	struct stmt *next;
	char *key; /* binary: operation, relation, its generation, column shape */
	size_t key_len;
	char *sql; /* for error messages */
	char name[24];
} stmt_t;

/* What an in-flight pipelined statement was, for error messages. */
typedef struct inflight {
	char what[16];   /* "insert", "update", "commit"... */
	bool check_rows; /* update/delete: zero rows affected is an error */
	bool keep;       /* its result is wanted: pipeline_sync leaves it in kept */
	uint32_t relid;
	uint32_t xid;
	uint64_t lsn;
	const stmt_t *stmt;
} inflight_t;

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
} stream_file_t;

struct apply {
	const config_t *cfg;
	apply_hooks_t hooks;
	PGconn *conn;

	int proto_version;
	pgoutput_decoder_t decoder;
	pgoutput_message_t *msg;
	relcache_t *relcache;

	stmt_t *stmts[STMT_BUCKETS];
	unsigned nstmts;
	unsigned next_stmt_id;

	uint64_t progress_lsn;
	int64_t progress_time;
	char origin[512]; /* the stream's replication origin, taken by this session ("": none yet)
	                   */
	const uint64_t *commit_watermark; /* see apply_set_commit_watermark */

	/* the DR transaction that groups source transactions */
	bool group_open;
	bool group_progress_only; /* advances progress past WAL without commits */
	/* groups committed asynchronously, not yet known durable (merged) */
	apply_group_t pending;
	bool has_pending;
	struct timespec last_durable;
	uint64_t group_txns, group_rows, group_bytes;
	uint64_t group_end_lsn;
	int64_t group_commit_time;
	struct timespec group_started;

	/* the source transaction being applied */
	bool in_txn;
	bool skipping; /* already applied before (a resend overlapped): ignore it */
	uint32_t txn_xid;
	uint64_t txn_lsn; /* its final/commit LSN, for error messages */

	/* pipeline bookkeeping */
	inflight_t inflight[PIPELINE_BATCH + 16]; /* + begin, prepare, progress, commit */
	int ninflight;
	size_t pipeline_bytes;
	PGresult *kept; /* the result of an inflight_t with keep */

	/* relations whose Relation message was checked against the DR table on
	 * this connection (open addressing on relid; 0 = free) */
	struct {
		uint32_t relid;
		uint64_t generation;
		uint8_t mode;         /* NET_NONE, NET_APPEND or NET_COALESCE (check_coalesce) */
		bool identity_always; /* a column is GENERATED ALWAYS AS IDENTITY */
		dr_column_t *columns; /* owned; one per column of the Relation message */
	} verified[VERIFIED_SLOTS];

	/* net changes of the open group, in order of first appearance */
	net_row_t *net_first, *net_last;
	net_row_t *net_hash[NET_BUCKETS];
	size_t net_count, net_bytes;
	pgoutput_message_t *net_msg; /* scratch for emitting them */
	unsigned nverified;
	bool ddl_ignored_logged;

	/* spill files of streamed transactions */
	stream_file_t *streams[MAX_STREAMS];
	stream_file_t *current_stream; /* between Stream Start and Stop */
	bool replaying;

	/* parameter arrays, reused */
	const char *values[2 * PGOUTPUT_MAX_COLUMNS + 2];
	Oid types[2 * PGOUTPUT_MAX_COLUMNS + 2]; /* of the statement being prepared */
	int lengths[2 * PGOUTPUT_MAX_COLUMNS + 2];
	int formats[2 * PGOUTPUT_MAX_COLUMNS + 2];
	buf_t sql;
	buf_t key;
	buf_t scratch; /* replay buffer */
};

static double elapsed_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

void apply_quote_identifier(const char *name, char *out, size_t len)
{
	size_t o = 0;

	if (len < 3) {
		if (len)
			out[0] = '\0';
		return;
	}
	out[o++] = '"';
	for (; *name && o + 3 < len; name++) {
		if (*name == '"')
			out[o++] = '"';
		out[o++] = *name;
	}
	out[o++] = '"';
	out[o] = '\0';
}

static void append_ident(buf_t *b, const char *name)
{
	buf_append_char(b, '"');
	for (; *name; name++) {
		if (*name == '"')
			buf_append_char(b, '"');
		buf_append_char(b, *name);
	}
	buf_append_char(b, '"');
}

static void append_qualified(buf_t *b, const relcache_entry_t *rel)
{
	append_ident(b, rel->namespace[0] ? rel->namespace : "pg_catalog");
	buf_append_char(b, '.');
	append_ident(b, rel->name);
}

apply_t *apply_create(const config_t *cfg, const apply_hooks_t *hooks)
{
	apply_t *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	a->cfg = cfg;
	if (hooks)
		a->hooks = *hooks;
	a->msg = malloc(sizeof(*a->msg));
	a->net_msg = malloc(sizeof(*a->net_msg));
	a->relcache = relcache_create();
	if (a->msg == NULL || a->net_msg == NULL || a->relcache == NULL) {
		apply_free(a);
		return NULL;
	}
	a->proto_version = 4;
	pgoutput_decoder_init(&a->decoder, a->proto_version);
	buf_init(&a->sql);
	buf_init(&a->key);
	buf_init(&a->scratch);
	return a;
}

static void net_clear(apply_t *a);
static int net_flush(apply_t *a, pgf_error_t *err);

/* Forgets which relations were checked against the DR tables. */
static void verified_clear(apply_t *a)
{
	int i;

	for (i = 0; i < VERIFIED_SLOTS; i++)
		free(a->verified[i].columns);
	memset(a->verified, 0, sizeof(a->verified));
	a->nverified = 0;
}

static void stmt_cache_clear(apply_t *a)
{
	int i;

	for (i = 0; i < STMT_BUCKETS; i++) {
		stmt_t *s = a->stmts[i], *n;
		for (; s; s = n) {
			n = s->next;
			free(s->key);
			free(s->sql);
			free(s);
		}
		a->stmts[i] = NULL;
	}
	a->nstmts = 0;
}

static void stream_close(apply_t *a, stream_file_t *s, bool remove)
{
	int i;

	if (s == NULL)
		return;
	if (s->fd >= 0)
		close(s->fd);
	if (remove)
		unlink(s->path);
	free(s->subxacts);
	free(s->slots);
	for (i = 0; i < MAX_STREAMS; i++)
		if (a->streams[i] == s)
			a->streams[i] = NULL;
	if (a->current_stream == s)
		a->current_stream = NULL;
	free(s);
}

static void streams_drop_all(apply_t *a)
{
	int i;

	for (i = 0; i < MAX_STREAMS; i++)
		if (a->streams[i])
			stream_close(a, a->streams[i], true);
	a->current_stream = NULL;
}

void apply_free(apply_t *a)
{
	if (a == NULL)
		return;
	apply_disconnect(a);
	streams_drop_all(a);
	stmt_cache_clear(a);
	relcache_free(a->relcache);
	free(a->msg);
	free(a->net_msg);
	buf_free(&a->sql);
	buf_free(&a->key);
	buf_free(&a->scratch);
	free(a);
}

void apply_disconnect(apply_t *a)
{
	if (a->conn) {
		PQfinish(a->conn);
		a->conn = NULL;
	}
	a->origin[0] = '\0'; /* the session's hold on the origin ends with it */
	stmt_cache_clear(a); /* prepared statements die with the session */
	a->group_open = false;
	a->in_txn = false;
	a->ninflight = 0;
	PQclear(a->kept);
	a->kept = NULL;
	/* not known durable: the source resends them, the origin skips what
	 * survived */
	a->has_pending = false;
	memset(&a->pending, 0, sizeof(a->pending));
	net_clear(a);
	/* the DR schema may change while we are away */
	verified_clear(a);
}

bool apply_connected(const apply_t *a)
{
	return a->conn && PQstatus(a->conn) == CONNECTION_OK;
}

uint64_t apply_progress(const apply_t *a)
{
	return a->progress_lsn;
}
int64_t apply_progress_time(const apply_t *a)
{
	return a->progress_time;
}
bool apply_in_transaction(const apply_t *a)
{
	return a->in_txn;
}

/* Fills err from a failed result, with PostgreSQL's own detail and hint. */
static int dr_result_error(pgf_error_t *err, const PGresult *res, const char *what)
{
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	error_set(err, PGF_E_APPLY, "%s failed on the DR database: %s (SQLSTATE %s)", what,
	          msg ? msg : PQresultErrorMessage(res), state ? state : "?");
	if (detail)
		error_detail(err, "%s", detail);
	if (hint)
		error_hint(err, "%s", hint);
	/* raised by pgferry.row_not_found() (sql/dr_state.sql) */
	if (state && strcmp(state, "PF002") == 0) {
		error_set(err, PGF_E_APPLY, "%s", msg ? msg : "row not found on the DR database");
		if (detail)
			error_detail(err, "%s", detail);
		error_hint(err, "Nothing of this DR transaction was applied. Find out how the DR "
		                "copy diverged (pgferry verify), repair the row, and apply resumes "
		                "by itself.");
	}
	/* raised by pgferry.assert_not_fenced() (sql/dr_state.sql) */
	if (state && strcmp(state, "PF001") == 0) {
		error_set(err, PGF_E_FENCED, "%s", msg ? msg : "this DR database was promoted");
		error_hint(err, "pgferry promote fenced this DR database; it takes no stream from "
		                "the old primary.");
	}
	return PGF_ERR;
}

static int dr_conn_error(pgf_error_t *err, PGconn *conn, const char *what)
{
	char clean[400];
	size_t n;

	snprintf(clean, sizeof(clean), "%s", conn ? PQerrorMessage(conn) : "out of memory");
	n = strlen(clean);
	while (n > 0 && (clean[n - 1] == '\n' || clean[n - 1] == ' '))
		clean[--n] = '\0';
	error_set(err, PGF_E_DATABASE, "%s failed on the DR database: %s", what, clean);
	return PGF_ERR;
}

/* Takes this DR database's replication origin for the session (once the
 * identity names it) and reads where apply stands. Every start checks that
 * the origin and pgferry.progress (both written by each DR commit) agree:
 * if they do not, something else moved the origin (another DR database or
 * clone on this cluster), and resuming from either could skip or repeat
 * transactions. Outside pipeline mode only. */
static int origin_attach(apply_t *a, pgf_error_t *err)
{
	char sql[700], *lit;
	PGresult *res;
	uint64_t recorded = 0, origin_lsn = 0;
	bool has_recorded, has_origin;

	if (a->origin[0] != '\0')
		return PGF_OK;
	res = PQexec(
	        a->conn,
	        "SELECT i.origin, p.source_lsn, "
	        "(extract(epoch FROM p.source_commit_time - '2000-01-01 00:00:00+00'::timestamptz) "
	        "* 1000000)::int8, EXISTS (SELECT 1 FROM pg_replication_origin o WHERE "
	        "o.roname = i.origin) FROM pgferry.identity i LEFT JOIN pgferry.progress p ON "
	        "true");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		dr_result_error(err, res, "reading the identity");
		PQclear(res);
		return PGF_ERR;
	}
	if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
		PQclear(res); /* no stream yet: first contact records one */
		return PGF_OK;
	}
	snprintf(a->origin, sizeof(a->origin), "%s", PQgetvalue(res, 0, 0));
	has_recorded = !PQgetisnull(res, 0, 1);
	if (has_recorded)
		lsn_parse(PQgetvalue(res, 0, 1), &recorded);
	a->progress_time = has_recorded ? strtoll(PQgetvalue(res, 0, 2), NULL, 10) : 0;
	has_origin = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
	PQclear(res);
	lit = PQescapeLiteral(a->conn, a->origin, strlen(a->origin));
	if (lit == NULL) {
		a->origin[0] = '\0';
		return dr_conn_error(err, a->conn, "quoting the origin's name");
	}
	if (!has_origin) {
		/* origins are not in a dump: a DR database restored on another
		 * cluster has its progress only in pgferry.progress, written with
		 * the data; its origin starts there */
		char lsn[LSN_TEXT_LEN];
		snprintf(sql, sizeof(sql), "SELECT pg_replication_origin_create(%s)", lit);
		res = PQexec(a->conn, sql);
		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			/* committed first: an advance is not undone by a rollback */
			PQclear(res);
			snprintf(sql, sizeof(sql), "SELECT pg_replication_origin_advance(%s, '%s')",
			         lit, lsn_format(recorded, lsn));
			res = PQexec(a->conn, sql);
		}
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			PQfreemem(lit);
			dr_result_error(err, res, "creating the replication origin");
			PQclear(res);
			a->origin[0] = '\0';
			return PGF_ERR;
		}
		PQclear(res);
		log_warning("the replication origin \"%s\" was missing on this DR cluster; created "
		            "it at %s, where pgferry.progress says apply stands",
		            a->origin, lsn);
	}
	snprintf(sql, sizeof(sql),
	         "SELECT pg_replication_origin_session_setup(%s), "
	         "pg_replication_origin_progress(%s, false)",
	         lit, lit);
	PQfreemem(lit);
	res = PQexec(a->conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		error_set(err, PGF_E_IDENTITY,
		          "the replication origin \"%s\" of this stream is in use by another "
		          "session: %s",
		          a->origin,
		          PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
		                  ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
		                  : "?");
		error_hint(err, "Another pgferry sink or clone applies this stream on this DR "
		                "cluster; only one may (see pg_replication_origin_status and "
		                "pg_stat_activity for that PID).");
		PQclear(res);
		a->origin[0] = '\0';
		return PGF_ERR;
	}
	/* not flushed only: a committed group is visible in pgferry.progress
	 * before its WAL is flushed, and the two must be compared alike */
	origin_lsn = 0;
	if (!PQgetisnull(res, 0, 1))
		lsn_parse(PQgetvalue(res, 0, 1), &origin_lsn);
	PQclear(res);
	if (origin_lsn != recorded) {
		char o[LSN_TEXT_LEN], r[LSN_TEXT_LEN];
		error_set(err, PGF_E_IDENTITY,
		          "the replication origin \"%s\" is at %s but this DR database recorded "
		          "%s as applied (pgferry.progress); refusing to apply",
		          a->origin, lsn_format(origin_lsn, o),
		          has_recorded ? lsn_format(recorded, r) : "nothing");
		error_detail(err, "Something else moved the origin: another DR database or clone "
		                  "on this cluster following the same stream, or a manual "
		                  "pg_replication_origin_advance. Resuming from either position "
		                  "could skip or repeat transactions.");
		error_hint(err, "Find what uses the origin (pg_replication_origin_status) and stop "
		                "it; give each DR database its own slot. If this copy is in doubt, "
		                "run pgferry verify, or clone again into a new database.");
		res = PQexec(a->conn, "SELECT pg_replication_origin_session_reset()");
		PQclear(res);
		a->origin[0] = '\0';
		return PGF_ERR;
	}
	a->progress_lsn = recorded;
	return PGF_OK;
}

int apply_connect(apply_t *a, pgf_error_t *err)
{
	const char *keys[] = {"dbname",  "fallback_application_name", "connect_timeout",
	                      "options", "client_encoding",           NULL};
	/* the walsender prints values with the same settings (replication.c,
	 * pinned on its connection whatever the servers' defaults), and this
	 * session reads them back with these: every value round-trips exactly.
	 * Values travel in UTF8; each server converts from and to its own
	 * database encoding (as native logical replication does). */
	const char *values[] = {
	        a->cfg->dr_conninfo,
	        "pgferry sink",
	        "10",
	        ("-c datestyle=ISO -c intervalstyle=postgres -c extra_float_digits=3 "
	         "-c timezone=UTC -c bytea_output=hex -c lc_monetary=C "
	         "-c standard_conforming_strings=on -c session_replication_role=replica "
	         "-c plan_cache_mode=force_generic_plan -c synchronous_commit=off"),
	        "UTF8",
	        NULL};

	apply_disconnect(a);
	a->conn = PQconnectdbParams(keys, values, 1);
	if (a->conn == NULL || PQstatus(a->conn) != CONNECTION_OK) {
		dr_conn_error(err, a->conn, "connecting");
		error_hint(err, "Check dr_conninfo and that the DR server is up; pgferry retries "
		                "by itself.");
		apply_disconnect(a);
		return PGF_ERR;
	}
	if (dr_state_install(a->conn, err) != PGF_OK) {
		apply_disconnect(a);
		return PGF_ERR;
	}
	a->progress_lsn = 0;
	a->progress_time = 0;
	if (origin_attach(a, err) != PGF_OK) {
		apply_disconnect(a);
		return PGF_ERR;
	}
	if (PQenterPipelineMode(a->conn) != 1) {
		dr_conn_error(err, a->conn, "entering pipeline mode");
		apply_disconnect(a);
		return PGF_ERR;
	}
	return PGF_OK;
}

/* ---- pipeline ---------------------------------------------------------- */

static inflight_t *inflight_push(apply_t *a, const char *what, uint32_t relid, bool check_rows,
                                 const stmt_t *stmt)
{
	inflight_t *f = &a->inflight[a->ninflight++];

	snprintf(f->what, sizeof(f->what), "%s", what);
	f->relid = relid;
	f->check_rows = check_rows;
	f->lsn = a->txn_lsn;
	f->xid = a->txn_xid;
	f->stmt = stmt;
	f->keep = false;
	return f;
}

static void describe_relation(apply_t *a, uint32_t relid, char *out, size_t len)
{
	const relcache_entry_t *rel = relcache_get(a->relcache, relid);

	if (rel)
		snprintf(out, len, "%s.%s", rel->namespace[0] ? rel->namespace : "pg_catalog",
		         rel->name);
	else
		snprintf(out, len, "relation %u", relid);
}

/* Sends a sync and reads every result up to it. Returns the first error. */
static int pipeline_sync(apply_t *a, pgf_error_t *err)
{
	int i = 0, rc = PGF_OK;
	PGresult *res;

	if (PQpipelineSync(a->conn) != 1)
		return dr_conn_error(err, a->conn, "sending to");
	for (;;) {
		int st;
		res = PQgetResult(a->conn);
		if (res == NULL) {
			/* end of one statement's results; a dead connection gives
			 * NULL forever, so check it */
			if (PQstatus(a->conn) != CONNECTION_OK) {
				if (rc == PGF_OK)
					dr_conn_error(err, a->conn, "applying");
				a->ninflight = 0;
				return PGF_ERR;
			}
			continue;
		}
		st = PQresultStatus(res);
		if (st == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			break;
		}
		if (i >= a->ninflight) {
			PQclear(res);
			continue;
		}
		inflight_t *f = &a->inflight[i++];
		if (st == PGRES_PIPELINE_ABORTED) {
			/* skipped after an earlier error; that error is reported */
		} else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
			if (rc == PGF_OK) {
				char rel[300], lsn[LSN_TEXT_LEN];
				dr_result_error(err, res, f->what);
				describe_relation(a, f->relid, rel, sizeof(rel));
				error_where(err, "transaction %u ending at %s%s%s%s%s", f->xid,
				            lsn_format(f->lsn, lsn), f->relid ? ", " : "",
				            f->relid ? rel : "", f->stmt ? ", statement " : "",
				            f->stmt ? f->stmt->sql : "");
				rc = PGF_ERR;
			}
		} else if (f->keep && rc == PGF_OK) {
			PQclear(a->kept);
			a->kept = res;
			continue;
		} else if (f->check_rows && rc == PGF_OK && strcmp(PQcmdTuples(res), "0") == 0) {
			char rel[300], lsn[LSN_TEXT_LEN];
			describe_relation(a, f->relid, rel, sizeof(rel));
			error_set(err, PGF_E_APPLY, "row to %s not found on the DR database in %s",
			          f->what, rel);
			error_where(err, "transaction %u ending at %s, statement %s", f->xid,
			            lsn_format(f->lsn, lsn), f->stmt ? f->stmt->sql : "");
			error_detail(err,
			             "The DR copy differs from the primary: the row the primary "
			             "changed does not exist on the DR side.");
			error_hint(err,
			           "Find out how the DR copy diverged (pgferry verify), repair "
			           "the row, and apply resumes by itself.");
			rc = PGF_ERR;
		}
		PQclear(res);
	}
	a->ninflight = 0;
	a->pipeline_bytes = 0;
	return rc;
}

static int maybe_sync(apply_t *a, pgf_error_t *err)
{
	if (a->ninflight >= PIPELINE_BATCH || a->pipeline_bytes >= PIPELINE_BYTES)
		return pipeline_sync(a, err);
	return PGF_OK;
}

static int send_plain(apply_t *a, const char *sql, const char *what, pgf_error_t *err)
{
	if (PQsendQueryParams(a->conn, sql, 0, NULL, NULL, NULL, NULL, 0) != 1)
		return dr_conn_error(err, a->conn, what);
	inflight_push(a, what, 0, false, NULL);
	return PGF_OK;
}

static int group_begin(apply_t *a, pgf_error_t *err)
{
	if (a->group_open)
		return PGF_OK;
	/* the fence check takes a lock that pgferry promote waits for: no DR
	 * transaction of this sink commits after the fence (sql/dr_state.sql) */
	if (send_plain(a, "BEGIN", "begin", err) != PGF_OK ||
	    send_plain(a, "SELECT pgferry.assert_not_fenced()", "fence check", err) != PGF_OK)
		return PGF_ERR;
	a->group_open = true;
	a->group_txns = a->group_rows = a->group_bytes = 0;
	a->group_end_lsn = 0;
	a->group_commit_time = 0;
	clock_gettime(CLOCK_MONOTONIC, &a->group_started);
	return PGF_OK;
}

static void rollback_quietly(apply_t *a)
{
	PGresult *res;

	if (a->conn == NULL || PQstatus(a->conn) != CONNECTION_OK)
		return;
	a->ninflight = 0;
	if (PQsendQueryParams(a->conn, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0) == 1 &&
	    PQpipelineSync(a->conn) == 1) {
		for (;;) {
			res = PQgetResult(a->conn);
			if (res == NULL) {
				if (PQstatus(a->conn) != CONNECTION_OK)
					break;
				continue;
			}
			int st = PQresultStatus(res);
			PQclear(res);
			if (st == PGRES_PIPELINE_SYNC)
				break;
		}
	}
}

/* Reports the groups committed since the last durable commit: they are
 * durable now (WAL is flushed in order). Only durable groups are reported,
 * because the source confirms what is reported to the primary's slot. */
static void report_durable(apply_t *a)
{
	if (a->has_pending && a->hooks.committed)
		a->hooks.committed(a->hooks.arg, &a->pending);
	a->has_pending = false;
	memset(&a->pending, 0, sizeof(a->pending));
	clock_gettime(CLOCK_MONOTONIC, &a->last_durable);
}

int apply_commit_group(apply_t *a, bool durable, pgf_error_t *err)
{
	char lsn[LSN_TEXT_LEN], ts[64];
	const char *params[2];
	bool sync_now;

	if (a->in_txn)
		return PGF_OK;
	if (!a->group_open) {
		if (!durable || !a->has_pending)
			return PGF_OK;
		/* make the groups committed asynchronously durable: a transaction
		 * that writes (the same progress again), committed synchronously,
		 * flushes the WAL of every one before it */
		if (group_begin(a, err) != PGF_OK)
			return PGF_ERR;
		a->group_progress_only = true;
		a->group_end_lsn = a->progress_lsn;
		a->group_commit_time = a->progress_time;
	}
	if (a->net_first && net_flush(a, err) != PGF_OK) {
		a->group_open = false;
		rollback_quietly(a);
		return PGF_ERR;
	}
	if (a->group_txns == 0 && !a->group_progress_only) {
		/* nothing to record: end the empty transaction */
		if (send_plain(a, "COMMIT", "commit", err) != PGF_OK ||
		    pipeline_sync(a, err) != PGF_OK) {
			a->group_open = false;
			rollback_quietly(a);
			return PGF_ERR;
		}
		a->group_open = false;
		return PGF_OK;
	}
	/* the DR session commits asynchronously (synchronous_commit = off);
	 * every DURABLE_INTERVAL_MS under load, and whenever input pauses, a
	 * group commits synchronously and so makes all before it durable: one
	 * WAL flush for many groups instead of one each */
	sync_now = durable || elapsed_since(&a->last_durable) * 1000.0 >= DURABLE_INTERVAL_MS;
	/* the origin's progress commits atomically with the group's changes */
	lsn_format(a->group_end_lsn, lsn);
	pgtime_format_iso(a->group_commit_time, ts);
	params[0] = lsn;
	params[1] = ts;
	if (PQsendQueryParams(
	            a->conn, "SELECT pg_replication_origin_xact_setup($1::pg_lsn, $2::timestamptz)",
	            2, NULL, params, NULL, NULL, 0) != 1 ||
	    PQsendQueryParams(
	            a->conn,
	            "INSERT INTO pgferry.progress VALUES (true, $1::pg_lsn, $2::timestamptz, "
	            "now()) ON CONFLICT (singleton) DO UPDATE SET source_lsn = "
	            "excluded.source_lsn, source_commit_time = excluded.source_commit_time, "
	            "applied_at = excluded.applied_at",
	            2, NULL, params, NULL, NULL, 0) != 1) {
		a->group_open = false;
		return dr_conn_error(err, a->conn, "recording progress");
	}
	inflight_push(a, "progress", 0, false, NULL);
	inflight_push(a, "progress", 0, false, NULL);
	if ((sync_now &&
	     send_plain(a, "SET LOCAL synchronous_commit = on", "durability", err) != PGF_OK) ||
	    send_plain(a, "COMMIT", "commit", err) != PGF_OK || pipeline_sync(a, err) != PGF_OK) {
		a->group_open = false;
		rollback_quietly(a);
		return PGF_ERR;
	}
	a->group_open = false;
	a->group_progress_only = false;
	a->progress_lsn = a->group_end_lsn;
	a->progress_time = a->group_commit_time;
	a->pending.end_lsn = a->group_end_lsn;
	a->pending.last_commit_time = a->group_commit_time;
	a->pending.transactions += a->group_txns;
	a->pending.rows += a->group_rows;
	a->pending.bytes += a->group_bytes;
	a->pending.seconds += elapsed_since(&a->group_started);
	a->has_pending = true;
	if (sync_now)
		report_durable(a);
	return PGF_OK;
}

/* ---- statements ---------------------------------------------------------- */

static unsigned hash_key(const char *s, size_t len)
{
	unsigned h = 2166136261u;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

/* The prepared statement for a change of this shape, or NULL. */
static const stmt_t *stmt_find(apply_t *a, const buf_t *key)
{
	unsigned b = hash_key(key->data, key->len) % STMT_BUCKETS;
	stmt_t *s;

	for (s = a->stmts[b]; s; s = s->next)
		if (s->key_len == key->len && memcmp(s->key, key->data, key->len) == 0)
			return s;
	return NULL;
}

/* Prepares (in the pipeline) the statement for key from sql. */
static const stmt_t *stmt_prepare(apply_t *a, const buf_t *key, const buf_t *sql, int nparams,
                                  pgf_error_t *err)
{
	unsigned b = hash_key(key->data, key->len) % STMT_BUCKETS;
	stmt_t *s;

	if (a->nstmts >= STMT_CACHE_MAX) {
		/* a pathological number of shapes: start over rather than grow */
		if (pipeline_sync(a, err) != PGF_OK)
			return NULL;
		if (send_plain(a, "DEALLOCATE ALL", "deallocate", err) != PGF_OK ||
		    pipeline_sync(a, err) != PGF_OK)
			return NULL;
		stmt_cache_clear(a);
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL || (s->key = malloc(key->len)) == NULL ||
	    (s->sql = strdup(sql->data)) == NULL) {
		if (s)
			free(s->key);
		free(s);
		error_set(err, PGF_E_MEMORY, "out of memory");
		return NULL;
	}
	memcpy(s->key, key->data, key->len);
	s->key_len = key->len;
	snprintf(s->name, sizeof(s->name), "pgferry_%u", ++a->next_stmt_id);
	if (PQsendPrepare(a->conn, s->name, sql->data, nparams, a->types) != 1) {
		free(s->key);
		free(s->sql);
		free(s);
		dr_conn_error(err, a->conn, "preparing a statement");
		return NULL;
	}
	s->next = a->stmts[b];
	a->stmts[b] = s;
	a->nstmts++;
	inflight_push(a, "prepare", 0, false, s);
	return s;
}

/* The cache key of a change: operation, relation and the generation of
 * its Relation message, and one byte per column saying which values the
 * statement leaves out (unchanged TOAST) — no text formatting per row. */
static void shape_key(apply_t *a, char op, const relcache_entry_t *rel, const tuple_t *newt,
                      const tuple_t *old, bool full)
{
	int i;

	buf_reset(&a->key);
	buf_append_u8(&a->key, (uint8_t)op);
	buf_append_be32(&a->key, rel->relid);
	buf_append_be64(&a->key, rel->generation);
	buf_append_u8(&a->key, full ? 1 : 0);
	if (newt == NULL && !full)
		return;
	for (i = 0; i < rel->ncolumns; i++)
		buf_append_u8(&a->key, (uint8_t)((newt && newt->columns[i].kind == 'u') |
		                                 ((full && old->columns[i].kind == 'u') << 1)));
}

/* ---- schema drift ---------------------------------------------------------- */

static bool verified_get(apply_t *a, uint32_t relid, uint64_t generation, uint8_t *mode)
{
	unsigned i = (relid * 2654435761u) % VERIFIED_SLOTS, n;

	for (n = 0; n < VERIFIED_SLOTS && a->verified[i].relid != 0; n++) {
		if (a->verified[i].relid == relid) {
			if (mode)
				*mode = a->verified[i].mode;
			return a->verified[i].generation == generation;
		}
		i = (i + 1) % VERIFIED_SLOTS;
	}
	return false;
}

/* Records a checked relation; takes ownership of columns. */
static void verified_put(apply_t *a, const relcache_entry_t *rel, uint8_t mode,
                         dr_column_t *columns)
{
	unsigned i = (rel->relid * 2654435761u) % VERIFIED_SLOTS;
	int c;

	if (a->nverified >= VERIFIED_SLOTS / 2) {
		/* more relations than expected: forget, and check again */
		verified_clear(a);
	}
	while (a->verified[i].relid != 0 && a->verified[i].relid != rel->relid)
		i = (i + 1) % VERIFIED_SLOTS;
	if (a->verified[i].relid == 0)
		a->nverified++;
	free(a->verified[i].columns);
	a->verified[i].relid = rel->relid;
	a->verified[i].generation = rel->generation;
	a->verified[i].mode = mode;
	a->verified[i].columns = columns;
	a->verified[i].identity_always = false;
	for (c = 0; c < rel->ncolumns; c++)
		if (columns[c].identity_always)
			a->verified[i].identity_always = true;
}

/* The DR columns of a checked relation (valid until the next check), or
 * NULL when it was not checked in this generation. */
static const dr_column_t *verified_columns(apply_t *a, const relcache_entry_t *rel,
                                           bool *identity_always)
{
	unsigned i = (rel->relid * 2654435761u) % VERIFIED_SLOTS, n;

	for (n = 0; n < VERIFIED_SLOTS && a->verified[i].relid != 0; n++) {
		if (a->verified[i].relid == rel->relid) {
			if (a->verified[i].generation != rel->generation)
				return NULL;
			if (identity_always)
				*identity_always = a->verified[i].identity_always;
			return a->verified[i].columns;
		}
		i = (i + 1) % VERIFIED_SLOTS;
	}
	return NULL;
}

/* Sends sql in the pipeline and syncs; the result is left in a->kept. */
static int pipeline_query(apply_t *a, const char *sql, int nparams, const char *const *params,
                          const char *what, pgf_error_t *err)
{
	PQclear(a->kept);
	a->kept = NULL;
	if (PQsendQueryParams(a->conn, sql, nparams, NULL, params, NULL, NULL, 0) != 1)
		return dr_conn_error(err, a->conn, what);
	inflight_push(a, what, 0, false, NULL)->keep = true;
	if (pipeline_sync(a, err) != PGF_OK)
		return PGF_ERR;
	if (a->kept == NULL)
		return error_set(err, PGF_E_APPLY, "%s: no result from the DR database", what);
	return PGF_OK;
}

static int drift(const relcache_entry_t *rel, pgf_error_t *err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int drift(const relcache_entry_t *rel, pgf_error_t *err, const char *fmt, ...)
{
	char what[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	error_set(err, PGF_E_DRIFT, "schema drift on %s.%s: %s", rel->namespace, rel->name, what);
	error_hint(err, "Make the DR table match the primary's (or set replicate_ddl = on for "
	                "future changes); apply retries by itself and goes on once it matches. "
	                "Nothing of this transaction was applied.");
	return PGF_ERR;
}

/* Whether only the net change per row may be applied for this table: it
 * must be found by its key (replica identity DEFAULT or INDEX), and on the
 * DR side (every partition included) every unique index must be on exactly
 * those key columns, with no exclusion constraint and no trigger that
 * fires during apply (ENABLE ALWAYS). Then writing each row's final image,
 * in any order, yields the same table and cannot trip a constraint. */
static bool has_key_columns(const relcache_entry_t *rel);

static int check_coalesce(apply_t *a, const relcache_entry_t *rel, dr_column_t *columns,
                          pgf_error_t *err)
{
	const char *params[3] = {rel->namespace, rel->name, NULL};
	uint8_t mode = NET_NONE;
	buf_t keys;
	int i, n = 0;

	if (!a->cfg->apply_coalesce) {
		verified_put(a, rel, NET_NONE, columns);
		return PGF_OK;
	}
	/* the key columns as a text[] literal, sorted like array_agg below */
	buf_init(&keys);
	buf_append_char(&keys, '{');
	for (i = 0; i < rel->ncolumns; i++) {
		const char *c;
		if (!rel->columns[i].key)
			continue;
		buf_append_str(&keys, n++ ? ",\"" : "\"");
		for (c = rel->columns[i].name; *c; c++) {
			if (*c == '"' || *c == '\\')
				buf_append_char(&keys, '\\');
			buf_append_char(&keys, *c);
		}
		buf_append_char(&keys, '"');
	}
	buf_append_char(&keys, '}');
	if (buf_failed(&keys)) {
		buf_free(&keys);
		free(columns);
		return error_set(err, PGF_E_MEMORY, "out of memory");
	}
	params[2] = keys.data;
	if (pipeline_query(
	            a,
	            "WITH t AS (SELECT format('%I.%I', $1::text, $2::text)::regclass AS rel), r AS "
	            "(SELECT rel AS relid FROM t UNION SELECT p.relid FROM t, "
	            "pg_catalog.pg_partition_tree(t.rel) p) SELECT (SELECT count(*) FROM "
	            "pg_catalog.pg_index i WHERE i.indrelid IN (SELECT relid FROM r) AND "
	            "i.indisunique AND (0 = ANY (i.indkey) OR (SELECT array_agg(a.attname::text "
	            "ORDER BY a.attname::text COLLATE \"C\") FROM pg_catalog.pg_attribute a "
	            "WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)) IS DISTINCT "
	            "FROM (SELECT array_agg(k ORDER BY k COLLATE \"C\") FROM unnest($3::text[]) "
	            "k))) + (SELECT count(*) FROM pg_catalog.pg_constraint x WHERE x.conrelid IN "
	            "(SELECT relid FROM r) AND x.contype = 'x'), (SELECT count(*) FROM "
	            "pg_catalog.pg_trigger t WHERE t.tgrelid IN (SELECT relid FROM r) AND "
	            "t.tgenabled = 'A')",
	            3, params, "coalesce check", err) != PGF_OK) {
		buf_free(&keys);
		free(columns);
		return PGF_ERR;
	}
	buf_free(&keys);
	/* a trigger that fires during apply may look at other rows: keep order */
	if (PQntuples(a->kept) == 1 && strcmp(PQgetvalue(a->kept, 0, 1), "0") == 0) {
		mode = NET_APPEND;
		if (rel->replica_identity != 'f' && has_key_columns(rel) &&
		    strcmp(PQgetvalue(a->kept, 0, 0), "0") == 0)
			mode = NET_COALESCE;
	}
	PQclear(a->kept);
	a->kept = NULL;
	verified_put(a, rel, mode, columns);
	return PGF_OK;
}

/* Compares a Relation message with the DR table, once per relation and
 * generation: apply never guesses where a column went. Generated columns
 * are not sent by the primary and are fine on the DR side. */
static int check_drift(apply_t *a, const relcache_entry_t *rel, pgf_error_t *err)
{
	const char *params[2] = {rel->namespace, rel->name};
	dr_column_t *columns;
	PGresult *res;
	int i, j, n;

	if (rel->namespace[0] == '\0' || verified_get(a, rel->relid, rel->generation, NULL))
		return PGF_OK;
	if (pipeline_query(a,
	                   "SELECT a.attname, a.atttypid::int8, format_type(a.atttypid, "
	                   "a.atttypmod), a.attgenerated <> '', a.attidentity = 'a', "
	                   "pgferry.type_has_equality(a.atttypid) FROM pg_catalog.pg_attribute a "
	                   "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN "
	                   "pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname "
	                   "= $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') AND a.attnum > 0 "
	                   "AND NOT a.attisdropped ORDER BY a.attnum",
	                   2, params, "schema check", err) != PGF_OK)
		return PGF_ERR;
	res = a->kept;
	n = PQntuples(res);
	if (n == 0)
		return drift(rel, err, "the table does not exist on the DR database");
	columns = calloc(rel->ncolumns ? rel->ncolumns : 1, sizeof(*columns));
	if (columns == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory");
	for (i = 0; i < rel->ncolumns; i++) {
		const relcache_column_t *c = &rel->columns[i];
		for (j = 0; j < n; j++)
			if (strcmp(PQgetvalue(res, j, 0), c->name) == 0)
				break;
		if (j == n) {
			free(columns);
			return drift(rel, err, "column \"%s\" is missing on the DR database",
			             c->name);
		}
		columns[i].type_oid = (Oid)strtoul(PQgetvalue(res, j, 1), NULL, 10);
		columns[i].identity_always = strcmp(PQgetvalue(res, j, 4), "t") == 0;
		columns[i].equality = strcmp(PQgetvalue(res, j, 5), "t") == 0;
		/* built-in types have the same OID everywhere; others are compared
		 * by the DR server when the value is read */
		if (c->type_oid < 16384 &&
		    (uint32_t)strtoul(PQgetvalue(res, j, 1), NULL, 10) != c->type_oid) {
			char dr_type[128], primary_type[128], oid[16], mod[16];
			const char *p[2] = {oid, mod};
			snprintf(dr_type, sizeof(dr_type), "%s", PQgetvalue(res, j, 2));
			snprintf(primary_type, sizeof(primary_type), "type OID %u", c->type_oid);
			snprintf(oid, sizeof(oid), "%u", c->type_oid);
			snprintf(mod, sizeof(mod), "%d", c->type_mod);
			/* a built-in type has the same name on the DR side */
			free(columns);
			if (pipeline_query(a, "SELECT format_type($1::oid, $2::int)", 2, p,
			                   "type name", err) == PGF_OK &&
			    PQntuples(a->kept) == 1)
				snprintf(primary_type, sizeof(primary_type), "%s",
				         PQgetvalue(a->kept, 0, 0));
			return drift(rel, err,
			             "column \"%s\" is %s on the DR database but %s on the primary",
			             c->name, dr_type, primary_type);
		}
	}
	for (j = 0; j < n; j++) {
		const char *name = PQgetvalue(res, j, 0);
		if (strcmp(PQgetvalue(res, j, 3), "t") == 0)
			continue;
		for (i = 0; i < rel->ncolumns; i++)
			if (strcmp(rel->columns[i].name, name) == 0)
				break;
		if (i == rel->ncolumns) {
			free(columns);
			return drift(
			        rel, err,
			        "column \"%s\" exists on the DR database but not on the primary",
			        name);
		}
	}
	PQclear(a->kept);
	a->kept = NULL;
	return check_coalesce(a, rel, columns, err);
}

static const relcache_entry_t *known_relation(apply_t *a, uint32_t relid, pgf_error_t *err)
{
	const relcache_entry_t *rel = relcache_get(a->relcache, relid);
	char lsn[LSN_TEXT_LEN];

	if (rel == NULL) {
		error_set(err, PGF_E_PROTOCOL, "change for relation %u before its Relation message",
		          relid);
		error_where(err, "transaction %u ending at %s", a->txn_xid,
		            lsn_format(a->txn_lsn, lsn));
		return NULL;
	}
	if (check_drift(a, rel, err) != PGF_OK) {
		error_where(err, "transaction %u ending at %s", a->txn_xid,
		            lsn_format(a->txn_lsn, lsn));
		return NULL;
	}
	return rel;
}

static int check_tuple(const relcache_entry_t *rel, const tuple_t *t, pgf_error_t *err)
{
	if (t->ncolumns != rel->ncolumns) {
		error_set(err, PGF_E_PROTOCOL,
		          "tuple for %s.%s has %u columns but its Relation message has %u",
		          rel->namespace, rel->name, t->ncolumns, rel->ncolumns);
		return PGF_ERR;
	}
	return PGF_OK;
}

/* Adds the value of column i of t as the next parameter. */
static void add_param(apply_t *a, int *n, const tuple_column_t *c)
{
	if (c->kind == 'n') {
		a->values[*n] = NULL;
		a->lengths[*n] = 0;
		a->formats[*n] = 0;
	} else {
		a->values[*n] = c->data;
		a->lengths[*n] = (int)c->len;
		/* text values are not NUL-terminated: send them as binary-safe
		 * text via their length (format 0 needs a terminator, so text is
		 * copied below when needed) */
		a->formats[*n] = c->kind == 'b' ? 1 : 0;
	}
	a->pipeline_bytes += c->len;
	(*n)++;
}

/* libpq reads text parameters up to a NUL: copy text values into scratch
 * with terminators. Binary values are passed with their length. */
static int terminate_text_params(apply_t *a, int n, pgf_error_t *err)
{
	size_t total = 0, off = 0;
	int i;

	for (i = 0; i < n; i++)
		if (a->values[i] && a->formats[i] == 0)
			total += (size_t)a->lengths[i] + 1;
	buf_reset(&a->scratch);
	if (!buf_reserve(&a->scratch, total))
		return error_set(err, PGF_E_MEMORY, "out of memory for a row of %zu bytes", total);
	for (i = 0; i < n; i++) {
		if (a->values[i] && a->formats[i] == 0) {
			char *dst = a->scratch.data + off;
			memcpy(dst, a->values[i], (size_t)a->lengths[i]);
			dst[a->lengths[i]] = '\0';
			a->values[i] = dst;
			off += (size_t)a->lengths[i] + 1;
		}
	}
	return PGF_OK;
}

static int send_stmt(apply_t *a, const stmt_t *s, int n, const char *what, uint32_t relid,
                     bool check_rows, pgf_error_t *err)
{
	if (terminate_text_params(a, n, err) != PGF_OK)
		return PGF_ERR;
	if (PQsendQueryPrepared(a->conn, s->name, n, a->values, a->lengths, a->formats, 0) != 1)
		return dr_conn_error(err, a->conn, "sending a change");
	inflight_push(a, what, relid, check_rows, s);
	a->group_rows++;
	return maybe_sync(a, err);
}

static int apply_insert(apply_t *a, uint32_t relid, const tuple_t *t, pgf_error_t *err)
{
	const relcache_entry_t *rel = known_relation(a, relid, err);
	const dr_column_t *dr;
	bool identity_always = false;
	const stmt_t *s;
	int i, n = 0;

	if (rel == NULL || check_tuple(rel, t, err) != PGF_OK)
		return PGF_ERR;
	shape_key(a, 'I', rel, NULL, NULL, false);
	s = stmt_find(a, &a->key);
	if (s != NULL)
		goto send;
	dr = verified_columns(a, rel, &identity_always);
	buf_reset(&a->sql);
	buf_append_str(&a->sql, "INSERT INTO ");
	append_qualified(&a->sql, rel);
	buf_append_str(&a->sql, " (");
	for (i = 0; i < rel->ncolumns; i++) {
		if (i)
			buf_append_str(&a->sql, ", ");
		append_ident(&a->sql, rel->columns[i].name);
		a->types[i] = dr ? dr[i].type_oid : 0;
	}
	buf_append_char(&a->sql, ')');
	/* the primary's value of an identity column is the value */
	if (identity_always)
		buf_append_str(&a->sql, " OVERRIDING SYSTEM VALUE");
	buf_append_str(&a->sql, " VALUES (");
	for (i = 0; i < rel->ncolumns; i++)
		buf_printf(&a->sql, "%s$%d", i ? ", " : "", i + 1);
	buf_append_char(&a->sql, ')');
	if (buf_failed(&a->sql) || buf_failed(&a->key))
		return error_set(err, PGF_E_MEMORY, "out of memory");
	s = stmt_prepare(a, &a->key, &a->sql, rel->ncolumns, err);
	if (s == NULL)
		return PGF_ERR;
send:
	for (i = 0; i < rel->ncolumns; i++) {
		if (t->columns[i].kind == 'u')
			return error_set(err, PGF_E_PROTOCOL,
			                 "insert into %s.%s carries an unchanged "
			                 "TOAST column",
			                 rel->namespace, rel->name);
		add_param(a, &n, &t->columns[i]);
	}
	return send_stmt(a, s, n, "insert", relid, false, err);
}

/*
 * The WHERE clause that finds the row. Values are parameters of the DR
 * column's own type (a->types), so they are read by that type's input
 * function in the DR session and compared as values, never as the text
 * the walsender printed.
 *
 * Replica identity DEFAULT / INDEX: by the key columns, with their
 * equality. FULL: every old column (but unchanged TOAST), NULL-safely, with
 * the type's equality where it has one and by the exact text of both
 * values printed by the DR server where it has none (json, point, xml...);
 * among equal rows, one whose every value also prints the same comes first
 * (equal is not identical: 1.0 and 1.00, citext 'A' and 'a'); limited to
 * one physical row, since a table without a key may hold duplicates.
 *
 * A GENERATED ALWAYS identity column that is not a key is left out of the
 * SET list (the DR server takes no value for it in an UPDATE) and checked
 * here to have the new value (guard), so a change of it cannot pass unseen.
 */
static void append_where(apply_t *a, const relcache_entry_t *rel, const dr_column_t *dr,
                         const tuple_t *old, bool full, const bool *guard, int *pno)
{
	int i, first_param = *pno + 1;
	bool first = true;

	if (full) {
		buf_append_str(&a->sql, " WHERE (tableoid, ctid) = (SELECT tableoid, ctid FROM ");
		append_qualified(&a->sql, rel);
		buf_append_str(&a->sql, " WHERE ");
		for (i = 0; i < rel->ncolumns; i++) {
			if (old->columns[i].kind == 'u')
				continue;
			if (!first)
				buf_append_str(&a->sql, " AND ");
			first = false;
			a->types[*pno] = dr ? dr[i].type_oid : 0;
			if (dr == NULL || dr[i].equality) {
				append_ident(&a->sql, rel->columns[i].name);
				buf_printf(&a->sql, " IS NOT DISTINCT FROM $%d", ++*pno);
			} else {
				buf_append_char(&a->sql, '(');
				append_ident(&a->sql, rel->columns[i].name);
				buf_printf(&a->sql, ")::text IS NOT DISTINCT FROM $%d::text",
				           ++*pno);
			}
		}
		if (first)
			buf_append_str(&a->sql, "true");
		if (!first && dr != NULL) {
			int p = first_param;
			bool any = false;
			buf_append_str(&a->sql, " ORDER BY ");
			for (i = 0; i < rel->ncolumns; i++) {
				if (old->columns[i].kind == 'u')
					continue;
				if (dr[i].equality) {
					buf_append_str(&a->sql, any ? " AND (" : "(");
					append_ident(&a->sql, rel->columns[i].name);
					buf_printf(&a->sql,
					           ")::text IS NOT DISTINCT FROM $%d::text", p);
					any = true;
				}
				p++;
			}
			if (any)
				buf_append_str(&a->sql, " DESC");
			else
				buf_append_str(&a->sql, "1");
		}
		buf_append_str(&a->sql, " LIMIT 1)");
	} else {
		buf_append_str(&a->sql, " WHERE ");
		for (i = 0; i < rel->ncolumns; i++) {
			if (!rel->columns[i].key)
				continue;
			if (!first)
				buf_append_str(&a->sql, " AND ");
			first = false;
			a->types[*pno] = dr ? dr[i].type_oid : 0;
			append_ident(&a->sql, rel->columns[i].name);
			buf_printf(&a->sql, " = $%d", ++*pno);
		}
		if (first)
			buf_append_str(&a->sql, "false");
	}
	for (i = 0; guard && i < rel->ncolumns; i++) {
		if (!guard[i])
			continue;
		a->types[*pno] = dr[i].type_oid;
		buf_append_str(&a->sql, " AND ");
		append_ident(&a->sql, rel->columns[i].name);
		buf_printf(&a->sql, " = $%d", ++*pno);
	}
}

static void add_where_params(apply_t *a, const relcache_entry_t *rel, const tuple_t *old, bool full,
                             int *n)
{
	int i;

	for (i = 0; i < rel->ncolumns; i++) {
		if (full ? old->columns[i].kind == 'u' : !rel->columns[i].key)
			continue;
		add_param(a, n, &old->columns[i]);
	}
}

/* An UPDATE or DELETE that finds its row by key or by a whole row must
 * change exactly one: the statement counts what it changed and raises
 * otherwise (pgferry.row_not_found, sql/dr_state.sql), so that the COMMIT
 * pipelined after it cannot commit past a change that did not happen. */
static void append_row_check_start(apply_t *a)
{
	buf_append_str(&a->sql, "WITH pgferry_changed AS (");
}

/* The relation's name as a string literal, for error messages the DR
 * server raises (standard_conforming_strings is on in this session). */
static void append_relation_literal(apply_t *a, const relcache_entry_t *rel)
{
	const char *parts[2] = {rel->namespace[0] ? rel->namespace : "pg_catalog", rel->name};
	const char *c;
	int i;

	buf_append_char(&a->sql, '\'');
	for (i = 0; i < 2; i++) {
		if (i)
			buf_append_char(&a->sql, '.');
		for (c = parts[i]; *c; c++) {
			if (*c == '\'')
				buf_append_char(&a->sql, '\'');
			buf_append_char(&a->sql, *c);
		}
	}
	buf_append_char(&a->sql, '\'');
}

static void append_row_check_end(apply_t *a, const relcache_entry_t *rel, const char *op)
{
	buf_printf(&a->sql,
	           " RETURNING 1) SELECT CASE WHEN count(*) = 1 THEN 1 ELSE "
	           "pgferry.row_not_found('%s', ",
	           op);
	append_relation_literal(a, rel);
	buf_append_str(&a->sql, ", count(*)) END FROM pgferry_changed");
}

static int no_identity_error(const relcache_entry_t *rel, const char *op, pgf_error_t *err)
{
	error_set(err, PGF_E_APPLY, "cannot %s in %s.%s: it has no replica identity", op,
	          rel->namespace, rel->name);
	error_hint(err, "Give the table a primary key or REPLICA IDENTITY FULL on the primary.");
	return PGF_ERR;
}

static bool has_key_columns(const relcache_entry_t *rel)
{
	int i;

	for (i = 0; i < rel->ncolumns; i++)
		if (rel->columns[i].key)
			return true;
	return false;
}

static bool same_value(const tuple_column_t *x, const tuple_column_t *y)
{
	return x->kind == y->kind && x->len == y->len &&
	       (x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
}

/* How an UPDATE treats each GENERATED ALWAYS identity column of the DR
 * table, which the DR server lets no UPDATE set: left out of the SET list
 * (skip) when the value is known not to change, or when it cannot be known
 * (a column outside the key), then checked in the WHERE clause (guard). A
 * value that does change stops apply with an error saying what to do. */
static int identity_plan(const relcache_entry_t *rel, const dr_column_t *dr, const tuple_t *newt,
                         const tuple_t *old, char old_kind, bool *skip, bool *guard,
                         pgf_error_t *err)
{
	int i;

	for (i = 0; i < rel->ncolumns; i++) {
		bool changed = false;
		skip[i] = guard[i] = false;
		if (!dr[i].identity_always || newt->columns[i].kind == 'u')
			continue;
		skip[i] = true;
		if (old_kind == 'O' || (old_kind == 'K' && rel->columns[i].key))
			changed = old->columns[i].kind != 'u' &&
			          !same_value(&old->columns[i], &newt->columns[i]);
		else if (!rel->columns[i].key)
			guard[i] = true; /* the old value was not sent */
		if (changed) {
			error_set(err, PGF_E_APPLY,
			          "the primary changed the GENERATED ALWAYS identity column \"%s\" "
			          "of "
			          "%s.%s, which the DR database lets no UPDATE set",
			          rel->columns[i].name, rel->namespace, rel->name);
			error_hint(
			        err,
			        "Make the DR column GENERATED BY DEFAULT (ALTER TABLE ... ALTER "
			        "COLUMN ... SET GENERATED BY DEFAULT) or drop its identity; apply "
			        "retries by itself.");
			return PGF_ERR;
		}
	}
	return PGF_OK;
}

static int apply_update(apply_t *a, const pgoutput_message_t *m, pgf_error_t *err)
{
	const relcache_entry_t *rel = known_relation(a, m->u.update.relid, err);
	const tuple_t *newt = &m->u.update.new_tuple;
	const tuple_t *old;
	const dr_column_t *dr;
	bool full, identity_always = false;
	bool skip[PGOUTPUT_MAX_COLUMNS], guard[PGOUTPUT_MAX_COLUMNS];
	const stmt_t *s;
	int i, n = 0, pno = 0;

	if (rel == NULL || check_tuple(rel, newt, err) != PGF_OK)
		return PGF_ERR;
	full = m->u.update.old_kind == 'O';
	old = m->u.update.old_kind ? &m->u.update.old_tuple : newt;
	if (m->u.update.old_kind && check_tuple(rel, old, err) != PGF_OK)
		return PGF_ERR;
	if (!full && !has_key_columns(rel))
		return no_identity_error(rel, "update", err);
	for (i = 0; i < rel->ncolumns && newt->columns[i].kind == 'u'; i++)
		;
	if (i == rel->ncolumns)
		return PGF_OK; /* nothing but unchanged TOAST: nothing to write */
	dr = verified_columns(a, rel, &identity_always);
	if (dr == NULL || !identity_always) {
		memset(skip, 0, sizeof(bool) * rel->ncolumns);
		memset(guard, 0, sizeof(bool) * rel->ncolumns);
	} else if (identity_plan(rel, dr, newt, old, m->u.update.old_kind, skip, guard, err) !=
	           PGF_OK)
		return PGF_ERR;
	shape_key(a, 'U', rel, newt, old, full);
	s = stmt_find(a, &a->key);
	if (s != NULL)
		goto send;
	buf_reset(&a->sql);
	append_row_check_start(a);
	buf_append_str(&a->sql, "UPDATE ");
	append_qualified(&a->sql, rel);
	buf_append_str(&a->sql, " SET ");
	for (i = 0; i < rel->ncolumns; i++) {
		/* unchanged TOAST values are not sent: leave them as they are */
		if (newt->columns[i].kind == 'u' || skip[i])
			continue;
		if (pno)
			buf_append_str(&a->sql, ", ");
		append_ident(&a->sql, rel->columns[i].name);
		a->types[pno] = dr ? dr[i].type_oid : 0;
		buf_printf(&a->sql, " = $%d", ++pno);
	}
	if (pno == 0) {
		/* nothing but identity columns that stay: write the row as it is,
		 * so that it must still be there */
		for (i = 0; i < rel->ncolumns - 1 && dr && dr[i].identity_always; i++)
			;
		append_ident(&a->sql, rel->columns[i].name);
		buf_append_str(&a->sql, " = ");
		append_ident(&a->sql, rel->columns[i].name);
	}
	append_where(a, rel, dr, old, full, identity_always ? guard : NULL, &pno);
	append_row_check_end(a, rel, "update");
	if (buf_failed(&a->sql) || buf_failed(&a->key))
		return error_set(err, PGF_E_MEMORY, "out of memory");
	s = stmt_prepare(a, &a->key, &a->sql, pno, err);
	if (s == NULL)
		return PGF_ERR;
send:
	for (i = 0; i < rel->ncolumns; i++)
		if (newt->columns[i].kind != 'u' && !skip[i])
			add_param(a, &n, &newt->columns[i]);
	add_where_params(a, rel, old, full, &n);
	for (i = 0; identity_always && i < rel->ncolumns; i++)
		if (guard[i])
			add_param(a, &n, &newt->columns[i]);
	return send_stmt(a, s, n, "update", rel->relid, true, err);
}

static int apply_delete(apply_t *a, const pgoutput_message_t *m, pgf_error_t *err)
{
	const relcache_entry_t *rel = known_relation(a, m->u.delete_.relid, err);
	const tuple_t *old = &m->u.delete_.old_tuple;
	bool full = m->u.delete_.old_kind == 'O';
	const stmt_t *s;
	int n = 0, pno = 0;

	if (rel == NULL || check_tuple(rel, old, err) != PGF_OK)
		return PGF_ERR;
	if (!full && !has_key_columns(rel))
		return no_identity_error(rel, "delete", err);
	shape_key(a, 'D', rel, NULL, old, full);
	s = stmt_find(a, &a->key);
	if (s != NULL)
		goto send;
	buf_reset(&a->sql);
	append_row_check_start(a);
	buf_append_str(&a->sql, "DELETE FROM ");
	append_qualified(&a->sql, rel);
	append_where(a, rel, verified_columns(a, rel, NULL), old, full, NULL, &pno);
	append_row_check_end(a, rel, "delete");
	if (buf_failed(&a->sql) || buf_failed(&a->key))
		return error_set(err, PGF_E_MEMORY, "out of memory");
	s = stmt_prepare(a, &a->key, &a->sql, pno, err);
	if (s == NULL)
		return PGF_ERR;
send:
	add_where_params(a, rel, old, full, &n);
	return send_stmt(a, s, n, "delete", rel->relid, true, err);
}

/* For a row inserted and deleted again within one DR transaction (net
 * changes): no row with its key may exist on the DR side, or the insert
 * would have failed had it been applied in order. */
static int apply_check_absent(apply_t *a, uint32_t relid, const tuple_t *t, pgf_error_t *err)
{
	const relcache_entry_t *rel = known_relation(a, relid, err);
	const stmt_t *s;
	int n = 0, pno = 0;

	if (rel == NULL || check_tuple(rel, t, err) != PGF_OK)
		return PGF_ERR;
	shape_key(a, 'X', rel, NULL, NULL, false);
	s = stmt_find(a, &a->key);
	if (s != NULL)
		goto send;
	buf_reset(&a->sql);
	buf_append_str(&a->sql, "SELECT CASE WHEN EXISTS (SELECT 1 FROM ");
	append_qualified(&a->sql, rel);
	append_where(a, rel, verified_columns(a, rel, NULL), t, false, NULL, &pno);
	buf_append_str(&a->sql, ") THEN pgferry.row_exists(");
	append_relation_literal(a, rel);
	buf_append_str(&a->sql, ") ELSE 1 END");
	if (buf_failed(&a->sql) || buf_failed(&a->key))
		return error_set(err, PGF_E_MEMORY, "out of memory");
	s = stmt_prepare(a, &a->key, &a->sql, pno, err);
	if (s == NULL)
		return PGF_ERR;
send:
	add_where_params(a, rel, t, false, &n);
	return send_stmt(a, s, n, "insert", rel->relid, false, err);
}

static int apply_truncate(apply_t *a, const pgoutput_message_t *m, pgf_error_t *err)
{
	uint32_t i;

	buf_reset(&a->sql);
	buf_append_str(&a->sql, "TRUNCATE ");
	for (i = 0; i < m->u.truncate.nrelids; i++) {
		const relcache_entry_t *rel = known_relation(a, pgoutput_truncate_relid(m, i), err);
		if (rel == NULL)
			return PGF_ERR;
		if (i)
			buf_append_str(&a->sql, ", ");
		append_qualified(&a->sql, rel);
	}
	if (m->u.truncate.options & 2)
		buf_append_str(&a->sql, " RESTART IDENTITY");
	if (m->u.truncate.options & 1)
		buf_append_str(&a->sql, " CASCADE");
	if (buf_failed(&a->sql))
		return error_set(err, PGF_E_MEMORY, "out of memory");
	if (PQsendQueryParams(a->conn, a->sql.data, 0, NULL, NULL, NULL, NULL, 0) != 1)
		return dr_conn_error(err, a->conn, "sending a truncate");
	inflight_push(a, "truncate", m->u.truncate.nrelids ? pgoutput_truncate_relid(m, 0) : 0,
	              false, NULL);
	a->group_rows++;
	return maybe_sync(a, err);
}

/* ---- net changes (apply_coalesce) ------------------------------------------- */

static void net_row_free(net_row_t *r)
{
	free(r->cols);
	free(r->blob);
	free(r->key);
	free(r);
}

static void net_clear(apply_t *a)
{
	net_row_t *r, *n;

	for (r = a->net_first; r; r = n) {
		n = r->next;
		net_row_free(r);
	}
	a->net_first = a->net_last = NULL;
	memset(a->net_hash, 0, sizeof(a->net_hash));
	a->net_count = a->net_bytes = 0;
}

/* The row's identity: its key columns, each as kind, length and bytes. */
static bool net_key(apply_t *a, const relcache_entry_t *rel, const tuple_t *t)
{
	int i;

	buf_reset(&a->key);
	buf_append_be32(&a->key, rel->relid);
	for (i = 0; i < rel->ncolumns; i++) {
		if (!rel->columns[i].key)
			continue;
		buf_append_u8(&a->key, (uint8_t)t->columns[i].kind);
		buf_append_be32(&a->key, t->columns[i].len);
		buf_append(&a->key, t->columns[i].data, t->columns[i].len);
	}
	return !buf_failed(&a->key);
}

static net_row_t *net_find(apply_t *a, unsigned h)
{
	net_row_t *r;

	for (r = a->net_hash[h % NET_BUCKETS]; r; r = r->hnext)
		if (r->hash == h && r->key_len == a->key.len &&
		    memcmp(r->key, a->key.data, a->key.len) == 0)
			return r;
	return NULL;
}

/* Sets r's image to t, taking unchanged TOAST columns ('u') from the image
 * it had, where it had them. */
static bool net_set_image(net_row_t *r, const tuple_t *t)
{
	size_t total = 0, off = 0;
	tuple_column_t *cols = malloc(sizeof(*cols) * (t->ncolumns ? t->ncolumns : 1));
	char *blob;
	int i;

	if (cols == NULL)
		return false;
	for (i = 0; i < t->ncolumns; i++) {
		cols[i] = t->columns[i];
		if (cols[i].kind == 'u' && r->cols && i < r->ncolumns && r->cols[i].kind != 'u')
			cols[i] = r->cols[i];
		if (cols[i].kind == 't' || cols[i].kind == 'b')
			total += cols[i].len;
	}
	blob = malloc(total ? total : 1);
	if (blob == NULL) {
		free(cols);
		return false;
	}
	for (i = 0; i < t->ncolumns; i++) {
		if (cols[i].kind != 't' && cols[i].kind != 'b') {
			cols[i].data = NULL;
			cols[i].len = 0;
			continue;
		}
		memcpy(blob + off, cols[i].data, cols[i].len);
		cols[i].data = blob + off;
		off += cols[i].len;
	}
	free(r->cols);
	free(r->blob);
	r->cols = cols;
	r->blob = blob;
	r->blob_len = total;
	r->ncolumns = t->ncolumns;
	return true;
}

static net_row_t *net_new(apply_t *a, uint32_t relid, bool keyed, unsigned h)
{
	net_row_t *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->relid = relid;
	if (keyed) {
		r->key = malloc(a->key.len);
		if (r->key == NULL) {
			free(r);
			return NULL;
		}
		memcpy(r->key, a->key.data, a->key.len);
		r->key_len = a->key.len;
		r->hash = h;
		r->hnext = a->net_hash[h % NET_BUCKETS];
		a->net_hash[h % NET_BUCKETS] = r;
	}
	if (a->net_last)
		a->net_last->next = r;
	else
		a->net_first = r;
	a->net_last = r;
	a->net_count++;
	return r;
}

static int apply_insert(apply_t *a, uint32_t relid, const tuple_t *t, pgf_error_t *err);
static int apply_check_absent(apply_t *a, uint32_t relid, const tuple_t *t, pgf_error_t *err);
static int apply_update(apply_t *a, const pgoutput_message_t *m, pgf_error_t *err);
static int apply_delete(apply_t *a, const pgoutput_message_t *m, pgf_error_t *err);

/* Writes every net change, in order of first appearance, and forgets them. */
static int net_flush(apply_t *a, pgf_error_t *err)
{
	pgoutput_message_t *m = a->net_msg;
	uint64_t rows = a->group_rows; /* counted when they came in */
	net_row_t *r;
	int rc = PGF_OK;
	int i;

	for (r = a->net_first; r && rc == PGF_OK; r = r->next) {
		tuple_t *t;
		memset(m, 0, offsetof(pgoutput_message_t, u));
		if (r->existed == r->present && !r->present) {
			/* inserted and deleted again: nothing to write, but the
			 * insert must have been possible, as in order */
			t = &m->u.delete_.old_tuple;
			t->ncolumns = r->ncolumns;
			for (i = 0; i < r->ncolumns; i++)
				t->columns[i] = r->cols[i];
			rc = apply_check_absent(a, r->relid, t, err);
			continue;
		}
		if (!r->existed) {
			t = &m->u.insert.new_tuple;
			m->u.insert.relid = r->relid;
		} else if (r->present) {
			t = &m->u.update.new_tuple;
			m->u.update.relid = r->relid;
			m->u.update.old_kind = 0;
		} else {
			t = &m->u.delete_.old_tuple;
			m->u.delete_.relid = r->relid;
			m->u.delete_.old_kind = 'K';
		}
		t->ncolumns = r->ncolumns;
		for (i = 0; i < r->ncolumns; i++)
			t->columns[i] = r->cols[i];
		if (!r->existed)
			rc = apply_insert(a, r->relid, t, err);
		else if (r->present)
			rc = apply_update(a, m, err);
		else
			rc = apply_delete(a, m, err);
	}
	a->group_rows = rows;
	net_clear(a);
	return rc;
}

/* Records a change as a net change if its table allows it (*taken); the
 * caller applies it as it comes otherwise, after writing what is held so
 * that order is kept around it. */
static int net_add(apply_t *a, const pgoutput_message_t *m, bool *taken, pgf_error_t *err)
{
	uint32_t relid = m->type == PGOUTPUT_INSERT   ? m->u.insert.relid
	                 : m->type == PGOUTPUT_UPDATE ? m->u.update.relid
	                                              : m->u.delete_.relid;
	const relcache_entry_t *rel = known_relation(a, relid, err);
	const tuple_t *t;
	net_row_t *r;
	uint8_t mode = NET_NONE;
	unsigned h;

	*taken = false;
	if (rel == NULL)
		return PGF_ERR;
	verified_get(a, rel->relid, rel->generation, &mode);
	/* a key that changes, or a table that does not allow it: in order */
	if (mode == NET_NONE || (mode == NET_APPEND && m->type != PGOUTPUT_INSERT) ||
	    (m->type == PGOUTPUT_UPDATE && m->u.update.old_kind != 0) ||
	    a->net_count >= NET_MAX_ROWS || a->net_bytes >= NET_MAX_BYTES)
		return net_flush(a, err);
	t = m->type == PGOUTPUT_INSERT   ? &m->u.insert.new_tuple
	    : m->type == PGOUTPUT_UPDATE ? &m->u.update.new_tuple
	                                 : &m->u.delete_.old_tuple;
	if (check_tuple(rel, t, err) != PGF_OK)
		return PGF_ERR;
	if (mode == NET_APPEND) {
		/* an insert of a table without net changes: held, in order */
		if ((r = net_new(a, relid, false, 0)) == NULL || !net_set_image(r, t))
			return error_set(err, PGF_E_MEMORY, "out of memory");
		r->present = true;
		a->net_bytes += r->blob_len;
		a->group_rows++;
		*taken = true;
		return PGF_OK;
	}
	if (!net_key(a, rel, t))
		return error_set(err, PGF_E_MEMORY, "out of memory");
	h = hash_key(a->key.data, a->key.len);
	r = net_find(a, h);
	if (r == NULL) {
		if ((r = net_new(a, relid, true, h)) == NULL)
			return error_set(err, PGF_E_MEMORY, "out of memory");
		r->existed = m->type != PGOUTPUT_INSERT;
		r->present = r->existed;
	}
	switch (m->type) {
	case PGOUTPUT_INSERT:
		if (r->present)
			return net_flush(a, err); /* the DR side will say what is wrong */
		break;
	case PGOUTPUT_UPDATE:
		if (!r->present)
			return net_flush(a, err);
		break;
	default:
		if (!r->present)
			return net_flush(a, err);
		break;
	}
	a->net_bytes -= r->blob_len;
	if (!net_set_image(r, t))
		return error_set(err, PGF_E_MEMORY, "out of memory");
	a->net_bytes += r->blob_len;
	r->present = m->type != PGOUTPUT_DELETE;
	a->group_rows++;
	*taken = true;
	return PGF_OK;
}

/* ---- streamed transactions ------------------------------------------------ */

static stream_file_t *stream_find(apply_t *a, uint32_t xid)
{
	int i;

	for (i = 0; i < MAX_STREAMS; i++)
		if (a->streams[i] && a->streams[i]->xid == xid)
			return a->streams[i];
	return NULL;
}

static stream_file_t *stream_open(apply_t *a, uint32_t xid, pgf_error_t *err)
{
	stream_file_t *s = stream_find(a, xid);
	int i;

	if (s)
		return s;
	for (i = 0; i < MAX_STREAMS && a->streams[i]; i++)
		;
	if (i == MAX_STREAMS) {
		error_set(err, PGF_E_MEMORY, "more than %d streamed transactions in progress",
		          MAX_STREAMS);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		error_set(err, PGF_E_MEMORY, "out of memory");
		return NULL;
	}
	s->xid = xid;
	snprintf(s->path, sizeof(s->path), "%s/stream-%u.spill", a->cfg->work_dir, xid);
	/* a file left by a crash (the stream is sent again whole) or a planted
	 * link goes; O_EXCL | O_NOFOLLOW never writes through a link */
	if (unlink(s->path) != 0 && errno != ENOENT)
		s->fd = -1;
	else
		s->fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (s->fd < 0) {
		error_set(err, PGF_E_IO, "could not create spill file \"%s\": %s", s->path,
		          strerror(errno));
		error_hint(err, "Check that work_dir exists, is writable and has free space.");
		free(s);
		return NULL;
	}
	a->streams[i] = s;
	return s;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return PGF_ERR;
		}
		p += w;
		len -= (size_t)w;
	}
	return PGF_OK;
}

/* The index of subtransaction xid in s's list, or s->nsubxacts. Slots
 * left by an abort point past the list or at another xid: skipped. */
static size_t subxact_find(const stream_file_t *s, uint32_t xid)
{
	size_t h, mask = s->nslots - 1;

	if (s->nslots == 0)
		return s->nsubxacts;
	for (h = (xid * 2654435761u) & mask; s->slots[h] != 0; h = (h + 1) & mask) {
		size_t i = s->slots[h] - 1;
		if (i < s->nsubxacts && s->subxacts[i].xid == xid)
			return i;
	}
	return s->nsubxacts;
}

static void subxact_slot_put(stream_file_t *s, size_t i)
{
	size_t h, mask = s->nslots - 1;

	for (h = (s->subxacts[i].xid * 2654435761u) & mask; s->slots[h] != 0; h = (h + 1) & mask)
		;
	s->slots[h] = (uint32_t)(i + 1);
	s->slots_used++;
}

/* Remembers where a subtransaction's changes start, for its abort. */
static int subxact_note(stream_file_t *s, uint32_t xid, pgf_error_t *err)
{
	size_t i;

	/* the common case: the latest subtransaction goes on */
	if (s->nsubxacts > 0 && s->subxacts[s->nsubxacts - 1].xid == xid)
		return PGF_OK;
	if (subxact_find(s, xid) < s->nsubxacts)
		return PGF_OK;
	if (s->nsubxacts == s->subxacts_cap) {
		size_t cap = s->subxacts_cap ? 2 * s->subxacts_cap : 64;
		subxact_t *n = cap > UINT32_MAX - 1 ? NULL : realloc(s->subxacts, cap * sizeof(*n));
		if (n == NULL)
			return error_set(err, PGF_E_MEMORY,
			                 "out of memory for the subtransactions of transaction %u",
			                 s->xid);
		s->subxacts = n;
		s->subxacts_cap = cap;
	}
	s->subxacts[s->nsubxacts].xid = xid;
	s->subxacts[s->nsubxacts].offset = s->size;
	s->nsubxacts++;
	/* at most half full, counting slots an abort left behind */
	if (2 * (s->slots_used + 1) > s->nslots) {
		size_t n = 128;
		uint32_t *slots;
		while (n < 4 * s->nsubxacts)
			n *= 2;
		slots = calloc(n, sizeof(*slots));
		if (slots == NULL)
			return error_set(err, PGF_E_MEMORY,
			                 "out of memory for the subtransactions of transaction %u",
			                 s->xid);
		free(s->slots);
		s->slots = slots;
		s->nslots = n;
		s->slots_used = 0;
		for (i = 0; i < s->nsubxacts; i++)
			subxact_slot_put(s, i);
	} else
		subxact_slot_put(s, s->nsubxacts - 1);
	return PGF_OK;
}

/* Spill record: u32 length, u64 wal_start, the pgoutput message. */
static int stream_append(apply_t *a, stream_file_t *s, uint64_t wal_start, const uint8_t *data,
                         size_t len, pgf_error_t *err)
{
	uint8_t hdr[12];
	int i;

	/* remember where each subtransaction starts, for subtransaction aborts */
	if (a->msg->has_xid && a->msg->xid != s->xid && subxact_note(s, a->msg->xid, err) != PGF_OK)
		return PGF_ERR;
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
	for (i = 0; i < 8; i++)
		hdr[4 + i] = (uint8_t)(wal_start >> (56 - 8 * i));
	if (write_all(s->fd, hdr, sizeof(hdr)) != PGF_OK || write_all(s->fd, data, len) != PGF_OK) {
		error_set(err, PGF_E_IO, "could not write spill file \"%s\": %s", s->path,
		          strerror(errno));
		error_hint(err, "Check free space in work_dir.");
		return PGF_ERR;
	}
	s->size += (off_t)(sizeof(hdr) + len);
	return PGF_OK;
}

static int stream_abort(apply_t *a, uint32_t xid, uint32_t subxid, pgf_error_t *err)
{
	stream_file_t *s = stream_find(a, xid);
	size_t i;

	if (s == NULL)
		return PGF_OK; /* nothing of it was spilled */
	if (subxid == xid || subxid == 0) {
		stream_close(a, s, true);
		return PGF_OK;
	}
	i = subxact_find(s, subxid);
	if (i == s->nsubxacts)
		return PGF_OK; /* the subtransaction changed nothing */
	/* drop the subtransaction and every one started after it */
	if (ftruncate(s->fd, s->subxacts[i].offset) != 0 ||
	    lseek(s->fd, s->subxacts[i].offset, SEEK_SET) < 0)
		return error_set(err, PGF_E_IO, "could not truncate spill file \"%s\": %s", s->path,
		                 strerror(errno));
	s->size = s->subxacts[i].offset;
	s->nsubxacts = i;
	return PGF_OK;
}

static int apply_change(apply_t *a, const pgoutput_message_t *m, size_t len, pgf_error_t *err);

/* Replays a committed streamed transaction from its spill file, one
 * message at a time (memory: the largest single message). */
static int stream_replay(apply_t *a, uint32_t xid, pgf_error_t *err)
{
	stream_file_t *s = stream_find(a, xid);
	pgoutput_decoder_t saved = a->decoder;
	off_t pos = 0;
	uint8_t hdr[12];
	buf_t rec;
	int rc = PGF_OK;

	if (s == NULL)
		return PGF_OK;
	buf_init(&rec);
	a->decoder.in_stream = true; /* spilled changes carry their xid */
	while (pos < s->size) {
		uint32_t len;
		uint64_t wal_start = 0;
		int i;
		if (pread(s->fd, hdr, sizeof(hdr), pos) != (ssize_t)sizeof(hdr)) {
			rc = error_set(err, PGF_E_IO, "could not read spill file \"%s\"", s->path);
			break;
		}
		len = ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) |
		      ((uint32_t)hdr[2] << 8) | hdr[3];
		for (i = 0; i < 8; i++)
			wal_start = (wal_start << 8) | hdr[4 + i];
		if ((int64_t)len > a->cfg->max_frame_bytes ||
		    pos + (off_t)sizeof(hdr) + (off_t)len > s->size) {
			rc = error_set(err, PGF_E_IO, "spill file \"%s\" is corrupt at offset %lld",
			               s->path, (long long)pos);
			break;
		}
		buf_reset(&rec);
		if (!buf_reserve(&rec, len)) {
			rc = error_set(err, PGF_E_MEMORY, "out of memory");
			break;
		}
		if (pread(s->fd, rec.data, len, pos + (off_t)sizeof(hdr)) != (ssize_t)len) {
			rc = error_set(err, PGF_E_IO, "could not read spill file \"%s\"", s->path);
			break;
		}
		pos += (off_t)sizeof(hdr) + (off_t)len;
		if (pgoutput_decode(&a->decoder, (const uint8_t *)rec.data, len, a->msg, err) !=
		    PGF_OK) {
			rc = PGF_ERR;
			break;
		}
		(void)wal_start;
		if (apply_change(a, a->msg, len, err) != PGF_OK) {
			rc = PGF_ERR;
			break;
		}
	}
	buf_free(&rec);
	a->decoder = saved;
	if (rc == PGF_OK)
		stream_close(a, s, true);
	return rc;
}

/* ---- the dispatcher --------------------------------------------------------- */

/* Relation, Type and row changes, inside a transaction (or a replay). */
/* ---- pgferry's own logical messages ---------------------------------------- */

/* "pgferry.sequences": lines of "qualified_name value", the primary's
 * sequences as the source read them. Applied in the pipeline, in order. */
static int apply_sequences(apply_t *a, const char *text, size_t len, pgf_error_t *err)
{
	size_t off = 0;

	while (off < len) {
		const char *line = text + off, *nl = memchr(line, '\n', len - off);
		size_t n = nl ? (size_t)(nl - line) : len - off;
		const char *sp = memrchr(line, ' ', n);
		char name[512], value[32];
		const char *params[2] = {name, value};

		off += n + 1;
		if (sp == NULL || (size_t)(sp - line) >= sizeof(name) ||
		    (size_t)(line + n - sp - 1) >= sizeof(value) || sp == line)
			return error_set(err, PGF_E_PROTOCOL,
			                 "malformed sequence line in a "
			                 "pgferry.sequences message");
		memcpy(name, line, (size_t)(sp - line));
		name[sp - line] = '\0';
		memcpy(value, sp + 1, (size_t)(line + n - sp - 1));
		value[line + n - sp - 1] = '\0';
		if (PQsendQueryParams(a->conn, "SELECT pgferry.sync_sequence($1, $2::int8)", 2,
		                      NULL, params, NULL, NULL, 0) != 1)
			return dr_conn_error(err, a->conn, "sending a sequence value");
		inflight_push(a, "sequence", 0, false, NULL);
		if (maybe_sync(a, err) != PGF_OK)
			return PGF_ERR;
	}
	return PGF_OK;
}

/* Whether a failed DDL only says that the DR side already has it: done by
 * hand by a DBA fixing drift, or applied before a crash of the pipeline. */
static bool ddl_already_done(const char *state)
{
	static const char *const codes[] = {
	        "42P07", /* duplicate_table */
	        "42701", /* duplicate_column */
	        "42710", /* duplicate_object */
	        "42P06", /* duplicate_schema */
	        "42723", /* duplicate_function */
	        "42P01", /* undefined_table (dropped already) */
	        "42703", /* undefined_column */
	        "42704", /* undefined_object */
	};
	size_t i;

	for (i = 0; state && i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(state, codes[i]) == 0)
			return true;
	return false;
}

static int exec_checked(apply_t *a, const char *sql, pgf_error_t *err)
{
	PGresult *res = PQexec(a->conn, sql);
	int st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		dr_result_error(err, res, "DDL");
		PQclear(res);
		return PGF_ERR;
	}
	PQclear(res);
	return PGF_OK;
}

/* "pgferry.ddl": the search_path, a newline, the command as the primary ran
 * it (sql/primary_ddl.sql). Run at its place in the stream, inside the
 * group's DR transaction, outside the pipeline (the simple protocol takes a
 * string of several statements). */
static int apply_ddl(apply_t *a, const char *text, size_t len, pgf_error_t *err)
{
	const char *nl = memchr(text, '\n', len);
	char *path, *cmd;
	const char *params[1];
	PGresult *res;
	int rc = PGF_OK;

	if (!a->cfg->replicate_ddl) {
		if (!a->ddl_ignored_logged)
			log_warning(
			        "the primary sends DDL but replicate_ddl is off on the sink: not "
			        "applied; schema drift will stop apply if a table no longer "
			        "matches");
		a->ddl_ignored_logged = true;
		return PGF_OK;
	}
	if (nl == NULL || memchr(text, '\0', len) != NULL)
		return error_set(err, PGF_E_PROTOCOL, "malformed pgferry.ddl message");
	if ((a->net_first && net_flush(a, err) != PGF_OK) || pipeline_sync(a, err) != PGF_OK)
		return PGF_ERR;
	path = strndup(text, (size_t)(nl - text));
	cmd = strndup(nl + 1, len - (size_t)(nl - text) - 1);
	if (path == NULL || cmd == NULL) {
		free(path);
		free(cmd);
		return error_set(err, PGF_E_MEMORY, "out of memory");
	}
	if (PQexitPipelineMode(a->conn) != 1) {
		free(path);
		free(cmd);
		return dr_conn_error(err, a->conn, "leaving pipeline mode");
	}
	params[0] = path;
	res = PQexecParams(a->conn, "SELECT set_config('search_path', $1, true)", 1, NULL, params,
	                   NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = dr_result_error(err, res, "setting the DDL's search_path");
	PQclear(res);
	if (rc == PGF_OK)
		rc = exec_checked(a, "SAVEPOINT pgferry_ddl", err);
	if (rc == PGF_OK) {
		res = PQexec(a->conn, cmd);
		int st = PQresultStatus(res);
		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			if (ddl_already_done(state)) {
				log_warning("DDL from the primary skipped: the DR database already "
				            "has it (%s): %.300s",
				            PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY), cmd);
				rc = exec_checked(a, "ROLLBACK TO SAVEPOINT pgferry_ddl", err);
			} else {
				char lsn[LSN_TEXT_LEN];
				rc = dr_result_error(err, res, "DDL from the primary");
				error_where(err, "transaction %u ending at %s, command: %.150s",
				            a->txn_xid, lsn_format(a->txn_lsn, lsn), cmd);
				error_hint(
				        err,
				        "Make the DR schema ready for this command (or apply its "
				        "effect by hand: a command that finds its object already "
				        "there is skipped); apply retries by itself.");
			}
		} else
			log_info("applied DDL from the primary: %.300s", cmd);
		PQclear(res);
	}
	if (rc == PGF_OK)
		rc = exec_checked(
		        a, "RELEASE SAVEPOINT pgferry_ddl; SET LOCAL search_path TO DEFAULT", err);
	free(path);
	free(cmd);
	if (PQenterPipelineMode(a->conn) != 1 && rc == PGF_OK)
		rc = dr_conn_error(err, a->conn, "entering pipeline mode");
	/* tables may have changed under cached checks */
	verified_clear(a);
	return rc;
}

static int apply_logical_message(apply_t *a, const pgoutput_message_t *m, pgf_error_t *err)
{
	const char *prefix = m->u.message.prefix;
	const char *content = (const char *)m->u.message.content;
	size_t len = m->u.message.content_len;

	/* only transactional ones: they have a place in the stream */
	if (!(m->u.message.flags & 1))
		return PGF_OK;
	if (strcmp(prefix, "pgferry.sequences") == 0)
		return apply_sequences(a, content, len, err);
	if (strcmp(prefix, "pgferry.ddl") == 0)
		return apply_ddl(a, content, len, err);
	/* heartbeats and other messages change no table */
	return PGF_OK;
}

static int apply_change(apply_t *a, const pgoutput_message_t *m, size_t len, pgf_error_t *err)
{
	switch (m->type) {
	case PGOUTPUT_RELATION:
		/* held images follow the old description: write them first */
		if (a->net_first && net_flush(a, err) != PGF_OK)
			return PGF_ERR;
		return relcache_update(a->relcache, m, err);
	case PGOUTPUT_TYPE:
		return relcache_update_type(a->relcache, m, err);
	case PGOUTPUT_INSERT:
	case PGOUTPUT_UPDATE:
	case PGOUTPUT_DELETE: {
		bool taken;
		a->group_bytes += len;
		if (net_add(a, m, &taken, err) != PGF_OK)
			return PGF_ERR;
		if (taken)
			return PGF_OK;
		if (m->type == PGOUTPUT_INSERT)
			return apply_insert(a, m->u.insert.relid, &m->u.insert.new_tuple, err);
		return m->type == PGOUTPUT_UPDATE ? apply_update(a, m, err)
		                                  : apply_delete(a, m, err);
	}
	case PGOUTPUT_TRUNCATE:
		a->group_bytes += len;
		if (a->net_first && net_flush(a, err) != PGF_OK)
			return PGF_ERR;
		return apply_truncate(a, m, err);
	case PGOUTPUT_MESSAGE:
		return apply_logical_message(a, m, err);
	case PGOUTPUT_ORIGIN:
		return PGF_OK;
	default:
		return error_set(err, PGF_E_PROTOCOL, "unexpected %s message inside a transaction",
		                 pgoutput_type_name(m->type));
	}
}

static bool group_full(apply_t *a)
{
	if ((int64_t)a->group_txns >= a->cfg->apply_group_max_transactions)
		return true;
	return elapsed_since(&a->group_started) * 1000.0 >= (double)a->cfg->apply_group_max_delay;
}

static int source_commit(apply_t *a, uint64_t end_lsn, int64_t commit_time, pgf_error_t *err)
{
	a->in_txn = false;
	a->group_txns++;
	a->group_end_lsn = end_lsn;
	a->group_commit_time = commit_time;
	if (group_full(a))
		return apply_commit_group(a, false, err);
	return PGF_OK;
}

static int unsupported_two_phase(pgf_error_t *err)
{
	error_set(err, PGF_E_PROTOCOL, "the stream carries two-phase (prepared) transactions");
	error_detail(err, "The sink applies prepared transactions when they commit; the slot "
	                  "must not decode them at PREPARE time.");
	error_hint(err, "pgferry source never asks for them; stream with pgferry source, which "
	                "decodes a prepared transaction at its COMMIT PREPARED.");
	return PGF_ERR;
}

int apply_message(apply_t *a, uint64_t wal_start, const uint8_t *data, size_t len, pgf_error_t *err)
{
	pgoutput_message_t *m = a->msg;
	char lsn[LSN_TEXT_LEN];

	if (!apply_connected(a))
		return error_set(err, PGF_E_DATABASE, "not connected to the DR database");
	if (pgoutput_decode(&a->decoder, data, len, m, err) != PGF_OK) {
		error_where(err, "message at %s", lsn_format(wal_start, lsn));
		return PGF_ERR;
	}
	/* inside a Stream Start/Stop block everything goes to the spill file */
	if (a->current_stream != NULL && m->type != PGOUTPUT_STREAM_STOP) {
		if (m->type == PGOUTPUT_STREAM_START || m->type == PGOUTPUT_STREAM_COMMIT ||
		    m->type == PGOUTPUT_STREAM_ABORT)
			return error_set(err, PGF_E_PROTOCOL, "%s inside a stream block at %s",
			                 pgoutput_type_name(m->type), lsn_format(wal_start, lsn));
		return stream_append(a, a->current_stream, wal_start, data, len, err);
	}
	switch (m->type) {
	case PGOUTPUT_BEGIN:
		if (a->in_txn)
			return error_set(err, PGF_E_PROTOCOL, "BEGIN inside a transaction at %s",
			                 lsn_format(wal_start, lsn));
		a->in_txn = true;
		a->txn_xid = m->u.begin.xid;
		a->txn_lsn = m->u.begin.final_lsn;
		/* the origin's progress is the end of the last applied commit:
		 * a commit before it was applied already and must not be twice */
		a->skipping = m->u.begin.final_lsn < a->progress_lsn;
		if (a->skipping)
			return PGF_OK;
		/* its commit is not here yet: secure the whole transactions first */
		if (a->commit_watermark != NULL && a->group_open && a->group_txns > 0 &&
		    m->u.begin.final_lsn > __atomic_load_n(a->commit_watermark, __ATOMIC_ACQUIRE)) {
			a->in_txn = false;
			/* durable now: input paused mid-transaction, so this is
			 * where the figures (and the slot) must catch up */
			if (apply_commit_group(a, true, err) != PGF_OK)
				return PGF_ERR;
			a->in_txn = true;
		}
		return group_begin(a, err);
	case PGOUTPUT_COMMIT:
		if (!a->in_txn)
			return error_set(err, PGF_E_PROTOCOL, "COMMIT outside a transaction at %s",
			                 lsn_format(wal_start, lsn));
		if (a->skipping) {
			a->in_txn = a->skipping = false;
			return PGF_OK;
		}
		return source_commit(a, m->u.commit.end_lsn, m->u.commit.commit_time, err);
	case PGOUTPUT_STREAM_START:
		a->current_stream = stream_open(a, m->u.stream_start.xid, err);
		return a->current_stream ? PGF_OK : PGF_ERR;
	case PGOUTPUT_STREAM_STOP:
		a->current_stream = NULL;
		return PGF_OK;
	case PGOUTPUT_STREAM_ABORT:
		return stream_abort(a, m->u.stream_abort.xid, m->u.stream_abort.subxid, err);
	case PGOUTPUT_STREAM_COMMIT: {
		uint64_t end_lsn = m->u.stream_commit.end_lsn;
		int64_t commit_time = m->u.stream_commit.commit_time;
		if (a->in_txn)
			return error_set(err, PGF_E_PROTOCOL, "STREAM COMMIT inside a transaction");
		if (m->u.stream_commit.commit_lsn < a->progress_lsn) {
			/* applied before: drop its spill file */
			stream_close(a, stream_find(a, m->u.stream_commit.xid), true);
			return PGF_OK;
		}
		if (group_begin(a, err) != PGF_OK)
			return PGF_ERR;
		a->in_txn = true;
		a->txn_xid = m->u.stream_commit.xid;
		a->txn_lsn = m->u.stream_commit.commit_lsn;
		if (stream_replay(a, m->u.stream_commit.xid, err) != PGF_OK)
			return PGF_ERR;
		return source_commit(a, end_lsn, commit_time, err);
	}
	case PGOUTPUT_BEGIN_PREPARE:
	case PGOUTPUT_PREPARE:
	case PGOUTPUT_COMMIT_PREPARED:
	case PGOUTPUT_ROLLBACK_PREPARED:
	case PGOUTPUT_STREAM_PREPARE:
		return unsupported_two_phase(err);
	case PGOUTPUT_MESSAGE:
		/* a non-transactional message outside a transaction changes nothing */
		if (!a->in_txn || a->skipping)
			return PGF_OK;
		return apply_change(a, m, len, err);
	case PGOUTPUT_RELATION:
	case PGOUTPUT_TYPE:
	case PGOUTPUT_ORIGIN:
		return apply_change(a, m, len, err);
	default:
		if (!a->in_txn)
			return error_set(err, PGF_E_PROTOCOL, "%s outside a transaction at %s",
			                 pgoutput_type_name(m->type), lsn_format(wal_start, lsn));
		if (a->skipping)
			return PGF_OK;
		return apply_change(a, m, len, err);
	}
}

/* Runs one statement outside the pipeline (only between groups). */
static PGresult *exec_outside_pipeline(apply_t *a, const char *sql, int nparams,
                                       const char *const *params, pgf_error_t *err)
{
	PGresult *res;
	int st;

	if (PQpipelineStatus(a->conn) != PQ_PIPELINE_OFF && PQexitPipelineMode(a->conn) != 1) {
		dr_conn_error(err, a->conn, "leaving pipeline mode");
		return NULL;
	}
	res = PQexecParams(a->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	st = PQresultStatus(res);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		dr_result_error(err, res, "a check");
		PQclear(res);
		res = NULL;
	}
	if (PQenterPipelineMode(a->conn) != 1 && res != NULL) {
		PQclear(res);
		dr_conn_error(err, a->conn, "entering pipeline mode");
		return NULL;
	}
	return res;
}

/* Guarantee 4: a stream is applied only into a copy known complete: a
 * finished pgferry clone, or one the operator seeded otherwise and said so
 * (initial_copy = external). why says what is missing when it is not. */
static int check_seeded(apply_t *a, bool *seeded, bool *record_external, char *why, size_t why_len,
                        pgf_error_t *err)
{
	PGresult *res;

	*seeded = false;
	*record_external = false;
	res = exec_outside_pipeline(
	        a, "SELECT finished_at IS NOT NULL, started_at, method FROM pgferry.clone", 0, NULL,
	        err);
	if (res == NULL)
		return PGF_ERR;
	if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0)
		*seeded = true;
	else if (PQntuples(res) == 1)
		snprintf(why, why_len,
		         "the initial copy of this DR database is not complete: the pgferry clone "
		         "started at %s did not finish; run pgferry clone again (it starts over)",
		         PQgetvalue(res, 0, 1));
	else if (a->cfg->initial_copy == INITIAL_COPY_EXTERNAL)
		*seeded = *record_external = true;
	else
		snprintf(why, why_len,
		         "the initial copy of this DR database is not known to be complete: no "
		         "pgferry clone finished here; run pgferry clone into an empty database, "
		         "or set initial_copy = external if the copy was seeded otherwise from "
		         "the slot's consistent point");
	PQclear(res);
	return PGF_OK;
}

/* The origin of the stream, taken for this session (outside the pipeline);
 * a conflict over it is a refusal, anything else an error. */
static int attach_for_session(apply_t *a, identity_verdict_t *verdict, char *why, size_t why_len,
                              pgf_error_t *err)
{
	int rc;

	if (PQpipelineStatus(a->conn) != PQ_PIPELINE_OFF && PQexitPipelineMode(a->conn) != 1)
		return dr_conn_error(err, a->conn, "leaving pipeline mode");
	rc = origin_attach(a, err);
	if (PQenterPipelineMode(a->conn) != 1)
		return dr_conn_error(err, a->conn, "entering pipeline mode");
	if (rc != PGF_OK && err->code == PGF_E_IDENTITY) {
		snprintf(why, why_len, "%s%s%s", err->message, err->hint[0] ? ". " : "", err->hint);
		*verdict = IDENTITY_ORIGIN_CONFLICT;
		error_clear(err);
		return PGF_OK;
	}
	return rc;
}

int apply_copy_complete(apply_t *a, bool *complete, char *why, size_t why_len, pgf_error_t *err)
{
	bool record_external;

	why[0] = '\0';
	if (!apply_connected(a))
		return error_set(err, PGF_E_DATABASE, "not connected to the DR database");
	if (a->group_open || a->in_txn)
		return error_set(err, PGF_E_APPLY, "copy check inside a transaction");
	return check_seeded(a, complete, &record_external, why, why_len, err);
}

const char *apply_origin(const apply_t *a)
{
	return a->origin;
}

int apply_check_identity(apply_t *a, uint64_t system_identifier, const char *database,
                         const char *slot, identity_verdict_t *verdict, char *why, size_t why_len,
                         pgf_error_t *err)
{
	char sysid[32];
	const char *params[4] = {sysid, database, slot, NULL};
	PGresult *res;
	bool seeded, record_external;

	if (!apply_connected(a))
		return error_set(err, PGF_E_DATABASE, "not connected to the DR database");
	if (a->group_open || a->in_txn)
		return error_set(err, PGF_E_APPLY, "identity check inside a transaction");
	why[0] = '\0';
	res = exec_outside_pipeline(a, "SELECT reason, fenced_at FROM pgferry.fence", 0, NULL, err);
	if (res == NULL)
		return PGF_ERR;
	if (PQntuples(res) > 0) {
		snprintf(why, why_len,
		         "this DR database was promoted at %s (%s); it takes no stream",
		         PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 0));
		*verdict = IDENTITY_FENCED;
		PQclear(res);
		return PGF_OK;
	}
	PQclear(res);
	snprintf(sysid, sizeof(sysid), "%" PRIu64, system_identifier);
	res = exec_outside_pipeline(a,
	                            "SELECT system_identifier::text, database, slot FROM "
	                            "pgferry.identity",
	                            0, NULL, err);
	if (res == NULL)
		return PGF_ERR;
	if (PQntuples(res) == 1 && (strcmp(PQgetvalue(res, 0, 0), sysid) != 0 ||
	                            strcmp(PQgetvalue(res, 0, 1), database) != 0 ||
	                            strcmp(PQgetvalue(res, 0, 2), slot) != 0)) {
		snprintf(why, why_len,
		         "this DR database follows system %s, database \"%s\", slot \"%s\"; the "
		         "stream offered comes from system %s, database \"%s\", slot \"%s\"",
		         PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), sysid,
		         database, slot);
		*verdict = IDENTITY_MISMATCH;
		PQclear(res);
		return PGF_OK;
	}
	*verdict = PQntuples(res) == 0 ? IDENTITY_RECORDED : IDENTITY_MATCHES;
	PQclear(res);
	if (check_seeded(a, &seeded, &record_external, why, why_len, err) != PGF_OK)
		return PGF_ERR;
	if (!seeded) {
		*verdict = IDENTITY_UNSEEDED;
		return PGF_OK;
	}
	params[3] = record_external ? "t" : "f";
	if (*verdict == IDENTITY_RECORDED || record_external) {
		/* first contact: identity, the stream's own origin and (with
		 * initial_copy = external) the operator's word, in one transaction */
		res = exec_outside_pipeline(
		        a, "SELECT pgferry.record_identity($1::numeric, $2, $3, $4::boolean)", 4,
		        params, err);
		if (res == NULL) {
			if (strstr(err->message, "PF003") == NULL)
				return PGF_ERR;
			snprintf(why, why_len, "%s. %s", err->message, err->hint);
			error_clear(err);
			*verdict = IDENTITY_ORIGIN_CONFLICT;
			return PGF_OK;
		}
		PQclear(res);
	}
	return attach_for_session(a, verdict, why, why_len, err);
}

uint64_t apply_failed_lsn(const apply_t *a)
{
	return a->in_txn ? a->txn_lsn : 0;
}

int apply_check_fence(apply_t *a, bool *fenced, char *why, size_t why_len, pgf_error_t *err)
{
	PGresult *res;

	*fenced = false;
	if (!apply_connected(a))
		return error_set(err, PGF_E_DATABASE, "not connected to the DR database");
	if (a->group_open || a->in_txn)
		return PGF_OK; /* the group's own fence check covers it */
	res = exec_outside_pipeline(a, "SELECT reason, fenced_at FROM pgferry.fence", 0, NULL, err);
	if (res == NULL)
		return PGF_ERR;
	if (PQntuples(res) > 0) {
		*fenced = true;
		snprintf(why, why_len,
		         "this DR database was promoted at %s (%s); it takes no stream",
		         PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 0));
	}
	PQclear(res);
	return PGF_OK;
}

int apply_advance_idle(apply_t *a, uint64_t lsn, pgf_error_t *err)
{
	int i;

	if (!apply_connected(a) || a->group_open || a->in_txn || a->current_stream != NULL ||
	    lsn <= a->progress_lsn)
		return PGF_OK;
	for (i = 0; i < MAX_STREAMS; i++)
		if (a->streams[i] != NULL)
			return PGF_OK; /* a streamed transaction is still open */
	if (group_begin(a, err) != PGF_OK)
		return PGF_ERR;
	a->group_progress_only = true;
	a->group_end_lsn = lsn;
	a->group_commit_time = a->progress_time; /* the last commit's time stays */
	return apply_commit_group(a, true, err);
}

void apply_set_commit_watermark(apply_t *a, const uint64_t *received_commit_lsn)
{
	a->commit_watermark = received_commit_lsn;
}

void apply_set_proto_version(apply_t *a, int proto_version)
{
	a->proto_version = proto_version;
	pgoutput_decoder_init(&a->decoder, proto_version);
}

void apply_reset(apply_t *a)
{
	if (a->group_open || a->ninflight > 0)
		rollback_quietly(a);
	a->group_open = false;
	a->group_progress_only = false;
	a->in_txn = false;
	a->skipping = false;
	a->ninflight = 0;
	a->pipeline_bytes = 0;
	PQclear(a->kept);
	a->kept = NULL;
	verified_clear(a);
	net_clear(a);
	/* groups committed before the one rolled back stay committed: make
	 * them durable and say so, or the figures would call them unapplied
	 * until the next stream (and promote would wait for them) */
	if (a->has_pending && apply_connected(a)) {
		pgf_error_t err;
		error_clear(&err);
		if (apply_commit_group(a, true, &err) != PGF_OK) {
			log_warning("could not make the last applied groups durable: %s",
			            err.message);
			a->has_pending = false;
			a->group_open = false;
			rollback_quietly(a);
		}
	}
	streams_drop_all(a);
	relcache_clear(a->relcache);
	pgoutput_decoder_init(&a->decoder, a->proto_version);
}
