# t_seeding.sh — no streaming into an unseeded copy: a sink on a DR
# database that no pgferry clone finished refuses the stream (the DR side
# would lack every row committed before the slot), and its verdict is
# unsafe with that reason, before and after a source comes; with
# initial_copy = external the operator's word is recorded on first contact
# and streaming starts, also after the setting is dropped again.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY)"
psql_on primary -c "INSERT INTO t SELECT generate_series(1, 100); CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup "sink:initial_copy = clone"

# 1. never cloned: unsafe with the reason, at once
sink_start
wait_until "the sink's verdict" 30 bash -c "[ \"\$(curl -s -o /dev/null -w %{http_code} $SINK_URL/healthz)\" != 000 ]"
verdict_says()
{
	local code
	code=$(curl -s -o "$T/verdict.json" -w '%{http_code}' "$SINK_URL/v1/promotion-safety")
	[ "$code" = 409 ] && grep -q "no pgferry clone finished here" "$T/verdict.json"
}
wait_until "409 naming the missing clone (no source yet)" 30 verdict_says
cat "$T/verdict.json"

# 2. a source comes: refused, nothing applied, nothing recorded
source_start
wait_until "the stream refused" 30 grep -q "refusing the stream: the initial copy of this DR database is not known to be complete" "$T/sink.log"
# the source logs the refusal a moment after the sink does
wait_until "the source told why" 30 grep -q "no pgferry clone finished here" "$T/source.log"
verdict_says || fail "verdict after the refusal: $(cat "$T/verdict.json")"
# grep reads all (no -q): with pipefail, curl cut off by an early exit fails
curl -s "$SINK_URL/v1/status" >"$T/status.json"
grep '"stream_refused":"the initial copy' "$T/status.json" >/dev/null || fail "status does not say it: $(cat "$T/status.json")"
curl -s "$SINK_URL/metrics" >"$T/metrics.txt"
[ "$(metric_in "$T/metrics.txt" pgferry_stream_refused)" = 1 ] || fail "no metric: $(grep stream_refused "$T/metrics.txt")"
[ "$(psql_on dr -c "SELECT count(*) FROM pgferry.identity")" = 0 ] || fail "an identity was recorded"
[ "$(psql_on dr -c "SELECT count(*) FROM t")" = 0 ] || fail "rows were applied"

# 3. the operator says the copy was seeded otherwise: recorded, streamed
sink_stop
psql "$DR_CONN" -qc "INSERT INTO t SELECT generate_series(1, 100)" # the operator's copy
sink_start -c initial_copy=external
wait_applied 60
tables_equal t
[ "$(psql_on dr -c "SELECT method FROM pgferry.clone WHERE finished_at IS NOT NULL")" = external ] ||
	fail "the external seeding was not recorded"
curl -s "$SINK_URL/v1/status" >"$T/status.json"
grep '"stream_refused":null' "$T/status.json" >/dev/null || fail "still refused: $(cat "$T/status.json")"

# 4. recorded for good: the setting is no longer needed
source_stop
sink_stop
sink_start
source_start
psql_on primary -c "INSERT INTO t VALUES (101)" >/dev/null
wait_applied 60
tables_equal t
log "seeding ok"
