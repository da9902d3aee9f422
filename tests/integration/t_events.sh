# t_events.sh — the event history: a source killed and restarted, an apply
# error and its repair, a promotion (fence) are each recorded once, in the
# order they happened, in pgferry.events and on /v1/events; `pgferry
# events` lists them from the DR database and from the sink (--since,
# --json), and a restarted sink still shows the events before it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY, v text)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup
sink_start
source_start
wait_applied 60

# kinds in pgferry.events, in order of recording, one a line
kinds() { psql_on dr -c "SELECT kind FROM pgferry.events ORDER BY id"; }
has_kind() { kinds | grep -qx "$1"; }
count_kind() { kinds | grep -cx "$1"; }

wait_until "a verdict recorded" 30 has_kind verdict_safe

# 1. the source killed, then back
source_stop KILL
wait_until "source_lost recorded" 30 has_kind source_lost
source_start
wait_applied 60
wait_until "the source connected twice" 30 bash -c \
	"[ \"\$(psql '$DR_CONN' -XAtc \"SELECT count(*) FROM pgferry.events WHERE kind = 'source_connected'\")\" = 2 ]"

# 2. an apply error (a row the DR side already has), then the repair
psql_on dr -c "INSERT INTO t VALUES (2, 'conflict made on the DR side')" >/dev/null
psql_on primary -c "INSERT INTO t VALUES (1, 'a'), (2, 'b')" >/dev/null
wait_until "apply_error recorded" 30 has_kind apply_error
# the verdict turns unsafe once the error has stood for a few seconds
wait_until "verdict_unsafe recorded" 30 has_kind verdict_unsafe
psql_on dr -c "DELETE FROM t WHERE id = 2" >/dev/null
wait_applied 60
wait_until "apply_recovered recorded" 30 has_kind apply_recovered
tables_equal t

# 3. promotion: fenced
"$PGFERRY_BIN" promote -c "dr_conninfo=$DR_CONN" -c "sink_url=$SINK_URL" --drain-timeout 30s \
	--reason "test events" >"$T/promote.log" 2>&1 || fail "promote failed: $(cat "$T/promote.log")"
wait_until "fenced recorded" 30 has_kind fenced

kinds >"$T/kinds.txt"
log "events: $(tr '\n' ' ' <"$T/kinds.txt")"
# in order, each once where it happened once
python3 - "$T/kinds.txt" <<'PY' || fail "events out of order or repeated: $(tr '\n' ' ' <"$T/kinds.txt")"
import sys
kinds = open(sys.argv[1]).read().split()
want = ["sink_started", "source_connected", "source_lost", "source_connected", "apply_error",
        "verdict_unsafe", "apply_recovered", "promoted", "fenced"]
pos = 0
for k in kinds:
    if pos < len(want) and k == want[pos]:
        pos += 1
if pos < len(want):
    print(f"missing {want[pos]} after {want[:pos]}"); sys.exit(1)
for k in ("apply_error", "apply_recovered", "promoted", "fenced", "source_lost", "sink_started"):
    if kinds.count(k) != 1:
        print(f"{k} recorded {kinds.count(k)} times"); sys.exit(1)
PY
[ "$(psql_on dr -c "SELECT severity FROM pgferry.events WHERE kind = 'apply_error'")" = error ] ||
	fail "an apply error is not of severity error"
psql_on dr -c "SELECT detail->>'where' FROM pgferry.events WHERE kind = 'apply_error'" | grep -q "public.t" ||
	fail "the apply error's detail does not name the relation"
[ "$(psql_on dr -c "SELECT detail->>'reason' FROM pgferry.events WHERE kind = 'promoted'")" = "test events" ] ||
	fail "the promotion's reason is not recorded"
grep -q "event source_lost: the source disconnected .* ago" "$T/sink.log" || fail "events are not logged"

# 4. pgferry events: from the DR database, and from the sink
"$PGFERRY_BIN" events --config "$T/sink.conf" --since 1h >"$T/events.txt" || fail "pgferry events failed"
cat "$T/events.txt"
grep -Eq '^[0-9-]{10}T[0-9:.]+Z +error +apply_error +apply stopped: .*duplicate key' "$T/events.txt" ||
	fail "pgferry events does not list the apply error"
[ "$(awk '{print $3}' "$T/events.txt" | tr '\n' ' ')" = "$(tr '\n' ' ' <"$T/kinds.txt")" ] ||
	fail "pgferry events lists another order than pgferry.events"
"$PGFERRY_BIN" events --url "$SINK_URL" --json >"$T/events.json" || fail "pgferry events --url failed"
python3 - "$T/events.json" "$T/kinds.txt" <<'PY' || fail "/v1/events differs from pgferry.events"
import json, sys
doc = json.load(open(sys.argv[1]))
kinds = open(sys.argv[2]).read().split()
got = [e["kind"] for e in doc["events"]]
# the sink holds all of them (fewer than its ring); "promoted" is the promote command's
assert got == [k for k in kinds if k != "promoted"], (got, kinds)
assert all(e["time"].endswith("Z") and e["severity"] in ("info", "warning", "error") for e in doc["events"])
PY
curl -s -o /dev/null -w '%{http_code}' "$SINK_URL/v1/events?since=soon" | grep -qx 400 ||
	fail "a bad since is not refused"
[ "$(curl -sf "$SINK_URL/v1/events?since=1ms" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["events"]))')" = 0 ] ||
	fail "since=1ms lists old events"

# 5. a restarted sink shows what came before it
sink_stop
sink_start
# the list says when it holds the earlier runs' events too: until then
# only this run's (the sink answers before it reached the DR database)
wait_until "the restarted sink read the stored events" 60 bash -c \
	"curl -sf '$SINK_URL/v1/events' | grep -q '\"history_loaded\":true'"
curl -sf "$SINK_URL/v1/events" >"$T/after.json"
grep -q '"history_loaded":true' "$T/after.json" || fail "history_loaded went back to false"
grep -q '"kind":"apply_error"' "$T/after.json" || fail "a restarted sink lost the earlier events"
has_kind sink_stopped || fail "the sink's stop is not recorded"
log "events ok"
