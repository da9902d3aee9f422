/*
 * main.c — pgferry's entry point: picks the command and maps its result
 * to an exit code. Commands live in their own files (source.c, sink.c...).
 */
#include "pgferry/build_info.h"
#include "pgferry/cli.h"
#include "pgferry/log.h"
#include "pgferry/version.h"

#include <stdio.h>
#include <string.h>

static int cmd_version(int argc, char **argv);
static int cmd_man(int argc, char **argv);

#define END_OPTIONS                                                                                \
	{                                                                                          \
		NULL, NULL, NULL, false, NULL                                                      \
	}

static const cli_option_t no_options[] = {END_OPTIONS};
static const cli_option_t lag_options[] = {
        {"--url", NULL, "URL", false, "the sink's HTTP address (default: sink_url)"},
        {"--json", NULL, NULL, false, "print the sink's /v1/status document as it is"},
        {"--watch", NULL, "INTERVAL", true, "repeat every INTERVAL, with its unit (default 1s)"},
        END_OPTIONS,
};
static const cli_option_t promote_check_options[] = {
        {"--url", NULL, "URL", false, "the sink's HTTP address (default: sink_url)"},
        {"--max-rpo", NULL, "DURATION", false, "the loss you accept (default: max_rpo)"},
        {"--max-apply-backlog", NULL, "N", false,
         "the most transactions received but not applied you accept"},
        END_OPTIONS,
};
static const cli_option_t decode_options[] = {
        {"--proto-version", NULL, "N", false, "pgoutput protocol of the capture (1 to 4)"},
        END_OPTIONS,
};
static const cli_option_t capture_options[] = {
        {"--dbname", "-d", "CONNINFO", false, "the primary (a database connection string)"},
        {"--output", "-o", "FILE", false, "the capture file to write"},
        {"--slot", NULL, "NAME", false, "logical slot, created if missing (pgferry_capture)"},
        {"--publication", NULL, "NAME", false, "publication (default pgferry)"},
        {"--proto-version", NULL, "N", false,
         "pgoutput protocol (default: the highest the server has)"},
        {"--binary", NULL, NULL, false, "ask pgoutput for binary values"},
        {"--streaming", NULL, NULL, false, "ask pgoutput to stream large transactions"},
        {"--two-phase", NULL, NULL, false, "ask pgoutput for prepared transactions"},
        {"--messages", NULL, NULL, false, "ask pgoutput for logical messages"},
        {"--until-idle", NULL, "DURATION", false, "stop after this long without a change"},
        {"--end-lsn", NULL, "X/Y", false, "stop once a message at or past X/Y arrived"},
        END_OPTIONS,
};
static const cli_option_t replay_options[] = {
        {"--proto-version", NULL, "N", false,
         "pgoutput protocol of the capture (1 to 4, default 4)"},
        END_OPTIONS,
};
static const cli_option_t verify_options[] = {
        {"--table", NULL, "SCHEMA.NAME", false, "compare only this table (repeatable)"},
        {"--json", NULL, NULL, false, "print the result as JSON"},
        END_OPTIONS,
};
static const cli_option_t clone_options[] = {
        {"--pg-bindir", NULL, "DIR", false, "where pg_dump and pg_restore are"},
        END_OPTIONS,
};
static const cli_option_t promote_options[] = {
        {"--url", NULL, "URL", false, "the sink's HTTP address (default: sink_url)"},
        {"--drain-timeout", NULL, "SECONDS", false,
         "how long to wait for the sink to apply what it holds (default 60)"},
        {"--reason", NULL, "TEXT", false, "recorded with the promotion"},
        {"--json", NULL, NULL, false, "print the promotion record as JSON"},
        END_OPTIONS,
};

static const cli_option_t drill_options[] = {
        {"--script", NULL, "FILE", false, "SQL run against the promoted copy (the smoke test)"},
        {"--keep", NULL, NULL, false, "keep the promoted copy instead of dropping it"},
        {"--report", NULL, NULL, false, "print the last drills instead of running one"},
        {"--json", NULL, NULL, false, "with --report: the drills as JSON, for auditors"},
        {"--url", NULL, "URL", false, "the sink's HTTP address (default: sink_url)"},
        {"--pg-bindir", NULL, "DIR", false, "where pg_dump and pg_restore are"},
        END_OPTIONS,
};

