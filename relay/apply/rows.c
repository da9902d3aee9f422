/*
 * rows.c — row changes as SQL on the DR database: INSERT, UPDATE, DELETE
 * and TRUNCATE, each as a prepared statement per shape of change (cached
 * in pipeline.c), and the writing of held net changes (coalesce.h).
 *
 * Parameters are text (pgoutput sends each value in its type's text form,
 * printed under settings both connections pin) and are declared with the
 * DR column's type, so the DR server reads each value with that type's
 * input function and finds rows by typed values, never by text. An UPDATE
 * or DELETE must change exactly one row, checked by the server inside the
 * statement, so the COMMIT pipelined after it cannot commit past a change
 * that did not happen.
 */
#include "apply_internal.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void apply_sql_ident(buf_t *b, const char *name)
{
	buf_append_char(b, '"');
	for (; *name; name++) {
		if (*name == '"')
			buf_append_char(b, '"');
		buf_append_char(b, *name);
	}
	buf_append_char(b, '"');
}

void apply_sql_qualified(buf_t *b, const relcache_entry_t *rel)
{
	apply_sql_ident(b, rel->namespace[0] ? rel->namespace : "pg_catalog");
	buf_append_char(b, '.');
	apply_sql_ident(b, rel->name);
}

void apply_sql_column_list(buf_t *b, const relcache_entry_t *rel)
{
	int i;

	buf_append_char(b, '(');
	for (i = 0; i < rel->ncolumns; i++) {
		if (i)
			buf_append_str(b, ", ");
		apply_sql_ident(b, rel->columns[i].name);
	}
	buf_append_char(b, ')');
}

/* The cache key of a change: operation, relation and the generation of
 * its Relation message, and one byte per column saying which values the
 * statement leaves out (unchanged TOAST) — no text formatting per row. */
static void shape_key(apply_t *a, char op, const relcache_entry_t *rel, const tuple_t *newt,
                      const tuple_t *old, bool full)
{
	int i;

	buf_reset(&a->key);
	buf_append_u8(&a->key, (uint8_t)op);
	buf_append_be32(&a->key, rel->relid);
	buf_append_be64(&a->key, rel->generation);
	buf_append_u8(&a->key, full ? 1 : 0);
	if (newt == NULL && !full)
		return;
	for (i = 0; i < rel->ncolumns; i++)
		buf_append_u8(&a->key, (uint8_t)((newt && newt->columns[i].kind == 'u') |
		                                 ((full && old->columns[i].kind == 'u') << 1)));
}

const relcache_entry_t *rows_relation(apply_t *a, uint32_t relid, pgf_error_t *err)
{
	const relcache_entry_t *rel = relcache_get(a->relcache, relid);

	if (rel == NULL) {
		error_set(err, PGF_E_PROTOCOL, "change for relation %u before its Relation message",
		          relid);
		return NULL;
	}
	if (schema_check(&a->schema, &a->pl, rel, a->cfg->apply_coalesce, err) != PGF_OK)
		return NULL;
	return rel;
}

int rows_check_tuple(const relcache_entry_t *rel, const tuple_t *t, pgf_error_t *err)
{
	if (t->ncolumns != rel->ncolumns) {
		error_set(err, PGF_E_PROTOCOL,
		          "tuple for %s.%s has %u columns but its Relation message has %u",
		          rel->namespace, rel->name, t->ncolumns, rel->ncolumns);
		return PGF_ERR;
	}
	return PGF_OK;
}

/* Sends a change's statement; the change counts as a row of the group. */
static int send_change(apply_t *a, const stmt_t *s, int n, const char *what, uint32_t relid,
                       bool check_rows, pgf_error_t *err)
{
	a->group.rows++;
	return pipeline_send_prepared(&a->pl, s, n, what, relid, check_rows, err);
}

