/*
 * schema.c — Relation messages checked against the DR tables, once per
 * relation and generation on each connection: apply never guesses where a
 * column went. The check also finds each DR column's type (parameters are
 * sent as that type), whether it has an equality operator, whether it is
 * GENERATED ALWAYS AS IDENTITY, and how the table's changes may be
 * coalesced (coalesce.h).
 */
#include "apply_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Forgets which relations were checked against the DR tables. */
void schema_clear(apply_schema_t *s)
{
	int i;

	for (i = 0; i < VERIFIED_SLOTS; i++)
		free(s->verified[i].columns);
	memset(s->verified, 0, sizeof(s->verified));
	s->nverified = 0;
}

/* The slot of relid, or -1 when it was not checked. */
static int verified_slot(const apply_schema_t *s, uint32_t relid)
{
	unsigned i = (relid * 2654435761u) % VERIFIED_SLOTS, n;

	for (n = 0; n < VERIFIED_SLOTS && s->verified[i].relid != 0; n++) {
		if (s->verified[i].relid == relid)
			return (int)i;
		i = (i + 1) % VERIFIED_SLOTS;
	}
	return -1;
}

static bool verified_get(const apply_schema_t *s, uint32_t relid, uint64_t generation,
                         uint8_t *mode)
{
	int i = verified_slot(s, relid);

	if (i < 0)
		return false;
	if (mode)
		*mode = s->verified[i].mode;
	return s->verified[i].generation == generation;
}

/* Records a checked relation; takes ownership of columns. */
static void verified_put(apply_schema_t *s, const relcache_entry_t *rel, uint8_t mode,
                         bool key_unique, dr_column_t *columns)
{
	unsigned i = (rel->relid * 2654435761u) % VERIFIED_SLOTS;
	int c;

	if (s->nverified >= VERIFIED_SLOTS / 2) {
		/* more relations than expected: forget, and check again */
		schema_clear(s);
	}
	while (s->verified[i].relid != 0 && s->verified[i].relid != rel->relid)
		i = (i + 1) % VERIFIED_SLOTS;
	if (s->verified[i].relid == 0)
		s->nverified++;
	free(s->verified[i].columns);
	s->verified[i].relid = rel->relid;
	s->verified[i].generation = rel->generation;
	s->verified[i].mode = mode;
	s->verified[i].key_unique = key_unique;
	s->verified[i].columns = columns;
	s->verified[i].identity_always = false;
	for (c = 0; c < rel->ncolumns; c++)
		if (columns[c].identity_always)
			s->verified[i].identity_always = true;
}

const dr_column_t *schema_columns(const apply_schema_t *s, const relcache_entry_t *rel,
                                  bool *identity_always)
{
	int i = verified_slot(s, rel->relid);

	if (i < 0 || s->verified[i].generation != rel->generation)
		return NULL;
	if (identity_always)
		*identity_always = s->verified[i].identity_always;
	return s->verified[i].columns;
}

