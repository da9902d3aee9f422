/*
 * test_events.c — the event history without a database: events_watch turns
 * changes between snapshots into events (once each, brief reconnections and
 * the sink's own drops are none, a verdict must hold before it counts, clock
 * faults are throttled), recorded messages are masked, and /v1/events'
 * JSON parses and honours since.
 */
#include "pgferry/events.h"
#include "pgferry/log.h"

#include <check.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static lag_snapshot_t *s;
static events_watch_t w;

static void setup(void)
{
	int devnull = open("/dev/null", O_WRONLY);

	log_set_fd(devnull); /* events are logged; keep the test output clean */
	events_reset();
	s = calloc(1, sizeof(*s));
	s->now_us = 1800000000000000LL;
	s->dr_reachable = true;
	s->identity_ok = true;
	s->max_rpo_ms = 60000;
	memset(&w, 0, sizeof(w));
}

static void teardown(void)
{
	free(s);
	events_reset();
	log_set_fd(2);
}

/* the kinds recorded so far, verdicts left out, space-separated */
static const char *kinds(bool with_verdicts)
{
	static char out[2000];
	event_t ev[EVENTS_RING];
	int i, n = events_recent(0, ev, EVENTS_RING);

	out[0] = '\0';
	for (i = 0; i < n; i++) {
		if (!with_verdicts && strncmp(ev[i].kind, "verdict_", 8) == 0)
			continue;
		if (out[0])
			strcat(out, " ");
		strcat(out, ev[i].kind);
	}
	events_free_copies(ev, n);
	return out;
}

static void step(int64_t ms)
{
	s->now_us += ms * 1000;
	events_watch(&w, s);
}

START_TEST(source_lost_only_when_gone)
{
	events_watch(&w, s);
	ck_assert_str_eq(kinds(false), "");
	s->source_state = LAG_SOURCE_CONNECTED;
	step(100);
	ck_assert_str_eq(kinds(false), "source_connected");
	/* a reconnection within the grace: nothing */
	s->source_state = LAG_SOURCE_DISCONNECTED;
	step(100);
	step(1500);
	s->source_state = LAG_SOURCE_CONNECTED;
	step(100);
	ck_assert_str_eq(kinds(false), "source_connected");
	/* gone while the sink has an apply error: the error is the event */
	s->apply_error = true;
	snprintf(s->apply_error_message, sizeof(s->apply_error_message), "duplicate key");
	s->source_state = LAG_SOURCE_DISCONNECTED;
	step(100);
	step(5000);
	ck_assert_str_eq(kinds(false), "source_connected apply_error");
	/* the error cleared and the source still away: now it is lost, once */
	s->apply_error = false;
	step(100);
	step(100);
	ck_assert_str_eq(kinds(false), "source_connected apply_error apply_recovered source_lost");
	s->source_state = LAG_SOURCE_CONNECTED;
	step(100);
	ck_assert_str_eq(
	        kinds(false),
	        "source_connected apply_error apply_recovered source_lost source_connected");
}
END_TEST

START_TEST(apply_error_once_and_drift)
{
	events_watch(&w, s);
	s->apply_error = true;
	s->apply_errors = 1;
	snprintf(s->apply_error_message, sizeof(s->apply_error_message), "no row found");
	step(100);
	step(100);
	s->apply_errors = 2; /* the same error again on a retry: no new event */
	step(100);
	ck_assert_str_eq(kinds(false), "apply_error");
	s->apply_errors = 3; /* another error */
	s->schema_drift = true;
	snprintf(s->apply_error_message, sizeof(s->apply_error_message), "column c is missing");
	step(100);
	ck_assert_str_eq(kinds(false), "apply_error schema_drift");
	s->apply_error = s->schema_drift = false;
	step(100);
	ck_assert_str_eq(kinds(false), "apply_error schema_drift apply_recovered");
}
END_TEST

