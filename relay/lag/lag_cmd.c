/*
 * lag_cmd.c — `pgferry lag` (a report for people, --json for scripts,
 * --watch to refresh in place) and `pgferry promote-check` (exit 0 safe,
 * 1 unsafe, 2 unknown or unreachable), both clients of the sink's HTTP API.
 * libcurl fetches, jansson parses.
 */
#include "pgferry/cli.h"
#include "pgferry/http_client.h"
#include "pgferry/log.h"
#include "pgferry/util.h"

#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double num(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);

	if (b)
		v = json_object_get(v, b);
	return json_is_number(v) ? json_number_value(v) : -1;
}

static const char *txt(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);

	if (b)
		v = json_object_get(v, b);
	return json_is_string(v) ? json_string_value(v) : "-";
}

static void print_duration(FILE *f, double ms)
{
	if (ms < 0)
		fprintf(f, "unknown");
	else if (ms < 1000)
		fprintf(f, "%.0f ms", ms);
	else if (ms < 120000)
		fprintf(f, "%.1f s", ms / 1000);
	else
		fprintf(f, "%.1f min", ms / 60000);
}

static void print_report(FILE *f, json_t *st, const char *url)
{
	json_t *prom = json_object_get(st, "promotion");
	json_t *reasons = json_object_get(prom, "reasons");
	json_t *apply_err = json_object_get(json_object_get(st, "errors"), "apply");
	json_t *hist = json_object_get(st, "lag_history");
	size_t i;

	fprintf(f, "pgferry lag report — %s\n\n", url);
	fprintf(f, "  primary            system %s, database %s, slot %s\n",
	        txt(st, "identity", "system_identifier"), txt(st, "identity", "database"),
	        txt(st, "identity", "slot"));
	fprintf(f, "  source             %s since %s\n", txt(st, "source_connection", "state"),
	        txt(st, "source_connection", "since"));
	fprintf(f, "  positions          primary %s · received %s · applied %s\n",
	        txt(st, "primary_wal_lsn", NULL), txt(st, "received_lsn", NULL),
	        txt(st, "applied_lsn", NULL));
	fprintf(f, "  last applied       commit of %s (lag ",
	        txt(st, "last_applied_commit_time", NULL));
	print_duration(f, num(st, "last_commit_lag_ms", NULL));
	fprintf(f, ")\n\n  RPO bound          ");
	print_duration(f, num(st, "rpo_bound_ms", NULL));
	fprintf(f, " since the DR side provably held everything (%s)", txt(st, "proof_time", NULL));
	fprintf(f, "\n    known loss       ");
	print_duration(f, num(st, "known_loss", "window_ms"));
	fprintf(f,
	        " of the primary's commits known missing: %.0f transactions, %.0f WAL "
	        "bytes, oldest ",
	        num(st, "known_loss", "transactions"), num(st, "known_loss", "bytes"));
	print_duration(f, num(st, "known_loss", "oldest_commit_age_ms"));
	fprintf(f, " old\n    unknown window   ");
	print_duration(f, num(st, "unknown_window_ms", NULL));
	fprintf(f, " since anything new was learned about the primary's commits\n");
	if (json_is_string(json_object_get(json_object_get(st, "primary"), "source_error")))
		fprintf(f, "  SOURCE ERROR       %s\n", txt(st, "primary", "source_error"));
	if (json_is_string(json_object_get(json_object_get(st, "clock"), "last_fault")))
		fprintf(f, "  CLOCK FAULT        %s (%.0f in all)\n",
		        txt(st, "clock", "last_fault"), num(st, "clock", "faults"));
	fprintf(f, "  apply backlog      %.0f transactions, %.0f bytes, drains in ",
	        num(st, "apply_backlog", "transactions"), num(st, "apply_backlog", "bytes"));
	print_duration(f, num(st, "apply_backlog", "drain_estimate_ms"));
	fprintf(f, "\n  apply rate         %.1f txn/s, %.1f rows/s, %.0f bytes/s\n",
	        num(st, "apply_rate", "transactions_per_s"), num(st, "apply_rate", "rows_per_s"),
	        num(st, "apply_rate", "bytes_per_s"));
	if (json_is_number(json_object_get(json_object_get(st, "clock"), "offset_ms")))
		fprintf(f, "  clock offset       %+.1f ms ± %.1f ms (primary host minus sink)\n",
		        num(st, "clock", "offset_ms"), num(st, "clock", "uncertainty_ms"));
	if (json_is_object(hist))
		fprintf(f,
		        "  last hour          lag p50 %.0f ms, p95 %.0f ms, p99 %.0f ms, max %.0f "
		        "ms\n",
		        num(hist, "p50_ms", NULL), num(hist, "p95_ms", NULL),
		        num(hist, "p99_ms", NULL), num(hist, "max_ms", NULL));
	if (json_is_object(apply_err))
		fprintf(f, "  APPLY ERROR        %s (%s)\n", txt(apply_err, "message", NULL),
		        txt(apply_err, "where", NULL));
	fprintf(f, "\n  promotion now      %s", txt(prom, "verdict", NULL));
	fprintf(f, " (max_rpo ");
	print_duration(f, num(prom, "max_rpo_ms", NULL));
	fprintf(f, ")\n");
	for (i = 0; i < json_array_size(reasons); i++)
		fprintf(f, "    - %s\n", json_string_value(json_array_get(reasons, i)));
}

