/*
 * test_depend.c — the dependency tracker of parallel apply
 * (relay/apply/depend.c): footprints of row identities, and where and when
 * each transaction may run.
 */
#include "pgferry/depend.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

static const uint16_t col0[] = {0};
static const uint16_t col1[] = {1};
static const uint16_t col01[] = {0, 1};

/* a two-column tuple; NULL is a SQL null, "~" an unchanged TOAST value */
static tuple_t row2(const char *a, const char *b)
{
	tuple_t t;
	const char *v[2] = {a, b};
	int i;

	memset(&t, 0, sizeof(t));
	t.ncolumns = 2;
	for (i = 0; i < 2; i++) {
		if (v[i] == NULL) {
			t.columns[i].kind = 'n';
		} else if (strcmp(v[i], "~") == 0) {
			t.columns[i].kind = 'u';
		} else {
			t.columns[i].kind = 't';
			t.columns[i].data = v[i];
			t.columns[i].len = (uint32_t)strlen(v[i]);
		}
	}
	return t;
}

/* the footprint of one row of table 1 by its key (column 0) */
static void fp_key(depend_footprint_t *fp, const char *id)
{
	tuple_t t = row2(id, "x");

	depend_footprint_add(fp, 1, 100, &t, col0, 1, true);
}

/* admits fp and gives it to worker (or, when the verdict names one, to that) */
static depend_verdict_t run(depend_t *d, const depend_footprint_t *fp, int worker)
{
	depend_verdict_t v;

	depend_admit(d, fp, &v);
	ck_assert(depend_assign(d, fp, v.seq, v.worker >= 0 ? v.worker : worker));
	return v;
}

START_TEST(test_footprint_keys)
{
	depend_footprint_t a, b;
	tuple_t t1 = row2("1", "x"), t2 = row2("1", "y"), t3 = row2("ab", "c"),
	        t4 = row2("a", "bc");

	depend_footprint_init(&a);
	depend_footprint_init(&b);
	/* the same key of the same table: the same identity, other columns aside */
	depend_footprint_add(&a, 1, 100, &t1, col0, 1, true);
	depend_footprint_add(&b, 1, 100, &t2, col0, 1, true);
	ck_assert_uint_eq(a.nkeys, 1);
	ck_assert_uint_eq(b.nkeys, 1);
	ck_assert(a.keys[0] == b.keys[0]);
	/* another table, another index: another identity */
	depend_footprint_add(&b, 2, 100, &t1, col0, 1, true);
	depend_footprint_add(&b, 1, 101, &t1, col0, 1, true);
	ck_assert_uint_eq(b.nkeys, 3);
	ck_assert(b.keys[1] != a.keys[0] && b.keys[2] != a.keys[0]);
	/* value boundaries count: ("ab","c") is not ("a","bc") */
	depend_footprint_reset(&a);
	depend_footprint_reset(&b);
	depend_footprint_add(&a, 1, 100, &t3, col01, 2, true);
	depend_footprint_add(&b, 1, 100, &t4, col01, 2, true);
	ck_assert(a.keys[0] != b.keys[0]);
	depend_footprint_free(&a);
	depend_footprint_free(&b);
}
END_TEST

START_TEST(test_footprint_unknown_is_barrier)
{
	depend_footprint_t fp;
	tuple_t toast = row2("1", "~"), nul = row2("1", NULL);

	depend_footprint_init(&fp);
	/* a unique column whose value is not in the stream */
	depend_footprint_add(&fp, 1, 101, &toast, col1, 1, true);
	ck_assert(fp.barrier);
	depend_footprint_reset(&fp);
	ck_assert(!fp.barrier);
	/* no key at all */
	depend_footprint_add(&fp, 1, 0, &toast, NULL, 0, true);
	ck_assert(fp.barrier);
	depend_footprint_reset(&fp);
	/* a column past the tuple's end */
	{
		static const uint16_t col5[] = {5};
		depend_footprint_add(&fp, 1, 101, &nul, col5, 1, true);
		ck_assert(fp.barrier);
	}
	depend_footprint_free(&fp);
}
END_TEST