int rows_insert(apply_t *a, uint32_t relid, const tuple_t *t, pgf_error_t *err)
{
	const relcache_entry_t *rel = rows_relation(a, relid, err);
	const dr_column_t *dr;
	bool identity_always = false;
	const stmt_t *s;
	int i, n = 0;

	if (rel == NULL || rows_check_tuple(rel, t, err) != PGF_OK)
		return PGF_ERR;
	shape_key(a, 'I', rel, NULL, NULL, false);
	s = stmt_find(&a->pl, &a->key);
	if (s != NULL)
		goto send;
	dr = schema_columns(&a->schema, rel, &identity_always);
	buf_reset(&a->sql);
	buf_append_str(&a->sql, "INSERT INTO ");
	apply_sql_qualified(&a->sql, rel);
	buf_append_char(&a->sql, ' ');
	apply_sql_column_list(&a->sql, rel);
	for (i = 0; i < rel->ncolumns; i++)
		a->pl.types[i] = dr ? dr[i].type_oid : 0;
	/* the primary's value of an identity column is the value */
	if (identity_always)
		buf_append_str(&a->sql, " OVERRIDING SYSTEM VALUE");
	buf_append_str(&a->sql, " VALUES (");
	for (i = 0; i < rel->ncolumns; i++)
		buf_printf(&a->sql, "%s$%d", i ? ", " : "", i + 1);
	buf_append_char(&a->sql, ')');
	if (buf_failed(&a->sql) || buf_failed(&a->key))
		return error_set(err, PGF_E_MEMORY, "out of memory");
	s = stmt_prepare(&a->pl, &a->key, &a->sql, rel->ncolumns, err);
	if (s == NULL)
		return PGF_ERR;
send:
	for (i = 0; i < rel->ncolumns; i++) {
		if (t->columns[i].kind == 'u')
			return error_set(err, PGF_E_PROTOCOL,
			                 "insert into %s.%s carries an unchanged "
			                 "TOAST column",
			                 rel->namespace, rel->name);
		pipeline_add_param(&a->pl, &n, &t->columns[i]);
	}
	return send_change(a, s, n, "insert", relid, false, err);
}

/*
 * The WHERE clause that finds the row. Values are parameters of the DR
 * column's own type (a->pl.types), so they are read by that type's input
 * function in the DR session and compared as values, never as the text
 * the walsender printed.
 *
 * Replica identity DEFAULT / INDEX: by the key columns, with their
 * equality. FULL: every old column (but unchanged TOAST), NULL-safely, with
 * the type's equality where it has one and by the exact text of both
 * values printed by the DR server where it has none (json, point, xml...);
 * among equal rows, one whose every value also prints the same comes first
 * (equal is not identical: 1.0 and 1.00, citext 'A' and 'a'); limited to
 * one physical row, since a table without a key may hold duplicates.
 *
 * A GENERATED ALWAYS identity column that is not a key is left out of the
 * SET list (the DR server takes no value for it in an UPDATE) and checked
 * here to have the new value (guard), so a change of it cannot pass unseen.
 */
