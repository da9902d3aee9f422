/*
 * log.h — log lines to stderr, as text for people or JSON for log shippers.
 *
 * Thread-safe: each line is built in memory and written with one write(2).
 */
#ifndef PGFERRY_LOG_H
#define PGFERRY_LOG_H

#include "pgferry/error.h"

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARNING, LOG_ERROR, LOG_FATAL } log_level_t;
typedef enum { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON } log_format_t;

/* role is "source", "sink"... shown on every line; the string must outlive logging. */
void log_configure(log_level_t min_level, log_format_t format, const char *role);
/* Redirect to another fd (tests); default 2. */
void log_set_fd(int fd);
void log_write(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A step of a session's start (connections, handshake, first data), at
 * debug level: "step: WHAT (monotonic T s)". Every process on a host shares
 * the monotonic clock, so the source's and the sink's steps line up. */
void log_step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs an error value with its detail, hint and where. */
void log_error_value(log_level_t level, const pgf_error_t *err);

#define log_debug(...)   log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)    log_write(LOG_INFO, __VA_ARGS__)
#define log_warning(...) log_write(LOG_WARNING, __VA_ARGS__)
#define log_error(...)   log_write(LOG_ERROR, __VA_ARGS__)

const char *log_level_name(log_level_t level);

/* Passwords never reach a log line: every line passes through this. Writes s
 * to out (NUL-terminated, truncated to len) with the value of every
 * "password=" / "sslpassword=" keyword and every URI password
 * ("scheme://user:PASSWORD@host") replaced by "********". */
void log_mask_secrets(const char *s, char *out, size_t len);
/* The same secrets overwritten with '*' in place, length kept: for argv,
 * which other local users read in /proc/PID/cmdline. */
void log_blank_secrets(char *s);

#endif
