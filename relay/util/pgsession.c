/*
 * pgsession.c — plain libpq sessions for the one-shot commands
 * (pgsession.h).
 */
#include "pgferry/pgsession.h"

#include "pgferry/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

PGconn *pgsession_connect(const char *conninfo, const char *application, const char *options,
                          const char *side, pgf_error_t *err)
{
	const char *keys[] = {"dbname", "fallback_application_name", "options", NULL};
	const char *values[] = {conninfo, application, options, NULL};
	PGconn *c;
	char msg[400];

	if (options == NULL)
		keys[2] = NULL;
	c = PQconnectdbParams(keys, values, 1);
	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		error_set(err, PGF_E_DATABASE, "cannot connect to the %s: %s", side,
		          pgsession_error_text(c, msg, sizeof(msg)));
		error_hint(err, "Check %s and that the server is up.",
		           strcmp(side, "primary") == 0 ? "primary_conninfo" : "dr_conninfo");
		PQfinish(c);
		return NULL;
	}
	return c;
}

PGresult *pgsession_query(PGconn *c, const char *side, const char *sql, int n,
                          const char *const *params, pgf_error_t *err)
{
	PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	int st = PQresultStatus(res);

	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		char msg[400];

		const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
		const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);

		error_set(err, PGF_E_DATABASE, "a query failed on the %s: %s", side,
		          m ? m : pgsession_error_text(c, msg, sizeof(msg)));
		error_where(err, "%.300s", sql);
		/* pgferry's own functions say there what is wrong and what to do */
		if (detail != NULL)
			error_detail(err, "%s", detail);
		if (hint != NULL)
			error_hint(err, "%s", hint);
		PQclear(res);
		return NULL;
	}
	return res;
}

char *pgsession_conninfo_without_password(const char *conninfo, char **password, pgf_error_t *err)
{
	char *msg = NULL, *out = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &msg), *o;
	buf_t b;

	*password = NULL;
	if (opts == NULL) {
		error_set(err, PGF_E_CONFIG, "invalid connection string: %s",
		          msg ? msg : "out of memory");
		PQfreemem(msg);
		return NULL;
	}
	buf_init(&b);
	for (o = opts; o->keyword; o++) {
		const char *v;
		if (o->val == NULL)
			continue;
		if (strcmp(o->keyword, "password") == 0) {
			free(*password);
			*password = strdup(o->val);
			continue;
		}
		buf_printf(&b, "%s%s='", b.len ? " " : "", o->keyword);
		for (v = o->val; *v; v++) {
			if (*v == '\'' || *v == '\\')
				buf_append_char(&b, '\\');
			buf_append_char(&b, *v);
		}
		buf_append_char(&b, '\'');
	}
	buf_append_char(&b, '\0');
	PQconninfoFree(opts);
	if (!buf_failed(&b))
		out = strdup(b.data);
	buf_free(&b);
	if (out == NULL) {
		free(*password);
		*password = NULL;
		error_set(err, PGF_E_MEMORY, "out of memory");
	}
	return out;
}

const char *pgsession_error_text(const PGconn *c, char *buf, size_t len)
{
	size_t n;

	if (len == 0)
		return buf;
	snprintf(buf, len, "%s", c ? PQerrorMessage(c) : "out of memory");
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return buf;
}

char *pgsession_quote_ident(PGconn *c, const char *s)
{
	char *q = PQescapeIdentifier(c, s, strlen(s));
	char *r = q ? strdup(q) : NULL;

	PQfreemem(q);
	return r;
}
