/*
 * wire.h — pgferry's own protocol between source and sink (docs/PROTOCOL.md).
 *
 * Every frame is: u8 type | u32 big-endian payload length | u32 CRC-32C of
 * those 5 bytes | payload. A header whose check does not match, or a length
 * over max_frame_bytes, is refused before anything is allocated.
 * Messages are encoded into a buf_t and decoded from a payload through the
 * bounds-checked reader; decoders fill caller-owned structs (strings are
 * copied into fixed arrays, so nothing points into the frame afterwards).
 */
#ifndef PGFERRY_WIRE_H
#define PGFERRY_WIRE_H

#include "pgferry/buf.h"
#include "pgferry/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_PROTOCOL_VERSION 3
#define WIRE_HEADER_LEN       9 /* type, length, check */
#define WIRE_V1_HEADER_LEN    5 /* protocol 1: type, length */

typedef enum {
	WIRE_HELLO = 1,   /* source → sink: who the primary is */
	WIRE_WELCOME = 2, /* sink → source: where to resume */
	WIRE_BATCH = 3,   /* source → sink: records (batch.h) */
	WIRE_ACK = 4,     /* sink → source: received and applied LSNs */
	WIRE_PING = 5,    /* either way: liveness and clock samples */
	WIRE_PONG = 6,
	WIRE_ERROR = 7,         /* either way, before closing */
	WIRE_END_OF_STREAM = 8, /* source → sink: the primary shut down cleanly */
	WIRE_PRIMARY_FACTS = 9, /* source → sink: learned on its own primary connection */
	WIRE_TYPE_MAX = 9,
} wire_type_t;

/* codes of WIRE_ERROR */
typedef enum {
	WIRE_ERR_PROTOCOL = 1,
	WIRE_ERR_VERSION = 2,
	WIRE_ERR_IDENTITY = 3, /* the sink follows another primary */
	WIRE_ERR_FENCED = 4,   /* the DR database was promoted */
	WIRE_ERR_BUSY = 5,     /* another source is connected */
	WIRE_ERR_BAD_BATCH = 6,
	WIRE_ERR_APPLY = 7, /* apply failed; reconnect and resend */
	WIRE_ERR_INTERNAL = 8,
	WIRE_ERR_TOO_LARGE = 9, /* a change is larger than max_frame_bytes */
} wire_error_code_t;

typedef struct wire_hello {
	uint16_t protocol_version;
	uint64_t system_identifier;
	uint32_t timeline;
	uint8_t proto_version; /* pgoutput protocol of the stream */
	uint32_t capabilities; /* WIRE_CAP_*: what the source can send */
	int64_t source_time;   /* pgtime, the source host's clock */
	char database[128];
	char slot[128];
	/* with WIRE_CAP_EARLY_STREAM: the stream started before the welcome,
	 * at stream_from (the slot's confirmed position), when the primary had
	 * flushed WAL up to primary_flush */
	uint64_t stream_from;
	uint64_t primary_flush;
} wire_hello_t;

typedef struct wire_welcome {
	uint16_t protocol_version;
	uint64_t resume_lsn; /* START_REPLICATION here: the DR side's committed progress */
	int64_t sink_time;
	/* WIRE_CAP_* of the hello the sink takes (0: the field is left out, as
	 * a source that announced none reads no more) */
	uint32_t capabilities;
} wire_welcome_t;

typedef struct wire_ack {
	uint64_t received_lsn; /* verified and held by the sink */
	uint64_t applied_lsn;  /* committed on the DR database */
	uint64_t batch_seq;    /* last batch received */
} wire_ack_t;

typedef struct wire_ping {
	int64_t t1; /* sender's clock at send */
} wire_ping_t;

typedef struct wire_pong {
	int64_t t1; /* echoed */
	int64_t t2; /* receiver's clock at receipt */
	int64_t t3; /* receiver's clock at reply */
} wire_pong_t;

typedef struct wire_error {
	uint16_t code;
	char message[1024];
} wire_error_t;

typedef struct wire_end_of_stream {
	uint64_t final_lsn;
} wire_end_of_stream_t;

/* What the source learned on its own (non-replication) connection to the
 * primary, so a stuck or failing walsender cannot hide it: every commit
 * visible on the primary before primary_time has a commit LSN below
 * position_lsn; flush_lsn is the primary's WAL flush position then.
 * position_lsn 0: a flush position only (from a walsender keepalive the
 * source received itself), no time and no proof. */
