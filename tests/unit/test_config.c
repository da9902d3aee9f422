/*
 * test_config.c — the configuration parser: bad input first.
 */
#include "pgferry/config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static config_t cfg;
static pgf_error_t err;

static void setup(void)
{
	config_init(&cfg);
	memset(&err, 0, sizeof(err));
}

static void teardown(void)
{
	config_free(&cfg);
}

static int load(const char *text)
{
	return config_load_text(&cfg, text, strlen(text), "t.conf", &err);
}

START_TEST(unknown_key_names_key_and_line)
{
	ck_assert_int_eq(load("# c\nslot_name = a\nslot_nmae = b\n"), PGF_ERR);
	ck_assert_int_eq(err.code, PGF_E_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.message, "slot_nmae"));
	ck_assert_str_eq(err.where, "t.conf:3");
}
END_TEST

START_TEST(unterminated_quote)
{
	ck_assert_int_eq(load("\n\nprimary_conninfo = 'host=x\nslot_name = y\n"), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "unterminated"));
	ck_assert_ptr_nonnull(strstr(err.message, "primary_conninfo"));
	ck_assert_str_eq(err.where, "t.conf:3");
	ck_assert_int_eq(load("slot_name = 'abc"), PGF_ERR);
}
END_TEST

START_TEST(bad_values)
{
	ck_assert_int_eq(load("batch_max_delay = 5 parsecs\n"), PGF_ERR);
	ck_assert_int_eq(load("batch_max_delay = 5\n"), PGF_ERR);
	ck_assert_int_eq(load("batch_max_delay = 5parsecs\n"), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "batch_max_delay"));
	ck_assert_int_eq(load("tls = maybe\n"), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "Boolean"));
	ck_assert_int_eq(load("log_level = loud\n"), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.hint, "debug"));
	ck_assert_int_eq(load("compression_level = 99\n"), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "out of range"));
	ck_assert_int_eq(load("compression_level = 3x\n"), PGF_ERR);
	ck_assert_int_eq(load("compression_level = \n"), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "no value"));
	ck_assert_int_eq(load("max_frame_bytes = 99999999999999999999999GB\n"), PGF_ERR);
	ck_assert_int_eq(load("max_frame_bytes = 100000000000TB\n"), PGF_ERR);
	ck_assert_int_eq(load("= 3\n"), PGF_ERR);
	ck_assert_int_eq(load("slot_name = a b\n"), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "after the value"));
}
END_TEST

START_TEST(syntax_errors_say_where)
{
	char name[200];

	ck_assert_int_eq(load("slot_name = a\n\n  = 3\n"), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "expected a parameter name"));
	ck_assert_str_eq(err.where, "t.conf:3");
	memset(name, 'k', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	ck_assert_int_eq(load(name), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "too long"));
	ck_assert_int_eq(load("slot_name = 'it''s'  x\n"), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "after the value of \"slot_name\""));
	ck_assert_int_eq(load("slot_name = ''\npublication = 'p''q'\n"), PGF_OK);
	ck_assert_str_eq(cfg.slot_name, "");
	ck_assert_str_eq(cfg.publication, "p'q");
}
END_TEST

START_TEST(good_values_and_units)
{
	ck_assert_int_eq(load("batch_max_delay = 7ms  # why\n"
	                      "heartbeat_interval 2s\n"
	                      "source_timeout='1min'\n"
	                      "max_rpo = '1 h'\n"
	                      "batch_max_bytes = 2MB\n"
	                      "max_frame_bytes = 1GB\n"
	                      "spool_memory_limit = 4096kB\n"
	                      "tls = off\n"
	                      "replicate_ddl = TRUE\n"
	                      "log_format = json\n"
	                      "lag_history_retention = 2d\n"
	                      "slot_name = 'it''s # not a comment'\n"
	                      "primary_conninfo = ''\n"),
	                 PGF_OK);
	ck_assert_int_eq(cfg.batch_max_delay, 7);
	ck_assert_int_eq(cfg.heartbeat_interval, 2000);
	ck_assert_int_eq(cfg.source_timeout, 60000);
	ck_assert_int_eq(cfg.max_rpo, 3600000);
	ck_assert_int_eq(cfg.batch_max_bytes, 2 << 20);
	ck_assert_int_eq(cfg.max_frame_bytes, 1LL << 30);
	ck_assert_int_eq(cfg.spool_memory_limit, 4 << 20);
	ck_assert(!cfg.tls);
	ck_assert(cfg.replicate_ddl);
	ck_assert_int_eq(cfg.log_format, 1);
	ck_assert_int_eq(cfg.lag_history_retention, 2 * 86400000LL);
	ck_assert_str_eq(cfg.slot_name, "it's # not a comment");
	ck_assert_str_eq(cfg.primary_conninfo, "");
}
END_TEST

START_TEST(defaults)
{
	ck_assert_str_eq(cfg.slot_name, "pgferry");
	ck_assert_str_eq(cfg.publication, "pgferry");
	ck_assert_int_eq(cfg.batch_max_bytes, 1 << 20);
	ck_assert_int_eq(cfg.batch_max_delay, 5);
	ck_assert_int_eq(cfg.heartbeat_interval, 100);
	ck_assert_int_eq(cfg.max_frame_bytes, 64 << 20);
	ck_assert_int_eq(cfg.compression_level, 1);
	ck_assert(cfg.batch_scheduling);
	ck_assert(cfg.tls);
	ck_assert_ptr_null(cfg.primary_conninfo);
}
END_TEST

