/*
 * test_queue.c — the network-to-apply queue: order, byte accounting, close,
 * and the spool file for what passes the memory limit.
 */
#include "pgferry/queue.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void *producer(void *arg)
{
	queue_t *q = arg;
	int i;

	for (i = 0; i < 1000; i++) {
		queue_item_t *it = queue_item_new(QUEUE_RECORDS, (uint64_t)i);
		it->data = malloc(10);
		it->len = 10;
		queue_push(q, it);
	}
	return NULL;
}

START_TEST(order_across_threads)
{
	queue_t q;
	pthread_t t;
	uint64_t expect = 0;

	queue_init(&q);
	pthread_create(&t, NULL, producer, &q);
	while (expect < 1000) {
		queue_item_t *it = queue_pop(&q, 1000);
		if (it == NULL)
			continue;
		ck_assert_uint_eq(it->session, expect);
		expect++;
		queue_item_free(it);
	}
	pthread_join(t, NULL);
	ck_assert_uint_eq(queue_bytes(&q), 0);
	ck_assert(queue_empty(&q));
	queue_destroy(&q);
}
END_TEST

START_TEST(bytes_and_close)
{
	queue_t q;
	queue_item_t *it;

	queue_init(&q);
	ck_assert_ptr_null(queue_pop(&q, 0));
	it = queue_item_new(QUEUE_RECORDS, 1);
	it->data = malloc(100);
	it->len = 100;
	queue_push(&q, it);
	queue_push(&q, queue_item_new(QUEUE_SESSION_END, 1));
	ck_assert_uint_eq(queue_bytes(&q), 100);
	queue_close(&q);
	it = queue_pop(&q, 1000);
	ck_assert_int_eq(it->kind, QUEUE_RECORDS);
	queue_item_free(it);
	ck_assert_uint_eq(queue_bytes(&q), 0);
	/* closed: returns what is left without waiting, then NULL */
	it = queue_pop(&q, 100000);
	ck_assert_int_eq(it->kind, QUEUE_SESSION_END);
	queue_item_free(it);
	ck_assert_ptr_null(queue_pop(&q, 100000));
	queue_destroy(&q);
}
END_TEST

static queue_item_t *numbered(uint64_t i, size_t len)
{
	queue_item_t *it = queue_item_new(QUEUE_RECORDS, i);
	it->data = malloc(len);
	memset(it->data, (int)(i & 0xff), len);
	it->len = len;
	return it;
}

START_TEST(spool_beyond_memory)
{
	char dir[] = "/tmp/pgferry-queue-test.XXXXXX", path[64];
	queue_t q;
	uint64_t i;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/spool", dir);
	queue_init(&q);
	ck_assert_int_eq(queue_spool_open(&q, path, 1000), 0);
	ck_assert_int_ne(access(path, F_OK), 0); /* nameless: nothing left after a crash */
	for (int round = 0; round < 2; round++) {
		for (i = 0; i < 50; i++)
			queue_push(&q, numbered(i, 300));
		/* what fits in 1000 bytes of memory (data and headers) stays there;
		 * the rest, headers included, went to the spool */
		ck_assert_uint_eq(queue_bytes(&q),
		                  50 * 300 + q.spooled_items * sizeof(queue_item_t));
		ck_assert_uint_le(queue_memory_bytes(&q), 1000);
		ck_assert_uint_eq(queue_spooled_bytes(&q),
		                  q.spooled_items * (300 + sizeof(queue_item_t)));
		ck_assert_uint_eq(q.spooled_items,
		                  50 - queue_memory_bytes(&q) / (300 + sizeof(queue_item_t)));
		for (i = 0; i < 50; i++) {
			queue_item_t *it = queue_pop(&q, 0);
			ck_assert_ptr_nonnull(it);
			ck_assert_uint_eq(it->session, i);
			ck_assert_ptr_nonnull(it->data);
			ck_assert_uint_eq(it->len, 300);
			ck_assert_int_eq(it->data[0], (int)i);
			ck_assert_int_eq(it->data[299], (int)i);
			queue_item_free(it);
		}
		/* drained: the file starts over for the next round */
		ck_assert_uint_eq(queue_spooled_bytes(&q), 0);
		ck_assert_uint_eq(queue_memory_bytes(&q), 0);
	}
	queue_destroy(&q);
	rmdir(dir);
}
END_TEST

/* Many small batches: what is spooled costs no memory, so the read-ahead is
 * as deep as with large ones (it stopped after a few kB: each spooled
 * batch's header counted against the memory limit). */
