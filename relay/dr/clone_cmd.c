/*
 * clone_cmd.c — `pgferry clone`: build the DR copy from scratch, consistent
 * with a new slot, so that source and sink stream on without a gap or a
 * duplicate.
 *
 * The slot is created with an exported snapshot; the schema (pg_dump
 * --schema-only --snapshot) and the data of every published table (COPY,
 * clone_jobs tables at once, each worker in a transaction that imports the
 * snapshot) are what the primary held at the slot's consistent point, and
 * the DR origin's progress is set to that point in the same transaction
 * that records the identity and marks the clone finished. The slot streams
 * exactly the transactions committed from that point on; the sink skips
 * everything before its origin's progress.
 *
 * pgferry.clone on the DR side says where a clone stands, so a rerun after
 * an interruption starts over cleanly (and says so) and a finished clone is
 * never overwritten.
 *
 * cmd_clone parses its arguments and runs the steps below in order, each a
 * function of its own; the schema and data steps are in clone_schema.c and
 * clone_copy.c. Diagnostics go through the log module (log_format), the
 * final summary to standard output.
 */
#include "pgferry/cli.h"
#include "pgferry/clone.h"
#include "pgferry/decoder.h"
#include "pgferry/dr_state.h"
#include "pgferry/log.h"
#include "pgferry/own_sql.h"
#include "pgferry/pgsession.h"
#include "pgferry/pgtools.h"
#include "pgferry/primary_check.h"
#include "pgferry/replication.h"
#include "pgferry/util.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One run of clone: what its steps share. */
typedef struct clone_run {
	cli_t cli;
	const config_t *cfg;
	clone_t cl;
	const char *bindir_opt;
	char bindir[512];
	char dir[512];
	PGconn *d, *p;
	replication_conn_t rc;
	bool rc_open, dir_made, slot_created;
	bool interrupted; /* pgferry.clone shows an earlier run that did not finish */
	bool schema_done; /* ... and that one restored the schema */
	uint64_t consistent;
	char snapshot_time[64];
	long long rows, bytes;
} clone_run_t;

/* How a step ended: STEP_REFUSED stops before anything needs undoing. */
typedef enum { STEP_OK = 0, STEP_FAILED, STEP_REFUSED } step_t;

