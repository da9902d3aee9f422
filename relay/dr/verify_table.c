/*
 * verify_table.c — one table of `pgferry verify` (verify.h): is it equal on
 * the primary and the DR database?
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
 */
#include "pgferry/verify.h"

#include "pgferry/decoder.h"
#include "pgferry/log.h"
#include "pgferry/pgsession.h"
#include "pgferry/util.h"

#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RANGES       5  /* differing key ranges shown per table */
#define MAX_KEYS_SHOWN   10 /* differing keys shown per range */
#define KEYLESS_LIST_MAX 100000

typedef struct chunk_result {
	long long rows_p, rows_d;
	char hash_p[64], hash_d[64];
} chunk_result_t;

void verify_table_free(table_t *t)
{
	int i;

	free(t->schema);
	free(t->name);
	free(t->qualified);
	free(t->cols);
	free(t->key_list);
	for (i = 0; i < t->nkeys; i++) {
		free(t->keys[i]);
		free(t->key_types[i]);
	}
	memset(t, 0, sizeof(*t));
}

/* Appends to a malloc'd string. */
char *verify_append(char *s, const char *a)
{
	size_t n, m;

	if (a == NULL)
		a = "";
	n = s ? strlen(s) : 0;
	m = strlen(a);
	char *r = realloc(s, n + m + 1);
	if (r == NULL) {
		free(s);
		return NULL;
	}
	memcpy(r + n, a, m + 1);
	return r;
}

/* Columns (replicated ones: not dropped, not generated) and the key of a
 * table on the primary: its primary key, else its replica identity index. */
static int describe(verifier_t *v, table_t *t)
{
	const char *params[2] = {t->schema, t->name};
	PGresult *res;
	int i;

	res = pgsession_query(
	        v->p, "primary",
	        "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN "
	        "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 "
	        "AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum",
	        2, params, &v->err);
	if (res == NULL)
		return PGF_ERR;
	for (i = 0; i < PQntuples(res); i++) {
		char *qi = pgsession_quote_ident(v->p, PQgetvalue(res, i, 0));
		if (qi == NULL || (i && (t->cols = verify_append(t->cols, ", ")) == NULL) ||
		    (t->cols = verify_append(t->cols, qi)) == NULL) {
			free(qi);
			PQclear(res);
			return error_set(&v->err, PGF_E_MEMORY, "out of memory");
		}
		free(qi);
	}
	PQclear(res);
	if (t->cols == NULL)
		t->cols = strdup("");
	res = pgsession_query(
	        v->p, "primary",
	        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_index i JOIN "
	        "pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
	        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) JOIN "
	        "pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum WHERE n.nspname = $1 "
	        "AND c.relname = $2 AND i.indexrelid = (SELECT x.indexrelid FROM pg_index x WHERE "
	        "x.indrelid = c.oid AND (x.indisprimary OR x.indisreplident) ORDER BY "
	        "x.indisprimary DESC LIMIT 1) ORDER BY k.ord",
	        2, params, &v->err);
	if (res == NULL)
		return PGF_ERR;
	for (i = 0; i < PQntuples(res) && i < MAX_KEYS; i++) {
		t->keys[i] = pgsession_quote_ident(v->p, PQgetvalue(res, i, 0));
		t->key_types[i] = strdup(PQgetvalue(res, i, 1));
		if (t->keys[i] == NULL || t->key_types[i] == NULL ||
		    (i && (t->key_list = verify_append(t->key_list, ", ")) == NULL) ||
		    (t->key_list = verify_append(t->key_list, t->keys[i])) == NULL) {
			t->nkeys = i + 1;
			PQclear(res);
			return error_set(&v->err, PGF_E_MEMORY, "out of memory");
		}
		t->nkeys = i + 1;
	}
	PQclear(res);
	return PGF_OK;
}

/* The WHERE clause of a chunk: keys in (lo, hi]; lo/hi NULL = open. The
 * key values are parameters: lo's, then hi's. */
static char *chunk_where(const table_t *t, bool lo, bool hi)
{
	char *w = strdup("true"), buf[64];
	int i, base;

	for (base = 0; base < 2; base++) {
		if ((base == 0 && !lo) || (base == 1 && !hi))
			continue;
		w = verify_append(w, " AND (");
		w = verify_append(w, t->key_list);
		w = verify_append(w, base == 0 ? ") > (" : ") <= (");
		for (i = 0; i < t->nkeys; i++) {
			/* the hi values follow the lo values, when there are any */
			snprintf(buf, sizeof(buf), "%s$%d::", i ? ", " : "",
			         (base == 1 && lo ? t->nkeys : 0) + i + 1);
			w = verify_append(w, buf);
			w = verify_append(w, t->key_types[i]);
		}
		w = verify_append(w, ")");
		if (w == NULL)
			return NULL;
	}
	return w;
}

