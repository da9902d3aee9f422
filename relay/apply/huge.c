/*
 * huge.c — a change larger than a batch, applied from the file the sink put
 * its pieces in (huge_change.h) without ever holding it in memory: an
 * INSERT as COPY ... FROM STDIN fed in chunks, an UPDATE as a COPY into a
 * temporary table of the DR columns' types and one UPDATE ... FROM it that
 * must change exactly one row (pgferry.row_not_found, as rows.c). The
 * values are read by the DR columns' input functions, as parameters are;
 * unchanged TOAST values are left out, as rows.c leaves them.
 *
 * COPY cannot run in pipeline mode: held rows are written and what is in
 * flight is synced first (order stays), and the pipeline resumes after.
 * It all runs inside the open DR transaction, so a crash at any point
 * leaves nothing committed and the source resends the change.
 *
 * What COPY in text form cannot express exactly (binary values, REPLICA
 * IDENTITY FULL, a GENERATED ALWAYS identity column in an UPDATE, a DELETE)
 * is left to the caller, which applies it in memory like any other change.
 */
#include "apply_internal.h"

#include "pgferry/byteorder.h"
#include "pgferry/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HUGE_CHUNK (256u << 10) /* bytes read from the file at a time */

typedef struct huge_column {
	char kind; /* 'n', 'u', 't', 'b' */
	uint32_t len;
	uint64_t offset; /* of the value in the file */
} huge_column_t;

typedef struct huge_tuple {
	uint16_t ncolumns;
	huge_column_t *columns; /* PGOUTPUT_MAX_COLUMNS */
} huge_tuple_t;

/* The change in its file: where each value lies, nothing of the values. */
typedef struct huge_message {
	int fd;
	const char *path;
	uint64_t size, pos;
	uint8_t type;
	uint32_t relid;
	uint8_t old_kind; /* 'K', 'O' or 0 */
	huge_tuple_t old, new_;
} huge_message_t;

static int malformed(const huge_message_t *m, pgf_error_t *err)
{
	return error_set(err, PGF_E_PROTOCOL,
	                 "the change in \"%s\" is malformed at byte %llu of %llu", m->path,
	                 (unsigned long long)m->pos, (unsigned long long)m->size);
}

static int read_bytes(huge_message_t *m, void *out, size_t n, pgf_error_t *err)
{
	if (m->pos + n > m->size)
		return malformed(m, err);
	if (util_pread_all(m->fd, out, n, m->pos) != PGF_OK)
		return error_set(err, PGF_E_IO, "could not read \"%s\": %s", m->path,
		                 strerror(errno));
	m->pos += n;
	return PGF_OK;
}

static int read_tuple(huge_message_t *m, huge_tuple_t *t, pgf_error_t *err)
{
	uint8_t b[4] = {0}; /* read_bytes fills it; the analyzer cannot see that */
	uint16_t i;

	if (read_bytes(m, b, 2, err) != PGF_OK)
		return PGF_ERR;
	t->ncolumns = be16_read(b);
	if (t->ncolumns > PGOUTPUT_MAX_COLUMNS)
		return malformed(m, err);
	for (i = 0; i < t->ncolumns; i++) {
		huge_column_t *c = &t->columns[i];
		if (read_bytes(m, b, 1, err) != PGF_OK)
			return PGF_ERR;
		c->kind = (char)b[0];
		c->len = 0;
		if (c->kind == 'n' || c->kind == 'u')
			continue;
		if ((c->kind != 't' && c->kind != 'b') || read_bytes(m, b, 4, err) != PGF_OK)
			return c->kind != 't' && c->kind != 'b' ? malformed(m, err) : PGF_ERR;
		c->len = be32_read(b);
		c->offset = m->pos;
		if (m->pos + c->len > m->size)
			return malformed(m, err);
		m->pos += c->len;
	}
	return PGF_OK;
}

