# t_forge.sh — a peer with a certificate the sink accepts sends one forged
# keepalive whose WAL end lies 2 MB beyond the primary's: nothing moves (the
# DR progress, the slot), and every row committed meanwhile arrives once the
# real source is back. A DR database whose progress lies beyond the
# primary's WAL is refused by the source, which confirms nothing past it.
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
psql_on primary -c "INSERT INTO t SELECT g, 'before' FROM generate_series(1, 100) g" >/dev/null
wait_applied 60
source_stop

progress() { psql_on dr -c "SELECT coalesce(max(remote_lsn)::text, '0/0') FROM pg_replication_origin_status"; }
confirmed() { psql_on primary -c "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'pgferry'"; }
p0=$(progress)
c0=$(confirmed)
# 275 rows committed while the real source is away
for i in $(seq 101 375); do echo "INSERT INTO t VALUES ($i, 'between');"; done | psql_on primary >/dev/null
forged=$(psql_on primary -c "SELECT pg_current_wal_flush_lsn() + 2097152")
sysid=$(psql_on primary -c "SELECT system_identifier FROM pg_control_system()")
log "DR progress $p0, slot confirmed $c0; forging a keepalive at $forged"
"$ROOT/build/forge" "127.0.0.1:$SINK_PORT" "$T/certs/ca.crt" "$T/certs/client.crt" "$T/certs/client.key" \
	"$sysid" postgres pgferry "$forged" 4 || fail "the forger was not welcomed"
p1=$(progress)
log "DR progress after the forged keepalive: $p1"
[ "$p1" = "$p0" ] || fail "a forged keepalive moved the DR progress from $p0 to $p1"

# a keepalive stamped an hour in the future: a clock fault, logged once,
# shown in status and metrics, and no figure shrinks (it once pinned the
# unknown window at 0)
field() { curl -s "$SINK_URL/v1/status" | python3 -c "import json,sys; d=json.load(sys.stdin); print(eval('d' + sys.argv[1]))" "$1"; }
u0=$(field "['unknown_window_ms']")
for i in 1 2; do
	"$ROOT/build/forge" "127.0.0.1:$SINK_PORT" "$T/certs/ca.crt" "$T/certs/client.crt" "$T/certs/client.key" \
		"$sysid" postgres pgferry "$p0" 1 3600 >/dev/null || fail "the second forger was not welcomed"
done
u1=$(field "['unknown_window_ms']")
faults=$(field "['clock']['faults']")
log "clock faults $faults; unknown window $u0 -> $u1 ms; $(field "['clock']['last_fault']")"
[ "$faults" -ge 2 ] || fail "the future timestamps were not counted as clock faults"
[[ "$(field "['clock']['last_fault']")" == *"in the future"* ]] || fail "status does not show the clock fault"
curl -s "$SINK_URL/metrics" >"$T/metrics.txt"
metric_in "$T/metrics.txt" pgferry_clock_faults_total | grep -Eq '^[1-9]' || fail "no clock fault metric"
[ "$(grep -c "clock fault: a walsender message" "$T/sink.log")" = 1 ] || fail "the clock fault is not logged exactly once"
python3 -c "import sys; sys.exit(0 if $u1 > $u0 else 1)" || fail "a future timestamp made the unknown window shrink ($u0 -> $u1)"
[ "$(progress)" = "$p0" ] || fail "the DR progress moved"

source_start
wait_applied 60
[ "$(psql_on dr -c "SELECT count(*) FROM t")" = 375 ] || fail "rows lost: $(psql_on dr -c "SELECT count(*) FROM t") of 375 on DR"
tables_equal t
log "every row arrived; the slot confirmed $(confirmed)"

log "a DR progress beyond the primary's WAL: the source refuses and confirms nothing past it"
source_stop
sink_stop
c1=$(confirmed)
beyond=$(psql_on primary -c "SELECT pg_current_wal_flush_lsn() + 2097152")
origin=$(psql_on dr -c "SELECT roname FROM pg_replication_origin LIMIT 1")
# both records of the DR progress, as a sink misled by a forged stream would write them
psql_on dr -c "SELECT pg_replication_origin_advance('$origin', '$beyond');
	UPDATE pgferry.progress SET source_lsn = '$beyond'" >/dev/null
sink_start
source_start
wait_until "the source refuses the resume point" 30 grep -q "beyond the primary's WAL flush position" "$T/source.log"
grep -q "is not confirmed past" "$T/source.log" || fail "the refusal does not say the slot stays"
sleep 1
c2=$(confirmed)
[ "$c2" = "$c1" ] || fail "the slot moved from $c1 to $c2"
log "refused; the slot stays at $c2"
