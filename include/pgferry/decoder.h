/*
 * decoder.h — pgoutput (logical replication protocol versions 1 to 4),
 * the walsender's CopyData wrappers, and the relation cache.
 *
 * Pure: bytes in, structs out. No sockets, no libpq, no global state; every
 * read is bounds-checked and a malformed message is an error naming the
 * message type and byte offset, never a crash.
 *
 * Ownership: pgoutput_decode fills a caller-owned pgoutput_message_t. Strings
 * and values in it point into the caller's input buffer (pgoutput strings are
 * NUL-terminated on the wire, so they are valid C strings) and stay valid as
 * long as that buffer does. The struct is large (fixed column arrays, no
 * allocation): allocate it once and reuse it.
 */
#ifndef PGFERRY_DECODER_H
#define PGFERRY_DECODER_H

#include "pgferry/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- LSNs and times ---------------------------------------------------- */

/* "X/Y" as PostgreSQL prints LSNs; buf of at least LSN_TEXT_LEN bytes */
#define LSN_TEXT_LEN 20
char *lsn_format(uint64_t lsn, char *buf);
int lsn_parse(const char *text, uint64_t *lsn);

/* PostgreSQL timestamps: microseconds since 2000-01-01 00:00:00 UTC. */
#define PG_EPOCH_OFFSET_US INT64_C(946684800000000) /* 2000-01-01 in Unix µs */
/* Saturating: a timestamp from outside may be anything (PostgreSQL's
 * infinity is INT64_MAX), and overflow must not be undefined behaviour. */
static inline int64_t pgtime_to_unix_us(int64_t t)
{
	return t > INT64_MAX - PG_EPOCH_OFFSET_US ? INT64_MAX : t + PG_EPOCH_OFFSET_US;
}
static inline int64_t unix_us_to_pgtime(int64_t t)
{
	return t < INT64_MIN + PG_EPOCH_OFFSET_US ? INT64_MIN : t - PG_EPOCH_OFFSET_US;
}
/* ISO 8601 UTC with microseconds, e.g. 2026-01-02T03:04:05.678901Z; buf >= 32 */
char *pgtime_format_iso(int64_t pgtime, char *buf);

/* ---- bounds-checked reader (the one reader for outside bytes) ----------- */

typedef struct reader {
	const uint8_t *data;
	size_t len;
	size_t pos;
} reader_t;

static inline void reader_init(reader_t *r, const void *data, size_t len)
{
	r->data = data;
	r->len = len;
	r->pos = 0;
}
static inline size_t reader_remaining(const reader_t *r)
{
	return r->len - r->pos;
}
/* Each returns PGF_OK, or PGF_ERR (without moving) when too few bytes remain. */
int reader_u8(reader_t *r, uint8_t *v);
int reader_u16(reader_t *r, uint16_t *v); /* big-endian, as all of PostgreSQL's */
int reader_u32(reader_t *r, uint32_t *v);
int reader_u64(reader_t *r, uint64_t *v);
int reader_i64(reader_t *r, int64_t *v);
/* n bytes, returned as a pointer into the buffer */
int reader_bytes(reader_t *r, size_t n, const uint8_t **p);
/* a NUL-terminated string within the buffer */
int reader_cstring(reader_t *r, const char **s);

/* ---- walsender CopyData messages (inside START_REPLICATION's COPY) ------ */

typedef struct walsender_message {
	char kind;              /* 'w' XLogData, 'k' primary keepalive */
	uint64_t wal_start;     /* w: start of this record's WAL */
	uint64_t wal_end;       /* w and k: the server's current end of WAL */
	int64_t send_time;      /* w and k: the server's clock, pgtime */
	bool reply_requested;   /* k */
	const uint8_t *payload; /* w: the pgoutput message */
	size_t payload_len;
} walsender_message_t;

/* Parses one CopyData message as the walsender sends it. */
int walsender_parse(const uint8_t *data, size_t len, walsender_message_t *out, pgf_error_t *err);

/* ---- pgoutput messages -------------------------------------------------- */

#define PGOUTPUT_MAX_COLUMNS 1664 /* PostgreSQL's MaxTupleAttributeNumber */

typedef enum pgoutput_type {
	PGOUTPUT_BEGIN = 'B',
	PGOUTPUT_COMMIT = 'C',
	PGOUTPUT_ORIGIN = 'O',
	PGOUTPUT_RELATION = 'R',
	PGOUTPUT_TYPE = 'Y',
	PGOUTPUT_INSERT = 'I',
	PGOUTPUT_UPDATE = 'U',
	PGOUTPUT_DELETE = 'D',
	PGOUTPUT_TRUNCATE = 'T',
	PGOUTPUT_MESSAGE = 'M',
	PGOUTPUT_STREAM_START = 'S',
	PGOUTPUT_STREAM_STOP = 'E',
	PGOUTPUT_STREAM_COMMIT = 'c',
	PGOUTPUT_STREAM_ABORT = 'A',
	PGOUTPUT_BEGIN_PREPARE = 'b',
	PGOUTPUT_PREPARE = 'P',
	PGOUTPUT_COMMIT_PREPARED = 'K',
	PGOUTPUT_ROLLBACK_PREPARED = 'r',
	PGOUTPUT_STREAM_PREPARE = 'p',
} pgoutput_type_t;

