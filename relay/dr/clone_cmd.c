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
 */
#include "pgferry/cli.h"
#include "pgferry/decoder.h"
#include "pgferry/dr_state.h"
#include "pgferry/log.h"
#include "pgferry/pgsession.h"
#include "pgferry/primary_check.h"
#include "pgferry/replication.h"
#include "pgferry/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

typedef struct clone_table {
	char *schema, *name;
	char *qualified; /* quoted */
	char *columns;   /* quoted, comma-separated; generated columns left out */
	long long rows;
	long long bytes;
	double seconds;
} clone_table_t;

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

static bool exec_ok(PGconn *c, const char *side, const char *sql, pgf_error_t *err)
{
	PGresult *res = pgsession_query(c, side, sql, 0, NULL, err);
	PQclear(res);
	return res != NULL;
}

/* ---- pg_dump / pg_restore ------------------------------------------------- */

static void find_bindir(const char *given, char *out, size_t len)
{
	const char *env = getenv("PG_BINDIR");
	FILE *p;

	out[0] = '\0';
	if (given) {
		snprintf(out, len, "%s", given);
		return;
	}
	if (env && env[0]) {
		snprintf(out, len, "%s", env);
		return;
	}
	p = popen("pg_config --bindir 2>/dev/null", "r");
	if (p) {
		if (fgets(out, (int)len, p) == NULL)
			out[0] = '\0';
		out[strcspn(out, "\n")] = '\0';
		pclose(p);
	}
}

/* environ with PGPASSWORD set to password (or as inherited when NULL): a
 * child's argv is readable by every local user, its environment only by
 * its own user and root. NULL when out of memory; free with free_env. */
static char **env_with_password(const char *password)
{
	size_t n = 0, k = 0, i;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 2, sizeof(char *));
	if (env == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (password == NULL || strncmp(environ[i], "PGPASSWORD=", 11) != 0)
			env[k++] = environ[i];
	if (password != NULL) {
		size_t len = strlen(password) + 12;
		if ((env[k] = malloc(len)) == NULL) {
			free(env);
			return NULL;
		}
		snprintf(env[k], len, "PGPASSWORD=%s", password);
	}
	return env;
}

static void free_env(char **env, const char *password)
{
	size_t k = 0;

	if (env == NULL)
		return;
	if (password != NULL) {
		while (env[k + 1])
			k++;
		free(env[k]);
	}
	free(env);
}

/* Runs argv[0] from bindir with stdout to out_path (or inherited), stderr
 * to err_path and PGPASSWORD = password (NULL: inherited); true when it
 * exits 0. */
