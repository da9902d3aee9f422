/*
 * test_prom.c — constant labels on Prometheus text: every series gets slot
 * and database after its own labels, values escaped; comments unchanged.
 */
#include "pgferry/prom.h"

#include <check.h>
#include <string.h>

START_TEST(labels_added)
{
	buf_t in, out;

	buf_init(&in);
	buf_init(&out);
	buf_append_str(&in, "# HELP pgferry_up Up.\n# TYPE pgferry_up gauge\npgferry_up 1\n"
	                    "pgferry_lag_bucket{le=\"+Inf\"} 3\npgferry_info{} 1\n");
	prom_add_labels(&in, "s\"1", "d\\b\nx", &out);
	ck_assert_str_eq(
	        out.data,
	        "# HELP pgferry_up Up.\n# TYPE pgferry_up gauge\n"
	        "pgferry_up{slot=\"s\\\"1\",database=\"d\\\\b\\nx\"} 1\n"
	        "pgferry_lag_bucket{le=\"+Inf\",slot=\"s\\\"1\",database=\"d\\\\b\\nx\"} 3\n"
	        "pgferry_info{slot=\"s\\\"1\",database=\"d\\\\b\\nx\"} 1\n");
	buf_free(&in);
	buf_free(&out);
}
END_TEST

Suite *prom_suite(void)
{
	Suite *su = suite_create("prom");
	TCase *tc = tcase_create("prom");

	tcase_add_test(tc, labels_added);
	suite_add_tcase(su, tc);
	return su;
}
