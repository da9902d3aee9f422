/*
 * cli.h — the command line: shared option handling and the commands.
 *
 * pgferry <command> [--config FILE] [-c key=value ...] [command options]
 *
 * Exit codes, the same for every command:
 *   0  success (promote-check: safe; verify: equal)
 *   1  a negative answer (promote-check: unsafe; verify: differ)
 *   2  an error, or cannot tell (bad input, bad configuration, unreachable)
 */
#ifndef PGFERRY_CLI_H
#define PGFERRY_CLI_H

#include "pgferry/config.h"

#define EXIT_NEGATIVE 1
#define EXIT_ERROR    2

typedef struct cli {
	config_t cfg;
	int argc;    /* arguments left for the command, in order */
	char **argv; /* owned by cli (the array, not the strings) */
} cli_t;

/* Applies --config and -c options (file first, then -c, in order) and
 * collects the rest. Checks the required keys of role (0 = none). */
int cli_load(int argc, char **argv, int role, cli_t *cli, pgf_error_t *err);
void cli_free(cli_t *cli);
/* Sets up logging from cli->cfg for role_name. */
void cli_configure_logging(const cli_t *cli, const char *role_name);

/* Commands: argv[0] is the command name. Each returns an exit code. */
int cmd_source(int argc, char **argv);
int cmd_sink(int argc, char **argv);
int cmd_lag(int argc, char **argv);
int cmd_promote_check(int argc, char **argv);
int cmd_decode(int argc, char **argv);
int cmd_capture(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_clone(int argc, char **argv);
int cmd_promote(int argc, char **argv);
int cmd_replay(int argc, char **argv);

#endif