static volatile sig_atomic_t interrupted;
static void on_int(int sig)
{
	(void)sig;
	interrupted = 1;
}

static const char *sink_url(cli_t *cli, int *i_out)
{
	int i;

	for (i = 1; i < cli->argc; i++)
		if (strcmp(cli->argv[i], "--url") == 0 && i + 1 < cli->argc) {
			*i_out = i;
			return cli->argv[i + 1];
		}
	*i_out = -1;
	return cli->cfg.sink_url;
}

/* --watch's interval: a duration with its unit (500ms, 2s, 1min), as
 * everywhere else; a bare number is refused rather than guessed */
static int watch_interval(const char *text, int64_t *ms)
{
	if (config_parse_duration(text, ms) != PGF_OK || *ms <= 0 || *ms > 86400000)
		return PGF_ERR;
	return PGF_OK;
}

int cmd_lag(int argc, char **argv)
{
	cli_t cli;
	pgf_error_t err;
	bool as_json = false, watch = false, tty = isatty(STDOUT_FILENO) == 1;
	const char *url;
	int i, url_at, rc = EXIT_ERROR;
	int64_t interval_ms = 1000;
	long reports = 0;

	error_clear(&err);
	if (cli_load(argc, argv, 0, &cli, &err) != PGF_OK) {
		log_error_value(LOG_ERROR, &err);
		cli_free(&cli);
		return EXIT_ERROR;
	}
	cli_configure_logging(&cli, "lag");
	url = sink_url(&cli, &url_at);
	for (i = 1; i < cli.argc; i++) {
		if (i == url_at || i == url_at + 1)
			continue;
		if (strcmp(cli.argv[i], "--json") == 0)
			as_json = true;
		else if (strcmp(cli.argv[i], "--watch") == 0) {
			watch = true;
			if (i + 1 < cli.argc && cli.argv[i + 1][0] != '-' &&
			    watch_interval(cli.argv[++i], &interval_ms) != PGF_OK) {
				log_error("--watch takes an interval with its unit, such as 5s, "
				          "500ms or 1min, not \"%s\"",
				          cli.argv[i]);
				cli_free(&cli);
				return EXIT_ERROR;
			}
		} else {
			log_error("unexpected argument \"%s\"; usage: pgferry lag [--url URL] "
			          "[--json] [--watch [INTERVAL]]",
			          cli.argv[i]);
			cli_free(&cli);
			return EXIT_ERROR;
		}
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	signal(SIGINT, on_int);
	do {
		http_body_t f;
		char why[1400] = "";
		long status = http_client_get(url, "/v1/status", 5, &f, why, sizeof(why));
		json_t *st;
		json_error_t je;

		if (status != 200) {
			log_error("%s", why[0] ? why : "the sink answered with an error");
			free(f.data);
			rc = EXIT_ERROR;
		} else if (as_json) {
			fwrite(f.data, 1, f.len, stdout);
			free(f.data);
			rc = 0;
		} else if ((st = json_loads(f.data, 0, &je)) == NULL) {
			log_error("the sink's answer is not JSON: %s", je.text);
			free(f.data);
			rc = EXIT_ERROR;
		} else {
			/* a terminal shows one report at a time; a pipe or a file gets
			 * each report in turn, with no escape codes in the text */
			if (watch && tty)
				fputs("\033[H\033[2J", stdout); /* clear, home */
			else if (watch && reports > 0)
				fputc('\n', stdout);
			reports++;
			print_report(stdout, st, url);
			json_decref(st);
			free(f.data);
			rc = 0;
		}
		fflush(stdout);
		if (watch && !interrupted)
			util_sleep_ms(interval_ms); /* SIGINT cuts it short */
	} while (watch && !interrupted);
	curl_global_cleanup();
	cli_free(&cli);
	return rc;
}

int cmd_promote_check(int argc, char **argv)
{
	cli_t cli;
	pgf_error_t err;
	const char *url, *max_rpo = NULL, *max_backlog = NULL;
	int i, url_at, rc;
	char path[256], why[1400] = "";
	http_body_t f;
	long status;
	json_t *v, *reasons;
	json_error_t je;
	size_t k;

	error_clear(&err);
	if (cli_load(argc, argv, 0, &cli, &err) != PGF_OK) {
		log_error_value(LOG_ERROR, &err);
		cli_free(&cli);
		return EXIT_ERROR;
	}
	cli_configure_logging(&cli, "promote-check");
	url = sink_url(&cli, &url_at);
	for (i = 1; i < cli.argc; i++) {
		if (i == url_at || i == url_at + 1)
			continue;
		if (strcmp(cli.argv[i], "--max-rpo") == 0 && i + 1 < cli.argc)
			max_rpo = cli.argv[++i];
		else if (strcmp(cli.argv[i], "--max-apply-backlog") == 0 && i + 1 < cli.argc)
			max_backlog = cli.argv[++i];
		else {
			log_error("unexpected argument \"%s\"; usage: pgferry promote-check [--url "
			          "URL] [--max-rpo 1s] [--max-apply-backlog N]",
			          cli.argv[i]);
			cli_free(&cli);
			return EXIT_ERROR;
		}
	}
	{
		int64_t n;
		char *end = NULL;

		/* checked here, so the error names the option, not a query */
		if (max_rpo && config_parse_duration(max_rpo, &n) != PGF_OK) {
			log_error("--max-rpo \"%s\" is not a duration; write a number with a unit "
			          "(ms, s, min, h, d), e.g. 30s",
			          max_rpo);
			cli_free(&cli);
			return EXIT_ERROR;
		}
		if (max_backlog &&
		    (strtoll(max_backlog, &end, 10) < 0 || end == max_backlog || *end != '\0')) {
			log_error(
			        "--max-apply-backlog \"%s\" is not a whole number of transactions",
			        max_backlog);
			cli_free(&cli);
			return EXIT_ERROR;
		}
		/* a limit not given here is the sink's own (max_rpo,
		 * max_apply_backlog in its configuration): one answer to one
		 * question, whoever asks */
		snprintf(path, sizeof(path), "/v1/promotion-safety%s%s%s%s%s",
		         max_rpo || max_backlog ? "?" : "", max_rpo ? "max_rpo=" : "",
		         max_rpo ? max_rpo : "", max_rpo && max_backlog ? "&" : "",
		         max_backlog ? "max_apply_backlog=" : "");
		if (max_backlog)
			snprintf(path + strlen(path), sizeof(path) - strlen(path), "%s",
			         max_backlog);
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	status = http_client_get(url, path, 5, &f, why, sizeof(why));
	curl_global_cleanup();
	if (status == 0) {
		printf("UNKNOWN: %s\n", why);
		free(f.data);
		cli_free(&cli);
		return EXIT_ERROR;
	}
	if (status == 400) {
		printf("bad request: %s", f.data ? f.data : "\n");
		free(f.data);
		cli_free(&cli);
		return EXIT_ERROR;
	}
	v = f.data ? json_loads(f.data, 0, &je) : NULL;
	if (v == NULL) {
		printf("UNKNOWN: the sink answered HTTP %ld without a verdict\n", status);
		free(f.data);
		cli_free(&cli);
		return EXIT_ERROR;
	}
	/* promoted (410): not safe to promote again, so the negative answer */
	rc = status == 200 ? 0 : status == 409 || status == 410 ? EXIT_NEGATIVE : EXIT_ERROR;
	printf("%s: promotion now is %s (RPO bound ",
	       rc == 0               ? "SAFE"
	       : status == 410       ? "PROMOTED"
	       : rc == EXIT_NEGATIVE ? "UNSAFE"
	                             : "UNKNOWN",
	       txt(v, "verdict", NULL));
	print_duration(stdout, num(v, "rpo_bound_ms", NULL));
	printf(", limit ");
	print_duration(stdout, num(v, "max_rpo_ms", NULL));
	printf(")\n");
	reasons = json_object_get(v, "reasons");
	for (k = 0; k < json_array_size(reasons); k++)
		printf("  - %s\n", json_string_value(json_array_get(reasons, k)));
	json_decref(v);
	free(f.data);
	cli_free(&cli);
	return rc;
}
