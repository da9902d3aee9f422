/*
 * cli.h — the command line: shared option handling and the commands.
 *
 * pgferry <command> [--config FILE] [-c key=value ...] [command options]
 *
 * Exit codes, the same for every command:
 *   0  success (promote-check: safe; verify: equal; check: all ok)
 *   1  a negative answer (promote-check: unsafe; verify: differ; check: warnings)
 *   2  an error, or cannot tell (bad input, bad configuration, unreachable;
 *      check: errors)
 */
#ifndef PGFERRY_CLI_H
#define PGFERRY_CLI_H

#include "pgferry/config.h"

#include <stdbool.h>
#include <stdio.h>

#define EXIT_NEGATIVE 1
#define EXIT_ERROR    2

typedef struct cli {
	config_t cfg;
	int argc;    /* arguments left for the command, in order */
	char **argv; /* owned by cli (the array, not the strings) */
	/* what cli_load read, for a reload (SIGHUP): the file and copies of
	 * the -c options, which win over it again. Owned by cli. */
	char *config_file;
	char **options;
	int noptions;
} cli_t;

/* One option of a command, for its usage, the man page and the check of
 * the command line. */
typedef struct cli_option {
	const char *name;    /* "--url" */
	const char *alias;   /* "-d", or NULL */
	const char *value;   /* name of its value ("URL"), NULL when it takes none */
	bool value_optional; /* the value is taken only when the next word is no option */
	const char *help;
} cli_option_t;

/* A command: what --help, the man page and main know of it. */
typedef struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
	const char *operands;        /* "FILE" when it takes words that are no option, else NULL */
	bool uses_config;            /* takes --config FILE and -c key=value */
	bool hidden;                 /* left out of --help (tools for the build) */
	const cli_option_t *options; /* ends with a {NULL} entry */
	const char *description;     /* a paragraph for the man page, may be NULL */
} cli_command_t;

/* One exit code and what it means, for --help and the man page. */
typedef struct cli_exit_code {
	int code;
	const char *meaning;
} cli_exit_code_t;

/* Writes the manual page pgferry(1) in roff from the tables --help prints:
 * the commands and their options, the configuration keys, the exit codes. */
void manpage_write(FILE *out, const cli_command_t *commands, size_t ncommands,
                   const cli_exit_code_t *codes, size_t ncodes);

/* What cli_check_args found. */
enum { CLI_ARGS_RUN = 0, CLI_ARGS_HELP = 1, CLI_ARGS_BAD = 2 };

/* Checks a command line (argv[0] is the command name) against cmd before
 * the command starts: CLI_ARGS_HELP when --help or -h is on it (anywhere
 * but as an option's value), CLI_ARGS_BAD with err naming the first
 * unknown option, an option without its value or an unexpected word. */
int cli_check_args(const cli_command_t *cmd, int argc, char **argv, pgf_error_t *err);
/* "Usage: pgferry CMD ..." and one line per option. */
void cli_print_usage(FILE *out, const cli_command_t *cmd);

/* --config and -c, which every command with uses_config takes. */
const cli_option_t *cli_config_options(void);

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
int cmd_drill(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_events(int argc, char **argv);

#endif
