/*
 * sink_parallel.h — parallel apply on the sink (apply_workers > 1; the
 * design is in include/pgferry/apply_parallel.h). Private to relay/sink/:
 * the apply thread (sink_apply.c) is the coordinator and calls these; the
 * workers are threads of this module.
 */
#ifndef PGFERRY_SINK_PARALLEL_H
#define PGFERRY_SINK_PARALLEL_H

#include "pgferry/apply.h"
#include "pgferry/config.h"
#include "pgferry/queue.h"

typedef struct sink_parallel sink_parallel_t;

/* Makes the coordinator and starts cfg->apply_workers workers. committed
 * hears of durable progress (from the coordinator's thread, like the
 * apply engine's hook). cfg must outlive it. */
sink_parallel_t *sink_parallel_create(const config_t *cfg,
                                      void (*committed)(void *arg, const apply_group_t *g),
                                      void *arg, pgf_error_t *err);
/* The coordinator's own apply engine (identity, fence, barriers, streamed
 * transactions, idle progress): owned by par. */
apply_t *sink_parallel_main(sink_parallel_t *par);
void sink_parallel_free(sink_parallel_t *par);

/* A session was accepted: apply resumes after apply_progress(main). */
void sink_parallel_session_start(sink_parallel_t *par, int proto_version);
/* One record of a queue item, in stream order. */
int sink_parallel_record(sink_parallel_t *par, const queue_item_t *it, const queue_record_t *r,
                         pgf_error_t *err);
/* Input paused: whole transactions are sent, everything waits to commit
 * durably and is reported; then idle progress (apply_input_paused). */
int sink_parallel_paused(sink_parallel_t *par, uint64_t idle_lsn, pgf_error_t *err);
/* After an error or at the end of a session: every worker rolls back what
 * is not committed, and everything queued is dropped. */
void sink_parallel_reset(sink_parallel_t *par);
/* Between source transactions or not (buffered, not yet whole). */
bool sink_parallel_in_transaction(const sink_parallel_t *par);
/* The source transaction that failed, first in commit order (0: none). */
uint64_t sink_parallel_failed_lsn(const sink_parallel_t *par);

#endif
