# bench_decode.sh — decoder speed on a capture of a pgbench run.
. "$(dirname "$0")/../tests/integration/lib.sh"
N=${BENCH_DECODE_TRANSACTIONS:-40000}
cluster_start primary
pgbench -q -i -s 2 "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench -i"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
psql_on primary -c "SELECT pg_create_logical_replication_slot('bench', 'pgoutput')" >/dev/null
pgbench -n -c 4 -j 2 -t $((N / 4)) "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench"
"$PGFERRY" capture -d "$PRIMARY_CONN" --slot bench -o "$T/bench.cap" --proto-version 3 --until-idle 2s ||
	fail "capture"
log "capture of $N pgbench transactions: $(du -h "$T/bench.cap" | cut -f1)"
"$ROOT/build/bench/decode_bench" "$T/bench.cap" 5
