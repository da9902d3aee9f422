/*
 * unit_main.c — runs every unit suite. Suites are listed in the generated
 * unit_suites.h (one per tests/unit/test_NAME.c, defining NAME_suite()).
 * An optional argument runs only the suite of that name.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#define SUITE(name) Suite *name##_suite(void);
#include "unit_suites.h"
#undef SUITE

typedef struct {
	const char *name;
	Suite *(*make)(void);
} suite_entry_t;

static const suite_entry_t suites[] = {
#define SUITE(name) {#name, name##_suite},
#include "unit_suites.h"
#undef SUITE
};

int main(int argc, char **argv)
{
	SRunner *runner = NULL;
	size_t i;
	int failed;

	for (i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
		if (argc > 1 && strcmp(argv[1], suites[i].name) != 0)
			continue;
		if (runner == NULL)
			runner = srunner_create(suites[i].make());
		else
			srunner_add_suite(runner, suites[i].make());
	}
	if (runner == NULL)
		return 2;
	srunner_run_all(runner, CK_NORMAL);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
