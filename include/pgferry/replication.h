/*
 * replication.h — a libpq replication connection to the primary: identify
 * the system, make sure the slot exists, stream pgoutput, send feedback.
 *
 * Used by `pgferry source` and `pgferry capture`. Connecting and the
 * replication commands are blocking (they run once per connection);
 * reading the stream and sending feedback are non-blocking, for the loop.
 */
#ifndef PGFERRY_REPLICATION_H
#define PGFERRY_REPLICATION_H

#include "pgferry/error.h"
#include "pgferry/util.h" /* pgtime_now */

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct replication_conn {
	PGconn *conn;
	int server_version; /* e.g. 150018 */
	uint64_t system_identifier;
	uint32_t timeline;
	uint64_t xlogpos;
	char dbname[128];
	char *copy_buffer; /* last message from PQgetCopyData, freed on the next read */
} replication_conn_t;

typedef struct replication_options {
	const char *slot_name;
	const char *publication;
	int proto_version; /* 0 = the highest the server supports */
	bool binary;
	bool streaming;
	bool messages;
	bool two_phase;
} replication_options_t;

/* Connects with replication=database and runs IDENTIFY_SYSTEM. */
int replication_connect(replication_conn_t *rc, const char *conninfo, pgf_error_t *err);
void replication_close(replication_conn_t *rc);
/* The primary's WAL flush position now (IDENTIFY_SYSTEM's xlogpos). Blocking;
 * not while streaming. */
int replication_flush_position(replication_conn_t *rc, uint64_t *flush_lsn, pgf_error_t *err);

/* The highest pgoutput protocol version a server version speaks. */
int replication_max_proto_version(int server_version);

/* Creates the logical slot (pgoutput) unless it exists. *created tells which;
 * on creation *consistent_lsn is the slot's consistent point. */
int replication_ensure_slot(replication_conn_t *rc, const char *slot, bool two_phase, bool *created,
                            uint64_t *consistent_lsn, pgf_error_t *err);
/* The slot's confirmed_flush_lsn (0 if the slot does not exist: *exists). */
int replication_slot_position(replication_conn_t *rc, const char *slot, bool *exists,
                              uint64_t *confirmed_flush, pgf_error_t *err);

/* START_REPLICATION SLOT ... LOGICAL start_lsn (options). */
int replication_start(replication_conn_t *rc, uint64_t start_lsn, const replication_options_t *opts,
                      pgf_error_t *err);

/* Non-blocking read of the next CopyData message. Returns 1 with *data and *len
 * (valid until the next call), 0 when nothing is ready (wait for the socket);
 * 2 when the server ended the stream cleanly, PGF_ERR on error. */
int replication_read(replication_conn_t *rc, const uint8_t **data, size_t *len, pgf_error_t *err);

/* Standby status update ('r'): what was written, flushed and applied. The
 * slot's confirmed_flush_lsn follows flush_lsn. Non-blocking: returns 0 when
 * the message is queued (call replication_flush when the socket is writable). */
int replication_send_status(replication_conn_t *rc, uint64_t write_lsn, uint64_t flush_lsn,
                            uint64_t apply_lsn, bool reply_requested, pgf_error_t *err);
/* 0 when everything is sent, 1 when more remains, PGF_ERR on error. */
int replication_flush(replication_conn_t *rc, pgf_error_t *err);

int replication_socket(const replication_conn_t *rc);

#endif
