/*
 * ship_rule.h — when the source ships a batch before batch_max_delay.
 *
 * A batch waits up to batch_max_delay for more messages, so that a busy
 * stream travels in few, well-compressed frames. That wait buys nothing
 * when nothing more is coming: the rule ships at once when the source has
 * read everything the walsender sent (the caller asks only then), the batch
 * ends with a whole transaction (keepalives aside), and the walsender has
 * sent everything up to the primary's WAL flush position that the source
 * last read on its own connection, so no backlog is known. Under a backlog
 * the walsender is behind that position and batches fill as before.
 *
 * Pure: the source feeds it what it reads and learns (source_stream.c).
 */
#ifndef PGFERRY_SHIP_RULE_H
#define PGFERRY_SHIP_RULE_H

#include "pgferry/decoder.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ship_rule {
	bool ends_transaction;      /* the pending batch ends with a commit, keepalives aside */
	uint64_t sent_lsn;          /* how far the walsender's messages say it has decoded */
	uint64_t primary_flush_lsn; /* the primary's flush position, read on the source's own
	                             * connections (IDENTIFY_SYSTEM, heartbeats) */
} ship_rule_t;

/* A new session: nothing pending, nothing sent yet (the primary's flush
 * position stays: it only grows). */
void ship_rule_reset(ship_rule_t *r);
/* A message of the walsender, added to the pending batch. */
void ship_rule_note_message(ship_rule_t *r, const walsender_message_t *wm);
/* The primary's WAL flush position, read on the source's own connection. */
void ship_rule_note_primary_flush(ship_rule_t *r, uint64_t flush_lsn);
/* The pending batch was shipped (for whatever reason). */
void ship_rule_shipped(ship_rule_t *r);
/* Whether to ship the pending batch now; ask only once the walsender's
 * socket has nothing more to read. */
bool ship_rule_at_once(const ship_rule_t *r);

#endif
