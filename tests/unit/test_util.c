/*
 * test_util.c — byte order, the I/O loops, the clocks and the integer parser
 * of util.
 */
#include "pgferry/buf.h"
#include "pgferry/byteorder.h"
#include "pgferry/decoder.h"
#include "pgferry/error.h"
#include "pgferry/util.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

START_TEST(big_endian)
{
	uint8_t b[9] = {0};
	buf_t out;

	be16_write(b + 1, 0x0102);
	ck_assert(b[1] == 0x01 && b[2] == 0x02);
	ck_assert_uint_eq(be16_read(b + 1), 0x0102);
	be32_write(b + 1, 0x01020304u); /* unaligned on purpose */
	ck_assert(b[1] == 1 && b[2] == 2 && b[3] == 3 && b[4] == 4);
	ck_assert_uint_eq(be32_read(b + 1), 0x01020304u);
	be64_write(b + 1, UINT64_C(0x0102030405060708));
	ck_assert(b[1] == 1 && b[8] == 8);
	ck_assert(be64_read(b + 1) == UINT64_C(0x0102030405060708));
	ck_assert(be64_read((const uint8_t *)"\xff\xff\xff\xff\xff\xff\xff\xfe") ==
	          UINT64_C(0xfffffffffffffffe));

	/* the buffer appends agree with the readers */
	buf_init(&out);
	buf_append_be16(&out, 0xbeef);
	buf_append_be32(&out, 0xdeadbeefu);
	buf_append_be64(&out, UINT64_C(0x1122334455667788));
	ck_assert_uint_eq(out.len, 14);
	ck_assert_uint_eq(be16_read((const uint8_t *)out.data), 0xbeef);
	ck_assert_uint_eq(be32_read((const uint8_t *)out.data + 2), 0xdeadbeefu);
	ck_assert(be64_read((const uint8_t *)out.data + 6) == UINT64_C(0x1122334455667788));
	buf_free(&out);
}
END_TEST

/* Only what int2out, int4out and int8out write is taken, up to each
 * type's limits (the sink writes those values in binary form). */
START_TEST(parse_int)
{
	static const struct {
		const char *s;
		int bytes;
		bool ok;
		int64_t v;
	} cases[] = {
	        {"0", 4, true, 0},
	        {"7", 2, true, 7},
	        {"-1", 4, true, -1},
	        {"32767", 2, true, 32767},
	        {"-32768", 2, true, -32768},
	        {"32768", 2, false, 0},
	        {"-32769", 2, false, 0},
	        {"2147483647", 4, true, 2147483647},
	        {"-2147483648", 4, true, -2147483647 - 1},
	        {"2147483648", 4, false, 0},
	        {"9223372036854775807", 8, true, INT64_MAX},
	        {"-9223372036854775808", 8, true, INT64_MIN},
	        {"9223372036854775808", 8, false, 0},
	        {"-9223372036854775809", 8, false, 0},
	        {"99999999999999999999", 8, false, 0},
	        {"", 4, false, 0},
	        {"-", 4, false, 0},
	        {"-0", 4, false, 0},
	        {"00", 4, false, 0},
	        {"01", 4, false, 0},
	        {"+1", 4, false, 0},
	        {" 1", 4, false, 0},
	        {"1 ", 4, false, 0},
	        {"1.0", 4, false, 0},
	        {"1e3", 4, false, 0},
	        {"--1", 4, false, 0},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t v = 12345;
		bool ok = util_parse_int(cases[i].s, strlen(cases[i].s), cases[i].bytes, &v);
		ck_assert_msg(ok == cases[i].ok, "\"%s\" as %d bytes: %s", cases[i].s,
		              cases[i].bytes, ok ? "taken" : "refused");
		if (ok)
			ck_assert_msg(v == cases[i].v, "\"%s\" read as %lld", cases[i].s,
			              (long long)v);
	}
	/* the length bounds the text: what follows is not read */
	{
		int64_t v = 0;
		ck_assert(util_parse_int("123x", 3, 4, &v) && v == 123);
	}
}
END_TEST

START_TEST(io_loops)
{
	char path[] = "/tmp/pgferry-test-util-XXXXXX";
	char back[16] = {0};
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(util_write_all(fd, "hello, ", 7), PGF_OK);
	ck_assert_int_eq(util_pwrite_all(fd, "world", 5, 7), PGF_OK);
	ck_assert_int_eq(util_pread_all(fd, back, 12, 0), PGF_OK);
	ck_assert_str_eq(back, "hello, world");
	/* past the end of the file: an error, not a short read */
	errno = 0;
	ck_assert_int_eq(util_pread_all(fd, back, 4, 10), PGF_ERR);
	ck_assert_int_eq(errno, EIO);
	close(fd);
	ck_assert_int_eq(util_write_all(fd, "x", 1), PGF_ERR);
	ck_assert_int_eq(errno, EBADF);
}
END_TEST

START_TEST(clocks)
{
	int64_t m0 = util_monotonic_us(), m1;
	double s0 = util_monotonic_s();
	int64_t wall = util_realtime_us(), pg = pgtime_now();

	util_sleep_ms(20);
	m1 = util_monotonic_us();
	ck_assert_int_ge(m1 - m0, 20000);
	ck_assert(util_monotonic_s() - s0 >= 0.02);
	/* pgtime counts from 2000-01-01: the same instant, 30 years apart */
	ck_assert_int_lt(llabs((long long)(pgtime_to_unix_us(pg) - wall)), 5000000);
	ck_assert_int_gt(wall, INT64_C(1600000000000000));
}
END_TEST

Suite *util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("util");

	tcase_add_test(tc, big_endian);
	tcase_add_test(tc, io_loops);
	tcase_add_test(tc, parse_int);
	tcase_add_test(tc, clocks);
	suite_add_tcase(s, tc);
	return s;
}
