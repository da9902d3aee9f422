/*
 * parallel_keys.c — which rows a change writes, by the DR table's replica
 * identity and unique indexes (read once per table from the catalog), so
 * the coordinator knows which units may run at once (depend.h).
 */
#include "parallel_internal.h"

/* ---- what a table's keys are (the DR table's unique indexes) ------------------ */

static const char index_sql[] =
        "SELECT i.indexrelid::int8, i.indnullsnotdistinct, "
        "i.indexprs IS NULL AND i.indpred IS NULL AND i.indimmediate AND NOT "
        "i.indisexclusion, a.attname "
        "FROM pg_catalog.pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH "
        "ORDINALITY k(n, o) LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND "
        "a.attnum = k.n WHERE i.indrelid = to_regclass(pg_catalog.quote_ident($1) || '.' || "
        "pg_catalog.quote_ident($2)) AND (i.indisunique OR i.indisexclusion) AND i.indislive ORDER "
        "BY "
        "i.indexrelid, k.o";

static int column_of(const relcache_entry_t *rel, const char *name)
{
	int i;

	for (i = 0; i < rel->ncolumns; i++)
		if (strcmp(rel->columns[i].name, name) == 0)
			return i;
	return -1;
}

static bool within_ri(const table_keys_t *t, const index_keys_t *x)
{
	unsigned i, j;

	for (i = 0; i < x->ncols; i++) {
		for (j = 0; j < t->nri && t->ri[j] != x->cols[i]; j++)
			;
		if (j == t->nri)
			return false;
	}
	return true;
}

/* Reads the unique indexes of rel's DR table; a query that fails leaves the
 * table a barrier (applied alone: slower, never wrong). */
static void read_indexes(struct sink_parallel *par, const relcache_entry_t *rel, table_keys_t *t)
{
	const char *params[2] = {rel->namespace, rel->name};
	PGresult *res;
	int i;
	uint32_t cur = 0;

	if (par->catalog == NULL || PQstatus(par->catalog) != CONNECTION_OK) {
		PQfinish(par->catalog);
		par->catalog = PQconnectdb(par->cfg.dr_conninfo);
	}
	if (PQstatus(par->catalog) != CONNECTION_OK) {
		t->barrier = true;
		return;
	}
	res = PQexecParams(par->catalog, index_sql, 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		t->barrier = true;
		PQclear(res);
		return;
	}
	for (i = 0; i < PQntuples(res); i++) {
		uint32_t id = (uint32_t)strtoul(PQgetvalue(res, i, 0), NULL, 10);
		index_keys_t *x;
		int col;
		if (id != cur) {
			if (t->nidx == MAX_INDEXES) {
				t->barrier = true;
				break;
			}
			cur = id;
			x = &t->idx[t->nidx++];
			memset(x, 0, sizeof(*x));
			x->id = id;
			x->nulls_distinct = strcmp(PQgetvalue(res, i, 1), "t") != 0;
			/* an expression, a partial or a deferred index, an exclusion
			 * constraint: which rows meet is not known from the values */
			if (strcmp(PQgetvalue(res, i, 2), "t") != 0)
				t->barrier = true;
		}
		x = &t->idx[t->nidx - 1];
		col = PQgetisnull(res, i, 3) ? -1 : column_of(rel, PQgetvalue(res, i, 3));
		if (col < 0 || x->ncols == MAX_KEY_COLUMNS) {
			t->barrier = true; /* a column the stream does not carry */
			continue;
		}
		x->cols[x->ncols++] = (uint16_t)col;
	}
	PQclear(res);
}

static const table_keys_t *table_keys(struct sink_parallel *par, const relcache_entry_t *rel)
{
	table_keys_t *t = NULL;
	size_t i;
	int c;

	for (i = 0; i < par->ntables; i++)
		if (par->tables[i].relid == rel->relid) {
			t = &par->tables[i];
			break;
		}
	if (t != NULL && t->generation == rel->generation)
		return t;
	if (t == NULL) {
		if (par->ntables == par->tables_cap) {
			size_t cap = par->tables_cap ? par->tables_cap * 2 : 32;
			table_keys_t *n = realloc(par->tables, cap * sizeof(*n));
			if (n == NULL)
				return NULL;
			par->tables = n;
			par->tables_cap = cap;
		}
		t = &par->tables[par->ntables++];
	}
	memset(t, 0, sizeof(*t));
	t->relid = rel->relid;
	t->generation = rel->generation;
	for (c = 0; c < rel->ncolumns; c++)
		if (rel->columns[c].key) {
			if (t->nri == MAX_KEY_COLUMNS) {
				t->barrier = true;
				break;
			}
			t->ri[t->nri++] = (uint16_t)c;
		}
	/* FULL names every column: a row, not a key; NOTHING names none */
	t->use_ri = (rel->replica_identity == 'd' || rel->replica_identity == 'i') && t->nri > 0;
	read_indexes(par, rel, t);
	if (!t->use_ri && t->nidx == 0)
		t->barrier = true; /* nothing tells two rows apart */
	for (i = 0; i < t->nidx; i++)
		if (!t->use_ri || !within_ri(t, &t->idx[i]))
			t->secondary = true;
	return t;
}

/* Every key of t's row image under table k. */
static void add_keys(depend_footprint_t *fp, const relcache_entry_t *rel, const table_keys_t *k,
                     const tuple_t *t, bool ri_only)
{
	unsigned i;

	if (k->use_ri)
		depend_footprint_add(fp, rel->relid, 0, t, k->ri, k->nri, false);
	if (ri_only)
		return;
	for (i = 0; i < k->nidx; i++)
		depend_footprint_add(fp, rel->relid, k->idx[i].id, t, k->idx[i].cols,
		                     k->idx[i].ncols, k->idx[i].nulls_distinct);
}

/* What one change writes, into the transaction's footprint. */
void par_footprint_change(struct sink_parallel *par, const pgoutput_message_t *m)
{
	depend_footprint_t *fp = &par->txn_fp;
	const relcache_entry_t *rel;
	const table_keys_t *k;
	uint32_t relid = m->type == PGOUTPUT_INSERT   ? m->u.insert.relid
	                 : m->type == PGOUTPUT_UPDATE ? m->u.update.relid
	                                              : m->u.delete_.relid;

	rel = relcache_get(par->relcache, relid);
	k = rel ? table_keys(par, rel) : NULL;
	if (k == NULL || k->barrier) {
		depend_footprint_barrier(fp);
		return;
	}
	switch (m->type) {
	case PGOUTPUT_INSERT:
		add_keys(fp, rel, k, &m->u.insert.new_tuple, false);
		break;
	case PGOUTPUT_UPDATE:
		add_keys(fp, rel, k, &m->u.update.new_tuple, false);
		if (m->u.update.old_kind == 'O')
			add_keys(fp, rel, k, &m->u.update.old_tuple, false);
		else if (k->secondary)
			depend_footprint_barrier(fp); /* the old unique values are unknown */
		else if (m->u.update.old_kind == 'K')
			add_keys(fp, rel, k, &m->u.update.old_tuple, true);
		break;
	default: /* DELETE */
		if (m->u.delete_.old_kind == 'O')
			add_keys(fp, rel, k, &m->u.delete_.old_tuple, false);
		else if (k->secondary)
			depend_footprint_barrier(fp);
		else
			add_keys(fp, rel, k, &m->u.delete_.old_tuple, true);
		break;
	}
}