START_TEST(option_overrides)
{
	ck_assert_int_eq(config_set_option(&cfg, "slot_name=x", &err), PGF_OK);
	ck_assert_str_eq(cfg.slot_name, "x");
	ck_assert_int_eq(config_set_option(&cfg, "heartbeat_interval = 250ms", &err), PGF_OK);
	ck_assert_int_eq(cfg.heartbeat_interval, 250);
	ck_assert_int_eq(config_set_option(&cfg, "slot_name", &err), PGF_ERR);
	ck_assert_int_eq(config_set_option(&cfg, "=x", &err), PGF_ERR);
	ck_assert_int_eq(config_set_option(&cfg, "nosuch=1", &err), PGF_ERR);
	ck_assert_str_eq(err.where, "-c");
	ck_assert_int_eq(config_set_option(&cfg, "test_clock_skew=-250ms", &err), PGF_OK);
	ck_assert_int_eq(cfg.test_clock_skew, -250);
}
END_TEST

START_TEST(check_required)
{
	ck_assert_int_eq(config_check(&cfg, ROLE_SOURCE, &err), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "primary_conninfo"));
	ck_assert_int_eq(load("primary_conninfo='dbname=x'\nsink_address='h:1'\n"), PGF_OK);
	ck_assert_int_eq(config_check(&cfg, ROLE_SOURCE, &err), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "tls"));
	ck_assert_int_eq(load("tls=off\n"), PGF_OK);
	ck_assert_int_eq(config_check(&cfg, ROLE_SOURCE, &err), PGF_OK);
	ck_assert_int_eq(load("batch_max_bytes=40MB\n"), PGF_OK);
	ck_assert_int_eq(config_check(&cfg, ROLE_SOURCE, &err), PGF_ERR);
}
END_TEST

START_TEST(sink_requires_peer_name)
{
	ck_assert_int_eq(load("dr_conninfo='dbname=x'\nwork_dir='/tmp'\ntls_ca=a\ntls_cert=b\n"
	                      "tls_key=c\n"),
	                 PGF_OK);
	ck_assert_int_eq(config_check(&cfg, ROLE_SINK, &err), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "tls_peer_name"));
	ck_assert_int_eq(load("tls_peer_name=''\n"), PGF_OK);
	ck_assert_int_eq(config_check(&cfg, ROLE_SINK, &err), PGF_ERR);
	ck_assert_int_eq(load("tls_peer_name=pgferry-source\n"), PGF_OK);
	ck_assert_int_eq(config_check(&cfg, ROLE_SINK, &err), PGF_OK);
	ck_assert_int_eq(load("tls_peer_name=''\ntls=off\n"), PGF_OK);
	ck_assert_int_eq(config_check(&cfg, ROLE_SINK, &err), PGF_OK);
}
END_TEST

START_TEST(file_errors)
{
	char path[] = "/tmp/pgferry-test-XXXXXX";
	int fd = mkstemp(path);
	FILE *f;

	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	fputs("slot_name = ok\n\nlog_level = shouting\n", f);
	fclose(f);
	ck_assert_int_eq(config_load_file(&cfg, path, &err), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.where, ":3"));
	ck_assert_ptr_nonnull(strstr(err.where, path));
	unlink(path);
	ck_assert_int_eq(config_load_file(&cfg, "/nonexistent/pgferry.conf", &err), PGF_ERR);
	ck_assert_ptr_nonnull(strstr(err.message, "could not open"));
}
END_TEST

START_TEST(parsers)
{
	int64_t v;
	bool b;

	/* a number without a unit could be ms or s: refused, except 0 */
	ck_assert_int_eq(config_parse_duration("15", &v), PGF_ERR);
	ck_assert_int_eq(config_parse_duration("0", &v), PGF_OK);
	ck_assert_int_eq(v, 0);
	ck_assert_int_eq(config_parse_duration("15ms", &v), PGF_OK);
	ck_assert_int_eq(v, 15);
	ck_assert_int_eq(config_parse_duration("5s", &v), PGF_OK);
	ck_assert_int_eq(v, 5000);
	ck_assert_int_eq(config_parse_duration("ms", &v), PGF_ERR);
	ck_assert_int_eq(config_parse_duration("", &v), PGF_ERR);
	ck_assert_int_eq(config_parse_duration("1.5s", &v), PGF_ERR);
	ck_assert_int_eq(config_parse_size("64MB", &v), PGF_OK);
	ck_assert_int_eq(v, 64 << 20);
	ck_assert_int_eq(config_parse_size("64mb", &v), PGF_ERR);
	ck_assert_int_eq(config_parse_bool("On", &b), PGF_OK);
	ck_assert(b);
	ck_assert_int_eq(config_parse_bool("nope", &b), PGF_ERR);
}
END_TEST

Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, unknown_key_names_key_and_line);
	tcase_add_test(tc, unterminated_quote);
	tcase_add_test(tc, bad_values);
	tcase_add_test(tc, syntax_errors_say_where);
	tcase_add_test(tc, good_values_and_units);
	tcase_add_test(tc, defaults);
	tcase_add_test(tc, option_overrides);
	tcase_add_test(tc, check_required);
	tcase_add_test(tc, sink_requires_peer_name);
	tcase_add_test(tc, file_errors);
	tcase_add_test(tc, parsers);
	suite_add_tcase(s, tc);
	return s;
}
