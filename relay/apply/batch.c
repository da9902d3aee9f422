/*
 * batch.c — held net changes (coalesce.h) written as a few set operations
 * instead of one statement per row: the rows of one table, one kind of
 * write and one shape (which columns are unchanged TOAST) go as one
 * statement whose parameters are arrays, one per column, read element by
 * element by the DR column type's own input function (integers and text
 * types go in binary form, see binary_class, read by its receive function):
 *
 *   INSERT INTO t (c...) SELECT unnest($1::T1[]), unnest($2::T2[]), ...
 *   UPDATE t SET c = v.c ... FROM (SELECT unnest(...) AS c...) v WHERE t.key = v.key
 *   DELETE FROM t USING (SELECT unnest(...) AS c...) v WHERE t.key = v.key
 *
 * Why this keeps the semantics of writing the rows one by one: held rows
 * are net changes of distinct keys in tables whose every unique index is
 * on that key, with no exclusion constraint and no trigger firing during
 * apply (schema.c), so any order yields the same table; deletes are
 * written first, then the checks of rows inserted and deleted again, then
 * updates, then inserts, so a key freed and taken again by an equal but
 * differently printed value (1.0 and 1.00) is freed first, as in the
 * stream. An UPDATE or DELETE must find exactly one row per change: the
 * statement counts the rows it changed (per element, where the DR side
 * has no unique index on the key alone) and raises pgferry.row_not_found
 * (none, or found N times) as the per-row statement does; an INSERT of an
 * existing key fails on the key as it would alone.
 *
 * A few rows of a kind, binary values, a column type without an array
 * type (arrays themselves) or with composite values (unnest would expand
 * them into their fields) and GENERATED ALWAYS identity columns in an
 * update are written row by row (rows.c).
 */
#include "apply_internal.h"

#include "pgferry/util.h"

#include <stdlib.h>
#include <string.h>

#define BATCH_MIN_ROWS 4    /* fewer go row by row */
#define BATCH_MAX_ROWS 1000 /* rows per statement */

/* The order held rows are written in (see above). */
static int write_phase(coalesce_write_t how)
{
	switch (how) {
	case COALESCE_WRITE_DELETE:
		return 0;
	case COALESCE_WRITE_CHECK_ABSENT:
		return 1;
	case COALESCE_WRITE_UPDATE:
		return 2;
	default:
		return 3;
	}
}

typedef struct held {
	const coalesce_row_t *row;
	size_t order; /* first appearance */
	int phase;
} held_t;

/* One byte per column: 'u' unchanged TOAST, 'b' binary, 'v' a text value
 * or NULL. Rows of one statement share it. */
static char column_class(const tuple_column_t *c)
{
	return c->kind == 'u' || c->kind == 'b' ? c->kind : 'v';
}

static int compare_held(const void *x, const void *y)
{
	const held_t *a = x, *b = y;
	int i;

	if (a->phase != b->phase)
		return a->phase - b->phase;
	if (a->row->relid != b->row->relid)
		return a->row->relid < b->row->relid ? -1 : 1;
	if (a->row->ncolumns != b->row->ncolumns)
		return a->row->ncolumns - b->row->ncolumns;
	for (i = 0; i < a->row->ncolumns; i++) {
		char ca = column_class(&a->row->cols[i]), cb = column_class(&b->row->cols[i]);
		if (ca != cb)
			return ca - cb;
	}
	return a->order < b->order ? -1 : a->order > b->order;
}

static bool same_statement(const held_t *a, const held_t *b)
{
	held_t x = *a, y = *b;

	x.order = y.order = 0;
	return compare_held(&x, &y) == 0;
}

/* Whether column i takes part in a statement of this kind. */
static bool column_sent(const relcache_entry_t *rel, const coalesce_row_t *r, int phase, int i)
{
	if (phase == 0)
		return rel->columns[i].key;
	return r->cols[i].kind != 'u';
}

/* Whether these rows can go as one statement: see the file comment. */
static bool batchable(apply_t *a, const relcache_entry_t *rel, const held_t *h, size_t n)
{
	const dr_column_t *dr;
	bool identity_always = false;
	int i;

	if (n < BATCH_MIN_ROWS || h->phase == 1 || rel->ncolumns == 0)
		return false;
	for (i = 0; h->phase == 3 && i < rel->ncolumns; i++)
		if (h->row->cols[i].kind == 'u')
			return false; /* an error, which the row statement reports */
	dr = schema_columns(&a->schema, rel, &identity_always);
	if (dr == NULL ||
	    (h->phase != 3 && (identity_always || !relation_has_key(rel) ||
	                       schema_coalesce_mode(&a->schema, rel) != COALESCE_NET)))
		return false;
	for (i = 0; i < rel->ncolumns; i++) {
		if (!column_sent(rel, h->row, h->phase, i))
			continue;
		if (h->row->cols[i].kind == 'b' || dr[i].array_oid == 0 ||
		    dr[i].array_delimiter == '\0')
			return false;
		if (h->phase != 3 && rel->columns[i].key && !dr[i].equality)
			return false;
	}
	return true;
}