static bool run_tool(const char *bindir, char **argv, const char *password, const char *out_path,
                     const char *err_path, pgf_error_t *err)
{
	posix_spawn_file_actions_t fa;
	char path[1024];
	pid_t pid;
	int status, rc;
	char **env = env_with_password(password);

	if (env == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory"), false;

	if (bindir[0])
		snprintf(path, sizeof(path), "%s/%s", bindir, argv[0]);
	else
		snprintf(path, sizeof(path), "%s", argv[0]);
	posix_spawn_file_actions_init(&fa);
	if (out_path)
		posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC,
		                                 0600);
	posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	rc = bindir[0] ? posix_spawn(&pid, path, &fa, NULL, argv, env)
	               : posix_spawnp(&pid, path, &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	free_env(env, password);
	if (rc != 0) {
		error_set(err, PGF_E_IO, "could not run %s: %s", path, strerror(rc));
		error_hint(err, "Give the directory of PostgreSQL's client programs with "
		                "--pg-bindir or PG_BINDIR.");
		return false;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char text[400] = "";
		FILE *f = fopen(err_path, "r");
		if (f) {
			size_t n = fread(text, 1, sizeof(text) - 1, f);
			text[n] = '\0';
			fclose(f);
		}
		text[strcspn(text, "\n")] = '\0';
		error_set(err, PGF_E_DATABASE, "%s failed: %s", argv[0],
		          text[0] ? text : "(no message)");
		error_detail(err, "Its full output is in %s.", err_path);
		return false;
	}
	return true;
}

/* A line of pg_restore -l that must not reach the DR database: pgferry's
 * own objects, event triggers (DDL capture lives on the primary),
 * publications and subscriptions (replication plumbing of the primary). */
static bool skip_toc_line(const char *line)
{
	static const char *const skip[] = {" EVENT TRIGGER ",
	                                   " PUBLICATION ",
	                                   " PUBLICATION TABLE ",
	                                   " PUBLICATION TABLES IN SCHEMA ",
	                                   " SUBSCRIPTION ",
	                                   " SCHEMA - pgferry ",
	                                   " pgferry "};
	size_t i;

	if (line[0] == ';')
		return false;
	for (i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
		if (strstr(line, skip[i]))
			return true;
	return false;
}

static bool run_schema_tools(const char *bindir, const char *dir, const char *snapshot,
                             const char *primary, const char *primary_pw, const char *dr,
                             const char *dr_pw, pgf_error_t *err)
{
	char dump[600], list[600], filtered[600], errf[600], snap_arg[200], line[4096];
	char *dump_argv[] = {"pg_dump", "--schema-only", "-Fc", snap_arg, "-f", dump,
	                     "-d",      (char *)primary, NULL};
	char *list_argv[] = {"pg_restore", "-l", dump, NULL};
	char *restore_argv[] = {"pg_restore",
	                        "--no-owner",
	                        "--no-privileges",
	                        "--single-transaction",
	                        "--exit-on-error",
	                        "-L",
	                        filtered,
	                        "-d",
	                        (char *)dr,
	                        dump,
	                        NULL};
	FILE *in, *out;
	int skipped = 0;

	snprintf(dump, sizeof(dump), "%s/schema.dump", dir);
	snprintf(list, sizeof(list), "%s/schema.list", dir);
	snprintf(filtered, sizeof(filtered), "%s/schema.filtered", dir);
	snprintf(errf, sizeof(errf), "%s/pg_dump.err", dir);
	snprintf(snap_arg, sizeof(snap_arg), "--snapshot=%s", snapshot);
	if (!run_tool(bindir, dump_argv, primary_pw, NULL, errf, err))
		return false;
	snprintf(errf, sizeof(errf), "%s/pg_restore_list.err", dir);
	if (!run_tool(bindir, list_argv, NULL, list, errf, err))
		return false;
	in = fopen(list, "r");
	out = fopen(filtered, "w");
	if (in == NULL || out == NULL) {
		if (in)
			fclose(in);
		if (out)
			fclose(out);
		return error_set(err, PGF_E_IO, "cannot write the schema list in %s", dir), false;
	}
	while (fgets(line, sizeof(line), in)) {
		if (skip_toc_line(line)) {
			skipped++;
			fprintf(out, ";%s", line);
		} else
			fputs(line, out);
	}
	fclose(in);
	fclose(out);
	snprintf(errf, sizeof(errf), "%s/pg_restore.err", dir);
	if (!run_tool(bindir, restore_argv, dr_pw, NULL, errf, err))
		return false;
	fprintf(stderr,
	        "pgferry clone: schema restored on the DR database (%d entries of pgferry, "
	        "event triggers and publications left out)\n",
	        skipped);
	return true;
}

/* pg_dump from the primary, pg_restore into the DR database; passwords of
 * the conninfos go to them in the environment, never on their command line. */
static bool restore_schema(const config_t *cfg, const char *bindir, const char *dir,
                           const char *snapshot, pgf_error_t *err)
{
	char *primary_pw = NULL, *dr_pw = NULL;
	char *primary =
	        pgsession_conninfo_without_password(cfg->primary_conninfo, &primary_pw, err);
	char *dr =
	        primary ? pgsession_conninfo_without_password(cfg->dr_conninfo, &dr_pw, err) : NULL;
	bool ok = dr != NULL &&
	          run_schema_tools(bindir, dir, snapshot, primary, primary_pw, dr, dr_pw, err);

	free(primary);
	free(dr);
	free(primary_pw);
	free(dr_pw);
	return ok;
}

/* ---- copying ---------------------------------------------------------------- */

/* COPY one table from the primary's snapshot into the DR database. */
static bool copy_table(clone_t *cl, PGconn *p, PGconn *d, clone_table_t *t, bool binary,
                       pgf_error_t *err)
{
	char sql_out[8192], sql_in[8192], *buf;
	PGresult *res;
	int n;
	bool ok = true;

	snprintf(sql_out, sizeof(sql_out), "COPY (SELECT %s FROM %s) TO STDOUT%s", t->columns,
	         t->qualified, binary ? " (FORMAT binary)" : "");
	snprintf(sql_in, sizeof(sql_in), "COPY %s (%s) FROM STDIN%s", t->qualified, t->columns,
	         binary ? " (FORMAT binary)" : "");
	if (strlen(t->columns) > 7000)
		return error_set(err, PGF_E_USAGE, "%s has too many columns for clone",
		                 t->qualified),
		       false;
	if (!exec_ok(d, "DR database", "BEGIN", err) ||
	    !exec_ok(p, "primary", "SAVEPOINT copy", err))
		return false;
	res = PQexec(p, sql_out);
	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		error_set(err, PGF_E_DATABASE, "COPY of %s on the primary failed: %s", t->qualified,
		          PQresultErrorMessage(res));
		PQclear(res);
		exec_ok(d, "DR database", "ROLLBACK", err);
		PQclear(PQexec(p, "ROLLBACK TO SAVEPOINT copy"));
		return false;
	}
	PQclear(res);
	res = PQexec(d, sql_in);
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		error_set(err, PGF_E_DATABASE, "COPY into %s on the DR database failed: %s",
		          t->qualified, PQresultErrorMessage(res));
		PQclear(res);
		/* drain the primary's side */
		while (PQgetCopyData(p, &buf, 0) > 0)
			PQfreemem(buf);
		while ((res = PQgetResult(p)) != NULL)
			PQclear(res);
		PQclear(PQexec(d, "ROLLBACK"));
		PQclear(PQexec(p, "ROLLBACK TO SAVEPOINT copy"));
		return false;
	}
	PQclear(res);
	while ((n = PQgetCopyData(p, &buf, 0)) > 0) {
		if (ok && PQputCopyData(d, buf, n) != 1)
			ok = false;
		t->bytes += n;
		PQfreemem(buf);
	}
	if (n == -2)
		ok = false;
	while ((res = PQgetResult(p)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && ok) {
			error_set(err, PGF_E_DATABASE, "COPY of %s on the primary failed: %s",
			          t->qualified, PQresultErrorMessage(res));
			ok = false;
		}
		PQclear(res);
	}
	PQputCopyEnd(d, ok ? NULL : "pgferry clone: the primary's side failed");
	while ((res = PQgetResult(d)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			if (ok)
				error_set(err, PGF_E_DATABASE,
				          "COPY into %s on the DR database failed: %s",
				          t->qualified, PQresultErrorMessage(res));
			ok = false;
		} else
			t->rows = atoll(PQcmdTuples(res));
		PQclear(res);
	}
	if (!ok) {
		PQclear(PQexec(d, "ROLLBACK"));
		PQclear(PQexec(p, "ROLLBACK TO SAVEPOINT copy"));
		return false;
	}
	(void)cl;
	return exec_ok(d, "DR database", "COMMIT", err) &&
	       exec_ok(p, "primary", "RELEASE SAVEPOINT copy", err);
}

