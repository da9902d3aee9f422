/*
 * pipeline.c — the DR connection in libpq pipeline mode, and the cache of
 * prepared statements (see apply_internal.h).
 *
 * Statements are sent without waiting; results are read at each sync
 * (every PIPELINE_BATCH statements or PIPELINE_BYTES of parameters, and at
 * commit), so a constraint violation stops apply at that statement: the
 * ring of in-flight statements tells which one it was, in which source
 * transaction and relation. The COMMIT goes out in the same pipeline before
 * the results are read, so every check that must hold it back is made by
 * the server inside the statement (rows.c); the server skips the rest of
 * the pipeline after an error.
 */
#include "apply_internal.h"

#include "pgferry/log.h"
#include "pgferry/pgsession.h"
#include "pgferry/replication.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fills err from a failed result, with PostgreSQL's own detail and hint. */
int apply_result_error(pgf_error_t *err, const PGresult *res, const char *what)
{
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	error_set(err, PGF_E_APPLY, "%s failed on the DR database: %s (SQLSTATE %s)", what,
	          msg ? msg : PQresultErrorMessage(res), state ? state : "?");
	if (detail)
		error_detail(err, "%s", detail);
	if (hint)
		error_hint(err, "%s", hint);
	/* raised by pgferry.row_not_found() (sql/dr_state.sql) */
	if (state && strcmp(state, "PF002") == 0) {
		error_set(err, PGF_E_APPLY, "%s", msg ? msg : "row not found on the DR database");
		if (detail)
			error_detail(err, "%s", detail);
		error_hint(err, "Nothing of this DR transaction was applied. Find out how the DR "
		                "copy diverged (pgferry verify), repair the row, and apply resumes "
		                "by itself.");
	}
	/* raised by pgferry.assert_not_fenced() (sql/dr_state.sql) */
	if (state && strcmp(state, "PF001") == 0) {
		error_set(err, PGF_E_FENCED, "%s", msg ? msg : "this DR database was promoted");
		error_hint(err, "pgferry promote fenced this DR database; it takes no stream from "
		                "the old primary.");
	}
	return PGF_ERR;
}

int apply_conn_error(pgf_error_t *err, PGconn *conn, const char *what)
{
	char clean[400];

	pgsession_error_text(conn, clean, sizeof(clean));
	error_set(err, PGF_E_DATABASE, "%s failed on the DR database: %s", what, clean);
	return PGF_ERR;
}

void pipeline_init(apply_pipeline_t *p, const apply_txn_t *txn, const relcache_t *relcache,
                   void (*on_commit)(void *arg, bool ok), void *commit_arg)
{
	memset(p, 0, sizeof(*p));
	p->txn = txn;
	p->relcache = relcache;
	p->on_commit = on_commit;
	p->commit_arg = commit_arg;
	buf_init(&p->scratch);
}

void pipeline_free(apply_pipeline_t *p)
{
	stmt_cache_clear(p);
	pipeline_forget(p);
	buf_free(&p->scratch);
}

void pipeline_forget(apply_pipeline_t *p)
{
	p->head = p->count = 0;
	p->syncs = p->commits = 0;
	p->segment = 0;
	p->segment_failed = p->failed = false;
	p->bytes = 0;
	PQclear(p->kept);
	p->kept = NULL;
}

static inflight_t *ring_append(apply_pipeline_t *p)
{
	inflight_t *f = &p->ring[(p->head + p->count) % PIPELINE_RING];

	p->count++;
	memset(f, 0, sizeof(*f));
	return f;
}

inflight_t *pipeline_push(apply_pipeline_t *p, const char *what, uint32_t relid, bool check_rows,
                          const stmt_t *stmt)
{
	inflight_t *f = ring_append(p);

	snprintf(f->what, sizeof(f->what), "%s", what);
	f->relid = relid;
	f->check_rows = check_rows;
	f->lsn = p->txn->lsn;
	f->xid = p->txn->xid;
	f->stmt = stmt;
	p->segment++;
	return f;
}

static void describe_relation(apply_pipeline_t *p, uint32_t relid, char *out, size_t len)
{
	const relcache_entry_t *rel = relcache_get(p->relcache, relid);

	if (rel)
		snprintf(out, len, "%s.%s", rel->namespace[0] ? rel->namespace : "pg_catalog",
		         rel->name);
	else
		snprintf(out, len, "relation %u", relid);
}

