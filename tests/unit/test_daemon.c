/*
 * test_daemon.c — the start-up both daemons share: the TLS policy
 * (plaintext only on loopback), the skewed clock, a malformed ping.
 */
#include "pgferry/config.h"
#include "pgferry/daemon.h"
#include "pgferry/error.h"
#include "pgferry/util.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(plaintext_only_on_loopback)
{
	config_t cfg;
	tls_context_t *tls = (tls_context_t *)&cfg; /* must be reset */
	pgf_error_t err;

	config_init(&cfg);
	cfg.tls = false;
	error_clear(&err);
	ck_assert_int_eq(
	        daemon_tls(&cfg, TLS_ROLE_CLIENT, "sink_address", "10.1.2.3:5433", &tls, &err),
	        PGF_ERR);
	ck_assert_ptr_null(tls);
	ck_assert_ptr_nonnull(strstr(err.message, "sink_address"));
	ck_assert_ptr_nonnull(strstr(err.message, "10.1.2.3:5433"));
	ck_assert_ptr_nonnull(strstr(err.hint, "certificates"));
	error_clear(&err);
	ck_assert_int_eq(
	        daemon_tls(&cfg, TLS_ROLE_SERVER, "listen_address", "127.0.0.1:5433", &tls, &err),
	        PGF_OK);
	ck_assert_ptr_null(tls);
	ck_assert_int_eq(
	        daemon_tls(&cfg, TLS_ROLE_SERVER, "listen_address", "[::1]:5433", &tls, &err),
	        PGF_OK);
	config_free(&cfg);
}
END_TEST

START_TEST(skewed_clock_and_bad_ping)
{
	config_t cfg;
	pgf_error_t err;
	const uint8_t junk[3] = {1, 2, 3};
	int64_t plain, skewed;

	config_init(&cfg);
	plain = daemon_clock_now(&cfg);
	cfg.test_clock_skew = 5000; /* ms */
	skewed = daemon_clock_now(&cfg);
	ck_assert_int_ge(skewed - plain, 5000000);
	ck_assert_int_lt(skewed - plain, 6000000);
	/* a ping too short to hold its time is refused before anything is sent */
	error_clear(&err);
	ck_assert_int_eq(daemon_answer_ping(NULL, &cfg, junk, sizeof(junk), &err), PGF_ERR);
	ck_assert(err.message[0] != '\0');
	config_free(&cfg);
}
END_TEST

Suite *daemon_suite(void)
{
	Suite *s = suite_create("daemon");
	TCase *tc = tcase_create("daemon");

	tcase_add_test(tc, plaintext_only_on_loopback);
	tcase_add_test(tc, skewed_clock_and_bad_ping);
	suite_add_tcase(s, tc);
	return s;
}
