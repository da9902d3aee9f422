/*
 * pgtools.c — running PostgreSQL's client programs (pg_dump, pg_restore)
 * for the commands that copy a database (pgtools.h). Passwords go to the
 * child's environment, never its argv: argv is readable by every local
 * user, the environment only by the same user and root.
 */
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

extern char **environ;

void pgtools_find_bindir(const char *given, char *out, size_t len)
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
bool pgtools_run(const char *bindir, char **argv, const char *password, const char *out_path,
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
