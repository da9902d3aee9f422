/*
 * http_client.c — GET from the sink's HTTP API with libcurl (see
 * http_client.h). Answers are small JSON documents; anything over 8 MB is
 * refused rather than buffered.
 */
#include "pgferry/http_client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	http_body_t *f = arg;
	size_t add = size * n;
	char *d;

	if (f->len + add > (8u << 20))
		return 0; /* no sane answer is this large */
	d = realloc(f->data, f->len + add + 1);
	if (d == NULL)
		return 0;
	memcpy(d + f->len, p, add);
	f->data = d;
	f->len += add;
	d[f->len] = '\0';
	return add;
}

long http_client_get(const char *base, const char *path, long timeout_s, http_body_t *out,
                     char *why, size_t why_len)
{
	CURL *c = curl_easy_init();
	char url[1024];
	long status = 0;
	CURLcode rc;

	memset(out, 0, sizeof(*out));
	if (c == NULL) {
		snprintf(why, why_len, "could not start an HTTP client");
		return 0;
	}
	snprintf(url, sizeof(url), "%s%s", base, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK)
		snprintf(why, why_len, "cannot reach the sink at %s: %s", url,
		         curl_easy_strerror(rc));
	else
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	return status;
}
