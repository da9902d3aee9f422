/*
 * test_lag.c — the lag tracker on an injected clock: figures grow at clock
 * rate when nothing is heard, known loss and backlog count exactly, the
 * clock offset is recovered from skewed samples, and the verdict names
 * every failed condition. JSON output parses.
 */
#include "pgferry/config.h"
#include "pgferry/decoder.h"
#include "pgferry/lag.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int64_t fake_now; /* sink clock, Unix µs */
static int64_t clock_fn(void *arg)
{
	(void)arg;
	return fake_now;
}

static config_t cfg;
static lag_tracker_t *l;
static lag_snapshot_t *s;

/* the primary's clock runs SKEW µs ahead of the sink's */
#define SKEW 250000
static int64_t primary_pgtime(int64_t sink_unix_us)
{
	return unix_us_to_pgtime(sink_unix_us + SKEW);
}

static void setup(void)
{
	config_init(&cfg);
	fake_now = 1800000000000000LL;
	l = lag_tracker_create(&cfg);
	lag_tracker_set_clock(l, clock_fn, NULL);
	s = malloc(sizeof(*s));
	/* a clock sample: 2 ms each way, the source 250 ms ahead */
	lag_on_clock_sample(l, unix_us_to_pgtime(fake_now), primary_pgtime(fake_now + 2000),
	                    primary_pgtime(fake_now + 2000), unix_us_to_pgtime(fake_now + 4000));
}

static void teardown(void)
{
	lag_tracker_free(l);
	config_free(&cfg);
	free(s);
}

START_TEST(offset_recovered_and_lag_undistorted)
{
	/* a worse sample (more queueing) must not win */
	lag_on_clock_sample(l, unix_us_to_pgtime(fake_now), primary_pgtime(fake_now + 30000),
	                    primary_pgtime(fake_now + 30000), unix_us_to_pgtime(fake_now + 31000));
	lag_on_primary_wal(l, 0x1000, primary_pgtime(fake_now));
	lag_on_received_commit(l, 0x900, 0x1000, primary_pgtime(fake_now), 100, 1, false);
	fake_now += 50000; /* applied 50 ms after the commit */
	lag_on_applied(l, 0x1000, primary_pgtime(fake_now - 50000), 1, 1, 100, 0.01);
	lag_snapshot(l, s);
	ck_assert(s->clock_known);
	ck_assert(fabs(s->clock_offset_ms - SKEW / 1000.0) <= s->clock_uncertainty_ms);
	ck_assert(fabs(s->clock_uncertainty_ms - 2.0) < 0.01);
	/* 50 ms, not 300 ms: the skew is taken out */
	ck_assert(fabs(s->last_commit_lag_ms - 50.0) < 0.01);
	ck_assert(s->caught_up);
	ck_assert(fabs(s->unknown_window_ms - 50.0) < 0.01);
	ck_assert(fabs(s->rpo_bound_ms - 50.0) < 0.01);
	ck_assert(s->known_loss_window_ms < 0.001);
}
END_TEST

START_TEST(silence_grows_at_clock_rate)
{
	lag_verdict_t v;

	lag_on_applied(l, 0x1000, primary_pgtime(fake_now), 1, 1, 1, 0.001);
	lag_on_primary_fact(l, 0x1000, 0x1000, primary_pgtime(fake_now), NULL);
	lag_snapshot(l, s);
	ck_assert(s->unknown_window_ms < 0.001);
	fake_now += 3000000;
	lag_snapshot(l, s);
	ck_assert(fabs(s->unknown_window_ms - 3000.0) < 0.01);
	ck_assert(fabs(s->rpo_bound_ms - 3000.0) < 0.01);
	lag_verdict(s, 1000, 0, &v);
	ck_assert_int_eq(v.verdict, VERDICT_UNSAFE);
	ck_assert_int_eq(v.nreasons, 1);
	ck_assert_ptr_nonnull(strstr(
	        v.reasons[0], "nothing new was learned about the primary's commits for 3.0 s"));
	lag_verdict(s, 5000, 0, &v);
	ck_assert_int_eq(v.verdict, VERDICT_SAFE);
}
END_TEST