/* One column of a tuple: kind 'n' null, 'u' unchanged TOAST (no value),
 * 't' text, 'b' binary; data/len point into the input buffer. Text values
 * are NOT NUL-terminated. */
typedef struct tuple_column {
	char kind;
	uint32_t len;
	const char *data;
} tuple_column_t;

typedef struct tuple {
	uint16_t ncolumns;
	tuple_column_t columns[PGOUTPUT_MAX_COLUMNS];
} tuple_t;

typedef struct relation_column {
	uint8_t flags; /* 1 = part of the key */
	const char *name;
	uint32_t type_oid;
	int32_t type_mod;
} relation_column_t;

typedef struct pgoutput_message {
	pgoutput_type_t type;
	size_t length; /* bytes of the message */
	/* xid of a streamed transaction: set for messages inside a Stream
	 * Start/Stop block (protocol >= 2), and for stream commit/abort/prepare */
	bool has_xid;
	uint32_t xid;

	union {
		struct {
			uint64_t final_lsn;
			int64_t commit_time;
			uint32_t xid;
		} begin;
		struct {
			uint8_t flags;
			uint64_t commit_lsn;
			uint64_t end_lsn;
			int64_t commit_time;
		} commit;
		struct {
			uint64_t commit_lsn;
			const char *name;
		} origin;
		struct {
			uint32_t relid;
			const char *namespace; /* "" means pg_catalog, as on the wire */
			const char *name;
			char replica_identity; /* d, n, f, i */
			uint16_t ncolumns;
			relation_column_t columns[PGOUTPUT_MAX_COLUMNS];
		} relation;
		struct {
			uint32_t type_oid;
			const char *namespace;
			const char *name;
		} type;
		struct {
			uint32_t relid;
			tuple_t new_tuple;
		} insert;
		struct {
			uint32_t relid;
			char old_kind; /* 0 none, 'K' key columns, 'O' whole old row */
			tuple_t old_tuple;
			tuple_t new_tuple;
		} update;
		struct {
			uint32_t relid;
			char old_kind; /* 'K' or 'O' */
			tuple_t old_tuple;
		} delete_;
		struct {
			uint32_t nrelids;
			uint8_t options;           /* 1 CASCADE, 2 RESTART IDENTITY */
			const uint8_t *relids_raw; /* nrelids big-endian uint32: use
			                              pgoutput_truncate_relid */
		} truncate;
		struct {
			uint8_t flags; /* 1 = transactional */
			uint64_t lsn;
			const char *prefix;
			uint32_t content_len;
			const uint8_t *content;
		} message;
		struct {
			uint32_t xid;
			uint8_t first_segment;
		} stream_start;
		struct {
			uint32_t xid;
			uint8_t flags;
			uint64_t commit_lsn;
			uint64_t end_lsn;
			int64_t commit_time;
		} stream_commit;
		struct {
			uint32_t xid;
			uint32_t subxid;
			bool has_abort_lsn; /* protocol 4 with parallel streaming */
			uint64_t abort_lsn;
			int64_t abort_time;
		} stream_abort;
		struct {
			uint64_t prepare_lsn;
			uint64_t end_lsn;
			int64_t prepare_time;
			uint32_t xid;
			const char *gid;
		} begin_prepare;
		struct { /* Prepare and Stream Prepare */
			uint8_t flags;
			uint64_t prepare_lsn;
			uint64_t end_lsn;
			int64_t prepare_time;
			uint32_t xid;
			const char *gid;
		} prepare;
		struct {
			uint8_t flags;
			uint64_t commit_lsn;
			uint64_t end_lsn;
			int64_t commit_time;
			uint32_t xid;
			const char *gid;
		} commit_prepared;
		struct {
			uint8_t flags;
			uint64_t prepare_end_lsn;
			uint64_t rollback_end_lsn;
			int64_t prepare_time;
			int64_t rollback_time;
			uint32_t xid;
			const char *gid;
		} rollback_prepared;
	} u;
} pgoutput_message_t;

/* Decoder state that depends on earlier messages: the protocol version and
 * whether we are inside a Stream Start/Stop block (changes then carry an xid). */
typedef struct pgoutput_decoder {
	int proto_version; /* 1..4 */
	bool in_stream;
} pgoutput_decoder_t;

void pgoutput_decoder_init(pgoutput_decoder_t *d, int proto_version);
/* Decodes one pgoutput message (the payload of an XLogData message). On
 * error, err names the message type and byte offset; *out is undefined. */
int pgoutput_decode(pgoutput_decoder_t *d, const uint8_t *data, size_t len, pgoutput_message_t *out,
                    pgf_error_t *err);
/* Decodes a message but for the body of a change (Insert, Update, Delete,
 * Truncate) or a Relation or Type message, of which only the type and,
 * inside a stream block, the xid are read: what the sink's network thread
 * needs, leaving the body to the one pgoutput_decode where it is applied.
 * Keeps d's stream state as pgoutput_decode does. */
