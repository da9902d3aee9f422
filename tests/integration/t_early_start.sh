# t_early_start.sh — the source streams before the sink's welcome (the
# sink said in the TLS handshake that it holds what follows the hello until
# the DR side accepted the stream), from where its slot stands. 1. A slot
# behind the DR side's progress (a copy of itself taken earlier) resends
# transactions the DR database committed: the sink skips them, every row
# is there once (keyless table: a second apply would show). 2. A slot ahead
# of the DR side's progress (advanced while rows were not applied): the
# sink refuses the stream before it reads a batch, and nothing past the gap
# is applied. 3. A sink that does not say so (no ALPN answer, as an older
# sink): the source, which queued its hello and stream while the handshake
# ran, sends none of it and ends the session; the next waits for the
# welcome (it sends the hello alone); with the real sink back every row
# arrives once, and sessions stream early again.
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

# 3. a sink that does not hold a stream before its welcome
sink_stop
bg_start no_alpn_sink python3 "$(dirname "$0")/no_alpn_sink.py" "$SINK_PORT" "$T/certs/ca.crt" \
	"$T/certs/server.crt" "$T/certs/server.key" "$T/no_alpn.out"
psql_on primary -c "INSERT INTO h SELECT g FROM generate_series(1001, 3000) g" >/dev/null
wait_until "the source's two sessions with the sink without ALPN" 60 bash -c \
	"grep -q '^2 [1-9]' '$T/no_alpn.out' 2>/dev/null"
# the first session sent nothing of what it queued (hello, facts, 2,000
# rows); the second the hello alone, waiting for the welcome
first=$(grep -E '^1 [0-9]+$' "$T/no_alpn.out" | tail -1 | cut -d ' ' -f 2)
[ "$first" = 0 ] || fail "the session streamed early to a sink that does not hold it: $first bytes"
second=$(grep -E '^2 [0-9]+$' "$T/no_alpn.out" | tail -1 | cut -d ' ' -f 2)
[ "$second" -lt 1024 ] || fail "the session after it sent $second bytes before a welcome"
grep -q '^1 closed' "$T/no_alpn.out" || fail "the first session was not closed"
grep -q "does not hold a stream before its welcome" "$T/source.log" ||
	fail "the source did not say why it ended the session: $(tail -5 "$T/source.log")"
bg_stop no_alpn_sink
sink_start
wait_applied 90
sessions=$(grep -c 'streaming slot "pgferry" from' "$T/source.log")
n=$(psql_on dr -c "SELECT count(*) || ' rows, ' || count(DISTINCT v) || ' distinct' FROM h")
[ "$n" = "2400 rows, 2400 distinct" ] || fail "after a sink without ALPN: $n"
sink_stop
sink_start
wait_until "a later session" 60 bash -c \
	"[ \$(grep -c 'streaming slot \"pgferry\" from' '$T/source.log') -gt $sessions ]"
grep 'streaming slot "pgferry" from' "$T/source.log" | tail -1 | grep -q "started before the welcome" ||
	fail "with the real sink back, the source does not stream early again"

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
	"grep -q \"$refused\" '$T/sink.log' || [ \"\$(psql '$DR_CONN' -XAtc 'SELECT count(*) FROM h')\" != 2400 ]"
n=$(psql_on dr -c "SELECT count(*) FROM h")
[ "$n" = 2400 ] || fail "the DR database applied rows past a gap: $n rows"
grep -q "$refused" "$T/sink.log" || fail "the sink did not say why it refused the stream"
wait_until "the source reporting the refusal" 60 grep -q "the sink refused the stream: the source's slot is ahead" "$T/source.log"
log "ok: a slot behind is resent and skipped, a sink without ALPN gets nothing early, a slot ahead is refused before a batch is read"
