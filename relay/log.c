/*
 * log.c — one line per event on stderr, text or JSON (see log.h).
 */
#include "pgferry/log.h"

#include "pgferry/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static log_level_t min_level = LOG_INFO;
static log_format_t line_format = LOG_FORMAT_TEXT;
static const char *line_role = "pgferry";
static int log_fd = 2;

void log_configure(log_level_t level, log_format_t format, const char *role)
{
	min_level = level;
	line_format = format;
	if (role != NULL)
		line_role = role;
}

void log_set_fd(int fd)
{
	log_fd = fd;
}

const char *log_level_name(log_level_t level)
{
	switch (level) {
	case LOG_DEBUG:
		return "DEBUG";
	case LOG_INFO:
		return "INFO";
	case LOG_WARNING:
		return "WARNING";
	case LOG_ERROR:
		return "ERROR";
	case LOG_FATAL:
		return "FATAL";
	}
	return "?";
}

static void append_timestamp(buf_t *b)
{
	struct timeval tv;
	struct tm tm;
	char s[32];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
	buf_printf(b, "%s.%03ldZ", s, (long)(tv.tv_usec / 1000));
}

static void emit(log_level_t level, const char *message, const pgf_error_t *err)
{
	buf_t b;
	ssize_t w;
	size_t off = 0;

	buf_init(&b);
	if (line_format == LOG_FORMAT_JSON) {
		buf_append_str(&b, "{\"time\":\"");
		append_timestamp(&b);
		buf_printf(&b, "\",\"level\":\"%s\",\"role\":", log_level_name(level));
		json_append_cstring(&b, line_role);
		buf_printf(&b, ",\"pid\":%d,\"message\":", (int)getpid());
		json_append_cstring(&b, message);
		if (err != NULL && err->detail[0]) {
			buf_append_str(&b, ",\"detail\":");
			json_append_cstring(&b, err->detail);
		}
		if (err != NULL && err->hint[0]) {
			buf_append_str(&b, ",\"hint\":");
			json_append_cstring(&b, err->hint);
		}
		if (err != NULL && err->where[0]) {
			buf_append_str(&b, ",\"where\":");
			json_append_cstring(&b, err->where);
		}
		buf_append_str(&b, "}\n");
	} else {
		append_timestamp(&b);
		buf_printf(&b, " %s[%d] %s: %s", line_role, (int)getpid(), log_level_name(level),
		           message);
		if (err != NULL && err->where[0])
			buf_printf(&b, " (%s)", err->where);
		buf_append_char(&b, '\n');
		if (err != NULL && err->detail[0])
			buf_printf(&b, "\tDETAIL: %s\n", err->detail);
		if (err != NULL && err->hint[0])
			buf_printf(&b, "\tHINT: %s\n", err->hint);
	}
	while (!buf_failed(&b) && off < b.len) {
		w = write(log_fd, b.data + off, b.len - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	buf_free(&b);
}

void log_write(log_level_t level, const char *fmt, ...)
{
	char message[2048];
	va_list ap;

	if (level < min_level)
		return;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	emit(level, message, NULL);
}

void log_error_value(log_level_t level, const pgf_error_t *err)
{
	if (level < min_level)
		return;
	emit(level, err->message, err);
}
