/*
 * test_ship_rule.c — when the source ships a batch before batch_max_delay
 * (relay/source/ship_rule.c): only a batch that ends with a whole
 * transaction, and only when the walsender has sent everything up to the
 * primary's flush position the source last read.
 */
#include "pgferry/ship_rule.h"

#include <check.h>
#include <string.h>

static uint8_t payload[1];

/* an XLogData message whose pgoutput message is of type t, at lsn */
static walsender_message_t xlog(char t, uint64_t lsn)
{
	walsender_message_t wm;

	memset(&wm, 0, sizeof(wm));
	wm.kind = 'w';
	wm.wal_start = wm.wal_end = lsn;
	payload[0] = (uint8_t)t;
	wm.payload = payload;
	wm.payload_len = 1;
	return wm;
}

static walsender_message_t keepalive(uint64_t wal_end)
{
	walsender_message_t wm;

	memset(&wm, 0, sizeof(wm));
	wm.kind = 'k';
	wm.wal_end = wal_end;
	return wm;
}

static void note(ship_rule_t *r, walsender_message_t wm)
{
	ship_rule_note_message(r, &wm);
}

static ship_rule_t fresh(uint64_t primary_flush)
{
	ship_rule_t r;

	memset(&r, 0, sizeof(r));
	ship_rule_reset(&r);
	ship_rule_note_primary_flush(&r, primary_flush);
	return r;
}

START_TEST(a_whole_transaction_at_the_head_ships)
{
	ship_rule_t r = fresh(0x1000);

	note(&r, xlog('B', 0x1000));
	ck_assert(!ship_rule_at_once(&r));
	note(&r, xlog('I', 0x1010));
	ck_assert(!ship_rule_at_once(&r));
	note(&r, xlog('C', 0x1100));
	ck_assert(ship_rule_at_once(&r));
	/* a keepalive after the commit changes nothing */
	note(&r, keepalive(0x1200));
	ck_assert(ship_rule_at_once(&r));
	ship_rule_shipped(&r);
	ck_assert(!ship_rule_at_once(&r));
	/* keepalives alone never hurry a batch */
	note(&r, keepalive(0x1300));
	ck_assert(!ship_rule_at_once(&r));
}
END_TEST

START_TEST(the_next_transaction_begun_waits)
{
	ship_rule_t r = fresh(0x1000);

	note(&r, xlog('B', 0x1000));
	note(&r, xlog('C', 0x1100));
	note(&r, xlog('B', 0x1200));
	note(&r, xlog('U', 0x1210));
	ck_assert(!ship_rule_at_once(&r));
	note(&r, xlog('C', 0x1300));
	ck_assert(ship_rule_at_once(&r));
}
END_TEST

START_TEST(a_backlog_fills_batches)
{
	/* the primary had flushed up to 0x9000 when last asked: what the
	 * walsender sends before it is a backlog */
	ship_rule_t r = fresh(0x9000);

	note(&r, xlog('B', 0x1000));
	note(&r, xlog('C', 0x1100));
	ck_assert(!ship_rule_at_once(&r));
	note(&r, xlog('B', 0x8f00));
	note(&r, xlog('C', 0x9000));
	ck_assert(ship_rule_at_once(&r));
	/* a newer flush position: behind again until the walsender gets there */
	ship_rule_shipped(&r);
	ship_rule_note_primary_flush(&r, 0xa000);
	note(&r, xlog('B', 0x9100));
	note(&r, xlog('C', 0x9200));
	ck_assert(!ship_rule_at_once(&r));
	/* a keepalive says it decoded past it: the commit before was the last */
	note(&r, keepalive(0xa000));
	ck_assert(ship_rule_at_once(&r));
	/* an older flush position read late does not move it back */
	ship_rule_note_primary_flush(&r, 0x5000);
	ck_assert_uint_eq(r.primary_flush_lsn, 0xa000);
}
END_TEST

START_TEST(streamed_transactions)
{
	ship_rule_t r = fresh(0x1000);

	/* a chunk of a streamed transaction commits nothing */
	note(&r, xlog('S', 0x1000));
	note(&r, xlog('I', 0x1010));
	note(&r, xlog('E', 0x1020));
	ck_assert(!ship_rule_at_once(&r));
	note(&r, xlog('c', 0x2000));
	ck_assert(ship_rule_at_once(&r));
}
END_TEST

START_TEST(a_new_session_starts_from_nothing_sent)
{
	ship_rule_t r = fresh(0x1000);

	note(&r, xlog('C', 0x3000));
	ck_assert(ship_rule_at_once(&r));
	ship_rule_reset(&r);
	ck_assert(!ship_rule_at_once(&r));
	ck_assert_uint_eq(r.sent_lsn, 0);
	ck_assert_uint_eq(r.primary_flush_lsn, 0x1000);
}
END_TEST

Suite *ship_rule_suite(void)
{
	Suite *s = suite_create("ship_rule");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, a_whole_transaction_at_the_head_ships);
	tcase_add_test(tc, the_next_transaction_begun_waits);
	tcase_add_test(tc, a_backlog_fills_batches);
	tcase_add_test(tc, streamed_transactions);
	tcase_add_test(tc, a_new_session_starts_from_nothing_sent);
	suite_add_tcase(s, tc);
	return s;
}
