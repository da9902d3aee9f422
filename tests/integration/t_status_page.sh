# t_status_page.sh — the sink's status page (GET /) in a real headless
# browser (chromium): one self-contained page (no external asset) with the
# verdict /v1/status gives, its reasons, the figures, an SVG chart of the
# RPO bound and commit lag drawn from the lag history, and the recent
# events; text from the database (an apply error on a table whose name is
# HTML) is escaped, never markup. STATUS_PAGE_SHOT=FILE keeps the
# screenshot (docs/status-page.png is made this way).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

bash "$ROOT/tools/install-deps.sh" test || fail "cannot install chromium"
command -v chromium >/dev/null || fail "no chromium"
browser()
{ # a fresh profile each time; root needs --no-sandbox
	timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
		--user-data-dir="$T/chromium" "$@" 2>>"$T/chromium.log"
}

cluster_start primary
cluster_start dr
schema_both 'CREATE TABLE t (id int PRIMARY KEY, v text);
             CREATE TABLE "evil<b>bold</b>" (id int PRIMARY KEY)'
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup
sink_start
source_start
wait_applied 60
psql_on primary -c "INSERT INTO t SELECT g, 'v' FROM generate_series(1, 1000) g" >/dev/null
wait_applied 60
# a few seconds of history for the chart
wait_until "lag history samples" 30 bash -c \
	"[ \"\$(psql '$DR_CONN' -XAtc 'SELECT count(*) FROM pgferry.lag_history')\" -ge 5 ]"

# an apply error whose text is HTML: the relation's name
psql_on dr -c 'INSERT INTO "evil<b>bold</b>" VALUES (1)' >/dev/null
psql_on primary -c 'INSERT INTO "evil<b>bold</b>" VALUES (1)' >/dev/null
wait_until "the apply error event" 30 bash -c "curl -sf '$SINK_URL/v1/events' | grep -q apply_error"
curl -sf "$SINK_URL/v1/status" >"$T/status.json" || fail "no /v1/status"
verdict=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["promotion"]["verdict"])' "$T/status.json")
log "verdict $verdict"
[ "$verdict" = unsafe ] || fail "expected an unsafe verdict during the apply error, got $verdict"

# the page itself: HTML, no external asset, no script
curl -sf -D "$T/page.headers" "$SINK_URL/" >"$T/page.html" || fail "GET / failed"
grep -qi '^content-type: text/html; charset=utf-8' "$T/page.headers" || fail "not text/html: $(cat "$T/page.headers")"
! grep -Eiq '(src|href)="(https?:)?//|<script|<link' "$T/page.html" || fail "the page loads something from elsewhere"
grep -q '<meta http-equiv="refresh"' "$T/page.html" || fail "the page does not refresh itself"
grep -q 'evil&lt;b&gt;bold&lt;/b&gt;' "$T/page.html" || fail "the relation's name is not escaped"
! grep -q 'evil<b>' "$T/page.html" || fail "text from the database became markup"

# in a real browser: the DOM it builds, and a screenshot
browser --dump-dom "$SINK_URL/" >"$T/dom.html" || fail "chromium could not load the page: $(tail -5 "$T/chromium.log")"
python3 - "$T/dom.html" "$verdict" <<'PY' || fail "the page in the browser lacks verdict, chart or events"
import sys
from html.parser import HTMLParser
dom, verdict = open(sys.argv[1]).read(), sys.argv[2]

class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.stack, self.text, self.bold = {}, [], {}, 0
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids[a["id"]] = (tag, a)
        if tag == "b":
            self.bold += 1
        self.stack.append(a.get("id"))
    def handle_endtag(self, tag):
        if self.stack:
            self.stack.pop()
    def handle_data(self, data):
        for i in self.stack:
            if i:
                self.text[i] = self.text.get(i, "") + data

p = Page()
p.feed(dom)
tag, attrs = p.ids["verdict"]
assert verdict in attrs["class"].split(), attrs
assert "UNSAFE" in p.text["verdict"], p.text["verdict"]
assert "evil<b>bold</b>" in p.text.get("reasons", ""), p.text.get("reasons")
assert p.bold == 0, "a <b> element came from the database"
assert p.ids["chart"][0] == "svg", p.ids["chart"]
d = p.ids["rpo-bound"][1]["d"]
assert d.startswith("M") and d.count("L") >= 3, d
assert p.ids["commit-lag"][1]["d"].startswith("M")
assert "apply_error" in p.text["events"] and "source_connected" in p.text["events"], p.text["events"]
assert "applied" in p.text["figures"] and "RPO bound" in p.text["figures"]
print("verdict, reasons, chart with", d.count("L") + 1, "points, events: ok")
PY
shot=${STATUS_PAGE_SHOT:-$T/status-page.png}
browser --screenshot="$shot" --window-size=1000,1500 "$SINK_URL/" >/dev/null ||
	fail "chromium could not take a screenshot: $(tail -5 "$T/chromium.log")"
[ "$(stat -c %s "$shot")" -gt 20000 ] || fail "the screenshot is nearly empty"
log "screenshot $shot ($(stat -c %s "$shot") bytes)"

# repaired: the page turns with the verdict
psql_on dr -c 'DELETE FROM "evil<b>bold</b>"' >/dev/null
wait_applied 60
wait_until "a safe verdict on the page" 30 bash -c "curl -sf '$SINK_URL/' | grep -q 'class=\"verdict safe\"'"
log "status page ok"
