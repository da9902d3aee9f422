/*
 * events_cmd.c — `pgferry events`: the event history, oldest first, one
 * line per event (--json: the document /v1/events serves). It reads
 * pgferry.events in the DR database when the configuration names one
 * (dr_conninfo), so the history is there while the sink is down; otherwise,
 * or with --url, it asks the sink's /v1/events, which holds the last
 * EVENTS_RING events.
 */
#include "pgferry/cli.h"
#include "pgferry/events.h"
#include "pgferry/http_client.h"
#include "pgferry/log.h"
#include "pgferry/pgsession.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* {"events":[...]} from the DR database, or NULL with err set. */
static json_t *events_from_database(const config_t *cfg, const char *since_ms, pgf_error_t *err)
{
	const char *p[1] = {since_ms};
	PGconn *conn =
	        pgsession_connect(cfg->dr_conninfo, "pgferry events", NULL, "DR database", err);
	PGresult *res;
	json_t *doc, *list;
	int i;

	if (conn == NULL)
		return NULL;
	res = pgsession_query(conn, "DR database",
	                      "SELECT to_char(at AT TIME ZONE 'UTC', "
	                      "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), kind, severity, message, "
	                      "detail::text FROM pgferry.events WHERE $1::bigint IS NULL OR at > "
	                      "clock_timestamp() - make_interval(secs => $1::bigint / 1000.0) "
	                      "ORDER BY id",
	                      1, p, err);
	if (res == NULL) {
		error_hint(err,
		           "The sink creates pgferry.events when it first runs; is dr_conninfo "
		           "the sink's DR database?");
		PQfinish(conn);
		return NULL;
	}
	doc = json_object();
	list = json_array();
	for (i = 0; i < PQntuples(res); i++) {
		json_t *e = json_object(), *msg = json_string(PQgetvalue(res, i, 3));

		json_object_set_new(e, "time", json_string(PQgetvalue(res, i, 0)));
		json_object_set_new(e, "kind", json_string(PQgetvalue(res, i, 1)));
		json_object_set_new(e, "severity", json_string(PQgetvalue(res, i, 2)));
		json_object_set_new(e, "message",
		                    msg ? msg : json_string("(a message that is not UTF-8)"));
		json_object_set_new(e, "detail",
		                    PQgetisnull(res, i, 4)
		                            ? json_null()
		                            : json_loads(PQgetvalue(res, i, 4), 0, NULL));
		json_array_append_new(list, e);
	}
	json_object_set_new(doc, "events", list);
	PQclear(res);
	PQfinish(conn);
	return doc;
}

/* {"events":[...]} from the sink, or NULL with err set. */
static json_t *events_from_sink(const char *url, const char *since, pgf_error_t *err)
{
	char path[160], why[1400] = "";
	http_body_t body = {0};
	json_error_t je;
	json_t *doc;
	long status;
	char *escaped = NULL;
	CURL *curl = curl_easy_init();

	if (since && curl)
		escaped = curl_easy_escape(curl, since, 0);
	snprintf(path, sizeof(path), "/v1/events%s%.100s", escaped ? "?since=" : "",
	         escaped ? escaped : "");
	curl_free(escaped);
	curl_easy_cleanup(curl);
	status = http_client_get(url, path, 5, &body, why, sizeof(why));
	if (status != 200) {
		error_set(err, PGF_E_IO, "%s",
		          why[0]      ? why
		          : body.data ? body.data
		                      : "the sink answered with an error");
		free(body.data);
		return NULL;
	}
	doc = json_loads(body.data, 0, &je);
	free(body.data);
	if (doc == NULL)
		error_set(err, PGF_E_PROTOCOL, "the sink's answer is not JSON: %s", je.text);
	return doc;
}

static void print_events(FILE *f, json_t *doc)
{
	json_t *list = json_object_get(doc, "events");
	size_t i;

	for (i = 0; i < json_array_size(list); i++) {
		json_t *e = json_array_get(list, i);
		fprintf(f, "%s  %-7s  %-18s %s\n", json_string_value(json_object_get(e, "time")),
		        json_string_value(json_object_get(e, "severity")),
		        json_string_value(json_object_get(e, "kind")),
		        json_string_value(json_object_get(e, "message")));
	}
	if (json_array_size(list) == 0)
		fprintf(f, "no events\n");
}

int cmd_events(int argc, char **argv)
{
	cli_t cli;
	pgf_error_t err;
	const char *url = NULL, *since = NULL;
	bool as_json = false;
	int64_t since_ms = 0;
	char since_text[32];
	json_t *doc;
	int i;

	error_clear(&err);
	if (cli_load(argc, argv, 0, &cli, &err) != PGF_OK) {
		log_error_value(LOG_ERROR, &err);
		cli_free(&cli);
		return EXIT_ERROR;
	}
	for (i = 1; i < cli.argc; i++) {
		if (strcmp(cli.argv[i], "--url") == 0 && i + 1 < cli.argc)
			url = cli.argv[++i];
		else if (strcmp(cli.argv[i], "--since") == 0 && i + 1 < cli.argc)
			since = cli.argv[++i];
		else if (strcmp(cli.argv[i], "--json") == 0)
			as_json = true;
		else {
			fprintf(stderr,
			        "Usage: pgferry events [--since DURATION] [--json] [--url URL] "
			        "[--config FILE]\n");
			cli_free(&cli);
			return EXIT_ERROR;
		}
	}
	if (since && (config_parse_duration(since, &since_ms) != PGF_OK || since_ms <= 0)) {
		fprintf(stderr,
		        "pgferry events: --since takes a duration with its unit, such as 10min, "
		        "1h or 2d, not \"%s\"\n",
		        since);
		cli_free(&cli);
		return EXIT_ERROR;
	}
	snprintf(since_text, sizeof(since_text), "%" PRId64, since_ms);
	if (url == NULL && cli.cfg.dr_conninfo && cli.cfg.dr_conninfo[0])
		doc = events_from_database(&cli.cfg, since ? since_text : NULL, &err);
	else {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		doc = events_from_sink(url ? url : cli.cfg.sink_url, since, &err);
		curl_global_cleanup();
	}
	if (doc == NULL) {
		fprintf(stderr, "pgferry events: %s\n", err.message);
		if (err.hint[0])
			fprintf(stderr, "HINT: %s\n", err.hint);
		cli_free(&cli);
		return EXIT_ERROR;
	}
	if (as_json) {
		json_dumpf(doc, stdout, JSON_COMPACT);
		fputc('\n', stdout);
	} else
		print_events(stdout, doc);
	json_decref(doc);
	cli_free(&cli);
	return 0;
}