/* The first error of the pipeline, from the statement f's result res. */
static void statement_failed(apply_pipeline_t *p, const inflight_t *f, const PGresult *res,
                             pgf_error_t *err)
{
	char rel[300], lsn[LSN_TEXT_LEN];

	describe_relation(p, f->relid, rel, sizeof(rel));
	if (res != NULL) {
		apply_result_error(err, res, f->what);
		error_where(err, "transaction %u ending at %s%s%s%s%s", f->xid,
		            lsn_format(f->lsn, lsn), f->relid ? ", " : "", f->relid ? rel : "",
		            f->stmt ? ", statement " : "", f->stmt ? f->stmt->sql : "");
	} else {
		error_set(err, PGF_E_APPLY, "row to %s not found on the DR database in %s", f->what,
		          rel);
		error_where(err, "transaction %u ending at %s, statement %s", f->xid,
		            lsn_format(f->lsn, lsn), f->stmt ? f->stmt->sql : "");
		error_detail(err, "The DR copy differs from the primary: the row the primary "
		                  "changed does not exist on the DR side.");
		error_hint(err, "Find out how the DR copy diverged (pgferry verify), repair the "
		                "row, and apply resumes by itself.");
	}
	p->failed = true;
	p->failed_lsn = f->lsn;
}

/* Matches one result with the oldest entry in flight. Returns PGF_ERR when
 * it is the pipeline's first error (err filled). */
static int take_result(apply_pipeline_t *p, PGresult *res, pgf_error_t *err)
{
	int st = PQresultStatus(res), rc = PGF_OK;
	inflight_t *f;

	if (st == PGRES_PIPELINE_SYNC) {
		/* the end of a segment: drop what it left without a result */
		while (p->count > 0) {
			f = &p->ring[p->head];
			p->head = (p->head + 1) % PIPELINE_RING;
			p->count--;
			if (f->sync == PIPELINE_STATEMENT)
				continue;
			p->syncs--;
			if (f->sync == PIPELINE_SYNC_COMMIT) {
				p->commits--;
				if (p->on_commit)
					p->on_commit(p->commit_arg, !p->segment_failed);
			}
			break;
		}
		p->segment_failed = false;
		PQclear(res);
		return PGF_OK;
	}
	f = &p->ring[p->head];
	if (p->count == 0 || f->sync != PIPELINE_STATEMENT) {
		PQclear(res); /* more results than statements: nothing to match */
		return PGF_OK;
	}
	p->head = (p->head + 1) % PIPELINE_RING;
	p->count--;
	if (st == PGRES_PIPELINE_ABORTED) {
		/* skipped after an earlier error; that error is reported */
		p->segment_failed = true;
	} else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		p->segment_failed = true;
		if (!p->failed) {
			statement_failed(p, f, res, err);
			rc = PGF_ERR;
		}
	} else if (f->keep && !p->failed) {
		PQclear(p->kept);
		p->kept = res;
		return PGF_OK;
	} else if (f->check_rows && strcmp(PQcmdTuples(res), "0") == 0) {
		p->segment_failed = true;
		if (!p->failed) {
			statement_failed(p, f, NULL, err);
			rc = PGF_ERR;
		}
	}
	PQclear(res);
	return rc;
}

/* The error every call returns after the first, until a rollback. */
static int already_failed(apply_pipeline_t *p, pgf_error_t *err)
{
	char lsn[LSN_TEXT_LEN];

	error_set(err, PGF_E_APPLY, "an earlier statement failed on the DR database");
	error_where(err, "transaction ending at %s", lsn_format(p->failed_lsn, lsn));
	return PGF_ERR;
}

/* Reads results in order: waiting while more than max_syncs syncs are in
 * flight, then whatever has arrived. Returns the first error. */
