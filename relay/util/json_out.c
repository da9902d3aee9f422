/*
 * json_out.c — JSON output through jansson (see json_out.h).
 */
#include "pgferry/json_out.h"

#include "pgferry/decoder.h"
#include "pgferry/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

json_t *json_out_text(const char *s, size_t len)
{
	json_t *j = json_stringn(s, len);
	buf_t clean;

	/* jansson refuses invalid UTF-8: it is made valid, never dropped */
	if (j != NULL || s == NULL)
		return j;
	buf_init(&clean);
	buf_append_utf8(&clean, s, len);
	j = buf_failed(&clean) ? NULL : json_stringn(clean.data ? clean.data : "", clean.len);
	buf_free(&clean);
	return j;
}

json_t *json_out_cstring(const char *s)
{
	return s == NULL ? json_null() : json_out_text(s, strlen(s));
}

json_t *json_out_cstring_or_null(const char *s)
{
	return s == NULL || s[0] == '\0' ? json_null() : json_out_text(s, strlen(s));
}

json_t *json_out_hex(const void *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = data;
	json_t *j;
	char *t = malloc(2 + 2 * len + 1);
	size_t i;

	if (t == NULL)
		return NULL;
	t[0] = '\\';
	t[1] = 'x';
	for (i = 0; i < len; i++) {
		t[2 + 2 * i] = digits[p[i] >> 4];
		t[3 + 2 * i] = digits[p[i] & 15];
	}
	t[2 + 2 * len] = '\0';
	j = json_stringn(t, 2 + 2 * len);
	free(t);
	return j;
}

json_t *json_out_number(double v, int decimals)
{
	double scale = 1;
	int i;

	if (!isfinite(v))
		return json_null();
	if (decimals <= 0) {
		/* past what an integer holds, a real keeps the figure */
		if (fabs(v) < 9.0e18)
			return json_integer((json_int_t)llround(v));
		return json_real(v);
	}
	for (i = 0; i < decimals; i++)
		scale *= 10;
	if (isfinite(v * scale))
		v = round(v * scale) / scale;
	return json_real(v);
}

json_t *json_out_lsn(uint64_t lsn)
{
	char t[LSN_TEXT_LEN];

	return json_string(lsn_format(lsn, t));
}

json_t *json_out_pgtime(int64_t pgtime)
{
	char t[40];

	return json_string(pgtime_format_iso(pgtime, t));
}

json_t *json_out_bool(int v)
{
	return json_boolean(v);
}

void json_out_set(json_t *obj, const char *key, json_t *v)
{
	json_object_set_new(obj, key, v);
}

void json_out_set_text_key(json_t *obj, const char *key, json_t *v)
{
	buf_t clean;

	if (utf8_valid(key, strlen(key))) {
		json_object_set_new(obj, key, v);
		return;
	}
	buf_init(&clean);
	buf_append_utf8(&clean, key, strlen(key));
	if (buf_failed(&clean))
		json_decref(v);
	else
		json_object_set_new(obj, clean.data, v);
	buf_free(&clean);
}

static int append_chunk(const char *data, size_t len, void *arg)
{
	buf_t *b = arg;

	buf_append(b, data, len);
	return buf_failed(b) ? -1 : 0;
}

int json_out_append(buf_t *b, const json_t *j)
{
	/* 15 significant digits print a figure rounded to a few decimals as
	 * it is (17 would show 0.1 as 0.10000000000000001) */
	if (j == NULL ||
	    json_dump_callback(j, append_chunk, b,
	                       JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15)) != 0) {
		b->failed = true;
		return PGF_ERR;
	}
	return PGF_OK;
}
