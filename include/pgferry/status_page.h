/*
 * status_page.h — the sink's GET /: one self-contained HTML page (no
 * external asset, no script) for a person: the verdict in large type with
 * its reasons, the figures of /v1/status, a chart of the RPO bound and the
 * commit lag over the last hour (inline SVG), the recent events. It
 * reloads itself every STATUS_PAGE_REFRESH seconds. Every text that comes
 * from outside (reasons, errors, events, names) is HTML-escaped.
 */
#ifndef PGFERRY_STATUS_PAGE_H
#define PGFERRY_STATUS_PAGE_H

#include "pgferry/buf.h"
#include "pgferry/events.h"
#include "pgferry/lag.h"
#include "pgferry/lag_history.h"

#define STATUS_PAGE_REFRESH 5
#define STATUS_PAGE_EVENTS  15

/* Pure: renders from what it is given (points oldest first, events oldest
 * first). */
void status_page_render(const lag_snapshot_t *s, const lag_verdict_t *v,
                        const lag_history_point_t *points, int npoints, const event_t *events,
                        int nevents, buf_t *out);

/* HTML text: & < > " ' as entities. */
void html_append_escaped(buf_t *b, const char *s);

#endif