/* The columns sent, one unnest per parameter in the select list, each
 * parameter typed as the DR column's array type: SELECT unnest($1),
 * unnest($2), ... The unnests run in step, as unnest($1, $2, ...) in FROM
 * would, but their rows stream to the statement with no tuplestore
 * between (the DR backend's time for an update of pgbench_accounts fell
 * about 4 %, for an insert into pgbench_history about 14 %). For an
 * UPDATE or DELETE (named): (SELECT unnest($1) AS c1, ...) AS pgferry_v,
 * and with ordinality the element's number as pgferry_n. */
static void append_unnest(apply_t *a, const relcache_entry_t *rel, const dr_column_t *dr,
                          const held_t *h, bool named, bool ordinality, int *nparams)
{
	int i;

	buf_append_str(&a->sql, named ? "(SELECT " : "SELECT ");
	for (i = 0; i < rel->ncolumns; i++) {
		if (!column_sent(rel, h->row, h->phase, i))
			continue;
		a->pl.types[*nparams] = dr[i].array_oid;
		buf_printf(&a->sql, "%sunnest($%d)", *nparams ? ", " : "", *nparams + 1);
		if (named)
			buf_printf(&a->sql, " AS c%d", i);
		++*nparams;
	}
	if (!named)
		return;
	/* the arrays are one-dimensional from 1: its subscripts number them */
	if (ordinality)
		buf_append_str(&a->sql, ", generate_subscripts($1, 1) AS pgferry_n");
	buf_append_str(&a->sql, ") AS pgferry_v");
}

/* WHERE t.key = pgferry_v.key ..., with the key type's equality. */
static void append_key_join(apply_t *a, const relcache_entry_t *rel)
{
	bool first = true;
	int i;

	for (i = 0; i < rel->ncolumns; i++) {
		if (!rel->columns[i].key)
			continue;
		buf_append_str(&a->sql, first ? " WHERE " : " AND ");
		first = false;
		buf_append_str(&a->sql, "pgferry_t.");
		apply_sql_ident(&a->sql, rel->columns[i].name);
		buf_printf(&a->sql, " = pgferry_v.c%d", i);
	}
}

/* Every element must have changed exactly one row. Where the key is
 * unique on the DR side (schema_key_unique), an element finds at most one
 * row and a row is changed once whatever finds it, so the rows changed,
 * counted together, equal the elements only when each found exactly one.
 * Else they are counted per element, so that one missing and one found
 * twice cannot pass for two found. */
static void append_count_check(apply_t *a, const relcache_entry_t *rel, const char *op,
                               bool per_element)
{
	if (!per_element) {
		buf_printf(&a->sql,
		           " RETURNING 1) SELECT CASE WHEN count(*) = cardinality($1) THEN 1 ELSE "
		           "pgferry.row_not_found('%s', ",
		           op);
		apply_sql_relation_literal(&a->sql, rel);
		buf_append_str(&a->sql,
		               ", CASE WHEN count(*) < cardinality($1) THEN 0 ELSE "
		               "count(*) - cardinality($1) + 1 END) END FROM pgferry_changed");
		return;
	}
	buf_printf(&a->sql,
	           " RETURNING pgferry_v.pgferry_n) SELECT CASE WHEN count(*) = "
	           "cardinality($1) AND coalesce(max(c), 1) = 1 THEN 1 ELSE "
	           "pgferry.row_not_found('%s', ",
	           op);
	apply_sql_relation_literal(&a->sql, rel);
	buf_append_str(&a->sql, ", CASE WHEN count(*) < cardinality($1) THEN 0 ELSE max(c) END) "
	                        "END FROM (SELECT count(*) AS c FROM pgferry_changed GROUP BY "
	                        "pgferry_n) pgferry_g");
}

