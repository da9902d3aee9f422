/*
 * status_page.c — the sink's HTML status page (see status_page.h). Built
 * from a lag snapshot, the history thread's last hour and the event ring,
 * all in memory, so it answers while apply is stalled. Escaping is strict:
 * reasons, errors and events carry text from the database and the primary.
 */
#include "pgferry/status_page.h"

#include "pgferry/decoder.h"
#include "pgferry/version.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define CHART_W    900
#define CHART_H    260
#define CHART_LEFT 60
#define CHART_TOP  20
#define PLOT_W     (CHART_W - CHART_LEFT - 20)
#define PLOT_H     (CHART_H - CHART_TOP - 40)
#define HOUR_US    3600000000LL

void html_append_escaped(buf_t *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			buf_append_str(b, "&amp;");
			break;
		case '<':
			buf_append_str(b, "&lt;");
			break;
		case '>':
			buf_append_str(b, "&gt;");
			break;
		case '"':
			buf_append_str(b, "&quot;");
			break;
		case '\'':
			buf_append_str(b, "&#39;");
			break;
		default:
			buf_append_char(b, *s);
		}
	}
}

static void duration(buf_t *b, double ms)
{
	if (ms < 0)
		buf_append_str(b, "unknown");
	else if (ms < 1000)
		buf_printf(b, "%.0f ms", ms);
	else if (ms < 120000)
		buf_printf(b, "%.1f s", ms / 1000);
	else if (ms < 7200000)
		buf_printf(b, "%.1f min", ms / 60000);
	else
		buf_printf(b, "%.1f h", ms / 3600000);
}

static void bytes(buf_t *b, double n)
{
	if (n < 0)
		buf_append_str(b, "unknown");
	else if (n < 10240)
		buf_printf(b, "%.0f B", n);
	else if (n < 10 * 1048576.0)
		buf_printf(b, "%.1f kB", n / 1024);
	else if (n < 10 * 1073741824.0)
		buf_printf(b, "%.1f MB", n / 1048576);
	else
		buf_printf(b, "%.1f GB", n / 1073741824);
}

static void lsn(buf_t *b, uint64_t v)
{
	char t[LSN_TEXT_LEN];
	buf_append_str(b, lsn_format(v, t));
}

static void iso(buf_t *b, int64_t unix_us)
{
	char t[40];

	if (unix_us == 0) {
		buf_append_str(b, "never");
		return;
	}
	pgtime_format_iso(unix_us_to_pgtime(unix_us), t);
	buf_append_str(b, t);
}

/* One row of the figures table; the value is written by the caller. */
static void row(buf_t *b, const char *name)
{
	buf_printf(b, "<tr><th>%s</th><td>", name);
}

static void head(buf_t *b, const char *title)
{
	buf_printf(b,
	           "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	           "<meta http-equiv=\"refresh\" content=\"%d\">"
	           "<meta name=\"viewport\" content=\"width=device-width\">"
	           "<title>pgferry: %s</title><style>\n"
	           "body{font-family:sans-serif;margin:0;background:#f4f5f7;color:#1d2330}\n"
	           "main{max-width:960px;margin:0 auto;padding:16px}\n"
	           ".verdict{padding:18px 24px;border-radius:8px;color:#fff;margin-bottom:16px}\n"
	           ".verdict .word{font-size:64px;font-weight:bold;letter-spacing:2px}\n"
	           ".safe{background:#1e7e34}.unsafe{background:#b02a37}"
	           ".unknown{background:#b26a00}.promoted{background:#4a5568}\n"
	           ".verdict ul{margin:8px 0 0 0;font-size:18px}\n"
	           "section{background:#fff;border-radius:8px;padding:12px 16px;margin-bottom:16px}"
	           "\nh2{font-size:18px;margin:4px 0 10px 0}\n"
	           "table{border-collapse:collapse;width:100%%}\n"
	           "th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #e3e6ea;"
	           "font-size:14px;vertical-align:top}\nth{width:30%%;color:#4a5568;"
	           "font-weight:normal}\n"
	           ".sev-error{color:#b02a37;font-weight:bold}.sev-warning{color:#b26a00}\n"
	           "footer{color:#6b7280;font-size:12px}\n"
	           "</style></head><body><main>\n",
	           STATUS_PAGE_REFRESH, title);
}

