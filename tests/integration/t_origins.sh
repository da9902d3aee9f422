# t_origins.sh — one replication origin per stream: two DR databases on one
# DR cluster, each cloned from its own slot, stream side by side and neither
# moves the other's resume point (with one origin for the cluster, the
# second clone moved the first database's resume point past the rows
# committed between the two clones, and they were skipped in silence). A
# second sink on a database whose origin is in use, and an origin moved by
# something else, are refused with the reason in the verdict; a DR state
# from the days of the one origin "pgferry" moves to its stream's own;
# parallel apply's origins left by a dropped DR database are refused.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
psql_on primary -c "
  CREATE TABLE pgferry_test_marker (id text PRIMARY KEY);
  CREATE TABLE t (id int PRIMARY KEY, at text);
  INSERT INTO t SELECT g, 'before' FROM generate_series(1, 100) g;
  CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null || fail "primary schema"
psql_on dr -c "CREATE DATABASE second" >/dev/null || fail "second DR database"
SECOND_CONN="${DR_CONN/dbname=postgres/dbname=second}"
second() { psql "$SECOND_CONN" -X -q -v ON_ERROR_STOP=1 -At "$@"; }

# 1. clone the first DR database, commit 50 rows, clone the second from
# another slot: the 50 rows are after the first clone's consistent point
"$PGFERRY_BIN" clone -c "primary_conninfo=$PRIMARY_CONN" -c "dr_conninfo=$DR_CONN" >"$T/clone1.out" 2>&1 ||
	fail "first clone: $(cat "$T/clone1.out")"
psql_on primary -c "INSERT INTO t SELECT g, 'between the clones' FROM generate_series(101, 150) g" >/dev/null
"$PGFERRY_BIN" clone -c "primary_conninfo=$PRIMARY_CONN" -c "dr_conninfo=$SECOND_CONN" -c slot_name=second \
	>"$T/clone2.out" 2>&1 || fail "second clone: $(cat "$T/clone2.out")"

# 2. both stream side by side, each from its own slot
relay_setup "sink:initial_copy = clone"
sed -e "s|^dr_conninfo = .*|dr_conninfo = '$SECOND_CONN'|" \
	-e "s|^listen_address = .*|listen_address = '127.0.0.1:$(free_port)'|" \
	-e "s|^http_listen = .*|http_listen = '127.0.0.1:$(free_port)'|" "$T/sink.conf" >"$T/sink2.conf"
SINK2_ADDR=$(sed -n "s/^listen_address = '\(.*\)'/\1/p" "$T/sink2.conf")
sed -e "s|^sink_address = .*|sink_address = '$SINK2_ADDR'|" "$T/source.conf" >"$T/source2.conf"
echo "slot_name = 'second'" >>"$T/source2.conf"
sink_start
source_start
wait_applied 60
# the rows committed between the clones reached the first DR database
tables_equal t
bg_start sink2 "$PGFERRY_BIN" sink --config "$T/sink2.conf"
bg_start source2 "$PGFERRY_BIN" source --config "$T/source2.conf"
psql_on primary -c "INSERT INTO t SELECT g, 'streamed' FROM generate_series(151, 200) g" >/dev/null
wait_applied 60
DR_CONN_SAVED=$DR_CONN
DR_CONN=$SECOND_CONN WAIT_SLOT=second wait_applied 60
tables_equal t
[ "$(table_digest primary t)" = "$(second -c "SELECT count(*) || ':' || coalesce(md5(string_agg(ROW(t.*)::text, E'\\n' ORDER BY ROW(t.*)::text)), '') FROM t t")" ] ||
	fail "the second DR database differs: $(second -c "SELECT at, count(*) FROM t GROUP BY 1 ORDER BY 1")"
log "both DR databases equal to the primary"
o1=$(psql_on dr -c "SELECT pgferry.origin()")
o2=$(second -c "SELECT pgferry.origin()")
log "origins: $o1 and $o2"
[ -n "$o1" ] && [ -n "$o2" ] && [ "$o1" != "$o2" ] || fail "the two DR databases share origin \"$o1\" / \"$o2\""
case $o1 in pgferry_*_postgres_pgferry) ;; *) fail "origin name $o1 does not name the stream" ;; esac

# 3. the second stops while the first applies more; then it resumes where
# it stood, not where the first one is
bg_stop source2
bg_stop sink2
psql_on primary -c "INSERT INTO t SELECT g, 'while the second was down' FROM generate_series(201, 250) g" >/dev/null
wait_applied 60
bg_start sink2 "$PGFERRY_BIN" sink --config "$T/sink2.conf"
bg_start source2 "$PGFERRY_BIN" source --config "$T/source2.conf"
DR_CONN=$SECOND_CONN WAIT_SLOT=second wait_applied 60
[ "$(second -c "SELECT count(*) FROM t")" = 250 ] || fail "the second DR database has $(second -c "SELECT count(*) FROM t") rows, not 250"
check_no_loss_invariant

# 4. a second sink on the first DR database: its origin is in use
HTTP3=$(free_port)
bg_start sink3 "$PGFERRY_BIN" sink --config "$T/sink.conf" -c "listen_address=127.0.0.1:$(free_port)" \
	-c "http_listen=127.0.0.1:$HTTP3"
wait_until "the third sink refuses" 30 grep -q "is in use by another session" "$T/sink3.log"
wait_until "the third sink's verdict names it" 30 bash -c \
	"curl -s http://127.0.0.1:$HTTP3/v1/promotion-safety | grep -q 'in use by another session'"