static int pipeline_read(apply_pipeline_t *p, unsigned max_syncs, pgf_error_t *err)
{
	int rc = PGF_OK, nulls = 0;

	while (p->count > 0) {
		PGresult *res;

		if (p->syncs <= max_syncs) {
			/* only what has arrived: never wait here */
			if (PQconsumeInput(p->conn) != 1)
				break; /* a lost connection shows when a result is awaited */
			if (PQisBusy(p->conn))
				break;
		}
		res = PQgetResult(p->conn);
		if (res == NULL) {
			/* end of one statement's results; a dead connection gives
			 * NULL forever, so check it */
			if (PQstatus(p->conn) != CONNECTION_OK) {
				if (rc == PGF_OK && !p->failed)
					apply_conn_error(err, p->conn, "applying");
				pipeline_forget(p);
				p->failed = true;
				return PGF_ERR;
			}
			/* one NULL ends each statement's results; two in a row mean
			 * libpq awaits nothing more: never wait for it forever */
			if (++nulls < 2)
				continue;
			if (rc == PGF_OK && !p->failed)
				error_set(err, PGF_E_APPLY,
				          "lost track of the statements in flight on the DR "
				          "connection (%u left)",
				          p->count);
			pipeline_forget(p);
			p->failed = true;
			return PGF_ERR;
		}
		nulls = 0;
		if (take_result(p, res, err) != PGF_OK)
			rc = PGF_ERR;
	}
	if (rc == PGF_OK && p->failed)
		return already_failed(p, err);
	return rc;
}

static int send_sync(apply_pipeline_t *p, int kind, pgf_error_t *err)
{
	inflight_t *f;

	if (p->failed)
		return already_failed(p, err);
	if (PQpipelineSync(p->conn) != 1)
		return apply_conn_error(err, p->conn, "sending to");
	f = ring_append(p);
	f->sync = (uint8_t)kind;
	snprintf(f->what, sizeof(f->what), "sync");
	p->syncs++;
	if (kind == PIPELINE_SYNC_COMMIT)
		p->commits++;
	p->segment = 0;
	p->bytes = 0;
	return PGF_OK;
}

int pipeline_sync(apply_pipeline_t *p, pgf_error_t *err)
{
	if (send_sync(p, PIPELINE_SYNC_PLAIN, err) != PGF_OK)
		return PGF_ERR;
	return pipeline_read(p, 0, err);
}

int pipeline_drain(apply_pipeline_t *p, pgf_error_t *err)
{
	return pipeline_read(p, 0, err);
}

int pipeline_sync_async(apply_pipeline_t *p, int kind, pgf_error_t *err)
{
	unsigned max_syncs = p->syncs + 1;

	if (send_sync(p, kind, err) != PGF_OK)
		return PGF_ERR;
	/* room for another whole segment, and few enough commits in flight
	 * that an error rolls back little: else wait for the oldest */
	while (max_syncs > 0 &&
	       (p->count > PIPELINE_RING - PIPELINE_SEGMENT || p->commits > COMMITS_IN_FLIGHT)) {
		if (pipeline_read(p, --max_syncs, err) != PGF_OK)
			return PGF_ERR;
	}
	return pipeline_read(p, UINT32_MAX, err);
}

int pipeline_maybe_sync(apply_pipeline_t *p, pgf_error_t *err)
{
	if (p->segment >= PIPELINE_BATCH || p->bytes >= PIPELINE_BYTES)
		return pipeline_sync_async(p, PIPELINE_SYNC_PLAIN, err);
	return PGF_OK;
}

int pipeline_send_params(apply_pipeline_t *p, const char *sql, int n, const char *const *params,
                         const char *what, pgf_error_t *err)
{
	if (p->failed)
		return already_failed(p, err);
	if (PQsendQueryParams(p->conn, sql, n, NULL, params, NULL, NULL, 0) != 1)
		return apply_conn_error(err, p->conn, what);
	pipeline_push(p, what, 0, false, NULL);
	return PGF_OK;
}

/* pgferry's own statements of every group, prepared once per session, not
 * parsed and planned again per group; key: a 0 byte (no change's key starts
 * so) and their constant text. pipeline_rollback clears them after a failure. */
int pipeline_send_own(apply_pipeline_t *p, const char *sql, int n, const char *const *params,
                      const char *what, pgf_error_t *err)
{
	buf_t text = {(char *)sql, strlen(sql), strlen(sql) + 1, false};
	const stmt_t *s;
	int i;

	if (p->failed)
		return already_failed(p, err);
	buf_reset(&p->scratch);
	buf_append_u8(&p->scratch, 0);
	buf_append(&p->scratch, sql, text.len);
	if (buf_failed(&p->scratch))
		return error_set(err, PGF_E_MEMORY, "out of memory");
	s = stmt_find(p, &p->scratch);
	if (s == NULL) {
		for (i = 0; i < n; i++)
			p->types[i] = 0; /* the statement casts each parameter */
		s = stmt_prepare(p, &p->scratch, &text, n, err);
		if (s == NULL)
			return PGF_ERR;
	}
	for (i = 0; i < n; i++) {
		p->values[i] = params[i];
		p->lengths[i] = params[i] ? (int)strlen(params[i]) : 0;
		p->formats[i] = 0;
	}
	if (PQsendQueryPrepared(p->conn, s->name, n, p->values, p->lengths, p->formats, 0) != 1)
		return apply_conn_error(err, p->conn, what);
	pipeline_push(p, what, 0, false, s);
	return PGF_OK;
}

