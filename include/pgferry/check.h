/*
 * check.h — the pre-flight of a configuration (`pgferry check`), also run
 * by `pgferry source` and `pgferry sink` at start.
 *
 * Each check adds one line to a report: ok, a warning (works, but watch
 * it) or an error (would fail or lose data), with the fix. The checks of a
 * server's setup live next to the code that needs that setup
 * (primary_check.c, dr_check.c); this module gathers them per role.
 */
#ifndef PGFERRY_CHECK_H
#define PGFERRY_CHECK_H

#include "pgferry/config.h"
#include "pgferry/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum { CHECK_OK = 0, CHECK_WARNING = 1, CHECK_ERROR = 2 } check_level_t;

typedef struct check_item {
	check_level_t level;
	char name[40];     /* "wal_level", "tls_key"... */
	char message[600]; /* what was found */
	char fix[600];     /* what to do; empty for ok */
} check_item_t;

/* The lines of one run, in order. Owns items. */
typedef struct check_report {
	check_item_t *items;
	size_t count, cap;
	bool at_start; /* run by a daemon at start: see check_run */
} check_report_t;

/* The roles a configuration is checked for. */
typedef enum { CHECK_ROLE_SOURCE, CHECK_ROLE_SINK, CHECK_ROLE_CLONE } check_role_t;

void check_report_init(check_report_t *r);
void check_report_free(check_report_t *r);
/* Adds a line; fix may be NULL (ok lines). Out of memory drops the line
 * and turns the report's worst level to an error. */
void check_add(check_report_t *r, check_level_t level, const char *name, const char *fix,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The worst level in the report: the exit code of `pgferry check`. */
check_level_t check_report_worst(const check_report_t *r);
/* One line per check: "ok       name: message" or "error    name: message Fix: fix". */
void check_format_item(const check_item_t *it, char *out, size_t len);

/* Runs every check of role on cfg into r. With r->at_start (a daemon
 * starting), what the daemon is about to do itself anyway is left out
 * (binding its ports, reaching the sink), and what it retries by itself is
 * a warning instead of an error (a server that is down, a replication
 * origin another session holds for now). */
void check_run(const config_t *cfg, check_role_t role, check_report_t *r);

/* What `pgferry source` and `pgferry sink` run at start: the checks of
 * role, warnings and errors logged as `pgferry check` prints them. PGF_ERR
 * with err set to the first error when any check failed. */
int check_at_start(const config_t *cfg, check_role_t role, pgf_error_t *err);

/* The checks of the network side (check_net.c), for check_run. */
/* tls_ca, tls_cert, tls_key: loaded as the daemon loads them, the key's
 * permissions, the chain to tls_ca, expiry (a warning 30 days ahead), the
 * names the certificate carries. */
void check_tls_files(const config_t *cfg, check_role_t role, check_report_t *r);
/* The sink's listen_address and http_listen can be bound. */
void check_sink_ports(const config_t *cfg, check_report_t *r);
/* The sink at sink_address answers, and with TLS: its certificate carries
 * the name the source expects and it accepts this source's certificate. */
void check_sink_reachable(const config_t *cfg, check_report_t *r);

/* work_dir is a directory no other user may write to: another user could
 * plant links or files where the sink (often root) creates its spill and
 * spool files. The sink runs it once it made the directory. */
int check_work_dir(const char *dir, pgf_error_t *err);

/* The name of a role ("source", "sink", "clone"). */
const char *check_role_name(check_role_t role);

#endif
