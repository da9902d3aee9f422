/*
 * config_file.c — the configuration file's syntax, as postgresql.conf: one
 * "key = value" per line ("=" optional), "#" starts a comment outside
 * quotes, values are bare words or single-quoted strings with '' for a
 * quote. Each pair goes to config_set (config.c), which knows the keys; a
 * syntax error names the file and line.
 */
#include "pgferry/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parser state over one file's text, and the value being read. */
typedef struct lexer {
	const char *p, *end;
	int line;
	const char *origin;
	char *value; /* NUL-terminated once read_value returns */
	size_t vlen, vcap;
} lexer_t;

static void skip_blanks(lexer_t *lx)
{
	while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\r'))
		lx->p++;
}

static void skip_to_eol(lexer_t *lx)
{
	while (lx->p < lx->end && *lx->p != '\n')
		lx->p++;
}

static bool is_key_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-';
}

/* Room for need bytes of value. */
static int value_reserve(lexer_t *lx, size_t need, pgf_error_t *err)
{
	char *nv;
	size_t cap;

	if (need <= lx->vcap)
		return PGF_OK;
	cap = lx->vcap ? lx->vcap * 2 : 128;
	if (cap < need)
		cap = need;
	nv = realloc(lx->value, cap);
	if (nv == NULL) {
		error_set(err, PGF_E_MEMORY, "out of memory");
		return PGF_ERR;
	}
	lx->value = nv;
	lx->vcap = cap;
	return PGF_OK;
}

static int read_name(lexer_t *lx, char *name, size_t size, pgf_error_t *err)
{
	const char *start = lx->p;
	size_t n;

	while (lx->p < lx->end && is_key_char(*lx->p))
		lx->p++;
	n = (size_t)(lx->p - start);
	if (n == 0) {
		error_set(err, PGF_E_CONFIG,
		          "syntax error: expected a parameter name, found \"%c\"", *lx->p);
		error_where(err, "%s:%d", lx->origin, lx->line);
		return PGF_ERR;
	}
	if (n >= size) {
		error_set(err, PGF_E_CONFIG, "syntax error: parameter name too long");
		error_where(err, "%s:%d", lx->origin, lx->line);
		return PGF_ERR;
	}
	memcpy(name, start, n);
	name[n] = '\0';
	return PGF_OK;
}

/* A quoted value: '' is a quote; a newline or the end before the close is an
 * error. */
static int read_quoted(lexer_t *lx, const char *name, pgf_error_t *err)
{
	int open_line = lx->line;

	lx->p++;
	for (;;) {
		char c;
		if (lx->p >= lx->end || *lx->p == '\n') {
			error_set(err, PGF_E_CONFIG,
			          "unterminated quoted string in value of \"%s\"", name);
			error_hint(err, "Close the value with a single quote; write '' for a quote "
			                "inside it.");
			error_where(err, "%s:%d", lx->origin, open_line);
			return PGF_ERR;
		}
		c = *lx->p++;
		if (c == '\'') {
			if (lx->p < lx->end && *lx->p == '\'')
				lx->p++;
			else
				return PGF_OK;
		}
		if (value_reserve(lx, lx->vlen + 2, err) != PGF_OK)
			return PGF_ERR;
		lx->value[lx->vlen++] = c;
	}
}

/* A bare value: up to a blank, a comment or the end of the line. */
static int read_bare(lexer_t *lx, const char *name, pgf_error_t *err)
{
	const char *start = lx->p;

	while (lx->p < lx->end && *lx->p != '\n' && *lx->p != '#' && *lx->p != ' ' &&
	       *lx->p != '\t' && *lx->p != '\r')
		lx->p++;
	lx->vlen = (size_t)(lx->p - start);
	if (lx->vlen == 0) {
		error_set(err, PGF_E_CONFIG, "syntax error: parameter \"%s\" has no value", name);
		error_hint(err, "Write %s = value; quote an empty string as ''.", name);
		error_where(err, "%s:%d", lx->origin, lx->line);
		return PGF_ERR;
	}
	if (value_reserve(lx, lx->vlen + 1, err) != PGF_OK)
		return PGF_ERR;
	memcpy(lx->value, start, lx->vlen);
	return PGF_OK;
}

/* The value after "name =", and nothing but a comment after it. */
static int read_value(lexer_t *lx, const char *name, pgf_error_t *err)
{
	lx->vlen = 0;
	if (lx->p < lx->end && *lx->p == '\'') {
		if (read_quoted(lx, name, err) != PGF_OK)
			return PGF_ERR;
	} else if (read_bare(lx, name, err) != PGF_OK)
		return PGF_ERR;
	if (value_reserve(lx, lx->vlen + 1, err) != PGF_OK)
		return PGF_ERR;
	lx->value[lx->vlen] = '\0';
	skip_blanks(lx);
	if (lx->p < lx->end && *lx->p != '\n' && *lx->p != '#') {
		error_set(err, PGF_E_CONFIG, "syntax error after the value of \"%s\"", name);
		error_hint(err, "Quote values that contain spaces: %s = '...'.", name);
		error_where(err, "%s:%d", lx->origin, lx->line);
		return PGF_ERR;
	}
	return PGF_OK;
}

int config_load_text(config_t *cfg, const char *text, size_t len, const char *origin,
                     pgf_error_t *err)
{
	lexer_t lx = {text, text + len, 1, origin, NULL, 0, 0};
	char name[128];
	int rc = PGF_OK;

	while (rc == PGF_OK && lx.p < lx.end) {
		skip_blanks(&lx);
		if (lx.p >= lx.end)
			break;
		if (*lx.p == '\n') {
			lx.p++;
			lx.line++;
			continue;
		}
		if (*lx.p == '#') {
			skip_to_eol(&lx);
			continue;
		}
		if (read_name(&lx, name, sizeof(name), err) != PGF_OK) {
			rc = PGF_ERR;
			break;
		}
		skip_blanks(&lx);
		if (lx.p < lx.end && *lx.p == '=') {
			lx.p++;
			skip_blanks(&lx);
		}
		if (read_value(&lx, name, err) != PGF_OK ||
		    config_set(cfg, name, lx.value, origin, lx.line, err) != PGF_OK)
			rc = PGF_ERR;
	}
	free(lx.value);
	return rc;
}

int config_load_file(config_t *cfg, const char *path, pgf_error_t *err)
{
	FILE *f = fopen(path, "rb");
	char *text = NULL;
	size_t len = 0, cap = 0, n;
	int rc;

	if (f == NULL) {
		error_set(err, PGF_E_CONFIG, "could not open configuration file \"%s\": %s", path,
		          strerror(errno));
		return PGF_ERR;
	}
	for (;;) {
		if (len + 4096 > cap) {
			char *nt;
			cap = cap ? cap * 2 : 8192;
			if (cap > (16u << 20)) {
				fclose(f);
				free(text);
				return error_set(err, PGF_E_CONFIG,
				                 "configuration file \"%s\" is larger than 16MB",
				                 path);
			}
			nt = realloc(text, cap);
			if (nt == NULL) {
				fclose(f);
				free(text);
				return error_set(err, PGF_E_MEMORY, "out of memory");
			}
			text = nt;
		}
		n = fread(text + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		fclose(f);
		free(text);
		return error_set(err, PGF_E_CONFIG, "could not read configuration file \"%s\"",
		                 path);
	}
	fclose(f);
	rc = config_load_text(cfg, text ? text : "", len, path, err);
	free(text);
	return rc;
}