/* The case of a mistyped publication: each walsender sends keepalives
 * stamped "now" and fails on the first change. Keepalives prove nothing;
 * the source's own facts say the primary went on, and the bound grows. */
START_TEST(keepalives_prove_nothing)
{
	lag_verdict_t v;
	int i;

	lag_on_applied(l, 0x1000, primary_pgtime(fake_now), 1, 1, 1, 0.001);
	lag_on_received(l, 0x1000);
	for (i = 1; i <= 50; i++) {
		fake_now += 100000;
		lag_on_primary_wal(l, 0x1000, primary_pgtime(fake_now));
		lag_on_primary_fact(l, 0x1000 + (uint64_t)i * 0x100, 0x1000 + (uint64_t)i * 0x100,
		                    primary_pgtime(fake_now),
		                    "publication \"pgferyy\" does not exist");
	}
	lag_snapshot(l, s);
	ck_assert(fabs(s->rpo_bound_ms - 5000.0) < 0.01);
	ck_assert(fabs(s->known_loss_window_ms - 5000.0) < 0.01);
	ck_assert(s->unknown_window_ms < 0.01);
	lag_verdict(s, 1000, 0, &v);
	ck_assert_int_eq(v.verdict, VERDICT_UNSAFE);
	ck_assert_ptr_nonnull(strstr(v.reasons[0], "the primary is alive at 0/4200"));
	ck_assert_ptr_nonnull(strstr(v.reasons[0], "nothing past 0/1000 for 5.0 s"));
	ck_assert_ptr_nonnull(strstr(v.reasons[0], "publication \"pgferyy\" does not exist"));
}
END_TEST

/* A primary fact is a proof point once apply passes its LSN, also by
 * progress alone (no transaction) */
START_TEST(fact_proves_once_applied)
{
	int64_t t0 = fake_now;

	lag_on_applied(l, 0x1000, primary_pgtime(fake_now), 1, 1, 1, 0.001);
	fake_now += 1000000;
	lag_on_primary_fact(l, 0x2000, 0x2000, primary_pgtime(fake_now), "");
	fake_now += 1000000;
	lag_snapshot(l, s);
	ck_assert(fabs(s->rpo_bound_ms - 2000.0) < 0.01);
	ck_assert(fabs(s->known_loss_window_ms - 1000.0) < 0.01);
	/* progress to 0x1fff does not reach the fact's LSN */
	lag_on_applied(l, 0x1fff, primary_pgtime(t0), 0, 0, 0, 0.001);
	lag_snapshot(l, s);
	ck_assert(fabs(s->rpo_bound_ms - 2000.0) < 0.01);
	lag_on_applied(l, 0x2000, primary_pgtime(t0), 0, 0, 0, 0.001);
	lag_snapshot(l, s);
	ck_assert(fabs(s->rpo_bound_ms - 1000.0) < 0.01);
}
END_TEST

