# t_missing_row.sh — a change that finds no row on the DR side (update,
# delete, key change; by key, by a whole row of a REPLICA IDENTITY FULL table;
# coalesced, in order, streamed; a row inserted and deleted again whose key
# the DR side holds) stops apply before anything of its DR
# transaction commits: the error shows in the log, status, metrics and the
# verdict; the in-memory position, the origin and pgferry.progress stay equal
# and before the transaction. Once the DBA repairs the row, apply goes on by
# itself with no duplicate and no gap (a table without a key shows both).
# With duplicate rows in a FULL table, exactly one of the identical rows goes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary "logical_decoding_work_mem = 64kB"
cluster_start dr
schema_both "CREATE TABLE acct (id int PRIMARY KEY, v text);
CREATE TABLE ordered (id int PRIMARY KEY, v text, u int UNIQUE);
CREATE TABLE full_t (a int, b text); ALTER TABLE full_t REPLICA IDENTITY FULL;
CREATE TABLE journal (n int, note text);
CREATE TABLE idt (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup "sink:reconnect_max_delay = 300ms"
sink_start
source_start
wait_applied 60
psql_on primary -c "INSERT INTO acct SELECT g, 'v' || g FROM generate_series(1, 20) g;
INSERT INTO ordered SELECT g, 'v' || g, g FROM generate_series(1, 20) g;
INSERT INTO full_t VALUES (1, 'x'), (1, 'x'), (1, 'x'), (2, 'y'), (3, NULL);
INSERT INTO idt (v) VALUES ('a'), ('b')" >/dev/null
wait_applied 60
TABLES="acct ordered full_t journal idt"
tables_equal $TABLES

status() { curl -s "$SINK_URL/v1/status"; }
dr_positions()
{ # the origin and pgferry.progress, which every DR commit moves together
	psql_on dr -c "SELECT pgferry.applied_lsn(true) || ' ' || (SELECT source_lsn FROM pgferry.progress)"
}
positions_agree()
{ # (one read may fall between a commit and the origin's move: read again)
	local o p
	read -r o p <<<"$(dr_positions)"
	[ "$o" = "$p" ]
}
ROUND=0
# missing_row NAME BREAK_ON_DR CHANGE_ON_PRIMARY REPAIR_ON_DR [ERROR_TEXT]
missing_row()
{
	local name=$1 break_sql=$2 change_sql=$3 repair_sql=$4 before after pos wal o p
	local expect=${5:-not found on the DR database}
	ROUND=$((ROUND + 1))
	log "case $ROUND: $name"
	wait_applied 60
	before=$(psql_on dr -c "SELECT count(*) FROM journal")
	psql_on dr -c "$break_sql" >/dev/null
	# a journal row in the same source transaction, one in the next
	psql_on primary -c "BEGIN; INSERT INTO journal VALUES ($ROUND, 'with $name'); $change_sql; COMMIT" >/dev/null
	psql_on primary -c "INSERT INTO journal VALUES ($ROUND, 'after $name')" >/dev/null
	wait_until "apply error for $name" 60 bash -c "curl -s '$SINK_URL/v1/status' | grep -q '$expect'"
	curl -s "$SINK_URL/metrics" >"$T/metrics.txt"
	[ "$(metric_in "$T/metrics.txt" pgferry_apply_error)" = 1 ] || fail "no apply error metric"
	curl -s "$SINK_URL/v1/promotion-safety?max_rpo=1h" >"$T/verdict.json"
	grep -q '"verdict":"unsafe"' "$T/verdict.json" || fail "verdict with a missing row: $(cat "$T/verdict.json")"
	# let apply retry a few times: nothing of the transaction may commit
	# (transactions before it may, in the retries' own groups)
	sleep 2
	after=$(psql_on dr -c "SELECT count(*) FROM journal")
	[ "$after" = "$before" ] || fail "$name: the DR transaction committed past the missing row (journal $before -> $after rows)"
	wait_until "$name: origin and pgferry.progress agree" 30 positions_agree
	read -r o p <<<"$(dr_positions)"
	# status names the failing transaction ("ending at X/Y", its commit LSN)
	wal=$(curl -s "$SINK_URL/v1/status" | grep -o 'ending at [0-9A-F]*/[0-9A-F]*' | head -1)
	wal=${wal#ending at }
	[ -n "$wal" ] || fail "$name: status does not name the failing transaction"
	[ "$(psql_on dr -c "SELECT '$o'::pg_lsn <= '$wal'::pg_lsn")" = t ] ||
		fail "$name: DR position $o is past the failing transaction (commit at $wal)"
	grep -q "$expect" "$T/sink.log" || fail "no log line"
	psql_on dr -c "$repair_sql" >/dev/null
	wait_applied 60
	wait_until "apply error cleared" 30 bash -c "curl -s '$SINK_URL/v1/status' | grep -q '\"apply\":null'"
	tables_equal $TABLES
	wait_until "$name: origin and pgferry.progress agree after repair" 30 positions_agree
}

# coalesced (acct: only the net change per row is written)
missing_row "update by key" "DELETE FROM acct WHERE id = 2" \
	"UPDATE acct SET v = 'changed' WHERE id = 2" "INSERT INTO acct VALUES (2, 'v2')"
missing_row "delete by key" "DELETE FROM acct WHERE id = 3" \
	"DELETE FROM acct WHERE id = 3" "INSERT INTO acct VALUES (3, 'v3')"
missing_row "key change" "DELETE FROM acct WHERE id = 4" \
	"UPDATE acct SET id = 1004 WHERE id = 4" "INSERT INTO acct VALUES (4, 'v4')"
missing_row "insert and delete of a key the DR side holds" "INSERT INTO acct VALUES (50, 'DR only')" \
	"INSERT INTO acct VALUES (50, 'p'); DELETE FROM acct WHERE id = 50" "DELETE FROM acct WHERE id = 50" \
	"already exists on the DR database"
# in order (ordered: a unique index off the key keeps every change)
missing_row "update in order" "DELETE FROM ordered WHERE id = 5" \
	"UPDATE ordered SET v = 'w' WHERE id = 5" "INSERT INTO ordered VALUES (5, 'v5', 5)"
missing_row "delete in order" "DELETE FROM ordered WHERE id = 6" \
	"DELETE FROM ordered WHERE id = 6" "INSERT INTO ordered VALUES (6, 'v6', 6)"
# whole rows (FULL, no key)
missing_row "update of a whole row" "DELETE FROM full_t WHERE a = 2" \
	"UPDATE full_t SET b = 'z' WHERE a = 2" "INSERT INTO full_t VALUES (2, 'y')"
missing_row "delete of a whole row with a NULL" "DELETE FROM full_t WHERE a = 3" \
	"DELETE FROM full_t WHERE a = 3" "INSERT INTO full_t VALUES (3, NULL)"
# streamed: the primary streams it (logical_decoding_work_mem), the sink spills it
missing_row "update in a streamed transaction" "DELETE FROM acct WHERE id = 7" \
	"INSERT INTO journal SELECT g, repeat('s', 100) FROM generate_series(1, 3000) g; UPDATE acct SET v = 'big' WHERE id = 7" \
	"INSERT INTO acct VALUES (7, 'v7')"

log "a GENERATED ALWAYS identity key changed on the primary stops apply until the DR column takes values"
before=$(psql_on dr -c "SELECT count(*) FROM journal")
psql_on primary -c "BEGIN; INSERT INTO journal VALUES (99, 'with identity'); UPDATE idt SET id = DEFAULT WHERE v = 'a'; COMMIT" >/dev/null
wait_until "apply error for the identity change" 60 bash -c "curl -s '$SINK_URL/v1/status' | grep -q 'GENERATED ALWAYS identity column'"
sleep 1
[ "$(psql_on dr -c "SELECT count(*) FROM journal")" = "$before" ] || fail "committed past the identity change"
psql_on dr -c "ALTER TABLE idt ALTER COLUMN id SET GENERATED BY DEFAULT" >/dev/null
wait_applied 60
tables_equal $TABLES

log "duplicates: exactly one of three identical rows goes, then one is updated"
psql_on primary -c "DELETE FROM full_t WHERE ctid = (SELECT ctid FROM full_t WHERE a = 1 LIMIT 1)" >/dev/null
wait_applied 60
[ "$(psql_on dr -c "SELECT count(*) FROM full_t WHERE a = 1")" = 2 ] || fail "not exactly one duplicate deleted"
psql_on primary -c "UPDATE full_t SET b = 'one' WHERE ctid = (SELECT ctid FROM full_t WHERE a = 1 LIMIT 1)" >/dev/null
wait_applied 60
[ "$(psql_on dr -c "SELECT count(*) FROM full_t WHERE a = 1 AND b = 'x'")" = 1 ] || fail "not exactly one duplicate updated"
tables_equal $TABLES
check_no_loss_invariant
# with the source stopped the sink commits what it holds durably: then its
# position, the origin and pgferry.progress are one
source_stop
all_agree()
{
	local o p s
	read -r o p <<<"$(dr_positions)"
	s=$(curl -s "$SINK_URL/v1/status" | grep -o '"applied_lsn":"[0-9A-F/]*"' | cut -d'"' -f4)
	[ "$o" = "$p" ] && [ "$s" = "$o" ]
}
wait_until "the sink's position, the origin and pgferry.progress agree" 30 all_agree
log "missing row ok"
