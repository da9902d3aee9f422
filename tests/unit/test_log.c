/*
 * test_log.c — passwords never reach a log line or a command line: the
 * masking of conninfo keywords and URI passwords, and the conninfo rewritten
 * without its password for child processes.
 */
#include "pgferry/log.h"
#include "pgferry/pgsession.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static void masked(const char *in, const char *want)
{
	char out[512];

	log_mask_secrets(in, out, sizeof(out));
	ck_assert_str_eq(out, want);
}

START_TEST(mask_keywords_and_uris)
{
	masked("host=h password=s3cret dbname=x", "host=h password=******** dbname=x");
	masked("host=h PASSWORD = 's3 c\\'ret' x", "host=h PASSWORD = '********' x");
	masked("sslpassword=k password=p", "sslpassword=******** password=********");
	masked("postgresql://u:s3cret@h:5432/db", "postgresql://u:********@h:5432/db");
	masked("postgres://u@h/db?password=s3cret&sslmode=require",
	       "postgres://u@h/db?password=********");
	masked("password authentication failed for user \"u\"",
	       "password authentication failed for user \"u\"");
	masked("password=", "password=");
	masked("no secret at all", "no secret at all");
}
END_TEST

START_TEST(blank_in_place)
{
	char arg[] = "primary_conninfo=host=h password=s3cret user=u";

	log_blank_secrets(arg);
	ck_assert_str_eq(arg, "primary_conninfo=host=h password=****** user=u");
}
END_TEST

START_TEST(conninfo_without_password)
{
	pgf_error_t err;
	char *pw = NULL;
	char *c = pgsession_conninfo_without_password("host=h password='a b\\'c' dbname=d", &pw,
	                                              &err);

	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(pw, "a b'c");
	ck_assert_ptr_null(strstr(c, "password"));
	ck_assert_ptr_nonnull(strstr(c, "host='h'"));
	ck_assert_ptr_nonnull(strstr(c, "dbname='d'"));
	free(c);
	free(pw);
	c = pgsession_conninfo_without_password("postgresql://u:p%40ss@h/d", &pw, &err);
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(pw, "p@ss");
	ck_assert_ptr_null(strstr(c, "p@ss"));
	ck_assert_ptr_nonnull(strstr(c, "user='u'"));
	free(c);
	free(pw);
	c = pgsession_conninfo_without_password("host=h", &pw, &err);
	ck_assert_ptr_null(pw);
	free(c);
	ck_assert_ptr_null(pgsession_conninfo_without_password("host='h", &pw, &err));
}
END_TEST

Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("secrets");

	tcase_add_test(tc, mask_keywords_and_uris);
	tcase_add_test(tc, blank_in_place);
	tcase_add_test(tc, conninfo_without_password);
	suite_add_tcase(s, tc);
	return s;
}
