# t_prometheus.sh — the Prometheus files of deploy/ fit what sink and
# source export: every rule file and every query of the Grafana dashboard
# passes `promtool check rules`, and every metric an expression names is one
# a running sink's or source's /metrics has (or a recording rule of these
# files); both /metrics pass `promtool check metrics`, carry
# pgferry_build_info{version,...} 1 with the versions `pgferry version`
# prints, pgferry_up, and the labels slot and database on every series; the
# source's /healthz says it streams.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

bash "$ROOT/tools/install-deps.sh" prometheus || fail "cannot install promtool"
rule_files=("$ROOT"/deploy/prometheus/*.yml)
[ ${#rule_files[@]} -ge 2 ] || fail "expected alert and recording rules in deploy/prometheus"
for f in "${rule_files[@]}"; do
	promtool check rules "$f" >"$T/promtool.log" 2>&1 || fail "promtool rejects $f: $(cat "$T/promtool.log")"
done
# the dashboard's queries, as recording rules promtool parses
dashboards=("$ROOT"/deploy/grafana/*.json)
python3 - "${dashboards[@]}" >"$T/dashboard-rules.yml" <<'PY' || fail "cannot read the dashboards"
import json, sys
print("groups:\n  - name: dashboard\n    rules:")
for path in sys.argv[1:]:
    for i, panel in enumerate(json.load(open(path))["panels"]):
        for t in panel.get("targets", []):
            print(f"      - record: dashboard:query:{i}{t['refId']}\n        expr: {json.dumps(t['expr'])}")
PY
promtool check rules "$T/dashboard-rules.yml" >"$T/promtool.log" 2>&1 ||
	fail "promtool rejects a dashboard query: $(cat "$T/promtool.log")"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
SOURCE_HTTP_PORT=$(free_port) || fail "no free port"
relay_setup "source:source_http_listen = '127.0.0.1:$SOURCE_HTTP_PORT'"
sink_start
source_start
wait_applied 60
psql_on primary -c "INSERT INTO t SELECT generate_series(1, 100)" >/dev/null
wait_applied 60
curl -sf "$SINK_URL/metrics" >"$T/metrics.txt" || fail "no /metrics"
# the source publishes its figures once a second: wait for the batches
source_shipped()
{
	curl -sf "http://127.0.0.1:$SOURCE_HTTP_PORT/metrics" >"$T/source-metrics.txt" &&
		[ "$(metric_in "$T/source-metrics.txt" pgferry_source_batches_total)" -gt 0 ] &&
		[ -n "$(metric_in "$T/source-metrics.txt" pgferry_slot_retained_wal_bytes)" ]
}
wait_until "the source's /metrics counts batches and the slot" 30 source_shipped
curl -sf "http://127.0.0.1:$SOURCE_HTTP_PORT/healthz" >"$T/source-health.txt" ||
	fail "the source's /healthz is not 200: $(cat "$T/source-health.txt")"
grep -qx streaming "$T/source-health.txt" || fail "the source's /healthz says $(cat "$T/source-health.txt")"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SOURCE_HTTP_PORT/v1/status")" = 404 ] ||
	fail "the source serves more than /metrics and /healthz"

"$PGFERRY_BIN" version >"$T/version.txt"
v=$(awk 'NR == 1 {print $2}' "$T/version.txt")
db=$(psql_on primary -c "SELECT current_database()")
for m in "$T/metrics.txt" "$T/source-metrics.txt"; do
	promtool check metrics <"$m" >"$T/promtool.log" 2>&1 ||
		fail "promtool rejects $(basename "$m"): $(cat "$T/promtool.log")"
	# build info: one series, value 1, the versions of `pgferry version`
	grep -c '^pgferry_build_info{' "$m" | grep -qx 1 || fail "no single pgferry_build_info series in $m"
	bi=$(grep '^pgferry_build_info{' "$m")
	[ "${bi##* }" = 1 ] || fail "pgferry_build_info is not 1: $bi"
	grep -qF "version=\"$v\"" <<<"$bi" || fail "pgferry_build_info has no version=\"$v\": $bi"
	while read -r lib ver; do
		label=$(tr 'A-Z' 'a-z' <<<"$lib")
		grep -qF "$label=\"$ver\"" <<<"$bi" || fail "pgferry_build_info lacks $label=\"$ver\": $bi"
	done < <(tail -n +2 "$T/version.txt")
	# one Prometheus, many relays: every series says its slot and database
	unlabelled=$(grep -v '^#' "$m" | grep -vF "slot=\"pgferry\",database=\"$db\"}" || true)
	[ -z "$unlabelled" ] || fail "series without slot and database in $(basename "$m"): $(head -3 <<<"$unlabelled")"
	[ "$(metric_in "$m" pgferry_up)" = 1 ] || fail "pgferry_up is not 1 in $(basename "$m")"
done
[ "$(grep -c '^pgferry_walsender_state{state="streaming",' "$T/source-metrics.txt")" = 1 ] ||
	fail "no walsender state"

# every metric named in an expression is exported by the sink or the source
# (or recorded here)
cat "$T/metrics.txt" "$T/source-metrics.txt" | grep -v '^#' | sed -E 's/[{ ].*//' | sort -u >"$T/exported.txt"
python3 - "$T/exported.txt" "${rule_files[@]}" "${dashboards[@]}" >"$T/names.log" 2>&1 <<'PY' || fail "rules or dashboards name metrics the sink does not export: $(cat "$T/names.log")"
import re, sys, yaml
exported = set(open(sys.argv[1]).read().split())
recorded, exprs = set(), []
for path in sys.argv[2:]:
    if path.endswith(".json"):
        import json
        for panel in json.load(open(path))["panels"]:
            for t in panel.get("targets", []):
                exprs.append((path, panel["title"], t["expr"]))
        continue
    for group in yaml.safe_load(open(path))["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                recorded.add(rule["record"])
            exprs.append((path, rule.get("alert") or rule.get("record"), str(rule["expr"])))
bad = 0
for path, name, expr in exprs:
    # label matchers and strings name no metric
    plain = re.sub(r'"[^"]*"', '', re.sub(r'\{[^}]*\}', '', expr))
    for token in re.findall(r'[A-Za-z_:][A-Za-z0-9_:]*', plain):
        if token.startswith("pgferry_") and token not in exported:
            print(f"{path}: {name}: {token} is on neither the sink's nor the source's /metrics"); bad += 1
        elif ":" in token and token not in recorded:
            print(f"{path}: {name}: {token} is recorded by no rule here"); bad += 1
    if "pgferry" not in plain:
        print(f"{path}: {name}: names no pgferry metric: {expr}"); bad += 1
print(f"{len(exprs)} expressions checked against {len(exported)} exported series names")
sys.exit(1 if bad else 0)
PY
cat "$T/names.log"
log "prometheus ok"
