/*
 * decode_bench.c — decoder speed: walsender wrappers and pgoutput messages
 * of a capture file, decoded in memory several times (relation cache kept
 * current, no JSON). Prints messages/s and MB/s of pgoutput per core.
 */
#include "pgferry/decoder.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int fd, rounds = argc > 2 ? atoi(argv[2]) : 5, i;
	struct stat st;
	uint8_t *data;
	pgoutput_message_t *m = malloc(sizeof(*m));
	relcache_t *rc = relcache_create();
	pgf_error_t err;
	uint64_t messages = 0, bytes = 0;
	struct timespec t0, t1;
	double s;

	if (argc < 2 || (fd = open(argv[1], O_RDONLY)) < 0 || fstat(fd, &st) != 0) {
		fprintf(stderr, "usage: decode_bench CAPTURE [ROUNDS]\n");
		return 2;
	}
	data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < rounds; i++) {
		capture_reader_t cr;
		pgoutput_decoder_t d;
		const uint8_t *rec;
		size_t len;

		pgoutput_decoder_init(&d, 4);
		if (capture_reader_init(&cr, data, (size_t)st.st_size, &err) != PGF_OK)
			return 2;
		while (capture_reader_next(&cr, &rec, &len, &err) == 1) {
			walsender_message_t w;
			if (walsender_parse(rec, len, &w, &err) != PGF_OK)
				return 2;
			if (w.kind != 'w')
				continue;
			if (pgoutput_decode(&d, w.payload, w.payload_len, m, &err) != PGF_OK) {
				fprintf(stderr, "decode failed: %s\n", err.message);
				return 2;
			}
			if (m->type == PGOUTPUT_RELATION)
				relcache_update(rc, m, &err);
			messages++;
			bytes += w.payload_len;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("decoded %llu messages, %.1f MB of pgoutput in %.3f s (one core)\n",
	       (unsigned long long)messages, (double)bytes / 1e6, s);
	printf("  %.0f messages/s, %.0f MB/s (aim: 300 MB/s; ratio %.2f)\n", (double)messages / s,
	       (double)bytes / 1e6 / s, (double)bytes / 1e6 / s / 300.0);
	return 0;
}
