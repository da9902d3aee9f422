# t_kill_inflight.sh — kill -9 of the sink, and of the DR server, while the
# sink catches up a backlog: it sends a DR group's COMMIT and applies the
# next groups without waiting for the result, so at the kill some groups
# are committed and reported, some committed and not reported, some sent
# and not answered, one open. Afterwards the tables equal the primary's
# (pgbench_history has no key: a row applied twice or lost shows as a
# difference), and the slot was never confirmed past the DR origin.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
pgbench -q -i -I dtp "$DR_CONN" >/dev/null 2>&1 || fail "pgbench schema on DR"
pgbench -q -i -I dtp "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench schema on primary"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
psql_on primary -c "CREATE TABLE pgferry_test_marker (id text PRIMARY KEY)" >/dev/null
psql_on dr -c "CREATE TABLE pgferry_test_marker (id text PRIMARY KEY)" >/dev/null

# debug: the DR group's transitions say how many COMMITs were in flight;
# groups of 100 transactions, so several are in flight at the kill
relay_setup "sink:log_level = debug" "sink:apply_group_max_transactions = 100"
sink_start
source_start
wait_applied 60
pgbench -q -i -I g -s 1 "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench data"
wait_applied 60

for round in 1 2 3; do
	sink_stop
	pgbench -n -c 4 -j 2 -t 1500 "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench"
	before=$(dr_applied)
	sink_start
	# the first groups of the backlog committed: the rest is under way
	wait_apply_moved "$before"
	if [ "$round" = 2 ]; then
		log "round $round: kill -9 of the DR server during catch-up"
		# a backend busy at the crash, as one working through the sink's
		# pipeline is: it notices the postmaster's death only when it next
		# waits, so the crash must take it too, or the restart fails
		psql_on dr -c "SELECT count(*) FROM generate_series(1, 1000000000)" >/dev/null 2>&1 &
		busy=$!
		wait_until "the busy statement running" 30 bash -c \
			"[ \"\$(psql '$DR_CONN' -XAtc \"SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT count(*) FROM generate_series%' AND state = 'active'\")\" = 1 ]"
		cluster_ctl dr kill
		kill "$busy" 2>/dev/null
		cluster_ctl dr start
	else
		log "round $round: kill -9 of the sink during catch-up"
		sink_stop KILL
		check_no_loss_invariant
		sink_start
	fi
	check_no_loss_invariant
done

wait_applied 120
check_no_loss_invariant
# a killed sink's backend commits what it had received until it notices;
# the next sink must not take that for another writer of the origin
if grep -q "refusing to apply" "$T/sink.log"; then
	grep "refusing to apply" "$T/sink.log" | head -2
	fail "a restarted sink refused the origin that its own killed predecessor's backend advanced"
fi
tables_equal pgbench_accounts pgbench_branches pgbench_tellers pgbench_history
most=$(grep -Eo '\([0-9]+ in flight' "$T/sink.log" | grep -Eo '[0-9]+' | sort -n | tail -1)
log "kill in flight ok: up to ${most:-0} COMMITs were in flight at once"
