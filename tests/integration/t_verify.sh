# t_verify.sh — pgferry verify: equal after a workload (also while one runs,
# with the relay applying), and each of a changed row, a missing row and an
# extra row on the DR side is found, with its key; a table missing on the
# DR side is named; an unreachable server is an error (exit 2).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE kinds (id int PRIMARY KEY, t text, n numeric, ts timestamptz, f float8,
                                 b bytea, j jsonb, nul text);
             CREATE TABLE pair (a int, b text, v int, PRIMARY KEY (a, b));
             CREATE TABLE nokey (x int, y text);
             ALTER TABLE nokey REPLICA IDENTITY FULL;
             CREATE TABLE spare (id int PRIMARY KEY)"
pgbench -q -i -I dtp "$DR_CONN" >/dev/null 2>&1 || fail "pgbench schema on DR"
pgbench -q -i -I dtp "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench schema on primary"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES WITH (publish_via_partition_root = true)" >/dev/null
relay_setup
sink_start
source_start
wait_applied 60
psql_on primary -c "
  INSERT INTO kinds SELECT g, 'text ' || g, g / 7.0, '2026-01-01'::timestamptz + g * interval '1 min',
                           g / 3.0, decode(md5(g::text), 'hex'), jsonb_build_object('g', g),
                           CASE WHEN g % 2 = 0 THEN NULL ELSE 'x' END FROM generate_series(1, 3000) g;
  INSERT INTO pair SELECT g % 50, 'k' || (g / 50), g FROM generate_series(1, 2500) g;
  INSERT INTO nokey SELECT g, 'y' || g FROM generate_series(1, 200) g;
  INSERT INTO spare VALUES (1)" >/dev/null
pgbench -q -i -I g -s 1 "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench data"
pgbench -n -c 2 -t 300 "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench run"
wait_applied 120

cat >"$T/verify.conf" <<CONF
primary_conninfo = '$PRIMARY_CONN'
dr_conninfo = '$DR_CONN'
verify_chunk_rows = 1000
CONF
verify() { "$PGFERRY_BIN" verify --config "$T/verify.conf" "$@"; }

verify >"$T/v1.out" 2>&1 || fail "verify after the workload: exit $?: $(cat "$T/v1.out")"
cat "$T/v1.out"
grep -Eq "pgbench_accounts +100000 +100000 +10[01] +equal" "$T/v1.out" || fail "accounts not chunked and equal"

# while pgbench writes (accounts and history) and the relay applies: tables
# it does not touch are equal; the one it writes is equal or, if its chunks
# kept changing at every read, "busy" (exit 2) — never a false "differ"
bg_start load pgbench -n -b simple-update -c 2 -R 300 -T 600 "$PRIMARY_CONN"
sleep 1
verify --table kinds --table pair --table pgbench_branches --table pgbench_tellers >"$T/v2.out" 2>&1 ||
	fail "verify during a workload: exit $?: $(cat "$T/v2.out")"
log "equal while a workload runs: $(grep tables: "$T/v2.out")"
verify -c verify_chunk_rows=10000 --table pgbench_accounts >"$T/v2b.out" 2>&1
rc=$?
[ $rc = 0 ] || [ $rc = 2 ] || fail "verify of a table being written said: exit $rc: $(cat "$T/v2b.out")"
grep -Eq "pgbench_accounts .* (equal|busy)" "$T/v2b.out" || fail "accounts under load: $(cat "$T/v2b.out")"
log "a table under load: $(grep tables: "$T/v2b.out")"
bg_stop load
wait_applied 120

# the DR side drifts while nothing is applied
source_stop
psql_on dr -c "UPDATE kinds SET t = 'tampered' WHERE id = 1234;
               DELETE FROM pair WHERE a = 7 AND b = 'k20';
               INSERT INTO pgbench_accounts VALUES (100001, 1, 0, 'extra');
               UPDATE nokey SET y = 'z' WHERE x = 5;
               DROP TABLE spare" >/dev/null
verify >"$T/v3.out" 2>&1
rc=$?
cat "$T/v3.out"
[ $rc = 1 ] || fail "verify with differences: exit $rc, expected 1"
grep -q "public.kinds .* differ" "$T/v3.out" || fail "changed row not found"
grep -Eq "changed +\(1234\)" "$T/v3.out" || fail "the changed key 1234 is not named"
grep -Eq "missing on DR +\(7,k20\)" "$T/v3.out" || fail "the missing key (7,k20) is not named"
grep -Eq "extra on DR +\(100001\)" "$T/v3.out" || fail "the extra key 100001 is not named"
grep -q "public.nokey .* differ" "$T/v3.out" || fail "keyless table difference not found"
grep -q "public.spare .* missing" "$T/v3.out" || fail "missing table not named"
grep -q "public.pgbench_branches .* equal" "$T/v3.out" || fail "unchanged table not equal"
verify --json >"$T/v3.json" 2>/dev/null
python3 -c "import json,sys; d=json.load(open('$T/v3.json')); s=d['summary']; sys.exit(0 if (s['differ'],s['missing'])==(4,1) else 1)" ||
	fail "JSON summary: $(cat "$T/v3.json")"

# an unreachable DR database is an error, not an answer
"$PGFERRY_BIN" verify -c "primary_conninfo=$PRIMARY_CONN" -c "dr_conninfo=host=127.0.0.1 port=1 connect_timeout=2" >"$T/v4.out" 2>&1
rc=$?
[ $rc = 2 ] || fail "verify against an unreachable DR database: exit $rc"
grep -qi "cannot connect to the DR database" "$T/v4.out" || fail "no clear error: $(cat "$T/v4.out")"
log "verify ok"