START_TEST(test_footprint_nulls)
{
	depend_footprint_t fp;
	tuple_t nul = row2("1", NULL);

	depend_footprint_init(&fp);
	/* NULLs are distinct in a unique index: the key identifies nothing */
	depend_footprint_add(&fp, 1, 101, &nul, col1, 1, true);
	ck_assert(!fp.barrier);
	ck_assert_uint_eq(fp.nkeys, 0);
	/* NULLS NOT DISTINCT: a NULL is a value like any other */
	depend_footprint_add(&fp, 1, 101, &nul, col1, 1, false);
	ck_assert_uint_eq(fp.nkeys, 1);
	depend_footprint_free(&fp);
}
END_TEST

START_TEST(test_footprint_too_many_rows)
{
	depend_footprint_t fp;
	char id[16];
	int i;

	depend_footprint_init(&fp);
	for (i = 0; i < DEPEND_MAX_KEYS; i++) {
		snprintf(id, sizeof(id), "%d", i);
		fp_key(&fp, id);
	}
	ck_assert(!fp.barrier);
	fp_key(&fp, "one more");
	ck_assert(fp.barrier);
	ck_assert_uint_eq(fp.nkeys, 0);
	depend_footprint_free(&fp);
}
END_TEST

START_TEST(test_independent_run_anywhere)
{
	depend_t d;
	depend_footprint_t fp;
	depend_verdict_t v;

	depend_init(&d);
	depend_footprint_init(&fp);
	fp_key(&fp, "1");
	v = run(&d, &fp, 0);
	ck_assert_uint_eq(v.seq, 1);
	ck_assert_int_eq(v.worker, -1);
	ck_assert_uint_eq(v.wait_for, 0);
	depend_footprint_reset(&fp);
	fp_key(&fp, "2");
	v = run(&d, &fp, 1);
	ck_assert_uint_eq(v.seq, 2);
	ck_assert_int_eq(v.worker, -1);
	ck_assert_uint_eq(v.wait_for, 0);
	ck_assert_uint_eq(depend_in_flight(&d), 2);
	depend_footprint_free(&fp);
	depend_free(&d);
}
END_TEST

/* updates of the same row in consecutive transactions: one after the
 * other on the same worker, and none once the first committed */
START_TEST(test_same_key_same_worker)
{
	depend_t d;
	depend_footprint_t fp;
	depend_verdict_t v;

	depend_init(&d);
	depend_footprint_init(&fp);
	fp_key(&fp, "1");
	run(&d, &fp, 1);
	v = run(&d, &fp, 0);
	ck_assert_int_eq(v.worker, 1);
	ck_assert_uint_eq(v.wait_for, 0);
	v = run(&d, &fp, 0);
	ck_assert_int_eq(v.worker, 1);
	depend_committed(&d, 3);
	ck_assert_uint_eq(depend_in_flight(&d), 0);
	v = run(&d, &fp, 0);
	ck_assert_int_eq(v.worker, -1);
	ck_assert_uint_eq(v.wait_for, 0);
	depend_footprint_free(&fp);
	depend_free(&d);
}
END_TEST

/* a unique value moved from one row to another across transactions: T1
 * changes row 1's email from a to b, T2 gives row 2 the email a. T2's new
 * tuple carries a, T1's old tuple carried a: they conflict. */
START_TEST(test_unique_swap)
{
	depend_t d;
	depend_footprint_t t1, t2;
	depend_verdict_t v;
	tuple_t old1 = row2("1", "a"), new1 = row2("1", "b"), new2 = row2("2", "a");

	depend_init(&d);
	depend_footprint_init(&t1);
	depend_footprint_init(&t2);
	depend_footprint_add(&t1, 1, 100, &new1, col0, 1, true);
	depend_footprint_add(&t1, 1, 101, &old1, col1, 1, true);
	depend_footprint_add(&t1, 1, 101, &new1, col1, 1, true);
	depend_footprint_add(&t2, 1, 100, &new2, col0, 1, true);
	depend_footprint_add(&t2, 1, 101, &new2, col1, 1, true);
	run(&d, &t1, 1);
	v = run(&d, &t2, 0);
	ck_assert_int_eq(v.worker, 1);
	depend_footprint_free(&t1);
	depend_footprint_free(&t2);
	depend_free(&d);
}
END_TEST