/* Finds the values of an INSERT or UPDATE (pgoutput's layout) in the file. */
static int scan_message(apply_t *a, huge_message_t *m, pgf_error_t *err)
{
	uint8_t b[4] = {0}; /* read_bytes fills it; the analyzer cannot see that */

	if (read_bytes(m, &m->type, 1, err) != PGF_OK)
		return PGF_ERR;
	if (a->decoder.in_stream && read_bytes(m, b, 4, err) != PGF_OK)
		return PGF_ERR; /* the xid of a streamed change */
	if (read_bytes(m, b, 4, err) != PGF_OK)
		return PGF_ERR;
	m->relid = be32_read(b);
	if (read_bytes(m, b, 1, err) != PGF_OK)
		return PGF_ERR;
	if (m->type == PGOUTPUT_UPDATE && (b[0] == 'K' || b[0] == 'O')) {
		m->old_kind = b[0];
		if (read_tuple(m, &m->old, err) != PGF_OK || read_bytes(m, b, 1, err) != PGF_OK)
			return PGF_ERR;
	}
	if (b[0] != 'N' || read_tuple(m, &m->new_, err) != PGF_OK)
		return b[0] != 'N' ? malformed(m, err) : PGF_ERR;
	if (m->pos != m->size)
		return malformed(m, err);
	return PGF_OK;
}

/* ---- COPY in text form, escaped on the fly -------------------------------- */

typedef struct huge_copy {
	PGconn *conn;
	uint8_t *in;
	char *out; /* twice HUGE_CHUNK: every byte may need a backslash */
} huge_copy_t;

static int copy_put(huge_copy_t *c, const char *data, size_t len, pgf_error_t *err)
{
	if (PQputCopyData(c->conn, data, (int)len) != 1)
		return apply_conn_error(err, c->conn, "sending a huge change to");
	return PGF_OK;
}

/* One value in COPY's text form: backslash, newline, carriage return and
 * tab escaped, NULL as \N; read from the file a chunk at a time. */
static int copy_value(huge_copy_t *c, const huge_message_t *m, const huge_column_t *col,
                      pgf_error_t *err)
{
	uint64_t done = 0;

	if (col->kind == 'n')
		return copy_put(c, "\\N", 2, err);
	while (done < col->len) {
		size_t n = col->len - done < HUGE_CHUNK ? (size_t)(col->len - done) : HUGE_CHUNK, i,
		       o = 0;
		if (util_pread_all(m->fd, c->in, n, col->offset + done) != PGF_OK)
			return error_set(err, PGF_E_IO, "could not read \"%s\": %s", m->path,
			                 strerror(errno));
		for (i = 0; i < n; i++) {
			char ch = (char)c->in[i];
			const char *esc = ch == '\\'   ? "\\\\"
			                  : ch == '\n' ? "\\n"
			                  : ch == '\r' ? "\\r"
			                  : ch == '\t' ? "\\t"
			                               : NULL;
			if (esc != NULL) {
				c->out[o++] = esc[0];
				c->out[o++] = esc[1];
			} else
				c->out[o++] = ch;
		}
		if (copy_put(c, c->out, o, err) != PGF_OK)
			return PGF_ERR;
		done += n;
	}
	return PGF_OK;
}

/* Runs sql (a COPY ... FROM STDIN) and feeds it one row of the given
 * values; what went wrong is named as what. */
