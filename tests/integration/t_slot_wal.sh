# t_slot_wal.sh — a slot that retains too much WAL is reported: with
# slot_wal_warning = 1MB and nothing confirmed (the sink stopped, then the
# DR table locked so apply cannot commit), a few MB written on the primary
# make the source log one warning naming the slot, the bytes and the limit,
# and /v1/status and the metrics show the retention above the limit; once
# apply confirms again, the source says it is back under. A warning only:
# the verdict is not made unsafe by it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary "max_slot_wal_keep_size = 1GB"
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY, pad text)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup "source:slot_wal_warning = 1MB"
sink_start
source_start
wait_applied 60

# nothing can be confirmed: the sink is gone, later the DR table is locked
sink_stop
psql_on primary -c "INSERT INTO t SELECT g, repeat('x', 1000) FROM generate_series(1, 4000) g" >/dev/null
bg_start locker psql "$DR_CONN" -Xqc "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3600)"
wait_until "the DR table locked" 30 bash -c \
	"[ \"\$(psql '$DR_CONN' -XAtc \"SELECT count(*) FROM pg_locks WHERE relation = 't'::regclass AND mode = 'AccessExclusiveLock' AND granted\")\" = 1 ]"
retained=$(psql_on primary -c "SELECT (pg_current_wal_lsn() - restart_lsn)::bigint FROM pg_replication_slots WHERE slot_name = 'pgferry'")
log "the slot retains $retained bytes"
[ "$retained" -gt 1048576 ] || fail "the workload did not make the slot retain more than 1MB ($retained)"
sink_start

wait_until "the source's warning" 60 grep -q 'slot "pgferry" retains [0-9]* bytes of WAL on the primary, more than slot_wal_warning (1048576 bytes)' "$T/source.log"
grep 'more than slot_wal_warning' "$T/source.log"
grep -q "pg_drop_replication_slot('pgferry')" "$T/source.log" || fail "the warning does not say what to do"
status_over()
{
	curl -s "$SINK_URL/v1/status" >"$T/status.json"
	local n
	n=$(sed -n 's/.*"slot_retained_wal_bytes":\([0-9]*\).*/\1/p' "$T/status.json")
	[ -n "$n" ] && [ "$n" -gt 1048576 ] && grep '"slot_wal_warning":"the slot retains' "$T/status.json" >/dev/null
}
wait_until "/v1/status over the limit" 60 status_over
grep -o '"slot_retained_wal_bytes":[^,]*,"slot_safe_wal_size_bytes":[^,]*,"slot_wal_status":"[a-z]*","slot_wal_warning":"[^"]*"' "$T/status.json"
grep '"slot_safe_wal_size_bytes":[0-9]' "$T/status.json" >/dev/null || fail "no safe_wal_size with max_slot_wal_keep_size set"
grep '"slot_wal_status":"reserved"\|"slot_wal_status":"extended"' "$T/status.json" >/dev/null || fail "wal_status missing"
curl -s "$SINK_URL/metrics" >"$T/metrics.txt"
m=$(metric_in "$T/metrics.txt" pgferry_slot_retained_wal_bytes)
log "pgferry_slot_retained_wal_bytes $m"
awk -v m="$m" 'BEGIN { exit !(m + 0 > 1048576) }' || fail "metric not above the limit: $m"
[ "$(metric_in "$T/metrics.txt" pgferry_slot_wal_warning)" = 1 ] || fail "pgferry_slot_wal_warning is not 1"
metric_in "$T/metrics.txt" pgferry_slot_safe_wal_size_bytes | grep -q '^[0-9]' || fail "no pgferry_slot_safe_wal_size_bytes"
# a warning, not a verdict: the reasons do not name it
curl -s "$SINK_URL/v1/promotion-safety" >"$T/verdict.json"
grep -q 'slot retains' "$T/verdict.json" && fail "the slot warning made it into the verdict"

# apply confirms again: back under, said once
psql_on dr -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3600)%' AND pid <> pg_backend_pid()" >/dev/null
wait_applied 60
tables_equal t
wait_until "the source says it is back under" 90 grep -q 'back under slot_wal_warning' "$T/source.log"
[ "$(grep -c 'more than slot_wal_warning' "$T/source.log")" = 1 ] || fail "the warning was not logged once"
wait_until "/v1/status without the warning" 60 bash -c "curl -s $SINK_URL/v1/status | grep -c '\"slot_wal_warning\":null'"
log "slot_wal ok"
