/*
 * test_dr_group.c — the DR group's state machine (relay/apply/dr_group.c):
 * every legal transition, and every illegal one refused without a change.
 */
#include "pgferry/dr_group.h"

#include <check.h>
#include <string.h>

#define NSTATES (DR_GROUP_FLUSHING + 1)
#define NEVENTS (DR_GROUP_FORGET + 1)

static dr_group_t at_in_flight(dr_group_state_t state, unsigned pending, unsigned in_flight)
{
	dr_group_t g;

	dr_group_init(&g);
	g.state = state;
	g.pending = pending;
	g.in_flight = in_flight;
	return g;
}

static dr_group_t at(dr_group_state_t state, unsigned pending)
{
	return at_in_flight(state, pending, 0);
}

static void step(dr_group_t *g, dr_group_event_t event, dr_group_state_t expect)
{
	pgf_error_t err;

	ck_assert_msg(dr_group_transition(g, event, &err) == PGF_OK, "%s refused: %s",
	              dr_group_event_name(event), err.message);
	ck_assert_msg(g->state == expect, "%s led to %s, not %s", dr_group_event_name(event),
	              dr_group_state_name(g->state), dr_group_state_name(expect));
}

/* Source transactions grouped, the group's COMMIT sent, its result back
 * (asynchronous), then made durable by a flush: the life of dr_group.h in
 * order. */
START_TEST(lifecycle)
{
	dr_group_t g;

	dr_group_init(&g);
	ck_assert_int_eq(g.state, DR_GROUP_IDLE);
	step(&g, DR_GROUP_BEGIN, DR_GROUP_APPLYING);
	ck_assert(dr_group_open(&g) && dr_group_in_source_transaction(&g));
	step(&g, DR_GROUP_SOURCE_COMMIT, DR_GROUP_OPEN);
	ck_assert(dr_group_open(&g) && !dr_group_in_source_transaction(&g));
	step(&g, DR_GROUP_BEGIN, DR_GROUP_APPLYING); /* joins the open group */
	step(&g, DR_GROUP_SOURCE_COMMIT, DR_GROUP_OPEN);
	step(&g, DR_GROUP_COMMIT_SENT, DR_GROUP_COMMITTED);
	ck_assert_uint_eq(g.in_flight, 1);
	ck_assert_uint_eq(g.pending, 0);
	step(&g, DR_GROUP_COMMIT, DR_GROUP_COMMITTED);
	ck_assert_uint_eq(g.in_flight, 0);
	ck_assert_uint_eq(g.pending, 1);
	ck_assert(!dr_group_open(&g));
	step(&g, DR_GROUP_BEGIN, DR_GROUP_APPLYING);
	step(&g, DR_GROUP_SOURCE_COMMIT, DR_GROUP_OPEN);
	step(&g, DR_GROUP_COMMIT_SENT, DR_GROUP_COMMITTED);
	step(&g, DR_GROUP_COMMIT, DR_GROUP_COMMITTED);
	ck_assert_uint_eq(g.pending, 2);
	step(&g, DR_GROUP_FLUSH, DR_GROUP_FLUSHING);
	step(&g, DR_GROUP_COMMIT_SENT, DR_GROUP_COMMITTED);
	step(&g, DR_GROUP_COMMIT_DURABLE, DR_GROUP_IDLE);
	ck_assert_uint_eq(g.pending, 0);
	ck_assert_uint_eq(g.in_flight, 0);
}
END_TEST

START_TEST(durable_commit_of_a_group)
{
	dr_group_t g = at(DR_GROUP_OPEN, 3);

	step(&g, DR_GROUP_COMMIT_SENT, DR_GROUP_COMMITTED);
	step(&g, DR_GROUP_COMMIT_DURABLE, DR_GROUP_IDLE);
	ck_assert_uint_eq(g.pending, 0);
	/* WAL without commits: progress only, from idle */
	step(&g, DR_GROUP_FLUSH, DR_GROUP_FLUSHING);
	ck_assert(dr_group_open(&g) && !dr_group_in_source_transaction(&g));
	step(&g, DR_GROUP_COMMIT_SENT, DR_GROUP_COMMITTED);
	step(&g, DR_GROUP_COMMIT_DURABLE, DR_GROUP_IDLE);
}
END_TEST

