/*
 * test_cli.c — the check of a command line before the command starts:
 * --help wins, an unknown option or a missing value is named.
 */
#include "pgferry/cli.h"

#include <check.h>
#include <stdarg.h>
#include <string.h>

static int run_nothing(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static const cli_option_t opts[] = {
        {"--url", NULL, "URL", false, "u"},       {"--json", NULL, NULL, false, "j"},
        {"--watch", NULL, "INTERVAL", true, "w"}, {"--output", "-o", "FILE", false, "o"},
        {NULL, NULL, NULL, false, NULL},
};
static const cli_command_t cmd = {"lag", run_nothing, "s", NULL, true, false, opts, NULL};
static const cli_command_t with_file = {"decode", run_nothing, "s",  "FILE",
                                        false,    false,       opts, NULL};

static pgf_error_t err;

/* cli_check_args on the words given, up to a NULL */
static int check_words(const cli_command_t *c, ...)
{
	char *argv[16];
	int argc = 0;
	va_list ap;

	va_start(ap, c);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	return cli_check_args(c, argc, argv, &err);
}
#define CHECK(c, ...) check_words(&(c), __VA_ARGS__, (char *)NULL)

START_TEST(help_anywhere_but_as_a_value)
{
	ck_assert_int_eq(CHECK(cmd, "lag", "--help"), CLI_ARGS_HELP);
	ck_assert_int_eq(CHECK(cmd, "lag", "--config", "x.conf", "-h"), CLI_ARGS_HELP);
	/* a typo before --help does not hide the help */
	ck_assert_int_eq(CHECK(cmd, "lag", "--bogus", "--help"), CLI_ARGS_HELP);
	/* the value of an option is not an option */
	ck_assert_int_eq(CHECK(cmd, "lag", "--url", "--help"), CLI_ARGS_RUN);
	ck_assert_int_eq(CHECK(cmd, "lag", "-c", "--help"), CLI_ARGS_RUN);
}
END_TEST

START_TEST(unknown_option_named)
{
	ck_assert_int_eq(CHECK(cmd, "lag", "--json", "--jsno"), CLI_ARGS_BAD);
	ck_assert_ptr_nonnull(strstr(err.message, "\"--jsno\""));
	ck_assert_ptr_nonnull(strstr(err.hint, "pgferry lag --help"));
	/* the first of two is named */
	ck_assert_int_eq(CHECK(cmd, "lag", "-x", "--y"), CLI_ARGS_BAD);
	ck_assert_ptr_nonnull(strstr(err.message, "\"-x\""));
	/* a command without --config does not take it */
	ck_assert_int_eq(CHECK(with_file, "decode", "--config", "f", "in"), CLI_ARGS_BAD);
	ck_assert_ptr_nonnull(strstr(err.message, "--config"));
}
END_TEST

START_TEST(values)
{
	ck_assert_int_eq(CHECK(cmd, "lag", "--url"), CLI_ARGS_BAD);
	ck_assert_ptr_nonnull(strstr(err.message, "--url needs a value (URL)"));
	ck_assert_int_eq(CHECK(cmd, "lag", "-c"), CLI_ARGS_BAD);
	ck_assert_int_eq(CHECK(cmd, "lag", "-f"), CLI_ARGS_BAD);
	ck_assert_int_eq(CHECK(cmd, "lag", "-o", "-"), CLI_ARGS_RUN);
	ck_assert_int_eq(CHECK(cmd, "lag", "-clog_level=debug", "--config=a", "--url", "u"),
	                 CLI_ARGS_RUN);
	/* an optional value is taken when it is no option */
	ck_assert_int_eq(CHECK(cmd, "lag", "--watch", "5", "--json"), CLI_ARGS_RUN);
	ck_assert_int_eq(CHECK(cmd, "lag", "--watch", "--json"), CLI_ARGS_RUN);
	ck_assert_int_eq(CHECK(cmd, "lag", "--watch"), CLI_ARGS_RUN);
}
END_TEST

START_TEST(operands)
{
	ck_assert_int_eq(CHECK(cmd, "lag", "stray"), CLI_ARGS_BAD);
	ck_assert_ptr_nonnull(strstr(err.message, "unexpected argument \"stray\""));
	ck_assert_int_eq(CHECK(with_file, "decode", "in.cap"), CLI_ARGS_RUN);
	ck_assert_int_eq(CHECK(with_file, "decode", "-"), CLI_ARGS_RUN);
}
END_TEST

Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("cli");

	tcase_add_test(tc, help_anywhere_but_as_a_value);
	tcase_add_test(tc, unknown_option_named);
	tcase_add_test(tc, values);
	tcase_add_test(tc, operands);
	suite_add_tcase(s, tc);
	return s;
}
