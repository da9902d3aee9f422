# t_rpo_guard.sh — the RPO guard holds the primary to a 2 s budget. The
# DBA's own synchronous standby (pg_receivewal --synchronous, named
# dba_standby, in postgresql.conf) must survive every step:
#   1. a DR lock stall pushes the bound over the budget: the guard engages,
#      a writer on the primary is seen waiting (SyncRep) and nothing more
#      commits there while the DR side holds still;
#   2. the stall ends: the guard releases, the DBA's value comes back as it was;
#   3. the source stops cleanly with the guard on: released;
#   4. kill -9 of the source with the guard on: its watchdog releases;
#   5. the sink killed with the guard on: released after rpo_guard_max_wait;
# and the DR copy equals the primary at the end.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

DBA='FIRST 1 (dba_standby)'
cluster_start primary "synchronous_standby_names = '$DBA'"
mkdir -p "$T/wal"
bg_start receivewal "$PG_BINDIR/pg_receivewal" -d "$PRIMARY_CONN application_name=dba_standby" \
	-D "$T/wal" --synchronous --no-loop
wait_until "the DBA's standby streaming" 60 bash -c \
	"[ \"\$(psql '$PRIMARY_CONN' -XAtc \"SELECT count(*) FROM pg_stat_replication WHERE application_name = 'dba_standby' AND state = 'streaming'\")\" = 1 ]"
cluster_start dr
schema_both "CREATE TABLE t (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())"
# the source runs as the role of sql/primary_setup.sql, no superuser
psql_on primary -f "$ROOT/sql/primary_setup.sql" >/dev/null || fail "sql/primary_setup.sql failed"
relay_setup "source:rpo_guard = on" "source:rpo_guard_budget = 2s" "source:rpo_guard_max_wait = 10min"
sed -i "s|^primary_conninfo = .*|primary_conninfo = 'host=$PRIMARY_HOST port=$PRIMARY_PORT user=pgferry_source dbname=postgres'|" "$T/source.conf"
sink_start

# without the grants, the source refuses to start and names them
"$PGFERRY_BIN" source --config "$T/source.conf" >"$T/refused.log" 2>&1 && fail "the source started without the rights the guard needs"
cat "$T/refused.log"
grep -q 'may not change synchronous_standby_names' "$T/refused.log" || fail "no reason for the refusal"
grep -q 'GRANT ALTER SYSTEM ON PARAMETER synchronous_standby_names TO pgferry_source' "$T/refused.log" || fail "the refusal does not name the GRANT"
psql_on primary -v rpo_guard=on -f "$ROOT/sql/primary_setup.sql" >/dev/null || fail "sql/primary_setup.sql -v rpo_guard=on failed"

source_start
wait_applied 60

ssn() { psql_on primary -c "SHOW synchronous_standby_names"; }
dba_kept()
{ # the DBA's value, exactly, once the guard is released
	local v
	v=$(ssn)
	[ "$v" = "$DBA" ] || fail "synchronous_standby_names is '$v', not the DBA's '$DBA' ($1)"
}
dba_listed()
{ # while engaged: the DBA's standby still listed, next to the source
	local v
	v=$(ssn)
	[ "$v" = 'FIRST 2 ("pgferry", dba_standby)' ] || fail "synchronous_standby_names is '$v' while engaged ($1)"
}
engaged_count() { grep -c 'RPO guard engaged' "$T/source.log"; }
released_count() { grep -c 'RPO guard released' "$T/source.log"; }
rows() { psql_on primary -c "SELECT count(*) FROM t"; }
status() { curl -s "$SINK_URL/v1/status" >"$T/status.json"; }
lock_dr()
{
	bg_start locker psql "$DR_CONN" -Xqc "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3600)"
	wait_until "the DR table locked" 30 bash -c \
		"[ \"\$(psql '$DR_CONN' -XAtc \"SELECT count(*) FROM pg_locks WHERE relation = 't'::regclass AND mode = 'AccessExclusiveLock' AND granted\")\" = 1 ]"
}
unlock_dr()
{
	psql_on dr -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3600)%' AND pid <> pg_backend_pid()" >/dev/null
	bg_stop locker
}
writer_waits()
{
	[ "$(psql_on primary -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND query LIKE 'INSERT INTO t%'")" -ge 1 ]
}
rows_grow()
{ # the writer commits again
	local before
	before=$(rows)
	wait_until "the writer commits again (from $before rows)" 60 bash -c "[ \"\$(psql '$PRIMARY_CONN' -XAtc 'SELECT count(*) FROM t')\" -gt $before ]"
}

dba_kept "before anything"
wait_until "the guard in /v1/status" 30 bash -c "curl -s $SINK_URL/v1/status | grep -q '\"rpo_guard\":{\"state\":\"released\"'"

bg_start writer bash -c "while :; do psql '$PRIMARY_CONN' -XAtqc 'INSERT INTO t DEFAULT VALUES' || sleep 0.2; done"
rows_grow

