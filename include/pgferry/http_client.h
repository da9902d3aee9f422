/*
 * http_client.h — the commands' client of the sink's HTTP API (libcurl).
 */
#ifndef PGFERRY_HTTP_CLIENT_H
#define PGFERRY_HTTP_CLIENT_H

#include <stddef.h>

typedef struct http_body {
	char *data; /* NUL-terminated; free() it */
	size_t len;
} http_body_t;

/* GET base+path (at most timeout_s seconds); returns the HTTP status, or 0
 * when the sink could not be reached (why says so). */
long http_client_get(const char *base, const char *path, long timeout_s, http_body_t *out,
                     char *why, size_t why_len);

#endif