int pgoutput_decode_header(pgoutput_decoder_t *d, const uint8_t *data, size_t len,
                           pgoutput_message_t *m, pgf_error_t *err);
/* Whether pgoutput_decode_header leaves the message's body undecoded: a
 * change (Insert, Update, Delete, Truncate), a Relation or a Type message. */
bool pgoutput_header_only(uint8_t type);

/* What any other message says, in 24 bytes: the sink's network thread
 * decodes it once and keeps this with the record, and its apply thread
 * rebuilds the message from it (pgoutput_facts_message) instead of
 * decoding it again. Strings are offsets from the message's first byte.
 * The xid of a message that has one (has_xid) is kept beside, not here.
 * Two-phase messages keep nothing but their type (apply refuses them), a
 * Commit and a Stream Commit not their flags (always 0). */
typedef union pgoutput_facts {
	struct {
		uint64_t final_lsn;
		int64_t commit_time;
		uint32_t xid;
	} begin;
	struct { /* Commit and Stream Commit */
		uint64_t commit_lsn;
		uint64_t end_lsn;
		int64_t commit_time;
	} commit;
	struct {
		uint64_t commit_lsn;
		uint32_t name;
	} origin;
	struct {
		uint64_t lsn;
		uint32_t prefix;
		uint32_t content;
		uint32_t content_len;
		uint8_t flags;
	} message;
	struct {
		uint8_t first_segment;
	} stream_start;
	struct {
		uint64_t abort_lsn;
		int64_t abort_time;
		uint32_t subxid;
		bool has_abort_lsn;
	} stream_abort;
} pgoutput_facts_t;

/* The facts of m, decoded (pgoutput_decode or pgoutput_decode_header)
 * from the message at data; zero for a message pgoutput_header_only. */
void pgoutput_facts_set(const pgoutput_message_t *m, const uint8_t *data, pgoutput_facts_t *f);
/* Fills m as decoding the len bytes at data did, from their facts, type and
 * xid (0: none), for a message that is not pgoutput_header_only. Strings
 * point into data, as pgoutput_decode's do. */
void pgoutput_facts_message(uint8_t type, uint32_t xid, const pgoutput_facts_t *f,
                            const uint8_t *data, size_t len, pgoutput_message_t *m);
uint32_t pgoutput_truncate_relid(const pgoutput_message_t *m, uint32_t i);
/* "begin", "commit", ... as in pgferry decode's JSON; "unknown" otherwise */
const char *pgoutput_type_name(pgoutput_type_t t);

/* ---- relation cache ----------------------------------------------------- */

/* A relation as last described by a Relation message; owns its strings. */
typedef struct relcache_column {
	char *name;
	uint32_t type_oid;
	int32_t type_mod;
	bool key;
} relcache_column_t;

typedef struct relcache_entry {
	uint32_t relid;
	char *namespace;
	char *name;
	char replica_identity;
	uint16_t ncolumns;
	relcache_column_t *columns;
	uint64_t generation; /* bumped each time the entry is replaced */
} relcache_entry_t;

typedef struct relcache relcache_t;

relcache_t *relcache_create(void);
void relcache_free(relcache_t *c);
/* Records a Relation message (replacing any earlier entry of that relid;
 * one that describes the relation exactly as its entry does changes
 * nothing, not even the generation). */
int relcache_update(relcache_t *c, const pgoutput_message_t *relation, pgf_error_t *err);
/* relation describes its relid exactly as the cached entry does. */
bool relcache_same(const relcache_t *c, const pgoutput_message_t *relation);
/* Records a Type message. */
int relcache_update_type(relcache_t *c, const pgoutput_message_t *type, pgf_error_t *err);
/* NULL if unknown. Valid until the next relcache_update of that relid or
 * relcache_free. */
const relcache_entry_t *relcache_get(const relcache_t *c, uint32_t relid);
/* Namespace and name of a recorded type, or NULL. */
const char *relcache_type_name(const relcache_t *c, uint32_t type_oid);
/* Forgets everything (a new stream starts with new Relation messages). */
void relcache_clear(relcache_t *c);

/* ---- capture files ------------------------------------------------------ */

/* "PGFCAP1\n", then records: 4-byte big-endian length + one CopyData
 * message ('w' or 'k') exactly as the walsender sent it. */
#define CAPTURE_MAGIC      "PGFCAP1\n"
#define CAPTURE_MAGIC_LEN  8
#define CAPTURE_MAX_RECORD (1u << 30)

/* Reads records out of a capture file held in memory (or mapped). */
typedef struct capture_reader {
	reader_t r;
	uint64_t record_no;   /* 1-based number of the last record returned */
	size_t record_offset; /* byte offset of the last record's length field */
} capture_reader_t;

int capture_reader_init(capture_reader_t *cr, const uint8_t *data, size_t len, pgf_error_t *err);
/* 1 and the record, 0 at a clean end, PGF_ERR on a malformed record (err
 * names the record number and byte offset). */
int capture_reader_next(capture_reader_t *cr, const uint8_t **record, size_t *len,
                        pgf_error_t *err);

#endif
