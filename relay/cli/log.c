/*
 * log.c — one line per event on stderr, text or JSON (see log.h).
 */
#include "pgferry/log.h"

#include "pgferry/buf.h"
#include "pgferry/json_out.h"
#include "pgferry/util.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
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

/* ISO 8601 UTC with milliseconds; t >= 32 bytes */
static const char *timestamp(char *t)
{
	int64_t us = util_realtime_us();
	time_t sec = (time_t)(us / 1000000);
	struct tm tm;
	char s[24];

	gmtime_r(&sec, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(t, 32, "%s.%03dZ", s, (int)(us % 1000000 / 1000));
	return t;
}

/* One JSON object a line, for log shippers; keys in this order. */
static void json_line(buf_t *b, log_level_t level, const char *message, const pgf_error_t *err)
{
	json_t *o = json_object();
	char t[32];

	json_out_set(o, "time", json_string(timestamp(t)));
	json_out_set(o, "level", json_string(log_level_name(level)));
	json_out_set(o, "role", json_out_cstring(line_role));
	json_out_set(o, "pid", json_integer(getpid()));
	json_out_set(o, "message", json_out_cstring(message));
	if (err != NULL && err->detail[0])
		json_out_set(o, "detail", json_out_cstring(err->detail));
	if (err != NULL && err->hint[0])
		json_out_set(o, "hint", json_out_cstring(err->hint));
	if (err != NULL && err->where[0])
		json_out_set(o, "where", json_out_cstring(err->where));
	if (json_out_append(b, o) == PGF_OK)
		buf_append_char(b, '\n');
	json_decref(o);
}

/* The first secret of s at or after from: [*start, *end) is a password's
 * value (quotes excluded). Conninfo keywords ("password", "sslpassword",
 * any case, spaces around "=") and URI user info ("://user:secret@"). */
static bool next_secret(const char *s, size_t from, size_t *start, size_t *end)
{
	size_t i;

	for (i = from; s[i]; i++) {
		if (strncasecmp(s + i, "password", 8) == 0) {
			size_t j = i + 8;
			while (s[j] == ' ' || s[j] == '\t')
				j++;
			if (s[j] != '=')
				continue;
			j++;
			while (s[j] == ' ' || s[j] == '\t')
				j++;
			if (s[j] == '\'') {
				*start = ++j;
				while (s[j] && s[j] != '\'') {
					if (s[j] == '\\' && s[j + 1])
						j++;
					j++;
				}
			} else {
				*start = j;
				while (s[j] && !isspace((unsigned char)s[j]))
					j++;
			}
			*end = j;
			if (*end > *start)
				return true;
		} else if (strncmp(s + i, "://", 3) == 0) {
			size_t j = i + 3, colon = 0;
			while (s[j] && s[j] != '@' && s[j] != '/' && s[j] != '?' && s[j] != '#' &&
			       !isspace((unsigned char)s[j])) {
				if (s[j] == ':' && colon == 0)
					colon = j;
				j++;
			}
			if (s[j] == '@' && colon && j > colon + 1) {
				*start = colon + 1;
				*end = j;
				return true;
			}
		}
	}
	return false;
}

void log_mask_secrets(const char *s, char *out, size_t len)
{
	size_t from = 0, start, end, n = 0;

	if (len == 0)
		return;
	while (next_secret(s, from, &start, &end)) {
		n += (size_t)snprintf(out + n, len - n, "%.*s********", (int)(start - from),
		                      s + from);
		if (n >= len)
			return;
		from = end;
	}
	snprintf(out + n, len - n, "%s", s + from);
}

void log_blank_secrets(char *s)
{
	size_t from = 0, start, end;

	while (next_secret(s, from, &start, &end)) {
		memset(s + start, '*', end - start);
		from = end;
	}
}

static void emit(log_level_t level, const char *raw_message, const pgf_error_t *raw_err)
{
	buf_t b;
	ssize_t w;
	size_t off = 0;
	char message[2048];
	pgf_error_t masked;
	const pgf_error_t *err = NULL;

	log_mask_secrets(raw_message, message, sizeof(message));
	if (raw_err != NULL) {
		masked = *raw_err;
		log_mask_secrets(raw_err->detail, masked.detail, sizeof(masked.detail));
		log_mask_secrets(raw_err->hint, masked.hint, sizeof(masked.hint));
		log_mask_secrets(raw_err->where, masked.where, sizeof(masked.where));
		err = &masked;
	}
	buf_init(&b);
	if (line_format == LOG_FORMAT_JSON)
		json_line(&b, level, message, err);
	else {
		char t[32];

		buf_printf(&b, "%s %s[%d] %s: %s", timestamp(t), line_role, (int)getpid(),
		           log_level_name(level), message);
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

void log_step(const char *fmt, ...)
{
	char message[1024];
	va_list ap;

	if (LOG_DEBUG < min_level)
		return;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	log_write(LOG_DEBUG, "step: %s (monotonic %.3f s)", message, util_monotonic_s());
}

void log_error_value(log_level_t level, const pgf_error_t *err)
{
	if (level < min_level)
		return;
	emit(level, err->message, err);
}
