/*
 * stubs.c — commands not built yet. Each says so and exits 2. They are weak
 * symbols: a command's real implementation in its own file replaces them.
 */
#include "pgferry/cli.h"

#include <stdio.h>

static int not_yet(const char *name)
{
	fprintf(stderr, "pgferry: the \"%s\" command is not available in this build yet\n", name);
	return EXIT_ERROR;
}

__attribute__((weak)) int cmd_source(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return not_yet("source");
}
__attribute__((weak)) int cmd_sink(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return not_yet("sink");
}
__attribute__((weak)) int cmd_lag(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return not_yet("lag");
}
__attribute__((weak)) int cmd_promote_check(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return not_yet("promote-check");
}
__attribute__((weak)) int cmd_decode(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return not_yet("decode");
}
__attribute__((weak)) int cmd_capture(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return not_yet("capture");
}
__attribute__((weak)) int cmd_verify(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return not_yet("verify");
}
__attribute__((weak)) int cmd_clone(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return not_yet("clone");
}
__attribute__((weak)) int cmd_promote(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return not_yet("promote");
}