/* conflicts on two workers: behind the newest, after the other committed */
START_TEST(test_conflicts_on_two_workers)
{
	depend_t d;
	depend_footprint_t a, b, both;
	depend_verdict_t v;

	depend_init(&d);
	depend_footprint_init(&a);
	depend_footprint_init(&b);
	depend_footprint_init(&both);
	fp_key(&a, "1");
	fp_key(&b, "2");
	fp_key(&both, "1");
	fp_key(&both, "2");
	run(&d, &a, 0); /* 1 on worker 0 */
	run(&d, &b, 1); /* 2 on worker 1 */
	v = run(&d, &both, 2);
	ck_assert_uint_eq(v.seq, 3);
	ck_assert_int_eq(v.worker, 1);
	ck_assert_uint_eq(v.wait_for, 1);
	/* the newer conflict first in the footprint: the same answer */
	depend_footprint_reset(&both);
	fp_key(&both, "2");
	fp_key(&both, "1");
	depend_committed(&d, 3);
	run(&d, &a, 0); /* 4 on worker 0 */
	run(&d, &b, 1); /* 5 on worker 1 */
	v = run(&d, &both, 2);
	ck_assert_int_eq(v.worker, 1);
	ck_assert_uint_eq(v.wait_for, 4);
	depend_footprint_free(&a);
	depend_footprint_free(&b);
	depend_footprint_free(&both);
	depend_free(&d);
}
END_TEST

/* a barrier waits for everything before it; everything after waits for it */
START_TEST(test_barrier)
{
	depend_t d;
	depend_footprint_t fp, bar;
	depend_verdict_t v;

	depend_init(&d);
	depend_footprint_init(&fp);
	depend_footprint_init(&bar);
	depend_footprint_barrier(&bar);
	fp_key(&fp, "1");
	run(&d, &fp, 0);
	depend_footprint_reset(&fp);
	fp_key(&fp, "2");
	run(&d, &fp, 1);
	v = run(&d, &bar, 1);
	ck_assert_uint_eq(v.seq, 3);
	ck_assert_uint_eq(v.wait_for, 2);
	ck_assert_int_eq(v.worker, -1);
	/* an unrelated row after the barrier: behind it */
	depend_footprint_reset(&fp);
	fp_key(&fp, "3");
	v = run(&d, &fp, 0);
	ck_assert_int_eq(v.worker, 1);
	ck_assert_uint_eq(v.wait_for, 0);
	/* the barrier committed: free again */
	depend_committed(&d, 3);
	depend_footprint_reset(&fp);
	fp_key(&fp, "4");
	v = run(&d, &fp, 0);
	ck_assert_int_eq(v.worker, -1);
	/* a barrier with nothing in flight before it waits for nothing */
	depend_committed(&d, 5);
	v = run(&d, &bar, 0);
	ck_assert_uint_eq(v.wait_for, 0);
	depend_footprint_free(&fp);
	depend_footprint_free(&bar);
	depend_free(&d);
}
END_TEST

/* entries of committed transactions expire: the table does not grow with
 * the stream, only with what is in flight */
START_TEST(test_table_bounded)
{
	depend_t d;
	depend_footprint_t fp;
	depend_verdict_t v;
	char id[16];
	int i;

	depend_init(&d);
	depend_footprint_init(&fp);
	for (i = 0; i < 200000; i++) {
		depend_footprint_reset(&fp);
		snprintf(id, sizeof(id), "%d", i);
		fp_key(&fp, id);
		v = run(&d, &fp, i % 2);
		ck_assert_int_eq(v.worker, -1);
		if (i % 3 == 2)
			depend_committed(&d, v.seq - 1); /* one stays in flight */
	}
	ck_assert_uint_le(d.nslots, 1024);
	/* reset forgets what is in flight and numbering goes on */
	depend_reset(&d);
	ck_assert_uint_eq(depend_in_flight(&d), 0);
	v = run(&d, &fp, 0);
	ck_assert_uint_eq(v.seq, 200001);
	ck_assert_int_eq(v.worker, -1);
	depend_footprint_free(&fp);
	depend_free(&d);
}
END_TEST

Suite *depend_suite(void)
{
	Suite *s = suite_create("depend");
	TCase *tc = tcase_create("depend");

	tcase_add_test(tc, test_footprint_keys);
	tcase_add_test(tc, test_footprint_unknown_is_barrier);
	tcase_add_test(tc, test_footprint_nulls);
	tcase_add_test(tc, test_footprint_too_many_rows);
	tcase_add_test(tc, test_independent_run_anywhere);
	tcase_add_test(tc, test_same_key_same_worker);
	tcase_add_test(tc, test_unique_swap);
	tcase_add_test(tc, test_conflicts_on_two_workers);
	tcase_add_test(tc, test_barrier);
	tcase_add_test(tc, test_table_bounded);
	suite_add_tcase(s, tc);
	return s;
}