log "1. a DR lock stall"
lock_dr
wait_until "the guard engaged" 60 grep -q 'RPO guard engaged' "$T/source.log"
grep 'RPO guard engaged' "$T/source.log"
dba_listed "engaged"
wait_until "a writer waiting for the DR side (SyncRep)" 60 writer_waits
psql_on primary -c "SELECT pid, wait_event_type, wait_event, state, query FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
wait_until "the guard engaged in /v1/status" 30 bash -c "curl -s $SINK_URL/v1/status | grep -q '\"rpo_guard\":{\"state\":\"engaged\"'"
status
grep -o '"rpo_bound_ms":[^,]*' "$T/status.json"
grep -o '"known_loss":{[^}]*}' "$T/status.json"
grep -o '"rpo_guard":{[^}]*}' "$T/status.json"
curl -s "$SINK_URL/metrics" >"$T/metrics.txt"
grep '^pgferry_rpo_guard' "$T/metrics.txt"
[ "$(metric_in "$T/metrics.txt" pgferry_rpo_guard_engaged)" = 1 ] || fail "pgferry_rpo_guard_engaged is not 1"
[ "$(metric_in "$T/metrics.txt" pgferry_rpo_guard_engagements_total)" = 1 ] || fail "pgferry_rpo_guard_engagements_total is not 1"
# what is at risk stops growing: the primary commits nothing more for
# clients, and the DR side's known loss holds still
r1=$(rows)
k1=$(grep -o '"known_loss":{"transactions":[0-9]*' "$T/status.json")
sleep 3
status
r2=$(rows)
k2=$(grep -o '"known_loss":{"transactions":[0-9]*' "$T/status.json")
log "rows on the primary $r1 -> $r2, DR $k1 -> $k2 over 3 s"
[ "$r1" = "$r2" ] || fail "the primary committed more while the guard held ($r1 -> $r2)"
[ "$k1" = "$k2" ] || fail "the known loss grew while the guard held ($k1 -> $k2)"
writer_waits || fail "the writer no longer waits"

log "2. the stall ends"
unlock_dr
wait_until "the guard released" 60 bash -c "[ \$(grep -c 'RPO guard released' '$T/source.log') -ge 1 ]"
grep 'RPO guard released' "$T/source.log"
grep -q 'RPO guard released.*back under half of rpo_guard_budget' "$T/source.log" || fail "released for another reason"
dba_kept "released after the stall"
rows_grow
wait_until "released in /v1/status" 30 bash -c "curl -s $SINK_URL/v1/status | grep -q '\"rpo_guard\":{\"state\":\"released\"'"
# both are events, kept in the DR database
wait_until "the engage and release events in pgferry.events" 60 bash -c \
	"[ \"\$(psql '$DR_CONN' -XAtc \"SELECT count(DISTINCT kind) FROM pgferry.events WHERE kind IN ('rpo_guard_engaged', 'rpo_guard_released')\")\" = 2 ]"
psql_on dr -c "SELECT kind, severity, message, detail FROM pgferry.events WHERE kind LIKE 'rpo_guard%' ORDER BY id" || fail "cannot read pgferry.events"
curl -s "$SINK_URL/v1/events" | grep -q '"kind":"rpo_guard_engaged"' || fail "no rpo_guard_engaged in /v1/events"

# (the source restarts only with the DR side unlocked: a sink whose apply
# waits on a lock cannot welcome a new session until it is released)
log "3. a clean stop with the guard on"
lock_dr
wait_until "the guard engaged again" 60 bash -c "[ \$(grep -c 'RPO guard engaged' '$T/source.log') -ge 2 ]"
dba_listed "engaged again"
wait_until "a writer waiting" 60 writer_waits
source_stop
grep 'RPO guard released.*the source stops' "$T/source.log" || fail "a clean stop did not release"
dba_kept "after a clean stop"
rows_grow
unlock_dr
source_start
wait_applied 120

log "4. kill -9 of the source with the guard on"
lock_dr
wait_until "the guard engaged by the new source" 60 bash -c "[ \$(grep -c 'RPO guard engaged' '$T/source.log') -ge 3 ]"
dba_listed "engaged by the new source"
wait_until "a writer waiting" 60 writer_waits
source_stop KILL
wait_until "the watchdog released" 60 grep -q 'RPO guard watchdog: the source ended with the guard engaged' "$T/source.log"
grep 'RPO guard watchdog' "$T/source.log"
dba_kept "after kill -9 of the source"
rows_grow
unlock_dr
source_start -c rpo_guard_max_wait=10s
wait_applied 120

log "5. the sink killed with the guard on (rpo_guard_max_wait = 10s)"
lock_dr
wait_until "the guard engaged by the third source" 60 bash -c "[ \$(grep -c 'RPO guard engaged' '$T/source.log') -ge 4 ]"
dba_listed "engaged by the third source"
wait_until "a writer waiting" 60 writer_waits
sink_stop KILL
killed=$SECONDS
unlock_dr
wait_until "released after rpo_guard_max_wait" 90 grep -q 'RPO guard released.*the DR side confirmed nothing for' "$T/source.log"
grep 'RPO guard released.*the DR side confirmed nothing' "$T/source.log"
log "released $((SECONDS - killed)) s after the sink was killed"
dba_kept "after rpo_guard_max_wait"
rows_grow

log "the DR side catches up"
sink_start
bg_stop writer
wait_applied 120
tables_equal t
dba_kept "at the end"
log "rpo_guard ok"