static int copy_row(huge_copy_t *c, const char *sql, const huge_message_t *m,
                    const huge_column_t *const *values, int nvalues, const char *what,
                    pgf_error_t *err)
{
	PGresult *res = PQexec(c->conn, sql);
	int i, rc = PGF_OK;

	if (PQresultStatus(res) != PGRES_COPY_IN) {
		rc = apply_result_error(err, res, what);
		PQclear(res);
		return rc;
	}
	PQclear(res);
	for (i = 0; i < nvalues && rc == PGF_OK; i++)
		if ((i > 0 && copy_put(c, "\t", 1, err) != PGF_OK) ||
		    copy_value(c, m, values[i], err) != PGF_OK)
			rc = PGF_ERR;
	if (rc == PGF_OK && copy_put(c, "\n", 1, err) != PGF_OK)
		rc = PGF_ERR;
	if (PQputCopyEnd(c->conn, rc == PGF_OK ? NULL : "pgferry could not send the change") != 1 &&
	    rc == PGF_OK)
		rc = apply_conn_error(err, c->conn, "ending a COPY to");
	while ((res = PQgetResult(c->conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == PGF_OK)
			rc = apply_result_error(err, res, what);
		PQclear(res);
	}
	return rc;
}

/* Runs statements that return no rows to keep (outside pipeline mode). */
static int exec_plain(huge_copy_t *c, const char *sql, const char *what, pgf_error_t *err)
{
	PGresult *res = PQexec(c->conn, sql);
	int st = PQresultStatus(res), rc = PGF_OK;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		rc = apply_result_error(err, res, what);
	PQclear(res);
	while ((res = PQgetResult(c->conn)) != NULL)
		PQclear(res);
	return rc;
}

/* ---- INSERT and UPDATE ------------------------------------------------------ */

static int huge_insert(apply_t *a, huge_copy_t *c, const relcache_entry_t *rel,
                       const huge_message_t *m, pgf_error_t *err)
{
	const huge_column_t *values[PGOUTPUT_MAX_COLUMNS];
	int i;

	buf_reset(&a->sql);
	buf_append_str(&a->sql, "COPY ");
	apply_sql_qualified(&a->sql, rel);
	buf_append_char(&a->sql, ' ');
	apply_sql_column_list(&a->sql, rel);
	buf_append_str(&a->sql, " FROM STDIN");
	for (i = 0; i < rel->ncolumns; i++)
		values[i] = &m->new_.columns[i];
	if (buf_failed(&a->sql))
		return error_set(err, PGF_E_MEMORY, "out of memory");
	return copy_row(c, a->sql.data, m, values, rel->ncolumns, "insert", err);
}

/* The temporary table takes the new values (cN) and the key (kN) in the DR
 * columns' own types; the UPDATE sets the first and finds the row by the
 * second, and must change exactly one. */
static int huge_update(apply_t *a, huge_copy_t *c, const relcache_entry_t *rel,
                       const huge_message_t *m, pgf_error_t *err)
{
	const huge_column_t *values[2 * PGOUTPUT_MAX_COLUMNS];
	const huge_tuple_t *key = m->old_kind == 'K' ? &m->old : &m->new_;
	int i, n = 0, rc;
	bool first = true;

	buf_reset(&a->sql);
	/* dropped below, or with the DR transaction when anything fails */
	buf_append_str(&a->sql, "CREATE TEMPORARY TABLE pgferry_huge AS SELECT ");
	for (i = 0; i < rel->ncolumns; i++) {
		if (m->new_.columns[i].kind == 'u')
			continue;
		buf_append_str(&a->sql, n ? ", " : "");
		apply_sql_ident(&a->sql, rel->columns[i].name);
		buf_printf(&a->sql, " AS c%d", i);
		values[n++] = &m->new_.columns[i];
	}
	for (i = 0; i < rel->ncolumns; i++) {
		if (!rel->columns[i].key)
			continue;
		buf_append_str(&a->sql, ", ");
		apply_sql_ident(&a->sql, rel->columns[i].name);
		buf_printf(&a->sql, " AS k%d", i);
		values[n++] = &key->columns[i];
	}
	buf_append_str(&a->sql, " FROM ");
	apply_sql_qualified(&a->sql, rel);
	buf_append_str(&a->sql, " WITH NO DATA");
	if (buf_failed(&a->sql))
		return error_set(err, PGF_E_MEMORY, "out of memory");
	if (exec_plain(c, a->sql.data, "a temporary table for a huge update", err) != PGF_OK)
		return PGF_ERR;
	buf_reset(&a->sql);
	buf_append_str(&a->sql, "COPY pg_temp.pgferry_huge FROM STDIN");
	if (copy_row(c, a->sql.data, m, values, n, "update", err) != PGF_OK)
		return PGF_ERR;
	buf_reset(&a->sql);
	buf_append_str(&a->sql, "WITH pgferry_changed AS (UPDATE ");
	apply_sql_qualified(&a->sql, rel);
	buf_append_str(&a->sql, " AS t SET ");
	for (i = 0; i < rel->ncolumns; i++) {
		if (m->new_.columns[i].kind == 'u')
			continue;
		buf_append_str(&a->sql, first ? "" : ", ");
		first = false;
		apply_sql_ident(&a->sql, rel->columns[i].name);
		buf_printf(&a->sql, " = h.c%d", i);
	}
	buf_append_str(&a->sql, " FROM pg_temp.pgferry_huge AS h WHERE ");
	first = true;
	for (i = 0; i < rel->ncolumns; i++) {
		if (!rel->columns[i].key)
			continue;
		buf_append_str(&a->sql, first ? "t." : " AND t.");
		first = false;
		apply_sql_ident(&a->sql, rel->columns[i].name);
		buf_printf(&a->sql, " = h.k%d", i);
	}
	buf_append_str(&a->sql, " RETURNING 1) SELECT CASE WHEN count(*) = 1 THEN 1 ELSE "
	                        "pgferry.row_not_found('update', ");
	apply_sql_relation_literal(&a->sql, rel);
	buf_append_str(&a->sql, ", count(*)) END FROM pgferry_changed; DROP TABLE "
	                        "pg_temp.pgferry_huge");
	if (buf_failed(&a->sql))
		return error_set(err, PGF_E_MEMORY, "out of memory");
	rc = exec_plain(c, a->sql.data, "update", err);
	return rc;
}

/* Whether COPY in text form writes exactly this change. */
static bool copy_can_write(apply_t *a, const relcache_entry_t *rel, const huge_message_t *m)
{
	bool identity_always = false, any = false;
	int i;

	if (m->new_.ncolumns != rel->ncolumns || (m->old_kind && m->old.ncolumns != rel->ncolumns))
		return false;
	for (i = 0; i < rel->ncolumns; i++) {
		char k = m->new_.columns[i].kind;
		if (k == 'b' || (k == 'u' && m->type == PGOUTPUT_INSERT))
			return false;
		any |= k != 'u';
		if (m->old_kind == 'K' && rel->columns[i].key &&
		    (m->old.columns[i].kind == 'b' || m->old.columns[i].kind == 'u'))
			return false;
		if (m->old_kind != 'K' && m->type == PGOUTPUT_UPDATE && rel->columns[i].key &&
		    (k == 'b' || k == 'u'))
			return false;
	}
	if (m->type == PGOUTPUT_INSERT)
		return true;
	schema_columns(&a->schema, rel, &identity_always);
	return any && m->old_kind != 'O' && relation_has_key(rel) && !identity_always;
}

int huge_apply(apply_t *a, const char *path, bool *done, pgf_error_t *err)
{
	huge_message_t m;
	huge_copy_t c = {a->pl.conn, NULL, NULL};
	const relcache_entry_t *rel;
	struct stat st;
	int rc;

	*done = false;
	memset(&m, 0, sizeof(m));
	m.path = path;
	m.fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (m.fd < 0 || fstat(m.fd, &st) != 0) {
		rc = error_set(err, PGF_E_IO, "could not open the huge change \"%s\": %s", path,
		               strerror(errno));
		goto out;
	}
	m.size = (uint64_t)st.st_size;
	m.old.columns = calloc(PGOUTPUT_MAX_COLUMNS, sizeof(huge_column_t));
	m.new_.columns = calloc(PGOUTPUT_MAX_COLUMNS, sizeof(huge_column_t));
	c.in = malloc(HUGE_CHUNK);
	c.out = malloc(2 * HUGE_CHUNK);
	if (m.old.columns == NULL || m.new_.columns == NULL || c.in == NULL || c.out == NULL) {
		rc = error_set(err, PGF_E_MEMORY, "out of memory");
		goto out;
	}
	if ((rc = scan_message(a, &m, err)) != PGF_OK)
		goto out;
	if ((rel = rows_relation(a, m.relid, err)) == NULL) {
		rc = PGF_ERR;
		goto out;
	}
	if (!copy_can_write(a, rel, &m))
		goto out; /* the caller applies it in memory */
	*done = true;
	a->group.bytes += m.size;
	a->group.rows++;
	/* in order: what is held and in flight goes first */
	if ((!coalesce_empty(&a->net) && (rc = rows_flush_held(a, err)) != PGF_OK) ||
	    (rc = pipeline_sync(&a->pl, err)) != PGF_OK)
		goto out;
	if (PQexitPipelineMode(a->pl.conn) != 1) {
		rc = apply_conn_error(err, a->pl.conn, "leaving pipeline mode");
		goto out;
	}
	rc = m.type == PGOUTPUT_INSERT ? huge_insert(a, &c, rel, &m, err)
	                               : huge_update(a, &c, rel, &m, err);
	if (rc != PGF_OK && err->where[0] == '\0') {
		char lsn[LSN_TEXT_LEN];
		error_where(err, "transaction %u ending at %s, %s of %llu bytes in %s.%s by COPY",
		            a->txn.xid, lsn_format(a->txn.lsn, lsn),
		            m.type == PGOUTPUT_INSERT ? "an insert" : "an update",
		            (unsigned long long)m.size, rel->namespace, rel->name);
	}
	if (PQenterPipelineMode(a->pl.conn) != 1 && rc == PGF_OK)
		rc = apply_conn_error(err, a->pl.conn, "entering pipeline mode");
out:
	if (m.fd >= 0)
		close(m.fd);
	free(m.old.columns);
	free(m.new_.columns);
	free(c.in);
	free(c.out);
	return rc;
}
