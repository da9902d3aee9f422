/*
 * daemon.c — the start-up that `pgferry source` and `pgferry sink` share
 * (daemon.h): configuration, logging and the pre-flight checks, the TLS
 * policy (plaintext only on loopback), the stop signals, the clock in
 * pings and the answer to a ping. Uses cli/ (configuration, logging),
 * transport/ (connections, TLS, frames) and the pre-flight.
 */
#include "pgferry/daemon.h"

#include "pgferry/buf.h"
#include "pgferry/log.h"
#include "pgferry/util.h"
#include "pgferry/wire.h"

#include <signal.h>

int daemon_load(int argc, char **argv, int role, check_role_t check_role, const char *name,
                cli_t *cli, pgf_error_t *err)
{
	if (cli_load(argc, argv, role, cli, err) != PGF_OK)
		return PGF_ERR;
	cli_configure_logging(cli, name);
	signal(SIGPIPE, SIG_IGN);
	/* the same checks as pgferry check: a setup that cannot work stops here */
	return check_at_start(&cli->cfg, check_role, err);
}

int daemon_tls(const config_t *cfg, tls_role_t tls_role, const char *key, const char *address,
               tls_context_t **tls, pgf_error_t *err)
{
	*tls = NULL;
	if (cfg->tls) {
		*tls = tls_context_create(tls_role, cfg->tls_ca, cfg->tls_cert, cfg->tls_key,
		                          cfg->tls_peer_name, err);
		return *tls != NULL ? PGF_OK : PGF_ERR;
	}
	if (!netconn_address_is_loopback(address)) {
		error_set(err, PGF_E_CONFIG,
		          "tls = off is allowed only when %s is on loopback, not \"%s\"", key,
		          address);
		error_hint(err, "Give both sides certificates (tls_ca, tls_cert, tls_key).");
		return PGF_ERR;
	}
	log_warning("TLS is OFF: the link between source and sink is neither encrypted nor "
	            "authenticated (allowed on loopback only)");
	return PGF_OK;
}

void daemon_signals(struct ev_loop *loop, ev_signal *sigint, ev_signal *sigterm,
                    void (*on_signal)(struct ev_loop *loop, ev_signal *w, int revents), void *data)
{
	ev_signal_init(sigint, on_signal, SIGINT);
	sigint->data = data;
	ev_signal_start(loop, sigint);
	ev_signal_init(sigterm, on_signal, SIGTERM);
	sigterm->data = data;
	ev_signal_start(loop, sigterm);
}

int64_t daemon_clock_now(const config_t *cfg)
{
	return pgtime_now() + cfg->test_clock_skew * 1000;
}

int daemon_answer_ping(netconn_t *c, const config_t *cfg, const uint8_t *payload, size_t len,
                       pgf_error_t *err)
{
	wire_ping_t ping;
	wire_pong_t pong;
	pgf_error_t ignored;
	buf_t b;

	if (wire_decode_ping(payload, len, &ping, err) != PGF_OK)
		return PGF_ERR;
	pong.t1 = ping.t1;
	/* received and sent at once: nothing waits between */
	pong.t2 = pong.t3 = daemon_clock_now(cfg);
	buf_init(&b);
	wire_encode_pong(&pong, &b);
	/* a connection that failed says so through its closed callback */
	error_clear(&ignored);
	netconn_send(c, WIRE_PONG, b.data, b.len, &ignored);
	buf_free(&b);
	return PGF_OK;
}
