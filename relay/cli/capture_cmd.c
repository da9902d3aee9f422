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

int cmd_capture(int argc, char **argv)
{
	const char *conninfo = NULL, *output = NULL;
	replication_options_t opts = {0};
	replication_conn_t rc;
	pgf_error_t err;
	int64_t idle_ms = 0;
	uint64_t end_lsn = 0, written_lsn = 0, start_lsn = 0, consistent;
	uint64_t records = 0, bytes = 0;
	bool created, repl_open = false;
	int i, fd = -1, result = EXIT_ERROR;
	double last_change;
	char lsn[LSN_TEXT_LEN];

	error_clear(&err);
	log_configure(LOG_INFO, LOG_FORMAT_TEXT, "capture");
	opts.slot_name = "pgferry_capture";
	opts.publication = "pgferry";
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;

		if (a == NULL)
			break;
		if ((strcmp(a, "-d") == 0 || strcmp(a, "--dbname") == 0) && next)
			conninfo = argv[++i];
		else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && next)
			output = argv[++i];
		else if (strcmp(a, "--slot") == 0 && next)
			opts.slot_name = argv[++i];
		else if (strcmp(a, "--publication") == 0 && next)
			opts.publication = argv[++i];
		else if (strcmp(a, "--proto-version") == 0 && next) {
			opts.proto_version = atoi(argv[++i]);
			if (opts.proto_version < 1 || opts.proto_version > 4) {
				fprintf(stderr, "pgferry capture: --proto-version takes 1 to 4\n");
				return EXIT_ERROR;
			}
		} else if (strcmp(a, "--binary") == 0)
			opts.binary = true;
		else if (strcmp(a, "--streaming") == 0)
			opts.streaming = true;
		else if (strcmp(a, "--two-phase") == 0)
			opts.two_phase = true;
		else if (strcmp(a, "--messages") == 0)
			opts.messages = true;
		else if (strcmp(a, "--until-idle") == 0 && next) {
			if (config_parse_duration(argv[++i], &idle_ms) != PGF_OK || idle_ms <= 0) {
				fprintf(stderr,
				        "pgferry capture: --until-idle takes a duration such as "
				        "2s\n");
				return EXIT_ERROR;
			}
		} else if (strcmp(a, "--end-lsn") == 0 && next) {
			if (lsn_parse(argv[++i], &end_lsn) != PGF_OK) {
				fprintf(stderr, "pgferry capture: --end-lsn takes an LSN such as "
				                "0/16B3748\n");
				return EXIT_ERROR;
			}
		} else if (strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "pgferry capture: unexpected argument \"%s\"\n", a);
			usage(stderr);
			return EXIT_ERROR;
		}
	}
	if (conninfo == NULL || output == NULL) {
		usage(stderr);
		return EXIT_ERROR;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (replication_connect(&rc, conninfo, &err) != PGF_OK)
		goto fail;
	repl_open = true;
	if (replication_ensure_slot(&rc, opts.slot_name, opts.two_phase, &created, &consistent,
	                            &err) != PGF_OK)
		goto fail;
	if (created)
		log_info("created slot \"%s\" at %s", opts.slot_name, lsn_format(consistent, lsn));
	fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		error_set(&err, PGF_E_IO, "could not create \"%s\": %s", output, strerror(errno));
		goto fail;
	}
	if (util_write_all(fd, CAPTURE_MAGIC, CAPTURE_MAGIC_LEN) != PGF_OK) {
		error_set(&err, PGF_E_IO, "could not write \"%s\": %s", output, strerror(errno));
		goto fail;
	}
	if (replication_start(&rc, start_lsn, &opts, &err) != PGF_OK)
		goto fail;
	last_change = util_monotonic_s();
	while (!stop_requested) {
		const uint8_t *data;
		size_t len;
		walsender_message_t wm;
		uint8_t hdr[4];
		int r = replication_read(&rc, &data, &len, &err);

		if (r < 0)
			goto fail;
		if (r == 2) {
			log_info("the server ended the stream");
			break;
		}
		if (r == 0) {
			struct pollfd p = {replication_socket(&rc), POLLIN, 0};
			if (idle_ms > 0 &&
			    (util_monotonic_s() - last_change) * 1000.0 >= (double)idle_ms)
				break;
			poll(&p, 1, 100);
			continue;
		}
		if (walsender_parse(data, len, &wm, &err) != PGF_OK)
			goto fail;
		be32_write(hdr, (uint32_t)len);
		if (util_write_all(fd, hdr, 4) != PGF_OK ||
		    util_write_all(fd, data, len) != PGF_OK) {
			error_set(&err, PGF_E_IO, "could not write \"%s\": %s", output,
			          strerror(errno));
			goto fail;
		}
		records++;
		bytes += len;
		if (wm.kind == 'w') {
			last_change = util_monotonic_s();
			if (wm.wal_start > written_lsn)
				written_lsn = wm.wal_start;
		}
		if (wm.kind == 'k' && wm.reply_requested) {
			/* confirm only what is safely on disk */
			if (fsync(fd) != 0 ||
			    replication_send_status(&rc, written_lsn, written_lsn, written_lsn,
			                            false, &err) != PGF_OK)
				goto fail;
		}
		if (end_lsn && wm.kind == 'w' && wm.wal_start >= end_lsn)
			break;
	}
	if (fsync(fd) != 0) {
		error_set(&err, PGF_E_IO, "could not fsync \"%s\": %s", output, strerror(errno));
		goto fail;
	}
	if (written_lsn && replication_send_status(&rc, written_lsn, written_lsn, written_lsn,
	                                           false, &err) != PGF_OK)
		goto fail;
	fprintf(stderr,
	        "pgferry capture: wrote %" PRIu64 " messages (%" PRIu64 " bytes) to %s, up to %s\n",
	        records, bytes, output, lsn_format(written_lsn, lsn));
	result = 0;
	goto done;
fail:
	log_error_value(LOG_ERROR, &err);
done:
	if (fd >= 0)
		close(fd);
	if (repl_open)
		replication_close(&rc);
	return result;
}
