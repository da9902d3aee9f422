/*
 * util.c — I/O loops, clocks and sleeps (see util.h).
 */
#include "pgferry/util.h"
#include "pgferry/decoder.h"
#include "pgferry/error.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

int util_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return PGF_ERR;
		}
		p += w;
		len -= (size_t)w;
	}
	return PGF_OK;
}

int util_pwrite_all(int fd, const void *data, size_t len, uint64_t offset)
{
	size_t done = 0;

	while (done < len) {
		ssize_t w =
		        pwrite(fd, (const char *)data + done, len - done, (off_t)(offset + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = ENOSPC;
			return PGF_ERR;
		}
		done += (size_t)w;
	}
	return PGF_OK;
}

int util_pread_all(int fd, void *data, size_t len, uint64_t offset)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pread(fd, (char *)data + done, len - done, (off_t)(offset + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return PGF_ERR;
		}
		done += (size_t)r;
	}
	return PGF_OK;
}

double util_monotonic_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int64_t util_monotonic_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

int64_t util_realtime_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

int64_t pgtime_now(void)
{
	return unix_us_to_pgtime(util_realtime_us());
}

void util_sleep_ms(int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	nanosleep(&ts, NULL);
}

bool util_parse_int(const char *s, size_t len, int bytes, int64_t *out)
{
	uint64_t limit = bytes == 2 ? 32767 : bytes == 4 ? 2147483647 : 9223372036854775807ULL;
	uint64_t v = 0;
	bool negative = len > 0 && s[0] == '-';
	size_t i = negative ? 1 : 0;

	/* only the output functions' own form: "+1", " 1", "01" and "-0" are
	 * integers to int4in but not written by int4out */
	if (i == len || (s[i] == '0' && (len - i > 1 || negative)))
		return false;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (limit + 1) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > limit + (negative ? 1 : 0))
		return false;
	*out = negative ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}