/* The next groups are applied while COMMITs are in flight; their results
 * come back in order whatever the current transaction does. */
START_TEST(results_come_back_while_the_next_group_applies)
{
	dr_group_t g = at(DR_GROUP_OPEN, 0);

	step(&g, DR_GROUP_COMMIT_SENT, DR_GROUP_COMMITTED);
	step(&g, DR_GROUP_BEGIN, DR_GROUP_APPLYING);
	step(&g, DR_GROUP_COMMIT, DR_GROUP_APPLYING); /* the first came back */
	ck_assert_uint_eq(g.pending, 1);
	step(&g, DR_GROUP_SOURCE_COMMIT, DR_GROUP_OPEN);
	step(&g, DR_GROUP_COMMIT_SENT, DR_GROUP_COMMITTED);
	step(&g, DR_GROUP_BEGIN, DR_GROUP_APPLYING);
	step(&g, DR_GROUP_SOURCE_COMMIT, DR_GROUP_OPEN);
	step(&g, DR_GROUP_COMMIT_SENT, DR_GROUP_COMMITTED);
	ck_assert_uint_eq(g.in_flight, 2);
	step(&g, DR_GROUP_COMMIT_DURABLE, DR_GROUP_COMMITTED); /* one still in flight */
	ck_assert_uint_eq(g.pending, 0);
	step(&g, DR_GROUP_COMMIT, DR_GROUP_COMMITTED);
	ck_assert_uint_eq(g.pending, 1);
	ck_assert_uint_eq(g.in_flight, 0);
	/* an error: whatever was in flight and did not come back rolled back */
	g = at_in_flight(DR_GROUP_APPLYING, 2, 3);
	step(&g, DR_GROUP_ROLLBACK, DR_GROUP_COMMITTED);
	ck_assert_uint_eq(g.in_flight, 0);
	ck_assert_uint_eq(g.pending, 2);
	g = at_in_flight(DR_GROUP_COMMITTED, 0, 1);
	step(&g, DR_GROUP_ROLLBACK, DR_GROUP_IDLE);
	g = at_in_flight(DR_GROUP_OPEN, 1, 2);
	step(&g, DR_GROUP_FORGET, DR_GROUP_IDLE);
	ck_assert_uint_eq(g.in_flight, 0);
	ck_assert_uint_eq(g.pending, 0);
}
END_TEST

START_TEST(skip_returns_where_it_was)
{
	dr_group_t g = at(DR_GROUP_IDLE, 0);

	step(&g, DR_GROUP_SKIP, DR_GROUP_SKIPPING);
	ck_assert(!dr_group_open(&g) && dr_group_in_source_transaction(&g));
	step(&g, DR_GROUP_SOURCE_COMMIT, DR_GROUP_IDLE);
	g = at(DR_GROUP_COMMITTED, 2);
	step(&g, DR_GROUP_SKIP, DR_GROUP_SKIPPING);
	step(&g, DR_GROUP_SOURCE_COMMIT, DR_GROUP_COMMITTED);
	ck_assert_uint_eq(g.pending, 2);
}
END_TEST

START_TEST(empty_commit_and_rollback_keep_committed_groups)
{
	dr_group_t g = at(DR_GROUP_OPEN, 0);

	step(&g, DR_GROUP_COMMIT_EMPTY, DR_GROUP_IDLE);
	g = at(DR_GROUP_OPEN, 1);
	step(&g, DR_GROUP_COMMIT_EMPTY, DR_GROUP_COMMITTED);
	g = at(DR_GROUP_APPLYING, 1);
	step(&g, DR_GROUP_ROLLBACK, DR_GROUP_COMMITTED);
	ck_assert_uint_eq(g.pending, 1);
	g = at(DR_GROUP_FLUSHING, 0);
	step(&g, DR_GROUP_ROLLBACK, DR_GROUP_IDLE);
	g = at(DR_GROUP_SKIPPING, 0);
	step(&g, DR_GROUP_ROLLBACK, DR_GROUP_IDLE);
}
END_TEST