int pipeline_send_plain(apply_pipeline_t *p, const char *sql, const char *what, pgf_error_t *err)
{
	return pipeline_send_params(p, sql, 0, NULL, what, err);
}

void pipeline_rollback(apply_pipeline_t *p)
{
	const char *sql = "ROLLBACK";
	pgf_error_t ignored;
	PGresult *res;
	bool stale;

	if (p->conn == NULL || PQstatus(p->conn) != CONNECTION_OK) {
		pipeline_forget(p);
		return;
	}
	/* what is in flight first: a group whose COMMIT came back is committed */
	if (p->count > 0 && p->segment > 0 && PQpipelineSync(p->conn) == 1) {
		ring_append(p)->sync = PIPELINE_SYNC_PLAIN;
		p->syncs++;
	}
	if (p->syncs > 0)
		pipeline_read(p, 0, &ignored);
	/* after an error the server skipped what followed it, prepares too:
	 * prepare every statement again */
	stale = p->failed;
	pipeline_forget(p);
	if (PQstatus(p->conn) != CONNECTION_OK)
		return;
	if (stale) {
		stmt_cache_clear(p);
		PQsendQueryParams(p->conn, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0);
		sql = "DEALLOCATE ALL";
	}
	if (PQsendQueryParams(p->conn, sql, 0, NULL, NULL, NULL, NULL, 0) == 1 &&
	    PQpipelineSync(p->conn) == 1) {
		for (;;) {
			res = PQgetResult(p->conn);
			if (res == NULL) {
				if (PQstatus(p->conn) != CONNECTION_OK)
					break;
				continue;
			}
			int st = PQresultStatus(res);
			PQclear(res);
			if (st == PGRES_PIPELINE_SYNC)
				break;
		}
	}
}

/* Sends sql in the pipeline and syncs; the result is left in p->kept. */
int pipeline_query(apply_pipeline_t *p, const char *sql, int nparams, const char *const *params,
                   const char *what, pgf_error_t *err)
{
	PQclear(p->kept);
	p->kept = NULL;
	if (p->failed)
		return already_failed(p, err);
	if (PQsendQueryParams(p->conn, sql, nparams, NULL, params, NULL, NULL, 0) != 1)
		return apply_conn_error(err, p->conn, what);
	pipeline_push(p, what, 0, false, NULL)->keep = true;
	if (pipeline_sync(p, err) != PGF_OK)
		return PGF_ERR;
	if (p->kept == NULL)
		return error_set(err, PGF_E_APPLY, "%s: no result from the DR database", what);
	return PGF_OK;
}

/* Runs one statement outside the pipeline (only between groups). */
PGresult *pipeline_exec_outside(apply_pipeline_t *p, const char *sql, int nparams,
                                const char *const *params, pgf_error_t *err)
{
	PGresult *res;
	int st;

	if (p->count > 0 && pipeline_drain(p, err) != PGF_OK)
		return NULL;
	if (PQpipelineStatus(p->conn) != PQ_PIPELINE_OFF && PQexitPipelineMode(p->conn) != 1) {
		apply_conn_error(err, p->conn, "leaving pipeline mode");
		return NULL;
	}
	res = PQexecParams(p->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	st = PQresultStatus(res);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		apply_result_error(err, res, "a check");
		PQclear(res);
		res = NULL;
	}
	if (PQenterPipelineMode(p->conn) != 1 && res != NULL) {
		PQclear(res);
		apply_conn_error(err, p->conn, "entering pipeline mode");
		return NULL;
	}
	return res;
}

/* ---- the statement cache ------------------------------------------------- */

void stmt_cache_clear(apply_pipeline_t *p)
{
	int i;

	for (i = 0; i < STMT_BUCKETS; i++) {
		stmt_t *s = p->stmts[i], *n;
		for (; s; s = n) {
			n = s->next;
			free(s->key);
			free(s->sql);
			free(s);
		}
		p->stmts[i] = NULL;
	}
	p->nstmts = 0;
}

