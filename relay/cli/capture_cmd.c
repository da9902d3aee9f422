/*
 * capture_cmd.c — `pgferry capture`: records a live pgoutput stream into a
 * capture file (PGFCAP1, then length-prefixed CopyData messages exactly as
 * the walsender sent them), as pg_recvlogical records changes, for tests,
 * fuzz corpora and forensics. It answers keepalives and confirms to the
 * slot only what it has written and fsynced.
 */
#include "pgferry/buf.h"
#include "pgferry/byteorder.h"
#include "pgferry/cli.h"
#include "pgferry/decoder.h"
#include "pgferry/log.h"
#include "pgferry/replication.h"
#include "pgferry/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void usage(FILE *out)
{
	fprintf(out, "Usage: pgferry capture -d CONNINFO -o FILE [options]\n"
	             "  -d, --dbname CONNINFO   the primary (a database connection string)\n"
	             "  -o, --output FILE       capture file to write\n"
	             "  --slot NAME             logical slot (created if missing; default "
	             "pgferry_capture)\n"
	             "  --publication NAME      publication (default pgferry)\n"
	             "  --proto-version N       pgoutput protocol (default: the highest the server "
	             "has)\n"
	             "  --binary --streaming --two-phase --messages   pgoutput options\n"
	             "  --until-idle DURATION   stop after this long without a change (e.g. 2s)\n"
	             "  --end-lsn X/Y           stop once a message at or past X/Y arrived\n");
}

/* One run of capture: what its steps share. */
typedef struct capture_run {
	const char *conninfo, *output;
	replication_options_t opts;
	int64_t idle_ms;
	uint64_t end_lsn;     /* stop once a message at or past it arrived (0: never) */
	uint64_t written_lsn; /* newest message start written */
	uint64_t records, bytes;
	replication_conn_t rc;
	bool repl_open;
	int fd;
} capture_run_t;

/* 0 to run, 1 when --help was asked (printed), PGF_ERR with err set. */
static int parse_args(capture_run_t *c, int argc, char **argv, pgf_error_t *err)
{
	int i;

	c->opts.slot_name = "pgferry_capture";
	c->opts.publication = "pgferry";
	for (i = 1; i < argc && argv[i] != NULL; i++) {
		const char *a = argv[i];
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;

		if ((strcmp(a, "-d") == 0 || strcmp(a, "--dbname") == 0) && next)
			c->conninfo = argv[++i];
		else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && next)
			c->output = argv[++i];
		else if (strcmp(a, "--slot") == 0 && next)
			c->opts.slot_name = argv[++i];
		else if (strcmp(a, "--publication") == 0 && next)
			c->opts.publication = argv[++i];
		else if (strcmp(a, "--proto-version") == 0 && next) {
			c->opts.proto_version = atoi(argv[++i]);
			if (c->opts.proto_version < 1 || c->opts.proto_version > 4)
				return error_set(err, PGF_E_USAGE, "--proto-version takes 1 to 4");
		} else if (strcmp(a, "--binary") == 0)
			c->opts.binary = true;
		else if (strcmp(a, "--streaming") == 0)
			c->opts.streaming = true;
		else if (strcmp(a, "--two-phase") == 0)
			c->opts.two_phase = true;
		else if (strcmp(a, "--messages") == 0)
			c->opts.messages = true;
		else if (strcmp(a, "--until-idle") == 0 && next) {
			if (config_parse_duration(argv[++i], &c->idle_ms) != PGF_OK ||
			    c->idle_ms <= 0)
				return error_set(err, PGF_E_USAGE,
				                 "--until-idle takes a duration such as 2s");
		} else if (strcmp(a, "--end-lsn") == 0 && next) {
			if (lsn_parse(argv[++i], &c->end_lsn) != PGF_OK)
				return error_set(err, PGF_E_USAGE,
				                 "--end-lsn takes an LSN such as 0/16B3748");
		} else if (strcmp(a, "--help") == 0) {
			usage(stdout);
			return 1;
		} else
			return error_set(err, PGF_E_USAGE, "unexpected argument \"%s\"", a);
	}
	if (c->conninfo == NULL || c->output == NULL) {
		error_set(err, PGF_E_USAGE, "capture needs -d CONNINFO and -o FILE");
		error_hint(err, "pgferry capture --help lists the options.");
		return PGF_ERR;
	}
	return 0;
}

