# t_partition.sh — a link that goes silent without a reset (a partitioned
# network, a frozen host): each side notices within its timeout from the
# other's silence, says so, and the stream resumes by itself once the peer
# is back, with nothing lost or doubled. SIGSTOP stands in for the silence:
# the kernel still holds the connection, so neither side sees an error.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY, v int)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup "source:sink_timeout = 1s" "sink:source_timeout = 1s" "source:reconnect_max_delay = 300ms" \
	"sink:reconnect_max_delay = 300ms"
sink_start
source_start
wait_applied 60

# a steady writer for the whole test
bg_start writer bash -c "i=0; while :; do i=\$((i + 1)); psql '$PRIMARY_CONN' -XAqc \"INSERT INTO t VALUES (\$i, \$i)\" || exit 1; sleep 0.02; done"

# 1. the sink freezes: the source gives up on it within sink_timeout
wait_until "rows flowing" 30 bash -c "[ \"\$(psql '$DR_CONN' -XAtc 'SELECT count(*) FROM t')\" -gt 20 ]"
kill -STOP "$(bg_pid sink)"
wait_until "the source noticed the silent sink" 30 grep -q "nothing heard from the sink" "$T/source.log"
grep "nothing heard from the sink" "$T/source.log" | head -1
check_no_loss_invariant
kill -CONT "$(bg_pid sink)"
before=$(psql_on dr -c "SELECT count(*) FROM t")
wait_until "stream resumed after the sink came back" 60 bash -c "[ \"\$(psql '$DR_CONN' -XAtc 'SELECT count(*) FROM t')\" -gt $((before + 20)) ]"

# 2. the source freezes: the sink drops it within source_timeout, and takes
# it back once it thaws
kill -STOP "$(bg_pid source)"
wait_until "the sink noticed the silent source" 30 grep -q "nothing heard from the source" "$T/sink.log"
grep "nothing heard from the source" "$T/sink.log" | head -1
kill -CONT "$(bg_pid source)"
before=$(psql_on dr -c "SELECT count(*) FROM t")
wait_until "stream resumed after the source came back" 60 bash -c "[ \"\$(psql '$DR_CONN' -XAtc 'SELECT count(*) FROM t')\" -gt $((before + 20)) ]"

bg_stop writer
wait_applied 60
tables_equal t
check_no_loss_invariant
n=$(psql_on primary -c "SELECT count(*) FROM t")
log "partition ok ($n rows, none lost or doubled)"
