/*
 * ship_rule.c — when the source ships a batch before batch_max_delay
 * (ship_rule.h).
 */
#include "pgferry/ship_rule.h"

void ship_rule_reset(ship_rule_t *r)
{
	r->ends_transaction = false;
	r->sent_lsn = 0;
}

void ship_rule_note_message(ship_rule_t *r, const walsender_message_t *wm)
{
	/* a keepalive's WAL end is how far the walsender decoded; an XLogData's
	 * is its record's position, and the walsender sends a transaction only
	 * once it decoded its commit, after every commit before it */
	if (wm->wal_end > r->sent_lsn)
		r->sent_lsn = wm->wal_end;
	if (wm->kind != 'w')
		return; /* a keepalive neither opens nor ends a transaction */
	r->ends_transaction = wm->payload_len > 0 && (wm->payload[0] == PGOUTPUT_COMMIT ||
	                                              wm->payload[0] == PGOUTPUT_STREAM_COMMIT);
}

void ship_rule_note_primary_flush(ship_rule_t *r, uint64_t flush_lsn)
{
	if (flush_lsn > r->primary_flush_lsn)
		r->primary_flush_lsn = flush_lsn;
}

void ship_rule_shipped(ship_rule_t *r)
{
	r->ends_transaction = false;
}

bool ship_rule_at_once(const ship_rule_t *r)
{
	/* every transaction the primary had flushed when last asked has been
	 * sent: the walsender is not working through a backlog */
	return r->ends_transaction && r->sent_lsn >= r->primary_flush_lsn;
}
