/*
 * parallel_internal.h — what the files of parallel apply share (private to
 * relay/sink/): the coordinator (sink_parallel.c), the units, turns and
 * workers (parallel_units.c), the tables' keys (parallel_keys.c), what runs
 * alone on the coordinator's connection (parallel_main.c). The
 * design is in pgferry/apply_parallel.h.
 */
#ifndef PGFERRY_PARALLEL_INTERNAL_H
#define PGFERRY_PARALLEL_INTERNAL_H

#include "sink_parallel.h"

#include "pgferry/buf.h"
#include "pgferry/decoder.h"
#include "pgferry/depend.h"
#include "pgferry/huge_change.h"
#include "pgferry/log.h"
#include "pgferry/replication.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS      16
#define UNITS_QUEUED     2   /* units waiting per worker */
#define UNIT_RING        256 /* units numbered and not yet reported */
#define UNIT_MAX_BYTES   (8u << 20)
#define DURABLE_EVERY_MS 50.0
#define MAX_INDEXES      16
#define MAX_KEY_COLUMNS  32

/* One record of a unit: this header, then len bytes (a huge change: its
 * file's path, NUL included). */
typedef struct unit_rec {
	pgoutput_facts_t facts; /* what the network thread decoded (queue.h) */
	uint64_t wal_start;
	uint32_t len;
	uint32_t xid;
	char kind; /* 'w' or 'h' */
	uint8_t type;
} unit_rec_t;

typedef struct unit {
	struct unit *next;
	uint64_t seq;
	buf_t recs;
	uint32_t nrecs;
	depend_footprint_t fp;
	apply_group_t stats; /* end_lsn, last_commit_time, transactions, rows, bytes */
	bool durable;
	bool has_huge;
} unit_t;

/* What the DR table's keys are, for footprints. */
typedef struct index_keys {
	uint32_t id;
	bool nulls_distinct;
	unsigned ncols;
	uint16_t cols[MAX_KEY_COLUMNS];
} index_keys_t;

typedef struct table_keys {
	uint32_t relid;
	uint64_t generation;
	bool barrier;   /* no usable key, or one whose values cannot be had */
	bool secondary; /* a unique index beyond the replica identity */
	bool use_ri;
	unsigned nri;
	uint16_t ri[MAX_KEY_COLUMNS];
	unsigned nidx;
	index_keys_t idx[MAX_INDEXES];
} table_keys_t;

typedef struct worker {
	struct sink_parallel *par;
	int index; /* 1.. */
	pthread_t thread;
	bool started;
	apply_t *apply;
	/* under par->lock */
	unit_t *head, *tail;
	unsigned queued;
	bool busy;
	bool reset;        /* roll back and forget (asked by the coordinator) */
	bool unread;       /* COMMITs sent whose result was not read */
	uint64_t unit_seq; /* the unit being applied */
	uint64_t sent[8];  /* seqs whose COMMIT is in flight, oldest first */
	unsigned sent_head, nsent;
	buf_t pending; /* Relation and Type messages it has not seen (coordinator) */
} worker_t;

struct sink_parallel {
	config_t cfg;         /* a copy: groups are cut by the coordinator only */
	const config_t *orig; /* apply_group_max_transactions: transactions in a unit */
	void (*committed)(void *arg, const apply_group_t *g);
	void *arg;
	apply_t *main;
	worker_t workers[MAX_WORKERS + 1];
	int nworkers;
	int last_worker; /* the worker chosen last (coordinator, under lock) */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* under lock */
	bool stop;
	bool failed;
	pgf_error_t fail_err;
	uint64_t fail_seq, fail_lsn;
	uint64_t sent_seq, sent_end; /* the turn: the newest unit whose COMMIT was sent */
	uint64_t committed_seq, durable_seq;
	apply_group_t ring[UNIT_RING];
	uint64_t main_sent[8]; /* main's COMMITs in flight */
	unsigned main_sent_head, main_nsent;

	/* the coordinator's own */
	uint64_t reported_seq;
	uint64_t main_seq; /* the unit main runs (0: none yet numbered) */
	depend_t dep;
	pgoutput_decoder_t decoder;
	pgoutput_message_t *msg;
	relcache_t *relcache;
	table_keys_t *tables;
	size_t ntables, tables_cap;
	PGconn *catalog;
	unit_t *cur;
	size_t txn_start; /* where the transaction being buffered starts in cur */
	uint32_t txn_nrecs_start;
	depend_footprint_t txn_fp;
	apply_group_t txn_stats;
	buf_t txn_relations; /* Relation and Type messages of the transaction */
	bool in_txn, skipping, in_stream;
	bool direct; /* the transaction outgrew a unit: main applies it as it comes */
	uint64_t skip_below;
	bool last_durable; /* the last unit dispatched commits durably */
	struct timespec durable_at;
};

/* parallel_units.c: units, the turns and commits of the shared state, the workers */
unit_t *par_unit_new(void);
void par_unit_free(unit_t *u);
void par_unit_append(unit_t *u, const queue_record_t *r, const void *data, uint32_t len);
int par_unit_apply(apply_t *a, const unit_t *u, pgf_error_t *err);
void par_fail_locked(struct sink_parallel *par, uint64_t seq, uint64_t lsn, const pgf_error_t *err);
int par_failed_error(struct sink_parallel *par, pgf_error_t *err);
void par_committed_locked(struct sink_parallel *par, uint64_t seq, bool durable);
int par_worker_turn(void *arg, uint64_t end_lsn, uint64_t *expected, pgf_error_t *err);
void par_worker_group_committed(void *arg, const apply_group_t *g, bool durable);
int par_main_turn(void *arg, uint64_t end_lsn, uint64_t *expected, pgf_error_t *err);
void par_main_group_committed(void *arg, const apply_group_t *g, bool durable);
void par_report(struct sink_parallel *par);
int par_wait_committed(struct sink_parallel *par, uint64_t seq, pgf_error_t *err);
void *par_worker_main(void *arg);

/* sink_parallel.c: the coordinator's own, for parallel_main.c */
int par_dispatch_current(struct sink_parallel *par, bool durable, pgf_error_t *err);
void par_relations_release(struct sink_parallel *par);

/* parallel_main.c: what runs alone on main */
int par_run_on_main(struct sink_parallel *par, unit_t *u, pgf_error_t *err);
int par_stream_record(struct sink_parallel *par, const queue_record_t *r, const uint8_t *data,
                      const char *huge_path, pgf_error_t *err);
int par_go_direct(struct sink_parallel *par, pgf_error_t *err);
int par_direct_record(struct sink_parallel *par, const queue_record_t *r, const uint8_t *data,
                      const char *huge_path, pgf_error_t *err);

/* parallel_keys.c: what a change writes, by the DR table's keys */
void par_footprint_change(struct sink_parallel *par, const pgoutput_message_t *m);

#endif