/* The slot (created if missing) and the file, with its magic written. */
static int open_both(capture_run_t *c, pgf_error_t *err)
{
	bool created;
	uint64_t consistent;
	char lsn[LSN_TEXT_LEN];

	if (replication_connect(&c->rc, c->conninfo, err) != PGF_OK)
		return PGF_ERR;
	c->repl_open = true;
	if (replication_ensure_slot(&c->rc, c->opts.slot_name, c->opts.two_phase, &created,
	                            &consistent, err) != PGF_OK)
		return PGF_ERR;
	if (created)
		log_info("created slot \"%s\" at %s", c->opts.slot_name,
		         lsn_format(consistent, lsn));
	c->fd = open(c->output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (c->fd < 0)
		return error_set(err, PGF_E_IO, "could not create \"%s\": %s", c->output,
		                 strerror(errno));
	if (util_write_all(c->fd, CAPTURE_MAGIC, CAPTURE_MAGIC_LEN) != PGF_OK)
		return error_set(err, PGF_E_IO, "could not write \"%s\": %s", c->output,
		                 strerror(errno));
	return PGF_OK;
}

/* One record: its length and the message as the walsender sent it; a
 * keepalive that asks for a reply is answered with what is on disk. */
static int write_record(capture_run_t *c, const uint8_t *data, size_t len,
                        const walsender_message_t *wm, pgf_error_t *err)
{
	uint8_t hdr[4];

	be32_write(hdr, (uint32_t)len);
	if (util_write_all(c->fd, hdr, 4) != PGF_OK || util_write_all(c->fd, data, len) != PGF_OK)
		return error_set(err, PGF_E_IO, "could not write \"%s\": %s", c->output,
		                 strerror(errno));
	c->records++;
	c->bytes += len;
	if (wm->kind == 'w' && wm->wal_start > c->written_lsn)
		c->written_lsn = wm->wal_start;
	/* confirm only what is safely on disk */
	if (wm->kind == 'k' && wm->reply_requested &&
	    (fsync(c->fd) != 0 || replication_send_status(&c->rc, c->written_lsn, c->written_lsn,
	                                                  c->written_lsn, false, err) != PGF_OK))
		return PGF_ERR;
	return PGF_OK;
}

/* Until a signal, the end of the stream, --until-idle or --end-lsn. */
static int stream(capture_run_t *c, pgf_error_t *err)
{
	double last_change = util_monotonic_s();

	if (replication_start(&c->rc, 0, &c->opts, err) != PGF_OK)
		return PGF_ERR;
	while (!stop_requested) {
		const uint8_t *data;
		size_t len;
		walsender_message_t wm;
		int r = replication_read(&c->rc, &data, &len, err);

		if (r < 0)
			return PGF_ERR;
		if (r == 2) {
			log_info("the server ended the stream");
			break;
		}
		if (r == 0) {
			struct pollfd p = {replication_socket(&c->rc), POLLIN, 0};
			if (c->idle_ms > 0 &&
			    (util_monotonic_s() - last_change) * 1000.0 >= (double)c->idle_ms)
				break;
			poll(&p, 1, 100);
			continue;
		}
		if (walsender_parse(data, len, &wm, err) != PGF_OK ||
		    write_record(c, data, len, &wm, err) != PGF_OK)
			return PGF_ERR;
		if (wm.kind == 'w')
			last_change = util_monotonic_s();
		if (c->end_lsn && wm.kind == 'w' && wm.wal_start >= c->end_lsn)
			break;
	}
	return PGF_OK;
}

/* Everything on disk, then confirmed to the slot. */
static int finish(capture_run_t *c, pgf_error_t *err)
{
	char lsn[LSN_TEXT_LEN];

	if (fsync(c->fd) != 0)
		return error_set(err, PGF_E_IO, "could not fsync \"%s\": %s", c->output,
		                 strerror(errno));
	if (c->written_lsn && replication_send_status(&c->rc, c->written_lsn, c->written_lsn,
	                                              c->written_lsn, false, err) != PGF_OK)
		return PGF_ERR;
	log_info("wrote %" PRIu64 " messages (%" PRIu64 " bytes) to %s, up to %s", c->records,
	         c->bytes, c->output, lsn_format(c->written_lsn, lsn));
	return PGF_OK;
}

int cmd_capture(int argc, char **argv)
{
	capture_run_t c;
	pgf_error_t err;
	int rc;

	memset(&c, 0, sizeof(c));
	c.fd = -1;
	error_clear(&err);
	log_configure(LOG_INFO, LOG_FORMAT_TEXT, "capture");
	rc = parse_args(&c, argc, argv, &err);
	if (rc == 1)
		return 0;
	if (rc == PGF_OK) {
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		rc = open_both(&c, &err) == PGF_OK && stream(&c, &err) == PGF_OK &&
		                     finish(&c, &err) == PGF_OK
		             ? PGF_OK
		             : PGF_ERR;
	}
	if (rc != PGF_OK)
		log_error_value(LOG_ERROR, &err);
	if (c.fd >= 0)
		close(c.fd);
	if (c.repl_open)
		replication_close(&c.rc);
	return rc == PGF_OK ? 0 : EXIT_ERROR;
}
