# t_drift.sh — schema drift: a change for a table that does not match the DR
# side (missing column, missing table, extra column, other type) stops apply
# without guessing, shows in status, metrics and the promotion verdict, and
# apply goes on by itself once the DBA fixed the DR schema. Nothing is lost.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE acct (id int PRIMARY KEY, v text)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup "sink:reconnect_max_delay = 300ms"
sink_start
source_start
wait_applied 60
psql_on primary -c "INSERT INTO acct SELECT g, 'v' FROM generate_series(1, 100) g" >/dev/null
wait_applied 60

status() { curl -s "$SINK_URL/v1/status"; }
expect_drift()
{ # expect_drift WORDS: status, metrics and verdict all say so
	wait_until "schema drift reported ($1)" 60 bash -c "curl -s '$SINK_URL/v1/status' | grep -q '\"schema_drift\":{'"
	status | grep -q "$1" || fail "status does not name the drift ($1): $(status)"
	curl -s "$SINK_URL/metrics" >"$T/metrics.txt"
	[ "$(metric_in "$T/metrics.txt" pgferry_schema_drift)" = 1 ] ||
		fail "no drift metric: $(grep -E 'drift|apply_errors' "$T/metrics.txt"); status now: $(status)"
	curl -s "$SINK_URL/v1/promotion-safety?max_rpo=1h" >"$T/verdict.json"
	grep -q '"verdict":"unsafe"' "$T/verdict.json" || fail "verdict with drift: $(cat "$T/verdict.json")"
	grep -q "schema drift" "$T/verdict.json" || fail "verdict does not give drift as reason"
}
no_drift()
{
	wait_until "drift cleared" 60 bash -c "curl -s '$SINK_URL/v1/status' | grep -q '\"schema_drift\":null'"
}

# 1. a column added on the primary only
psql_on primary -c "ALTER TABLE acct ADD COLUMN note text" >/dev/null
psql_on primary -c "INSERT INTO acct VALUES (101, 'v', 'with note')" >/dev/null
expect_drift 'column \\"note\\" is missing on the DR database'
[ "$(psql_on dr -c "SELECT count(*) FROM acct WHERE id = 101")" = 0 ] || fail "applied despite drift"
psql_on dr -c "ALTER TABLE acct ADD COLUMN note text" >/dev/null
wait_applied 60
no_drift
tables_equal acct

# 2. a table created on the primary only
psql_on primary -c "CREATE TABLE fresh (id int PRIMARY KEY, amount numeric)" >/dev/null
psql_on primary -c "INSERT INTO fresh VALUES (1, 10.5)" >/dev/null
expect_drift 'does not exist on the DR database'
psql_on dr -c "CREATE TABLE fresh (id int PRIMARY KEY, amount numeric)" >/dev/null
wait_applied 60
no_drift
tables_equal fresh

# 3. another type on the DR side (changed while no source is connected: the
# sink compares at each Relation message, which a new session sends)
source_stop
psql_on dr -c "ALTER TABLE fresh ALTER amount TYPE text" >/dev/null
psql_on primary -c "INSERT INTO fresh VALUES (2, 1.25)" >/dev/null
source_start
expect_drift 'column \\"amount\\" is text on the DR database but numeric on the primary'
psql_on dr -c "ALTER TABLE fresh ALTER amount TYPE numeric USING amount::numeric" >/dev/null
wait_applied 60
no_drift

# 4. an extra column on the DR side
source_stop
psql_on dr -c "ALTER TABLE acct ADD COLUMN dr_only int" >/dev/null
source_start
psql_on primary -c "UPDATE acct SET v = 'w' WHERE id = 5" >/dev/null
expect_drift 'column \\"dr_only\\" exists on the DR database but not on the primary'
psql_on dr -c "ALTER TABLE acct DROP COLUMN dr_only" >/dev/null
wait_applied 60
no_drift
tables_equal acct fresh
check_no_loss_invariant
log "drift ok"
