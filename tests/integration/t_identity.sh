# t_identity.sh — guarantee 4: after first contact the sink refuses a stream
# from another primary (crossed wires after a failover), durably across a
# restart of the sink, and applies nothing of it; the refused source leaves
# no slot on the wrong primary.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start other
cluster_start dr
for c in dr primary other; do
	psql_on $c -c "CREATE TABLE t (id int PRIMARY KEY, src text); CREATE TABLE pgferry_test_marker (id text PRIMARY KEY)" >/dev/null
done
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
psql_on other -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup
sink_start
source_start
wait_applied 60
psql_on primary -c "INSERT INTO t VALUES (1, 'primary')" >/dev/null
wait_applied 60
source_stop
sink_stop
sink_start

bg_start othersource "$PGFERRY_BIN" source --config "$T/source.conf" -c "primary_conninfo=$OTHER_CONN"
psql_on other -c "INSERT INTO t VALUES (2, 'other')" >/dev/null
wait_until "identity refusal logged" 30 grep -qi "refusing the stream" "$T/sink.log"
grep -i "refusing the stream" "$T/sink.log" | head -2
sleep 1
[ "$(psql_on dr -c "SELECT count(*) FROM t WHERE src = 'other'")" = 0 ] || fail "rows from the other primary were applied"
grep -Eiq "identity|another|refus" "$T/othersource.log" || fail "the source did not report the refusal"
bg_stop othersource
# the source asks the sink before it creates a slot: none on the wrong
# primary (it would hold that primary's WAL until its disk is full)
[ "$(psql_on other -c "SELECT count(*) FROM pg_replication_slots")" = 0 ] ||
	fail "the refused source left a slot on the other primary: $(psql_on other -c "SELECT slot_name FROM pg_replication_slots")"

# the right primary still streams
source_start
psql_on primary -c "INSERT INTO t VALUES (3, 'primary')" >/dev/null
wait_applied 60
tables_equal t
log "identity ok"
