/*
 * reload.h — SIGHUP: a running source or sink reads its configuration
 * file again (and its -c options, which still win) and applies the keys
 * the table marks reload; each change is logged, a changed key that needs
 * a restart is named, and a file that does not load or check is refused
 * with the reason while the running configuration stays.
 */
#ifndef PGFERRY_RELOAD_H
#define PGFERRY_RELOAD_H

#include "pgferry/cli.h"

#include <ev.h>

typedef struct reload reload_t;

/* Watches SIGHUP on loop for the daemon of role (ROLE_SOURCE or
 * ROLE_SINK). cli must outlive the watcher. NULL when out of memory. */
reload_t *reload_start(struct ev_loop *loop, cli_t *cli, int role);
void reload_stop(reload_t *r);

/* One reload of cli->cfg, as on SIGHUP: PGF_ERR with err set when the file
 * is refused (nothing changed then). *applied and *restart count the keys
 * changed now and those that wait for a restart. */
int reload_config(cli_t *cli, int role, int *applied, int *restart, pgf_error_t *err);

#endif
