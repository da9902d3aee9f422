# t_ship_at_once.sh — the source ships a whole transaction at once when
# nothing more is coming, however long batch_max_delay is, and lets a
# backlog fill its batches (relay/source/ship_rule.c). Checked by what the
# source counts (pgferry_source_batches_at_once_total), not by a clock:
# with batch_max_delay = 10s a row arrives either way, the count says why.
# Last, a trickle of small transactions with read_round_delay = 1s: read
# in rounds, several travel in one batch, and every row arrives once.
# Throughout, the kernel's scheduling policy of every thread of the source
# (/proc, field 41 of stat): SCHED_BATCH (3) by default, the normal one
# (0) with batch_scheduling = off.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY, v text)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
SOURCE_HTTP_PORT=$(free_port) || fail "no free port"
# no heartbeat transactions: the only commits are the test's
relay_setup "source:source_http_listen = '127.0.0.1:$SOURCE_HTTP_PORT'" \
	"source:batch_max_delay = 10s" "source:heartbeat_interval = 0"
sink_start
source_start
wait_applied 60

# the policies of the source's threads, each once, sorted
source_policies()
{
	local f
	for f in /proc/"$(bg_pid source)"/task/*/stat; do
		sed 's/.*) //' "$f" | awk '{ print $39 }'
	done | sort -u | tr '\n' ' '
}
p=$(source_policies)
[ "$p" = "3 " ] || fail "the source's threads run under scheduling policies '$p', not SCHED_BATCH (3) alone"

source_metric()
{
	curl -sf "http://127.0.0.1:$SOURCE_HTTP_PORT/metrics" >"$T/source-metrics.txt" &&
		metric_in "$T/source-metrics.txt" "$1"
}
counted() { [ "$(source_metric pgferry_source_batches_at_once_total)" -gt "$before" ]; }
visible() { [ "$(psql_on dr -c "SELECT count(*) FROM t WHERE id = $1")" = 1 ]; }

log "one small transaction, nothing after it"
# the source publishes its counters once a second: the marker's batch first
before=0
wait_until "the marker's batch counted as shipped at once" 30 counted
before=$(source_metric pgferry_source_batches_at_once_total)
psql_on primary -c "INSERT INTO t VALUES (1, 'alone')" >/dev/null
wait_until "the row on the DR side" 60 visible 1
wait_until "its batch counted as shipped at once (pgferry_source_batches_at_once_total above $before)" 30 counted

log "a backlog of 300 transactions fills one batch"
source_stop
psql_on primary >/dev/null <<'SQL' || fail "backlog"
SELECT format('INSERT INTO t VALUES (%s, ''backlog'')', g) FROM generate_series(2, 301) g
\gexec
SQL
source_start
wait_until "the backlog on the DR side" 60 visible 301
# a fresh process counts from zero; the walsender sends the backlog in
# pieces as it decodes it, and only the last commit is at the head
shipped() { [ "$(source_metric pgferry_source_batches_total)" -ge 1 ]; }
wait_until "the source's counters published" 30 shipped
n=$(source_metric pgferry_source_batches_at_once_total)
[ "$n" -le 1 ] || fail "$n batches of the backlog were shipped at once (at most the last one may)"

log "a trickle of 20 transactions is read in rounds (read_round_delay = 1s)"
source_stop
echo "read_round_delay = 1000ms" >>"$T/source.conf"
echo "batch_scheduling = off" >>"$T/source.conf"
source_start
psql_on primary -c "INSERT INTO t VALUES (302, 'marker')" >/dev/null
wait_until "the marker on the DR side" 60 visible 302
p=$(source_policies)
[ "$p" = "0 " ] || fail "with batch_scheduling = off the source's threads run under policies '$p', not the normal one (0)"
wait_until "the source's counters published" 30 shipped
sleep 1.5 # the counters are published once a second: these are final
before=$(source_metric pgferry_source_batches_total)
# one session, 20 transactions 20 ms apart: each its own batch if read as
# it comes (the source takes far less than 20 ms for one)
seq 1001 1020 | sed "s/.*/INSERT INTO t VALUES (&, 'trickle'); SELECT pg_sleep(0.02);/" |
	psql_on primary >/dev/null || fail "the trickle"
wait_until "the trickle on the DR side" 60 visible 1020
sleep 1.5
n=$(($(source_metric pgferry_source_batches_total) - before))
log "20 transactions in $n batches"
[ "$n" -ge 1 ] && [ "$n" -le 10 ] || fail "20 transactions in $n batches: not read in rounds"
[ "$(psql_on dr -c "SELECT count(*) FROM t WHERE id BETWEEN 1001 AND 1020")" = 20 ] ||
	fail "the trickle is incomplete on the DR side"
tables_equal t
