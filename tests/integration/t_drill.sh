# t_drill.sh — pgferry drill under load, next to a running relay: the copy
# is promoted (fenced, sequences moved, a promotion record) and checked by
# a smoke script; the relay keeps applying, the real DR database is
# neither fenced nor changed beyond the report, and equals the primary at
# the end; a failing smoke script fails the drill with its error; the
# report (pgferry.drills, --report, --report --json) holds the figures.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id bigserial PRIMARY KEY, v text NOT NULL)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup
sink_start
source_start
wait_applied 60

bg_start writer bash -c "while :; do psql '$PRIMARY_CONN' -XAtqc \"INSERT INTO t (v) SELECT 'x' || g FROM generate_series(1, 20) g\" || sleep 0.2; done"
wait_until "a few hundred rows on the DR side" 60 bash -c "[ \"\$(psql '$DR_CONN' -XAtc 'SELECT count(*) FROM t')\" -gt 300 ]"

cat >"$T/smoke.sql" <<'SQL'
-- the promoted copy holds rows and takes writes; its sequence is past the primary's
DO $$ BEGIN IF (SELECT count(*) FROM t) = 0 THEN RAISE EXCEPTION 'no rows in t'; END IF; END $$;
INSERT INTO t (v) VALUES ('written on the promoted copy');
SQL
drill() { "$PGFERRY_BIN" drill --config "$T/sink.conf" -c "sink_url=$SINK_URL" "$@"; }

log "a drill under load"
before=$(psql_on dr -c "SELECT count(*) FROM t")
drill --script "$T/smoke.sql" >"$T/drill1.out" 2>&1 || { cat "$T/drill1.out"; fail "the drill failed"; }
cat "$T/drill1.out"
for step in snapshot copy promote smoke drop RTO; do
	grep -q "^  $step " "$T/drill1.out" || fail "no time for $step"
done
grep -q 'smoke.sql: ok' "$T/drill1.out" || fail "the smoke result is not shown"
grep -q 'pgferry drill: passed' "$T/drill1.out" || fail "not passed"
# the relay kept running and applying
bg_alive sink || fail "the sink stopped"
bg_alive source || fail "the source stopped"
wait_until "apply going on after the drill" 60 bash -c "[ \"\$(psql '$DR_CONN' -XAtc 'SELECT count(*) FROM t')\" -gt $before ]"
# the copy is gone; the real DR database is not fenced
[ "$(psql_on dr -c "SELECT count(*) FROM pg_database WHERE datname LIKE '%_drill_%'")" = 0 ] || fail "the copy was not dropped"
[ "$(psql_on dr -c "SELECT count(*) FROM pgferry.fence")" = 0 ] || fail "the real DR database was fenced"
[ "$(psql_on dr -c "SELECT count(*) FROM pgferry.promotion")" = 0 ] || fail "the real DR database has a promotion record"

wait_until "the last drill in /v1/status" 60 bash -c "curl -s $SINK_URL/v1/status | grep -q '\"last_drill\":{\"started_at\":\"[0-9T:.Z-]*\",\"result\":\"passed\",\"rto_ms\":[0-9]'"
curl -s "$SINK_URL/v1/status" | grep -o '"last_drill":{[^}]*}'
curl -s "$SINK_URL/" >"$T/page.html"
grep -o '<tr><th>last drill</th><td>[^<]*' "$T/page.html" || fail "the status page does not show the last drill"
grep -q '<tr><th>last drill</th><td>[0-9T:.Z-]* passed, RTO ' "$T/page.html" || fail "the status page does not show the drill as passed"

log "the report holds the figures"
psql_on dr -c "SELECT ok, copy_name, source_lsn, source_commit_time, rpo_bound_ms, known_loss_transactions, sink_reachable, steps, rto_ms, smoke_result FROM pgferry.drills"
row=$(psql_on dr -c "SELECT ok AND source_lsn > '0/0' AND source_commit_time IS NOT NULL AND rpo_bound_ms IS NOT NULL AND known_loss_transactions IS NOT NULL AND sink_reachable AND jsonb_array_length(steps) = 5 AND rto_ms > 0 AND smoke_result = 'ok' FROM pgferry.drills")
[ "$row" = t ] || fail "the report lacks figures: $row"
[ "$(psql_on dr -c "SELECT count(*) FROM pgferry.events WHERE kind = 'drill_passed'")" = 1 ] || fail "no drill_passed event"
drill --report >"$T/report.txt" || fail "--report failed"
cat "$T/report.txt"
grep -q 'passed  copy at' "$T/report.txt" || fail "--report does not show the drill"
drill --report --json >"$T/report.json" || fail "--report --json failed"
python3 - "$T/report.json" <<'PY' || fail "--report --json lacks figures"
import json, sys
d = json.load(open(sys.argv[1]))[0]
for k in ("started_at", "source_lsn", "source_commit_time", "rpo_bound_ms", "known_loss_transactions", "steps", "rto_ms", "smoke_result"):
    assert d.get(k) is not None, k
assert [s["step"] for s in d["steps"]] == ["snapshot", "copy", "promote", "smoke", "drop"], d["steps"]
PY

log "--keep: the promoted copy stays, fenced, with its promotion record"
drill --keep >"$T/drill2.out" 2>&1 || { cat "$T/drill2.out"; fail "the drill with --keep failed"; }
cat "$T/drill2.out"
copy=$(psql_on dr -c "SELECT datname FROM pg_database WHERE datname LIKE '%_drill_%'")
[ -n "$copy" ] || fail "--keep dropped the copy"
cconn="host=$DR_HOST port=$DR_PORT user=postgres dbname=$copy"
[ "$(psql "$cconn" -XAtc "SELECT count(*) FROM pgferry.fence")" = 1 ] || fail "the copy is not fenced"
psql "$cconn" -XAtc "SELECT applied_lsn, last_applied_commit_time, sequences_moved FROM pgferry.promotion"
# the copy's point is the progress row copied with its data
[ "$(psql "$cconn" -XAtc "SELECT p.applied_lsn = g.source_lsn FROM pgferry.promotion p, pgferry.progress g")" = t ] || fail "the copy's promotion point is not its progress"
psql_on dr -c "DROP DATABASE \"$copy\"" >/dev/null

log "a failing smoke script fails the drill with the error"
echo "SELECT * FROM no_such_table;" >"$T/bad.sql"
rc=0
drill --script "$T/bad.sql" >"$T/drill3.out" 2>&1 || rc=$?
cat "$T/drill3.out"
[ $rc = 1 ] || fail "a failing smoke script exited $rc, not 1"
grep -q 'relation "no_such_table" does not exist' "$T/drill3.out" || fail "the error is not shown"
[ "$(psql_on dr -c "SELECT count(*) FROM pgferry.drills WHERE NOT ok AND smoke_result LIKE '%no_such_table%'")" = 1 ] || fail "the failed drill is not recorded"
[ "$(psql_on dr -c "SELECT count(*) FROM pg_database WHERE datname LIKE '%_drill_%'")" = 0 ] || fail "the failed drill's copy was not dropped"

log "the DR copy equals the primary"
bg_stop writer
wait_applied 120
tables_equal t
[ "$(psql_on dr -c "SELECT count(*) FROM pgferry.fence")" = 0 ] || fail "the real DR database was fenced"
log "drill ok"
