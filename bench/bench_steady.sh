# bench_steady.sh — does the DR copy keep up with the primary under peak
# load across a long link? pgferry against PostgreSQL's native logical
# replication, same machine, same run, same workload.
#
# For each in turn (never both at once, so neither steals the other's CPU),
# pgbench (TPC-B) runs flat out for BENCH_SECONDS while the replica streams
# live through a proxy that holds every byte BENCH_DELAY_MS each way (40: an
# 80 ms round trip). Once a second the bench measures, from outside, how
# far the DR origin's progress is behind the primary's current WAL (bytes);
# when the load stops it times how long the replica needs to reach the
# primary's final LSN (the tail a failover would wait for or lose).
# pgferry runs with its defaults (mutual TLS, zstd level 1); native runs
# without SSL, which only flatters native.
. "$(dirname "$0")/../tests/integration/lib.sh"
. "$(dirname "$0")/../tests/integration/relay.sh"

SECS=${BENCH_SECONDS:-30}
DELAY=${BENCH_DELAY_MS:-40}
CLIENTS=${BENCH_CLIENTS:-8}
. "$(dirname "$0")/common.sh"

bench_setup 10 "$DELAY"


marker_seen() { [ "$(dr "$1" "SELECT count(*) FROM pgferry_test_marker WHERE id = '$2'")" = 1 ]; }

# copy_equal DB: right after a tail the copy must match the primary, or the
# figures mean nothing
copy_equal()
{
	local t p c
	for t in accounts:abalance branches:bbalance tellers:tbalance history:delta; do
		p=$(psql_on primary -c "SELECT count(*), sum(${t#*:}) FROM pgbench_${t%:*}")
		c=$(dr "$1" "SELECT count(*), sum(${t#*:}) FROM pgbench_${t%:*}")
		[ -n "$p" ] && [ "$p" = "$c" ] || fail "pgbench_${t%:*}: the $1 copy differs from the primary: $c vs $p"
	done
}

# run NAME DB ORIGIN_EXPR: load, sample, then time the tail; sets TPS,
# BEHIND_AVG, BEHIND_MAX (bytes) and TAIL_MS
run()
{
	local name=$1 db=$2 origin=$3 samples=0 sum=0 max=0 b r start
	RPO_MAX=0
	pgbench -n -c "$CLIENTS" -j 2 -T "$SECS" "$PRIMARY_CONN" >"$T/pgbench_$name.log" 2>&1 &
	local bench=$!
	while kill -0 $bench 2>/dev/null; do
		sleep 1
		b=$(dr "$db" "SELECT pg_wal_lsn_diff('$(psql_on primary -c "SELECT pg_current_wal_lsn()")', coalesce(pg_replication_origin_progress($origin, true), '0/0'))")
		b=${b%.*}
		samples=$((samples + 1))
		sum=$((sum + b))
		[ "$b" -gt "$max" ] && max=$b
		if [ "$name" = pgferry ]; then
			r=$(curl -s "$SINK_URL/v1/status" | grep -Eo '"rpo_bound_ms":[0-9.]+' | cut -d: -f2)
			r=${r%.*}
			[ -n "$r" ] && [ "$r" -gt "$RPO_MAX" ] && RPO_MAX=$r
		fi
	done
	wait $bench || fail "pgbench ($name)"
	# the tail: a row committed right after the load, until the DR side has it
	start=$(now_ms)
	psql_on primary -c "INSERT INTO pgferry_test_marker VALUES ('end-$name')" >/dev/null
	wait_until "$name tail" 600 marker_seen "$db" "end-$name"
	TAIL_MS=$(($(now_ms) - start))
	TPS=$(grep -Eo 'tps = [0-9.]+' "$T/pgbench_$name.log" | head -1 | awk '{print $3}')
	BEHIND_AVG=$((sum / (samples > 0 ? samples : 1)))
	BEHIND_MAX=$max
	log "$name: primary at $TPS tps; behind by $BEHIND_AVG bytes on average, $BEHIND_MAX at most; tail ${TAIL_MS} ms"
}

# native's subscription exists (disabled) from the start, so it misses nothing
dr native "CREATE SUBSCRIPTION native CONNECTION 'host=127.0.0.1 port=$NATIVE_PROXY_PORT user=postgres dbname=postgres sslmode=disable' PUBLICATION pgferry WITH (enabled = false, copy_data = false)" >/dev/null ||
	fail "CREATE SUBSCRIPTION"

log "pgferry: streaming live through a $((2 * DELAY)) ms round trip"
sink_start
source_start
DR_CONN="host=$DR_HOST port=$DR_PORT user=postgres dbname=ferry" wait_applied 60
run pgferry ferry "pgferry.origin()"
copy_equal ferry
F_RPO=$RPO_MAX F_TPS=$TPS F_AVG=$BEHIND_AVG F_MAX=$BEHIND_MAX F_TAIL=$TAIL_MS
source_stop
sink_stop

log "native: streaming live through the same round trip"
dr native "ALTER SUBSCRIPTION native ENABLE" >/dev/null
ORIGIN=$(dr native "SELECT 'pg_' || oid FROM pg_subscription WHERE subname = 'native'")
# streaming from now on: wait until the subscription has applied a row
psql_on primary -c "INSERT INTO pgferry_test_marker VALUES ('start-native')" >/dev/null
wait_until "native subscription streaming" 120 marker_seen native start-native
run native native "'$ORIGIN'"
copy_equal native
dr native "ALTER SUBSCRIPTION native DISABLE" >/dev/null

awk -v delay="$DELAY" -v secs="$SECS" -v clients="$CLIENTS" \
	-v ft="$F_TPS" -v fa="$F_AVG" -v fm="$F_MAX" -v fl="$F_TAIL" \
	-v rpo="$F_RPO" -v nt="$TPS" -v na="$BEHIND_AVG" -v nm="$BEHIND_MAX" -v nl="$TAIL_MS" 'BEGIN {
	printf "\npeak load (%d pgbench clients, %d s) replicated live across a %d ms round trip\n", clients, secs, 2 * delay
	printf "  %-8s %12s %16s %16s %10s\n", "", "primary tps", "behind avg (B)", "behind max (B)", "tail (ms)"
	printf "  %-8s %12.0f %16d %16d %10d\n", "pgferry", ft, fa, fm, fl
	printf "  %-8s %12.0f %16d %16d %10d\n", "native", nt, na, nm, nl
	printf "  tail ratio (native tail / pgferry tail): %.2f\n", (fl > 0 ? nl / fl : 0)
	printf "  pgferry reported an RPO bound of at most %d ms during the run\n", rpo
}'