START_TEST(known_loss_and_backlog)
{
	lag_verdict_t v;
	int i;

	lag_restore_applied(l, 0x800, primary_pgtime(fake_now));
	lag_on_primary_wal(l, 0x5000, primary_pgtime(fake_now));
	for (i = 1; i <= 4; i++)
		lag_on_received_commit(l, 0x1000 * (uint64_t)i - 8, 0x1000 * (uint64_t)i,
		                       primary_pgtime(fake_now + i * 1000), 1000, 10, false);
	/* a resend after a reconnect is not counted twice */
	lag_on_received_commit(l, 0x1ff8, 0x2000, primary_pgtime(fake_now + 2000), 1000, 10, false);
	/* pgferry's own heartbeat is no backlog */
	lag_on_received_commit(l, 0x4ff8, 0x4fff, primary_pgtime(fake_now + 5000), 50, 0, true);
	fake_now += 2000000;
	lag_on_primary_wal(l, 0x5000, primary_pgtime(fake_now));
	lag_snapshot(l, s);
	ck_assert_uint_eq(s->known_loss_transactions, 4);
	ck_assert_uint_eq(s->backlog_transactions, 4);
	ck_assert_uint_eq(s->backlog_bytes, 4050);
	ck_assert_uint_eq(s->known_loss_bytes, 0x5000 - 0x800);
	ck_assert(fabs(s->oldest_commit_age_ms - 1999.0) < 0.01);
	ck_assert(fabs(s->rpo_bound_ms - 2000.0) < 0.01);
	ck_assert(!s->caught_up);
	ck_assert(s->drain_estimate_ms < 0); /* nothing applied yet: no rate */
	lag_verdict(s, 1000, 0, &v);
	ck_assert_int_eq(v.verdict, VERDICT_UNSAFE);
	ck_assert_int_eq(v.nreasons, 3);
	ck_assert_ptr_nonnull(strstr(v.reasons[0], "oldest unapplied commit is 2.0 s old"));
	/* and nothing newer than the last commit was learned for 2 s */
	ck_assert_ptr_nonnull(strstr(v.reasons[1], "nothing new was learned"));
	ck_assert_ptr_nonnull(strstr(v.reasons[2], "4 received transactions"));
	/* two applied: the rate gives a drain estimate */
	lag_on_applied(l, 0x2000, primary_pgtime(fake_now - 1998000), 2, 20, 2000, 0.5);
	fake_now += 1000000;
	lag_snapshot(l, s);
	ck_assert_uint_eq(s->backlog_transactions, 2);
	ck_assert(s->drain_estimate_ms > 0);
	lag_verdict(s, 60000, 2, &v);
	ck_assert_int_eq(v.verdict, VERDICT_SAFE);
	/* the resume point after a reconnect drops what it covers */
	lag_reset_received(l, 0x3000);
	lag_snapshot(l, s);
	ck_assert_uint_eq(s->backlog_transactions, 1);
	/* only the heartbeat left: nothing waits for apply */
	lag_reset_received(l, 0x4000);
	lag_snapshot(l, s);
	ck_assert_uint_eq(s->backlog_transactions, 0);
	lag_verdict(s, 60000, 0, &v);
	ck_assert_int_eq(v.verdict, VERDICT_SAFE);
}
END_TEST

START_TEST(unknown_and_faults)
{
	lag_verdict_t v;
	pgf_error_t err;

	lag_snapshot(l, s);
	lag_verdict(s, -1, -1, &v);
	ck_assert_int_eq(v.verdict, VERDICT_UNKNOWN);
	ck_assert_ptr_nonnull(strstr(v.reasons[0], "not heard from any primary"));
	/* heard, but nothing proves what the DR side holds */
	lag_on_primary_wal(l, 0x1000, primary_pgtime(fake_now));
	lag_snapshot(l, s);
	ck_assert(!s->rpo_known);
	lag_verdict(s, -1, -1, &v);
	ck_assert_int_eq(v.verdict, VERDICT_UNKNOWN);
	ck_assert_ptr_nonnull(strstr(v.reasons[0], "proves what the DR database holds"));
	lag_restore_applied(l, 0x800, primary_pgtime(fake_now));
	error_set(&err, PGF_E_APPLY, "duplicate key value");
	error_where(&err, "public.t");
	lag_set_apply_error(l, &err, 0);
	lag_set_identity_ok(l, false);
	lag_snapshot(l, s);
	lag_verdict(s, -1, -1, &v);
	ck_assert_int_eq(v.verdict, VERDICT_UNSAFE);
	ck_assert_int_eq(v.nreasons, 2);
	ck_assert_ptr_nonnull(strstr(v.reasons[0], "duplicate key value at public.t"));
	ck_assert_ptr_nonnull(strstr(v.reasons[1], "another primary"));
	lag_set_dr_reachable(l, false, &err);
	lag_snapshot(l, s);
	lag_verdict(s, -1, -1, &v);
	ck_assert_int_eq(v.verdict, VERDICT_UNKNOWN);
	/* a commit clears the apply error */
	lag_set_identity_ok(l, true);
	lag_on_applied(l, 0x1000, primary_pgtime(fake_now), 1, 1, 1, 0.001);
	lag_snapshot(l, s);
	lag_verdict(s, -1, -1, &v);
	ck_assert_int_eq(v.verdict, VERDICT_SAFE);
	/* clean primary shutdown: reported, and safe */
	lag_set_source_state(l, LAG_SOURCE_PRIMARY_SHUTDOWN, 0x1000);
	lag_set_source_state(l, LAG_SOURCE_DISCONNECTED, 0);
	lag_snapshot(l, s);
	ck_assert_int_eq(s->source_state, LAG_SOURCE_PRIMARY_SHUTDOWN);
	lag_verdict(s, 3600000, -1, &v);
	ck_assert_int_eq(v.verdict, VERDICT_SAFE);
	ck_assert_ptr_nonnull(strstr(v.reasons[0], "shut down cleanly at 0/1000"));
	/* promoted: its own verdict, not "unsafe" */
	lag_set_fenced(l, true);
	lag_snapshot(l, s);
	lag_verdict(s, -1, -1, &v);
	ck_assert_int_eq(v.verdict, VERDICT_PROMOTED);
	ck_assert_str_eq(lag_verdict_name(v.verdict), "promoted");
}
END_TEST

