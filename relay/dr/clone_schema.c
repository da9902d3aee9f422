/*
 * clone_schema.c — the schema step of `pgferry clone` (clone.h): pg_dump
 * --schema-only from the primary at the slot's snapshot, pg_restore into
 * the DR database without pgferry's own objects, event triggers and
 * publications. Passwords reach the tools in their environment, never on
 * their command line, which every local user can read.
 */
#include "pgferry/clone.h"

#include "pgferry/error.h"
#include "pgferry/pgsession.h"
#include "pgferry/pgtools.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- pg_dump / pg_restore ------------------------------------------------- */

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
                             const char *dr_pw, int *skipped_out, pgf_error_t *err)
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
	if (!pgtools_run(bindir, dump_argv, primary_pw, NULL, errf, err))
		return false;
	snprintf(errf, sizeof(errf), "%s/pg_restore_list.err", dir);
	if (!pgtools_run(bindir, list_argv, NULL, list, errf, err))
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
	if (!pgtools_run(bindir, restore_argv, dr_pw, NULL, errf, err))
		return false;
	*skipped_out = skipped;
	return true;
}

/* pg_dump from the primary, pg_restore into the DR database; passwords of
 * the conninfos go to them in the environment, never on their command line. */
bool clone_restore_schema(const config_t *cfg, const char *bindir, const char *dir,
                          const char *snapshot, int *skipped, pgf_error_t *err)
{
	char *primary_pw = NULL, *dr_pw = NULL;
	char *primary =
	        pgsession_conninfo_without_password(cfg->primary_conninfo, &primary_pw, err);
	char *dr =
	        primary ? pgsession_conninfo_without_password(cfg->dr_conninfo, &dr_pw, err) : NULL;
	bool ok = dr != NULL && run_schema_tools(bindir, dir, snapshot, primary, primary_pw, dr,
	                                         dr_pw, skipped, err);

	free(primary);
	free(dr);
	free(primary_pw);
	free(dr_pw);
	return ok;
}

void clone_remove_dump_dir(const char *dir)
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