static const cli_option_t events_options[] = {
        {"--since", NULL, "DURATION", false,
         "only the events of the last DURATION (10min, 1h, 2d)"},
        {"--json", NULL, NULL, false, "print the events as JSON, as /v1/events serves them"},
        {"--url", NULL, "URL", false,
         "ask the sink's /v1/events (default: the DR database when dr_conninfo is set, "
         "else sink_url)"},
        END_OPTIONS,
};

static const cli_option_t check_options[] = {
        {"--role", NULL, "ROLE", false,
         "source, sink or clone (default: from the keys the configuration sets)"},
        {"--json", NULL, NULL, false, "print the checks as JSON"},
        END_OPTIONS,
};

static const cli_command_t commands[] = {
        {"source", cmd_source, "run next to the primary: read the slot, ship batches to the sink",
         NULL, true, false, no_options,
         "Reads the logical replication slot slot_name for the publication publication on "
         "the primary (primary_conninfo) and sends compressed, checksummed batches to the "
         "sink at sink_address over mutual TLS. Runs until stopped."},
        {"sink", cmd_sink, "run next to the DR database: verify, apply, report lag and RPO", NULL,
         true, false, no_options,
         "Accepts the source at listen_address, applies each transaction exactly once and "
         "in order to the DR database (dr_conninfo), and serves /metrics, /v1/status and "
         "/v1/promotion-safety at http_listen. Runs until stopped."},
        {"check", cmd_check, "pre-flight a source, sink or clone configuration", NULL, true, false,
         check_options,
         "Checks what the role needs, one line per check (ok, warning, or error with the "
         "fix): the primary's wal_level, a free slot and WAL sender, REPLICATION, the "
         "publication, SELECT on its tables and sequences; the DR role's rights and the "
         "stream's replication origin; certificates (chain, names, expiry, key "
         "permissions); the sink's ports or a TLS handshake with the sink; clock offsets. "
         "The role is the --role given, else a source for a file with sink_address, a sink "
         "for one with work_dir, a clone for one with primary_conninfo and dr_conninfo. "
         "source and sink run the same checks at start. Exits 0 all ok, 1 warnings, 2 "
         "errors."},
        {"lag", cmd_lag, "show the sink's lag and RPO report", NULL, true, false, lag_options,
         "Asks the sink for /v1/status and prints it for a person. With --watch, prints it "
         "again every interval until interrupted; the screen is cleared between reports "
         "only when standard output is a terminal."},
        {"promote-check", cmd_promote_check, "ask the sink whether promoting now is safe", NULL,
         true, false, promote_check_options,
         "Exits 0 when the sink proves that promoting now loses at most --max-rpo, 1 when "
         "it would lose more, 2 when it cannot tell."},
        {"events", cmd_events, "list the event history (connections, errors, verdicts...)", NULL,
         true, false, events_options,
         "Lists the sink's events oldest first, one line each (time, severity, kind, what "
         "happened): a source connected or lost, the DR database unreachable, an apply "
         "error and its recovery, schema drift, the fence, a clock fault, the slot "
         "retaining too much WAL, the promotion verdict turning safe or unsafe, the sink "
         "starting and stopping, a promotion. Reads pgferry.events in the DR database "
         "(dr_conninfo), kept for lag_history_retention; with --url, or without "
         "dr_conninfo, asks the sink's /v1/events (its last 200)."},
        {"decode", cmd_decode, "print a capture file as JSON Lines", "FILE", false, false,
         decode_options, NULL},
        {"capture", cmd_capture, "record a live pgoutput stream into a capture file", NULL, false,
         false, capture_options, NULL},
        {"replay", cmd_replay, "apply a capture file to the DR database, exactly once", "FILE",
         true, false, replay_options,
         "Applies the transactions of a capture file to the DR database (dr_conninfo) "
         "through the sink's apply engine, recording progress in the stream's replication "
         "origin: a transaction at or below the origin's progress is skipped, so a second "
         "replay of the same file changes nothing. The DR database must already follow a "
         "stream (pgferry clone, or a sink). Needs work_dir for spill files."},
        {"verify", cmd_verify, "compare the primary and the DR database table by table", NULL, true,
         false, verify_options,
         "Exits 0 when the published tables are equal, 1 when they differ, 2 on error."},
        {"clone", cmd_clone, "build the DR copy from scratch, consistent with a new slot", NULL,
         true, false, clone_options,
         "Copies the schema and data of the published tables from the primary "
         "(primary_conninfo) to an empty DR database (dr_conninfo), consistent with a new "
         "slot."},
        {"promote", cmd_promote, "fence the sink, drain, bump sequences, record the promotion",
         NULL, true, false, promote_options,
         "Fences the sink, lets it apply what it holds, moves sequences past the primary's "
         "and records the promotion point in pgferry.promotion. Needs dr_conninfo."},
        {"drill", cmd_drill, "rehearse a failover on a copy of the DR database", NULL, true, false,
         drill_options,
         "Copies the DR database (dr_conninfo) in one snapshot with the source LSN it holds, "
         "while the sink keeps applying (pg_dump and pg_restore into a new database of the "
         "DR cluster: the DR role needs CREATEDB), promotes the copy as pgferry promote "
         "would (fence, sequences, promotion record), runs --script against it, times each "
         "step and records the report in pgferry.drills and pgferry.events; drops the copy "
         "unless --keep. Writes nothing else to the DR database and nothing to the primary. "
         "Exits 0 passed, 1 the smoke script failed, 2 an error. --report prints the last "
         "drills (--json for auditors)."},
        {"version", cmd_version, "print the version and the versions of the libraries", NULL, false,
         false, no_options, NULL},
        {"man", cmd_man, "print the manual page pgferry(1) as roff", NULL, false, true, no_options,
         NULL},
};
#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

