/*
 * main.c — pgferry's entry point: picks the command and maps its result
 * to an exit code. Commands live in their own files (source.c, sink.c...).
 */
#include "pgferry/cli.h"
#include "pgferry/log.h"
#include "pgferry/version.h"

#include <stdio.h>
#include <string.h>
#include <zstd.h>
#include <openssl/opensslv.h>
#include <libpq-fe.h>

typedef struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} command_t;

static int cmd_version(int argc, char **argv);

static const command_t commands[] = {
        {"source", cmd_source, "run next to the primary: read the slot, ship batches to the sink"},
        {"sink", cmd_sink, "run next to the DR database: verify, apply, report lag and RPO"},
        {"lag", cmd_lag, "show the sink's lag and RPO report (--json, --watch)"},
        {"promote-check", cmd_promote_check, "ask the sink whether promoting now is safe"},
        {"decode", cmd_decode, "print a capture file as JSON Lines"},
        {"capture", cmd_capture, "record a live pgoutput stream into a capture file"},
        {"verify", cmd_verify, "compare the primary and the DR database table by table"},
        {"clone", cmd_clone, "build the DR copy from scratch, consistent with a new slot"},
        {"promote", cmd_promote, "fence the sink, drain, bump sequences, record the promotion"},
        {"version", cmd_version, "print the version and the library versions"},
};

static void print_help(FILE *out)
{
	size_t i;

	fprintf(out, "pgferry %s — a disaster-recovery copy of PostgreSQL with a true RPO.\n\n",
	        PGFERRY_VERSION);
	fprintf(out, "Usage: pgferry <command> [--config FILE] [-c key=value ...] [options]\n\n");
	fprintf(out, "Commands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nExit codes:\n"
	             "  0  success (promote-check: safe; verify: equal)\n"
	             "  1  a negative answer (promote-check: unsafe; verify: differ)\n"
	             "  2  an error or cannot tell (bad input or configuration, unreachable)\n");
	fprintf(out,
	        "\nConfiguration keys (postgresql.conf syntax in --config, or -c key=value):\n");
	config_print_keys(out, false);
}

static int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("pgferry %s (libpq %d, zstd %s, %s)\n", PGFERRY_VERSION, PQlibVersion(),
	       ZSTD_versionString(), OPENSSL_VERSION_TEXT);
	return 0;
}

int main(int argc, char **argv)
{
	size_t i;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		print_help(stdout);
		return argc < 2 ? EXIT_ERROR : 0;
	}
	if (strcmp(argv[1], "--version") == 0)
		return cmd_version(argc - 1, argv + 1);
	if (strcmp(argv[1], "--help-config-markdown") == 0) {
		config_print_keys(stdout, true);
		return 0;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "pgferry: unknown command \"%s\"\nTry \"pgferry --help\".\n", argv[1]);
	return EXIT_ERROR;
}