/* One primary time an hour in the future: a fault, logged and counted,
 * and no figure shrinks (it once pinned the unknown window at 0). */
START_TEST(future_timestamp_changes_nothing)
{
	lag_on_applied(l, 0x1000, primary_pgtime(fake_now), 1, 1, 1, 0.001);
	fake_now += 3000000;
	lag_on_primary_wal(l, 0x2000, primary_pgtime(fake_now + 3600000000LL));
	lag_on_primary_fact(l, 0x2000, 0x2000, primary_pgtime(fake_now + 3600000000LL), "");
	lag_on_received_commit(l, 0x1ff0, 0x2000, primary_pgtime(fake_now + 3600000000LL), 1, 1,
	                       false);
	lag_on_applied(l, 0x2000, primary_pgtime(fake_now + 3600000000LL), 1, 1, 1, 0.001);
	lag_snapshot(l, s);
	ck_assert(fabs(s->rpo_bound_ms - 3000.0) < 0.01);
	ck_assert(fabs(s->unknown_window_ms - 3000.0) < 0.01);
	ck_assert_uint_eq(s->clock_faults, 4);
	ck_assert_ptr_nonnull(strstr(s->clock_fault, "in the future"));
	/* an hour in the past proves nothing newer either */
	lag_on_primary_fact(l, 0x2100, 0x2100, primary_pgtime(fake_now - 3600000000LL), "");
	lag_snapshot(l, s);
	ck_assert(fabs(s->rpo_bound_ms - 3000.0) < 0.01);
}
END_TEST

static int64_t fake_wall, fake_mono;
static int64_t wall_fn(void *arg)
{
	(void)arg;
	return fake_wall;
}
static int64_t mono_fn(void *arg)
{
	(void)arg;
	return fake_mono;
}

/* The sink's clock stepped back an hour: once read 0 for both figures. */
START_TEST(sink_clock_step_changes_nothing)
{
	fake_wall = fake_now;
	fake_mono = 1000000000;
	lag_tracker_set_clocks(l, wall_fn, mono_fn, NULL);
	lag_on_applied(l, 0x1000, primary_pgtime(fake_wall), 1, 1, 1, 0.001);
	lag_on_primary_fact(l, 0x1000, 0x1000, primary_pgtime(fake_wall), "");
	fake_mono += 2000000;
	fake_wall += 2000000 - 3600000000LL;
	lag_snapshot(l, s);
	ck_assert(fabs(s->rpo_bound_ms - 2000.0) < 0.01);
	ck_assert(fabs(s->unknown_window_ms - 2000.0) < 0.01);
	ck_assert_uint_eq(s->clock_faults, 1);
	ck_assert_ptr_nonnull(strstr(s->clock_fault, "stepped by -3600.000 s"));
	ck_assert(!s->clock_known); /* samples of the old clock are dropped */
	/* forward an hour: the figures go on at the monotonic rate */
	fake_mono += 1000000;
	fake_wall += 1000000 + 2 * 3600000000LL;
	lag_snapshot(l, s);
	ck_assert(fabs(s->rpo_bound_ms - 3000.0) < 0.01);
	ck_assert_uint_eq(s->clock_faults, 2);
}
END_TEST

