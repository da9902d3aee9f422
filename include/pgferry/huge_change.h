/*
 * huge_change.h — a walsender message that came in pieces (batch.h: larger
 * than the source's batch_max_bytes), put together in a private file in
 * work_dir by the sink's network thread, so the sink never holds more than
 * one piece of it. The apply thread applies it from the file (apply.h,
 * apply_huge_record) and removes the file.
 *
 * The file holds the pgoutput message alone (the walsender's 25-byte
 * header is read from the first piece). Files are named
 * huge-SESSION-N.change; huge_change_clean removes those an earlier run
 * left. Not thread-safe: one per network thread.
 */
#ifndef PGFERRY_HUGE_CHANGE_H
#define PGFERRY_HUGE_CHANGE_H

#include "pgferry/decoder.h"
#include "pgferry/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUGE_CHANGE_PREFIX "huge-"

typedef struct huge_change {
	const char *work_dir;
	int fd; /* -1: no message in pieces under way */
	char path[512];
	uint64_t counter;
	walsender_message_t head; /* of the first piece (its payload is not kept) */
	size_t len;               /* pgoutput bytes written so far */
	uint8_t type;             /* the pgoutput message type (its first byte) */
	uint32_t xid;             /* of a change inside a stream block (0: none) */
	pgoutput_facts_t facts;   /* once complete: what a message that is not a
	                           * change said (offsets into the file) */
	char prefix[64];          /* of a Message, once complete: m's prefix points
	                           * here (cut if longer: it only is compared) */
} huge_change_t;

void huge_change_init(huge_change_t *h, const char *work_dir);
/* The name of file number n of session (the 'h' record's number). */
void huge_change_path(const char *work_dir, uint64_t session, uint64_t n, char *path, size_t size);
/* Removes the files of earlier runs; a count of those removed. */
int huge_change_clean(const char *work_dir);
/* Takes the next piece of a message; *complete says it was the last (the
 * file is then closed; h->path names it and h->counter is its number: it
 * belongs to whoever applies the change, and is removed after). The
 * message is checked as every received one is (pgoutput_decode_header
 * with d, into m): a row change from its first piece, anything else (a huge
 * logical message, the one case held in memory, briefly) read back whole
 * at the last; h->type, h->xid and h->facts say what it is. The message
 * read back is freed before the return: of m's strings only a Message's
 * prefix stays valid (until the next call), in h->prefix. */
int huge_change_add(huge_change_t *h, uint64_t session, const uint8_t *piece, size_t len,
                    bool continues, pgoutput_decoder_t *d, pgoutput_message_t *m, bool *complete,
                    pgf_error_t *err);
/* Whether pieces of a message are under way. */
bool huge_change_open(const huge_change_t *h);
/* Drops a message under way (its file is removed). */
void huge_change_abort(huge_change_t *h);

#endif
