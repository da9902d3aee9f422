/*
 * replay_cmd.c — `pgferry replay FILE`: applies a capture file to the DR
 * database through the same apply engine the sink uses, exactly once (a
 * transaction at or below the origin's progress is skipped). For tests,
 * for rehearsals and for forensics on a copy.
 */
#include "pgferry/apply.h"
#include "pgferry/cli.h"
#include "pgferry/decoder.h"
#include "pgferry/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void count_group(void *arg, const apply_group_t *g)
{
	uint64_t *txns = arg;
	*txns += g->transactions;
}

int cmd_replay(int argc, char **argv)
{
	cli_t cli;
	pgf_error_t err;
	const char *path = NULL;
	int proto = 0, rc = EXIT_ERROR, fd = -1, i;
	struct stat st;
	uint8_t *map = MAP_FAILED;
	capture_reader_t cr;
	const uint8_t *rec;
	size_t len;
	uint64_t txns = 0, messages = 0, skipped_before;
	apply_hooks_t hooks = {&txns, count_group, NULL, NULL, NULL};
	apply_t *a = NULL;
	char lsn[LSN_TEXT_LEN];

	error_clear(&err);
	if (cli_load(argc, argv, 0, &cli, &err) != PGF_OK)
		goto fail;
	cli_configure_logging(&cli, "replay");
	for (i = 1; i < cli.argc; i++) {
		if (strcmp(cli.argv[i], "--proto-version") == 0 && i + 1 < cli.argc)
			proto = atoi(cli.argv[++i]);
		else if (path == NULL && cli.argv[i][0] != '-')
			path = cli.argv[i];
		else {
			error_set(&err, PGF_E_USAGE, "unexpected argument \"%s\"", cli.argv[i]);
			goto fail;
		}
	}
	if (path == NULL || cli.cfg.dr_conninfo == NULL || cli.cfg.work_dir == NULL) {
		error_set(&err, PGF_E_USAGE,
		          "usage: pgferry replay -c dr_conninfo=... -c work_dir=DIR "
		          "[--proto-version N] FILE");
		goto fail;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		error_set(&err, PGF_E_IO, "could not open capture file \"%s\": %s", path,
		          strerror(errno));
		goto fail;
	}
	if (st.st_size > 0) {
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			error_set(&err, PGF_E_IO, "could not map \"%s\": %s", path,
			          strerror(errno));
			goto fail;
		}
	}
	if (capture_reader_init(&cr, map == MAP_FAILED ? (const uint8_t *)"" : map,
	                        (size_t)st.st_size, &err) != PGF_OK)
		goto fail;
	a = apply_create(&cli.cfg, &hooks);
	if (a == NULL) {
		error_set(&err, PGF_E_MEMORY, "out of memory");
		goto fail;
	}
	if (proto)
		apply_set_proto_version(a, proto);
	if (apply_connect(a, &err) != PGF_OK)
		goto fail;
	if (apply_origin(a)[0] == '\0') {
		/* progress lives in the stream's own origin, named on first contact */
		error_set(&err, PGF_E_CONFIG,
		          "this DR database follows no stream yet (no pgferry.identity), so it has "
		          "no replication origin to record progress in");
		error_hint(&err, "Run pgferry clone, or a sink with a source, against it first.");
		goto fail;
	}
	skipped_before = apply_progress(a);
	for (;;) {
		walsender_message_t wm;
		int r = capture_reader_next(&cr, &rec, &len, &err);
		if (r == 0)
			break;
		if (r < 0)
			goto fail;
		if (walsender_parse(rec, len, &wm, &err) != PGF_OK)
			goto fail;
		if (wm.kind != 'w')
			continue;
		messages++;
		if (apply_message(a, wm.wal_start, wm.payload, wm.payload_len, &err) != PGF_OK)
			goto fail;
	}
	if (apply_in_transaction(a)) {
		log_warning("the capture ends inside a transaction; its changes were not applied");
		apply_reset(a);
	} else if (apply_commit_group(a, true, &err) != PGF_OK)
		goto fail;
	printf("replayed %" PRIu64 " messages, applied %" PRIu64
	       " transactions; origin progress was %s",
	       messages, txns, lsn_format(skipped_before, lsn));
	printf(", now %s\n", lsn_format(apply_progress(a), lsn));
	rc = 0;
	goto done;
fail:
	log_error_value(LOG_ERROR, &err);
done:
	apply_free(a);
	if (map != MAP_FAILED)
		munmap(map, (size_t)st.st_size);
	if (fd >= 0)
		close(fd);
	cli_free(&cli);
	return rc;
}