static step_t refuse(pgf_error_t *err, const char *hint, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static step_t refuse(pgf_error_t *err, const char *hint, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	err->code = PGF_E_CONFIG;
	if (hint)
		error_hint(err, "%s", hint);
	return STEP_REFUSED;
}

static int drop_slot(replication_conn_t *rc, const char *slot, pgf_error_t *err)
{
	char *ident = PQescapeIdentifier(rc->conn, slot, strlen(slot));
	char sql[300];
	PGresult *res;

	if (ident == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory");
	snprintf(sql, sizeof(sql), "DROP_REPLICATION_SLOT %s", ident);
	PQfreemem(ident);
	res = PQexec(rc->conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		error_set(err, PGF_E_DATABASE, "could not drop the old slot \"%s\": %s", slot,
		          PQresultErrorMessage(res));
		error_hint(err, "Stop any pgferry source using it, then run clone again.");
		PQclear(res);
		return PGF_ERR;
	}
	PQclear(res);
	return PGF_OK;
}

/* Removes the schema dump directory and what clone wrote into it. */

static step_t parse_args(clone_run_t *r, int argc, char **argv, pgf_error_t *err)
{
	int i;

	if (cli_load(argc, argv, 0, &r->cli, err) != PGF_OK)
		return STEP_REFUSED;
	cli_configure_logging(&r->cli, "clone");
	r->cfg = &r->cli.cfg;
	for (i = 1; i < r->cli.argc; i++) {
		if (strcmp(r->cli.argv[i], "--pg-bindir") == 0 && i + 1 < r->cli.argc)
			r->bindir_opt = r->cli.argv[++i];
		else
			return refuse(err,
			              "pgferry clone [--config FILE] [-c key=value ...] "
			              "[--pg-bindir DIR]",
			              "unexpected argument \"%s\"", r->cli.argv[i]);
	}
	if (!r->cfg->primary_conninfo || !r->cfg->dr_conninfo)
		return refuse(err, "Set both, in the configuration file or with -c.",
		              "primary_conninfo and dr_conninfo must be set");
	return STEP_OK;
}

/* 1. Where the DR database stands: finished (refused), interrupted (begun
 * again), or new, which must be empty. */
static step_t check_dr(clone_run_t *r, pgf_error_t *err)
{
	PGresult *res;
	step_t st = STEP_OK;

	if ((r->d = pgsession_connect(r->cfg->dr_conninfo, "pgferry clone", NULL, "DR database",
	                              err)) == NULL ||
	    dr_state_install(r->d, err) != PGF_OK)
		return STEP_FAILED;
	if ((res = pgsession_query(r->d, "DR database", own_sql_clone_state, 0, NULL, err)) == NULL)
		return STEP_FAILED;
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 3)) {
		st = refuse(err, "To clone again, drop and recreate the DR database.",
		            "this DR database was already cloned (finished at %s); a finished "
		            "clone is never overwritten",
		            PQgetvalue(res, 0, 3));
	} else if (PQntuples(res) == 1) {
		r->interrupted = true;
		r->schema_done = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
		log_info("a clone started at %s was interrupted %s; starting %s over with a new "
		         "slot",
		         PQgetvalue(res, 0, 1),
		         r->schema_done ? "after the schema was restored"
		                        : "before the schema was restored",
		         r->schema_done ? "the data copy" : "it");
	}
	PQclear(res);
	if (st != STEP_OK || r->interrupted)
		return st;
	if ((res = pgsession_query(r->d, "DR database",
	                           "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid "
	                           "= c.relnamespace WHERE c.relkind IN ('r', 'p') AND "
	                           "n.nspname NOT IN ('pgferry', 'pg_catalog', "
	                           "'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'",
	                           0, NULL, err)) == NULL)
		return STEP_FAILED;
	if (strcmp(PQgetvalue(res, 0, 0), "0") != 0)
		st = refuse(err,
		            "Create a new database for the DR copy (or drop these tables) and run "
		            "clone again.",
		            "the DR database already has %s tables; clone needs an empty database",
		            PQgetvalue(res, 0, 0));
	PQclear(res);
	return st;
}

/* 2. The primary has the publication, and every sequence is readable
 * (one the role cannot read would never be copied nor shipped). */
static step_t check_primary(clone_run_t *r, pgf_error_t *err)
{
	const char *params[1] = {r->cfg->publication};
	PGresult *res;
	bool missing;

	if ((r->p = pgsession_connect(r->cfg->primary_conninfo, "pgferry clone", NULL, "primary",
	                              err)) == NULL)
		return STEP_FAILED;
	if ((res = pgsession_query(r->p, "primary",
	                           "SELECT count(*) FROM pg_publication WHERE pubname = $1", 1,
	                           params, err)) == NULL)
		return STEP_FAILED;
	missing = strcmp(PQgetvalue(res, 0, 0), "0") == 0;
	PQclear(res);
	if (missing)
		return refuse(err, "Create it first (see sql/primary_setup.sql).",
		              "the publication \"%s\" does not exist on the primary",
		              r->cfg->publication);
	if (primary_check_sequences(r->p, r->cfg->publication, err) != PGF_OK)
		return STEP_REFUSED;
	return STEP_OK;
}

/* 3. The slot, with its exported snapshot: the moment everything below
 * copies. An interrupted clone's slot is dropped first. */
