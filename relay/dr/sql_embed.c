/*
 * sql_embed.c — the files of sql/ as NUL-terminated strings, included byte
 * for byte by the assembler, so that the SQL a DBA reviews is the SQL that
 * runs. The Makefile makes this object depend on the files of sql/.
 */
#include "pgferry/dr_state.h"

#define EMBED(symbol, file)                                                                        \
	__asm__(".section .rodata\n"                                                               \
	        ".global " #symbol "\n"                                                            \
	        ".type " #symbol ", @object\n"                                                     \
	        ".balign 16\n" #symbol ":\n"                                                       \
	        ".incbin \"" file "\"\n"                                                           \
	        ".byte 0\n"                                                                        \
	        ".size " #symbol ", . - " #symbol "\n"                                             \
	        ".previous\n")

EMBED(pgferry_sql_dr_state, "sql/dr_state.sql");
EMBED(pgferry_sql_dr_lag_history, "sql/dr_lag_history.sql");
EMBED(pgferry_sql_dr_events, "sql/dr_events.sql");
EMBED(pgferry_sql_primary_ddl, "sql/primary_ddl.sql");
