/*
 * drill_cmd.c — `pgferry drill`: rehearse a failover on a copy of the DR
 * database while the relay keeps running.
 *
 * The copy is taken without pausing the sink: a transaction on the DR
 * database exports its snapshot and reads pgferry.progress in it (the sink
 * writes that row in the same DR transaction as the rows it applies, so the
 * snapshot holds exactly the source transactions up to that LSN); pg_dump
 * copies in that snapshot and pg_restore loads a new database of the DR
 * cluster. The copy is then promoted with the steps of `pgferry promote`
 * (promote.h: fence, sequences past the primary's, promotion record), the
 * operator's smoke script runs against it, each step is timed, and the
 * report goes to pgferry.drills and pgferry.events of the real DR database:
 * the only writes there. The copy is dropped unless --keep.
 */
#include "pgferry/cli.h"
#include "pgferry/decoder.h"
#include "pgferry/dr_state.h"
#include "pgferry/log.h"
#include "pgferry/pgsession.h"
#include "pgferry/pgtools.h"
#include "pgferry/promote.h"
#include "pgferry/util.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { STEP_SNAPSHOT, STEP_COPY, STEP_PROMOTE, STEP_SMOKE, STEP_DROP, STEP_COUNT };
static const char *const step_names[STEP_COUNT] = {"snapshot", "copy", "promote", "smoke", "drop"};

typedef struct drill {
	const config_t *cfg;
	const char *url, *script, *bindir_opt;
	bool keep;
	PGconn *dr;   /* the real DR database: the report only */
	PGconn *snap; /* the exporting transaction */
	PGconn *copy;
	char started_at[64];
	char database[128], copy_name[64];
	char snapshot[128], source_lsn[64], commit_time[64];
	bool copy_created;
	promote_sink_view_t sink;
	promote_record_t record;
	double ms[STEP_COUNT];
	bool done[STEP_COUNT];
	char smoke_result[1200]; /* "ok", the error, or "" (no script) */
	char error[1200];        /* why the drill failed ("" passed) */
} drill_t;

static bool drill_sql(PGconn *c, const char *sql, int n, const char *const *params, PGresult **out,
                      pgf_error_t *err)
{
	PGresult *res = pgsession_query(c, "DR database", sql, n, params, err);

	if (res == NULL)
		return false;
	if (out)
		*out = res;
	else
		PQclear(res);
	return true;
}

/* The DR connection string with another database, for libpq here (password
 * kept) and for pg_restore (without it: it goes in the environment). */
