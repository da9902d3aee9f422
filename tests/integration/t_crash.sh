# t_crash.sh — under continuous load: kill -9 of the sink, kill -9 of the
# source, fast restarts of the primary and of the DR server, several times
# each. Afterwards the DR tables equal the primary's (no loss, no duplicate:
# pgbench_history has no key, so a duplicate shows as a difference), and at
# every sample the slot's confirmed_flush_lsn is at or behind the DR
# origin's progress (guarantee 1).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary "logical_decoding_work_mem = 64kB"
cluster_start dr
schema_both "CREATE TABLE bulk (id int PRIMARY KEY, v text)"
pgbench -q -i -I dtp "$DR_CONN" >/dev/null 2>&1 || fail "pgbench schema on DR"
pgbench -q -i -I dtp "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench schema on primary"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null

relay_setup
sink_start
source_start
wait_applied 60
pgbench -q -i -I g -s 1 "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench data"

# load that survives primary restarts: pgbench runs again after each failure
cat >"$T/load.sh" <<LOAD
while [ ! -e "$T/stop-load" ]; do
	pgbench -n -c 2 -j 1 -T 5 -R 300 "$PRIMARY_CONN" >/dev/null 2>&1
	psql "$PRIMARY_CONN" -Xqc "INSERT INTO bulk SELECT g, md5(g::text) FROM generate_series(
		(SELECT coalesce(max(id), 0) + 1 FROM bulk), (SELECT coalesce(max(id), 0) + 3000 FROM bulk)) g" \
		>/dev/null 2>&1
	sleep 0.2
done
LOAD
bg_start load bash "$T/load.sh"

settle() { sleep "${1:-2}"; check_no_loss_invariant; }

for round in 1 2 3; do
	log "round $round: kill -9 the sink during apply"
	settle 2
	sink_stop KILL
	check_no_loss_invariant
	sink_start
	settle 3

	log "round $round: kill -9 the source mid-batch"
	source_stop KILL
	check_no_loss_invariant
	source_start
	settle 3
done
for round in 1 2; do
	log "round $round: fast restart of the primary"
	cluster_ctl primary restart fast
	settle 4
	log "round $round: fast restart of the DR server"
	cluster_ctl dr restart fast
	settle 4
	log "round $round: crash (kill -9) of the DR server's postmaster"
	cluster_ctl dr kill
	cluster_ctl dr start
	settle 4
done

log "the source killed under load and left down: what the sink received is all applied"
bg_start burst pgbench -n -c 4 -j 2 -T 4 "$PRIMARY_CONN" # unthrottled: batches end mid-transaction
sleep 2
source_stop KILL
wait_until "the burst to end" 30 bash -c "! kill -0 $(bg_pid burst) 2>/dev/null"
# a batch cut inside a transaction used to hold the whole DR group back
# (complete transactions included) until the source came back
wait_until "the received backlog applied without the source" 30 bash -c \
	"curl -s '$SINK_URL/v1/status' | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d[\"apply_backlog\"][\"transactions\"] == 0 else 1)'"
check_no_loss_invariant
source_start

# let the load loop end by itself: killing it would leave its pgbench running
touch "$T/stop-load"
wait_until "the load to stop" 60 bash -c "! kill -0 $(bg_pid load) 2>/dev/null"
wait_applied 240
check_no_loss_invariant
tables_equal pgbench_accounts pgbench_branches pgbench_tellers pgbench_history bulk
rows=$(psql_on dr -c "SELECT count(*) FROM pgbench_history")
[ "$rows" -gt 100 ] || fail "too little load reached the DR side ($rows history rows)"
log "crash test ok: $rows history rows"