/* The statement for rows like h (prepared once per shape). */
static const stmt_t *batch_statement(apply_t *a, const relcache_entry_t *rel, const held_t *h,
                                     pgf_error_t *err)
{
	const dr_column_t *dr;
	bool identity_always = false, first = true;
	bool per_element = !schema_key_unique(&a->schema, rel);
	const stmt_t *s;
	int i, nparams = 0;

	buf_reset(&a->key);
	buf_append_u8(&a->key, (uint8_t)("dxui"[h->phase]));
	buf_append_be32(&a->key, rel->relid);
	buf_append_be64(&a->key, rel->generation);
	buf_append_u8(&a->key, 'B'); /* a batch: not the key of a row statement */
	buf_append_u8(&a->key, per_element ? 'e' : 'u');
	for (i = 0; i < rel->ncolumns; i++)
		buf_append_u8(&a->key, (uint8_t)column_class(&h->row->cols[i]));
	s = stmt_find(&a->pl, &a->key);
	if (s != NULL)
		return s;
	dr = schema_columns(&a->schema, rel, &identity_always);
	buf_reset(&a->sql);
	switch (h->phase) {
	case 3:
		buf_append_str(&a->sql, "INSERT INTO ");
		apply_sql_qualified(&a->sql, rel);
		buf_append_char(&a->sql, ' ');
		apply_sql_column_list(&a->sql, rel);
		if (identity_always)
			buf_append_str(&a->sql, " OVERRIDING SYSTEM VALUE");
		buf_append_char(&a->sql, ' ');
		append_unnest(a, rel, dr, h, false, false, &nparams);
		break;
	case 2:
		buf_append_str(&a->sql, "WITH pgferry_changed AS (UPDATE ");
		apply_sql_qualified(&a->sql, rel);
		buf_append_str(&a->sql, " AS pgferry_t SET ");
		for (i = 0; i < rel->ncolumns; i++) {
			if (h->row->cols[i].kind == 'u')
				continue;
			if (!first)
				buf_append_str(&a->sql, ", ");
			first = false;
			apply_sql_ident(&a->sql, rel->columns[i].name);
			buf_printf(&a->sql, " = pgferry_v.c%d", i);
		}
		buf_append_str(&a->sql, " FROM ");
		append_unnest(a, rel, dr, h, true, per_element, &nparams);
		append_key_join(a, rel);
		append_count_check(a, rel, "update", per_element);
		break;
	default:
		buf_append_str(&a->sql, "WITH pgferry_changed AS (DELETE FROM ");
		apply_sql_qualified(&a->sql, rel);
		buf_append_str(&a->sql, " AS pgferry_t USING ");
		append_unnest(a, rel, dr, h, true, per_element, &nparams);
		append_key_join(a, rel);
		append_count_check(a, rel, "delete", per_element);
		break;
	}
	if (buf_failed(&a->sql) || buf_failed(&a->key)) {
		error_set(err, PGF_E_MEMORY, "out of memory");
		return NULL;
	}
	return stmt_prepare(&a->pl, &a->key, &a->sql, nparams, err);
}

/* One array literal element: NULL, or the value double-quoted with " and
 * \ escaped, which the element type's input function then reads. */
static void append_element(buf_t *b, const tuple_column_t *c)
{
	uint32_t i;

	if (c->kind == 'n') {
		buf_append_str(b, "NULL");
		return;
	}
	buf_append_char(b, '"');
	/* runs without a character to escape go in one copy */
	for (i = 0; i < c->len;) {
		uint32_t j = i;
		while (j < c->len && c->data[j] != '"' && c->data[j] != '\\')
			j++;
		buf_append(b, c->data + i, j - i);
		if (j == c->len)
			break;
		buf_append_char(b, '\\');
		buf_append_char(b, c->data[j]);
		i = j + 1;
	}
	buf_append_char(b, '"');
}

/* Built-in types whose binary form the sink can write from pgoutput's
 * text exactly as the type's input function would read it: the integers
 * (the schema check holds a built-in type the same on both sides, so the
 * text is int2out's, int4out's or int8out's) and the text types, whose
 * binary form is their characters, read with the same encoding check and
 * the same padding rules. array_recv then reads a column's array with no
 * parsing of quotes, escapes or digits on the DR server. */
enum { BIN_NONE = 0, BIN_TEXT = 1, BIN_INT2 = 2, BIN_INT4 = 4, BIN_INT8 = 8 };

static int binary_class(Oid type)
{
	switch (type) {
	case 21: /* int2 */
		return BIN_INT2;
	case 23: /* int4 */
		return BIN_INT4;
	case 20: /* int8 */
		return BIN_INT8;
	case 25:   /* text */
	case 1042: /* bpchar */
	case 1043: /* varchar */
		return BIN_TEXT;
	default:
		return BIN_NONE;
	}
}

/* Column i of rows h[0..n) as a one-dimensional array in binary form
 * (array_recv's: dimensions, a NULL flag, the element type, then each
 * element's length and bytes), appended to b; false, with b as it was,
 * where a value is not in its type's output form. */
