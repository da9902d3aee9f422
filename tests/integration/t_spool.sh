# t_spool.sh — the receive spool: while apply is stalled on the DR side, the
# sink keeps receiving beyond its memory limit (the rest waits on disk in
# work_dir, not on the primary), so a regional failure of the primary at
# that moment loses nothing that was committed before it: once the stall
# ends, everything received is applied.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY, pad text)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup "sink:spool_memory_limit = 1MB" "sink:spool_disk_limit = 512MB"
sink_start
source_start
wait_applied 60

status() { curl -s "$SINK_URL/v1/status"; }
field() { status | grep -Eo "\"$1\":\"?[0-9A-F/.]+" | head -1 | sed -E 's/.*:"?//'; }

# 1. apply stalls: a DR session holds a lock on the replicated table
bg_start locker psql "$DR_CONN" -Xqc "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3600)"
wait_until "the DR lock" 30 bash -c "[ \"\$(psql '$DR_CONN' -XAtc \"SELECT count(*) FROM pg_locks WHERE relation = 't'::regclass AND mode = 'AccessExclusiveLock' AND granted\")\" = 1 ]"

# 2. about 40 MB of hardly compressible changes: 40 times the memory limit,
# more than TCP buffers could hold
load()
{ # load FIRST_THOUSAND LAST_THOUSAND: about 1 MB a thousand rows
	local i
	for i in $(seq "$1" "$2"); do
		psql_on primary -c "INSERT INTO t SELECT g, (SELECT string_agg(md5(random()::text || k || g), '') FROM generate_series(1, 30) k) FROM generate_series($((i * 1000 + 1)), $(((i + 1) * 1000))) g" >/dev/null || fail "insert"
	done
}
load 0 39
end=$(psql_on primary -c "SELECT pg_current_wal_lsn()")
reached() { [ "$(psql_on dr -c "SELECT '$(field received_lsn)'::pg_lsn >= '$end'::pg_lsn")" = t ]; }
wait_until "the sink received everything while apply is stalled" 120 reached
spooled=$(metric pgferry_receive_spool_bytes)
log "received up to $(field received_lsn) (primary at $end); spooled ${spooled%.*} bytes, applied: $(field applied_lsn)"
[ "${spooled%.*}" -gt $((10 * 1048576)) ] || fail "expected more than 10 MB in the spool, got $spooled"
status | grep -q '"spooled_bytes":[1-9]' || fail "status does not show the spool: $(status)"

# 3. regional failure: the primary and the source are gone
bg_stop source KILL
cluster_ctl primary kill
# 4. the stall ends; everything received is applied from the spool
psql_on dr -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3600)%' AND pid <> pg_backend_pid()" >/dev/null
bg_stop locker
wait_until "all 40000 rows applied" 180 bash -c "[ \"\$(psql '$DR_CONN' -XAtc 'SELECT count(*) FROM t')\" = 40000 ]"
spool_empty() { [ "$(metric pgferry_receive_spool_bytes)" = 0 ]; }
wait_until "the spool emptied" 30 spool_empty

# 5. the old primary, back: nothing it committed is missing on the DR side
cluster_ctl primary start
tables_equal t

# 6. a spool too small for the stall: the sink stops reading (and says so),
# which is not taken for a silent source, and goes on once apply moves
sink_stop
sink_start -c spool_memory_limit=1MB -c spool_disk_limit=4MB -c source_timeout=2s
source_start
wait_applied 60
lines=$(wc -l <"$T/sink.log")
bg_start locker psql "$DR_CONN" -Xqc "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3600)"
wait_until "the DR lock" 30 bash -c "[ \"\$(psql '$DR_CONN' -XAtc \"SELECT count(*) FROM pg_locks WHERE relation = 't'::regclass AND mode = 'AccessExclusiveLock' AND granted\")\" = 1 ]"
load 40 59
wait_until "the sink pauses reading" 60 grep -q "apply is behind" "$T/sink.log"
grep "apply is behind" "$T/sink.log" | tail -1
sleep 3 # longer than source_timeout
tail -n +"$lines" "$T/sink.log" | grep "nothing heard from the source" &&
	fail "the sink took its own pause for a silent source"
psql_on dr -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3600)%' AND pid <> pg_backend_pid()" >/dev/null
bg_stop locker
wait_applied 120
tables_equal t
check_no_loss_invariant
log "spool ok"
