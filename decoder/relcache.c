/*
 * relcache.c — relation OID → last Relation message, with owned copies of
 * every name, and type OID → name from Type messages (see decoder.h).
 */
#include "pgferry/decoder.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define BUCKETS 256

typedef struct rel_node {
	struct rel_node *next;
	relcache_entry_t e;
} rel_node_t;

typedef struct type_node {
	struct type_node *next;
	uint32_t oid;
	char *name; /* namespace.name */
} type_node_t;

struct relcache {
	rel_node_t *rels[BUCKETS];
	type_node_t *types[BUCKETS];
	uint64_t generation;
};

relcache_t *relcache_create(void)
{
	return calloc(1, sizeof(relcache_t));
}

static void entry_free(relcache_entry_t *e)
{
	uint16_t i;

	for (i = 0; i < e->ncolumns; i++)
		free(e->columns[i].name);
	free(e->columns);
	free(e->namespace);
	free(e->name);
}

void relcache_clear(relcache_t *c)
{
	int i;

	for (i = 0; i < BUCKETS; i++) {
		rel_node_t *n = c->rels[i], *next;
		type_node_t *t = c->types[i], *tnext;
		for (; n; n = next) {
			next = n->next;
			entry_free(&n->e);
			free(n);
		}
		for (; t; t = tnext) {
			tnext = t->next;
			free(t->name);
			free(t);
		}
		c->rels[i] = NULL;
		c->types[i] = NULL;
	}
}

void relcache_free(relcache_t *c)
{
	if (c == NULL)
		return;
	relcache_clear(c);
	free(c);
}

bool relcache_same(const relcache_t *c, const pgoutput_message_t *m)
{
	const relcache_entry_t *e = relcache_get(c, m->u.relation.relid);
	uint16_t i;

	if (e == NULL || e->replica_identity != m->u.relation.replica_identity ||
	    e->ncolumns != m->u.relation.ncolumns ||
	    strcmp(e->namespace, m->u.relation.namespace) != 0 ||
	    strcmp(e->name, m->u.relation.name) != 0)
		return false;
	for (i = 0; i < e->ncolumns; i++) {
		const relation_column_t *src = &m->u.relation.columns[i];
		const relcache_column_t *have = &e->columns[i];
		if (strcmp(have->name, src->name) != 0 || have->type_oid != src->type_oid ||
		    have->type_mod != src->type_mod || have->key != ((src->flags & 1) != 0))
			return false;
	}
	return true;
}

int relcache_update(relcache_t *c, const pgoutput_message_t *m, pgf_error_t *err)
{
	unsigned b = m->u.relation.relid % BUCKETS;
	rel_node_t *n, **pp;
	uint16_t i;

	/* the walsender describes a table again after any invalidation of it,
	 * a VACUUM or ANALYZE among them: the same description keeps the entry
	 * and its generation, so what was checked and prepared for it holds */
	if (relcache_same(c, m))
		return PGF_OK;
	n = calloc(1, sizeof(*n));
	if (n == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory caching relation %u",
		                 m->u.relation.relid);
	n->e.relid = m->u.relation.relid;
	n->e.namespace = strdup(m->u.relation.namespace);
	n->e.name = strdup(m->u.relation.name);
	n->e.replica_identity = m->u.relation.replica_identity;
	n->e.columns = calloc(m->u.relation.ncolumns ? m->u.relation.ncolumns : 1,
	                      sizeof(relcache_column_t));
	if (n->e.namespace == NULL || n->e.name == NULL || n->e.columns == NULL)
		goto oom;
	for (i = 0; i < m->u.relation.ncolumns; i++) {
		const relation_column_t *src = &m->u.relation.columns[i];
		relcache_column_t *dst = &n->e.columns[i];
		dst->name = strdup(src->name);
		if (dst->name == NULL)
			goto oom;
		n->e.ncolumns = (uint16_t)(i + 1);
		dst->type_oid = src->type_oid;
		dst->type_mod = src->type_mod;
		dst->key = (src->flags & 1) != 0;
	}
	n->e.ncolumns = m->u.relation.ncolumns;
	n->e.generation = ++c->generation;
	/* replace an earlier entry of the same relation */
	for (pp = &c->rels[b]; *pp; pp = &(*pp)->next) {
		if ((*pp)->e.relid == n->e.relid) {
			rel_node_t *old = *pp;
			n->next = old->next;
			*pp = n;
			entry_free(&old->e);
			free(old);
			return PGF_OK;
		}
	}
	n->next = c->rels[b];
	c->rels[b] = n;
	return PGF_OK;
oom:
	entry_free(&n->e);
	free(n);
	return error_set(err, PGF_E_MEMORY, "out of memory caching relation %u",
	                 m->u.relation.relid);
}

const relcache_entry_t *relcache_get(const relcache_t *c, uint32_t relid)
{
	const rel_node_t *n;

	for (n = c->rels[relid % BUCKETS]; n; n = n->next)
		if (n->e.relid == relid)
			return &n->e;
	return NULL;
}

int relcache_update_type(relcache_t *c, const pgoutput_message_t *m, pgf_error_t *err)
{
	unsigned b = m->u.type.type_oid % BUCKETS;
	size_t len = strlen(m->u.type.namespace) + strlen(m->u.type.name) + 2;
	char *name = malloc(len);
	type_node_t *t;

	if (name == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory");
	snprintf(name, len, "%s.%s", m->u.type.namespace, m->u.type.name);
	for (t = c->types[b]; t; t = t->next) {
		if (t->oid == m->u.type.type_oid) {
			free(t->name);
			t->name = name;
			return PGF_OK;
		}
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		free(name);
		return error_set(err, PGF_E_MEMORY, "out of memory");
	}
	t->oid = m->u.type.type_oid;
	t->name = name;
	t->next = c->types[b];
	c->types[b] = t;
	return PGF_OK;
}

const char *relcache_type_name(const relcache_t *c, uint32_t type_oid)
{
	const type_node_t *t;

	for (t = c->types[type_oid % BUCKETS]; t; t = t->next)
		if (t->oid == type_oid)
			return t->name;
	return NULL;
}
