/*
 * error.c — filling and formatting pgf_error_t values (see error.h). Pure
 * libc, so the decoder can report errors the same way the relay does.
 */
#include "pgferry/error.h"

#include <stdio.h>
#include <string.h>

int error_set(pgf_error_t *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return PGF_ERR;
	error_clear(err);
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return PGF_ERR;
}

void error_detail(pgf_error_t *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
	va_end(ap);
}

void error_hint(pgf_error_t *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(err->hint, sizeof(err->hint), fmt, ap);
	va_end(ap);
}

void error_where(pgf_error_t *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(err->where, sizeof(err->where), fmt, ap);
	va_end(ap);
}

void error_clear(pgf_error_t *err)
{
	if (err != NULL)
		memset(err, 0, sizeof(*err));
}

void error_format(const pgf_error_t *err, char *buf, size_t len)
{
	size_t n;

	if (len == 0)
		return;
	n = (size_t)snprintf(buf, len, "%s", err->message);
	if (err->where[0] != '\0' && n < len)
		n += (size_t)snprintf(buf + n, len - n, " (%s)", err->where);
	if (err->detail[0] != '\0' && n < len)
		n += (size_t)snprintf(buf + n, len - n, "\nDETAIL: %s", err->detail);
	if (err->hint[0] != '\0' && n < len)
		snprintf(buf + n, len - n, "\nHINT: %s", err->hint);
}
