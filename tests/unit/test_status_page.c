/*
 * test_status_page.c — the status page escapes every text from outside
 * (reasons, apply errors, names, events) and draws the chart's series with
 * gaps where a figure is unknown.
 */
#include "pgferry/status_page.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(escaped_and_drawn)
{
	lag_snapshot_t *s = calloc(1, sizeof(*s));
	lag_verdict_t v = {0};
	lag_history_point_t p[4];
	event_t e = {0};
	buf_t b;
	int i;

	s->now_us = 1800000000000000LL;
	s->identity_known = true;
	snprintf(s->database, sizeof(s->database), "db<script>alert(1)</script>");
	snprintf(s->slot, sizeof(s->slot), "slot\"onload=\"x");
	s->apply_error = true;
	snprintf(s->apply_error_message, sizeof(s->apply_error_message), "<img src=x>&'");
	s->max_rpo_ms = 60000;
	v.verdict = VERDICT_UNSAFE;
	v.nreasons = 1;
	snprintf(v.reasons[0], sizeof(v.reasons[0]), "apply stopped on <b>t</b>");
	for (i = 0; i < 4; i++) {
		p[i].time_us = s->now_us - (4 - i) * 1000000LL;
		p[i].rpo_bound_ms = i == 2 ? -1 : 100.0 * i;
		p[i].commit_lag_ms = 10;
	}
	snprintf(e.kind, sizeof(e.kind), "apply_error");
	snprintf(e.message, sizeof(e.message), "</td><script>x</script>");
	e.time_us = s->now_us;
	buf_init(&b);
	status_page_render(s, &v, p, 4, &e, 1, &b);
	ck_assert_ptr_null(strstr(b.data, "<script"));
	ck_assert_ptr_null(strstr(b.data, "<img"));
	ck_assert_ptr_null(strstr(b.data, "<b>t"));
	ck_assert_ptr_null(strstr(b.data, "slot\"onload"));
	ck_assert_ptr_nonnull(strstr(b.data, "db&lt;script&gt;alert(1)&lt;/script&gt;"));
	ck_assert_ptr_nonnull(strstr(b.data, "&lt;img src=x&gt;&amp;&#39;"));
	ck_assert_ptr_nonnull(strstr(b.data, "class=\"verdict unsafe\""));
	/* the unknown third RPO sample lifts the pen: two M, no L after the gap */
	{
		const char *d = strstr(b.data, "id=\"rpo-bound\"");
		ck_assert_ptr_nonnull(d);
		d = strstr(d, " d=\"");
		ck_assert_ptr_nonnull(d);
		ck_assert_int_eq(d[4], 'M');
		ck_assert_ptr_nonnull(strchr(d + 5, 'M'));
	}
	buf_free(&b);
	free(s);
}
END_TEST

Suite *status_page_suite(void)
{
	Suite *su = suite_create("status_page");
	TCase *tc = tcase_create("status_page");

	tcase_add_test(tc, escaped_and_drawn);
	suite_add_tcase(su, tc);
	return su;
}
