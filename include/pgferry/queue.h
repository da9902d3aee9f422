/*
 * queue.h — the hand-off between the sink's network thread (producer) and
 * its apply thread (consumer): a FIFO of items with byte accounting, so the
 * network side can stop reading when too much waits (memory stays bounded).
 *
 * With a spool file (queue_spool_open), records beyond the memory limit wait
 * on disk in the DR region instead of on the primary: what a regional
 * failure of the primary would take with it shrinks to what was not yet
 * received. The spool is not a resume point: after a restart of the sink the
 * source resends from the DR origin, as without it. A spooled item keeps
 * nothing in memory: its header is written to the spool before its data, so
 * many small batches read ahead as far as few large ones. Items wait in
 * three runs, oldest first: in memory, in the spool, and in memory again
 * (after the spool, should writing to it fail).
 *
 * Ownership: queue_push takes the item; queue_pop hands it to the caller,
 * who frees it with queue_item_free. Thread-safe.
 */
#ifndef PGFERRY_QUEUE_H
#define PGFERRY_QUEUE_H

#include "pgferry/decoder.h"
#include "pgferry/log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Records this large are handed over without a copy, and the apply thread
 * gives the memory back to the system once they are applied (a row of tens
 * of MB would otherwise keep the sink's memory high for good). */
#define QUEUE_LARGE_ITEM (1u << 20)

typedef enum {
	QUEUE_SESSION_START, /* a source said hello: check identity, find resume point */
	QUEUE_RECORDS,       /* verified walsender messages, in stream order */
	QUEUE_SESSION_END,   /* the source went away: drop what is not committed */
} queue_kind_t;

/* One record of a QUEUE_RECORDS item as the network thread found it when it
 * verified and decoded it: the apply thread parses none of this again, and
 * decodes only the body of a change (pgoutput_header_only). 48 bytes, in
 * the item's data: they count against spool_memory_limit with it. */
typedef struct queue_record {
	uint64_t wal_start; /* 'w', 'h': where the WAL record starts */
	union {
		uint64_t wal_end;       /* 'k': how far the walsender has sent */
		pgoutput_facts_t facts; /* 'w', 'h': what a message that is not a
		                         * change said (Begin, Commit, Message...) */
	};
	uint32_t offset; /* 'w': the pgoutput message, at the item's data + offset;
	                  * 'h': the number of its file (huge_change_path) */
	uint32_t len;
	uint32_t xid; /* of a message that has one: inside a stream block, or a
	               * stream message's own (0: none) */
	char kind;    /* 'w' (XLogData), 'k' (keepalive), 'p' (a piece of a message
	               * larger than a batch: nothing to do), 'h' (the last piece:
	               * the whole message, in a file in work_dir) */
	uint8_t type; /* 'w', 'h': the pgoutput message type */
} queue_record_t;

typedef struct queue_item {
	struct queue_item *next;
	queue_kind_t kind;
	uint64_t session; /* which source connection this came from */
	/* QUEUE_RECORDS: the batch's records as received (each a u32
	 * big-endian length and a CopyData message), padded to 8 bytes, then
	 * nrecords queue_record_t saying what each is. One allocation: it
	 * spools as it is, and a large batch's buffer is taken from the batch
	 * decoder without a copy (queue_records_size, queue_item_set_records). */
	uint8_t *data; /* NULL while it waits in the spool file */
	size_t len;    /* of data, the queue_record_t included */
	uint32_t nrecords;
	uint64_t last_lsn;
	uint64_t commit_lsn; /* of the newest whole transaction in it (0: none) */
	/* QUEUE_SESSION_START */
	uint64_t system_identifier;
	uint32_t timeline;
	int proto_version;
	char database[128];
	char slot[128];
} queue_item_t;

/* What the spool did that a person must hear of (a failure, the spool used
 * again): the queue logs nothing itself; the network thread's loop takes
 * these (queue_take_notice) and logs them. */
#define QUEUE_NOTICES 8
typedef struct queue_notice {
	log_level_t level;
	char text[512];
} queue_notice_t;

typedef struct queue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	queue_item_t *head, *tail;        /* in memory, before anything spooled */
	queue_item_t *after, *after_tail; /* in memory, after what is spooled */
	size_t bytes; /* of QUEUE_RECORDS data waiting, in memory or spooled, and
	               * the headers of spooled items (they take disk too) */
	size_t items;
	bool closed;
	uint64_t received_commit;        /* newest commit_lsn pushed: whole transactions received */
	uint64_t primary_flush;          /* the primary's flush position the source read ... */
	uint64_t primary_flush_session;  /* ... in this session */
	size_t memory_limit;             /* records beyond this much in memory are spooled */
	size_t memory_bytes;             /* held in memory: records and item headers */
	size_t spooled_bytes;            /* in the spool file: headers and data */
	size_t spooled_items;            /* items (header + data) in the spool file */
	uint64_t spool_read;             /* where the oldest spooled item starts */
	uint64_t spool_end;              /* where the next spooled item goes */
	uint64_t spool_last_session;     /* session of the newest spooled item */
	int spool_fd;                    /* -1: no spool */
	bool spool_failed;               /* a write or read failed: memory only for a while */
	struct timespec spool_failed_at; /* when (CLOCK_MONOTONIC) */
	char spool_error[256];           /* what failed, for status and metrics */
	uint64_t spool_failures;         /* since start */
	queue_notice_t notices[QUEUE_NOTICES]; /* for the loop to log, oldest first */
	unsigned notices_first, notices_count;
	uint64_t notices_dropped; /* the loop fell behind by more than QUEUE_NOTICES */
} queue_t;

