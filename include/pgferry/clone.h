/*
 * clone.h — the pieces of `pgferry clone` (relay/dr/clone_*.c): the
 * command and its steps (clone_cmd.c), the schema copied by pg_dump and
 * pg_restore (clone_schema.c), the data copied table by table
 * (clone_copy.c). Used by nothing outside relay/dr/.
 */
#ifndef PGFERRY_CLONE_H
#define PGFERRY_CLONE_H

#include "pgferry/config.h"
#include "pgferry/error.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct clone_table {
	char *schema, *name;
	char *qualified; /* quoted */
	char *columns;   /* quoted, comma-separated; generated columns left out */
	long long rows;
	long long bytes;
	double seconds;
} clone_table_t;

/* What the copy threads share; lock guards next, failed and err. */
typedef struct clone {
	const config_t *cfg;
	char snapshot[128];
	clone_table_t *tables;
	int ntables, next;
	pthread_mutex_t lock;
	bool failed;
	pgf_error_t err; /* the first worker error */
	double t0;
} clone_t;

/* Runs one statement; false and err set when it fails on side. */
bool clone_exec(PGconn *c, const char *side, const char *sql, pgf_error_t *err);

/* pg_dump of the primary's schema at snapshot into dir, restored into the
 * DR database; *skipped gets the entries left out (pgferry's own, event
 * triggers, publications). */
bool clone_restore_schema(const config_t *cfg, const char *bindir, const char *dir,
                          const char *snapshot, int *skipped, pgf_error_t *err);
/* Removes dir and the files clone_restore_schema wrote into it. */
void clone_remove_dump_dir(const char *dir);

/* Fills cl->tables with the published tables and their replicated columns
 * (generated ones are computed on the DR side); free with
 * clone_free_tables. */
int clone_list_tables(clone_t *cl, PGconn *p, pgf_error_t *err);
void clone_free_tables(clone_t *cl);
/* Copies every table of cl in cl->snapshot, jobs at once; logs a line per
 * table. PGF_ERR with the first error when any copy failed. */
int clone_copy_tables(clone_t *cl, int jobs, pgf_error_t *err);

#endif
