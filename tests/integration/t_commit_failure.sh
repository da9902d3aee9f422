# t_commit_failure.sh — the sink sends a DR group's COMMIT and applies the
# next groups without waiting for its result. When that COMMIT fails (here a
# deferred trigger on the DR side refuses it, a second late), none of the
# groups sent after it may commit: each starts by checking that the origin
# stands where the group before it left it. Apply stops at the failing
# transaction, nothing after it is applied, and once the cause is gone every
# transaction is applied, none skipped.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY, v int); CREATE TABLE u (id int PRIMARY KEY)"
# on the DR side only: the COMMIT of a transaction that wrote v < 0 fails,
# after a second (the groups after it are sent meanwhile)
psql_on dr -c "CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
    IF NEW.v < 0 THEN
        PERFORM pg_sleep(1);
        RAISE EXCEPTION 'refused at commit (v = %)', NEW.v;
    END IF;
    RETURN NULL;
END \$\$;
CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION refuse_at_commit();
ALTER TABLE t ENABLE ALWAYS TRIGGER refuse" >/dev/null || fail "trigger on DR"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
psql_on primary -c "CREATE PROCEDURE fill(n int) LANGUAGE plpgsql AS \$\$
BEGIN
    FOR i IN 1..n LOOP
        INSERT INTO u VALUES (i);
        COMMIT;
    END LOOP;
END \$\$" >/dev/null
relay_setup "sink:apply_group_max_transactions = 100"
sink_start
source_start
wait_applied 60

# a backlog: the transaction the DR side refuses, then 600 more (several
# groups of the 100 transactions set above)
sink_stop
psql_on primary -c "INSERT INTO t VALUES (2, -1)" >/dev/null
psql_on primary -c "CALL fill(600)" >/dev/null
sink_start
# the first attempt fails, then the source sends it again: by then the
# first attempt's groups in flight have all been answered (had one of them
# committed, the resend would start past the refused transaction, and the
# DR side would hold rows of u)
u_rows() { psql_on dr -c "SELECT count(*) FROM u"; }
wait_until "the COMMIT refused twice (or rows after it applied)" 90 \
	bash -c "[ \$(grep -c 'refused at commit' '$T/sink.log') -ge 2 ] || [ \"\$(psql '$DR_CONN' -XAtc 'SELECT count(*) FROM u')\" != 0 ]"
n=$(psql_on dr -c "SELECT count(*) FROM t WHERE id = 2") || fail "cannot read t"
[ "$n" = 0 ] || fail "the refused transaction is on the DR side"
n=$(u_rows) || fail "cannot read u"
[ "$n" = 0 ] || fail "$n rows of transactions after the failing one were committed (a group in flight committed past the failed COMMIT)"
grep -m1 "ERROR: .*refused at commit" "$T/sink.log"
grep -m1 "ERROR: .*refused at commit" "$T/sink.log" | grep -q "commit failed" ||
	fail "the error does not say that the COMMIT failed"
curl -s "$SINK_URL/v1/status" | grep -q "refused at commit" || fail "no apply error in /v1/status"

psql_on dr -c "ALTER TABLE t DISABLE TRIGGER refuse" >/dev/null
wait_applied 60
tables_equal t u
log "commit failure ok"
