# bench_steady.sh — under a steady load across a long, thin link, how long
# after its commit on the primary is a row visible on the DR side? pgferry
# against PostgreSQL's native logical replication, same machine, same run,
# same workload.
#
# For each system in turn (never two at once, so neither steals the other's
# CPU; the order rotates from run to run): it first catches up what it
# missed while the other ran, then pgbench (TPC-B, prepared statements:
# the primary reaches 3,000 transactions/s here only so) runs at BENCH_RATE
# transactions/s for BENCH_SECONDS while the replica streams live through a
# proxy emulating an 80 ms round trip capped at 50 Mbit/s. Meanwhile an
# independent probe (latency_probe.py: its own connections) commits a
# timestamped row on the primary every 10 ms and polls the DR side over a
# persistent connection; it reports commit-to-visible percentiles. The one
# way delay of the link (40 ms) is the floor. Beside them: the CPU seconds
# each system's processes spent over the run (replica side: pgferry's
# source, sink and DR sessions, or the apply worker; and the walsender). pgferry runs with its defaults
# (mutual TLS); native without SSL.
#
# Before each system's run, VACUUM ANALYZE on the primary and on that
# system's DR database: at 3,000 transactions/s autovacuum analyzes
# pgbench_accounts about every 33 s and vacuums it about every 67 s, and
# whichever system's run it fell into took a stall the others did not
# (a run of 30 s now starts below both thresholds). BENCH_MAINTENANCE=1
# instead gives every run the same maintenance: ANALYZE pgbench_accounts on
# the primary halfway through.
#
#   BENCH_SCALE (10), BENCH_RATE (3000), BENCH_SECONDS (30), BENCH_RUNS (3),
#   BENCH_CLIENTS (8), BENCH_PGBENCH_FLAGS ("-M prepared"),
#   BENCH_SOURCE_EXTRA (one more line of the source's configuration, e.g.
#   "batch_max_delay = 1ms"), BENCH_SAMPLES=PREFIX (each
#   probe row's stamp and latency in PREFIX.SYSTEM.RUN, to see when the tail
#   happened and whether both systems stalled alike)
. "$(dirname "$0")/../tests/integration/lib.sh"
. "$(dirname "$0")/../tests/integration/relay.sh"

SCALE=${BENCH_SCALE:-10}
RATE=${BENCH_RATE:-3000}
SECS=${BENCH_SECONDS:-30}
RUNS=${BENCH_RUNS:-3}
CLIENTS=${BENCH_CLIENTS:-8}
PGBENCH_FLAGS=${BENCH_PGBENCH_FLAGS--M prepared}
BENCH_PGLOGICAL=0
PY=/usr/bin/python3 # the Debian python, with python3-psycopg2
. "$(dirname "$0")/common.sh"

BENCH_TABLES_SQL="CREATE TABLE bench_probe (id int PRIMARY KEY, stamp float8)" bench_setup "$SCALE" \
	${BENCH_SOURCE_EXTRA:+"source:$BENCH_SOURCE_EXTRA"}
[ "$(psql_on primary -c "SELECT count(*) FROM pg_publication_tables WHERE tablename = 'bench_probe'")" = 1 ] ||
	fail "bench_probe is not published"
link_set wan

# a marker committed on the primary now is visible on SYSTEM's copy (the
# origin's progress moves only with applied transactions, so the primary's
# WAL position is no target)
MARK=0
caught_up()
{
	MARK=$((MARK + 1))
	psql_on primary -c "INSERT INTO pgferry_test_marker VALUES ('steady-$MARK')" >/dev/null
	wait_until "$1 caught up $2" 1800 bash -c \
		"[ \"\$(psql 'host=$DR_HOST port=$DR_PORT user=postgres dbname=$(db_of "$1")' -XAtc \"SELECT count(*) FROM pgferry_test_marker WHERE id = 'steady-$MARK'\")\" = 1 ]"
}