START_TEST(drift_stands_until_past_the_failed_transaction)
{
	pgf_error_t err;

	lag_on_primary_wal(l, 0x3000, primary_pgtime(fake_now));
	error_set(&err, PGF_E_DRIFT, "column \"x\" is missing on the DR database");
	lag_set_apply_error(l, &err, 0x2000);
	/* a resent transaction before the failed one, and a progress-only
	 * commit, prove nothing */
	lag_on_applied(l, 0x1800, primary_pgtime(fake_now), 1, 1, 1, 0.001);
	lag_on_applied(l, 0x2800, primary_pgtime(fake_now), 0, 0, 0, 0.001);
	lag_snapshot(l, s);
	ck_assert(s->apply_error && s->schema_drift);
	/* the failed transaction went through: fixed */
	lag_on_applied(l, 0x2100, primary_pgtime(fake_now), 1, 1, 1, 0.001);
	lag_snapshot(l, s);
	ck_assert(!s->apply_error && !s->schema_drift);
}
END_TEST

START_TEST(clock_offset_fault)
{
	lag_verdict_t v;

	/* 5 s skew is beyond max_clock_offset (1 s) */
	lag_on_clock_sample(l, unix_us_to_pgtime(fake_now), unix_us_to_pgtime(fake_now + 5000000),
	                    unix_us_to_pgtime(fake_now + 5000000), unix_us_to_pgtime(fake_now));
	lag_on_primary_wal(l, 0x1000, unix_us_to_pgtime(fake_now + 5000000));
	lag_on_applied(l, 0x1000, unix_us_to_pgtime(fake_now + 5000000), 1, 1, 1, 0.001);
	lag_snapshot(l, s);
	lag_verdict(s, -1, -1, &v);
	ck_assert_int_eq(v.verdict, VERDICT_UNSAFE);
	ck_assert_ptr_nonnull(strstr(v.reasons[0], "clocks"));
	/* the offset is taken out: the commit is no fault and no lag */
	ck_assert_uint_eq(s->clock_faults, 0);
	ck_assert(fabs(s->rpo_bound_ms) < 0.01);
}
END_TEST

START_TEST(json_parses)
{
	buf_t b;
	lag_verdict_t v;
	json_error_t je;
	json_t *j;

	lag_set_identity(l, 7311, "db \"x\"", "pgferry");
	lag_on_primary_wal(l, 0x1000, primary_pgtime(fake_now));
	lag_snapshot(l, s);
	buf_init(&b);
	/* nothing proves anything yet: null, not 0 */
	lag_verdict(s, -1, -1, &v);
	lag_render_status_json(s, &v, &b);
	j = json_loads(b.data, 0, &je);
	ck_assert_msg(j != NULL, "status JSON does not parse: %s", je.text);
	ck_assert(json_is_null(json_object_get(j, "rpo_bound_ms")));
	json_decref(j);
	buf_reset(&b);
	lag_render_metrics(s, &b);
	ck_assert_ptr_nonnull(strstr(b.data, "pgferry_rpo_bound_seconds NaN\n"));
	buf_free(&b);
	lag_on_applied(l, 0x1000, primary_pgtime(fake_now), 1, 1, 1, 0.001);
	lag_snapshot(l, s);
	lag_verdict(s, -1, -1, &v);
	buf_init(&b);
	lag_render_status_json(s, &v, &b);
	j = json_loads(b.data, 0, &je);
	ck_assert_msg(j != NULL, "status JSON does not parse: %s", je.text);
	ck_assert_str_eq(
	        json_string_value(json_object_get(json_object_get(j, "identity"), "database")),
	        "db \"x\"");
	ck_assert(json_is_number(json_object_get(j, "rpo_bound_ms")));
	ck_assert_str_eq(json_string_value(json_object_get(j, "applied_lsn")), "0/1000");
	json_decref(j);
	buf_reset(&b);
	lag_render_verdict_json(s, &v, 1000, 0, &b);
	j = json_loads(b.data, 0, &je);
	ck_assert(j != NULL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "verdict")), "safe");
	json_decref(j);
	buf_reset(&b);
	lag_render_metrics(s, &b);
	ck_assert_ptr_nonnull(strstr(b.data, "# TYPE pgferry_rpo_bound_seconds gauge"));
	ck_assert_ptr_nonnull(strstr(b.data, "pgferry_commit_lag_seconds_bucket{le=\"+Inf\"} 1"));
	buf_free(&b);
}
END_TEST