static PGconn *connect_copy(const drill_t *d, pgf_error_t *err)
{
	const char *keys[] = {"dbname", "dbname", "fallback_application_name", NULL};
	const char *values[] = {d->cfg->dr_conninfo, d->copy_name, "pgferry drill", NULL};
	PGconn *c = PQconnectdbParams(keys, values, 1);

	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		char msg[400];
		error_set(err, PGF_E_DATABASE, "cannot connect to the drill's copy \"%s\": %s",
		          d->copy_name, pgsession_error_text(c, msg, sizeof(msg)));
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* 1. A snapshot of the DR database and the progress it holds, with the
 * sink's figures of that moment. */
static bool step_snapshot(drill_t *d, pgf_error_t *err)
{
	PGresult *res;
	time_t now = time(NULL);

	promote_read_sink(d->url, &d->sink);
	d->snap = pgsession_connect(d->cfg->dr_conninfo, "pgferry drill", NULL, "DR database", err);
	if (d->snap == NULL ||
	    !drill_sql(d->snap, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, NULL,
	               err) ||
	    !drill_sql(d->snap,
	               "SELECT pg_export_snapshot(), current_database(), "
	               "coalesce((SELECT source_lsn::text FROM pgferry.progress), ''), "
	               "coalesce((SELECT to_char(source_commit_time AT TIME ZONE 'UTC', "
	               "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM pgferry.progress), '')",
	               0, NULL, &res, err))
		return false;
	snprintf(d->snapshot, sizeof(d->snapshot), "%s", PQgetvalue(res, 0, 0));
	snprintf(d->database, sizeof(d->database), "%s", PQgetvalue(res, 0, 1));
	snprintf(d->source_lsn, sizeof(d->source_lsn), "%s", PQgetvalue(res, 0, 2));
	snprintf(d->commit_time, sizeof(d->commit_time), "%s", PQgetvalue(res, 0, 3));
	PQclear(res);
	/* a database name of the cluster: the DR database's, cut, and when */
	snprintf(d->copy_name, sizeof(d->copy_name), "%.36s_drill_%lld", d->database,
	         (long long)now);
	return true;
}

/* 2. CREATE DATABASE, pg_dump in the snapshot, pg_restore into it. */
static bool step_copy(drill_t *d, pgf_error_t *err)
{
	char bindir[1024], dir[512], dump[600], errf[600], snap_arg[200], sql[256];
	char *pw = NULL, *conninfo = NULL, *target = NULL;
	char *ident = PQescapeIdentifier(d->dr, d->copy_name, strlen(d->copy_name));
	const char *tmp = getenv("TMPDIR");
	bool ok = false;

	if (ident == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory"), false;
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", ident);
	PQfreemem(ident);
	if (!drill_sql(d->dr, sql, 0, NULL, NULL, err)) {
		error_hint(err, "The DR role needs CREATEDB for drills (ALTER ROLE ... CREATEDB).");
		return false;
	}
	d->copy_created = true;
	snprintf(dir, sizeof(dir), "%s/pgferry-drill.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL)
		return error_set(err, PGF_E_IO, "cannot create a directory for the dump in %s",
		                 tmp && tmp[0] ? tmp : "/tmp"),
		       false;
	snprintf(dump, sizeof(dump), "%s/drill.dump", dir);
	snprintf(snap_arg, sizeof(snap_arg), "--snapshot=%s", d->snapshot);
	pgtools_find_bindir(d->bindir_opt, bindir, sizeof(bindir));
	conninfo = pgsession_conninfo_without_password(d->cfg->dr_conninfo, &pw, err);
	if (conninfo != NULL) {
		size_t n = strlen(conninfo) + strlen(d->copy_name) + 16;
		if ((target = malloc(n)) != NULL)
			snprintf(target, n, "%s dbname='%s'", conninfo, d->copy_name);
	}
	if (target != NULL) {
		/* pgferry's own history is no part of what a failover needs */
		char *dump_argv[] = {"pg_dump",
		                     "-Fc",
		                     snap_arg,
		                     "--exclude-table-data=pgferry.lag_history",
		                     "--exclude-table-data=pgferry.events",
		                     "--exclude-table-data=pgferry.drills",
		                     "-f",
		                     dump,
		                     "-d",
		                     conninfo,
		                     NULL};
		char *restore_argv[] = {"pg_restore", "--no-owner", "--exit-on-error", "-d", target,
		                        dump,         NULL};
		snprintf(errf, sizeof(errf), "%s/pg_dump.err", dir);
		ok = pgtools_run(bindir, dump_argv, pw, NULL, errf, err);
		/* pg_dump has taken the snapshot: the exporting transaction ends */
		PQclear(PQexec(d->snap, "COMMIT"));
		snprintf(errf, sizeof(errf), "%s/pg_restore.err", dir);
		ok = ok && pgtools_run(bindir, restore_argv, pw, NULL, errf, err);
	}
	if (ok) {
		/* the dump holds the DR data: gone with the directory */
		unlink(dump);
		snprintf(errf, sizeof(errf), "%s/pg_dump.err", dir);
		unlink(errf);
		snprintf(errf, sizeof(errf), "%s/pg_restore.err", dir);
		unlink(errf);
		rmdir(dir);
	} else
		unlink(dump);
	free(conninfo);
	free(target);
	free(pw);
	return ok;
}

/* 3. The steps of pgferry promote, on the copy. */
static bool step_promote(drill_t *d, pgf_error_t *err)
{
	d->copy = connect_copy(d, err);
	if (d->copy == NULL)
		return false;
	if (promote_copy(d->copy, &d->sink, d->cfg->promote_sequence_margin, "pgferry drill",
	                 &d->record, err) != PGF_OK)
		return false;
	if (d->record.already)
		return error_set(err, PGF_E_FENCED,
		                 "the DR database itself was promoted: there is no failover to "
		                 "rehearse"),
		       false;
	return true;
}

/* 4. The operator's script against the promoted copy, as one simple query
 * (several statements; the first error stops it). */
static bool step_smoke(drill_t *d, pgf_error_t *err)
{
	FILE *f = fopen(d->script, "r");
	char *text;
	long n;
	PGresult *res;
	bool ok;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0 || (text = calloc(1, (size_t)n + 1)) == NULL) {
		if (f)
			fclose(f);
		return error_set(err, PGF_E_IO, "cannot read the smoke script %s", d->script),
		       false;
	}
	if (fread(text, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(text);
		return error_set(err, PGF_E_IO, "cannot read the smoke script %s", d->script),
		       false;
	}
	fclose(f);
	res = PQexec(d->copy, text);
	free(text);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK ||
	     PQresultStatus(res) == PGRES_EMPTY_QUERY;
	if (ok)
		snprintf(d->smoke_result, sizeof(d->smoke_result), "ok");
	else {
		const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		char msg[400];
		snprintf(d->smoke_result, sizeof(d->smoke_result), "%s",
		         m ? m : pgsession_error_text(d->copy, msg, sizeof(msg)));
		error_set(err, PGF_E_DATABASE,
		          "the smoke script %s failed on the promoted copy: %s", d->script,
		          d->smoke_result);
	}
	PQclear(res);
	return ok;
}

static bool step_drop(drill_t *d, pgf_error_t *err)
{
	char sql[256];
	char *ident = PQescapeIdentifier(d->dr, d->copy_name, strlen(d->copy_name));

	PQfinish(d->copy);
	d->copy = NULL;
	if (ident == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory"), false;
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", ident);
	PQfreemem(ident);
	if (!drill_sql(d->dr, sql, 0, NULL, NULL, err))
		return false;
	d->copy_created = false;
	return true;
}

/* The failover's part: what promoting the DR database and checking it
 * would take once decided; the copy is the drill's own cost. */
static double drill_rto_ms(const drill_t *d)
{
	return d->ms[STEP_PROMOTE] + d->ms[STEP_SMOKE];
}

static json_t *drill_steps_json(const drill_t *d)
{
	json_t *a = json_array();

	for (int i = 0; i < STEP_COUNT; i++)
		if (d->done[i])
			json_array_append_new(
			        a, json_pack("{s:s, s:f}", "step", step_names[i], "ms", d->ms[i]));
	return a;
}

/* The report in pgferry.drills and pgferry.events, in one transaction of
 * the real DR database. */
static bool drill_record(drill_t *d, pgf_error_t *err)
{
	json_t *steps = drill_steps_json(d);
	char *steps_text = json_dumps(steps, JSON_COMPACT);
	char rpo[32], klt[32], klb[32], rto[32], msg[600];
	bool ok = d->error[0] == '\0';
	const char *p[15];
	bool done;

	json_decref(steps);
	snprintf(rpo, sizeof(rpo), "%.3f", d->sink.rpo_bound_ms);
	snprintf(klt, sizeof(klt), "%" PRIu64, d->sink.known_loss_transactions);
	snprintf(klb, sizeof(klb), "%" PRIu64, d->sink.known_loss_bytes);
	snprintf(rto, sizeof(rto), "%.3f", drill_rto_ms(d));
	snprintf(msg, sizeof(msg), "%s: copy at source LSN %s, RTO %.1f ms%s%.400s",
	         ok ? "drill passed" : "drill FAILED", d->source_lsn[0] ? d->source_lsn : "0/0",
	         drill_rto_ms(d), ok ? "" : ": ", d->error);
	p[0] = d->started_at;
	p[1] = ok ? "true" : "false";
	p[2] = d->copy_name;
	p[3] = d->keep && d->copy_created ? "true" : "false";
	p[4] = d->source_lsn[0] ? d->source_lsn : NULL;
	p[5] = d->commit_time[0] ? d->commit_time : NULL;
	p[6] = d->sink.reachable ? rpo : NULL;
	p[7] = d->sink.reachable ? klt : NULL;
	p[8] = d->sink.reachable ? klb : NULL;
	p[9] = d->sink.reachable ? "true" : "false";
	p[10] = steps_text ? steps_text : "[]";
	p[11] = d->done[STEP_PROMOTE] ? rto : NULL;
	p[12] = d->script;
	p[13] = d->smoke_result[0] ? d->smoke_result : NULL;
	p[14] = ok ? NULL : d->error;
	done = drill_sql(d->dr, "BEGIN", 0, NULL, NULL, err) &&
	       drill_sql(
	               d->dr,
	               "INSERT INTO pgferry.drills (started_at, finished_at, ok, copy_name, kept, "
	               "source_lsn, source_commit_time, rpo_bound_ms, known_loss_transactions, "
	               "known_loss_bytes, sink_reachable, steps, rto_ms, smoke_script, "
	               "smoke_result, error) VALUES ($1::timestamptz, clock_timestamp(), "
	               "$2::bool, $3, $4::bool, $5::pg_lsn, $6::timestamptz, $7::float8, "
	               "$8::int8, $9::int8, $10::bool, $11::jsonb, $12::float8, $13, $14, $15)",
	               15, p, NULL, err);
	if (done) {
		const char *e[3] = {ok ? "drill_passed" : "drill_failed", msg, p[10]};
		done = drill_sql(
		               d->dr,
		               "INSERT INTO pgferry.events (at, kind, severity, message, detail) "
		               "VALUES (clock_timestamp(), $1, CASE WHEN $1 = 'drill_passed' THEN "
		               "'info' ELSE 'warning' END, $2, jsonb_build_object('steps', "
		               "$3::jsonb))",
		               3, e, NULL, err) &&
		       drill_sql(d->dr, "COMMIT", 0, NULL, NULL, err);
	}
	if (!done)
		PQclear(PQexec(d->dr, "ROLLBACK"));
	free(steps_text);
	return done;
}

static void drill_print(const drill_t *d)
{
	static const char *const what[STEP_COUNT] = {
	        "export a snapshot of the DR database, read its progress",
	        "CREATE DATABASE, pg_dump in the snapshot, pg_restore", "fence, sequences, record",
	        "", "DROP DATABASE"};

	printf("pgferry drill: copy \"%s\" of DR database \"%s\" at source LSN %s (committed on "
	       "the primary at %s)\n",
	       d->copy_name, d->database, d->source_lsn[0] ? d->source_lsn : "0/0",
	       d->commit_time[0] ? d->commit_time : "(none)");
	if (d->sink.reachable)
		printf("  at that moment     RPO bound %.1f ms; known loss %" PRIu64
		       " transactions, %" PRIu64 " bytes\n",
		       d->sink.rpo_bound_ms, d->sink.known_loss_transactions,
		       d->sink.known_loss_bytes);
	else
		printf("  at that moment     the sink did not answer (%s)\n", d->sink.why);
	for (int i = 0; i < STEP_COUNT; i++) {
		char extra[1400] = "";
		if (!d->done[i])
			continue;
		if (i == STEP_PROMOTE)
			snprintf(extra, sizeof(extra), "%s (%d sequences moved)", what[i],
			         d->record.sequences_moved);
		else if (i == STEP_SMOKE)
			snprintf(extra, sizeof(extra), "%s: %s", d->script, d->smoke_result);
		else
			snprintf(extra, sizeof(extra), "%s", what[i]);
		printf("  %-18s %10.1f ms  %s\n", step_names[i], d->ms[i], extra);
	}
	if (d->done[STEP_PROMOTE])
		printf("  %-18s %10.1f ms  promote + smoke: a failover once decided (the copy is "
		       "the drill's own cost)\n",
		       "RTO", drill_rto_ms(d));
	if (d->keep && d->copy_created)
		printf("  kept               database \"%s\" (drop it with DROP DATABASE)\n",
		       d->copy_name);
}

static int drill_run(drill_t *d)
{
	bool (*steps[STEP_COUNT])(drill_t *, pgf_error_t *) = {step_snapshot, step_copy,
	                                                       step_promote, step_smoke, step_drop};
	pgf_error_t err;
	PGresult *res;
	int rc = 0;

	error_clear(&err);
	if (!drill_sql(d->dr, "SELECT clock_timestamp()::text", 0, NULL, &res, &err)) {
		log_error_value(LOG_ERROR, &err);
		return EXIT_ERROR;
	}
	snprintf(d->started_at, sizeof(d->started_at), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	for (int i = 0; i < STEP_DROP; i++) {
		double t0 = util_monotonic_s();
		if (i == STEP_SMOKE && d->script == NULL)
			continue;
		d->done[i] = steps[i](d, &err);
		d->ms[i] = (util_monotonic_s() - t0) * 1000.0;
		if (!d->done[i]) {
			/* timed, and reported as what failed */
			d->done[i] = true;
			snprintf(d->error, sizeof(d->error), "%s: %s", step_names[i], err.message);
			rc = i == STEP_SMOKE ? EXIT_NEGATIVE : EXIT_ERROR;
			break;
		}
	}
	PQfinish(d->snap);
	d->snap = NULL;
	if (d->copy_created && !d->keep) {
		double t0 = util_monotonic_s();
		error_clear(&err);
		d->done[STEP_DROP] = true;
		if (!step_drop(d, &err))
			log_error_value(LOG_WARNING, &err);
		d->ms[STEP_DROP] = (util_monotonic_s() - t0) * 1000.0;
	}
	drill_print(d);
	error_clear(&err);
	if (!drill_record(d, &err)) {
		log_error_value(LOG_ERROR, &err);
		rc = EXIT_ERROR;
	}
	fflush(stdout);
	if (d->error[0])
		fprintf(stderr, "pgferry drill: FAILED at %s\n", d->error);
	else
		printf("pgferry drill: passed; the report is in pgferry.drills (pgferry drill "
		       "--report)\n");
	return rc;
}

static void number_text(const json_t *v, const char *fmt, char *out, size_t len)
{
	if (json_is_number(v))
		snprintf(out, len, fmt, json_number_value(v));
	else
		snprintf(out, len, "-");
}

/* --report: the last drills, newest first. */
static int drill_report(PGconn *dr, bool as_json)
{
	pgf_error_t err;
	PGresult *res;
	json_t *list;
	json_error_t je;
	size_t i;

	error_clear(&err);
	if (!drill_sql(dr,
	               "SELECT coalesce(json_agg(d ORDER BY d.started_at DESC), '[]')::text FROM "
	               "(SELECT * FROM pgferry.drills ORDER BY started_at DESC LIMIT 10) d",
	               0, NULL, &res, &err)) {
		log_error_value(LOG_ERROR, &err);
		return EXIT_ERROR;
	}
	list = json_loads(PQgetvalue(res, 0, 0), 0, &je);
	PQclear(res);
	if (list == NULL)
		return EXIT_ERROR;
	if (as_json) {
		char *text = json_dumps(list, JSON_INDENT(2));
		if (text)
			printf("%s\n", text);
		free(text);
		json_decref(list);
		return 0;
	}
	if (json_array_size(list) == 0)
		printf("no drill recorded in pgferry.drills yet\n");
	for (i = 0; i < json_array_size(list); i++) {
		json_t *o = json_array_get(list, i), *steps = json_object_get(o, "steps");
		size_t k;
		char rpo[32], loss[32], rto[32];
		number_text(json_object_get(o, "rpo_bound_ms"), "%.1f", rpo, sizeof(rpo));
		number_text(json_object_get(o, "known_loss_transactions"), "%.0f", loss,
		            sizeof(loss));
		number_text(json_object_get(o, "rto_ms"), "%.1f", rto, sizeof(rto));
		printf("%s  %s  copy at %s (commit %s), RPO bound %s ms, known loss %s "
		       "transactions, RTO %s ms\n",
		       json_string_value(json_object_get(o, "started_at")),
		       json_is_true(json_object_get(o, "ok")) ? "passed" : "FAILED",
		       json_is_string(json_object_get(o, "source_lsn"))
		               ? json_string_value(json_object_get(o, "source_lsn"))
		               : "-",
		       json_is_string(json_object_get(o, "source_commit_time"))
		               ? json_string_value(json_object_get(o, "source_commit_time"))
		               : "-",
		       rpo, loss, rto);
		for (k = 0; k < json_array_size(steps); k++) {
			json_t *st = json_array_get(steps, k);
			printf("    %-10s %10.1f ms\n",
			       json_string_value(json_object_get(st, "step")),
			       json_number_value(json_object_get(st, "ms")));
		}
		if (json_is_string(json_object_get(o, "smoke_script")))
			printf("    smoke      %s: %s\n",
			       json_string_value(json_object_get(o, "smoke_script")),
			       json_is_string(json_object_get(o, "smoke_result"))
			               ? json_string_value(json_object_get(o, "smoke_result"))
			               : "-");
		if (json_is_string(json_object_get(o, "error")))
			printf("    error      %s\n",
			       json_string_value(json_object_get(o, "error")));
	}
	json_decref(list);
	return 0;
}

int cmd_drill(int argc, char **argv)
{
	cli_t cli;
	pgf_error_t err;
	drill_t d;
	bool report = false, as_json = false;
	int rc = EXIT_ERROR;

	error_clear(&err);
	memset(&d, 0, sizeof(d));
	if (cli_load(argc, argv, 0, &cli, &err) != PGF_OK) {
		log_error_value(LOG_ERROR, &err);
		cli_free(&cli);
		return EXIT_ERROR;
	}
	cli_configure_logging(&cli, "drill");
	d.cfg = &cli.cfg;
	d.url = cli.cfg.sink_url;
	for (int i = 1; i < cli.argc; i++) {
		const char *a = cli.argv[i];
		if (strcmp(a, "--keep") == 0)
			d.keep = true;
		else if (strcmp(a, "--report") == 0)
			report = true;
		else if (strcmp(a, "--json") == 0)
			as_json = true;
		else if (strcmp(a, "--script") == 0 && i + 1 < cli.argc)
			d.script = cli.argv[++i];
		else if (strcmp(a, "--url") == 0 && i + 1 < cli.argc)
			d.url = cli.argv[++i];
		else if (strcmp(a, "--pg-bindir") == 0 && i + 1 < cli.argc)
			d.bindir_opt = cli.argv[++i];
		else {
			fprintf(stderr, "pgferry drill: unexpected argument \"%s\"\n", a);
			goto out;
		}
	}
	if (cli.cfg.dr_conninfo == NULL || cli.cfg.dr_conninfo[0] == '\0') {
		fprintf(stderr,
		        "pgferry drill: dr_conninfo is not set\nHINT: a drill copies the DR "
		        "database; give its connection string with -c dr_conninfo=...\n");
		goto out;
	}
	if (d.script != NULL && access(d.script, R_OK) != 0) {
		fprintf(stderr, "pgferry drill: cannot read the smoke script %s\n", d.script);
		goto out;
	}
	d.dr = pgsession_connect(cli.cfg.dr_conninfo, "pgferry drill", "-c TimeZone=UTC",
	                         "DR database", &err);
	if (d.dr == NULL || dr_state_install(d.dr, &err) != PGF_OK ||
	    dr_state_run(d.dr, pgferry_sql_dr_events, "the event history (sql/dr_events.sql)",
	                 &err) != PGF_OK) {
		log_error_value(LOG_ERROR, &err);
		goto out;
	}
	if (report)
		rc = drill_report(d.dr, as_json);
	else {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		rc = drill_run(&d);
	}
out:
	PQfinish(d.copy);
	PQfinish(d.snap);
	PQfinish(d.dr);
	cli_free(&cli);
	return rc;
}
