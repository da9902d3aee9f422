# bench_catchup.sh — catch-up after an outage: pgferry against PostgreSQL's
# native logical replication, same machine, same run, same backlog.
#
# A backlog of BENCH_TRANSACTIONS pgbench (TPC-B) transactions is built on
# the primary while both replicas are stopped; then each catches up alone,
# timed from start to "DR origin progress >= the primary's LSN at the end of
# the backlog". Every byte between the sides passes a counting proxy.
# pgferry runs with its defaults (mutual TLS, zstd level 1); native runs
# without SSL, which only flatters native.
#
# BENCH_DELAY_MS=40 makes the proxies hold every byte 40 ms each way: an
# 80 ms round trip between the regions, for both paths alike (pgferry's
# source-to-sink link, native's subscriber-to-primary link).
. "$(dirname "$0")/../tests/integration/lib.sh"
. "$(dirname "$0")/../tests/integration/relay.sh"

N=${BENCH_TRANSACTIONS:-100000}
DELAY=${BENCH_DELAY_MS:-0}
CLIENTS=4
. "$(dirname "$0")/common.sh"

# every byte between the sides passes a counting proxy
bench_setup 1 "$DELAY" ${BENCH_SINK_EXTRA:+"sink:$BENCH_SINK_EXTRA"}

# pgferry: first contact creates the slot and the DR state, then stop
sink_start
source_start
DR_CONN="host=$DR_HOST port=$DR_PORT user=postgres dbname=ferry" wait_applied 60
source_stop
sink_stop
# native: a subscription created disabled (its slot exists from now on)
psql "host=$DR_HOST port=$DR_PORT user=postgres dbname=native" -Xqc \
	"CREATE SUBSCRIPTION native CONNECTION 'host=127.0.0.1 port=$NATIVE_PROXY_PORT user=postgres dbname=postgres sslmode=disable' PUBLICATION pgferry WITH (enabled = false, copy_data = false)" \
	>/dev/null || fail "CREATE SUBSCRIPTION"

log "building a backlog of $N transactions ($CLIENTS clients)"
pgbench -n -c $CLIENTS -j 2 -t $((N / CLIENTS)) "$PRIMARY_CONN" >"$T/pgbench.log" 2>&1 || fail "pgbench run"
TARGET=$(psql_on primary -c "SELECT pg_current_wal_lsn()")
WAL_BYTES=$(psql_on primary -c "SELECT pg_wal_lsn_diff('$TARGET', confirmed_flush_lsn) FROM pg_replication_slots WHERE slot_name = 'pgferry'")
ROWS=$((N / CLIENTS * CLIENTS * 4)) # TPC-B: 3 updates and 1 insert a transaction
log "backlog: $N transactions, $ROWS rows, $((WAL_BYTES / 1048576)) MB of WAL up to $TARGET"

reached()
{ # reached DB ORIGIN_EXPR
	[ "$(psql "host=$DR_HOST port=$DR_PORT user=postgres dbname=$1" -XAtc \
		"SELECT coalesce(pg_replication_origin_progress($2, true) >= '$TARGET'::pg_lsn, false)")" = t ]
}

log "pgferry catch-up"
start=$(now_ms)
sink_start
source_start
wait_until "pgferry catch-up" 1800 reached ferry "pgferry.origin()"
FERRY_MS=$(($(now_ms) - start))
source_stop
sink_stop
bg_stop ferry_proxy TERM
FERRY_BYTES=$(grep -Eo 'up=[0-9]+ down=[0-9]+' "$T/ferry_proxy.log" | tail -1 | awk -F'[= ]' '{print $2 + $4}')

log "native catch-up"
start=$(now_ms)
psql "host=$DR_HOST port=$DR_PORT user=postgres dbname=native" -Xqc "ALTER SUBSCRIPTION native ENABLE" >/dev/null
ORIGIN=$(psql "host=$DR_HOST port=$DR_PORT user=postgres dbname=native" -XAtc "SELECT 'pg_' || oid FROM pg_subscription WHERE subname = 'native'")
wait_until "native catch-up" 1800 reached native "'$ORIGIN'"
NATIVE_MS=$(($(now_ms) - start))
psql "host=$DR_HOST port=$DR_PORT user=postgres dbname=native" -Xqc "ALTER SUBSCRIPTION native DISABLE" >/dev/null
sleep 1
bg_stop native_proxy TERM
NATIVE_BYTES=$(grep -Eo 'up=[0-9]+ down=[0-9]+' "$T/native_proxy.log" | tail -1 | awk -F'[= ]' '{print $2 + $4}')

# the two copies must be equal, or the timing means nothing
for t in pgbench_accounts pgbench_branches pgbench_tellers pgbench_history; do
	a=$(psql "host=$DR_HOST port=$DR_PORT user=postgres dbname=ferry" -XAtc "SELECT count(*), sum(abalance) FROM $t" 2>/dev/null ||
		psql "host=$DR_HOST port=$DR_PORT user=postgres dbname=ferry" -XAtc "SELECT count(*) FROM $t")
	b=$(psql "host=$DR_HOST port=$DR_PORT user=postgres dbname=native" -XAtc "SELECT count(*), sum(abalance) FROM $t" 2>/dev/null ||
		psql "host=$DR_HOST port=$DR_PORT user=postgres dbname=native" -XAtc "SELECT count(*) FROM $t")
	[ "$a" = "$b" ] || fail "$t differs between the pgferry and native copies: $a vs $b"
done

awk -v delay="$DELAY" -v n="$N" -v rows="$ROWS" -v fm="$FERRY_MS" -v nm="$NATIVE_MS" -v fb="$FERRY_BYTES" -v nb="$NATIVE_BYTES" 'BEGIN {
	printf "\ncatch-up of %d transactions (%d rows), link round trip %d ms\n", n, rows, 2 * delay
	printf "  %-8s %9s %12s %12s %14s\n", "", "seconds", "txn/s", "rows/s", "wire bytes"
	printf "  %-8s %9.2f %12.0f %12.0f %14d\n", "pgferry", fm / 1000, n / (fm / 1000), rows / (fm / 1000), fb
	printf "  %-8s %9.2f %12.0f %12.0f %14d\n", "native", nm / 1000, n / (nm / 1000), rows / (nm / 1000), nb
	printf "  speed ratio (native time / pgferry time): %.2f\n", nm / fm
	printf "  wire ratio (pgferry bytes / native bytes): %.3f\n", fb / nb
}'
