/*
 * test_coalesce.c — the net change per row (relay/apply/coalesce.c): which
 * changes are held, what each held row is written as, and when the caller
 * must write what is held and apply a change in order.
 */
#include "pgferry/coalesce.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

/* t(id int key, v text) */
static relcache_column_t columns[2] = {
        {"id", 23, -1, true},
        {"v", 25, -1, false},
};
static const relcache_entry_t rel = {16384, "public", "t", 'd', 2, columns, 1};

static tuple_t row(const char *id, const char *v)
{
	tuple_t t;

	memset(&t, 0, sizeof(t));
	t.ncolumns = 2;
	t.columns[0].kind = 't';
	t.columns[0].data = id;
	t.columns[0].len = (uint32_t)strlen(id);
	if (v == NULL) {
		t.columns[1].kind = 'u'; /* unchanged TOAST */
	} else {
		t.columns[1].kind = 't';
		t.columns[1].data = v;
		t.columns[1].len = (uint32_t)strlen(v);
	}
	return t;
}

static bool add(coalesce_t *c, coalesce_mode_t mode, pgoutput_type_t type, const char *id,
                const char *v)
{
	tuple_t t = row(id, v);
	pgf_error_t err;
	bool taken = false;

	ck_assert_int_eq(coalesce_add(c, mode, &rel, type, false, &t, &taken, &err), PGF_OK);
	return taken;
}

static int held(const coalesce_t *c)
{
	const coalesce_row_t *r;
	int n = 0;

	for (r = coalesce_first(c); r; r = r->next)
		n++;
	return n;
}

static const char *value(const coalesce_row_t *r)
{
	static char out[64];

	snprintf(out, sizeof(out), "%.*s", (int)r->cols[1].len, r->cols[1].data);
	return out;
}

START_TEST(insert_then_updates_is_one_insert)
{
	coalesce_t c;

	coalesce_init(&c);
	ck_assert(add(&c, COALESCE_NET, PGOUTPUT_INSERT, "1", "a"));
	ck_assert(add(&c, COALESCE_NET, PGOUTPUT_UPDATE, "1", "b"));
	ck_assert(add(&c, COALESCE_NET, PGOUTPUT_UPDATE, "1", "c"));
	ck_assert_int_eq(held(&c), 1);
	ck_assert_int_eq(coalesce_row_write(coalesce_first(&c)), COALESCE_WRITE_INSERT);
	ck_assert_str_eq(value(coalesce_first(&c)), "c");
	coalesce_free(&c);
}
END_TEST

START_TEST(update_then_delete_is_one_delete)
{
	coalesce_t c;

	coalesce_init(&c);
	ck_assert(add(&c, COALESCE_NET, PGOUTPUT_UPDATE, "1", "b"));
	ck_assert(add(&c, COALESCE_NET, PGOUTPUT_DELETE, "1", NULL));
	ck_assert_int_eq(held(&c), 1);
	ck_assert_int_eq(coalesce_row_write(coalesce_first(&c)), COALESCE_WRITE_DELETE);
	coalesce_free(&c);
}
END_TEST

START_TEST(insert_then_delete_checks_absence)
{
	coalesce_t c;

	coalesce_init(&c);
	ck_assert(add(&c, COALESCE_NET, PGOUTPUT_INSERT, "1", "a"));
	ck_assert(add(&c, COALESCE_NET, PGOUTPUT_DELETE, "1", NULL));
	ck_assert_int_eq(coalesce_row_write(coalesce_first(&c)), COALESCE_WRITE_CHECK_ABSENT);
	/* and inserted again: an insert of the last image */
	ck_assert(add(&c, COALESCE_NET, PGOUTPUT_INSERT, "1", "z"));
	ck_assert_int_eq(held(&c), 1);
	ck_assert_int_eq(coalesce_row_write(coalesce_first(&c)), COALESCE_WRITE_INSERT);
	ck_assert_str_eq(value(coalesce_first(&c)), "z");
	coalesce_free(&c);
}
END_TEST

START_TEST(unchanged_toast_keeps_held_value)
{
	coalesce_t c;

	coalesce_init(&c);
	ck_assert(add(&c, COALESCE_NET, PGOUTPUT_INSERT, "1", "long"));
	ck_assert(add(&c, COALESCE_NET, PGOUTPUT_UPDATE, "1", NULL));
	ck_assert_int_eq(coalesce_first(&c)->cols[1].kind, 't');
	ck_assert_str_eq(value(coalesce_first(&c)), "long");
	coalesce_free(&c);
}
END_TEST