RESULTS=$T/results # run system tps p50 p90 p99 max
: >"$RESULTS"
for RUN in $(seq "$RUNS"); do
	order=$SYSTEMS
	[ $((RUN % 2)) = 0 ] && order=$(echo "$SYSTEMS" | awk '{ for (i = NF; i > 0; i--) printf "%s ", $i }')
	for s in $order; do
		db=$(db_of "$s")
		proxy_start "$s"
		replica_enable "$s"
		# no autovacuum of the big table inside the run (see above)
		psql_on primary -c "VACUUM ANALYZE" >/dev/null || fail "VACUUM ANALYZE on the primary"
		dr "$db" "VACUUM ANALYZE" >/dev/null || fail "VACUUM ANALYZE on $db"
		caught_up "$s" "before its run"
		first=$(psql_on primary -c "SELECT coalesce(max(id), 0) FROM bench_probe")
		PROBE_SAMPLES=${BENCH_SAMPLES:+$BENCH_SAMPLES.$s.$RUN} bg_start "probe_$s" "$PY" \
			"$(dirname "$0")/latency_probe.py" "$PRIMARY_CONN" \
			"host=$DR_HOST port=$DR_PORT user=postgres dbname=$db" 10 "$first"
		parts=$(replica_parts "$s")
		parts=$(printf '%s\nwalsender %s' "$parts" "$(walsender_pid "$s")")
		cpu0=$(while read -r part pids; do cpu_seconds "$pids" && echo; done <<<"$parts")
		maintenance=
		if [ "${BENCH_MAINTENANCE:-0}" = 1 ]; then
			(sleep "$((SECS / 2))" && psql_on primary -c "ANALYZE pgbench_accounts" >/dev/null) &
			maintenance=$!
		fi
		pgbench -n $PGBENCH_FLAGS -c "$CLIENTS" -j 2 -R "$RATE" -T "$SECS" "$PRIMARY_CONN" >"$T/pgbench_$s.log" 2>&1 ||
			fail "pgbench ($s)"
		[ -z "$maintenance" ] || wait "$maintenance" || fail "ANALYZE during the run ($s)"
		# CPU seconds per part over the run; rcpu: the replica side's sum
		cpu1=$(while read -r part pids; do cpu_seconds "$pids" && echo; done <<<"$parts")
		cpu=$(paste -d ' ' <(echo "$parts" | cut -d ' ' -f 1) <(echo "$cpu0") <(echo "$cpu1") |
			awk '{ printf "%s%s %.2f", (NR > 1 ? ", " : ""), $1, $3 - $2 }')
		rcpu=$(paste -d ' ' <(echo "$parts" | cut -d ' ' -f 1) <(echo "$cpu0") <(echo "$cpu1") |
			awk '$1 != "walsender" { t += $3 - $2 } END { printf "%.2f", t }')
		bg_stop "probe_$s" TERM
		line=$(grep '^probe ' "$T/probe_$s.log" | tail -1)
		[ -n "$line" ] || fail "the probe printed nothing: $(tail -3 "$T/probe_$s.log")"
		tps=$(grep -Eo 'tps = [0-9.]+' "$T/pgbench_$s.log" | head -1 | awk '{print $3}')
		log "run $RUN, $s: primary at $tps tps; $line; CPU s: $cpu"
		caught_up "$s" "after its run"
		replica_disable "$s"
		proxy_stop "$s"
		echo "$RUN $s $tps $(echo "$line" | sed 's/[a-z0-9]*=//g; s/^probe //') $rcpu" >>"$RESULTS"
	done
done
# catch every copy up (each missed the others' runs), then compare
for s in $SYSTEMS; do
	proxy_start "$s"
	replica_enable "$s"
	caught_up "$s" "at the end"
	replica_disable "$s"
	proxy_stop "$s"
done
copies_equal

awk -v rate="$RATE" -v secs="$SECS" -v runs="$RUNS" -v systems="$SYSTEMS" '
function median(a, k,   i, j, t, b) {
	for (i = 1; i <= k; i++) b[i] = a[i]
	for (i = 2; i <= k; i++) for (j = i; j > 1 && b[j - 1] > b[j]; j--) { t = b[j]; b[j] = b[j - 1]; b[j - 1] = t }
	return k % 2 ? b[(k + 1) / 2] : (b[k / 2] + b[k / 2 + 1]) / 2
}
function lo(a, k,   i, m) { m = a[1]; for (i = 2; i <= k; i++) if (a[i] < m) m = a[i]; return m }
function hi(a, k,   i, m) { m = a[1]; for (i = 2; i <= k; i++) if (a[i] > m) m = a[i]; return m }
{ tps[$2, $1] = $3; p50[$2, $1] = $5; p90[$2, $1] = $6; p99[$2, $1] = $7; mx[$2, $1] = $8; unseen[$2, $1] = $9; cpu[$2, $1] = $10 }
END {
	printf "\ncommit-to-visible under %d tx/s for %d s across an 80 ms round trip, 50 Mbit/s, %d runs (ms, median [range])\n", rate, secs, runs
	printf "  %-9s %16s %20s %20s %20s %20s %20s\n", "", "primary tps", "p50", "p90", "p99", "max", "replica CPU s"
	ns = split(systems, sys, " ")
	for (i = 1; i <= ns; i++) {
		s = sys[i]
		for (r = 1; r <= runs; r++) { a[r] = tps[s, r]; b[r] = p50[s, r]; c[r] = p90[s, r]; d[r] = p99[s, r]; e[r] = mx[s, r]; f[r] = cpu[s, r] }
		printf "  %-9s %7.0f [%.0f-%.0f] %7.1f [%.1f-%.1f] %7.1f [%.1f-%.1f] %7.1f [%.1f-%.1f] %7.1f [%.1f-%.1f] %7.1f [%.1f-%.1f]\n", s,
			median(a, runs), lo(a, runs), hi(a, runs), median(b, runs), lo(b, runs), hi(b, runs),
			median(c, runs), lo(c, runs), hi(c, runs), median(d, runs), lo(d, runs), hi(d, runs),
			median(e, runs), lo(e, runs), hi(e, runs), median(f, runs), lo(f, runs), hi(f, runs)
		rows[i] = sprintf("| %s | %.0f | %.1f [%.1f–%.1f] | %.1f [%.1f–%.1f] | %.1f [%.1f–%.1f] |", s, median(a, runs),
			median(b, runs), lo(b, runs), hi(b, runs), median(d, runs), lo(d, runs), hi(d, runs), median(e, runs), lo(e, runs), hi(e, runs))
	}
	print "\nREADME rows: | system | primary tx/s | p50 ms | p99 ms | max ms |"
	for (i = 1; i <= ns; i++) print rows[i]
}' "$RESULTS"