START_TEST(flags_rise_and_fall)
{
	events_watch(&w, s);
	s->dr_reachable = false;
	step(100);
	s->dr_reachable = true;
	step(100);
	snprintf(s->slot_wal_warning, sizeof(s->slot_wal_warning), "the slot retains 9 GB");
	step(100);
	step(100);
	s->slot_wal_warning[0] = '\0';
	step(100);
	s->fenced = true;
	step(100);
	step(100);
	ck_assert_str_eq(kinds(false),
	                 "dr_unreachable dr_reachable slot_wal_warning slot_wal_ok fenced");
}
END_TEST

START_TEST(verdict_must_hold)
{
	events_watch(&w, s);
	step(1000);
	ck_assert_str_eq(kinds(true), ""); /* not held long enough */
	step(2500);
	ck_assert_str_eq(kinds(true), "verdict_unknown");
	step(5000);
	ck_assert_str_eq(kinds(true), "verdict_unknown");
	s->fenced = true;
	step(1000);
	step(3000);
	ck_assert_str_eq(kinds(true), "verdict_unknown fenced verdict_promoted");
}
END_TEST

START_TEST(clock_faults_throttled)
{
	events_watch(&w, s);
	for (int i = 1; i <= 50; i++) {
		s->clock_faults = (uint64_t)i;
		snprintf(s->clock_fault, sizeof(s->clock_fault), "a timestamp from the future");
		step(1000);
	}
	ck_assert_str_eq(kinds(false), "clock_fault");
	s->clock_faults++;
	step(20000);
	ck_assert_str_eq(kinds(false), "clock_fault clock_fault");
}
END_TEST

START_TEST(recorded_masked_and_rendered)
{
	buf_t b;
	json_t *doc, *list, *e;
	json_error_t je;

	events_record("test", EVENT_ERROR, json_pack("{s:i}", "n", 7),
	              "could not connect with host=x password=hunter2 <b>\"quoted\"</b>");
	buf_init(&b);
	events_render_json(0, &b);
	doc = json_loads(b.data, 0, &je);
	ck_assert_msg(doc != NULL, "not JSON: %s", je.text);
	list = json_object_get(doc, "events");
	ck_assert_int_eq(json_array_size(list), 1);
	e = json_array_get(list, 0);
	ck_assert_str_eq(json_string_value(json_object_get(e, "kind")), "test");
	ck_assert_str_eq(json_string_value(json_object_get(e, "severity")), "error");
	ck_assert_ptr_null(strstr(json_string_value(json_object_get(e, "message")), "hunter2"));
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(e, "message")), "<b>"));
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(e, "detail"), "n")), 7);
	json_decref(doc);
	/* since: newer events only */
	buf_reset(&b);
	events_render_json(INT64_MAX / 2, &b);
	/* nothing read from a DR database in this test: the list says so */
	ck_assert_str_eq(b.data, "{\"events\":[],\"history_loaded\":false}\n");
	buf_free(&b);
	ck_assert_int_eq(events_recorded(EVENT_ERROR), 1);
}
END_TEST

START_TEST(ring_keeps_the_newest)
{
	event_t ev[EVENTS_RING];
	int n;

	for (int i = 0; i < EVENTS_RING + 30; i++)
		events_record("n", EVENT_INFO, NULL, "%d", i);
	n = events_recent(0, ev, EVENTS_RING);
	ck_assert_int_eq(n, EVENTS_RING);
	ck_assert_str_eq(ev[0].message, "30");
	ck_assert_int_eq(atoi(ev[n - 1].message), EVENTS_RING + 29);
	events_free_copies(ev, n);
}
END_TEST

Suite *events_suite(void)
{
	Suite *su = suite_create("events");
	TCase *tc = tcase_create("events");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, source_lost_only_when_gone);
	tcase_add_test(tc, apply_error_once_and_drift);
	tcase_add_test(tc, flags_rise_and_fall);
	tcase_add_test(tc, verdict_must_hold);
	tcase_add_test(tc, clock_faults_throttled);
	tcase_add_test(tc, recorded_masked_and_rendered);
	tcase_add_test(tc, ring_keeps_the_newest);
	suite_add_tcase(su, tc);
	return su;
}
