/*
 * test_rpo_guard.c — the RPO guard's edits of synchronous_standby_names:
 * the DBA's entries are kept in every form PostgreSQL accepts, the source's
 * name is added as one more required standby and removed again, and a
 * value that cannot be parsed is refused rather than rewritten.
 */
#include "pgferry/rpo_guard.h"

#include <check.h>
#include <string.h>

static pgf_error_t err;
static char out[4096], back[4096];

static void round_trip(const char *dba, const char *merged, const char *released)
{
	ck_assert_int_eq(rpo_guard_names_add(dba, "pgferry", out, sizeof(out), &err), 0);
	ck_assert_str_eq(out, merged);
	/* a second add finds it listed */
	ck_assert_int_eq(rpo_guard_names_add(out, "pgferry", back, sizeof(back), &err), 1);
	ck_assert_str_eq(back, merged);
	ck_assert_int_eq(rpo_guard_names_remove(out, "pgferry", back, sizeof(back), &err), 1);
	ck_assert_str_eq(back, released);
}

START_TEST(merges_every_form)
{
	round_trip("", "\"pgferry\"", "");
	round_trip("  ", "\"pgferry\"", "");
	round_trip("standby1", "FIRST 2 (\"pgferry\", standby1)", "FIRST 1 (standby1)");
	round_trip("s1, \"S 2\"", "FIRST 2 (\"pgferry\", s1, \"S 2\")", "FIRST 1 (s1, \"S 2\")");
	round_trip("FIRST 2 (a, b, c)", "FIRST 3 (\"pgferry\", a, b, c)", "FIRST 2 (a, b, c)");
	round_trip("first 1(a,b)", "FIRST 2 (\"pgferry\", a, b)", "FIRST 1 (a, b)");
	round_trip("2 (a, b)", "FIRST 3 (\"pgferry\", a, b)", "FIRST 2 (a, b)");
	/* an ANY quorum cannot require one member: FIRST, still n of theirs */
	round_trip("ANY 1 (a, b)", "FIRST 2 (\"pgferry\", a, b)", "FIRST 1 (a, b)");
	round_trip("*", "FIRST 2 (\"pgferry\", *)", "FIRST 1 (*)");
	/* a standby named first */
	round_trip("first", "FIRST 2 (\"pgferry\", first)", "FIRST 1 (first)");
	round_trip("\"a\"\"b\"", "FIRST 2 (\"pgferry\", \"a\"\"b\")", "FIRST 1 (\"a\"\"b\")");
}
END_TEST

START_TEST(finds_its_name_in_any_case)
{
	ck_assert_int_eq(
	        rpo_guard_names_add("FIRST 1 (PGFERRY, a)", "pgferry", out, sizeof(out), &err), 1);
	ck_assert_str_eq(out, "FIRST 1 (PGFERRY, a)");
	ck_assert_int_eq(rpo_guard_names_remove("a, b", "pgferry", out, sizeof(out), &err), 0);
	ck_assert_str_eq(out, "a, b");
	/* removing from what a DBA wrote keeps the rest and its count */
	ck_assert_int_eq(
	        rpo_guard_names_remove("ANY 2 (a, pgferry, b)", "pgferry", out, sizeof(out), &err),
	        1);
	ck_assert_str_eq(out, "ANY 1 (a, b)");
	ck_assert_int_eq(rpo_guard_names_remove("a, pgferry", "pgferry", out, sizeof(out), &err),
	                 1);
	ck_assert_str_eq(out, "a");
}
END_TEST

START_TEST(refuses_what_it_cannot_read)
{
	const char *bad[] = {"FIRST 1 a",   "FIRST 1 (a",     "(a)", "a b",     "ANY (a, b)",
	                     "FIRST 0 (a)", "\"unterminated", "a,",  "1 (a) b", ",a",
	                     NULL};
	for (int i = 0; bad[i]; i++) {
		ck_assert_msg(rpo_guard_names_add(bad[i], "pgferry", out, sizeof(out), &err) ==
		                      PGF_ERR,
		              "accepted %s", bad[i]);
		ck_assert_ptr_nonnull(strstr(err.message, "synchronous_standby_names"));
	}
	/* too long for the buffer: refused, not cut */
	ck_assert_int_eq(rpo_guard_names_add("standby_with_a_long_name", "pgferry", out, 20, &err),
	                 PGF_ERR);
}
END_TEST

Suite *rpo_guard_suite(void)
{
	Suite *s = suite_create("rpo_guard");
	TCase *t = tcase_create("names");
	tcase_add_test(t, merges_every_form);
	tcase_add_test(t, finds_its_name_in_any_case);
	tcase_add_test(t, refuses_what_it_cannot_read);
	suite_add_tcase(s, t);
	return s;
}
