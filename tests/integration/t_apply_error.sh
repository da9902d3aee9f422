# t_apply_error.sh — an apply error (a row the DR side already has) stops
# apply at that transaction — never skipped — with a log line naming LSN,
# relation and statement; once the DBA removes the conflict, apply resumes
# by itself and the tables end equal.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY, v text)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup
sink_start
source_start
wait_applied 60

psql_on dr -c "INSERT INTO t VALUES (2, 'conflict made on the DR side')" >/dev/null
psql_on primary -c "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')" >/dev/null
psql_on primary -c "INSERT INTO t VALUES (4, 'after')" >/dev/null
wait_until "apply error logged" 30 grep -q "duplicate key" "$T/sink.log"
grep -m1 -A3 "duplicate key" "$T/sink.log"
grep "duplicate key" "$T/sink.log" | head -1 | grep -q "public.t" || fail "the error does not name the relation"
grep "duplicate key" "$T/sink.log" | head -1 | grep -Eq "[0-9A-F]+/[0-9A-F]+" || fail "the error does not name the LSN"
sleep 2
# nothing of the failing transaction, nor anything after it, was applied
[ "$(psql_on dr -c "SELECT count(*) FROM t WHERE id IN (1, 3, 4)")" = 0 ] || fail "apply went past an error"

psql_on dr -c "DELETE FROM t WHERE id = 2" >/dev/null
wait_applied 60
tables_equal t
log "apply error ok"
