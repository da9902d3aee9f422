/*
 * cli.c — options every command shares: --config FILE and -c key=value.
 */
#include "pgferry/cli.h"

#include "pgferry/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A -c option, copied before its secrets are blanked in argv. */
static int keep_option(cli_t *cli, const char *option, pgf_error_t *err)
{
	if (option == NULL)
		return error_set(err, PGF_E_USAGE, "-c needs key=value");
	if ((cli->options[cli->noptions] = strdup(option)) == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory");
	cli->noptions++;
	return PGF_OK;
}

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
	if (config_file != NULL && (cli->config_file = strdup(config_file)) == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory");
	cli->options = calloc((size_t)argc + 1, sizeof(char *));
	if (cli->options == NULL)
		return error_set(err, PGF_E_MEMORY, "out of memory");
	for (i = 1; i < argc && argv[i] != NULL; i++) {
		if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-f") == 0) {
			i++;
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			continue;
		} else if (strcmp(argv[i], "-c") == 0) {
			if (i + 1 >= argc)
				return error_set(err, PGF_E_USAGE, "-c needs key=value");
			if (config_set_option(&cli->cfg, argv[++i], err) != PGF_OK ||
			    keep_option(cli, argv[i], err) != PGF_OK)
				return PGF_ERR;
			/* other local users read argv in ps; the value is copied by now */
			log_blank_secrets(argv[i]);
		} else if (strncmp(argv[i], "-c", 2) == 0 && strchr(argv[i], '=') != NULL) {
			if (config_set_option(&cli->cfg, argv[i] + 2, err) != PGF_OK ||
			    keep_option(cli, argv[i] + 2, err) != PGF_OK)
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
	int i;

	config_free(&cli->cfg);
	free(cli->argv);
	cli->argv = NULL;
	for (i = 0; i < cli->noptions; i++) {
		/* the options may hold passwords */
		explicit_bzero(cli->options[i], strlen(cli->options[i]));
		free(cli->options[i]);
	}
	free(cli->options);
	cli->options = NULL;
	cli->noptions = 0;
	free(cli->config_file);
	cli->config_file = NULL;
}

void cli_configure_logging(const cli_t *cli, const char *role_name)
{
	log_configure((log_level_t)cli->cfg.log_level, (log_format_t)cli->cfg.log_format,
	              role_name);
}

/* What every command that reads a configuration takes, besides its own. */
static const cli_option_t config_options[] = {
        {"--config", "-f", "FILE", false, "read the configuration from FILE"},
        {"-c", NULL, "KEY=VALUE", false, "set one configuration key (wins over the file)"},
        {NULL, NULL, NULL, false, NULL},
};
static const cli_option_t help_option = {"--help", "-h", NULL, false, "print this help and exit"};

static const cli_option_t *find_option(const cli_option_t *opts, const char *arg)
{
	for (; opts != NULL && opts->name != NULL; opts++)
		if (strcmp(arg, opts->name) == 0 || (opts->alias && strcmp(arg, opts->alias) == 0))
			return opts;
	return NULL;
}

int cli_check_args(const cli_command_t *cmd, int argc, char **argv, pgf_error_t *err)
{
	bool help = false, bad = false;
	int i;

	error_clear(err);
	for (i = 1; i < argc && argv[i] != NULL; i++) {
		const char *a = argv[i];
		const cli_option_t *opt;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			help = true;
			continue;
		}
		if (a[0] != '-' || a[1] == '\0') {
			if (cmd->operands == NULL && !bad) {
				error_set(err, PGF_E_USAGE, "unexpected argument \"%s\"", a);
				bad = true;
			}
			continue;
		}
		if (cmd->uses_config && (strncmp(a, "--config=", 9) == 0 ||
		                         (strncmp(a, "-c", 2) == 0 && strchr(a, '=') != NULL)))
			continue;
		opt = find_option(cmd->options, a);
		if (opt == NULL && cmd->uses_config)
			opt = find_option(config_options, a);
		if (opt == NULL) {
			if (!bad)
				error_set(err, PGF_E_USAGE, "unknown option \"%s\"", a);
			bad = true;
			continue;
		}
		if (opt->value == NULL)
			continue;
		/* an optional value is a word that is no option; a required one is
		 * whatever follows (-c takes "--x=y", --max-apply-backlog "-1") */
		if (i + 1 < argc && argv[i + 1] != NULL &&
		    (!opt->value_optional || argv[i + 1][0] != '-'))
			i++;
		else if (!opt->value_optional && !bad) {
			error_set(err, PGF_E_USAGE, "option %s needs a value (%s)", a, opt->value);
			bad = true;
		}
	}
	if (help) {
		error_clear(err);
		return CLI_ARGS_HELP;
	}
	if (bad) {
		error_hint(err, "\"pgferry %s --help\" lists its options.", cmd->name);
		return CLI_ARGS_BAD;
	}
	return CLI_ARGS_RUN;
}

static void print_option(FILE *out, const cli_option_t *o)
{
	char left[64];

	if (o->alias)
		snprintf(left, sizeof(left), "%s, %s", o->alias, o->name);
	else
		snprintf(left, sizeof(left), "%s", o->name);
	if (o->value)
		snprintf(left + strlen(left), sizeof(left) - strlen(left),
		         o->value_optional ? " [%s]" : " %s", o->value);
	if (strlen(left) > 26)
		fprintf(out, "  %s\n  %-26s %s\n", left, "", o->help);
	else
		fprintf(out, "  %-26s %s\n", left, o->help);
}

/* Prints text wrapped at 78 columns, breaking at spaces. */
static void print_wrapped(FILE *out, const char *text)
{
	const char *p = text;

	while (strlen(p) > 78) {
		const char *cut = p + 78;
		while (cut > p && *cut != ' ')
			cut--;
		if (cut == p)
			break;
		fprintf(out, "%.*s\n", (int)(cut - p), p);
		p = cut + 1;
	}
	fprintf(out, "%s\n", p);
}

void cli_print_usage(FILE *out, const cli_command_t *cmd)
{
	const cli_option_t *o;

	fprintf(out, "Usage: pgferry %s%s%s%s%s\n%s.\n", cmd->name,
	        cmd->uses_config ? " [--config FILE] [-c KEY=VALUE ...]" : "",
	        cmd->options != NULL && cmd->options->name != NULL ? " [options]" : "",
	        cmd->operands ? " " : "", cmd->operands ? cmd->operands : "", cmd->summary);
	if (cmd->description) {
		fputc('\n', out);
		print_wrapped(out, cmd->description);
	}
	fprintf(out, "\nOptions:\n");
	for (o = cmd->options; o != NULL && o->name != NULL; o++)
		print_option(out, o);
	if (cmd->uses_config)
		for (o = config_options; o->name != NULL; o++)
			print_option(out, o);
	print_option(out, &help_option);
	if (cmd->uses_config)
		fprintf(out, "\nThe configuration keys are listed by \"pgferry --help\" and in "
		             "pgferry(1).\n");
	fprintf(out, "\nExit codes: 0 success, 1 a negative answer, 2 an error or cannot tell.\n");
}

const cli_option_t *cli_config_options(void)
{
	return config_options;
}
