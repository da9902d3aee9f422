# t_clone.sh — pgferry clone: a DR copy from scratch while pgbench writes,
# then streaming from the clone's consistent point: every table equal, no
# gap, no duplicate. A clone killed (kill -9) in the middle of its copy is
# started over by the next run, which says so; a finished clone is never
# overwritten; a clone that fails drops the slot it created.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
cluster_start dr2
pgbench -q -i -s 5 "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench data"
psql_on primary -c "
  CREATE TABLE pgferry_test_marker (id text PRIMARY KEY);
  CREATE TABLE orders (id bigserial PRIMARY KEY, v text, at timestamptz DEFAULT now());
  INSERT INTO orders (v) SELECT 'o' || g FROM generate_series(1, 1000) g;
  CREATE TABLE gen (id int PRIMARY KEY, a int, doubled int GENERATED ALWAYS AS (a * 2) STORED);
  INSERT INTO gen SELECT g, g FROM generate_series(1, 100) g;
  CREATE TABLE parted (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
  CREATE TABLE parted_eu PARTITION OF parted FOR VALUES IN ('eu');
  CREATE TABLE parted_us PARTITION OF parted FOR VALUES IN ('us');
  INSERT INTO parted SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(1, 1000) g;
  CREATE PUBLICATION pgferry FOR ALL TABLES WITH (publish_via_partition_root = true)" >/dev/null ||
	fail "primary schema"
TABLES="pgbench_accounts pgbench_branches pgbench_tellers pgbench_history orders gen parted"
cat >"$T/orders.sql" <<'SQL'
INSERT INTO orders (v) VALUES ('during');
UPDATE orders SET v = v || '+' WHERE id = (random() * 999)::int + 1;
SQL

# 1. clone while pgbench writes, then stream
bg_start load pgbench -n -c 2 -T 600 -R 200 "$PRIMARY_CONN"
bg_start load2 pgbench -n -c 1 -T 600 -R 100 -f "$T/orders.sql" "$PRIMARY_CONN"
sleep 1
"$PGFERRY_BIN" clone -c "primary_conninfo=$PRIMARY_CONN" -c "dr_conninfo=$DR_CONN" >"$T/clone.out" 2>&1 ||
	fail "clone failed: $(cat "$T/clone.out")"
cat "$T/clone.out"
grep -q "pgbench_accounts .* 500000 rows" "$T/clone.out" || fail "no per-table progress"
relay_setup
sink_start
source_start
sleep 2
bg_stop load
bg_stop load2
wait_applied 120
tables_equal $TABLES
check_no_loss_invariant
[ "$(psql_on dr -c "SELECT count(*) FROM pg_event_trigger")" = 0 ] || fail "event triggers reached DR"
[ "$(psql_on dr -c "SELECT count(*) FROM pg_publication")" = 0 ] || fail "publication reached DR"
# sequences were cloned too: a new order on DR (after promotion) would not collide
[ "$(psql_on dr -c "SELECT last_value >= (SELECT max(id) FROM orders) FROM orders_id_seq")" = t ] ||
	fail "orders_id_seq behind the data on DR"

# 2. a second clone of a cloned database is refused
"$PGFERRY_BIN" clone -c "primary_conninfo=$PRIMARY_CONN" -c "dr_conninfo=$DR_CONN" >"$T/clone2.out" 2>&1
rc=$?
[ $rc = 2 ] || fail "second clone: exit $rc"
grep -q "already cloned" "$T/clone2.out" || fail "second clone: $(cat "$T/clone2.out")"
source_stop
sink_stop

# 3. killed in the middle of its copy, then run again (another DR database,
# another slot)
conf=(-c "primary_conninfo=$PRIMARY_CONN" -c "dr_conninfo=$DR2_CONN" -c slot_name=second -c clone_jobs=1)
bg_start clone3 "$PGFERRY_BIN" clone "${conf[@]}"
wait_until "the schema restored by the clone" 120 bash -c \
	"[ \"\$(psql '$DR2_CONN' -XAtc 'SELECT schema_restored_at IS NOT NULL FROM pgferry.clone' 2>/dev/null)\" = t ]"
bg_stop clone3 KILL
[ "$(psql_on dr2 -c "SELECT finished_at IS NULL FROM pgferry.clone")" = t ] ||
	fail "the clone finished before it could be killed"
"$PGFERRY_BIN" clone "${conf[@]}" >"$T/clone4.out" 2>&1 || fail "clone after an interruption: $(cat "$T/clone4.out")"
grep -q "interrupted after the schema was restored; starting the data copy over" "$T/clone4.out" ||
	fail "the rerun did not say it starts over: $(cat "$T/clone4.out")"
[ "$(psql_on primary -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'second'")" = 1 ] ||
	fail "slots after the rerun: $(psql_on primary -c "SELECT string_agg(slot_name, ',') FROM pg_replication_slots")"
# stream into the second copy from its own slot
sed -e "s|^dr_conninfo = .*|dr_conninfo = '$DR2_CONN'|" "$T/sink.conf" >"$T/sink2.conf"
echo "slot_name = 'second'" >>"$T/source.conf"
bg_start sink2 "$PGFERRY_BIN" sink --config "$T/sink2.conf"
source_start
psql_on primary -c "UPDATE orders SET v = 'after' WHERE id <= 10" >/dev/null
DR_CONN_SAVED=$DR_CONN
DR_CONN=$DR2_CONN
WAIT_SLOT=second
wait_applied 120
for t in $TABLES; do
	p=$(table_digest primary "$t")
	d=$(psql "$DR2_CONN" -XAtc "SELECT count(*) || ':' || coalesce(md5(string_agg(ROW(t.*)::text, E'\\n' ORDER BY ROW(t.*)::text)), '') FROM $t t")
	[ "$p" = "$d" ] || fail "table $t differs on the second copy"
done
DR_CONN=$DR_CONN_SAVED

# 4. a clone that fails after it created its slot drops the slot
psql "$DR2_CONN" -Xqc "CREATE DATABASE third" || fail "third DR database"
"$PGFERRY_BIN" clone -c "primary_conninfo=$PRIMARY_CONN" -c "dr_conninfo=${DR2_CONN/dbname=postgres/dbname=third}" \
	-c slot_name=failing --pg-bindir /nonexistent >"$T/clone5.out" 2>&1 && fail "a clone without pg_dump succeeded"
grep -q 'dropped the slot "failing" it had created' "$T/clone5.out" || fail "the failed clone: $(cat "$T/clone5.out")"
[ "$(psql_on primary -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'failing'")" = 0 ] ||
	fail "the failed clone left its slot"
log "clone ok"
