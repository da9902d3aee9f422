# t_hugerow.sh — a row of HUGEROW_MB (default 64) MB passes with the sink
# under 100 MB of memory. A row of random, incompressible text plus a small
# column is inserted, then updated (both columns); the DR copy must be
# byte-equal (md5 on both sides). The source sends it in pieces of
# batch_max_bytes (no frame holds the row), the sink writes them to a file
# in work_dir, and apply streams it to the DR server: the insert by COPY,
# the update by COPY into a temporary table and UPDATE ... FROM (the DR
# server's statement log shows both). Then an insert of a huge row whose
# key the DR side already has stops apply naming the change, and passes
# once the DBA removes the conflicting row; and a huge row inside a
# streamed transaction (the primary's logical_decoding_work_mem lowered)
# passes the same way (these rows, and the last, a quarter of the size). The sink's peak resident memory (VmHWM) must stay
# under 100 MB, and its VmRSS afterwards within 16 MB of its rest. Last, a
# kill -9 of the sink while a huge change is in work_dir loses nothing,
# applies nothing twice, and the restarted sink removes the file left.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

MB=${HUGEROW_MB:-64}
# large enough that the first transactions are not streamed
cluster_start primary "logical_decoding_work_mem = '1GB'"
cluster_start dr "log_statement = 'all'"
schema_both "CREATE TABLE huge (id int PRIMARY KEY, note text, v text)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup
sink_start
source_start
wait_applied 60
sink_pid=$(bg_pid sink)
source_pid=$(bg_pid source)
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
rss0=$(kb "$sink_pid" VmRSS)
log "sink at rest: VmRSS $((rss0 / 1024)) MB, VmHWM $(($(kb "$sink_pid" VmHWM) / 1024)) MB"
digest() { psql_on "$1" -c "SELECT id, note, octet_length(v), md5(v) FROM huge ORDER BY id"; }
same() { [ "$(digest primary)" = "$(digest dr)" ] || fail "the DR copy differs $1: $(digest dr)"; }

# random bytes as base64 without newlines: text that does not compress
value() { echo "(SELECT string_agg(encode(decode(md5(random()::text) || md5(random()::text), 'hex'), 'base64'), '') FROM generate_series(1, $1 * 1024 * 1024 / 44))"; }
huge_value=$(value "$MB")
# the cases after the first two take a quarter of it: still many pieces,
# in less time
less_value=$(value $((MB / 4)))
psql_on primary -c "INSERT INTO huge VALUES (1, 'first', $huge_value)" >/dev/null || fail "the huge insert"
psql_on primary -c "INSERT INTO huge VALUES (2, 'small', 'x')" >/dev/null
log "a $(psql_on primary -c "SELECT octet_length(v) / 1048576 FROM huge WHERE id = 1") MB row committed"
wait_applied 300
same "after the insert"
psql_on primary -c "UPDATE huge SET note = 'updated', v = $huge_value WHERE id = 1" >/dev/null || fail "the huge update"
wait_applied 300
same "after the update"
log "the DR copy is byte-equal: $(digest dr | head -1)"
grep -q 'COPY "public"."huge" ("id", "note", "v") FROM STDIN' "$T/dr/server.log" ||
	fail "the huge insert was not streamed by COPY"
grep -q 'UPDATE "public"."huge" AS t SET .* FROM pg_temp.pgferry_huge' "$T/dr/server.log" ||
	fail "the huge update was not streamed through a temporary table"

# the key exists on the DR side: apply stops, names the change, loses nothing
psql_on dr -c "INSERT INTO huge VALUES (3, 'in the way', 'x')" >/dev/null
psql_on primary -c "INSERT INTO huge VALUES (3, 'third', $less_value)" >/dev/null || fail "the third huge row"
wait_until "apply to stop on the existing key" 120 grep -q 'duplicate key value violates unique constraint' "$T/sink.log"
grep -m1 -A1 'duplicate key value violates unique constraint' "$T/sink.log"
grep -q "an insert of [0-9]* bytes in public.huge by COPY" "$T/sink.log" ||
	fail "the apply error does not name the huge change"
[ "$(psql_on dr -c "SELECT note FROM huge WHERE id = 3")" = "in the way" ] || fail "the DR row was overwritten"
psql_on dr -c "DELETE FROM huge WHERE id = 3" >/dev/null
wait_applied 300
same "once the conflicting row is gone"

# inside a streamed transaction: the spilled stream refers to the file
psql_on primary -c "ALTER SYSTEM SET logical_decoding_work_mem = '1MB'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
psql_on primary -c "BEGIN; INSERT INTO huge SELECT g, 'small', repeat('s', 500) FROM generate_series(10, 5000) g; INSERT INTO huge VALUES (4, 'streamed', $less_value); UPDATE huge SET note = 'streamed too' WHERE id = 1; COMMIT" >/dev/null ||
	fail "the streamed transaction"
wait_applied 300
same "after the streamed transaction"
[ "$(psql_on primary -c "SELECT stream_txns > 0 FROM pg_stat_replication_slots WHERE slot_name = 'pgferry'")" = t ] ||
	fail "the transaction was not streamed"
psql_on primary -c "ALTER SYSTEM RESET logical_decoding_work_mem" -c "SELECT pg_reload_conf()" >/dev/null

# the sink gives back what the huge changes took once it is idle
sleep 2
wait_applied 60
rss1=$(kb "$sink_pid" VmRSS)
hwm=$(kb "$sink_pid" VmHWM)
log "sink: VmRSS at rest $((rss0 / 1024)) MB, peak (VmHWM) $((hwm / 1024)) MB, after $((rss1 / 1024)) MB"
log "source: peak (VmHWM) $(($(kb "$source_pid" VmHWM) / 1024)) MB (libpq hands it each row whole)"
[ "$hwm" -lt $((100 * 1024)) ] || fail "the sink's peak was $((hwm / 1024)) MB for a $MB MB row (at most 100 MB)"
[ "$rss1" -le $((rss0 + 16 * 1024)) ] ||
	fail "the sink keeps $(((rss1 - rss0) / 1024)) MB after a $MB MB row (at most 16 MB over its rest)"

# kill -9 of the sink while a huge change is on its way (in work_dir)
psql_on primary -c "INSERT INTO huge VALUES (5, 'crash', $less_value)" >/dev/null || fail "the fifth huge row"
wait_until "a huge change in work_dir" 120 bash -c "ls '$T/work' | grep -q '^huge-'"
sink_stop KILL
log "sink killed with $(ls "$T/work" | grep -c '^huge-') huge change file(s) in work_dir"
sink_start
wait_applied 300
same "after the sink was killed"
grep -q "removed the files of huge changes an earlier run left" "$T/sink.log" ||
	fail "the restarted sink did not remove the file left behind"
[ "$(find "$T/work" -name 'huge-*' | wc -l)" = 0 ] ||
	fail "files of huge changes left in work_dir: $(ls "$T/work")"
hwm=$(kb "$(bg_pid sink)" VmHWM)
log "the restarted sink's peak (VmHWM): $((hwm / 1024)) MB"
[ "$hwm" -lt $((100 * 1024)) ] || fail "the restarted sink's peak was $((hwm / 1024)) MB (at most 100 MB)"
check_no_loss_invariant
log "huge row ok"
