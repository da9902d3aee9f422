/*
 * rpo_guard_names.c — synchronous_standby_names as the RPO guard edits it
 * (rpo_guard.h): parsed as PostgreSQL's syncrep grammar reads it (a list,
 * FIRST n (...), ANY n (...), the old n (...)), the source's name added as
 * one more required standby or taken out again, every other entry kept as
 * the DBA wrote it. Pure: no connection, unit-tested.
 */
#include "pgferry/rpo_guard.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- synchronous_standby_names ------------------------------------------------ */

#define NAMES_MAX 64
#define NAME_TEXT 260

typedef struct {
	enum { SSN_EMPTY, SSN_LIST, SSN_FIRST, SSN_ANY } kind;
	int num;
	int count;
	char raw[NAMES_MAX][NAME_TEXT];   /* as written (quotes kept) */
	char plain[NAMES_MAX][NAME_TEXT]; /* unquoted, for matching */
} ssn_t;

typedef struct {
	const char *p;
	pgf_error_t *err;
	const char *value;
} ssn_scan_t;

static void skip_space(ssn_scan_t *s)
{
	while (*s->p && isspace((unsigned char)*s->p))
		s->p++;
}

static int ssn_error(ssn_scan_t *s, const char *what)
{
	error_set(s->err, PGF_E_CONFIG,
	          "cannot read the primary's synchronous_standby_names '%s': %s at offset %d",
	          s->value, what, (int)(s->p - s->value));
	error_hint(s->err, "The RPO guard changes only values PostgreSQL accepts: a list, "
	                   "FIRST n (...) or ANY n (...).");
	return PGF_ERR;
}

static bool ident_char(int c, bool first)
{
	return isalpha(c) || c == '_' || c >= 0x80 || (!first && (isdigit(c) || c == '$'));
}

/* One standby name: an identifier, a number, "*" or a quoted name. */
static int scan_name(ssn_scan_t *s, ssn_t *v)
{
	size_t r = 0, u = 0;
	char *raw, *plain;

	skip_space(s);
	if (v->count >= NAMES_MAX)
		return ssn_error(s, "too many names");
	raw = v->raw[v->count];
	plain = v->plain[v->count];
	if (*s->p == '"') {
		raw[r++] = *s->p++;
		for (;;) {
			if (*s->p == '\0')
				return ssn_error(s, "unterminated quoted name");
			if (*s->p == '"' && s->p[1] == '"') {
				if (r + 2 >= NAME_TEXT || u + 1 >= NAME_TEXT)
					return ssn_error(s, "name too long");
				raw[r++] = '"';
				raw[r++] = '"';
				plain[u++] = '"';
				s->p += 2;
				continue;
			}
			if (*s->p == '"')
				break;
			if (r + 1 >= NAME_TEXT || u + 1 >= NAME_TEXT)
				return ssn_error(s, "name too long");
			raw[r++] = *s->p;
			plain[u++] = *s->p++;
		}
		raw[r++] = *s->p++;
	} else if (*s->p == '*') {
		raw[r++] = plain[u++] = *s->p++;
	} else if (ident_char((unsigned char)*s->p, true) || isdigit((unsigned char)*s->p)) {
		while (ident_char((unsigned char)*s->p, false)) {
			if (r + 1 >= NAME_TEXT)
				return ssn_error(s, "name too long");
			raw[r++] = plain[u++] = *s->p++;
		}
	} else
		return ssn_error(s, "a standby name expected");
	raw[r] = plain[u] = '\0';
	v->count++;
	return PGF_OK;
}

static int scan_list(ssn_scan_t *s, ssn_t *v)
{
	for (;;) {
		if (scan_name(s, v) != PGF_OK)
			return PGF_ERR;
		skip_space(s);
		if (*s->p != ',')
			return PGF_OK;
		s->p++;
	}
}

static bool keyword(const char *p, const char *kw)
{
	size_t n = strlen(kw);
	return strncasecmp(p, kw, n) == 0 && !ident_char((unsigned char)p[n], false);
}

static int ssn_parse(const char *value, ssn_t *v, pgf_error_t *err)
{
	ssn_scan_t s = {value, err, value};
	const char *save;

	memset(v, 0, sizeof(*v));
	skip_space(&s);
	if (*s.p == '\0') {
		v->kind = SSN_EMPTY;
		return PGF_OK;
	}
	v->kind = SSN_LIST;
	v->num = 1;
	save = s.p;
	if (keyword(s.p, "FIRST") || keyword(s.p, "ANY")) {
		v->kind = keyword(s.p, "ANY") ? SSN_ANY : SSN_FIRST;
		s.p += v->kind == SSN_ANY ? 3 : 5;
		skip_space(&s);
		if (!isdigit((unsigned char)*s.p)) {
			/* "first" alone is a standby's name */
			s.p = save;
			v->kind = SSN_LIST;
		}
	}
	if (isdigit((unsigned char)*s.p)) {
		char *end;
		long n = strtol(s.p, &end, 10);
		const char *after = end;
		while (*after && isspace((unsigned char)*after))
			after++;
		if (*after == '(') {
			if (n < 1 || n > 1000)
				return ssn_error(
				        &s, "the number of synchronous standbys is out of range");
			v->num = (int)n;
			if (v->kind == SSN_LIST)
				v->kind = SSN_FIRST; /* "n (list)": the old syntax of FIRST */
			s.p = after + 1;
			if (scan_list(&s, v) != PGF_OK)
				return PGF_ERR;
			skip_space(&s);
			if (*s.p != ')')
				return ssn_error(&s, "\")\" expected");
			s.p++;
			skip_space(&s);
			if (*s.p != '\0')
				return ssn_error(&s, "nothing expected after \")\"");
			return PGF_OK;
		}
		if (v->kind != SSN_LIST)
			return ssn_error(&s, "\"(\" expected after the number");
	}
	if (scan_list(&s, v) != PGF_OK)
		return PGF_ERR;
	skip_space(&s);
	if (*s.p != '\0')
		return ssn_error(&s, "\",\" or the end expected");
	return PGF_OK;
}

