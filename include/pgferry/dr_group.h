/*
 * dr_group.h — the life of a DR group, as one state machine.
 *
 * A DR group is one transaction on the DR database that applies several
 * source transactions. Its life, end to end:
 *
 *   open       BEGIN and the fence check are sent; source transactions are
 *              applied into it (APPLYING, then OPEN between them). Nothing
 *              of it is visible. A crash here leaves nothing behind: the
 *              DR server rolls the transaction back, the origin still says
 *              where the last committed group ended, the slot was confirmed
 *              no further, so the source resends every transaction of it.
 *   sent       the origin is advanced to the end of its last source commit
 *              (pg_replication_origin_xact_setup) and pgferry.progress
 *              written, in the same DR transaction as the rows, then
 *              COMMIT, all sent in the pipeline without waiting: the next
 *              group is applied while the DR server works through this one
 *              ("in flight", at most COMMITS_IN_FLIGHT). The next group's
 *              first statement checks that the origin stands where this
 *              group leaves it, so should this COMMIT fail, no later group
 *              commits either (none may skip it). A crash here is one of
 *              the two cases below: the DR server committed the group or
 *              did not.
 *   committed  its COMMIT's result came back: COMMITTED, asynchronously
 *              (synchronous_commit = off) under load. A crash of the DR
 *              server here may lose the group, but then it loses the
 *              origin's advance with it (one WAL record stream, replayed in
 *              order): apply resumes from the older origin position and
 *              the source resends the group. It was not reported, so the
 *              slot still holds its WAL.
 *   durable    a commit with synchronous_commit = on (every 50 ms under
 *              load, and whenever input pauses), once its result came
 *              back, has flushed the WAL of itself and of every group
 *              committed before it (FLUSHING is a DR
 *              transaction that only records progress again, for when no
 *              group is open). From here a crash of anything loses
 *              nothing: the origin and pgferry.progress say the group is
 *              applied, and a resend of it is skipped (SKIPPING: a source
 *              transaction ending before the origin's position).
 *   reported   the committed hook tells the sink's network thread, which
 *              sends the applied position to the source. A crash of the
 *              sink or source before the source hears it only means the
 *              source resends from the slot's older position; the origin
 *              skips what is applied.
 *   confirmed  the source confirms that position to the primary's slot
 *              (flush_lsn of the standby status update), and the primary
 *              may recycle the WAL. Only durable groups are ever reported,
 *              so the slot is never confirmed past what the DR database
 *              would keep through a crash.
 *
 * Recovery is exact because the one fact "applied up to here" (the
 * origin's position) commits atomically with the rows it covers, and every
 * later stage only ever acts on durable groups: nothing is lost, and the
 * skip at BEGIN makes a resend apply nothing twice.
 *
 * The states below are those of the engine's current DR transaction;
 * groups whose COMMIT is sent and whose result has not come back are
 * counted in "in_flight", groups committed but not yet durable in
 * "pending" (they are reported together by the next durable commit). A
 * result comes back whatever the current transaction does, so COMMIT and
 * COMMIT_DURABLE are taken in every state while something is in flight.
 * Transitions happen only in dr_group_transition, which refuses an illegal
 * one.
 *
 * Pure: no connection, no clock. Not thread-safe.
 */
#ifndef PGFERRY_DR_GROUP_H
#define PGFERRY_DR_GROUP_H

#include "pgferry/error.h"

#include <stdbool.h>

typedef enum {
	/* no DR transaction open; if pending > 0 or in_flight > 0, committed
	 * groups wait to be made durable or their COMMIT's result (COMMITTED),
	 * else everything applied is reported */
	DR_GROUP_IDLE,
	DR_GROUP_COMMITTED,
	/* inside a source transaction applied before (its commit ends before
	 * the origin's position): its changes are ignored; no DR transaction */
	DR_GROUP_SKIPPING,
	/* a DR transaction is open and a source transaction is being applied */
	DR_GROUP_APPLYING,
	/* a DR transaction is open between source transactions */
	DR_GROUP_OPEN,
	/* a DR transaction is open only to record progress (to make committed
	 * groups durable, or to confirm WAL without commits) */
	DR_GROUP_FLUSHING,
} dr_group_state_t;

typedef enum {
	DR_GROUP_BEGIN,          /* a source transaction to apply starts */
	DR_GROUP_SKIP,           /* a source transaction applied before starts */
	DR_GROUP_SOURCE_COMMIT,  /* the source transaction ends (applied or skipped) */
	DR_GROUP_FLUSH,          /* a DR transaction opens only to record progress */
	DR_GROUP_COMMIT_SENT,    /* its progress and COMMIT are sent: in flight */
	DR_GROUP_COMMIT,         /* the oldest in flight committed asynchronously */
	DR_GROUP_COMMIT_DURABLE, /* ... or synchronously: all pending are durable */
	DR_GROUP_COMMIT_EMPTY,   /* the DR transaction ended having nothing to record */
	DR_GROUP_ROLLBACK,       /* the DR transaction rolled back (an error), and
	                          * every result in flight has been read */
	DR_GROUP_FORGET,         /* the session ended: pending groups are no longer
	                          * known durable (the source resends them) */
} dr_group_event_t;

typedef struct dr_group {
	dr_group_state_t state;
	unsigned pending;   /* groups committed, not yet known durable */
	unsigned in_flight; /* groups whose COMMIT is sent, its result not read */
} dr_group_t;

void dr_group_init(dr_group_t *g);
/* Moves g by event; an event illegal in g's state changes nothing and
 * fails (PGF_E_APPLY, naming both). Logs each transition at debug level. */
int dr_group_transition(dr_group_t *g, dr_group_event_t event, pgf_error_t *err);
/* Whether a DR transaction is open / a source transaction is in progress. */
bool dr_group_open(const dr_group_t *g);
bool dr_group_in_source_transaction(const dr_group_t *g);
const char *dr_group_state_name(dr_group_state_t state);
const char *dr_group_event_name(dr_group_event_t event);

#endif