static void *worker(void *arg)
{
	clone_t *cl = arg;
	pgf_error_t err;
	PGconn *p = NULL, *d = NULL;
	char set_snapshot[200];

	error_clear(&err);
	p = pgsession_connect(cl->cfg->primary_conninfo, "pgferry clone", NULL, "primary", &err);
	/* no triggers or foreign-key checks on the DR side, as in the sink */
	d = p ? pgsession_connect(cl->cfg->dr_conninfo, "pgferry clone",
	                          "-c session_replication_role=replica", "DR database", &err)
	      : NULL;
	snprintf(set_snapshot, sizeof(set_snapshot), "SET TRANSACTION SNAPSHOT '%s'", cl->snapshot);
	if (d == NULL || !exec_ok(p, "primary", "BEGIN ISOLATION LEVEL REPEATABLE READ", &err) ||
	    !exec_ok(p, "primary", set_snapshot, &err))
		goto failed;
	for (;;) {
		clone_table_t *t = NULL;
		double t0;

		pthread_mutex_lock(&cl->lock);
		if (!cl->failed && cl->next < cl->ntables)
			t = &cl->tables[cl->next++];
		pthread_mutex_unlock(&cl->lock);
		if (t == NULL)
			break;
		t0 = util_monotonic_s();
		if (!copy_table(cl, p, d, t, true, &err)) {
			/* a type without binary I/O on one side: text works everywhere */
			fprintf(stderr,
			        "pgferry clone: %s: binary COPY failed (%s); copying as text\n",
			        t->qualified, err.message);
			t->bytes = 0;
			error_clear(&err);
			if (!copy_table(cl, p, d, t, false, &err))
				goto failed;
		}
		t->seconds = util_monotonic_s() - t0;
		pthread_mutex_lock(&cl->lock);
		fprintf(stderr, "  %s.%-*s %12lld rows %10.1f MB %8.2f s %8.1f MB/s\n", t->schema,
		        (int)(39 - strlen(t->schema)), t->name, t->rows, (double)t->bytes / 1e6,
		        t->seconds, t->seconds > 0 ? (double)t->bytes / 1e6 / t->seconds : 0.0);
		pthread_mutex_unlock(&cl->lock);
	}
	PQclear(PQexec(p, "COMMIT"));
	PQfinish(p);
	PQfinish(d);
	return NULL;
failed:
	pthread_mutex_lock(&cl->lock);
	if (!cl->failed)
		cl->err = err;
	cl->failed = true;
	pthread_mutex_unlock(&cl->lock);
	PQfinish(p);
	PQfinish(d);
	return NULL;
}