static void verdict_banner(buf_t *b, const lag_snapshot_t *s, const lag_verdict_t *v)
{
	const char *name = lag_verdict_name(v->verdict);
	int i;

	buf_printf(b, "<div class=\"verdict %s\" id=\"verdict\"><div class=\"word\">%s</div>", name,
	           v->verdict == VERDICT_SAFE       ? "SAFE to promote"
	           : v->verdict == VERDICT_UNSAFE   ? "UNSAFE to promote"
	           : v->verdict == VERDICT_PROMOTED ? "PROMOTED"
	                                            : "CANNOT TELL");
	buf_append_str(b, "<div>RPO bound ");
	duration(b, s->rpo_known ? s->rpo_bound_ms : -1);
	buf_append_str(b, ", max_rpo ");
	duration(b, (double)s->max_rpo_ms);
	buf_printf(b,
	           ", apply backlog %" PRIu64 " transactions (max_apply_backlog %" PRId64 ")</div>",
	           s->backlog_transactions, s->max_apply_backlog);
	if (v->nreasons > 0) {
		buf_append_str(b, "<ul id=\"reasons\">");
		for (i = 0; i < v->nreasons; i++) {
			buf_append_str(b, "<li>");
			html_append_escaped(b, v->reasons[i]);
			buf_append_str(b, "</li>");
		}
		buf_append_str(b, "</ul>");
	}
	buf_append_str(b, "</div>\n");
}

/* whom the stream comes from, the RPO bound and the loss behind it */
static void figures_loss(buf_t *b, const lag_snapshot_t *s)
{
	row(b, "primary");
	if (s->identity_known) {
		buf_printf(b, "system %" PRIu64 ", database ", s->system_identifier);
		html_append_escaped(b, s->database);
		buf_append_str(b, ", slot ");
		html_append_escaped(b, s->slot);
		if (!s->identity_ok)
			buf_append_str(b, " (INCONSISTENT)");
	} else
		buf_append_str(b, "never heard of");
	buf_append_str(b, "</td></tr>");
	row(b, "source");
	buf_printf(b, "%s since ", lag_source_state_name(s->source_state));
	iso(b, s->source_since_us);
	buf_append_str(b, "</td></tr>");
	row(b, "RPO bound");
	duration(b, s->rpo_known ? s->rpo_bound_ms : -1);
	buf_append_str(b, " (known loss window ");
	duration(b, s->known_loss_window_ms);
	buf_append_str(b, " + unknown window ");
	duration(b, s->unknown_window_ms);
	buf_append_str(b, "); proved at ");
	iso(b, s->rpo_known ? s->proof_time_us : 0);
	buf_append_str(b, "</td></tr>");
	row(b, "known loss");
	buf_printf(b, "%" PRIu64 " transactions, ", s->known_loss_transactions);
	bytes(b, (double)s->known_loss_bytes);
	buf_append_str(b, ", oldest ");
	duration(b, s->known_loss_transactions ? s->oldest_commit_age_ms : -1);
	buf_append_str(b, "</td></tr>");
	row(b, "last commit lag");
	duration(b, s->last_applied_commit_time_us ? s->last_commit_lag_ms : -1);
	buf_printf(b, "%s</td></tr>", s->caught_up ? " (caught up)" : "");
	if (s->history_known) {
		row(b, "commit lag, last hour");
		buf_append_str(b, "p50 ");
		duration(b, s->history_p50_ms);
		buf_append_str(b, ", p99 ");
		duration(b, s->history_p99_ms);
		buf_append_str(b, ", max ");
		duration(b, s->history_max_ms);
		buf_append_str(b, "</td></tr>");
	}
}

/* positions, backlog, apply rate, clocks */
static void figures_apply(buf_t *b, const lag_snapshot_t *s)
{
	row(b, "positions");
	buf_append_str(b, "primary WAL ");
	lsn(b, s->primary_wal_lsn);
	buf_append_str(b, ", received ");
	lsn(b, s->received_lsn);
	buf_append_str(b, ", applied ");
	lsn(b, s->applied_lsn);
	buf_append_str(b, "</td></tr>");
	row(b, "apply backlog");
	buf_printf(b, "%" PRIu64 " transactions, ", s->backlog_transactions);
	bytes(b, (double)s->backlog_bytes);
	buf_append_str(b, " (spooled ");
	bytes(b, (double)s->spooled_bytes);
	buf_append_str(b, "), drains in ");
	duration(b, s->drain_estimate_ms);
	buf_append_str(b, "</td></tr>");
	row(b, "apply rate");
	buf_printf(b, "%.1f transactions/s, %.1f rows/s, ", s->transactions_per_s, s->rows_per_s);
	bytes(b, s->bytes_per_s);
	buf_append_str(b, "/s</td></tr>");
	row(b, "clock offset");
	if (s->clock_known)
		buf_printf(b, "%.1f ms &plusmn; %.1f ms", s->clock_offset_ms,
		           s->clock_uncertainty_ms);
	else
		buf_append_str(b, "unknown");
	buf_printf(b, ", %" PRIu64 " faults", s->clock_faults);
	if (s->clock_fault[0]) {
		buf_append_str(b, " (last: ");
		html_append_escaped(b, s->clock_fault);
		buf_append_str(b, ")");
	}
	buf_append_str(b, "</td></tr>");
}

