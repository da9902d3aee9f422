# t_metrics.sh — the sink's /metrics from a real pipeline passes
# `promtool check metrics`; the shipped alert rules pass `promtool check
# rules`; the HTTP API answers 404, 400 and keeps serving after garbage.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

bash "$ROOT/tools/install-deps.sh" prometheus || fail "cannot install promtool"
promtool check rules "$ROOT/deploy/prometheus/alerts.yml" || fail "alert rules do not pass promtool"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup
sink_start
source_start
wait_applied 60
psql_on primary -c "INSERT INTO t SELECT generate_series(1, 1000)" >/dev/null
wait_applied 60
curl -sf "$SINK_URL/metrics" >"$T/metrics.txt" || fail "no /metrics"
promtool check metrics <"$T/metrics.txt" || fail "promtool rejects /metrics: $(promtool check metrics <"$T/metrics.txt" 2>&1 | head)"
metric_in "$T/metrics.txt" pgferry_applied_transactions_total | grep -q '^[1-9]' || fail "no applied transactions counted"
grep -q '^pgferry_commit_lag_seconds_bucket{le="+Inf",[^}]*} [1-9]' "$T/metrics.txt" || fail "empty lag histogram"

code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code "$SINK_URL/healthz")" = 200 ] || fail "healthz"
[ "$(code "$SINK_URL/nope")" = 404 ] || fail "no 404"
[ "$(code -X POST "$SINK_URL/v1/status")" = 405 ] || fail "no 405"
[ "$(code "$SINK_URL/v1/promotion-safety?max_rpo=soon")" = 400 ] || fail "no 400 for a bad max_rpo"
[ "$(code "$SINK_URL/v1/promotion-safety?max_apply_backlog=-1")" = 400 ] || fail "no 400 for a bad backlog"
# garbage and an oversized header do not disturb the API or replication
printf 'GARBAGE\r\n\r\n' | timeout 5 bash -c "cat >/dev/tcp/127.0.0.1/$HTTP_PORT" 2>/dev/null || true
head -c 200000 /dev/zero | tr '\0' 'a' | sed 's/^/GET \/v1\/status HTTP\/1.1\r\nX-Big: /' |
	timeout 5 bash -c "cat >/dev/tcp/127.0.0.1/$HTTP_PORT" 2>/dev/null || true
[ "$(code "$SINK_URL/v1/status")" = 200 ] || fail "the API stopped answering after garbage"
psql_on primary -c "INSERT INTO t SELECT generate_series(1001, 1100)" >/dev/null
wait_applied 60
tables_equal t

# lag history: a sample a second in the DR database, the views, and the
# last hour's percentiles in /v1/status and `pgferry lag`
wait_until "lag history samples" 30 bash -c "[ \"\$(psql '$DR_CONN' -XAtc 'SELECT count(*) >= 3 FROM pgferry.lag_history')\" = t ]"
psql_on dr -c "SELECT samples, round(lag_p50_ms::numeric, 1), round(rpo_p99_ms::numeric, 1) FROM pgferry.lag_hourly" |
	grep -Eq '^[0-9]+\|' || fail "pgferry.lag_hourly is empty"
psql_on dr -c "SELECT source_state FROM pgferry.current_lag" | grep -q connected || fail "pgferry.current_lag"
wait_until "percentiles in the status" 30 bash -c "curl -s '$SINK_URL/v1/status' | grep -q '\"p99_ms\"'"
"$PGFERRY" lag --url "$SINK_URL" | grep -q "last hour" || fail "pgferry lag shows no last-hour percentiles"

# a sample taken while nothing proves a bound (right after a start, before
# the first proof) has a NULL bound: the table must take it and the hourly
# view count it (it used to refuse it, dropping exactly those moments)
psql_on dr -XAtc "INSERT INTO pgferry.lag_history VALUES (clock_timestamp() - interval '1 minute', '0/0', '0/0', 0, NULL, NULL, 0, 0, 0, 'disconnected')" >/dev/null ||
	fail "pgferry.lag_history refuses a sample without a bound"
[ "$(psql_on dr -XAtc "SELECT sum(rpo_unknown_samples) FROM pgferry.lag_hourly")" -ge 1 ] ||
	fail "pgferry.lag_hourly does not count the samples without a bound"
log "metrics ok"