static int ssn_find(const ssn_t *v, const char *name)
{
	/* PostgreSQL matches standby names without regard to case */
	for (int i = 0; i < v->count; i++)
		if (strcasecmp(v->plain[i], name) == 0)
			return i;
	return -1;
}

static int ssn_print(const ssn_t *v, char *out, size_t outlen, pgf_error_t *err)
{
	size_t n = 0;
	int w;

	out[0] = '\0';
	if (v->count == 0 || v->num == 0)
		return PGF_OK;
	if (v->kind == SSN_LIST)
		w = snprintf(out, outlen, "%s", "");
	else
		w = snprintf(out, outlen, "%s %d (", v->kind == SSN_ANY ? "ANY" : "FIRST", v->num);
	for (int i = 0; w >= 0 && (size_t)w < outlen - n && i < v->count; i++) {
		n += (size_t)w;
		w = snprintf(out + n, outlen - n, "%s%s", i ? ", " : "", v->raw[i]);
	}
	if (w >= 0 && (size_t)w < outlen - n && v->kind != SSN_LIST) {
		n += (size_t)w;
		w = snprintf(out + n, outlen - n, ")");
	}
	if (w < 0 || (size_t)w >= outlen - n)
		return error_set(err, PGF_E_CONFIG,
		                 "synchronous_standby_names would be longer than %zu bytes",
		                 outlen - 1);
	return PGF_OK;
}

int rpo_guard_names_add(const char *current, const char *name, char *out, size_t outlen,
                        pgf_error_t *err)
{
	static ssn_t v;
	size_t u = 0, r = 0;
	char quoted[NAME_TEXT];

	if (ssn_parse(current, &v, err) != PGF_OK)
		return PGF_ERR;
	if (ssn_find(&v, name) >= 0) {
		snprintf(out, outlen, "%s", current);
		return 1;
	}
	if (v.count >= NAMES_MAX)
		return error_set(err, PGF_E_CONFIG,
		                 "synchronous_standby_names lists too many names");
	quoted[r++] = '"';
	for (; name[u] && r + 3 < NAME_TEXT; u++) {
		if (name[u] == '"')
			quoted[r++] = '"';
		quoted[r++] = name[u];
	}
	quoted[r++] = '"';
	quoted[r] = '\0';
	if (v.kind == SSN_EMPTY) {
		v.kind = SSN_LIST;
		v.num = 1;
	} else {
		/* ours first: under FIRST the earliest connected names are the
		 * synchronous ones, so n of theirs and ours */
		v.kind = SSN_FIRST;
		v.num++;
		memmove(v.raw[1], v.raw[0], sizeof(v.raw[0]) * (size_t)v.count);
		memmove(v.plain[1], v.plain[0], sizeof(v.plain[0]) * (size_t)v.count);
	}
	snprintf(v.raw[0], NAME_TEXT, "%s", quoted);
	snprintf(v.plain[0], NAME_TEXT, "%s", name);
	v.count++;
	return ssn_print(&v, out, outlen, err) == PGF_OK ? 0 : PGF_ERR;
}

int rpo_guard_names_remove(const char *current, const char *name, char *out, size_t outlen,
                           pgf_error_t *err)
{
	static ssn_t v;
	int i, removed = 0;

	if (ssn_parse(current, &v, err) != PGF_OK)
		return PGF_ERR;
	while ((i = ssn_find(&v, name)) >= 0) {
		memmove(v.raw[i], v.raw[i + 1], sizeof(v.raw[0]) * (size_t)(v.count - i - 1));
		memmove(v.plain[i], v.plain[i + 1], sizeof(v.plain[0]) * (size_t)(v.count - i - 1));
		v.count--;
		removed = 1;
	}
	if (!removed) {
		snprintf(out, outlen, "%s", current);
		return 0;
	}
	if (v.kind != SSN_LIST)
		v.num--;
	if (v.num > v.count)
		v.num = v.count;
	return ssn_print(&v, out, outlen, err) == PGF_OK ? 1 : PGF_ERR;
}