static int drift(const relcache_entry_t *rel, pgf_error_t *err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int drift(const relcache_entry_t *rel, pgf_error_t *err, const char *fmt, ...)
{
	char what[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	error_set(err, PGF_E_DRIFT, "schema drift on %s.%s: %s", rel->namespace, rel->name, what);
	error_hint(err, "Make the DR table match the primary's (or set replicate_ddl = on for "
	                "future changes); apply retries by itself and goes on once it matches. "
	                "Nothing of this transaction was applied.");
	return PGF_ERR;
}

bool relation_has_key(const relcache_entry_t *rel)
{
	int i;

	for (i = 0; i < rel->ncolumns; i++)
		if (rel->columns[i].key)
			return true;
	return false;
}

/* Whether only the net change per row may be applied for this table: it
 * must be found by its key (replica identity DEFAULT or INDEX), and on the
 * DR side (every partition included) every unique index must be on exactly
 * those key columns, with no exclusion constraint and no trigger that
 * fires during apply (ENABLE ALWAYS). Then writing each row's final image,
 * in any order, yields the same table and cannot trip a constraint. */
static int check_coalesce(apply_schema_t *s, apply_pipeline_t *p, const relcache_entry_t *rel,
                          bool coalesce, dr_column_t *columns, pgf_error_t *err)
{
	const char *params[3] = {rel->namespace, rel->name, NULL};
	uint8_t mode = COALESCE_NONE;
	bool key_unique;
	buf_t keys;
	int i, n = 0;

	if (!coalesce) {
		verified_put(s, rel, COALESCE_NONE, false, columns);
		return PGF_OK;
	}
	/* the key columns as a text[] literal, sorted like array_agg below */
	buf_init(&keys);
	buf_append_char(&keys, '{');
	for (i = 0; i < rel->ncolumns; i++) {
		const char *c;
		if (!rel->columns[i].key)
			continue;
		buf_append_str(&keys, n++ ? ",\"" : "\"");
		for (c = rel->columns[i].name; *c; c++) {
			if (*c == '"' || *c == '\\')
				buf_append_char(&keys, '\\');
			buf_append_char(&keys, *c);
		}
		buf_append_char(&keys, '"');
	}
	buf_append_char(&keys, '}');
	if (buf_failed(&keys)) {
		buf_free(&keys);
		free(columns);
		return error_set(err, PGF_E_MEMORY, "out of memory");
	}
	params[2] = keys.data;
	if (pipeline_query(
	            p,
	            "WITH t AS (SELECT format('%I.%I', $1::text, $2::text)::regclass AS rel), r AS "
	            "(SELECT rel AS relid FROM t UNION SELECT p.relid FROM t, "
	            "pg_catalog.pg_partition_tree(t.rel) p) SELECT (SELECT count(*) FROM "
	            "pg_catalog.pg_index i WHERE i.indrelid IN (SELECT relid FROM r) AND "
	            "i.indisunique AND (0 = ANY (i.indkey) OR (SELECT array_agg(a.attname::text "
	            "ORDER BY a.attname::text COLLATE \"C\") FROM pg_catalog.pg_attribute a "
	            "WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)) IS DISTINCT "
	            "FROM (SELECT array_agg(k ORDER BY k COLLATE \"C\") FROM unnest($3::text[]) "
	            "k))) + (SELECT count(*) FROM pg_catalog.pg_constraint x WHERE x.conrelid IN "
	            "(SELECT relid FROM r) AND x.contype = 'x'), (SELECT count(*) FROM "
	            "pg_catalog.pg_trigger t WHERE t.tgrelid IN (SELECT relid FROM r) AND "
	            "t.tgenabled = 'A'), "
	            /* the key has a unique index that decides alone which rows
	             * a change by key finds (see schema_key_unique): on the
	             * table itself, which has no inheritance children (the
	             * index would not cover their rows) unless they are
	             * partitions (a partitioned table's unique index covers
	             * them all); checked at once, whole (no predicate, no
	             * expression, no INCLUDE columns), valid, exactly the key
	             * columns, each with its type's default operator class and
	             * its column's collation, so it means the same = as the
	             * statements' WHERE t.key = v.key */
	            "(SELECT c.relkind = 'p' OR NOT EXISTS (SELECT FROM pg_catalog.pg_inherits h "
	            "WHERE h.inhparent = c.oid) FROM pg_catalog.pg_class c, t WHERE c.oid = t.rel) "
	            "AND EXISTS (SELECT FROM pg_catalog.pg_index i, t WHERE i.indrelid = t.rel AND "
	            "i.indisunique AND i.indimmediate AND i.indisvalid AND i.indpred IS NULL AND "
	            "i.indexprs IS NULL AND i.indnatts = i.indnkeyatts AND i.indnatts = "
	            "cardinality($3::text[]) AND (SELECT array_agg(a.attname::text ORDER BY "
	            "a.attname::text COLLATE \"C\") FROM pg_catalog.pg_attribute a WHERE "
	            "a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)) = (SELECT "
	            "array_agg(k ORDER BY k COLLATE \"C\") FROM unnest($3::text[]) k) AND NOT "
	            "EXISTS (SELECT FROM generate_subscripts(i.indkey::int2[], 1) j, "
	            "pg_catalog.pg_attribute a, pg_catalog.pg_opclass o WHERE a.attrelid = "
	            "i.indrelid AND a.attnum = (i.indkey::int2[])[j] AND o.oid = "
	            "(i.indclass::oid[])[j] AND (NOT o.opcdefault OR (i.indcollation::oid[])[j] "
	            "<> a.attcollation)))",
	            3, params, "coalesce check", err) != PGF_OK) {
		buf_free(&keys);
		free(columns);
		return PGF_ERR;
	}
	buf_free(&keys);
	/* a trigger that fires during apply may look at other rows: keep order */
	if (PQntuples(p->kept) == 1 && strcmp(PQgetvalue(p->kept, 0, 1), "0") == 0) {
		mode = COALESCE_APPEND;
		if (rel->replica_identity != 'f' && relation_has_key(rel) &&
		    strcmp(PQgetvalue(p->kept, 0, 0), "0") == 0)
			mode = COALESCE_NET;
	}
	key_unique = PQntuples(p->kept) == 1 && rel->replica_identity != 'f' &&
	             relation_has_key(rel) && strcmp(PQgetvalue(p->kept, 0, 2), "t") == 0;
	PQclear(p->kept);
	p->kept = NULL;
	verified_put(s, rel, mode, key_unique, columns);
	return PGF_OK;
}

/* Compares a Relation message with the DR table, once per relation and
 * generation: apply never guesses where a column went. Generated columns
 * are not sent by the primary and are fine on the DR side. */
int schema_check(apply_schema_t *s, apply_pipeline_t *p, const relcache_entry_t *rel, bool coalesce,
                 pgf_error_t *err)
{
	const char *params[2] = {rel->namespace, rel->name};
	dr_column_t *columns;
	PGresult *res;
	int i, j, n;

	if (rel->namespace[0] == '\0' || verified_get(s, rel->relid, rel->generation, NULL))
		return PGF_OK;
	if (pipeline_query(p,
	                   "SELECT a.attname, a.atttypid::int8, format_type(a.atttypid, "
	                   "a.atttypmod), a.attgenerated <> '', a.attidentity = 'a', "
	                   "pgferry.type_has_equality(a.atttypid), CASE WHEN y.typrelid <> 0 "
	                   "THEN 0 WHEN y.typtype = 'd' THEN (SELECT CASE WHEN b.typrelid = 0 "
	                   "AND b.typtype <> 'd' THEN y.typarray ELSE 0 END FROM "
	                   "pg_catalog.pg_type b WHERE b.oid = y.typbasetype) ELSE y.typarray "
	                   "END::int8, y.typdelim "
	                   "FROM pg_catalog.pg_type y, "
	                   "pg_catalog.pg_attribute a "
	                   "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN "
	                   "pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname "
	                   "= $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') AND a.attnum > 0 "
	                   "AND NOT a.attisdropped AND y.oid = a.atttypid ORDER BY a.attnum",
	                   2, params, "schema check", err) != PGF_OK)
		return PGF_ERR;
	res = p->kept;
	n = PQntuples(res);
	if (n == 0)
		return drift(rel, err, "the table does not exist on the DR database");
	columns = calloc(rel->ncolumns ? rel->ncolumns : 1, sizeof(*columns));
	if (columns == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory");
	for (i = 0; i < rel->ncolumns; i++) {
		const relcache_column_t *c = &rel->columns[i];
		for (j = 0; j < n; j++)
			if (strcmp(PQgetvalue(res, j, 0), c->name) == 0)
				break;
		if (j == n) {
			free(columns);
			return drift(rel, err, "column \"%s\" is missing on the DR database",
			             c->name);
		}
		columns[i].type_oid = (Oid)strtoul(PQgetvalue(res, j, 1), NULL, 10);
		columns[i].identity_always = strcmp(PQgetvalue(res, j, 4), "t") == 0;
		columns[i].equality = strcmp(PQgetvalue(res, j, 5), "t") == 0;
		columns[i].array_oid = (Oid)strtoul(PQgetvalue(res, j, 6), NULL, 10);
		columns[i].array_delimiter = PQgetvalue(res, j, 7)[0];
		/* built-in types have the same OID everywhere; others are compared
		 * by the DR server when the value is read */
		if (c->type_oid < 16384 &&
		    (uint32_t)strtoul(PQgetvalue(res, j, 1), NULL, 10) != c->type_oid) {
			char dr_type[128], primary_type[128], oid[16], mod[16];
			const char *type_params[2] = {oid, mod};
			snprintf(dr_type, sizeof(dr_type), "%s", PQgetvalue(res, j, 2));
			snprintf(primary_type, sizeof(primary_type), "type OID %u", c->type_oid);
			snprintf(oid, sizeof(oid), "%u", c->type_oid);
			snprintf(mod, sizeof(mod), "%d", c->type_mod);
			/* a built-in type has the same name on the DR side */
			free(columns);
			if (pipeline_query(p, "SELECT format_type($1::oid, $2::int)", 2,
			                   type_params, "type name", err) == PGF_OK &&
			    PQntuples(p->kept) == 1)
				snprintf(primary_type, sizeof(primary_type), "%s",
				         PQgetvalue(p->kept, 0, 0));
			return drift(rel, err,
			             "column \"%s\" is %s on the DR database but %s on the primary",
			             c->name, dr_type, primary_type);
		}
	}
	for (j = 0; j < n; j++) {
		const char *name = PQgetvalue(res, j, 0);
		if (strcmp(PQgetvalue(res, j, 3), "t") == 0)
			continue;
		for (i = 0; i < rel->ncolumns; i++)
			if (strcmp(rel->columns[i].name, name) == 0)
				break;
		if (i == rel->ncolumns) {
			free(columns);
			return drift(
			        rel, err,
			        "column \"%s\" exists on the DR database but not on the primary",
			        name);
		}
	}
	PQclear(p->kept);
	p->kept = NULL;
	return check_coalesce(s, p, rel, coalesce, columns, err);
}

bool schema_key_unique(const apply_schema_t *s, const relcache_entry_t *rel)
{
	int i = verified_slot(s, rel->relid);

	return i >= 0 && s->verified[i].generation == rel->generation && s->verified[i].key_unique;
}

coalesce_mode_t schema_coalesce_mode(const apply_schema_t *s, const relcache_entry_t *rel)
{
	uint8_t mode = COALESCE_NONE;

	verified_get(s, rel->relid, rel->generation, &mode);
	return (coalesce_mode_t)mode;
}