static step_t create_slot(clone_run_t *r, pgf_error_t *err)
{
	const char *params[1] = {r->cfg->slot_name};
	bool exists = false;
	uint64_t confirmed;
	char sql[400], lsn[LSN_TEXT_LEN], *ident;
	PGresult *res;

	if (replication_connect(&r->rc, r->cfg->primary_conninfo, err) != PGF_OK)
		return STEP_FAILED;
	r->rc_open = true;
	if (replication_slot_position(&r->rc, r->cfg->slot_name, &exists, &confirmed, err) !=
	    PGF_OK)
		return STEP_FAILED;
	if (exists && !r->interrupted)
		return refuse(err,
		              "Choose another slot_name, or drop the slot if nothing uses it, and "
		              "run clone again.",
		              "the slot \"%s\" already exists on the primary; a pgferry source may "
		              "be using it",
		              r->cfg->slot_name);
	{
		/* the stream's origin must be free for the hand-over: asked now,
		 * before anything is copied */
		char sysid[32];
		const char *p3[3] = {sysid, r->rc.dbname, r->cfg->slot_name};
		snprintf(sysid, sizeof(sysid), "%" PRIu64, r->rc.system_identifier);
		if ((res = pgsession_query(r->d, "DR database",
		                           "SELECT pgferry.clone_origin_check($1::numeric, $2, $3)",
		                           3, p3, err)) == NULL)
			return STEP_REFUSED;
		PQclear(res);
	}
	if ((res = pgsession_query(r->d, "DR database", own_sql_clone_start, 1, params, err)) ==
	    NULL)
		return STEP_FAILED;
	PQclear(res);
	if (exists) {
		log_info("dropping the slot \"%s\" of the interrupted clone", r->cfg->slot_name);
		if (drop_slot(&r->rc, r->cfg->slot_name, err) != PGF_OK)
			return STEP_FAILED;
	}
	ident = PQescapeIdentifier(r->rc.conn, r->cfg->slot_name, strlen(r->cfg->slot_name));
	snprintf(sql, sizeof(sql),
	         "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput (SNAPSHOT 'export')",
	         ident ? ident : "\"\"");
	PQfreemem(ident);
	res = PQexec(r->rc.conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		error_set(err, PGF_E_DATABASE, "creating the slot \"%s\" failed: %s",
		          r->cfg->slot_name, PQresultErrorMessage(res));
		PQclear(res);
		return STEP_FAILED;
	}
	r->slot_created = true;
	lsn_parse(PQgetvalue(res, 0, 1), &r->consistent);
	snprintf(r->cl.snapshot, sizeof(r->cl.snapshot), "%s", PQgetvalue(res, 0, 2));
	PQclear(res);
	log_info("slot \"%s\" created; consistent point %s, snapshot %s", r->cfg->slot_name,
	         lsn_format(r->consistent, lsn), r->cl.snapshot);
	return STEP_OK;
}

/* 4. The schema, restored from the snapshot (once: a rerun after it keeps
 * it). */
static step_t restore_schema(clone_run_t *r, pgf_error_t *err)
{
	const char *tmp = getenv("TMPDIR");
	int skipped = 0;

	if (r->schema_done)
		return STEP_OK;
	snprintf(r->dir, sizeof(r->dir), "%s/pgferry-clone.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(r->dir) == NULL) {
		error_set(err, PGF_E_IO, "cannot create a temporary directory: %s",
		          strerror(errno));
		return STEP_FAILED;
	}
	r->dir_made = true;
	if (!clone_restore_schema(r->cfg, r->bindir, r->dir, r->cl.snapshot, &skipped, err))
		return STEP_FAILED;
	log_info("schema restored on the DR database (%d entries of pgferry, event triggers and "
	         "publications left out)",
	         skipped);
	/* restored: the dump is of no more use, even if the copy fails */
	clone_remove_dump_dir(r->dir);
	r->dir_made = false;
	if (!clone_exec(r->d, "DR database", own_sql_clone_schema_restored, err))
		return STEP_FAILED;
	return STEP_OK;
}

/* 5. The data: clone_jobs tables at once, all in the snapshot; what an
 * interrupted run copied goes first. */
