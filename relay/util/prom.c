/*
 * prom.c — constant labels for Prometheus text (see prom.h): the renderers
 * write plain series, and one pass adds the labels that tell relays apart,
 * so no renderer has to remember them.
 */
#include "pgferry/prom.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

void prom_gauge(buf_t *b, const char *name, const char *help, double v)
{
	if (isnan(v))
		buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s NaN\n", name, help, name, name);
	else
		buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name,
		           v);
}

void prom_counter(buf_t *b, const char *name, const char *help, uint64_t v)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", name, help, name, name,
	           v);
}

static void label_value(buf_t *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			buf_append_char(b, '\\');
		if (*v == '\n') {
			buf_append_str(b, "\\n");
			continue;
		}
		buf_append_char(b, *v);
	}
}

void prom_add_labels(const buf_t *in, const char *slot, const char *database, buf_t *out)
{
	const char *p = in->data ? in->data : "", *end = p + in->len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = nl ? nl : end;
		size_t name_len = strcspn(p, "{ \n");

		if (*p == '#' || p + name_len >= line_end) {
			buf_append(out, p, (size_t)(line_end - p));
		} else {
			const char *rest = p + name_len;
			buf_append(out, p, name_len);
			buf_append_char(out, '{');
			if (*rest == '{') {
				/* its own labels first, then ours */
				const char *close = memchr(rest, '}', (size_t)(line_end - rest));
				if (close == NULL)
					close = rest;
				if (close > rest + 1) {
					buf_append(out, rest + 1, (size_t)(close - rest - 1));
					buf_append_char(out, ',');
				}
				rest = close + 1;
			}
			buf_append_str(out, "slot=\"");
			label_value(out, slot);
			buf_append_str(out, "\",database=\"");
			label_value(out, database);
			buf_append_str(out, "\"}");
			buf_append(out, rest, (size_t)(line_end - rest));
		}
		if (nl)
			buf_append_char(out, '\n');
		p = nl ? nl + 1 : end;
	}
}