START_TEST(small_items_spool_without_memory)
{
	char dir[] = "/tmp/pgferry-queue-test.XXXXXX", path[64];
	queue_t q;
	uint64_t i, n = 20000;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/spool", dir);
	queue_init(&q);
	ck_assert_int_eq(queue_spool_open(&q, path, 4096), 0);
	for (i = 0; i < n; i++)
		queue_push(&q, numbered(i, 100));
	ck_assert_uint_le(queue_memory_bytes(&q), 4096);
	ck_assert_uint_ge(queue_spooled_bytes(&q), n * 100 - 4096);
	ck_assert_uint_eq(queue_bytes(&q), n * 100 + q.spooled_items * sizeof(queue_item_t));
	for (i = 0; i < n; i++) {
		queue_item_t *it = queue_pop(&q, 0);
		ck_assert_ptr_nonnull(it);
		ck_assert_uint_eq(it->session, i);
		ck_assert_int_eq(it->data[99], (int)(i & 0xff));
		queue_item_free(it);
	}
	ck_assert(queue_empty(&q));
	ck_assert_uint_eq(queue_memory_bytes(&q), 0);
	queue_destroy(&q);
	rmdir(dir);
}
END_TEST

/* What the spool holds on disk counts against spool_disk_limit whole: the
 * items' headers as well as their data (before, only the data counted, so
 * small batches took about 3.5 times spool_disk_limit). */
START_TEST(spool_counts_headers)
{
	char dir[] = "/tmp/pgferry-queue-test.XXXXXX", path[64];
	struct stat st;
	queue_t q;
	uint64_t i, n = 2000;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/spool", dir);
	queue_init(&q);
	ck_assert_int_eq(queue_spool_open(&q, path, 4096), 0);
	for (i = 0; i < n; i++)
		queue_push(&q, numbered(i, 100));
	ck_assert_int_eq(fstat(q.spool_fd, &st), 0);
	ck_assert_uint_eq(queue_spooled_bytes(&q), (size_t)st.st_size);
	ck_assert_uint_ge(queue_bytes(&q), (size_t)st.st_size);
	for (i = 0; i < n; i++)
		queue_item_free(queue_pop(&q, 0));
	ck_assert_uint_eq(queue_spooled_bytes(&q), 0);
	ck_assert_uint_eq(queue_bytes(&q), 0);
	queue_destroy(&q);
	rmdir(dir);
}
END_TEST

/* A spool that can no longer be written: later items wait in memory behind
 * what is spooled, and come out in order. */
START_TEST(order_when_spool_write_fails)
{
	char dir[] = "/tmp/pgferry-queue-test.XXXXXX", path[64], self[64];
	queue_notice_t n;
	queue_t q;
	uint64_t i;
	int ro;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/spool", dir);
	queue_init(&q);
	ck_assert_int_eq(queue_spool_open(&q, path, 1000), 0);
	for (i = 0; i < 20; i++)
		queue_push(&q, numbered(i, 300));
	/* the same (nameless) file, read-only from now on */
	snprintf(self, sizeof(self), "/proc/self/fd/%d", q.spool_fd);
	ro = open(self, O_RDONLY);
	ck_assert_int_ge(ro, 0);
	close(q.spool_fd);
	q.spool_fd = ro;
	for (; i < 40; i++)
		queue_push(&q, numbered(i, 300));
	ck_assert_uint_eq(queue_bytes(&q), 40 * 300 + q.spooled_items * sizeof(queue_item_t));
	for (i = 0; i < 40; i++) {
		queue_item_t *it = queue_pop(&q, 0);
		ck_assert_ptr_nonnull(it);
		ck_assert_uint_eq(it->session, i);
		ck_assert_ptr_nonnull(it->data);
		queue_item_free(it);
	}
	ck_assert(queue_empty(&q));
	/* the queue logs nothing: the loop takes what failed, in order */
	ck_assert(queue_take_notice(&q, &n));
	ck_assert_int_eq(n.level, LOG_ERROR);
	ck_assert_ptr_nonnull(strstr(n.text, "could not write to the receive spool"));
	ck_assert(queue_take_notice(&q, &n));
	ck_assert_int_eq(n.level, LOG_WARNING);
	ck_assert_ptr_nonnull(strstr(n.text, "could not truncate the receive spool"));
	ck_assert(!queue_take_notice(&q, &n));
	queue_destroy(&q);
	rmdir(dir);
}
END_TEST

/* Notices wait for the loop; beyond QUEUE_NOTICES the newest are dropped,
 * and the next one taken says how many were. */
START_TEST(notices_bounded)
{
	char dir[] = "/tmp/pgferry-queue-test.XXXXXX", path[64];
	queue_notice_t n;
	queue_t q;
	int i;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/spool", dir);
	queue_init(&q);
	ck_assert_int_eq(queue_spool_open(&q, path, 0), 0);
	close(q.spool_fd);
	q.spool_fd = 1000; /* every write fails: a notice each time the spool is tried */
	for (i = 0; i < QUEUE_NOTICES + 3; i++) {
		q.spool_failed = false;
		queue_push(&q, numbered((uint64_t)i, 10));
	}
	ck_assert(queue_take_notice(&q, &n));
	ck_assert_ptr_nonnull(strstr(n.text, "and 3 later notices"));
	for (i = 1; i < QUEUE_NOTICES; i++) {
		ck_assert(queue_take_notice(&q, &n));
		ck_assert_ptr_null(strstr(n.text, "later notices"));
	}
	ck_assert(!queue_take_notice(&q, &n));
	q.spool_fd = -1;
	queue_destroy(&q);
	rmdir(dir);
}
END_TEST