/* JSON has no NaN or infinity: a figure that is not finite is null, and
 * the document still parses (a hand-written "%.3f" printed nan). */
START_TEST(json_never_prints_nan)
{
	buf_t b;
	lag_verdict_t v;
	json_error_t je;
	json_t *j;

	lag_on_applied(l, 0x1000, primary_pgtime(fake_now), 1, 1, 1, 0.001);
	lag_snapshot(l, s);
	s->rpo_bound_ms = NAN;
	s->last_commit_lag_ms = INFINITY;
	s->stream_idle_ms = -INFINITY;
	s->clock_offset_ms = NAN;
	s->transactions_per_s = NAN;
	s->drain_estimate_ms = INFINITY;
	s->history_known = true;
	s->history_p99_ms = NAN;
	lag_verdict(s, -1, -1, &v);
	buf_init(&b);
	lag_render_status_json(s, &v, &b);
	j = json_loads(b.data, 0, &je);
	ck_assert_msg(j != NULL, "status JSON with NaN does not parse: %s in %s", je.text, b.data);
	ck_assert(json_is_null(json_object_get(j, "rpo_bound_ms")));
	ck_assert(json_is_null(json_object_get(j, "last_commit_lag_ms")));
	ck_assert(json_is_null(json_object_get(json_object_get(j, "clock"), "offset_ms")));
	ck_assert(json_is_null(
	        json_object_get(json_object_get(j, "apply_backlog"), "drain_estimate_ms")));
	ck_assert(json_is_null(json_object_get(json_object_get(j, "lag_history"), "p99_ms")));
	json_decref(j);
	buf_reset(&b);
	lag_render_verdict_json(s, &v, 1000, 0, &b);
	j = json_loads(b.data, 0, &je);
	ck_assert_msg(j != NULL, "verdict JSON with NaN does not parse: %s in %s", je.text, b.data);
	ck_assert(json_is_null(json_object_get(j, "rpo_bound_ms")));
	json_decref(j);
	buf_free(&b);
}
END_TEST

Suite *lag_suite(void)
{
	Suite *su = suite_create("lag");
	TCase *tc = tcase_create("lag");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, offset_recovered_and_lag_undistorted);
	tcase_add_test(tc, silence_grows_at_clock_rate);
	tcase_add_test(tc, keepalives_prove_nothing);
	tcase_add_test(tc, fact_proves_once_applied);
	tcase_add_test(tc, future_timestamp_changes_nothing);
	tcase_add_test(tc, sink_clock_step_changes_nothing);
	tcase_add_test(tc, known_loss_and_backlog);
	tcase_add_test(tc, unknown_and_faults);
	tcase_add_test(tc, drift_stands_until_past_the_failed_transaction);
	tcase_add_test(tc, clock_offset_fault);
	tcase_add_test(tc, json_parses);
	tcase_add_test(tc, json_never_prints_nan);
	suite_add_tcase(su, tc);
	return su;
}
