/*
 * verify_cmd.c — `pgferry verify`: is the DR copy equal to the primary?
 *
 * Table by table, in chunks of the primary key (verify_chunk_rows rows, the
 * boundaries found on the primary by walking its key index), both servers
 * compute a row count and an order-independent hash of every row (the sum
 * of hashtextextended() of the row's text form, as numeric so it cannot
 * overflow). So a big table needs neither much memory nor one long scan.
 *
 * Consistency while replication runs: the primary's chunk is read in a
 * snapshot whose WAL position P is known; the DR side is read once its
 * applied position (the replication origin's progress) has reached P. A
 * chunk that still differs (the DR may have applied later changes too) is
 * read again, up to verify_retries times, before it is called different.
 * For a differing chunk the keys themselves are compared, row by row.
 *
 * This file parses the arguments and runs the steps (connect, find the
 * origin, list the published tables, compare each, then the sequences,
 * report); one table's comparison is verify_table.c, the sequences
 * verify_sequences.c. Diagnostics go through the log module, the report to
 * standard output.
 */
#include "pgferry/cli.h"
#include "pgferry/log.h"
#include "pgferry/pgsession.h"
#include "pgferry/util.h"
#include "pgferry/verify.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* both sides must print every value the same way */
static const char verify_options[] = "-c datestyle=ISO -c intervalstyle=postgres "
                                     "-c extra_float_digits=3 -c TimeZone=UTC -c bytea_output=hex";

/* One run of verify: what its steps share. */
typedef struct verify_run {
	cli_t cli;
	verifier_t v;
	const char *only[256]; /* --table, when given */
	int nonly;
	verify_counts_t nt; /* tables */
	verify_counts_t ns; /* sequences */
	json_t *seqs;
	double t_start;
} verify_run_t;

static int parse_args(verify_run_t *r, int argc, char **argv, pgf_error_t *err)
{
	int i;

	if (cli_load(argc, argv, 0, &r->cli, err) != PGF_OK)
		return PGF_ERR;
	cli_configure_logging(&r->cli, "verify");
	r->v.cfg = &r->cli.cfg;
	for (i = 1; i < r->cli.argc; i++) {
		if (strcmp(r->cli.argv[i], "--json") == 0)
			r->v.as_json = true;
		else if (strcmp(r->cli.argv[i], "--table") == 0 && i + 1 < r->cli.argc &&
		         r->nonly < 256)
			r->only[r->nonly++] = r->cli.argv[++i];
		else {
			error_set(err, PGF_E_USAGE, "unexpected argument \"%s\"", r->cli.argv[i]);
			error_hint(err,
			           "pgferry verify [--config FILE] [-c key=value ...] [--table "
			           "SCHEMA.NAME ...] [--json]");
			return PGF_ERR;
		}
	}
	if (!r->cli.cfg.primary_conninfo || !r->cli.cfg.dr_conninfo) {
		error_set(err, PGF_E_CONFIG, "verify needs primary_conninfo and dr_conninfo");
		error_hint(err, "Set both in the configuration file or with -c.");
		return PGF_ERR;
	}
	return PGF_OK;
}

/* Both servers, printing values the same way; and the origin the sink
 * applies through on the DR side (sql/dr_state.sql), if it ever did. */
