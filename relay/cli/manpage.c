/*
 * manpage.c — the manual page pgferry(1) in roff, written from the tables
 * that --help prints (commands and their options in main.c, configuration
 * keys in config.c, exit codes), so the page cannot fall behind the binary.
 * `pgferry man` prints it; the build installs its output.
 */
#include "pgferry/cli.h"
#include "pgferry/config.h"
#include "pgferry/version.h"

#include <stdio.h>
#include <string.h>

/* Text as roff reads it: a backslash is \e, a hyphen a minus sign \- (what
 * a person types on the command line), and a line may not start a request. */
static void roff_text(FILE *out, const char *s)
{
	bool line_start = true;

	for (; *s; s++) {
		if (line_start && (*s == '.' || *s == '\''))
			fputs("\\&", out);
		if (*s == '\\')
			fputs("\\e", out);
		else if (*s == '-')
			fputs("\\-", out);
		else
			fputc(*s, out);
		line_start = *s == '\n';
	}
}

static void roff_option(FILE *out, const cli_option_t *o)
{
	fputs(".TP\n", out);
	if (o->alias) {
		fputs("\\fB", out);
		roff_text(out, o->alias);
		fputs("\\fR, ", out);
	}
	fputs("\\fB", out);
	roff_text(out, o->name);
	fputs("\\fR", out);
	if (o->value) {
		fputs(o->value_optional ? " [\\fI" : " \\fI", out);
		roff_text(out, o->value);
		fputs(o->value_optional ? "\\fR]" : "\\fR", out);
	}
	fputc('\n', out);
	roff_text(out, o->help);
	fputs(".\n", out);
}

static void roff_command(FILE *out, const cli_command_t *c)
{
	const cli_option_t *o;

	fputs(".SS \"pgferry ", out);
	roff_text(out, c->name);
	fputs("\"\n\\fBpgferry ", out);
	roff_text(out, c->name);
	fputs("\\fR", out);
	/* one line: roff puts two spaces after a line ending in "..." */
	if (c->uses_config)
		fputs(" [\\fB\\-\\-config\\fR \\fIFILE\\fR] [\\fB\\-c\\fR \\fIKEY=VALUE\\fR ...]",
		      out);
	if (c->options != NULL && c->options->name != NULL)
		fputs(" [\\fIoptions\\fR]", out);
	if (c->operands) {
		fputs(" \\fI", out);
		roff_text(out, c->operands);
		fputs("\\fR", out);
	}
	fputc('\n', out);
	fputs(".PP\n", out);
	roff_text(out, c->summary);
	fputs(".\n", out);
	if (c->description) {
		fputs(".PP\n", out);
		roff_text(out, c->description);
		fputc('\n', out);
	}
	if (c->options != NULL && c->options->name != NULL) {
		fputs(".RS\n", out);
		for (o = c->options; o->name != NULL; o++)
			roff_option(out, o);
		fputs(".RE\n", out);
	}
}

void manpage_write(FILE *out, const cli_command_t *commands, size_t ncommands,
                   const cli_exit_code_t *codes, size_t ncodes)
{
	const cli_option_t *o;
	size_t i;

	fprintf(out, ".\\\" the manual page of pgferry, written by \"pgferry man\"\n");
	fprintf(out, ".TH PGFERRY 1 \"\" \"pgferry %s\" \"User Commands\"\n", PGFERRY_VERSION);
	fputs(".SH NAME\npgferry \\- a disaster\\-recovery copy of PostgreSQL with a true RPO\n",
	      out);
	fputs(".SH SYNOPSIS\n.B pgferry\n.I command\n"
	      "[\\fB\\-\\-config\\fR \\fIFILE\\fR] [\\fB\\-c\\fR \\fIKEY=VALUE\\fR ...] "
	      "[\\fIoptions\\fR]\n.br\n.B pgferry\n.I command\n.B \\-\\-help\n",
	      out);
	fputs(".SH DESCRIPTION\n"
	      "pgferry keeps a disaster\\-recovery copy of a PostgreSQL database by logical "
	      "replication and reports how much data a promotion of that copy would lose.\n"
	      ".B pgferry source\nruns next to the primary and ships its changes over mutual "
	      "TLS;\n.B pgferry sink\nruns next to the DR database, applies each transaction "
	      "exactly once and in order, and answers whether promoting now is safe.\n",
	      out);
	fputs(".SH COMMANDS\n", out);
	for (i = 0; i < ncommands; i++)
		if (!commands[i].hidden)
			roff_command(out, &commands[i]);
	fputs(".SH OPTIONS\nThe commands that read a configuration take:\n", out);
	for (o = cli_config_options(); o->name != NULL; o++)
		roff_option(out, o);
	fputs(".PP\nEvery command takes \\fB\\-\\-help\\fR (or \\fB\\-h\\fR): it prints the "
	      "command's usage and exits 0 without starting anything.\n",
	      out);
	fputs(".SH CONFIGURATION\nThe configuration file has the syntax of postgresql.conf: "
	      "one \\fIkey\\fR = \\fIvalue\\fR a line, # starts a comment, strings in single "
	      "quotes. Durations take the units ms, s, min, h and d (a bare number is "
	      "milliseconds); sizes take B, kB, MB, GB and TB.\n",
	      out);
	for (i = 0; i < config_key_count; i++) {
		const config_key_t *k = &config_keys[i];

		fputs(".TP\n\\fB", out);
		roff_text(out, k->name);
		fprintf(out, "\\fR (%s", config_type_text(k->type));
		if (k->default_value != NULL) {
			fputs(", default ", out);
			roff_text(out, k->default_value[0] ? k->default_value : "''");
		} else if (k->required)
			fputs(", required", out);
		fputs("; ", out);
		roff_text(out, config_roles_text(k->roles));
		fputs(")\n", out);
		roff_text(out, k->help);
		if (k->reload)
			fputs("; changes on SIGHUP", out);
		fputc('\n', out);
	}
	fputs(".SH SIGNALS\n.TP\n.B SIGHUP\n"
	      "source and sink read the configuration file again and apply the keys marked "
	      "\"changes on SIGHUP\"; each change is logged, a changed key that needs a restart "
	      "is named, and a file that does not load is refused (the running configuration "
	      "stays).\n.TP\n.B SIGTERM, SIGINT\n"
	      "stop cleanly: the sink commits the whole transactions it holds and rolls back "
	      "the rest, the source confirms only what the DR database committed.\n",
	      out);
	fputs(".SH \"EXIT STATUS\"\n", out);
	for (i = 0; i < ncodes; i++) {
		fprintf(out, ".TP\n.B %d\n", codes[i].code);
		roff_text(out, codes[i].meaning);
		fputs(".\n", out);
	}
	fputs(".SH FILES\n.TP\n.I /etc/pgferry/*.conf\n"
	      "configuration files; the systemd units pgferry\\-source@NAME and "
	      "pgferry\\-sink@NAME read /etc/pgferry/NAME.conf\n"
	      ".TP\n.I /usr/share/pgferry/sql\n"
	      "the SQL to prepare the primary (primary_setup.sql) and the DR database "
	      "(dr_setup.sql)\n",
	      out);
	fputs(".SH \"SEE ALSO\"\n.BR psql (1),\n.BR openssl (1)\n", out);
}