/* Published tables with their replicated columns (generated ones are
 * computed on the DR side). */
static int list_tables(clone_t *cl, PGconn *p, pgf_error_t *err)
{
	const char *params[1] = {cl->cfg->publication};
	PGresult *res = pgsession_query(
	        p, "primary",
	        "SELECT pt.schemaname, pt.tablename, string_agg(quote_ident(a.attname), "
	        "', ' ORDER BY a.attnum) FROM pg_publication_tables pt JOIN pg_namespace n "
	        "ON n.nspname = pt.schemaname JOIN pg_class c ON c.relnamespace = n.oid "
	        "AND c.relname = pt.tablename JOIN pg_attribute a ON a.attrelid = c.oid AND "
	        "a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' WHERE "
	        "pt.pubname = $1 AND pt.schemaname <> 'pgferry' GROUP BY 1, 2 ORDER BY 1, "
	        "2",
	        1, params, err);
	int i;

	if (res == NULL)
		return PGF_ERR;
	cl->ntables = PQntuples(res);
	cl->tables = calloc((size_t)cl->ntables + 1, sizeof(*cl->tables));
	if (cl->tables == NULL) {
		PQclear(res);
		return error_set(err, PGF_E_MEMORY, "out of memory");
	}
	for (i = 0; i < cl->ntables; i++) {
		clone_table_t *t = &cl->tables[i];
		char *qs, *qn;
		t->schema = strdup(PQgetvalue(res, i, 0));
		t->name = strdup(PQgetvalue(res, i, 1));
		t->columns = strdup(PQgetvalue(res, i, 2));
		qs = pgsession_quote_ident(p, t->schema);
		qn = pgsession_quote_ident(p, t->name);
		if (qs && qn && (t->qualified = malloc(strlen(qs) + strlen(qn) + 2)) != NULL)
			sprintf(t->qualified, "%s.%s", qs, qn);
		free(qs);
		free(qn);
		if (!t->schema || !t->name || !t->columns || !t->qualified) {
			PQclear(res);
			return error_set(err, PGF_E_MEMORY, "out of memory");
		}
	}
	PQclear(res);
	return PGF_OK;
}

static void free_tables(clone_t *cl)
{
	int i;
	for (i = 0; cl->tables && i < cl->ntables; i++) {
		free(cl->tables[i].schema);
		free(cl->tables[i].name);
		free(cl->tables[i].qualified);
		free(cl->tables[i].columns);
	}
	free(cl->tables);
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
static void remove_dump_dir(const char *dir)
{
	char path[600];
	const char *files[] = {"schema.dump", "schema.list",         "schema.filtered",
	                       "pg_dump.err", "pg_restore_list.err", "pg_restore.err"};
	size_t k;

	for (k = 0; k < sizeof(files) / sizeof(files[0]); k++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[k]);
		unlink(path);
	}
	rmdir(dir);
}

