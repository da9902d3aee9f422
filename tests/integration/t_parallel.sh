# t_parallel.sh — parallel apply (apply_workers = 2). Dependencies: updates
# of one row in consecutive transactions land in order, and a unique value
# moved from row to row across transactions never meets itself; then kill
# -9 of the sink and of the DR server while both workers are inside DR
# transactions and commits wait for their turn. Afterwards the tables equal
# the primary's (log has a key filled by a sequence: a transaction applied
# twice stops apply on a duplicate key; hist has no key: a row applied
# twice or lost shows as a difference), the slot was never confirmed past
# what the DR side holds, and the workers' own origins carried commits.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE kv (id int PRIMARY KEY, v bigint NOT NULL, pad text);
	CREATE TABLE log (id bigserial PRIMARY KEY, k int NOT NULL, client int NOT NULL);
	CREATE TABLE u (id int PRIMARY KEY, email text NOT NULL UNIQUE);
	ALTER TABLE u REPLICA IDENTITY FULL;
	CREATE TABLE hist (k int, client int)"
psql_on primary -c "INSERT INTO kv SELECT g, 0, repeat('x', 50) FROM generate_series(1, 50000) g;
	INSERT INTO u SELECT g, 'e' || g FROM generate_series(1, 100) g;
	CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
psql_on dr -c "INSERT INTO kv SELECT g, 0, repeat('x', 50) FROM generate_series(1, 50000) g;
	INSERT INTO u SELECT g, 'e' || g FROM generate_series(1, 100) g" >/dev/null
# each row of log takes the DR side a millisecond (a trigger that fires on
# a replica too), so that a worker is still inside its DR transaction when
# the other one's is ready to commit
psql_on dr -c "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS
	\$\$ BEGIN PERFORM pg_sleep(0.001); RETURN NEW; END \$\$;
	CREATE TRIGGER slow BEFORE INSERT ON log FOR EACH ROW EXECUTE FUNCTION slow();
	ALTER TABLE log ENABLE ALWAYS TRIGGER slow" >/dev/null

# debug: a worker says when its commit waits for its turn; small groups, so
# that consecutive ones seldom touch the same rows
relay_setup "sink:apply_workers = 2" "sink:log_level = debug" "sink:apply_group_max_transactions = 20" \
	"source:heartbeat_interval = 1s"
sink_start
source_start
wait_applied 60

log "dependencies: one row updated in consecutive transactions, unique values moved between rows"
sink_stop
{
	for i in $(seq 1 300); do
		echo "UPDATE kv SET v = $i WHERE id = 1;"
		echo "UPDATE kv SET v = v + 1 WHERE id = $((i % 50 + 100));"
		# rows a and b swap their emails through a third value, one
		# transaction per step
		a=$((i % 40 + 1)) b=$((i % 40 + 41))
		echo "UPDATE u SET email = 'swap$i' WHERE id = $a;"
		echo "UPDATE u SET email = (SELECT email FROM u WHERE id = $a AND false) WHERE false;"
		echo "UPDATE u SET email = 'e$a.$i' WHERE id = $b;"
		echo "UPDATE u SET email = 'e$b.$i' WHERE id = $a;"
	done
} >"$T/deps.sql"
psql_on primary -f "$T/deps.sql" >/dev/null || fail "dependency workload"
sink_start
wait_applied 120
tables_equal kv u
[ "$(psql_on dr -c "SELECT v FROM kv WHERE id = 1")" = 300 ] || fail "the last update of row 1 did not land last"
# nothing failed on the way: a commit that ran ahead of its turn fails with
# PF005, and a worker applying a row before the transaction it depends on
# with a unique violation or a missing row
if grep -E 'ERROR' "$T/sink.log"; then
	fail "apply failed with nothing but dependent transactions to apply"
fi

cat >"$T/keyed.sql" <<'SQL'
\set id random(1, 50000)
\set id2 random(1, 50000)
BEGIN;
UPDATE kv SET v = v + 1 WHERE id = :id;
UPDATE kv SET v = v + 1 WHERE id = :id2;
INSERT INTO log (k, client) VALUES (:id, :client_id);
END;
SQL
cat >"$T/keyless.sql" <<'SQL'
\set id random(1, 50000)
INSERT INTO hist VALUES (:id, :client_id);
SQL

for round in 1 2 3; do
	sink_stop
	pgbench -n -c 4 -j 2 -t 500 -f "$T/keyed.sql@199" -f "$T/keyless.sql@1" "$PRIMARY_CONN" \
		>/dev/null 2>&1 || fail "pgbench"
	before=$(dr_applied)
	sink_start
	wait_apply_moved "$before"
	if [ "$round" = 2 ]; then
		log "round $round: kill -9 of the DR server while the workers apply"
		cluster_ctl dr kill
		cluster_ctl dr start
	else
		log "round $round: kill -9 of the sink while the workers apply"
		sink_stop KILL
		check_no_loss_invariant
		sink_start
	fi
	check_no_loss_invariant
done

wait_applied 180
check_no_loss_invariant
tables_equal kv log u hist
workers=$(psql_on dr -c "SELECT count(*) FROM pg_replication_origin_status s
	JOIN pg_replication_origin o ON o.roident = s.local_id, pgferry.identity i
	WHERE o.roname LIKE i.origin || '\_w%' AND s.remote_lsn > '0/0'")
grep -Eo 'to worker [0-9]+|alone on the coordinator|behind one it depends on' "$T/sink.log" | sort | uniq -c
[ "$workers" = 2 ] || fail "expected both workers' origins to have committed, found $workers"
# a commit never ran ahead of the one before it (its progress check fails
# with PF005 when it does), not even across the kills
if grep -E 'PF005' "$T/sink.log"; then
	fail "a commit ran ahead of its turn"
fi
waits=$(grep -c 'waits with transaction group' "$T/sink.log" || true)
[ "$waits" -gt 0 ] || fail "no commit ever waited for its turn: nothing ran in parallel"
log "parallel apply ok: $waits commits waited for their turn"