static void append_where(apply_t *a, const relcache_entry_t *rel, const dr_column_t *dr,
                         const tuple_t *old, bool full, const bool *guard, int *pno)
{
	int i, first_param = *pno + 1;
	bool first = true;

	if (full) {
		buf_append_str(&a->sql, " WHERE (tableoid, ctid) = (SELECT tableoid, ctid FROM ");
		apply_sql_qualified(&a->sql, rel);
		buf_append_str(&a->sql, " WHERE ");
		for (i = 0; i < rel->ncolumns; i++) {
			if (old->columns[i].kind == 'u')
				continue;
			if (!first)
				buf_append_str(&a->sql, " AND ");
			first = false;
			a->pl.types[*pno] = dr ? dr[i].type_oid : 0;
			if (dr == NULL || dr[i].equality) {
				apply_sql_ident(&a->sql, rel->columns[i].name);
				buf_printf(&a->sql, " IS NOT DISTINCT FROM $%d", ++*pno);
			} else {
				buf_append_char(&a->sql, '(');
				apply_sql_ident(&a->sql, rel->columns[i].name);
				buf_printf(&a->sql, ")::text IS NOT DISTINCT FROM $%d::text",
				           ++*pno);
			}
		}
		if (first)
			buf_append_str(&a->sql, "true");
		if (!first && dr != NULL) {
			int p = first_param;
			bool any = false;
			buf_append_str(&a->sql, " ORDER BY ");
			for (i = 0; i < rel->ncolumns; i++) {
				if (old->columns[i].kind == 'u')
					continue;
				if (dr[i].equality) {
					buf_append_str(&a->sql, any ? " AND (" : "(");
					apply_sql_ident(&a->sql, rel->columns[i].name);
					buf_printf(&a->sql,
					           ")::text IS NOT DISTINCT FROM $%d::text", p);
					any = true;
				}
				p++;
			}
			if (any)
				buf_append_str(&a->sql, " DESC");
			else
				buf_append_str(&a->sql, "1");
		}
		buf_append_str(&a->sql, " LIMIT 1)");
	} else {
		buf_append_str(&a->sql, " WHERE ");
		for (i = 0; i < rel->ncolumns; i++) {
			if (!rel->columns[i].key)
				continue;
			if (!first)
				buf_append_str(&a->sql, " AND ");
			first = false;
			a->pl.types[*pno] = dr ? dr[i].type_oid : 0;
			apply_sql_ident(&a->sql, rel->columns[i].name);
			buf_printf(&a->sql, " = $%d", ++*pno);
		}
		if (first)
			buf_append_str(&a->sql, "false");
	}
	for (i = 0; guard && i < rel->ncolumns; i++) {
		if (!guard[i])
			continue;
		a->pl.types[*pno] = dr ? dr[i].type_oid : 0;
		buf_append_str(&a->sql, " AND ");
		apply_sql_ident(&a->sql, rel->columns[i].name);
		buf_printf(&a->sql, " = $%d", ++*pno);
	}
}

static void add_where_params(apply_t *a, const relcache_entry_t *rel, const tuple_t *old, bool full,
                             int *n)
{
	int i;

	for (i = 0; i < rel->ncolumns; i++) {
		if (full ? old->columns[i].kind == 'u' : !rel->columns[i].key)
			continue;
		pipeline_add_param(&a->pl, n, &old->columns[i]);
	}
}

/* An UPDATE or DELETE that finds its row by key or by a whole row must
 * change exactly one: the statement counts what it changed and raises
 * otherwise (pgferry.row_not_found, sql/dr_state.sql), so that the COMMIT
 * pipelined after it cannot commit past a change that did not happen. */
static void append_row_check_start(apply_t *a)
{
	buf_append_str(&a->sql, "WITH pgferry_changed AS (");
}

/* The relation's name as a string literal, for error messages the DR
 * server raises (standard_conforming_strings is on in this session). */
void apply_sql_relation_literal(buf_t *b, const relcache_entry_t *rel)
{
	const char *parts[2] = {rel->namespace[0] ? rel->namespace : "pg_catalog", rel->name};
	const char *c;
	int i;

	buf_append_char(b, '\'');
	for (i = 0; i < 2; i++) {
		if (i)
			buf_append_char(b, '.');
		for (c = parts[i]; *c; c++) {
			if (*c == '\'')
				buf_append_char(b, '\'');
			buf_append_char(b, *c);
		}
	}
	buf_append_char(b, '\'');
}

static void append_row_check_end(apply_t *a, const relcache_entry_t *rel, const char *op)
{
	buf_printf(&a->sql,
	           " RETURNING 1) SELECT CASE WHEN count(*) = 1 THEN 1 ELSE "
	           "pgferry.row_not_found('%s', ",
	           op);
	apply_sql_relation_literal(&a->sql, rel);
	buf_append_str(&a->sql, ", count(*)) END FROM pgferry_changed");
}

static int no_identity_error(const relcache_entry_t *rel, const char *op, pgf_error_t *err)
{
	error_set(err, PGF_E_APPLY, "cannot %s in %s.%s: it has no replica identity", op,
	          rel->namespace, rel->name);
	error_hint(err, "Give the table a primary key or REPLICA IDENTITY FULL on the primary.");
	return PGF_ERR;
}

