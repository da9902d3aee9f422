/*
 * daemon.h — what `pgferry source` and `pgferry sink` do alike at start and
 * on their link: the configuration and its checks, the TLS policy, the
 * signals that stop them, the clock they stamp pings with and the answer
 * to a ping. Each daemon keeps its own loop and state; this module holds
 * none.
 */
#ifndef PGFERRY_DAEMON_H
#define PGFERRY_DAEMON_H

#include "pgferry/check.h"
#include "pgferry/cli.h"
#include "pgferry/error.h"
#include "pgferry/netconn.h"
#include "pgferry/tls.h"

#include <ev.h>
#include <stdint.h>

/* Loads the configuration of role (ROLE_SOURCE or ROLE_SINK: file, -c),
 * sets up logging as name ("source", "sink"), ignores SIGPIPE (a peer that
 * went away is an error value, not a signal) and runs the checks of
 * `pgferry check` for check_role. On failure err says why. Either way the
 * caller frees cli (cli_free). */
int daemon_load(int argc, char **argv, int role, check_role_t check_role, const char *name,
                cli_t *cli, pgf_error_t *err);

/* The TLS policy: with tls = on, *tls is a context for tls_role from
 * tls_ca, tls_cert, tls_key and tls_peer_name (tls_context_free); with
 * tls = off, *tls is NULL, allowed only when address (the value of the
 * configuration key key) is on loopback, and a warning says so. */
int daemon_tls(const config_t *cfg, tls_role_t tls_role, const char *key, const char *address,
               tls_context_t **tls, pgf_error_t *err);

/* SIGINT and SIGTERM on loop call on_signal with w->data = data. */
void daemon_signals(struct ev_loop *loop, ev_signal *sigint, ev_signal *sigterm,
                    void (*on_signal)(struct ev_loop *loop, ev_signal *w, int revents), void *data);

/* The time this side puts in pings, pongs and hellos (pgtime µs): now,
 * shifted by test_clock_skew (tests only). */
int64_t daemon_clock_now(const config_t *cfg);

/* Answers the ping in payload on c: the pong carries its t1 back with this
 * side's time. PGF_ERR only when the ping is malformed; a pong c cannot
 * take is c's failure, reported through its closed callback. */
int daemon_answer_ping(netconn_t *c, const config_t *cfg, const uint8_t *payload, size_t len,
                       pgf_error_t *err);

#endif
