# t_sigterm.sh — SIGTERM stops cleanly, also in the middle of a DR
# transaction: the source, stopped while it streams a large transaction,
# confirms to the slot no more than the DR database committed; the sink,
# whose open DR transaction waits on a lock a DBA
# holds on the DR side, stops within seconds (the waiting statement is
# cancelled and its transaction rolled back: nothing of it is on the DR
# side), and says up to where the DR database holds the stream. Both
# started again: every row once.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE h (v int)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup
sink_start
source_start
wait_applied 90
psql_on primary -c "INSERT INTO t SELECT g, 'before' FROM generate_series(1, 100) g;
                    INSERT INTO h SELECT g FROM generate_series(1, 100) g" >/dev/null
wait_applied 90

# the source stopped while it streams a large transaction: its last word to
# the slot is what the DR database committed, no more
psql_on primary -c "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1001, 41000) g" >/dev/null
source_stop
grep -q "shutting down (signal 15)" "$T/source.log" || fail "the source did not stop on SIGTERM"
check_no_loss_invariant
source_start
wait_applied 120
tables_equal t h

# a DBA's lock on the DR table: the sink's next DR transaction waits on it
# (in a transaction block; whether it wrote h first depends on how apply
# orders the held changes, so the test does not ask for an xid)
bg_start locker psql "$DR_CONN application_name=locker" -XAtc "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3600)"
wait_until "the DBA's lock" 30 bash -c \
	"[ \"\$(psql '$DR_CONN' -XAtc \"SELECT count(*) FROM pg_locks WHERE relation = 't'::regclass AND mode = 'AccessExclusiveLock' AND granted\")\" = 1 ]"
psql_on primary -c "INSERT INTO h SELECT g FROM generate_series(101, 200) g;
                    INSERT INTO t SELECT g, 'during' FROM generate_series(101, 600) g" >/dev/null
wait_until "the sink's DR transaction waiting on the lock" 60 bash -c \
	"[ \"\$(psql '$DR_CONN' -XAtc \"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgferry sink' AND wait_event_type = 'Lock' AND xact_start IS NOT NULL\")\" = 1 ]"
[ "$(psql_on dr -c "SELECT count(*) FROM h")" = 100 ] || fail "rows of the waiting transaction are visible"

# SIGTERM while it waits: the sink stops without the lock being released
kill -TERM "$(bg_pid sink)"
wait_until "the sink stopped" 30 bash -c "! kill -0 $(bg_pid sink) 2>/dev/null"
wait "$(bg_pid sink)" 2>/dev/null
grep -q "stopped: the DR database holds every transaction up to [0-9A-F]*/[0-9A-F]*" "$T/sink.log" ||
	fail "the sink did not say where it stopped: $(tail -5 "$T/sink.log")"
[ "$(psql_on dr -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgferry sink' AND state <> 'idle'")" = 0 ] ||
	fail "the sink's DR transaction outlived it"
# the DBA lets go (the backend too: a sleeping one would hold the lock on)
psql_on dr -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'locker'" >/dev/null
bg_stop locker
[ "$(psql_on dr -c "SELECT count(*) FROM h")" = 100 ] || fail "the stopped sink's DR transaction committed in part"
check_no_loss_invariant

# the source, which the sink's stop left retrying, stops too
source_stop
check_no_loss_invariant

# started again: everything once
sink_start
source_start
wait_applied 120
tables_equal t h
check_no_loss_invariant
log "sigterm ok"