static bool same_value(const tuple_column_t *x, const tuple_column_t *y)
{
	return x->kind == y->kind && x->len == y->len &&
	       (x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
}

/* How an UPDATE treats each GENERATED ALWAYS identity column of the DR
 * table, which the DR server lets no UPDATE set: left out of the SET list
 * (skip) when the value is known not to change, or when it cannot be known
 * (a column outside the key), then checked in the WHERE clause (guard). A
 * value that does change stops apply with an error saying what to do. */
static int identity_plan(const relcache_entry_t *rel, const dr_column_t *dr, const tuple_t *newt,
                         const tuple_t *old, char old_kind, bool *skip, bool *guard,
                         pgf_error_t *err)
{
	int i;

	for (i = 0; i < rel->ncolumns; i++) {
		bool changed = false;
		skip[i] = guard[i] = false;
		if (!dr[i].identity_always || newt->columns[i].kind == 'u')
			continue;
		skip[i] = true;
		if (old_kind == 'O' || (old_kind == 'K' && rel->columns[i].key))
			changed = old->columns[i].kind != 'u' &&
			          !same_value(&old->columns[i], &newt->columns[i]);
		else if (!rel->columns[i].key)
			guard[i] = true; /* the old value was not sent */
		if (changed) {
			error_set(err, PGF_E_APPLY,
			          "the primary changed the GENERATED ALWAYS identity column \"%s\" "
			          "of "
			          "%s.%s, which the DR database lets no UPDATE set",
			          rel->columns[i].name, rel->namespace, rel->name);
			error_hint(
			        err,
			        "Make the DR column GENERATED BY DEFAULT (ALTER TABLE ... ALTER "
			        "COLUMN ... SET GENERATED BY DEFAULT) or drop its identity; apply "
			        "retries by itself.");
			return PGF_ERR;
		}
	}
	return PGF_OK;
}

int rows_update(apply_t *a, const pgoutput_message_t *m, pgf_error_t *err)
{
	const relcache_entry_t *rel = rows_relation(a, m->u.update.relid, err);
	const tuple_t *newt = &m->u.update.new_tuple;
	const tuple_t *old;
	const dr_column_t *dr;
	bool full, identity_always = false;
	bool skip[PGOUTPUT_MAX_COLUMNS], guard[PGOUTPUT_MAX_COLUMNS];
	const stmt_t *s;
	int i, n = 0, pno = 0;

	if (rel == NULL || rows_check_tuple(rel, newt, err) != PGF_OK)
		return PGF_ERR;
	full = m->u.update.old_kind == 'O';
	old = m->u.update.old_kind ? &m->u.update.old_tuple : newt;
	if (m->u.update.old_kind && rows_check_tuple(rel, old, err) != PGF_OK)
		return PGF_ERR;
	if (!full && !relation_has_key(rel))
		return no_identity_error(rel, "update", err);
	for (i = 0; i < rel->ncolumns && newt->columns[i].kind == 'u'; i++)
		;
	if (i == rel->ncolumns)
		return PGF_OK; /* nothing but unchanged TOAST: nothing to write */
	dr = schema_columns(&a->schema, rel, &identity_always);
	if (dr == NULL || !identity_always) {
		memset(skip, 0, sizeof(bool) * rel->ncolumns);
		memset(guard, 0, sizeof(bool) * rel->ncolumns);
	} else if (identity_plan(rel, dr, newt, old, m->u.update.old_kind, skip, guard, err) !=
	           PGF_OK)
		return PGF_ERR;
	shape_key(a, 'U', rel, newt, old, full);
	s = stmt_find(&a->pl, &a->key);
	if (s != NULL)
		goto send;
	buf_reset(&a->sql);
	append_row_check_start(a);
	buf_append_str(&a->sql, "UPDATE ");
	apply_sql_qualified(&a->sql, rel);
	buf_append_str(&a->sql, " SET ");
	for (i = 0; i < rel->ncolumns; i++) {
		/* unchanged TOAST values are not sent: leave them as they are */
		if (newt->columns[i].kind == 'u' || skip[i])
			continue;
		if (pno)
			buf_append_str(&a->sql, ", ");
		apply_sql_ident(&a->sql, rel->columns[i].name);
		a->pl.types[pno] = dr ? dr[i].type_oid : 0;
		buf_printf(&a->sql, " = $%d", ++pno);
	}
	if (pno == 0) {
		/* nothing but identity columns that stay: write the row as it is,
		 * so that it must still be there */
		for (i = 0; i < rel->ncolumns - 1 && dr && dr[i].identity_always; i++)
			;
		apply_sql_ident(&a->sql, rel->columns[i].name);
		buf_append_str(&a->sql, " = ");
		apply_sql_ident(&a->sql, rel->columns[i].name);
	}
	append_where(a, rel, dr, old, full, identity_always ? guard : NULL, &pno);
	append_row_check_end(a, rel, "update");
	if (buf_failed(&a->sql) || buf_failed(&a->key))
		return error_set(err, PGF_E_MEMORY, "out of memory");
	s = stmt_prepare(&a->pl, &a->key, &a->sql, pno, err);
	if (s == NULL)
		return PGF_ERR;
send:
	for (i = 0; i < rel->ncolumns; i++)
		if (newt->columns[i].kind != 'u' && !skip[i])
			pipeline_add_param(&a->pl, &n, &newt->columns[i]);
	add_where_params(a, rel, old, full, &n);
	for (i = 0; identity_always && i < rel->ncolumns; i++)
		if (guard[i])
			pipeline_add_param(&a->pl, &n, &newt->columns[i]);
	return send_change(a, s, n, "update", rel->relid, true, err);
}

int rows_delete(apply_t *a, const pgoutput_message_t *m, pgf_error_t *err)
{
	const relcache_entry_t *rel = rows_relation(a, m->u.delete_.relid, err);
	const tuple_t *old = &m->u.delete_.old_tuple;
	bool full = m->u.delete_.old_kind == 'O';
	const stmt_t *s;
	int n = 0, pno = 0;

	if (rel == NULL || rows_check_tuple(rel, old, err) != PGF_OK)
		return PGF_ERR;
	if (!full && !relation_has_key(rel))
		return no_identity_error(rel, "delete", err);
	shape_key(a, 'D', rel, NULL, old, full);
	s = stmt_find(&a->pl, &a->key);
	if (s != NULL)
		goto send;
	buf_reset(&a->sql);
	append_row_check_start(a);
	buf_append_str(&a->sql, "DELETE FROM ");
	apply_sql_qualified(&a->sql, rel);
	append_where(a, rel, schema_columns(&a->schema, rel, NULL), old, full, NULL, &pno);
	append_row_check_end(a, rel, "delete");
	if (buf_failed(&a->sql) || buf_failed(&a->key))
		return error_set(err, PGF_E_MEMORY, "out of memory");
	s = stmt_prepare(&a->pl, &a->key, &a->sql, pno, err);
	if (s == NULL)
		return PGF_ERR;
send:
	add_where_params(a, rel, old, full, &n);
	return send_change(a, s, n, "delete", rel->relid, true, err);
}

/* For a row inserted and deleted again within one DR transaction (net
 * changes): no row with its key may exist on the DR side, or the insert
 * would have failed had it been applied in order. */
static int apply_check_absent(apply_t *a, uint32_t relid, const tuple_t *t, pgf_error_t *err)
{
	const relcache_entry_t *rel = rows_relation(a, relid, err);
	const stmt_t *s;
	int n = 0, pno = 0;

	if (rel == NULL || rows_check_tuple(rel, t, err) != PGF_OK)
		return PGF_ERR;
	shape_key(a, 'X', rel, NULL, NULL, false);
	s = stmt_find(&a->pl, &a->key);
	if (s != NULL)
		goto send;
	buf_reset(&a->sql);
	buf_append_str(&a->sql, "SELECT CASE WHEN EXISTS (SELECT 1 FROM ");
	apply_sql_qualified(&a->sql, rel);
	append_where(a, rel, schema_columns(&a->schema, rel, NULL), t, false, NULL, &pno);
	buf_append_str(&a->sql, ") THEN pgferry.row_exists(");
	apply_sql_relation_literal(&a->sql, rel);
	buf_append_str(&a->sql, ") ELSE 1 END");
	if (buf_failed(&a->sql) || buf_failed(&a->key))
		return error_set(err, PGF_E_MEMORY, "out of memory");
	s = stmt_prepare(&a->pl, &a->key, &a->sql, pno, err);
	if (s == NULL)
		return PGF_ERR;
send:
	add_where_params(a, rel, t, false, &n);
	return send_change(a, s, n, "insert", rel->relid, false, err);
}

int rows_truncate(apply_t *a, const pgoutput_message_t *m, pgf_error_t *err)
{
	uint32_t i;

	buf_reset(&a->sql);
	buf_append_str(&a->sql, "TRUNCATE ");
	for (i = 0; i < m->u.truncate.nrelids; i++) {
		const relcache_entry_t *rel = rows_relation(a, pgoutput_truncate_relid(m, i), err);
		if (rel == NULL)
			return PGF_ERR;
		if (i)
			buf_append_str(&a->sql, ", ");
		apply_sql_qualified(&a->sql, rel);
	}
	if (m->u.truncate.options & 2)
		buf_append_str(&a->sql, " RESTART IDENTITY");
	if (m->u.truncate.options & 1)
		buf_append_str(&a->sql, " CASCADE");
	if (buf_failed(&a->sql))
		return error_set(err, PGF_E_MEMORY, "out of memory");
	if (PQsendQueryParams(a->pl.conn, a->sql.data, 0, NULL, NULL, NULL, NULL, 0) != 1)
		return apply_conn_error(err, a->pl.conn, "sending a truncate");
	pipeline_push(&a->pl, "truncate", m->u.truncate.nrelids ? pgoutput_truncate_relid(m, 0) : 0,
	              false, NULL);
	a->group.rows++;
	return pipeline_maybe_sync(&a->pl, err);
}

/* Writes one held row as the statement it takes. */
int rows_write_held(apply_t *a, const coalesce_row_t *r, pgf_error_t *err)
{
	pgoutput_message_t *m = a->net_msg;
	coalesce_write_t how = coalesce_row_write(r);
	tuple_t *t;
	int i;

	memset(m, 0, offsetof(pgoutput_message_t, u));
	switch (how) {
	case COALESCE_WRITE_INSERT:
		t = &m->u.insert.new_tuple;
		m->u.insert.relid = r->relid;
		break;
	case COALESCE_WRITE_UPDATE:
		t = &m->u.update.new_tuple;
		m->u.update.relid = r->relid;
		m->u.update.old_kind = 0;
		break;
	case COALESCE_WRITE_DELETE:
		t = &m->u.delete_.old_tuple;
		m->u.delete_.relid = r->relid;
		m->u.delete_.old_kind = 'K';
		break;
	default:
		t = &m->u.delete_.old_tuple;
		break;
	}
	t->ncolumns = r->ncolumns;
	for (i = 0; i < r->ncolumns; i++)
		t->columns[i] = r->cols[i];
	switch (how) {
	case COALESCE_WRITE_INSERT:
		return rows_insert(a, r->relid, t, err);
	case COALESCE_WRITE_UPDATE:
		return rows_update(a, m, err);
	case COALESCE_WRITE_DELETE:
		return rows_delete(a, m, err);
	default:
		/* inserted and deleted again: nothing to write, but the insert
		 * must have been possible, as in order */
		return apply_check_absent(a, r->relid, t, err);
	}
}

int rows_flush_held(apply_t *a, pgf_error_t *err)
{
	uint64_t rows = a->group.rows; /* counted when they came in */
	int rc = batch_write_held(a, err);

	a->group.rows = rows;
	coalesce_clear(&a->net);
	return rc;
}