/* the primary's side: the slot, the RPO guard; the last drill */
static void figures_source_side(buf_t *b, const lag_snapshot_t *s)
{
	if (s->slot_known) {
		row(b, "slot WAL retained");
		bytes(b, (double)s->slot_retained_bytes);
		buf_append_str(b, ", safe_wal_size ");
		if (s->slot_safe_wal_size < 0)
			buf_append_str(b, "unlimited");
		else
			bytes(b, (double)s->slot_safe_wal_size);
		buf_append_str(b, ", wal_status ");
		html_append_escaped(b, s->slot_wal_status);
		if (s->slot_wal_warning[0]) {
			buf_append_str(b, ": ");
			html_append_escaped(b, s->slot_wal_warning);
		}
		buf_append_str(b, "</td></tr>");
	}
	if (s->rpo_guard_known) {
		row(b, "RPO guard");
		buf_append_str(b, s->rpo_guard_engaged ? "ENGAGED: the primary's commits wait, "
		                                       : "released, ");
		html_append_escaped(b, s->rpo_guard_reason);
		buf_append_str(b, "</td></tr>");
	}
	row(b, "last drill");
	if (s->last_drill_known) {
		html_append_escaped(b, s->last_drill_at);
		buf_append_str(b, s->last_drill_ok ? " passed, RTO " : " FAILED, RTO ");
		duration(b, s->last_drill_rto_ms);
		if (s->last_drill_error[0]) {
			buf_append_str(b, ": ");
			html_append_escaped(b, s->last_drill_error);
		}
	} else
		buf_append_str(b, "none (pgferry drill)");
	buf_append_str(b, "</td></tr>");
}

/* what stops apply or the stream */
static void figures_health(buf_t *b, const lag_snapshot_t *s)
{
	row(b, "DR database");
	buf_printf(b, "%s%s", s->dr_reachable ? "reachable" : "UNREACHABLE",
	           s->fenced ? ", fenced (promoted)" : "");
	buf_append_str(b, "</td></tr>");
	row(b, "apply error");
	if (s->apply_error) {
		html_append_escaped(b, s->apply_error_message);
		if (s->apply_error_where[0]) {
			buf_append_str(b, " at ");
			html_append_escaped(b, s->apply_error_where);
		}
		if (s->schema_drift)
			buf_append_str(b, " (schema drift)");
	} else
		buf_append_str(b, "none");
	buf_append_str(b, "</td></tr>");
	if (s->stream_refused[0] || s->stream_blocked[0] || s->source_error[0]) {
		row(b, "stream");
		html_append_escaped(b, s->stream_refused[0]   ? s->stream_refused
		                       : s->stream_blocked[0] ? s->stream_blocked
		                                              : s->source_error);
		buf_append_str(b, "</td></tr>");
	}
}

static void figures(buf_t *b, const lag_snapshot_t *s)
{
	buf_append_str(b, "<section><h2>Figures</h2><table id=\"figures\">");
	figures_loss(b, s);
	figures_apply(b, s);
	figures_source_side(b, s);
	figures_health(b, s);
	buf_printf(b, "</table></section>\n");
}

/* y of a value (ms) on a scale whose top is top_ms */
static double chart_y(double ms, double top_ms)
{
	double v = ms > top_ms ? top_ms : ms;
	return CHART_TOP + PLOT_H - v / top_ms * PLOT_H;
}

static double chart_x(int64_t t, int64_t now_us)
{
	double x = CHART_LEFT + (double)(t - (now_us - HOUR_US)) / (double)HOUR_US * PLOT_W;
	return x < CHART_LEFT ? CHART_LEFT : x;
}

/* One series as an SVG path; a gap (unknown value, or more than a minute
 * without samples) lifts the pen. */
static void chart_path(buf_t *b, const lag_history_point_t *p, int n, bool rpo, double top_ms,
                       int64_t now_us, const char *id, const char *color)
{
	int i;
	bool pen = false;
	int64_t last = 0;

	buf_printf(b, "<path id=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" d=\"", id,
	           color);
	for (i = 0; i < n; i++) {
		double v = rpo ? p[i].rpo_bound_ms : p[i].commit_lag_ms;
		if (v < 0) {
			pen = false;
			continue;
		}
		if (pen && p[i].time_us - last > 60000000LL)
			pen = false;
		buf_printf(b, "%c%.1f %.1f ", pen ? 'L' : 'M', chart_x(p[i].time_us, now_us),
		           chart_y(v, top_ms));
		pen = true;
		last = p[i].time_us;
	}
	buf_append_str(b, "\"/>");
}

