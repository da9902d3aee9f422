# t_sequences.sh — sequences are part of the copy. With the role the README
# once recommended (GRANT SELECT ON ALL TABLES, nothing on sequences),
# pg_sequences shows NULL for every sequence, so none was ever shipped and a
# promoted copy handed out numbers the primary had used. Now clone and
# source refuse to start with the sequence, the missing privilege and the
# GRANT that fixes it, and leave no slot; with the grant, the sequence
# reaches the DR side, and verify compares sequences (a DR value behind the
# primary's is reported, exit 1).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
psql_on primary -c "
  CREATE TABLE pgferry_test_marker (id text PRIMARY KEY);
  CREATE TABLE orders (id bigserial PRIMARY KEY, v text);
  CREATE TABLE items (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
  INSERT INTO orders (v) SELECT 'o' || g FROM generate_series(1, 100) g;
  INSERT INTO items (v) SELECT 'i' || g FROM generate_series(1, 10) g;
  CREATE SEQUENCE unrelated;
  CREATE PUBLICATION pgferry FOR ALL TABLES;
  CREATE ROLE pgferry_source WITH LOGIN REPLICATION;
  GRANT SELECT ON ALL TABLES IN SCHEMA public TO pgferry_source" >/dev/null || fail "primary setup"
SOURCE_CONN="${PRIMARY_CONN/user=postgres/user=pgferry_source}"
slots() { psql_on primary -c "SELECT count(*) FROM pg_replication_slots"; }

# 1. clone refuses, before any slot
"$PGFERRY_BIN" clone -c "primary_conninfo=$SOURCE_CONN" -c "dr_conninfo=$DR_CONN" >"$T/clone1.out" 2>&1
rc=$?
cat "$T/clone1.out"
[ $rc = 2 ] || fail "clone with an unreadable sequence: exit $rc"
grep -q 'cannot read the sequence public.items_id_seq of the published table public.items' "$T/clone1.out" ||
	fail "clone does not name the sequence"
grep -q 'GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO pgferry_source' "$T/clone1.out" || fail "clone gives no GRANT"
[ "$(slots)" = 0 ] || fail "clone left a slot"

# 2. the source refuses to start, before any slot
relay_setup
"$PGFERRY_BIN" source --config "$T/source.conf" -c "primary_conninfo=$SOURCE_CONN" >"$T/source1.out" 2>&1
rc=$?
[ $rc = 2 ] || fail "source with an unreadable sequence: exit $rc: $(cat "$T/source1.out")"
grep -q 'cannot read the sequence public.items_id_seq' "$T/source1.out" || fail "source does not name the sequence: $(cat "$T/source1.out")"
[ "$(slots)" = 0 ] || fail "the source left a slot"

# 3. with the grant: clone, stream, the sequences reach the DR side
psql_on primary -c "GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO pgferry_source" >/dev/null
"$PGFERRY_BIN" clone -c "primary_conninfo=$SOURCE_CONN" -c "dr_conninfo=$DR_CONN" >"$T/clone2.out" 2>&1 ||
	fail "clone with the grant: $(cat "$T/clone2.out")"
sed -i "s|^primary_conninfo = .*|primary_conninfo = '$SOURCE_CONN'|" "$T/source.conf"
sink_start
source_start
psql_on primary -c "INSERT INTO orders (v) SELECT 'streamed' FROM generate_series(1, 50)" >/dev/null
wait_applied 60
tables_equal orders items
wait_until "orders_id_seq shipped" 30 bash -c \
	"[ \"\$(psql '$DR_CONN' -XAtc 'SELECT last_value FROM orders_id_seq')\" -ge 150 ]"
cat >"$T/verify.conf" <<CONF
primary_conninfo = '$SOURCE_CONN'
dr_conninfo = '$DR_CONN'
verify_retries = 2
CONF
"$PGFERRY_BIN" verify --config "$T/verify.conf" >"$T/v1.out" 2>&1 || fail "verify: exit $?: $(cat "$T/v1.out")"
cat "$T/v1.out"
grep -Eq "public.orders_id_seq +150 +1[0-9]{2} +equal" "$T/v1.out" || fail "verify does not show the sequence equal"
grep -q "2 sequences: 2 equal" "$T/v1.out" || fail "verify does not count the sequences"

# 4. a DR sequence behind the primary's (the source stopped after the
# primary handed out numbers): verify says so, exit 1
source_stop
psql_on primary -c "SELECT setval('orders_id_seq', 22724)" >/dev/null
"$PGFERRY_BIN" verify --config "$T/verify.conf" >"$T/v2.out" 2>&1
rc=$?
cat "$T/v2.out"
[ $rc = 1 ] || fail "verify with a sequence behind: exit $rc"
grep -Eq "public.orders_id_seq +22724 +1[0-9]{2} +behind" "$T/v2.out" || fail "verify does not show the sequence behind"
source_start
wait_until "the sequence shipped again" 30 bash -c \
	"[ \"\$(psql '$DR_CONN' -XAtc 'SELECT last_value FROM orders_id_seq')\" -ge 22724 ]"
"$PGFERRY_BIN" verify --config "$T/verify.conf" >"$T/v3.out" 2>&1 || fail "verify after the sync: $(cat "$T/v3.out")"
log "sequences ok"
