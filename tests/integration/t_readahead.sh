# t_readahead.sh — the read-ahead the README promises, for small
# transactions: with spool_memory_limit = 1MB and apply stalled on the DR
# side, the sink keeps receiving many small batches into the spool (at least
# 20 MB here), since what is spooled costs no memory; once the stall ends
# every row is applied, in order, once.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id bigserial PRIMARY KEY, pad text)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup "sink:spool_memory_limit = 1MB" "sink:spool_disk_limit = 512MB"
sink_start
source_start
wait_applied 60

status() { curl -s "$SINK_URL/v1/status"; }
field() { status | grep -Eo "\"$1\":\"?[0-9A-F/.]+" | head -1 | sed -E 's/.*:"?//'; }

bg_start locker psql "$DR_CONN" -Xqc "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3600)"
wait_until "the DR lock" 30 bash -c "[ \"\$(psql '$DR_CONN' -XAtc \"SELECT count(*) FROM pg_locks WHERE relation = 't'::regclass AND mode = 'AccessExclusiveLock' AND granted\")\" = 1 ]"

# 12,000 transactions of one 2 kB row each: about 24 MB in small batches
echo "INSERT INTO t (pad) VALUES (repeat(md5(random()::text), 64));" >"$T/small.sql"
pgbench -n -c 4 -t 3000 -f "$T/small.sql" "$PRIMARY_CONN" >"$T/pgbench.log" 2>&1 || fail "pgbench: $(tail -3 "$T/pgbench.log")"
end=$(psql_on primary -c "SELECT pg_current_wal_lsn()")
reached() { [ "$(psql_on dr -c "SELECT '$(field received_lsn)'::pg_lsn >= '$end'::pg_lsn")" = t ]; }
wait_until "the sink received all 12000 transactions while apply is stalled" 120 reached
spooled=$(metric pgferry_receive_spool_bytes)
spooled=${spooled%.*}
log "received up to $(field received_lsn) (primary at $end) with apply stalled; spooled $((spooled / 1048576)) MB"
grep "apply is behind" "$T/sink.log" | tail -1
[ "$spooled" -ge $((20 * 1048576)) ] || fail "expected at least 20 MB in the spool, got $spooled bytes"

psql_on dr -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3600)%' AND pid <> pg_backend_pid()" >/dev/null
bg_stop locker
wait_applied 180
tables_equal t
[ "$(psql_on dr -c "SELECT count(*) FROM t")" = 12000 ] || fail "row count on DR"
spool_empty() { [ "$(metric pgferry_receive_spool_bytes)" = 0 ]; }
wait_until "the spool emptied" 30 spool_empty
check_no_loss_invariant
log "read-ahead ok"
