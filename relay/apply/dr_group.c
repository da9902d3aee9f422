/*
 * dr_group.c — the DR group's states and their one transition function
 * (the lifecycle and what each crash point leaves behind: dr_group.h).
 */
#include "pgferry/dr_group.h"

#include "pgferry/log.h"

#include <stddef.h>

static const char *const state_names[] = {
        [DR_GROUP_IDLE] = "idle",         [DR_GROUP_COMMITTED] = "committed",
        [DR_GROUP_SKIPPING] = "skipping", [DR_GROUP_APPLYING] = "applying",
        [DR_GROUP_OPEN] = "open",         [DR_GROUP_FLUSHING] = "flushing",
};

static const char *const event_names[] = {
        [DR_GROUP_BEGIN] = "begin",
        [DR_GROUP_SKIP] = "skip",
        [DR_GROUP_SOURCE_COMMIT] = "source commit",
        [DR_GROUP_FLUSH] = "flush",
        [DR_GROUP_COMMIT_SENT] = "commit sent",
        [DR_GROUP_COMMIT] = "commit",
        [DR_GROUP_COMMIT_DURABLE] = "durable commit",
        [DR_GROUP_COMMIT_EMPTY] = "empty commit",
        [DR_GROUP_ROLLBACK] = "rollback",
        [DR_GROUP_FORGET] = "forget",
};

const char *dr_group_state_name(dr_group_state_t state)
{
	if ((size_t)state >= sizeof(state_names) / sizeof(state_names[0]))
		return "unknown";
	return state_names[state];
}

const char *dr_group_event_name(dr_group_event_t event)
{
	if ((size_t)event >= sizeof(event_names) / sizeof(event_names[0]))
		return "unknown";
	return event_names[event];
}

void dr_group_init(dr_group_t *g)
{
	g->state = DR_GROUP_IDLE;
	g->pending = 0;
	g->in_flight = 0;
}

bool dr_group_open(const dr_group_t *g)
{
	return g->state == DR_GROUP_APPLYING || g->state == DR_GROUP_OPEN ||
	       g->state == DR_GROUP_FLUSHING;
}

bool dr_group_in_source_transaction(const dr_group_t *g)
{
	return g->state == DR_GROUP_APPLYING || g->state == DR_GROUP_SKIPPING;
}

/* Where the engine is when no DR transaction is open. */
static dr_group_state_t between(const dr_group_t *g)
{
	return g->pending > 0 || g->in_flight > 0 ? DR_GROUP_COMMITTED : DR_GROUP_IDLE;
}

/* Where a result coming back leaves the current transaction. */
static int after_result(const dr_group_t *g)
{
	bool outside = g->state == DR_GROUP_IDLE || g->state == DR_GROUP_COMMITTED;

	if (g->in_flight == 0)
		return -1;
	/* an open transaction stays open; outside one the counts decide */
	return outside ? (int)DR_GROUP_COMMITTED : (int)g->state;
}

/* The state event leads to from g, or -1 when it is illegal there. */
static int next_state(const dr_group_t *g, dr_group_event_t event)
{
	dr_group_state_t s = g->state;
	bool outside = s == DR_GROUP_IDLE || s == DR_GROUP_COMMITTED;

	switch (event) {
	case DR_GROUP_BEGIN:
		return outside || s == DR_GROUP_OPEN ? (int)DR_GROUP_APPLYING : -1;
	case DR_GROUP_SKIP:
		/* commits come in order: a transaction applied before cannot
		 * follow one of the open group */
		return outside ? (int)DR_GROUP_SKIPPING : -1;
	case DR_GROUP_SOURCE_COMMIT:
		if (s == DR_GROUP_APPLYING)
			return DR_GROUP_OPEN;
		return s == DR_GROUP_SKIPPING ? (int)between(g) : -1;
	case DR_GROUP_FLUSH:
		return outside ? (int)DR_GROUP_FLUSHING : -1;
	case DR_GROUP_COMMIT_SENT:
		return s == DR_GROUP_OPEN || s == DR_GROUP_FLUSHING ? (int)DR_GROUP_COMMITTED : -1;
	case DR_GROUP_COMMIT:
	case DR_GROUP_COMMIT_DURABLE:
		return after_result(g);
	case DR_GROUP_COMMIT_EMPTY:
		return s == DR_GROUP_OPEN ? (int)between(g) : -1;
	case DR_GROUP_ROLLBACK:
		return between(g); /* whatever was open is gone; committed groups stay */
	case DR_GROUP_FORGET:
		return DR_GROUP_IDLE;
	}
	return -1;
}

int dr_group_transition(dr_group_t *g, dr_group_event_t event, pgf_error_t *err)
{
	int next = next_state(g, event);
	dr_group_state_t from = g->state;

	if (next < 0)
		return error_set(err, PGF_E_APPLY, "DR group: %s is illegal in state %s",
		                 dr_group_event_name(event), dr_group_state_name(from));
	switch (event) {
	case DR_GROUP_COMMIT_SENT:
		g->in_flight++;
		break;
	case DR_GROUP_COMMIT:
		g->in_flight--;
		g->pending++;
		break;
	case DR_GROUP_COMMIT_DURABLE:
		g->in_flight--;
		g->pending = 0;
		break;
	case DR_GROUP_ROLLBACK: /* nothing is in flight after a rollback */
		g->in_flight = 0;
		break;
	case DR_GROUP_FORGET:
		g->in_flight = 0;
		g->pending = 0;
		break;
	default:
		break;
	}
	/* outside a DR transaction, the counts say which of the two it is */
	if (next == DR_GROUP_IDLE || next == DR_GROUP_COMMITTED)
		next = (int)between(g);
	g->state = (dr_group_state_t)next;
	if (from != g->state)
		log_debug("DR group: %s --%s--> %s (%u in flight, %u pending)",
		          dr_group_state_name(from), dr_group_event_name(event),
		          dr_group_state_name(g->state), g->in_flight, g->pending);
	return PGF_OK;
}