static bool binary_array(buf_t *b, Oid type, const held_t *h, size_t n, int i)
{
	int klass = binary_class(type);
	size_t start = b->len, j;
	bool nulls = false;

	if (klass == BIN_NONE)
		return false;
	buf_append_be32(b, 1); /* dimensions */
	buf_append_be32(b, 0); /* has NULLs: set below */
	buf_append_be32(b, type);
	buf_append_be32(b, (uint32_t)n);
	buf_append_be32(b, 1); /* lower bound */
	for (j = 0; j < n; j++) {
		const tuple_column_t *c = &h[j].row->cols[i];
		int64_t v;
		if (c->kind == 'n') {
			buf_append_be32(b, 0xFFFFFFFFu); /* -1: NULL */
			nulls = true;
			continue;
		}
		if (klass == BIN_TEXT) {
			buf_append_be32(b, c->len);
			buf_append(b, c->data, c->len);
			continue;
		}
		if (!util_parse_int(c->data, c->len, klass, &v)) {
			buf_truncate(b, start);
			return false;
		}
		buf_append_be32(b, (uint32_t)klass);
		if (klass == BIN_INT2)
			buf_append_be16(b, (uint16_t)v);
		else if (klass == BIN_INT4)
			buf_append_be32(b, (uint32_t)v);
		else
			buf_append_be64(b, (uint64_t)v);
	}
	if (nulls && !buf_failed(b))
		b->data[start + 7] = 1;
	return true;
}

/* Writes rows h[0..n) (one statement's worth) as one statement. */
static int batch_send(apply_t *a, const relcache_entry_t *rel, const held_t *h, size_t n,
                      buf_t *arrays, pgf_error_t *err)
{
	static const char *const what[] = {"delete", "insert", "update", "insert"};
	size_t offsets[PGOUTPUT_MAX_COLUMNS], lengths[PGOUTPUT_MAX_COLUMNS];
	char kinds[PGOUTPUT_MAX_COLUMNS];
	tuple_column_t param;
	const stmt_t *s = batch_statement(a, rel, h, err);
	const dr_column_t *dr = schema_columns(&a->schema, rel, NULL);
	int i, k = 0, nparams = 0;

	if (s == NULL)
		return PGF_ERR;
	buf_reset(arrays);
	for (i = 0; i < rel->ncolumns; i++) {
		size_t j;
		if (!column_sent(rel, h->row, h->phase, i))
			continue;
		offsets[k] = arrays->len;
		kinds[k] = 'b';
		if (binary_array(arrays, dr[i].type_oid, h, n, i)) {
			lengths[k] = arrays->len - offsets[k];
			k++;
			continue;
		}
		kinds[k] = 't';
		buf_append_char(arrays, '{');
		for (j = 0; j < n; j++) {
			if (j)
				buf_append_char(arrays, dr[i].array_delimiter);
			append_element(arrays, &h[j].row->cols[i]);
		}
		buf_append_char(arrays, '}');
		lengths[k] = arrays->len - offsets[k];
		k++;
	}
	if (buf_failed(arrays))
		return error_set(err, PGF_E_MEMORY, "out of memory for %zu rows of %s.%s", n,
		                 rel->namespace, rel->name);
	for (i = 0; i < k; i++) {
		param.kind = kinds[i];
		param.data = arrays->data + offsets[i];
		param.len = (uint32_t)lengths[i];
		pipeline_add_param(&a->pl, &nparams, &param);
	}
	/* the row counts were taken when the changes came in */
	return pipeline_send_prepared(&a->pl, s, nparams, what[h->phase], rel->relid, false, err);
}

int batch_write_held(apply_t *a, pgf_error_t *err)
{
	const coalesce_row_t *r;
	held_t *held;
	buf_t arrays;
	size_t n = 0, i, j;
	int rc = PGF_OK;

	for (r = coalesce_first(&a->net); r; r = r->next)
		n++;
	if (n < BATCH_MIN_ROWS) {
		for (r = coalesce_first(&a->net); r && rc == PGF_OK; r = r->next)
			rc = rows_write_held(a, r, err);
		return rc;
	}
	held = malloc(n * sizeof(*held));
	if (held == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory for %zu held rows", n);
	for (i = 0, r = coalesce_first(&a->net); r; r = r->next, i++) {
		held[i].row = r;
		held[i].order = i;
		held[i].phase = write_phase(coalesce_row_write(r));
	}
	qsort(held, n, sizeof(*held), compare_held);
	buf_init(&arrays);
	for (i = 0; i < n && rc == PGF_OK; i = j) {
		const relcache_entry_t *rel = rows_relation(a, held[i].row->relid, err);
		if (rel == NULL) {
			rc = PGF_ERR;
			break;
		}
		for (j = i + 1; j < n && same_statement(&held[i], &held[j]); j++)
			;
		if (!batchable(a, rel, &held[i], j - i)) {
			size_t k;
			for (k = i; k < j && rc == PGF_OK; k++)
				rc = rows_write_held(a, held[k].row, err);
			continue;
		}
		for (size_t k = i; k < j && rc == PGF_OK; k += BATCH_MAX_ROWS)
			rc = batch_send(a, rel, &held[k],
			                j - k < BATCH_MAX_ROWS ? j - k : BATCH_MAX_ROWS, &arrays,
			                err);
	}
	buf_free(&arrays);
	free(held);
	return rc;
}
