/*
 * verify_sequences.c — the sequences of `pgferry verify` (verify.h): a
 * promoted copy whose sequences lag hands out numbers the primary already
 * used, so each published table's sequences must be at or past the
 * primary's value on the DR side (read again while the primary moves).
 */
#include "pgferry/verify.h"

#include "pgferry/log.h"
#include "pgferry/pgsession.h"
#include "pgferry/primary_check.h"
#include "pgferry/util.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The DR side of one sequence: exists, its last value (NULL: never called)
 * and its increment; false when the query failed. */
static bool dr_sequence(verifier_t *v, const char *name, bool *exists, bool *has_value,
                        long long *value, long long *increment)
{
	const char *p[1] = {name};
	PGresult *res = pgsession_query(
	        v->d, "DR database",
	        "SELECT to_regclass($1) IS NOT NULL, pg_sequence_last_value(to_regclass($1)), "
	        "(SELECT seqincrement FROM pg_sequence WHERE seqrelid = to_regclass($1))",
	        1, p, &v->err);

	if (res == NULL)
		return false;
	*exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	*has_value = !PQgetisnull(res, 0, 1);
	*value = *has_value ? strtoll(PQgetvalue(res, 0, 1), NULL, 10) : 0;
	*increment = PQgetisnull(res, 0, 2) ? 1 : strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	PQclear(res);
	return true;
}

/* The primary's value of one sequence now (has_value false: never called). */
static bool primary_sequence(verifier_t *v, const char *name, bool *has_value, long long *value)
{
	const char *p[1] = {name};
	PGresult *res = pgsession_query(
	        v->p, "primary", "SELECT pg_sequence_last_value(to_regclass($1))", 1, p, &v->err);

	if (res == NULL)
		return false;
	*has_value = !PQgetisnull(res, 0, 0);
	*value = *has_value ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	return true;
}

/* One sequence: the DR copy must have reached the primary's value (what a
 * promotion starts from; promote then adds its margin). The sink ships
 * values every sequence_sync_interval, so a DR value behind is read again
 * verify_retries times before it is called behind ("busy" when it moved
 * meanwhile: the primary hands out numbers faster than they are read). */
static const char *verify_sequence(verifier_t *v, const char *name, bool readable, json_t *entry)
{
	bool p_has, d_exists, d_has, moved = false;
	long long pv = 0, dv = 0, incr = 1, first_dv = 0;
	int k;

	if (!readable) {
		error_set(&v->err, PGF_E_CONFIG,
		          "the role cannot read it on the primary (no SELECT or USAGE), so it is "
		          "never shipped");
		error_hint(&v->err, "GRANT SELECT ON SEQUENCE %s TO the source's role", name);
		return "error";
	}
	for (k = 0;; k++) {
		if (!primary_sequence(v, name, &p_has, &pv) ||
		    !dr_sequence(v, name, &d_exists, &d_has, &dv, &incr))
			return "error";
		if (k == 0)
			first_dv = dv;
		else if (dv != first_dv)
			moved = true;
		if (p_has)
			json_object_set_new(entry, "primary_value", json_integer(pv));
		if (d_has)
			json_object_set_new(entry, "dr_value", json_integer(dv));
		if (!d_exists)
			return "missing";
		if (!p_has || (d_has && (incr > 0 ? dv >= pv : dv <= pv)))
			return "equal";
		if (k >= (int)v->cfg->verify_retries)
			return moved ? "busy" : "behind";
		util_sleep_ms(500);
	}
}

void verify_sequences(verifier_t *v, const char *publication, json_t *report, verify_counts_t *n)
{
	PGresult *res = primary_list_sequences(v->p, publication, &v->err);
	int i;

	if (res == NULL) {
		log_error_value(LOG_ERROR, &v->err);
		n->error++;
		return;
	}
	if (!v->as_json && PQntuples(res) > 0)
		printf("  %-40s %10s %10s %7s  %-8s %10s\n", "sequence", "primary", "DR", "",
		       "result", "time");
	for (i = 0; i < PQntuples(res); i++) {
		const char *name = PQgetvalue(res, i, 0), *result;
		json_t *entry = json_object();
		double t0 = util_monotonic_s();
		char pv[32] = "-", dv[32] = "-";

		error_clear(&v->err);
		result = verify_sequence(v, name, strcmp(PQgetvalue(res, i, 2), "t") == 0, entry);
		json_object_set_new(entry, "sequence", json_string(name));
		json_object_set_new(entry, "table", json_string(PQgetvalue(res, i, 1)));
		json_object_set_new(entry, "result", json_string(result));
		json_object_set_new(entry, "seconds", json_real(util_monotonic_s() - t0));
		verify_count(v, entry, result, n);
		if (!v->as_json) {
			if (json_is_integer(json_object_get(entry, "primary_value")))
				snprintf(pv, sizeof(pv), "%lld",
				         (long long)json_integer_value(
				                 json_object_get(entry, "primary_value")));
			if (json_is_integer(json_object_get(entry, "dr_value")))
				snprintf(dv, sizeof(dv), "%lld",
				         (long long)json_integer_value(
				                 json_object_get(entry, "dr_value")));
			printf("  %-40s %10s %10s %7s  %-8s %8.2f s\n", name, pv, dv, "", result,
			       util_monotonic_s() - t0);
			if (json_is_string(json_object_get(entry, "error")))
				printf("      %s\n",
				       json_string_value(json_object_get(entry, "error")));
			fflush(stdout);
		}
		json_array_append_new(report, entry);
	}
	PQclear(res);
}
