# t_truth.sh — is the RPO bound true? An independent probe (truth_probe.py:
# its own writer on the primary, reader on the DR side, sampler of
# /v1/status) checks at every sample that no committed row missing on the
# DR side is older than the reported rpo_bound_ms, through: steady load; the
# walsender stopped 5 s; the source stopped 5 s; the DR table locked 5 s; a
# large transaction alongside; the primary killed with kill -9; and the
# publication dropped and recreated (on PostgreSQL 15 that wedges the slot
# for good: the bound must keep growing and the verdict name the cause).
# It prints the worst margin and the typical over-estimate per scenario.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

PY=/usr/bin/python3 # the Debian python, with python3-psycopg2
BIG_ROWS=${BIG_ROWS:-1000000}
status() { curl -s "$SINK_URL/v1/status"; }
phase() { log "scenario: $1"; echo "$1" >"$T/phase.new" && mv "$T/phase.new" "$T/phase"; }

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE truth (id bigserial PRIMARY KEY, written_at timestamptz NOT NULL);
	CREATE TABLE big (id int, v text)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup
sink_start
source_start
wait_applied 60

phase steady
bg_start probe "$PY" "$(dirname "$0")/truth_probe.py" "$PRIMARY_CONN" "$DR_CONN" "$SINK_URL/v1/status" "$T/phase" 50
sleep 8

phase walsender_stopped
ws=$(psql_on primary -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'walsender' LIMIT 1")
[ -n "$ws" ] || fail "no walsender"
kill -STOP "$ws"
sleep 5
kill -CONT "$ws"
phase walsender_recovering
sleep 4

phase source_stopped
kill -STOP "$(bg_pid source)"
sleep 5
kill -CONT "$(bg_pid source)"
phase source_recovering
sleep 4

phase dr_locked
# writes wait, reads (the probe's) go on
psql_on dr -c "BEGIN; LOCK TABLE truth IN EXCLUSIVE MODE; SELECT pg_sleep(5); COMMIT" >/dev/null
phase dr_recovering
sleep 4

phase big_transaction
start=$SECONDS
psql_on primary -c "INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, $BIG_ROWS) g" >/dev/null ||
	fail "the large transaction failed"
wait_applied 120
log "$BIG_ROWS rows in one transaction, applied within $((SECONDS - start)) s"
[ "$(psql_on dr -c "SELECT count(*) FROM big")" = "$BIG_ROWS" ] || fail "the large transaction is not all there"
phase big_recovering
sleep 3

phase primary_killed
pid=$(head -1 "$PRIMARY_DATA/postmaster.pid")
kill -9 "$pid"
sleep 3
cluster_ctl primary start >/dev/null 2>&1 || fail "the primary did not come back"
phase primary_recovering
wait_applied 60
sleep 3

phase publication_recreated
psql_on primary -c "DROP PUBLICATION pgferry" >/dev/null
sleep 1 # the probe commits rows meanwhile: the slot now meets a change it cannot decode
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
sleep 3
r1=$(status | "$PY" -c "import json,sys; print(json.load(sys.stdin)['rpo_bound_ms'])")
sleep 4
r2=$(status | "$PY" -c "import json,sys; print(json.load(sys.stdin)['rpo_bound_ms'])")
curl -s "$SINK_URL/v1/promotion-safety?max_rpo=1s" >"$T/verdict.json"

bg_stop probe TERM
log "probe (tolerance 50 ms):"
cat "$T/probe.log"
grep -q "^VIOLATION" "$T/probe.log" && fail "the probe found committed rows older than the RPO bound missing on DR"
grep -q "^publication_recreated" "$T/probe.log" || fail "the probe did not finish"
log "the RPO bound held at every sample"

log "with the slot wedged the RPO bound went $r1 -> $r2 ms in 4 s"
"$PY" -c "import sys; sys.exit(0 if $r2 - $r1 > 3000 else 1)" || fail "the RPO bound did not keep growing with the slot wedged"
grep -q '"verdict":"unsafe"' "$T/verdict.json" || fail "verdict not unsafe with the slot wedged: $(cat "$T/verdict.json")"
grep -q 'publication \\"pgferry\\" does not exist' "$T/verdict.json" || fail "the verdict does not name the cause: $(cat "$T/verdict.json")"
status | grep -q 'publication \\"pgferry\\" does not exist' || fail "/v1/status does not name the cause"
log "the verdict says: $("$PY" -c "import json,sys; print(json.load(sys.stdin)['reasons'][0])" <"$T/verdict.json")"
