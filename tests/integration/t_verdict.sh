# t_verdict.sh — one steady answer: on an idle, caught-up system every poll
# says safe (pgferry's own heartbeats are no apply backlog); promote-check
# and the API use the sink's configured limits unless the request names
# others; a duration without a unit is an error in the CLI, the HTTP query
# and the configuration; /healthz tells applying from not applying.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup "sink:max_rpo = 5s" "sink:max_apply_backlog = 0"
sink_start
source_start
wait_applied 60
psql_on primary -c "INSERT INTO t SELECT generate_series(1, 100)" >/dev/null
wait_applied 60

# a DR disk that takes 60 ms a commit: each heartbeat waits that long for
# apply, so a poll often falls between its receipt and its apply
psql_on dr -c "CREATE FUNCTION slow_disk() RETURNS trigger LANGUAGE plpgsql AS \$\$
	BEGIN PERFORM pg_sleep(0.06); RETURN NEW; END \$\$;
	CREATE TRIGGER slow_disk BEFORE INSERT OR UPDATE ON pgferry.progress
	FOR EACH ROW EXECUTE FUNCTION slow_disk();
	ALTER TABLE pgferry.progress ENABLE ALWAYS TRIGGER slow_disk" >/dev/null || fail "slow disk trigger"

log "1. 40 polls on an idle, caught-up system (heartbeats every 100 ms)"
bad=0
for i in $(seq 1 40); do
	c=$(code "$SINK_URL/v1/promotion-safety")
	if [ "$c" != 200 ]; then
		bad=$((bad + 1))
		curl -s "$SINK_URL/v1/promotion-safety" | head -c 600
		echo
	fi
	sleep 0.13
done
log "$((40 - bad)) of 40 polls safe"
[ $bad = 0 ] || fail "$bad of 40 polls on an idle system were not safe"
[ "$(code "$SINK_URL/healthz")" = 200 ] || fail "healthz not 200 while applying"
[ "$(curl -s "$SINK_URL/healthz")" = applying ] || fail "healthz does not say applying"

log "2. promote-check follows the sink's max_rpo (5s) unless told otherwise"
"$PGFERRY_BIN" promote-check --url "$SINK_URL" >"$T/check.out" 2>&1 || fail "promote-check not safe: $(cat "$T/check.out")"
grep -q "limit 5.0 s" "$T/check.out" || fail "promote-check did not use the sink's max_rpo: $(cat "$T/check.out")"
kill -STOP "$(bg_pid source)"
wait_until "the bound passes 5 s" 30 bash -c "curl -s '$SINK_URL/v1/status' | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d[\"rpo_bound_ms\"] > 5500 else 1)'"
"$PGFERRY_BIN" promote-check --url "$SINK_URL" >"$T/check.out" 2>&1
rc=$?
cat "$T/check.out"
[ $rc = 1 ] || fail "promote-check without --max-rpo answered $rc, not 1 (unsafe under the sink's 5 s)"
"$PGFERRY_BIN" promote-check --url "$SINK_URL" --max-rpo 1h >"$T/check.out" 2>&1 || fail "--max-rpo 1h does not override: $(cat "$T/check.out")"
[ "$(code "$SINK_URL/v1/promotion-safety")" = 409 ] || fail "the API without max_rpo does not use the sink's 5 s"
[ "$(code "$SINK_URL/v1/promotion-safety?max_rpo=1h")" = 200 ] || fail "max_rpo=1h does not override"
kill -CONT "$(bg_pid source)"

log "3. a duration without a unit is an error everywhere"
"$PGFERRY_BIN" promote-check --url "$SINK_URL" --max-rpo 5 >"$T/check.out" 2>&1
rc=$?
[ $rc = 2 ] || fail "promote-check --max-rpo 5 answered $rc, not 2"
grep -q "not a duration" "$T/check.out" || fail "promote-check --max-rpo 5: $(cat "$T/check.out")"
[ "$(code "$SINK_URL/v1/promotion-safety?max_rpo=5")" = 400 ] || fail "max_rpo=5 in the query is not a 400"
"$PGFERRY_BIN" promote-check --url "$SINK_URL" -c max_rpo=5 >"$T/check.out" 2>&1 && fail "-c max_rpo=5 accepted"
grep -q "duration parameter \"max_rpo\"" "$T/check.out" || fail "-c max_rpo=5: $(cat "$T/check.out")"
"$PGFERRY_BIN" promote -c "dr_conninfo=$DR_CONN" -c "sink_url=$SINK_URL" --drain-timeout 60 >"$T/promote.out" 2>&1 && fail "promote --drain-timeout 60 accepted"
grep -q "not a duration" "$T/promote.out" || fail "promote --drain-timeout 60: $(cat "$T/promote.out")"
[ "$(psql_on dr -c "SELECT count(*) FROM pgferry.fence")" = 0 ] || fail "a refused promote fenced the DR database"

log "4. /healthz: up but not applying"
wait_applied 60
source_stop
wait_until "healthz says not applying" 20 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$SINK_URL/healthz')\" = 503 ]"
curl -s "$SINK_URL/healthz" | grep -q "not applying: no source is connected" || fail "healthz body: $(curl -s "$SINK_URL/healthz")"
log "verdict ok"