int cmd_clone(int argc, char **argv)
{
	cli_t cli;
	clone_t cl;
	pgf_error_t err;
	const char *bindir_opt = NULL;
	char bindir[512], dir[512], lsn[LSN_TEXT_LEN], sysid[32], origin[512] = "";
	replication_conn_t rc;
	bool rc_open = false, schema_done = false, slot_exists = false, interrupted = false;
	bool dir_made = false, slot_created = false;
	PGconn *d = NULL, *p = NULL;
	PGresult *res = NULL;
	pthread_t threads[64];
	int i, nthreads, status = EXIT_ERROR;
	uint64_t consistent = 0, confirmed;
	long long rows = 0, bytes = 0;
	char snapshot_time[64] = "";

	memset(&cl, 0, sizeof(cl));
	error_clear(&err);
	if (cli_load(argc, argv, 0, &cli, &err) != PGF_OK) {
		log_error_value(LOG_ERROR, &err);
		cli_free(&cli);
		return EXIT_ERROR;
	}
	cli_configure_logging(&cli, "clone");
	for (i = 1; i < cli.argc; i++) {
		if (strcmp(cli.argv[i], "--pg-bindir") == 0 && i + 1 < cli.argc)
			bindir_opt = cli.argv[++i];
		else {
			fprintf(stderr,
			        "usage: pgferry clone [--config FILE] [-c key=value ...] "
			        "[--pg-bindir DIR]\nCopies schema and data of the published "
			        "tables from the primary (primary_conninfo)\nto an empty DR "
			        "database (dr_conninfo), consistent with a new slot.\n");
			goto out;
		}
	}
	if (!cli.cfg.primary_conninfo || !cli.cfg.dr_conninfo) {
		fprintf(stderr, "pgferry clone: primary_conninfo and dr_conninfo must be set\n");
		goto out;
	}
	cl.cfg = &cli.cfg;
	cl.t0 = util_monotonic_s();
	pthread_mutex_init(&cl.lock, NULL);
	find_bindir(bindir_opt, bindir, sizeof(bindir));

	/* 1. where the DR database stands */
	if ((d = pgsession_connect(cli.cfg.dr_conninfo, "pgferry clone", NULL, "DR database",
	                           &err)) == NULL ||
	    dr_state_install(d, &err) != PGF_OK)
		goto failed;
	if ((res = pgsession_query(
	             d, "DR database",
	             "SELECT slot, started_at, schema_restored_at IS NOT NULL, finished_at FROM "
	             "pgferry.clone",
	             0, NULL, &err)) == NULL)
		goto failed;
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 3)) {
		fprintf(stderr,
		        "pgferry clone: this DR database was already cloned (finished at %s); a "
		        "finished clone is never overwritten.\nHINT: to clone again, drop and "
		        "recreate the DR database.\n",
		        PQgetvalue(res, 0, 3));
		goto out;
	}
	if (PQntuples(res) == 1) {
		interrupted = true;
		schema_done = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
		fprintf(stderr,
		        "pgferry clone: a clone started at %s was interrupted %s; starting %s over "
		        "with a new slot\n",
		        PQgetvalue(res, 0, 1),
		        schema_done ? "after the schema was restored"
		                    : "before the schema was restored",
		        schema_done ? "the data copy" : "it");
	} else {
		PGresult *r2 = pgsession_query(
		        d, "DR database",
		        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
		        "c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN "
		        "('pgferry', 'pg_catalog', 'information_schema') AND n.nspname NOT "
		        "LIKE 'pg\\_toast%'",
		        0, NULL, &err);
		if (r2 == NULL)
			goto failed;
		if (strcmp(PQgetvalue(r2, 0, 0), "0") != 0) {
			fprintf(stderr,
			        "pgferry clone: the DR database already has %s tables; clone needs "
			        "an "
			        "empty database.\nHINT: create a new database for the DR copy (or "
			        "drop these tables) and run clone again.\n",
			        PQgetvalue(r2, 0, 0));
			PQclear(r2);
			goto out;
		}
		PQclear(r2);
	}
	PQclear(res);
	res = NULL;

	/* 2. the slot and its snapshot */
	if ((p = pgsession_connect(cli.cfg.primary_conninfo, "pgferry clone", NULL, "primary",
	                           &err)) == NULL)
		goto failed;
	{
		const char *params[1] = {cli.cfg.publication};
		res = pgsession_query(p, "primary",
		                      "SELECT count(*) FROM pg_publication WHERE pubname = $1", 1,
		                      params, &err);
		if (res == NULL)
			goto failed;
		if (strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
			fprintf(stderr,
			        "pgferry clone: the publication \"%s\" does not exist on the "
			        "primary\nHINT: create it first (see sql/primary_setup.sql).\n",
			        cli.cfg.publication);
			goto out;
		}
		PQclear(res);
		res = NULL;
	}
	/* before any slot: a sequence the role cannot read would never be
	 * copied nor shipped */
	if (primary_check_sequences(p, cli.cfg.publication, &err) != PGF_OK) {
		log_error_value(LOG_ERROR, &err);
		goto out;
	}
	if (replication_connect(&rc, cli.cfg.primary_conninfo, &err) != PGF_OK)
		goto failed;
	rc_open = true;
	if (replication_slot_position(&rc, cli.cfg.slot_name, &slot_exists, &confirmed, &err) !=
	    PGF_OK)
		goto failed;
	if (slot_exists && !interrupted) {
		fprintf(stderr,
		        "pgferry clone: the slot \"%s\" already exists on the primary; a pgferry "
		        "source may be using it.\nHINT: choose another slot_name, or drop the slot "
		        "if "
		        "nothing uses it, and run clone again.\n",
		        cli.cfg.slot_name);
		goto out;
	}
	{
		const char *params[1] = {cli.cfg.slot_name};
		res = pgsession_query(
		        d, "DR database",
		        "INSERT INTO pgferry.clone (slot) VALUES ($1) ON CONFLICT (singleton) DO "
		        "UPDATE "
		        "SET slot = excluded.slot, started_at = now()",
		        1, params, &err);
	}
	if (res == NULL)
		goto failed;
	PQclear(res);
	res = NULL;
	if (slot_exists) {
		fprintf(stderr,
		        "pgferry clone: dropping the slot \"%s\" of the interrupted clone\n",
		        cli.cfg.slot_name);
		if (drop_slot(&rc, cli.cfg.slot_name, &err) != PGF_OK)
			goto failed;
	}
	{
		char *ident =
		        PQescapeIdentifier(rc.conn, cli.cfg.slot_name, strlen(cli.cfg.slot_name));
		char sql[400];
		snprintf(sql, sizeof(sql),
		         "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput (SNAPSHOT 'export')",
		         ident ? ident : "\"\"");
		PQfreemem(ident);
		res = PQexec(rc.conn, sql);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			error_set(&err, PGF_E_DATABASE, "creating the slot \"%s\" failed: %s",
			          cli.cfg.slot_name, PQresultErrorMessage(res));
			goto failed;
		}
		slot_created = true;
		lsn_parse(PQgetvalue(res, 0, 1), &consistent);
		snprintf(cl.snapshot, sizeof(cl.snapshot), "%s", PQgetvalue(res, 0, 2));
		PQclear(res);
		res = NULL;
	}
	fprintf(stderr, "pgferry clone: slot \"%s\" created; consistent point %s, snapshot %s\n",
	        cli.cfg.slot_name, lsn_format(consistent, lsn), cl.snapshot);

	/* 3. schema, restored from the snapshot */
	if (!schema_done) {
		const char *tmp = getenv("TMPDIR");
		snprintf(dir, sizeof(dir), "%s/pgferry-clone.XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (mkdtemp(dir) == NULL) {
			error_set(&err, PGF_E_IO, "cannot create a temporary directory: %s",
			          strerror(errno));
			goto failed;
		}
		dir_made = true;
		if (!restore_schema(&cli.cfg, bindir, dir, cl.snapshot, &err))
			goto failed;
		/* restored: the dump is of no more use, even if the copy fails */
		remove_dump_dir(dir);
		dir_made = false;
		if (!exec_ok(d, "DR database",
		             "UPDATE pgferry.clone SET schema_restored_at = now()", &err))
			goto failed;
	}

	/* 4. data: clone_jobs tables at once, all in the snapshot */
	if (!exec_ok(p, "primary", "BEGIN ISOLATION LEVEL REPEATABLE READ", &err))
		goto failed;
	{
		char set_snapshot[200];
		snprintf(set_snapshot, sizeof(set_snapshot), "SET TRANSACTION SNAPSHOT '%s'",
		         cl.snapshot);
		if (!exec_ok(p, "primary", set_snapshot, &err))
			goto failed;
	}
	if (list_tables(&cl, p, &err) != PGF_OK)
		goto failed;
	if (schema_done) {
		/* what the interrupted run copied goes: each table is copied again */
		for (i = 0; i < cl.ntables; i++) {
			char sql[1200];
			snprintf(sql, sizeof(sql), "TRUNCATE %s", cl.tables[i].qualified);
			if (!exec_ok(d, "DR database", sql, &err))
				goto failed;
		}
		fprintf(stderr, "pgferry clone: emptied %d tables of the interrupted clone\n",
		        cl.ntables);
	}
	if ((res = pgsession_query(p, "primary",
	                           "SELECT to_char(now() AT TIME ZONE 'UTC', "
	                           "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
	                           0, NULL, &err)) == NULL)
		goto failed;
	snprintf(snapshot_time, sizeof(snapshot_time), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	res = NULL;
	fprintf(stderr, "pgferry clone: copying %d tables, %d at a time\n", cl.ntables,
	        (int)cli.cfg.clone_jobs);
	nthreads = (int)cli.cfg.clone_jobs < cl.ntables ? (int)cli.cfg.clone_jobs : cl.ntables;
	for (i = 0; i < nthreads; i++)
		if (pthread_create(&threads[i], NULL, worker, &cl) != 0) {
			nthreads = i;
			error_set(&cl.err, PGF_E_MEMORY, "could not start a copy thread");
			cl.failed = true;
			break;
		}
	for (i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	if (cl.failed) {
		err = cl.err;
		goto failed;
	}
	for (i = 0; i < cl.ntables; i++) {
		rows += cl.tables[i].rows;
		bytes += cl.tables[i].bytes;
	}

	/* 5. sequences as of the snapshot; then the hand-over, in one transaction */
	if ((res = pgsession_query(
	             p, "primary",
	             "SELECT format('%I.%I', schemaname, sequencename), last_value::text FROM "
	             "pg_sequences WHERE last_value IS NOT NULL AND schemaname <> 'pgferry'",
	             0, NULL, &err)) == NULL)
		goto failed;
	PQclear(PQexec(p, "COMMIT"));
	/* the stream's own origin (sql/dr_state.sql), held by this session
	 * through the hand-over: a sink applying this stream makes it fail */
	snprintf(sysid, sizeof(sysid), "%" PRIu64, rc.system_identifier);
	{
		const char *po[3] = {sysid, rc.dbname, cli.cfg.slot_name};
		PGresult *r2 = pgsession_query(d, "DR database",
		                               "SELECT pgferry.clone_origin($1::numeric, $2, $3)",
		                               3, po, &err);
		if (r2 == NULL)
			goto failed;
		snprintf(origin, sizeof(origin), "%s", PQgetvalue(r2, 0, 0));
		PQclear(r2);
		po[0] = origin;
		if ((r2 = pgsession_query(d, "DR database",
		                          "SELECT pg_replication_origin_session_setup($1)", 1, po,
		                          &err)) == NULL)
			goto failed;
		PQclear(r2);
	}
	if (!exec_ok(d, "DR database", "BEGIN", &err))
		goto failed;
	for (i = 0; i < PQntuples(res); i++) {
		const char *params[2] = {PQgetvalue(res, i, 0), PQgetvalue(res, i, 1)};
		PGresult *r2 = pgsession_query(d, "DR database",
		                               "SELECT pgferry.sync_sequence($1, $2::int8)", 2,
		                               params, &err);
		if (r2 == NULL)
			goto failed;
		PQclear(r2);
	}
	PQclear(res);
	res = NULL;
	lsn_format(consistent, lsn);
	{
		char nt[16], nr[32], nb[32];
		const char *p1[2] = {lsn, snapshot_time};
		const char *p2[4] = {sysid, rc.dbname, cli.cfg.slot_name, origin};
		const char *p3[4] = {lsn, nt, nr, nb};
		PGresult *r2;

		snprintf(nt, sizeof(nt), "%d", cl.ntables);
		snprintf(nr, sizeof(nr), "%lld", rows);
		snprintf(nb, sizeof(nb), "%lld", bytes);
		/* the origin's progress commits with the hand-over (not
		 * pg_replication_origin_advance, which no rollback undoes) */
		if ((r2 = pgsession_query(
		             d, "DR database",
		             "SELECT pg_replication_origin_xact_setup($1::pg_lsn, $2::timestamptz)",
		             2, p1, &err)) == NULL)
			goto failed;
		PQclear(r2);
		if ((r2 = pgsession_query(
		             d, "DR database",
		             "INSERT INTO pgferry.progress VALUES (true, $1::pg_lsn, "
		             "$2::timestamptz, "
		             "now()) ON CONFLICT (singleton) DO UPDATE SET source_lsn = "
		             "excluded.source_lsn, source_commit_time = "
		             "excluded.source_commit_time, "
		             "applied_at = excluded.applied_at",
		             2, p1, &err)) == NULL)
			goto failed;
		PQclear(r2);
		if ((r2 = pgsession_query(
		             d, "DR database",
		             "INSERT INTO pgferry.identity (system_identifier, database, slot, "
		             "origin) "
		             "VALUES "
		             "($1::numeric, $2, $3, $4) ON CONFLICT (singleton) DO UPDATE SET "
		             "system_identifier = excluded.system_identifier, database = "
		             "excluded.database, slot = excluded.slot, first_contact = now(), "
		             "origin = excluded.origin",
		             4, p2, &err)) == NULL)
			goto failed;
		PQclear(r2);
		if ((r2 = pgsession_query(
		             d, "DR database",
		             "UPDATE pgferry.clone SET finished_at = now(), consistent_lsn = "
		             "$1::pg_lsn, "
		             "tables = $2::int, rows_copied = $3::int8, bytes_copied = $4::int8",
		             4, p3, &err)) == NULL)
			goto failed;
		PQclear(r2);
	}
	if (!exec_ok(d, "DR database", "COMMIT", &err))
		goto failed;
	printf("pgferry clone: done. %d tables, %lld rows, %.1f MB in %.1f s; consistent point "
	       "%s.\n"
	       "Start pgferry sink and pgferry source now: streaming resumes at the consistent "
	       "point, without a gap or a duplicate.\n",
	       cl.ntables, rows, (double)bytes / 1e6, util_monotonic_s() - cl.t0, lsn);
	status = 0;
	goto out;

failed:
	log_error_value(LOG_ERROR, &err);
	/* a slot left behind would hold WAL on the primary until its disk is
	 * full; the next run creates a new one anyway */
	if (slot_created && rc_open) {
		pgf_error_t drop_err;
		error_clear(&drop_err);
		if (drop_slot(&rc, cli.cfg.slot_name, &drop_err) == PGF_OK)
			fprintf(stderr, "pgferry clone: dropped the slot \"%s\" it had created\n",
			        cli.cfg.slot_name);
		else
			fprintf(stderr,
			        "pgferry clone: could not drop the slot \"%s\" it had created: %s\n"
			        "HINT: it holds WAL on the primary; drop it: SELECT "
			        "pg_drop_replication_slot('%s');\n",
			        cli.cfg.slot_name, drop_err.message, cli.cfg.slot_name);
	}
	fprintf(stderr, "pgferry clone: stopped; run it again to start over (it says so)\n");
out:
	PQclear(res);
	if (rc_open)
		replication_close(&rc);
	PQfinish(p);
	PQfinish(d);
	free_tables(&cl);
	/* a dump whose restore failed is kept, for the operator */
	if (dir_made && status == 0)
		remove_dump_dir(dir);
	cli_free(&cli);
	return status;
}