START_TEST(order_of_first_appearance)
{
	coalesce_t c;
	const coalesce_row_t *r;

	coalesce_init(&c);
	ck_assert(add(&c, COALESCE_NET, PGOUTPUT_INSERT, "2", "a"));
	ck_assert(add(&c, COALESCE_NET, PGOUTPUT_UPDATE, "1", "b"));
	ck_assert(add(&c, COALESCE_NET, PGOUTPUT_UPDATE, "2", "c"));
	r = coalesce_first(&c);
	ck_assert_int_eq(r->cols[0].data[0], '2');
	ck_assert_int_eq(r->next->cols[0].data[0], '1');
	ck_assert_ptr_null(r->next->next);
	coalesce_free(&c);
}
END_TEST

/* what would fail in order must reach the DR side in order */
START_TEST(impossible_sequences_are_not_taken)
{
	coalesce_t c;

	coalesce_init(&c);
	ck_assert(add(&c, COALESCE_NET, PGOUTPUT_INSERT, "1", "a"));
	ck_assert(!add(&c, COALESCE_NET, PGOUTPUT_INSERT, "1", "b")); /* duplicate key */
	ck_assert(add(&c, COALESCE_NET, PGOUTPUT_DELETE, "1", NULL));
	ck_assert(!add(&c, COALESCE_NET, PGOUTPUT_UPDATE, "1", "c")); /* row gone */
	ck_assert(!add(&c, COALESCE_NET, PGOUTPUT_DELETE, "1", NULL));
	coalesce_free(&c);
}
END_TEST

START_TEST(modes)
{
	coalesce_t c;
	tuple_t t = row("1", "a");
	pgf_error_t err;
	bool taken;

	coalesce_init(&c);
	ck_assert(!add(&c, COALESCE_NONE, PGOUTPUT_INSERT, "1", "a"));
	ck_assert(coalesce_empty(&c));
	/* append: inserts held in order, even of the same key; nothing else */
	ck_assert(add(&c, COALESCE_APPEND, PGOUTPUT_INSERT, "1", "a"));
	ck_assert(add(&c, COALESCE_APPEND, PGOUTPUT_INSERT, "1", "b"));
	ck_assert(!add(&c, COALESCE_APPEND, PGOUTPUT_UPDATE, "1", "c"));
	ck_assert(!add(&c, COALESCE_APPEND, PGOUTPUT_DELETE, "1", NULL));
	ck_assert_int_eq(held(&c), 2);
	ck_assert_int_eq(coalesce_row_write(coalesce_first(&c)), COALESCE_WRITE_INSERT);
	/* an update that changes the key is applied in order */
	ck_assert_int_eq(
	        coalesce_add(&c, COALESCE_NET, &rel, PGOUTPUT_UPDATE, true, &t, &taken, &err),
	        PGF_OK);
	ck_assert(!taken);
	coalesce_clear(&c);
	ck_assert(coalesce_empty(&c));
	ck_assert_int_eq(c.count, 0);
	ck_assert_int_eq(c.bytes, 0);
	coalesce_free(&c);
}
END_TEST

START_TEST(limits_stop_holding)
{
	coalesce_t c;
	char id[16];
	int i;

	coalesce_init(&c);
	for (i = 0; i < COALESCE_MAX_ROWS; i++) {
		snprintf(id, sizeof(id), "%d", i);
		ck_assert(add(&c, COALESCE_NET, PGOUTPUT_INSERT, id, "v"));
	}
	ck_assert(!add(&c, COALESCE_NET, PGOUTPUT_INSERT, "x", "v"));
	coalesce_free(&c);
}
END_TEST

Suite *coalesce_suite(void)
{
	Suite *s = suite_create("coalesce");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, insert_then_updates_is_one_insert);
	tcase_add_test(tc, update_then_delete_is_one_delete);
	tcase_add_test(tc, insert_then_delete_checks_absence);
	tcase_add_test(tc, unchanged_toast_keeps_held_value);
	tcase_add_test(tc, order_of_first_appearance);
	tcase_add_test(tc, impossible_sequences_are_not_taken);
	tcase_add_test(tc, modes);
	tcase_add_test(tc, limits_stop_holding);
	suite_add_tcase(s, tc);
	return s;
}
