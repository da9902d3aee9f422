/*
 * verify.h — the pieces of `pgferry verify` (relay/dr/verify_*.c): the
 * command and its steps (verify_cmd.c), one table compared chunk by chunk
 * (verify_table.c), the sequences (verify_sequences.c). Used by nothing
 * outside relay/dr/.
 */
#ifndef PGFERRY_VERIFY_H
#define PGFERRY_VERIFY_H

#include "pgferry/config.h"
#include "pgferry/error.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

#define MAX_KEYS 32

typedef struct verifier {
	const config_t *cfg;
	PGconn *p, *d;
	bool dr_has_origin;
	bool dr_has_applied; /* pgferry.applied_lsn: the newest over the stream's origins */
	char origin[512];    /* the stream's replication origin on the DR side */
	bool dr_stalled;     /* the DR side stopped applying: compare as it is */
	bool as_json;
	json_t *report; /* array of tables (for --json) */
	pgf_error_t err;
} verifier_t;

typedef struct table {
	char *schema, *name, *qualified; /* qualified is quoted */
	char *cols;                      /* "a", "b", ... quoted, comma-separated */
	int nkeys;
	char *keys[MAX_KEYS];      /* quoted key column names */
	char *key_types[MAX_KEYS]; /* format_type of each key column */
	char *key_list;            /* "k1", "k2" */
} table_t;

/* How many tables or sequences came out which way ("differ" is "behind"
 * for a sequence). */
typedef struct verify_counts {
	int equal, differ, missing, busy, error;
} verify_counts_t;

/* Frees what t holds and zeroes it. */
void verify_table_free(table_t *t);
/* Appends a to the malloc'd string s (NULL: a new one); NULL when out of
 * memory (s is freed). */
char *verify_append(char *s, const char *a);
/* Compares table t (schema, name and qualified set) on both sides and
 * fills entry; returns the result: "equal", "differ", "missing", "busy" or
 * "error" (v->err says why). */
const char *verify_table(verifier_t *v, table_t *t, json_t *entry);
/* Counts result (as verify_table returns it) in n; an "error" also goes
 * into entry, v->err formatted. */
void verify_count(verifier_t *v, json_t *entry, const char *result, verify_counts_t *n);
/* One table's report line (and its differences) for people. */
void verify_print_table(const char *qualified, json_t *e);
/* Compares the sequences of the published tables, one entry each in
 * report; counts the results in n. */
void verify_sequences(verifier_t *v, const char *publication, json_t *report, verify_counts_t *n);

#endif