static const cli_exit_code_t exit_codes[] = {
        {0, "success (promote-check: safe; verify: equal; check: all ok)"},
        {1, "a negative answer (promote-check: unsafe; verify: differ; check: warnings)"},
        {2, "an error or cannot tell (bad input or configuration, unreachable; check: errors)"},
};
#define EXIT_CODE_COUNT (sizeof(exit_codes) / sizeof(exit_codes[0]))

static void print_help(FILE *out)
{
	size_t i;

	fprintf(out, "pgferry %s — a disaster-recovery copy of PostgreSQL with a true RPO.\n\n",
	        PGFERRY_VERSION);
	fprintf(out, "Usage: pgferry <command> [--config FILE] [-c key=value ...] [options]\n"
	             "       pgferry <command> --help\n\n");
	fprintf(out, "Commands:\n");
	for (i = 0; i < COMMAND_COUNT; i++)
		if (!commands[i].hidden)
			fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nExit codes:\n");
	for (i = 0; i < EXIT_CODE_COUNT; i++)
		fprintf(out, "  %d  %s\n", exit_codes[i].code, exit_codes[i].meaning);
	fprintf(out,
	        "\nConfiguration keys (postgresql.conf syntax in --config, or -c key=value):\n");
	config_print_keys(out, false);
}

static int cmd_version(int argc, char **argv)
{
	build_info_library_t libs[BUILD_INFO_LIBRARIES];
	int i;

	(void)argc;
	(void)argv;
	build_info_libraries(libs);
	printf("pgferry %s\n", PGFERRY_VERSION);
	for (i = 0; i < BUILD_INFO_LIBRARIES; i++)
		printf("  %-14s %s\n", libs[i].name, libs[i].version);
	return 0;
}

static int cmd_man(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	manpage_write(stdout, commands, COMMAND_COUNT, exit_codes, EXIT_CODE_COUNT);
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
	for (i = 0; i < COMMAND_COUNT; i++) {
		const cli_command_t *cmd = &commands[i];
		pgf_error_t err;

		if (strcmp(argv[1], cmd->name) != 0)
			continue;
		/* before the command starts anything: a daemon asked for --help
		 * prints it instead of starting, a typo is named */
		switch (cli_check_args(cmd, argc - 1, argv + 1, &err)) {
		case CLI_ARGS_HELP:
			cli_print_usage(stdout, cmd);
			return 0;
		case CLI_ARGS_BAD:
			fprintf(stderr, "pgferry %s: %s\nHINT: %s\n", cmd->name, err.message,
			        err.hint);
			return EXIT_ERROR;
		default:
			return cmd->run(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "pgferry: unknown command \"%s\"\nTry \"pgferry --help\".\n", argv[1]);
	return EXIT_ERROR;
}
