/*
 * util.h — small helpers every folder may use: I/O loops that survive
 * interrupted and short system calls, clocks and sleeps. Byte order is in
 * byteorder.h, libpq helpers in pgsession.h.
 */
#ifndef PGFERRY_UTIL_H
#define PGFERRY_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Writes all len bytes to fd, again after EINTR and short writes. PGF_OK,
 * or PGF_ERR with errno set. */
int util_write_all(int fd, const void *data, size_t len);
/* The same at offset (pwrite); a write of nothing fails with ENOSPC. */
int util_pwrite_all(int fd, const void *data, size_t len, uint64_t offset);
/* Reads exactly len bytes at offset (pread); the end of the file before
 * that fails with EIO. PGF_OK, or PGF_ERR with errno set. */
int util_pread_all(int fd, void *data, size_t len, uint64_t offset);

/* Seconds on the monotonic clock (for durations, never for dates). */
double util_monotonic_s(void);
/* Microseconds on the monotonic clock. */
int64_t util_monotonic_us(void);
/* Microseconds since the Unix epoch on the wall clock. */
int64_t util_realtime_us(void);
/* The current time as a PostgreSQL timestamp (µs since 2000-01-01). */
int64_t pgtime_now(void);
/* Sleeps ms milliseconds; a signal cuts it short (a caller that waits for
 * a stop request sleeps in slices and checks in between). */
void util_sleep_ms(int64_t ms);

/* Whether s[0..len) is an integer of that many bytes (2, 4 or 8) written
 * as PostgreSQL's int2out, int4out and int8out write one: an optional
 * minus, digits, no leading zero, nothing else; *out its value. */
bool util_parse_int(const char *s, size_t len, int bytes, int64_t *out);

#endif