static step_t copy_data(clone_run_t *r, pgf_error_t *err)
{
	char sql[1200];
	PGresult *res;
	int i;

	snprintf(sql, sizeof(sql), "SET TRANSACTION SNAPSHOT '%s'", r->cl.snapshot);
	if (!clone_exec(r->p, "primary", "BEGIN ISOLATION LEVEL REPEATABLE READ", err) ||
	    !clone_exec(r->p, "primary", sql, err) ||
	    clone_list_tables(&r->cl, r->p, err) != PGF_OK)
		return STEP_FAILED;
	if (r->schema_done) {
		for (i = 0; i < r->cl.ntables; i++) {
			snprintf(sql, sizeof(sql), "TRUNCATE %s", r->cl.tables[i].qualified);
			if (!clone_exec(r->d, "DR database", sql, err))
				return STEP_FAILED;
		}
		log_info("emptied %d tables of the interrupted clone", r->cl.ntables);
	}
	if ((res = pgsession_query(r->p, "primary",
	                           "SELECT to_char(now() AT TIME ZONE 'UTC', "
	                           "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
	                           0, NULL, err)) == NULL)
		return STEP_FAILED;
	snprintf(r->snapshot_time, sizeof(r->snapshot_time), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	log_info("copying %d tables, %d at a time", r->cl.ntables, (int)r->cfg->clone_jobs);
	if (clone_copy_tables(&r->cl, (int)r->cfg->clone_jobs, err) != PGF_OK)
		return STEP_FAILED;
	for (i = 0; i < r->cl.ntables; i++) {
		r->rows += r->cl.tables[i].rows;
		r->bytes += r->cl.tables[i].bytes;
	}
	return STEP_OK;
}

/* Takes the stream's own origin (sql/dr_state.sql) for this session, held
 * through the hand-over: a sink applying this stream makes it fail. */
static int take_origin(clone_run_t *r, char *origin, size_t len, pgf_error_t *err)
{
	char sysid[32];
	const char *params[3] = {sysid, r->rc.dbname, r->cfg->slot_name};
	PGresult *res;

	snprintf(sysid, sizeof(sysid), "%" PRIu64, r->rc.system_identifier);
	if ((res = pgsession_query(r->d, "DR database", own_sql_clone_origin, 3, params, err)) ==
	    NULL)
		return PGF_ERR;
	snprintf(origin, len, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	params[0] = origin;
	if ((res = pgsession_query(r->d, "DR database",
	                           "SELECT pg_replication_origin_session_setup($1)", 1, params,
	                           err)) == NULL)
		return PGF_ERR;
	PQclear(res);
	return PGF_OK;
}

/* Runs sql with params on the DR database, for a step of the hand-over. */
static bool dr_run(clone_run_t *r, const char *sql, int n, const char *const *params,
                   pgf_error_t *err)
{
	PGresult *res = pgsession_query(r->d, "DR database", sql, n, params, err);

	PQclear(res);
	return res != NULL;
}

/* 6. The hand-over, in one DR transaction: sequences as of the snapshot,
 * the origin's progress at the consistent point (committing with the rest:
 * not pg_replication_origin_advance, which no rollback undoes), the
 * identity, and the clone marked finished. */
static step_t hand_over(clone_run_t *r, pgf_error_t *err)
{
	char origin[512], sysid[32], lsn[LSN_TEXT_LEN], nt[16], nr[32], nb[32];
	const char *p1[2] = {lsn, r->snapshot_time};
	const char *p2[4] = {sysid, r->rc.dbname, r->cfg->slot_name, origin};
	const char *p3[4] = {lsn, nt, nr, nb};
	PGresult *seqs;
	int i;

	if ((seqs = pgsession_query(r->p, "primary",
	                            "SELECT format('%I.%I', schemaname, sequencename), "
	                            "last_value::text FROM pg_sequences WHERE last_value IS NOT "
	                            "NULL AND schemaname <> 'pgferry'",
	                            0, NULL, err)) == NULL)
		return STEP_FAILED;
	PQclear(PQexec(r->p, "COMMIT"));
	if (take_origin(r, origin, sizeof(origin), err) != PGF_OK ||
	    !clone_exec(r->d, "DR database", "BEGIN", err))
		goto failed;
	for (i = 0; i < PQntuples(seqs); i++) {
		const char *params[2] = {PQgetvalue(seqs, i, 0), PQgetvalue(seqs, i, 1)};
		if (!dr_run(r, own_sql_sequence_sync, 2, params, err))
			goto failed;
	}
	PQclear(seqs);
	seqs = NULL;
	lsn_format(r->consistent, lsn);
	snprintf(sysid, sizeof(sysid), "%" PRIu64, r->rc.system_identifier);
	snprintf(nt, sizeof(nt), "%d", r->cl.ntables);
	snprintf(nr, sizeof(nr), "%lld", r->rows);
	snprintf(nb, sizeof(nb), "%lld", r->bytes);
	if (!dr_run(r, own_sql_origin_xact_setup, 2, p1, err) ||
	    !dr_run(r, own_sql_progress_record, 2, p1, err) ||
	    !dr_run(r, own_sql_identity_set, 4, p2, err) ||
	    !dr_run(r, own_sql_clone_finish, 4, p3, err) ||
	    !clone_exec(r->d, "DR database", "COMMIT", err))
		goto failed;
	return STEP_OK;
failed:
	PQclear(seqs);
	return STEP_FAILED;
}

/* After a failure: a slot left behind would hold WAL on the primary until
 * its disk is full; the next run creates a new one anyway. */
static void undo_slot(clone_run_t *r)
{
	pgf_error_t drop_err;
	char why[sizeof(drop_err.message)];

	if (!r->slot_created || !r->rc_open)
		return;
	error_clear(&drop_err);
	if (drop_slot(&r->rc, r->cfg->slot_name, &drop_err) == PGF_OK) {
		log_info("dropped the slot \"%s\" it had created", r->cfg->slot_name);
		return;
	}
	snprintf(why, sizeof(why), "%s", drop_err.message);
	error_set(&drop_err, drop_err.code, "could not drop the slot \"%s\" it had created: %s",
	          r->cfg->slot_name, why);
	error_hint(&drop_err,
	           "It holds WAL on the primary; drop it: SELECT pg_drop_replication_slot('%s');",
	           r->cfg->slot_name);
	log_error_value(LOG_ERROR, &drop_err);
}

static void run_free(clone_run_t *r, bool succeeded)
{
	if (r->rc_open)
		replication_close(&r->rc);
	PQfinish(r->p);
	PQfinish(r->d);
	clone_free_tables(&r->cl);
	/* a dump whose restore failed is kept, for the operator */
	if (r->dir_made && succeeded)
		clone_remove_dump_dir(r->dir);
	pthread_mutex_destroy(&r->cl.lock);
	cli_free(&r->cli);
}

int cmd_clone(int argc, char **argv)
{
	static step_t (*const steps[])(clone_run_t *, pgf_error_t *) = {
	        check_dr, check_primary, create_slot, restore_schema, copy_data, hand_over};
	clone_run_t r;
	pgf_error_t err;
	step_t st;
	size_t i;
	char lsn[LSN_TEXT_LEN];

	memset(&r, 0, sizeof(r));
	error_clear(&err);
	pthread_mutex_init(&r.cl.lock, NULL);
	st = parse_args(&r, argc, argv, &err);
	if (st == STEP_OK) {
		r.cl.cfg = r.cfg;
		r.cl.t0 = util_monotonic_s();
		pgtools_find_bindir(r.bindir_opt, r.bindir, sizeof(r.bindir));
	}
	for (i = 0; st == STEP_OK && i < sizeof(steps) / sizeof(steps[0]); i++)
		st = steps[i](&r, &err);
	if (st == STEP_OK) {
		printf("pgferry clone: done. %d tables, %lld rows, %.1f MB in %.1f s; consistent "
		       "point %s.\nStart pgferry sink and pgferry source now: streaming resumes at "
		       "the consistent point, without a gap or a duplicate.\n",
		       r.cl.ntables, r.rows, (double)r.bytes / 1e6, util_monotonic_s() - r.cl.t0,
		       lsn_format(r.consistent, lsn));
	} else {
		log_error_value(LOG_ERROR, &err);
		if (st == STEP_FAILED) {
			undo_slot(&r);
			log_info("stopped; run it again to start over (it says so)");
		}
	}
	run_free(&r, st == STEP_OK);
	return st == STEP_OK ? 0 : EXIT_ERROR;
}
