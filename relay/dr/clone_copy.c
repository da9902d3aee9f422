/*
 * clone_copy.c — the data step of `pgferry clone` (clone.h): every
 * published table copied with COPY from the primary's exported snapshot,
 * clone_jobs tables at once, one thread and two connections each; binary
 * COPY first, text when a type has no binary form on one side.
 */
#include "pgferry/clone.h"

#include "pgferry/error.h"
#include "pgferry/log.h"
#include "pgferry/pgsession.h"
#include "pgferry/util.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool clone_exec(PGconn *c, const char *side, const char *sql, pgf_error_t *err)
{
	PGresult *res = pgsession_query(c, side, sql, 0, NULL, err);
	PQclear(res);
	return res != NULL;
}

/* COPY one table from the primary's snapshot into the DR database. */
static bool copy_table(clone_t *cl, PGconn *p, PGconn *d, clone_table_t *t, bool binary,
                       pgf_error_t *err)
{
	char sql_out[8192], sql_in[8192], *buf;
	PGresult *res;
	int n;
	bool ok = true;

	snprintf(sql_out, sizeof(sql_out), "COPY (SELECT %s FROM %s) TO STDOUT%s", t->columns,
	         t->qualified, binary ? " (FORMAT binary)" : "");
	snprintf(sql_in, sizeof(sql_in), "COPY %s (%s) FROM STDIN%s", t->qualified, t->columns,
	         binary ? " (FORMAT binary)" : "");
	if (strlen(t->columns) > 7000)
		return error_set(err, PGF_E_USAGE, "%s has too many columns for clone",
		                 t->qualified),
		       false;
	if (!clone_exec(d, "DR database", "BEGIN", err) ||
	    !clone_exec(p, "primary", "SAVEPOINT copy", err))
		return false;
	res = PQexec(p, sql_out);
	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		error_set(err, PGF_E_DATABASE, "COPY of %s on the primary failed: %s", t->qualified,
		          PQresultErrorMessage(res));
		PQclear(res);
		clone_exec(d, "DR database", "ROLLBACK", err);
		PQclear(PQexec(p, "ROLLBACK TO SAVEPOINT copy"));
		return false;
	}
	PQclear(res);
	res = PQexec(d, sql_in);
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		error_set(err, PGF_E_DATABASE, "COPY into %s on the DR database failed: %s",
		          t->qualified, PQresultErrorMessage(res));
		PQclear(res);
		/* drain the primary's side */
		while (PQgetCopyData(p, &buf, 0) > 0)
			PQfreemem(buf);
		while ((res = PQgetResult(p)) != NULL)
			PQclear(res);
		PQclear(PQexec(d, "ROLLBACK"));
		PQclear(PQexec(p, "ROLLBACK TO SAVEPOINT copy"));
		return false;
	}
	PQclear(res);
	while ((n = PQgetCopyData(p, &buf, 0)) > 0) {
		if (ok && PQputCopyData(d, buf, n) != 1)
			ok = false;
		t->bytes += n;
		PQfreemem(buf);
	}
	if (n == -2)
		ok = false;
	while ((res = PQgetResult(p)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && ok) {
			error_set(err, PGF_E_DATABASE, "COPY of %s on the primary failed: %s",
			          t->qualified, PQresultErrorMessage(res));
			ok = false;
		}
		PQclear(res);
	}
	PQputCopyEnd(d, ok ? NULL : "pgferry clone: the primary's side failed");
	while ((res = PQgetResult(d)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			if (ok)
				error_set(err, PGF_E_DATABASE,
				          "COPY into %s on the DR database failed: %s",
				          t->qualified, PQresultErrorMessage(res));
			ok = false;
		} else
			t->rows = atoll(PQcmdTuples(res));
		PQclear(res);
	}
	if (!ok) {
		PQclear(PQexec(d, "ROLLBACK"));
		PQclear(PQexec(p, "ROLLBACK TO SAVEPOINT copy"));
		return false;
	}
	(void)cl;
	return clone_exec(d, "DR database", "COMMIT", err) &&
	       clone_exec(p, "primary", "RELEASE SAVEPOINT copy", err);
}