code=$(curl -s -o "$T/verdict3.json" -w '%{http_code}' "http://127.0.0.1:$HTTP3/v1/promotion-safety")
[ "$code" = 409 ] || fail "a sink whose origin is in use answered $code: $(cat "$T/verdict3.json")"
bg_stop sink3

# 5. upgrade: a DR state of the days of the one origin "pgferry" moves to
# its stream's own origin, at the position pgferry.progress records
source_stop
sink_stop
psql_on dr -c "UPDATE pgferry.identity SET origin = NULL;
  SELECT pg_replication_origin_create('pgferry');
  SELECT pg_replication_origin_advance('pgferry', (SELECT source_lsn FROM pgferry.progress));
  SELECT pg_replication_origin_drop('$o1')" >/dev/null || fail "could not make an old DR state"
sink_start
source_start
psql_on primary -c "INSERT INTO t SELECT g, 'after the upgrade' FROM generate_series(251, 300) g" >/dev/null
wait_applied 60
tables_equal t
[ "$(psql_on dr -c "SELECT pgferry.origin()")" = "$o1" ] || fail "not migrated: $(psql_on dr -c "SELECT * FROM pgferry.identity")"

# 6. an origin missing on the cluster (a DR database restored from a dump
# elsewhere): made again where pgferry.progress says apply stands
source_stop
sink_stop
psql_on dr -c "SELECT pg_replication_origin_drop('$o1')" >/dev/null
sink_start
source_start
psql_on primary -c "INSERT INTO t SELECT g, 'origin made again' FROM generate_series(301, 350) g" >/dev/null
wait_applied 60
tables_equal t
grep -q "was missing on this DR cluster; created it at" "$T/sink.log" || fail "the missing origin was not said"

# 7. an origin moved by something else: the sink refuses to apply
source_stop
sink_stop
psql_on dr -c "SELECT pg_replication_origin_advance('$o1', pg_current_wal_lsn())" >/dev/null
sink_start
wait_until "the moved origin is refused" 30 grep -q "but this DR database recorded" "$T/sink.log"
grep "but this DR database recorded" "$T/sink.log" | head -1
curl -s "$SINK_URL/v1/status" >"$T/status.json"
grep '"stream_refused":"the replication origin' "$T/status.json" >/dev/null ||
	fail "status does not say why: $(curl -s "$SINK_URL/v1/status")"
code=$(curl -s -o "$T/verdict.json" -w '%{http_code}' "$SINK_URL/v1/promotion-safety")
[ "$code" = 409 ] || fail "a moved origin answered $code: $(cat "$T/verdict.json")"
DR_CONN=$DR_CONN_SAVED

# 8. parallel apply's origins (<origin>_w<k>) that a dropped DR database of
# the same stream left behind would count in a new copy's applied position
# (the newest of the stream's origins): a clone of that stream is refused
# before it copies anything, and so is a first contact
sink_stop
psql_on dr -c "CREATE DATABASE fourth" >/dev/null || fail "fourth DR database"
FOURTH_CONN="${DR_CONN/dbname=postgres/dbname=fourth}"
sysid=$(psql_on primary -c "SELECT system_identifier FROM pg_control_system()")
lo="pgferry_${sysid}_postgres_leftover"
psql_on dr -c "SELECT pg_replication_origin_create('${lo}_w1');
  SELECT pg_replication_origin_advance('${lo}_w1', 'FF/0')" >/dev/null || fail "a leftover origin"
"$PGFERRY_BIN" check --role clone -c "primary_conninfo=$PRIMARY_CONN" -c "dr_conninfo=$FOURTH_CONN" \
	-c slot_name=leftover >"$T/check4.out" 2>&1 && fail "check passed a clone over leftover origins: $(cat "$T/check4.out")"
grep -q "replication origins of an earlier parallel apply of this stream exist already on this DR cluster (${lo}_w1)" \
	"$T/check4.out" || fail "check did not name the leftover origin: $(cat "$T/check4.out")"
"$PGFERRY_BIN" clone -c "primary_conninfo=$PRIMARY_CONN" -c "dr_conninfo=$FOURTH_CONN" -c slot_name=leftover \
	>"$T/clone4.out" 2>&1 && fail "a clone over leftover origins succeeded: $(cat "$T/clone4.out")"
cat "$T/clone4.out"
grep -q "replication origins of an earlier parallel apply of this stream exist already on this DR cluster: ${lo}_w1" \
	"$T/clone4.out" || fail "the clone did not name the leftover origin: $(cat "$T/clone4.out")"
grep -q "starts_with(roname, '${lo}_w')" "$T/clone4.out" || fail "the clone did not say what to do: $(cat "$T/clone4.out")"
grep -q "copying" "$T/clone4.out" && fail "the clone copied before it found the leftover origins"
[ "$(psql_on primary -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'leftover'")" = 0 ] ||
	fail "the refused clone left a slot"
psql "$FOURTH_CONN" -Xq -v ON_ERROR_STOP=1 -f "$(dirname "$0")/../../sql/dr_state.sql" >/dev/null 2>&1 ||
	fail "could not install pgferry's DR state in the fourth database"
psql "$FOURTH_CONN" -XAtc "SELECT pgferry.record_identity($sysid, 'postgres', 'leftover', true)" >"$T/first4.out" 2>&1 &&
	fail "a first contact over leftover origins was recorded"
grep -q "${lo}_w1" "$T/first4.out" || fail "the first contact did not name the leftover origin: $(cat "$T/first4.out")"
[ "$(psql "$FOURTH_CONN" -XAtc "SELECT count(*) FROM pgferry.identity")" = 0 ] || fail "the identity was recorded"
log "origins ok"
