/*
 * test_buf.c — byte buffer, JSON strings, UTF-8 checks and log lines.
 */
#include "pgferry/buf.h"
#include "pgferry/json_out.h"
#include "pgferry/log.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* s as a JSON string, written by json_out */
static const char *json(const char *s, size_t len)
{
	static buf_t b;
	json_t *j = json_out_text(s, len);

	buf_reset(&b);
	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(json_out_append(&b, j), PGF_OK);
	json_decref(j);
	return b.data;
}

START_TEST(json_escapes)
{
	ck_assert_str_eq(json("plain", 5), "\"plain\"");
	ck_assert_str_eq(json("a\"b\\c", 5), "\"a\\\"b\\\\c\"");
	ck_assert_str_eq(json("\n\t\r\x01", 4), "\"\\n\\t\\r\\u0001\"");
	ck_assert_str_eq(json("caf\xc3\xa9 \xe2\x82\xac", 9), "\"caf\xc3\xa9 \xe2\x82\xac\"");
	/* invalid UTF-8: U+FFFD, so the document stays valid */
	ck_assert_str_eq(json("\xff", 1), "\"\xef\xbf\xbd\"");
	ck_assert_str_eq(json("a\xc3", 2), "\"a\xef\xbf\xbd\"");
	ck_assert_str_eq(json("\0x", 2), "\"\\u0000x\"");
}
END_TEST

START_TEST(utf8_validation)
{
	ck_assert(utf8_valid("abc", 3));
	ck_assert(utf8_valid("\xf0\x9f\x98\x80", 4));
	ck_assert(!utf8_valid("\xc0\xaf", 2));         /* overlong */
	ck_assert(!utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
	ck_assert(!utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
	ck_assert(!utf8_valid("a\0b", 3));
	ck_assert(!utf8_valid("\xe2\x82", 2));
}
END_TEST

START_TEST(hex_and_ints)
{
	buf_t b;

	buf_init(&b);
	{
		json_t *j = json_out_hex("\x00\xab\xff", 3);
		json_out_append(&b, j);
		json_decref(j);
	}
	ck_assert_str_eq(b.data, "\"\\\\x00abff\"");
	buf_reset(&b);
	{
		json_t *j = json_array();
		json_array_append_new(j, json_out_number(NAN, 3));
		json_array_append_new(j, json_out_number(INFINITY, 0));
		json_array_append_new(j, json_out_number(0.1, 3));
		json_array_append_new(j, json_out_number(2.0, 3));
		json_array_append_new(j, json_out_number(1234.5, 0));
		json_out_append(&b, j);
		json_decref(j);
	}
	ck_assert_str_eq(b.data, "[null,null,0.1,2.0,1235]");
	buf_reset(&b);
	buf_append_be32(&b, 0x01020304);
	buf_append_be16(&b, 0x0506);
	buf_append_be64(&b, 0x0708090a0b0c0d0eULL);
	ck_assert_int_eq(b.len, 14);
	ck_assert_int_eq((unsigned char)b.data[0], 1);
	ck_assert_int_eq((unsigned char)b.data[13], 0x0e);
	buf_free(&b);
}
END_TEST

START_TEST(shrink)
{
	buf_t b;

	buf_init(&b);
	ck_assert(buf_reserve(&b, 1 << 20));
	buf_append_str(&b, "kept");
	buf_shrink(&b, 4096);
	ck_assert_uint_eq(b.cap, 4096);
	ck_assert_str_eq(b.data, "kept");
	/* never below what it holds */
	buf_shrink(&b, 2);
	ck_assert_uint_eq(b.cap, 5);
	buf_append_str(&b, " and more");
	ck_assert_str_eq(b.data, "kept and more");
	buf_free(&b);
}
END_TEST

START_TEST(log_json_line)
{
	char path[] = "/tmp/pgferry-log-XXXXXX";
	int fd = mkstemp(path);
	char line[1024] = "";
	pgf_error_t err;
	FILE *f;

	ck_assert_int_ge(fd, 0);
	log_set_fd(fd);
	log_configure(LOG_INFO, LOG_FORMAT_JSON, "test");
	log_debug("hidden");
	error_set(&err, PGF_E_IO, "cannot \"read\"");
	error_hint(&err, "try again");
	log_error_value(LOG_ERROR, &err);
	log_set_fd(2);
	log_configure(LOG_INFO, LOG_FORMAT_TEXT, "pgferry");
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
	fclose(f);
	close(fd);
	unlink(path);
	ck_assert_ptr_nonnull(strstr(line, "\"level\":\"ERROR\""));
	ck_assert_ptr_nonnull(strstr(line, "\"message\":\"cannot \\\"read\\\"\""));
	ck_assert_ptr_nonnull(strstr(line, "\"hint\":\"try again\""));
	ck_assert_ptr_null(strstr(line, "hidden"));
}
END_TEST

Suite *buf_suite(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("buf");

	tcase_add_test(tc, json_escapes);
	tcase_add_test(tc, utf8_validation);
	tcase_add_test(tc, hex_and_ints);
	tcase_add_test(tc, shrink);
	tcase_add_test(tc, log_json_line);
	suite_add_tcase(s, tc);
	return s;
}