static void chart(buf_t *b, const lag_snapshot_t *s, const lag_history_point_t *p, int n)
{
	double top = 1000;
	int i, k;

	for (i = 0; i < n; i++) {
		if (p[i].rpo_bound_ms > top)
			top = p[i].rpo_bound_ms;
		if (p[i].commit_lag_ms > top)
			top = p[i].commit_lag_ms;
	}
	top *= 1.1;
	buf_append_str(b, "<section><h2>RPO bound and commit lag, last hour</h2>");
	buf_printf(b,
	           "<svg id=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"100%%\" "
	           "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"RPO bound and commit lag over "
	           "the last hour\"><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
	           "fill=\"#fafbfc\" stroke=\"#d0d5dc\"/>",
	           CHART_W, CHART_H, CHART_LEFT, CHART_TOP, PLOT_W, PLOT_H);
	for (k = 0; k <= 4; k++) {
		double tick = k * 0.25, y = CHART_TOP + PLOT_H - tick * PLOT_H;
		buf_printf(b,
		           "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e6ea\"/>"
		           "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\" "
		           "fill=\"#4a5568\">",
		           CHART_LEFT, CHART_LEFT + PLOT_W, y, y, CHART_LEFT - 6, y + 4);
		duration(b, tick * top);
		buf_append_str(b, "</text>");
	}
	for (i = 0; i <= 4; i++)
		buf_printf(b,
		           "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\" "
		           "fill=\"#4a5568\">%s</text>",
		           CHART_LEFT + PLOT_W * i / 4.0, CHART_TOP + PLOT_H + 16,
		           i == 0   ? "-60 min"
		           : i == 1 ? "-45 min"
		           : i == 2 ? "-30 min"
		           : i == 3 ? "-15 min"
		                    : "now");
	if ((double)s->max_rpo_ms < top)
		buf_printf(b,
		           "<line id=\"max-rpo\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" "
		           "stroke=\"#b02a37\" stroke-dasharray=\"6 4\"/>",
		           CHART_LEFT, CHART_LEFT + PLOT_W, chart_y((double)s->max_rpo_ms, top),
		           chart_y((double)s->max_rpo_ms, top));
	chart_path(b, p, n, true, top, s->now_us, "rpo-bound", "#b02a37");
	chart_path(b, p, n, false, top, s->now_us, "commit-lag", "#1f6feb");
	buf_printf(b,
	           "<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"#b02a37\">&#9644; RPO bound"
	           "</text><text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"#1f6feb\">&#9644; "
	           "commit lag</text><text x=\"%d\" y=\"%d\" font-size=\"12\" "
	           "fill=\"#b02a37\">- - max_rpo</text>",
	           CHART_LEFT, CHART_H - 6, CHART_LEFT + 120, CHART_H - 6, CHART_LEFT + 240,
	           CHART_H - 6);
	buf_printf(b, "</svg><div>%d samples (one a second, pgferry.lag_history)</div></section>\n",
	           n);
}

static void events_table(buf_t *b, const event_t *e, int n)
{
	int i;

	buf_append_str(b, "<section><h2>Recent events</h2><table id=\"events\">");
	if (n == 0)
		buf_append_str(b, "<tr><td>none yet</td></tr>");
	for (i = n - 1; i >= 0; i--) { /* newest first */
		const char *sev = events_severity_name(e[i].severity);
		buf_append_str(b, "<tr><th>");
		iso(b, e[i].time_us);
		buf_printf(b, "</th><td class=\"sev-%s\">%s</td><td>", sev, sev);
		html_append_escaped(b, e[i].kind);
		buf_append_str(b, "</td><td>");
		html_append_escaped(b, e[i].message);
		buf_append_str(b, "</td></tr>");
	}
	buf_append_str(b, "</table></section>\n");
}

void status_page_render(const lag_snapshot_t *s, const lag_verdict_t *v,
                        const lag_history_point_t *points, int npoints, const event_t *events,
                        int nevents, buf_t *out)
{
	char title[64];

	snprintf(title, sizeof(title), "%s", lag_verdict_name(v->verdict));
	head(out, title);
	verdict_banner(out, s, v);
	figures(out, s);
	chart(out, s, points, npoints);
	events_table(out, events, nevents);
	buf_printf(out, "<footer>pgferry %s sink &middot; as of ", PGFERRY_VERSION);
	iso(out, s->now_us);
	buf_printf(out,
	           " &middot; reloads every %d s &middot; <a href=\"/v1/status\">/v1/status</a> "
	           "<a href=\"/v1/events\">/v1/events</a> <a href=\"/metrics\">/metrics</a>"
	           "</footer></main></body></html>\n",
	           STATUS_PAGE_REFRESH);
}