/* The prepared statement for a change of this shape, or NULL. */
const stmt_t *stmt_find(apply_pipeline_t *p, const buf_t *key)
{
	unsigned b = buf_hash(key) % STMT_BUCKETS;
	stmt_t *s;

	for (s = p->stmts[b]; s; s = s->next)
		if (s->key_len == key->len && memcmp(s->key, key->data, key->len) == 0)
			return s;
	return NULL;
}

/* Prepares (in the pipeline) the statement for key from sql. */
const stmt_t *stmt_prepare(apply_pipeline_t *p, const buf_t *key, const buf_t *sql, int nparams,
                           pgf_error_t *err)
{
	unsigned b = buf_hash(key) % STMT_BUCKETS;
	stmt_t *s;

	if (p->nstmts >= STMT_CACHE_MAX) {
		/* a pathological number of shapes: start over rather than grow */
		if (pipeline_sync(p, err) != PGF_OK)
			return NULL;
		if (pipeline_send_plain(p, "DEALLOCATE ALL", "deallocate", err) != PGF_OK ||
		    pipeline_sync(p, err) != PGF_OK)
			return NULL;
		stmt_cache_clear(p);
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL || (s->key = malloc(key->len)) == NULL ||
	    (s->sql = strdup(sql->data)) == NULL) {
		if (s)
			free(s->key);
		free(s);
		error_set(err, PGF_E_MEMORY, "out of memory");
		return NULL;
	}
	memcpy(s->key, key->data, key->len);
	s->key_len = key->len;
	snprintf(s->name, sizeof(s->name), "pgferry_%u", ++p->next_stmt_id);
	if (PQsendPrepare(p->conn, s->name, sql->data, nparams, p->types) != 1) {
		free(s->key);
		free(s->sql);
		free(s);
		apply_conn_error(err, p->conn, "preparing a statement");
		return NULL;
	}
	s->next = p->stmts[b];
	p->stmts[b] = s;
	p->nstmts++;
	pipeline_push(p, "prepare", 0, false, s);
	return s;
}

/* Adds the value of column i of t as the next parameter. */
void pipeline_add_param(apply_pipeline_t *p, int *n, const tuple_column_t *c)
{
	if (c->kind == 'n') {
		p->values[*n] = NULL;
		p->lengths[*n] = 0;
		p->formats[*n] = 0;
	} else {
		p->values[*n] = c->data;
		p->lengths[*n] = (int)c->len;
		/* text values are not NUL-terminated: send them as binary-safe
		 * text via their length (format 0 needs a terminator, so text is
		 * copied below when needed) */
		p->formats[*n] = c->kind == 'b' ? 1 : 0;
	}
	p->bytes += c->len;
	(*n)++;
}

/* libpq reads text parameters up to a NUL: copy text values into scratch
 * with terminators. Binary values are passed with their length. */
static int terminate_text_params(apply_pipeline_t *p, int n, pgf_error_t *err)
{
	size_t total = 0, off = 0;
	int i;

	for (i = 0; i < n; i++)
		if (p->values[i] && p->formats[i] == 0)
			total += (size_t)p->lengths[i] + 1;
	buf_reset(&p->scratch);
	if (!buf_reserve(&p->scratch, total))
		return error_set(err, PGF_E_MEMORY, "out of memory for a row of %zu bytes", total);
	for (i = 0; i < n; i++) {
		if (p->values[i] && p->formats[i] == 0) {
			char *dst = p->scratch.data + off;
			memcpy(dst, p->values[i], (size_t)p->lengths[i]);
			dst[p->lengths[i]] = '\0';
			p->values[i] = dst;
			off += (size_t)p->lengths[i] + 1;
		}
	}
	return PGF_OK;
}

int pipeline_send_prepared(apply_pipeline_t *p, const stmt_t *s, int n, const char *what,
                           uint32_t relid, bool check_rows, pgf_error_t *err)
{
	if (p->failed)
		return already_failed(p, err);
	if (terminate_text_params(p, n, err) != PGF_OK)
		return PGF_ERR;
	if (PQsendQueryPrepared(p->conn, s->name, n, p->values, p->lengths, p->formats, 0) != 1)
		return apply_conn_error(err, p->conn, "sending a change");
	pipeline_push(p, what, relid, check_rows, s);
	return pipeline_maybe_sync(p, err);
}
