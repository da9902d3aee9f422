# t_large_txn.sh — guarantee 5: a 500 MB transaction passes with the sink's
# peak RSS under 100 MB (streamed by the primary, spilled to disk by the
# sink), and a large aborted transaction leaves no trace.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

SIZE_MB=${LARGE_TXN_MB:-500}
cluster_start primary "max_wal_size = 4GB" "logical_decoding_work_mem = 16MB"
cluster_start dr "max_wal_size = 4GB"
schema_both "CREATE TABLE big (id int PRIMARY KEY, v text)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup
sink_start
source_start
wait_applied 60

rows=$((SIZE_MB * 1024 / 2)) # ~2 kB a row
log "a $SIZE_MB MB transaction ($rows rows of 2 kB)"
psql_on primary -c "INSERT INTO big SELECT g, repeat(md5(g::text), 64) FROM generate_series(1, $rows) g" >/dev/null ||
	fail "large insert"
log "a large aborted transaction"
psql_on primary -c "BEGIN; INSERT INTO big SELECT g, 'aborted' FROM generate_series($rows + 1, $rows + 50000) g; ROLLBACK" >/dev/null
wait_applied 900
pid=$(bg_pid sink)
hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
log "sink peak RSS: $((hwm_kb / 1024)) MB"
[ "$hwm_kb" -lt $((100 * 1024)) ] || fail "sink peak RSS $((hwm_kb / 1024)) MB is over 100 MB"
[ "$(psql_on dr -c "SELECT count(*) FROM big")" = "$rows" ] || fail "row count differs"
[ "$(psql_on dr -c "SELECT count(*) FROM big WHERE v = 'aborted'")" = 0 ] || fail "aborted rows applied"
[ -z "$(ls "$T/work"/*.spill 2>/dev/null)" ] || fail "spill files left behind"
tables_equal big
log "large transaction ok"