/* A QUEUE_RECORDS item as the network thread makes it: raw bytes "xxCxy",
 * a keepalive, and a message at offset 2 of them. */
static queue_item_t *two_records(uint64_t commit_lsn)
{
	queue_item_t *it = queue_item_new(QUEUE_RECORDS, 1);
	uint8_t *data = malloc(queue_records_size(5, 2));
	queue_record_t *r;

	memcpy(data, "xxCxy", 5);
	r = queue_item_set_records(it, data, 5, 2);
	r[0].kind = 'k';
	r[0].wal_end = 0x600;
	r[1].kind = 'w';
	r[1].wal_start = 0x480;
	r[1].offset = 2;
	r[1].len = 3;
	it->commit_lsn = commit_lsn;
	return it;
}

/* What the network thread found travels with the item, behind the raw
 * records (checked against the item's size), in memory and through the
 * spool; the newest whole transaction is known to the queue as soon as the
 * item is pushed. */
START_TEST(records_and_received_commit)
{
	char dir[] = "/tmp/pgferry-queue-test.XXXXXX", path[64];
	queue_t q;
	queue_item_t *it;
	const queue_record_t *recs;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/spool", dir);
	queue_init(&q);
	ck_assert_uint_eq(queue_received_commit(&q), 0);
	ck_assert_uint_eq(queue_records_size(5, 2), 8 + 2 * sizeof(queue_record_t));
	queue_push(&q, two_records(0x500));
	ck_assert_uint_eq(queue_received_commit(&q), 0x500);
	it = queue_pop(&q, 0);
	ck_assert(queue_item_records(it, &recs));
	ck_assert_int_eq(recs[0].kind, 'k');
	ck_assert_uint_eq(recs[0].wal_end, 0x600);
	ck_assert_uint_eq(recs[1].wal_start, 0x480);
	ck_assert_mem_eq(queue_record_message(it, &recs[1]), "Cxy", 3);
	/* a message past the raw bytes, or records past the data, are refused */
	((queue_record_t *)(it->data + 8))[1].len = 7;
	ck_assert(!queue_item_records(it, &recs));
	((queue_record_t *)(it->data + 8))[1].len = 3;
	it->nrecords = 9;
	ck_assert(!queue_item_records(it, &recs));
	it->nrecords = 2;
	it->len--; /* the facts would start unaligned */
	ck_assert(!queue_item_records(it, &recs));
	queue_item_free(it);
	/* an older commit does not move it back; the facts come back from the
	 * spool as they went in */
	ck_assert_int_eq(queue_spool_open(&q, path, 0), 0);
	queue_push(&q, two_records(0x400));
	ck_assert_uint_eq(queue_received_commit(&q), 0x500);
	ck_assert_uint_gt(queue_spooled_bytes(&q), 0);
	it = queue_pop(&q, 0);
	ck_assert(queue_item_records(it, &recs));
	ck_assert_uint_eq(recs[1].wal_start, 0x480);
	ck_assert_mem_eq(queue_record_message(it, &recs[1]), "Cxy", 3);
	queue_item_free(it);
	queue_destroy(&q);
	rmdir(dir);
}
END_TEST

/* The primary's flush position is per session: another session's is no
 * bound at all, and an older figure does not move it back. */
START_TEST(primary_flush_per_session)
{
	queue_t q;

	queue_init(&q);
	ck_assert_uint_eq(queue_primary_flush(&q, 0), 0);
	queue_set_primary_flush(&q, 1, 0x100);
	ck_assert_uint_eq(queue_primary_flush(&q, 1), 0x100);
	ck_assert_uint_eq(queue_primary_flush(&q, 2), 0);
	queue_set_primary_flush(&q, 1, 0x80);
	ck_assert_uint_eq(queue_primary_flush(&q, 1), 0x100);
	queue_set_primary_flush(&q, 2, 0x50);
	ck_assert_uint_eq(queue_primary_flush(&q, 2), 0x50);
	ck_assert_uint_eq(queue_primary_flush(&q, 1), 0);
	queue_destroy(&q);
}
END_TEST

Suite *queue_suite(void)
{
	Suite *s = suite_create("queue");
	TCase *tc = tcase_create("queue");

	tcase_add_test(tc, order_across_threads);
	tcase_add_test(tc, records_and_received_commit);
	tcase_add_test(tc, primary_flush_per_session);
	tcase_add_test(tc, bytes_and_close);
	tcase_add_test(tc, spool_beyond_memory);
	tcase_add_test(tc, small_items_spool_without_memory);
	tcase_add_test(tc, spool_counts_headers);
	tcase_add_test(tc, order_when_spool_write_fails);
	tcase_add_test(tc, notices_bounded);
	suite_add_tcase(s, tc);
	return s;
}