static void *worker(void *arg)
{
	clone_t *cl = arg;
	pgf_error_t err;
	PGconn *p = NULL, *d = NULL;
	char set_snapshot[200];

	error_clear(&err);
	p = pgsession_connect(cl->cfg->primary_conninfo, "pgferry clone", NULL, "primary", &err);
	/* no triggers or foreign-key checks on the DR side, as in the sink */
	d = p ? pgsession_connect(cl->cfg->dr_conninfo, "pgferry clone",
	                          "-c session_replication_role=replica", "DR database", &err)
	      : NULL;
	snprintf(set_snapshot, sizeof(set_snapshot), "SET TRANSACTION SNAPSHOT '%s'", cl->snapshot);
	if (d == NULL || !clone_exec(p, "primary", "BEGIN ISOLATION LEVEL REPEATABLE READ", &err) ||
	    !clone_exec(p, "primary", set_snapshot, &err))
		goto failed;
	for (;;) {
		clone_table_t *t = NULL;
		double t0;

		pthread_mutex_lock(&cl->lock);
		if (!cl->failed && cl->next < cl->ntables)
			t = &cl->tables[cl->next++];
		pthread_mutex_unlock(&cl->lock);
		if (t == NULL)
			break;
		t0 = util_monotonic_s();
		if (!copy_table(cl, p, d, t, true, &err)) {
			/* a type without binary I/O on one side: text works everywhere */
			log_info("%s: binary COPY failed (%s); copying as text", t->qualified,
			         err.message);
			t->bytes = 0;
			error_clear(&err);
			if (!copy_table(cl, p, d, t, false, &err))
				goto failed;
		}
		t->seconds = util_monotonic_s() - t0;
		log_info("copied %s.%-*s %12lld rows %10.1f MB %8.2f s %8.1f MB/s", t->schema,
		         (int)(39 - strlen(t->schema)), t->name, t->rows, (double)t->bytes / 1e6,
		         t->seconds, t->seconds > 0 ? (double)t->bytes / 1e6 / t->seconds : 0.0);
	}
	PQclear(PQexec(p, "COMMIT"));
	PQfinish(p);
	PQfinish(d);
	return NULL;
failed:
	pthread_mutex_lock(&cl->lock);
	if (!cl->failed)
		cl->err = err;
	cl->failed = true;
	pthread_mutex_unlock(&cl->lock);
	PQfinish(p);
	PQfinish(d);
	return NULL;
}

/* Published tables with their replicated columns (generated ones are
 * computed on the DR side). */
int clone_list_tables(clone_t *cl, PGconn *p, pgf_error_t *err)
{
	const char *params[1] = {cl->cfg->publication};
	PGresult *res = pgsession_query(
	        p, "primary",
	        "SELECT pt.schemaname, pt.tablename, string_agg(quote_ident(a.attname), "
	        "', ' ORDER BY a.attnum) FROM pg_publication_tables pt JOIN pg_namespace n "
	        "ON n.nspname = pt.schemaname JOIN pg_class c ON c.relnamespace = n.oid "
	        "AND c.relname = pt.tablename JOIN pg_attribute a ON a.attrelid = c.oid AND "
	        "a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' WHERE "
	        "pt.pubname = $1 AND pt.schemaname <> 'pgferry' GROUP BY 1, 2 ORDER BY 1, "
	        "2",
	        1, params, err);
	int i;

	if (res == NULL)
		return PGF_ERR;
	cl->ntables = PQntuples(res);
	cl->tables = calloc((size_t)cl->ntables + 1, sizeof(*cl->tables));
	if (cl->tables == NULL) {
		PQclear(res);
		return error_set(err, PGF_E_MEMORY, "out of memory");
	}
	for (i = 0; i < cl->ntables; i++) {
		clone_table_t *t = &cl->tables[i];
		char *qs, *qn;
		t->schema = strdup(PQgetvalue(res, i, 0));
		t->name = strdup(PQgetvalue(res, i, 1));
		t->columns = strdup(PQgetvalue(res, i, 2));
		qs = pgsession_quote_ident(p, t->schema);
		qn = pgsession_quote_ident(p, t->name);
		if (qs && qn && (t->qualified = malloc(strlen(qs) + strlen(qn) + 2)) != NULL)
			sprintf(t->qualified, "%s.%s", qs, qn);
		free(qs);
		free(qn);
		if (!t->schema || !t->name || !t->columns || !t->qualified) {
			PQclear(res);
			return error_set(err, PGF_E_MEMORY, "out of memory");
		}
	}
	PQclear(res);
	return PGF_OK;
}

void clone_free_tables(clone_t *cl)
{
	int i;
	for (i = 0; cl->tables && i < cl->ntables; i++) {
		free(cl->tables[i].schema);
		free(cl->tables[i].name);
		free(cl->tables[i].qualified);
		free(cl->tables[i].columns);
	}
	free(cl->tables);
}

int clone_copy_tables(clone_t *cl, int jobs, pgf_error_t *err)
{
	pthread_t threads[64];
	int i, nthreads = jobs < cl->ntables ? jobs : cl->ntables;

	if (nthreads > (int)(sizeof(threads) / sizeof(threads[0])))
		nthreads = (int)(sizeof(threads) / sizeof(threads[0]));
	for (i = 0; i < nthreads; i++)
		if (pthread_create(&threads[i], NULL, worker, cl) != 0) {
			nthreads = i;
			pthread_mutex_lock(&cl->lock);
			if (!cl->failed)
				error_set(&cl->err, PGF_E_MEMORY, "could not start a copy thread");
			cl->failed = true;
			pthread_mutex_unlock(&cl->lock);
			break;
		}
	for (i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	if (cl->failed) {
		*err = cl->err;
		return PGF_ERR;
	}
	return PGF_OK;
}
