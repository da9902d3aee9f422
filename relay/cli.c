/*
 * cli.c — options every command shares: --config FILE and -c key=value.
 */
#include "pgferry/cli.h"

#include "pgferry/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_load(int argc, char **argv, int role, cli_t *cli, pgf_error_t *err)
{
	const char *config_file = NULL;
	int i;

	memset(cli, 0, sizeof(*cli));
	config_init(&cli->cfg);
	cli->argv = calloc((size_t)argc + 1, sizeof(char *));
	if (cli->argv == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory");
	cli->argv[cli->argc++] = argv[0];
	/* the file first, so that -c overrides it whatever the order on the line */
	for (i = 1; i < argc && argv[i] != NULL; i++) {
		if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-f") == 0) {
			if (i + 1 >= argc)
				return error_set(err, PGF_E_USAGE, "%s needs a file name", argv[i]);
			config_file = argv[++i];
		} else if (strncmp(argv[i], "--config=", 9) == 0)
			config_file = argv[i] + 9;
	}
	if (config_file != NULL && config_load_file(&cli->cfg, config_file, err) != PGF_OK)
		return PGF_ERR;
	for (i = 1; i < argc && argv[i] != NULL; i++) {
		if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-f") == 0) {
			i++;
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			continue;
		} else if (strcmp(argv[i], "-c") == 0) {
			if (i + 1 >= argc)
				return error_set(err, PGF_E_USAGE, "-c needs key=value");
			if (config_set_option(&cli->cfg, argv[++i], err) != PGF_OK)
				return PGF_ERR;
			/* other local users read argv in ps; the value is copied by now */
			log_blank_secrets(argv[i]);
		} else if (strncmp(argv[i], "-c", 2) == 0 && strchr(argv[i], '=') != NULL) {
			if (config_set_option(&cli->cfg, argv[i] + 2, err) != PGF_OK)
				return PGF_ERR;
			log_blank_secrets(argv[i]);
		} else {
			cli->argv[cli->argc++] = argv[i];
		}
	}
	if (role != 0 && config_check(&cli->cfg, role, err) != PGF_OK)
		return PGF_ERR;
	return PGF_OK;
}

void cli_free(cli_t *cli)
{
	config_free(&cli->cfg);
	free(cli->argv);
	cli->argv = NULL;
}

void cli_configure_logging(const cli_t *cli, const char *role_name)
{
	log_configure((log_level_t)cli->cfg.log_level, (log_format_t)cli->cfg.log_format,
	              role_name);
}