START_TEST(forget_drops_everything)
{
	dr_group_state_t s;

	for (s = 0; s < NSTATES; s++) {
		dr_group_t g = at(s, 4);
		step(&g, DR_GROUP_FORGET, DR_GROUP_IDLE);
		ck_assert_uint_eq(g.pending, 0);
	}
}
END_TEST

/* The full table: which events each state takes. */
START_TEST(illegal_transitions_are_refused)
{
	/* with nothing in flight, and (lower case) what a COMMIT in flight adds */
	static const char *const legal[NSTATES] = {
	        /* B = begin, S = skip, C = source commit, F = flush, T = commit
	         * sent, A = commit (asynchronous), D = durable, E = empty, R =
	         * rollback, X = forget */
	        [DR_GROUP_IDLE] = "BSFRXad",   [DR_GROUP_COMMITTED] = "BSFRXad",
	        [DR_GROUP_SKIPPING] = "CRXad", [DR_GROUP_APPLYING] = "CRXad",
	        [DR_GROUP_OPEN] = "BTERXad",   [DR_GROUP_FLUSHING] = "TRXad",
	};
	static const char letters[NEVENTS] = {
	        [DR_GROUP_BEGIN] = 'B',          [DR_GROUP_SKIP] = 'S',
	        [DR_GROUP_SOURCE_COMMIT] = 'C',  [DR_GROUP_FLUSH] = 'F',
	        [DR_GROUP_COMMIT_SENT] = 'T',    [DR_GROUP_COMMIT] = 'A',
	        [DR_GROUP_COMMIT_DURABLE] = 'D', [DR_GROUP_COMMIT_EMPTY] = 'E',
	        [DR_GROUP_ROLLBACK] = 'R',       [DR_GROUP_FORGET] = 'X',
	};
	dr_group_state_t s;
	dr_group_event_t e;
	unsigned in_flight;

	for (in_flight = 0; in_flight < 2; in_flight++) {
		for (s = 0; s < NSTATES; s++) {
			for (e = 0; e < NEVENTS; e++) {
				dr_group_t g = at_in_flight(s, 1, in_flight);
				pgf_error_t err;
				char letter = letters[e];
				bool expect = strchr(legal[s], letter) != NULL ||
				              (in_flight && strchr(legal[s], letter + 32) != NULL);
				int rc = dr_group_transition(&g, e, &err);
				ck_assert_msg((rc == PGF_OK) == expect,
				              "%s in %s (%u in flight): %s", dr_group_event_name(e),
				              dr_group_state_name(s), in_flight,
				              expect ? "refused" : "taken");
				if (!expect) {
					ck_assert_int_eq(g.state, s);
					ck_assert_uint_eq(g.pending, 1);
					ck_assert_uint_eq(g.in_flight, in_flight);
					ck_assert_int_eq(err.code, PGF_E_APPLY);
					ck_assert_ptr_nonnull(
					        strstr(err.message, dr_group_state_name(s)));
				}
			}
		}
	}
}
END_TEST

Suite *dr_group_suite(void)
{
	Suite *s = suite_create("dr_group");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, lifecycle);
	tcase_add_test(tc, durable_commit_of_a_group);
	tcase_add_test(tc, results_come_back_while_the_next_group_applies);
	tcase_add_test(tc, skip_returns_where_it_was);
	tcase_add_test(tc, empty_commit_and_rollback_keep_committed_groups);
	tcase_add_test(tc, forget_drops_everything);
	tcase_add_test(tc, illegal_transitions_are_refused);
	suite_add_tcase(s, tc);
	return s;
}