/* After a spool failure (a full disk, say) the spool is tried again this
 * long after, once nothing waits in it: the failure may have passed. */
#define QUEUE_SPOOL_RETRY_S 10

void queue_init(queue_t *q);
void queue_destroy(queue_t *q); /* frees what is left, removes the spool */
/* Spools records beyond memory_limit to a new file at path; -1 (errno set)
 * if it cannot be created. */
int queue_spool_open(queue_t *q, const char *path, size_t memory_limit);
void queue_push(queue_t *q, queue_item_t *item);
/* The next item, waiting up to timeout_ms (0 = do not wait); NULL if none
 * came or the queue is closed. A spooled item comes back in memory; if the
 * spool cannot be read back, everything in it is dropped and one
 * QUEUE_RECORDS item with data NULL stands for it (the caller drops the
 * session, and the source resends). */
queue_item_t *queue_pop(queue_t *q, int timeout_ms);
size_t queue_bytes(queue_t *q);
size_t queue_memory_bytes(queue_t *q); /* records in memory and item headers */
size_t queue_spooled_bytes(queue_t *q);
/* Whether the spool is off after a failure (what failed into error, ""
 * when it is not), and how many failures there were since start. */
bool queue_spool_fault(queue_t *q, char *error, size_t len, uint64_t *failures);
/* The oldest notice not yet taken, removed from the queue; false: none.
 * Notices beyond QUEUE_NOTICES waiting are dropped (and counted, in the
 * next one taken). */
bool queue_take_notice(queue_t *q, queue_notice_t *notice);
bool queue_empty(queue_t *q);
/* The commit LSN of the newest whole transaction received (pushed) so far. */
uint64_t queue_received_commit(queue_t *q);
/* The primary's WAL flush position the source read in session (its
 * PRIMARY_FACTS), as the network thread heard it; queue_primary_flush
 * gives 0 for any other session. The apply thread bounds idle progress by
 * it (a newer figure than the records it has taken is still the primary's
 * own word, so it never lets progress pass what the primary flushed). */
void queue_set_primary_flush(queue_t *q, uint64_t session, uint64_t flush_lsn);
uint64_t queue_primary_flush(queue_t *q, uint64_t session);
/* The size of a QUEUE_RECORDS item's data for raw_len bytes of records. */
size_t queue_records_size(size_t raw_len, uint32_t nrecords);
/* Gives a QUEUE_RECORDS item its data (malloc'd, queue_records_size bytes,
 * the raw records first); returns its nrecords queue_record_t, zeroed, for
 * the network thread to fill. */
queue_record_t *queue_item_set_records(queue_item_t *it, uint8_t *data, size_t raw_len,
                                       uint32_t nrecords);
/* The records of a QUEUE_RECORDS item and the message of one of them;
 * false when the item does not hold what its header says. */
bool queue_item_records(const queue_item_t *it, const queue_record_t **records);
const uint8_t *queue_record_message(const queue_item_t *it, const queue_record_t *r);
/* Wakes the consumer for good (shutdown). */
void queue_close(queue_t *q);

queue_item_t *queue_item_new(queue_kind_t kind, uint64_t session);
void queue_item_free(queue_item_t *item);

#endif