/* Parameters for chunk_where: lo values then hi values. */
static void chunk_params(const table_t *t, char **lo, char **hi, const char **out)
{
	int i, n = 0;

	for (i = 0; lo && i < t->nkeys; i++)
		out[n++] = lo[i];
	for (i = 0; hi && i < t->nkeys; i++)
		out[n++] = hi[i];
}

/* The next chunk's upper boundary after lo on the primary, or none (the
 * last chunk). *hi gets malloc'd strings. */
static int next_boundary(verifier_t *v, const table_t *t, char **lo, char **hi, bool *found)
{
	char *where = chunk_where(t, lo != NULL, false), *sql = NULL, lim[64];
	const char *params[MAX_KEYS];
	PGresult *res;
	int i;

	*found = false;
	snprintf(lim, sizeof(lim), " OFFSET %" PRId64 " LIMIT 1", v->cfg->verify_chunk_rows - 1);
	sql = verify_append(sql, "SELECT ");
	sql = verify_append(sql, t->key_list);
	sql = verify_append(sql, " FROM ");
	sql = verify_append(sql, t->qualified);
	sql = verify_append(sql, " WHERE ");
	sql = verify_append(sql, where);
	sql = verify_append(sql, " ORDER BY ");
	sql = verify_append(sql, t->key_list);
	sql = verify_append(sql, lim);
	free(where);
	if (sql == NULL)
		return error_set(&v->err, PGF_E_MEMORY, "out of memory");
	chunk_params(t, lo, NULL, params);
	res = pgsession_query(v->p, "primary", sql, lo ? t->nkeys : 0, params, &v->err);
	free(sql);
	if (res == NULL)
		return PGF_ERR;
	if (PQntuples(res) == 1) {
		for (i = 0; i < t->nkeys; i++)
			hi[i] = strdup(PQgetvalue(res, 0, i));
		*found = true;
	}
	PQclear(res);
	return PGF_OK;
}

static uint64_t dr_applied(verifier_t *v)
{
	const char *p[1] = {v->origin};
	PGresult *res;
	uint64_t lsn = 0;

	/* with parallel apply the stream's position is the newest of its origins */
	res = PQexecParams(v->d,
	                   v->dr_has_applied
	                           ? "SELECT pgferry.applied_lsn(true) WHERE $1::text IS NOT NULL"
	                           : "SELECT pg_replication_origin_progress($1, true)",
	                   1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    !PQgetisnull(res, 0, 0))
		lsn_parse(PQgetvalue(res, 0, 0), &lsn);
	PQclear(res);
	return lsn;
}

/* Waits until the DR side applied up to target; gives up for the rest of
 * the run when it stops moving (a stopped or fenced sink). */
static void wait_dr(verifier_t *v, uint64_t target)
{
	uint64_t last = 0, cur;
	double moved = util_monotonic_s(), t0 = moved;

	if (!v->dr_has_origin || v->dr_stalled)
		return;
	for (;;) {
		cur = dr_applied(v);
		if (cur >= target)
			return;
		if (cur != last) {
			last = cur;
			moved = util_monotonic_s();
		}
		if (util_monotonic_s() - moved > 3 || util_monotonic_s() - t0 > 30) {
			char a[LSN_TEXT_LEN], b[LSN_TEXT_LEN];
			v->dr_stalled = true;
			log_info("the DR database is not applying (applied %s, the primary is at "
			         "%s: stopped or fenced); comparing it as it is",
			         lsn_format(cur, a), lsn_format(target, b));
			return;
		}
		util_sleep_ms(50);
	}
}

