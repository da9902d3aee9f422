# t_early_start.sh — the source streams before the sink's welcome (the
# sink said in the TLS handshake that it holds what follows the hello until
# the DR side accepted the stream), from where its slot stands. 1. A slot
# behind the DR side's progress (a copy of itself taken earlier) resends
# transactions the DR database committed: the sink skips them, every row
# is there once (keyless table: a second apply would show). 2. A slot ahead
# of the DR side's progress (advanced while rows were not applied): the
# sink refuses the stream before it reads a batch, and nothing past the gap
# is applied.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE h (v int)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup
sink_start
source_start
wait_applied 90
psql_on primary -c "INSERT INTO h SELECT g FROM generate_series(1, 100) g" >/dev/null
wait_applied 90

# 1. the slot as it stood before rows 101-300 reached the DR database
psql_on primary -c "SELECT pg_copy_logical_replication_slot('pgferry', 'pgferry_old')" >/dev/null ||
	fail "copying the slot"
psql_on primary -c "INSERT INTO h SELECT g FROM generate_series(101, 200) g" >/dev/null
psql_on primary -c "INSERT INTO h SELECT g FROM generate_series(201, 300) g" >/dev/null
wait_applied 90
source_stop
applied=$(dr_applied)
psql_on primary -c "SELECT pg_drop_replication_slot('pgferry')" >/dev/null
psql_on primary -c "SELECT pg_copy_logical_replication_slot('pgferry_old', 'pgferry');
                    SELECT pg_drop_replication_slot('pgferry_old')" >/dev/null || fail "restoring the old slot"
behind=$(psql_on primary -c "SELECT confirmed_flush_lsn < '$applied'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'pgferry'")
[ "$behind" = t ] || fail "the restored slot is not behind the DR side's progress $applied"
sessions=$(grep -c 'streaming slot "pgferry" from' "$T/source.log")
source_start
wait_until "the source streaming" 60 bash -c \
	"[ \$(grep -c 'streaming slot \"pgferry\" from' '$T/source.log') -gt $sessions ]"
grep 'streaming slot "pgferry" from' "$T/source.log" | tail -1 | grep -q "started before the welcome" ||
	fail "the source did not stream before the welcome: $(grep 'streaming slot' "$T/source.log" | tail -1)"
psql_on primary -c "INSERT INTO h SELECT g FROM generate_series(301, 400) g" >/dev/null
wait_applied 90
n=$(psql_on dr -c "SELECT count(*) || ' rows, ' || count(DISTINCT v) || ' distinct' FROM h")
[ "$n" = "400 rows, 400 distinct" ] || fail "after a resend from behind the DR side's progress: $n"
tables_equal h
# a transaction applied twice fails on a key (the marker table's) first
! grep -E "apply stopped|duplicate key" "$T/sink.log" ||
	fail "the sink applied a resent transaction again"

# 2. rows the DR side never got, released by the slot
sink_stop
psql_on primary -c "INSERT INTO h SELECT g FROM generate_series(401, 500) g" >/dev/null
source_stop
psql_on primary -c "SELECT pg_replication_slot_advance('pgferry', pg_current_wal_lsn())" >/dev/null ||
	fail "advancing the slot"
psql_on primary -c "INSERT INTO h SELECT g FROM generate_series(501, 600) g" >/dev/null
sink_start
source_start
refused="refusing the stream: the source's slot is ahead of the DR database"
wait_until "the sink refusing the stream, or rows applied" 60 bash -c \
	"grep -q \"$refused\" '$T/sink.log' || [ \"\$(psql '$DR_CONN' -XAtc 'SELECT count(*) FROM h')\" != 400 ]"
n=$(psql_on dr -c "SELECT count(*) FROM h")
[ "$n" = 400 ] || fail "the DR database applied rows past a gap: $n rows"
grep -q "$refused" "$T/sink.log" || fail "the sink did not say why it refused the stream"
wait_until "the source reporting the refusal" 60 grep -q "the sink refused the stream: the source's slot is ahead" "$T/source.log"
log "ok: a slot behind is resent and skipped, a slot ahead is refused before a batch is read"