static int connect_both(verifier_t *v, pgf_error_t *err)
{
	PGresult *res;

	if ((v->p = pgsession_connect(v->cfg->primary_conninfo, "pgferry verify", verify_options,
	                              "primary", err)) == NULL ||
	    (v->d = pgsession_connect(v->cfg->dr_conninfo, "pgferry verify", verify_options,
	                              "DR database", err)) == NULL)
		return PGF_ERR;
	if ((res = pgsession_query(v->d, "DR database",
	                           "SELECT to_regprocedure('pgferry.origin()') IS NOT NULL, "
	                           "to_regprocedure('pgferry.applied_lsn(boolean)') IS NOT NULL",
	                           0, NULL, err)) == NULL)
		return PGF_ERR;
	v->dr_has_origin = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	v->dr_has_applied = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	PQclear(res);
	if (!v->dr_has_origin)
		return PGF_OK;
	if ((res = pgsession_query(v->d, "DR database",
	                           "SELECT o.roname FROM pg_replication_origin o WHERE o.roname = "
	                           "pgferry.origin()",
	                           0, NULL, err)) == NULL)
		return PGF_ERR;
	v->dr_has_origin = PQntuples(res) == 1;
	if (v->dr_has_origin)
		snprintf(v->origin, sizeof(v->origin), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return PGF_OK;
}

/* The published tables, (schema, name) by name; NULL and err set when the
 * publication lists none. */
static PGresult *published_tables(verifier_t *v, pgf_error_t *err)
{
	const char *p[1] = {v->cfg->publication};
	PGresult *res = pgsession_query(v->p, "primary",
	                                "SELECT schemaname, tablename FROM pg_publication_tables "
	                                "WHERE pubname = $1 AND schemaname <> 'pgferry' ORDER BY "
	                                "1, 2",
	                                1, p, err);

	if (res != NULL && PQntuples(res) == 0) {
		PQclear(res);
		error_set(
		        err, PGF_E_CONFIG,
		        "the publication \"%s\" on the primary lists no table (or does not exist)",
		        v->cfg->publication);
		return NULL;
	}
	return res;
}

static bool wanted(const verify_run_t *r, const char *full, const char *name)
{
	int k;

	if (r->nonly == 0)
		return true;
	for (k = 0; k < r->nonly; k++)
		if (strcmp(r->only[k], full) == 0 || strcmp(r->only[k], name) == 0)
			return true;
	return false;
}

/* One table: compared, counted, reported (a line now, or in the JSON). */
static void verify_one(verify_run_t *r, const char *schema, const char *name)
{
	verifier_t *v = &r->v;
	table_t t;
	json_t *entry = json_object();
	const char *result;
	double t0 = util_monotonic_s();
	char full[512], *qs, *qn;

	memset(&t, 0, sizeof(t));
	snprintf(full, sizeof(full), "%s.%s", schema, name);
	t.schema = strdup(schema);
	t.name = strdup(name);
	qs = pgsession_quote_ident(v->p, t.schema);
	qn = pgsession_quote_ident(v->p, t.name);
	t.qualified =
	        verify_append(verify_append(verify_append(NULL, qs ? qs : ""), "."), qn ? qn : "");
	free(qs);
	free(qn);
	error_clear(&v->err);
	result = verify_table(v, &t, entry);
	json_object_set_new(entry, "table", json_string(full));
	json_object_set_new(entry, "result", json_string(result));
	json_object_set_new(entry, "seconds", json_real(util_monotonic_s() - t0));
	verify_count(v, entry, result, &r->nt);
	if (!v->as_json) {
		verify_print_table(full, entry);
		fflush(stdout);
	}
	json_array_append_new(v->report, entry);
	verify_table_free(&t);
}

static void print_json(verify_run_t *r)
{
	const verify_counts_t *ns = &r->ns;
	json_t *o = json_pack(
	        "{s:o, s:o, s:{s:i, s:i, s:i, s:i, s:i, s:f}, s:{s:i, s:i, s:i, s:i, s:i}}",
	        "tables", r->v.report, "sequences", r->seqs, "summary", "equal", r->nt.equal,
	        "differ", r->nt.differ, "missing", r->nt.missing, "busy", r->nt.busy, "error",
	        r->nt.error, "seconds", util_monotonic_s() - r->t_start, "sequence_summary",
	        "equal", ns->equal, "behind", ns->differ, "missing", ns->missing, "busy", ns->busy,
	        "error", ns->error);
	char *text = json_dumps(o, JSON_COMPACT);

	/* json_pack took both, whether it succeeded or not */
	r->seqs = NULL;
	r->v.report = NULL;
	printf("%s\n", text ? text : "{}");
	free(text);
	json_decref(o);
}

static void print_text(const verify_run_t *r)
{
	const verify_counts_t *ns = &r->ns;

	printf("%d tables: %d equal, %d differ, %d missing on the DR database, %d busy, %d "
	       "errors (%.1f s)\n",
	       r->nt.equal + r->nt.differ + r->nt.missing + r->nt.error + r->nt.busy, r->nt.equal,
	       r->nt.differ, r->nt.missing, r->nt.busy, r->nt.error,
	       util_monotonic_s() - r->t_start);
	if (r->nonly == 0)
		printf("%d sequences: %d equal, %d behind, %d missing on the DR database, %d busy, "
		       "%d errors\n",
		       ns->equal + ns->differ + ns->missing + ns->busy + ns->error, ns->equal,
		       ns->differ, ns->missing, ns->busy, ns->error);
	if (r->nt.busy || ns->busy)
		printf("busy: rows kept changing on the primary at every read, so those chunks "
		       "could not be compared; run verify again, or with writes paused\n");
}

int cmd_verify(int argc, char **argv)
{
	verify_run_t r;
	PGresult *res = NULL;
	int i, rc = EXIT_ERROR, differ, cannot_tell;

	memset(&r, 0, sizeof(r));
	r.t_start = util_monotonic_s();
	if (parse_args(&r, argc, argv, &r.v.err) != PGF_OK ||
	    connect_both(&r.v, &r.v.err) != PGF_OK ||
	    (res = published_tables(&r.v, &r.v.err)) == NULL) {
		log_error_value(LOG_ERROR, &r.v.err);
		goto out;
	}
	r.v.report = json_array();
	if (!r.v.as_json)
		printf("  %-40s %10s %10s %7s  %-8s %10s\n", "table", "primary", "DR", "chunks",
		       "result", "time");
	for (i = 0; i < PQntuples(res); i++)
		if (wanted(&r, PQgetvalue(res, i, 0) /* schema */, PQgetvalue(res, i, 1)))
			verify_one(&r, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
	PQclear(res);
	/* sequences too, unless only some tables were asked for */
	r.seqs = json_array();
	if (r.nonly == 0)
		verify_sequences(&r.v, r.cli.cfg.publication, r.seqs, &r.ns);
	if (r.v.as_json)
		print_json(&r);
	else
		print_text(&r);
	/* a proven difference is the answer; otherwise anything not compared
	 * means "cannot tell" */
	differ = r.nt.differ + r.nt.missing + r.ns.differ + r.ns.missing;
	cannot_tell = r.nt.error + r.nt.busy + r.ns.error + r.ns.busy;
	rc = differ ? EXIT_NEGATIVE : cannot_tell ? EXIT_ERROR : 0;
out:
	json_decref(r.seqs);
	json_decref(r.v.report);
	PQfinish(r.v.p);
	PQfinish(r.v.d);
	cli_free(&r.cli);
	return rc;
}