typedef struct wire_primary_facts {
	int64_t primary_time; /* pgtime, the primary's clock */
	uint64_t position_lsn;
	uint64_t flush_lsn;
	char source_error[512]; /* the source's last session error, "" if none */
	/* optional trailing fields (a source before them sends none: slot_known
	 * false): the slot's WAL retention from pg_replication_slots */
	bool slot_known;
	int64_t slot_retained_bytes; /* pg_current_wal_lsn() - restart_lsn; -1: no restart_lsn */
	int64_t slot_safe_wal_size;  /* -1: NULL (max_slot_wal_keep_size = -1) */
	uint8_t slot_wal_status;     /* WIRE_SLOT_WAL_* */
	int64_t slot_wal_warning;    /* the source's limit in bytes, 0 = off */
	/* optional, after the slot's fields (all or none): the source's RPO
	 * guard (rpo_guard_known false: none, or a source before them) */
	bool rpo_guard_known;
	uint8_t rpo_guard_state;    /* 1 released, 2 engaged (rpo_guard.h) */
	int64_t rpo_guard_bound_ms; /* the source's own RPO bound; -1 unknown */
	uint64_t rpo_guard_engagements;
	char rpo_guard_reason[256];
} wire_primary_facts_t;

/* pg_replication_slots.wal_status */
enum {
	WIRE_SLOT_WAL_UNKNOWN = 0,
	WIRE_SLOT_WAL_RESERVED = 1,
	WIRE_SLOT_WAL_EXTENDED = 2,
	WIRE_SLOT_WAL_UNRESERVED = 3,
	WIRE_SLOT_WAL_LOST = 4,
};
const char *wire_slot_wal_status_name(uint8_t code);
uint8_t wire_slot_wal_status_code(const char *name);

/* capability bits of HELLO */
#define WIRE_CAP_PRIMARY_FACTS 0x1u /* the source sends PRIMARY_FACTS */
/* the source can code batches as differences (batch_delta.h); in a
 * welcome: the sink reads them, and batches come so coded from then on */
#define WIRE_CAP_DELTA 0x2u
/* the batches follow the hello without waiting for the welcome; only to a
 * sink that said in the TLS handshake that it holds them until its verdict
 * (tls_early_stream), and the hello then carries two more fields */
#define WIRE_CAP_EARLY_STREAM 0x4u

/* CRC-32C (Castagnoli) of n bytes. */
uint32_t wire_crc32c(const void *data, size_t n);
/* Appends a frame header (with its check); the payload follows. */
void wire_append_header(buf_t *b, uint8_t type, uint32_t len);
/* Appends a protocol 1 header: only to tell an older peer why it is refused. */
void wire_append_header_v1(buf_t *b, uint8_t type, uint32_t len);
/* Checks the WIRE_HEADER_LEN bytes of a frame header: its check, a known
 * type, a length within max_frame_bytes. offset (the header's position in
 * the stream) goes into the error. */
int wire_check_header(const uint8_t *hdr, uint64_t offset, int64_t max_frame_bytes, uint8_t *type,
                      uint32_t *len, pgf_error_t *err);
/* Whether the first avail (>= WIRE_HEADER_LEN) bytes of a connection that
 * failed wire_check_header are what a protocol 1 peer sends first (a hello
 * or an error); if so, fills its type and payload length (the payload
 * starts at WIRE_V1_HEADER_LEN). */
bool wire_header_is_v1(const uint8_t *p, size_t avail, int64_t max_frame_bytes, uint8_t *type,
                       uint32_t *len);
const char *wire_type_name(uint8_t type);

void wire_encode_hello(const wire_hello_t *m, buf_t *b);
void wire_encode_welcome(const wire_welcome_t *m, buf_t *b);
void wire_encode_ack(const wire_ack_t *m, buf_t *b);
void wire_encode_ping(const wire_ping_t *m, buf_t *b);
void wire_encode_pong(const wire_pong_t *m, buf_t *b);
void wire_encode_error(const wire_error_t *m, buf_t *b);
void wire_encode_end_of_stream(const wire_end_of_stream_t *m, buf_t *b);
void wire_encode_primary_facts(const wire_primary_facts_t *m, buf_t *b);

int wire_decode_hello(const uint8_t *p, size_t len, wire_hello_t *m, pgf_error_t *err);
int wire_decode_welcome(const uint8_t *p, size_t len, wire_welcome_t *m, pgf_error_t *err);
int wire_decode_ack(const uint8_t *p, size_t len, wire_ack_t *m, pgf_error_t *err);
int wire_decode_ping(const uint8_t *p, size_t len, wire_ping_t *m, pgf_error_t *err);
int wire_decode_pong(const uint8_t *p, size_t len, wire_pong_t *m, pgf_error_t *err);
int wire_decode_error(const uint8_t *p, size_t len, wire_error_t *m, pgf_error_t *err);
int wire_decode_end_of_stream(const uint8_t *p, size_t len, wire_end_of_stream_t *m,
                              pgf_error_t *err);
int wire_decode_primary_facts(const uint8_t *p, size_t len, wire_primary_facts_t *m,
                              pgf_error_t *err);

/* NTP-style clock offset of the peer relative to us and its uncertainty
 * (half the round trip), in microseconds, from one ping/pong exchange. */
void wire_clock_offset(const wire_pong_t *p, int64_t t4, int64_t *offset_us,
                       int64_t *uncertainty_us);

#endif