static int hash_chunk(verifier_t *v, const table_t *t, char **lo, char **hi, chunk_result_t *r)
{
	char *where = chunk_where(t, lo != NULL, hi != NULL), *sql = NULL;
	const char *params[2 * MAX_KEYS];
	int n = (lo ? t->nkeys : 0) + (hi ? t->nkeys : 0);
	PGresult *res;
	uint64_t target = 0;
	int rc = PGF_ERR;

	sql = verify_append(sql, "SELECT count(*), coalesce(sum(hashtextextended(ROW(");
	sql = verify_append(sql, t->cols);
	sql = verify_append(sql, ")::text, 0)::numeric), 0)::text FROM ");
	sql = verify_append(sql, t->qualified);
	sql = verify_append(sql, " WHERE ");
	sql = verify_append(sql, where);
	free(where);
	if (sql == NULL)
		return error_set(&v->err, PGF_E_MEMORY, "out of memory");
	chunk_params(t, lo, hi, params);
	/* the primary's snapshot and its WAL position, together */
	res = pgsession_query(v->p, "primary", "BEGIN ISOLATION LEVEL REPEATABLE READ", 0, NULL,
	                      &v->err);
	if (res == NULL)
		goto out;
	PQclear(res);
	if ((res = pgsession_query(v->p, "primary", "SELECT pg_current_wal_lsn()", 0, NULL,
	                           &v->err)) == NULL)
		goto rollback;
	lsn_parse(PQgetvalue(res, 0, 0), &target);
	PQclear(res);
	if ((res = pgsession_query(v->p, "primary", sql, n, params, &v->err)) == NULL)
		goto rollback;
	r->rows_p = atoll(PQgetvalue(res, 0, 0));
	snprintf(r->hash_p, sizeof(r->hash_p), "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	res = PQexec(v->p, "COMMIT");
	PQclear(res);
	wait_dr(v, target);
	if ((res = pgsession_query(v->d, "DR database", sql, n, params, &v->err)) == NULL)
		goto out;
	r->rows_d = atoll(PQgetvalue(res, 0, 0));
	snprintf(r->hash_d, sizeof(r->hash_d), "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	rc = PGF_OK;
	goto out;
rollback:
	res = PQexec(v->p, "ROLLBACK");
	PQclear(res);
out:
	free(sql);
	return rc;
}

static bool chunk_equal(const chunk_result_t *r)
{
	return r->rows_p == r->rows_d && strcmp(r->hash_p, r->hash_d) == 0;
}

/* Row by row for one differing chunk: keys (or, without a key, whole rows)
 * with their hashes from both sides in the same order ("C" collation, so
 * the two servers' locales do not matter), merged. */
static int list_differences(verifier_t *v, const table_t *t, char **lo, char **hi, json_t *keys,
                            int *ndiff)
{
	char *where = chunk_where(t, lo != NULL, hi != NULL), *sql = NULL;
	const char *params[2 * MAX_KEYS];
	int n = (lo ? t->nkeys : 0) + (hi ? t->nkeys : 0), i = 0, j = 0, np, nd;
	PGresult *rp, *rd;

	if (t->nkeys > 0) {
		sql = verify_append(sql, "SELECT k, h FROM (SELECT ROW(");
		sql = verify_append(sql, t->key_list);
		sql = verify_append(sql, ")::text COLLATE \"C\" AS k, hashtextextended(ROW(");
		sql = verify_append(sql, t->cols);
		sql = verify_append(sql, ")::text, 0)::text AS h FROM ");
	} else {
		sql = verify_append(sql, "SELECT k, count(*)::text FROM (SELECT ROW(");
		sql = verify_append(sql, t->cols);
		sql = verify_append(sql, ")::text COLLATE \"C\" AS k FROM ");
	}
	sql = verify_append(sql, t->qualified);
	sql = verify_append(sql, " WHERE ");
	sql = verify_append(sql, where);
	sql = verify_append(sql, t->nkeys > 0 ? ") s ORDER BY k" : ") s GROUP BY k ORDER BY k");
	free(where);
	if (sql == NULL)
		return error_set(&v->err, PGF_E_MEMORY, "out of memory");
	chunk_params(t, lo, hi, params);
	rp = pgsession_query(v->p, "primary", sql, n, params, &v->err);
	rd = rp ? pgsession_query(v->d, "DR database", sql, n, params, &v->err) : NULL;
	free(sql);
	if (rd == NULL) {
		PQclear(rp);
		return PGF_ERR;
	}
	np = PQntuples(rp);
	nd = PQntuples(rd);
	*ndiff = 0;
	while (i < np || j < nd) {
		int c = i >= np   ? 1
		        : j >= nd ? -1
		                  : strcmp(PQgetvalue(rp, i, 0), PQgetvalue(rd, j, 0));
		const char *kind = NULL, *key = NULL;
		if (c < 0) {
			kind = "missing on DR";
			key = PQgetvalue(rp, i++, 0);
		} else if (c > 0) {
			kind = "extra on DR";
			key = PQgetvalue(rd, j++, 0);
		} else {
			if (strcmp(PQgetvalue(rp, i, 1), PQgetvalue(rd, j, 1)) != 0) {
				kind = t->nkeys > 0 ? "changed" : "count differs";
				key = PQgetvalue(rp, i, 0);
			}
			i++;
			j++;
		}
		if (kind) {
			if (*ndiff < MAX_KEYS_SHOWN)
				json_array_append_new(
				        keys, json_pack("{s:s, s:s}", "key", key, "kind", kind));
			(*ndiff)++;
		}
	}
	PQclear(rp);
	PQclear(rd);
	return PGF_OK;
}

static char *range_text(const table_t *t, char **lo, char **hi)
{
	char *s, *r;
	int i;

	if (t->nkeys == 0)
		return strdup("(whole table: no key)");
	s = strdup("(");
	s = verify_append(s, t->key_list);
	s = verify_append(s, ") in ");
	if (lo) {
		s = verify_append(s, "(");
		for (i = 0; i < t->nkeys; i++) {
			s = verify_append(s, i ? ", " : "");
			s = verify_append(s, lo[i]);
		}
	} else
		s = verify_append(s, "(start");
	s = verify_append(s, " .. ");
	if (hi) {
		for (i = 0; i < t->nkeys; i++) {
			s = verify_append(s, i ? ", " : "");
			s = verify_append(s, hi[i]);
		}
		s = verify_append(s, "]");
	} else
		s = verify_append(s, "end)");
	r = s;
	return r;
}

static void free_values(char **vals, int n)
{
	int i;
	for (i = 0; vals && i < n; i++) {
		free(vals[i]);
		vals[i] = NULL;
	}
}

/* Verifies one table; result "equal", "differ", "missing" or "error". */
const char *verify_table(verifier_t *v, table_t *t, json_t *entry)
{
	const char *params[2] = {t->schema, t->name};
	char *lo_buf[MAX_KEYS] = {0}, *hi_buf[MAX_KEYS] = {0};
	char **lo = NULL;
	long long rows_p = 0, rows_d = 0;
	int chunks = 0, attempt;
	json_t *ranges = json_array();
	bool differ = false, busy = false, stable;
	PGresult *res;

	json_object_set_new(entry, "differences", ranges);
	res = pgsession_query(
	        v->d, "DR database",
	        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
	        "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
	        2, params, &v->err);
	if (res == NULL)
		return "error";
	if (strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
		PQclear(res);
		return "missing";
	}
	PQclear(res);
	if (describe(v, t) != PGF_OK)
		return "error";
	for (;;) {
		bool found = true, more;
		char **hi = NULL;
		chunk_result_t r;

		if (t->nkeys > 0) {
			if (next_boundary(v, t, lo, hi_buf, &found) != PGF_OK)
				goto failed;
			hi = found ? hi_buf : NULL;
		} else
			found = false;
		more = found;
		chunks++;
		memset(&r, 0, sizeof(r));
		/* a difference counts only once the primary's chunk held still
		 * between two reads: otherwise the DR side may simply be a few
		 * commits behind or ahead of the snapshot it is compared with */
		stable = v->dr_stalled;
		for (attempt = 0;; attempt++) {
			chunk_result_t prev = r;
			if (hash_chunk(v, t, lo, hi, &r) != PGF_OK)
				goto failed;
			if (attempt > 0 && prev.rows_p == r.rows_p &&
			    strcmp(prev.hash_p, r.hash_p) == 0)
				stable = true;
			/* a DR side that does not apply is compared as it is: what it
			 * lacks is a difference, whatever the primary does meanwhile */
			if (v->dr_stalled)
				stable = true;
			if (chunk_equal(&r) || v->dr_stalled ||
			    (attempt >= v->cfg->verify_retries && stable) ||
			    attempt >= 4 * v->cfg->verify_retries)
				break;
			util_sleep_ms(100 *
			              (attempt + 1)); /* the DR side may be between two changes */
		}
		rows_p += r.rows_p;
		rows_d += r.rows_d;
		if (!chunk_equal(&r) && !stable) {
			/* changed on the primary at every read: cannot tell */
			busy = true;
			if (json_array_size(ranges) < MAX_RANGES) {
				char *text = range_text(t, lo, hi);
				json_array_append_new(
				        ranges, json_pack("{s:s, s:I, s:I, s:s}", "range",
				                          t->nkeys ? text : "(whole table: no key)",
				                          "rows_primary", (json_int_t)r.rows_p,
				                          "rows_dr", (json_int_t)r.rows_d, "note",
				                          "changed on the primary at every read"));
				free(text);
			}
		} else if (!chunk_equal(&r)) {
			differ = true;
			if (json_array_size(ranges) < MAX_RANGES) {
				json_t *keys = json_array();
				char *text = range_text(t, lo, hi);
				int ndiff = 0;
				if (t->nkeys == 0 && r.rows_p + r.rows_d > 2 * KEYLESS_LIST_MAX) {
					/* no key and too big to list: counts only */
				} else if (list_differences(v, t, lo, hi, keys, &ndiff) != PGF_OK) {
					json_decref(keys);
					free(text);
					goto failed;
				}
				json_array_append_new(
				        ranges, json_pack("{s:s, s:I, s:I, s:i, s:o}", "range",
				                          t->nkeys ? text : "(whole table: no key)",
				                          "rows_primary", (json_int_t)r.rows_p,
				                          "rows_dr", (json_int_t)r.rows_d,
				                          "differing_rows", ndiff, "keys", keys));
				free(text);
			}
		}
		if (!more)
			break;
		/* the next chunk starts after this one's upper boundary */
		free_values(lo_buf, t->nkeys);
		memcpy(lo_buf, hi_buf, sizeof(lo_buf));
		memset(hi_buf, 0, sizeof(hi_buf));
		lo = lo_buf;
	}
	free_values(lo_buf, t->nkeys);
	json_object_set_new(entry, "rows_primary", json_integer(rows_p));
	json_object_set_new(entry, "rows_dr", json_integer(rows_d));
	json_object_set_new(entry, "chunks", json_integer(chunks));
	return differ ? "differ" : busy ? "busy" : "equal";
failed:
	free_values(lo_buf, t->nkeys);
	free_values(hi_buf, t->nkeys);
	return "error";
}

void verify_print_table(const char *qualified, json_t *e)
{
	json_t *ranges = json_object_get(e, "differences");
	size_t i, j;

	printf("  %-40s %10lld %10lld %7lld  %-8s %8.2f s\n", qualified,
	       (long long)json_integer_value(json_object_get(e, "rows_primary")),
	       (long long)json_integer_value(json_object_get(e, "rows_dr")),
	       (long long)json_integer_value(json_object_get(e, "chunks")),
	       json_string_value(json_object_get(e, "result")),
	       json_real_value(json_object_get(e, "seconds")));
	if (json_is_string(json_object_get(e, "error")))
		printf("      %s\n", json_string_value(json_object_get(e, "error")));
	for (i = 0; i < json_array_size(ranges); i++) {
		json_t *r = json_array_get(ranges, i), *keys = json_object_get(r, "keys");
		if (json_is_string(json_object_get(r, "note"))) {
			printf("      %s: %s\n", json_string_value(json_object_get(r, "range")),
			       json_string_value(json_object_get(r, "note")));
			continue;
		}
		printf("      %s: %lld rows on the primary, %lld on DR, %lld rows differ\n",
		       json_string_value(json_object_get(r, "range")),
		       (long long)json_integer_value(json_object_get(r, "rows_primary")),
		       (long long)json_integer_value(json_object_get(r, "rows_dr")),
		       (long long)json_integer_value(json_object_get(r, "differing_rows")));
		for (j = 0; j < json_array_size(keys); j++) {
			json_t *k = json_array_get(keys, j);
			printf("        %-13s %s\n", json_string_value(json_object_get(k, "kind")),
			       json_string_value(json_object_get(k, "key")));
		}
	}
}

void verify_count(verifier_t *v, json_t *entry, const char *result, verify_counts_t *n)
{
	if (strcmp(result, "error") == 0) {
		char msg[2048];
		error_format(&v->err, msg, sizeof(msg));
		json_object_set_new(entry, "error", json_string(msg));
		n->error++;
	} else if (strcmp(result, "busy") == 0)
		n->busy++;
	else if (strcmp(result, "equal") == 0)
		n->equal++;
	else if (strcmp(result, "missing") == 0)
		n->missing++;
	else
		n->differ++;
}
