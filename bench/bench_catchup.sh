# bench_catchup.sh — catch-up after an outage: pgferry against PostgreSQL's
# native logical replication and pglogical (when installed), same machine,
# same run, same backlog; pg_recvlogical draining the backlog to /dev/null
# is the ceiling (the decode limit: the walsender alone).
#
# For each link (loopback; an 80 ms round trip capped at 50 Mbit/s) and
# each of BENCH_RUNS runs: a backlog of BENCH_TRANSACTIONS pgbench (TPC-B)
# transactions is built on the primary while every replica is stopped; then
# each catches up alone, timed from its start to "its DR origin's progress
# >= the primary's LSN at the end of the backlog" (pgferry's start: its
# source's, the sink being up and listening as the DR server is for native). The order rotates from
# run to run, so each system goes first in turn (a shared machine's load
# drifts). After each run every copy must equal the primary. Every byte
# between the sides passes a counting proxy: pgferry's source-to-sink link,
# the subscriber-to-primary link of native and pglogical. pgferry runs with
# its defaults (mutual TLS); native and pglogical without SSL, which only
# flatters them.
#
#   BENCH_SCALE (1), BENCH_TRANSACTIONS (100000), BENCH_RUNS (3),
#   BENCH_LINKS ("loopback wan"), BENCH_SINK_EXTRA and BENCH_SOURCE_EXTRA
#   (one more line of the sink's or the source's configuration;
#   "log_level = debug" in both logs each step of a session's start),
#   BENCH_PROFILE=1: perf profiles of the walsender, the source, the sink
#   and its DR backend during pgferry's catch-up in the first run, with the
#   CPU seconds each used; BENCH_TIMELINE=1 (2: with every sample): in every
#   run, when each stage of pgferry's data path (walsender sent, sink
#   received, DR committed, sink reported durable) passed 25/50/75/100 % of
#   the backlog, what its DR backend and the walsender waited for, and the CPU seconds of the
#   walsender, source, sink and DR backend (stage_timeline.py);
#   BENCH_DEBUG_DIR: the source's and sink's logs of the last pgferry
#   catch-up are copied there; BENCH_BASELINE (common.sh): another pgferry
#   binary raced beside this one
#
# Prints per run and, per link, the median and range of each system's
# seconds, its ratio to native (native seconds / its seconds) and its wire
# bytes, then markdown table rows for the README, then the median CPU
# seconds each system's processes used over a catch-up.
. "$(dirname "$0")/../tests/integration/lib.sh"
. "$(dirname "$0")/../tests/integration/relay.sh"

SCALE=${BENCH_SCALE:-1}
N=${BENCH_TRANSACTIONS:-100000}
RUNS=${BENCH_RUNS:-3}
LINKS=${BENCH_LINKS:-loopback wan}
CLIENTS=4
. "$(dirname "$0")/common.sh"

bench_setup "$SCALE" ${BENCH_SINK_EXTRA:+"sink:$BENCH_SINK_EXTRA"} ${BENCH_SOURCE_EXTRA:+"source:$BENCH_SOURCE_EXTRA"}
psql_on primary -c "SELECT pg_create_logical_replication_slot('decode_limit', 'pgoutput')" >/dev/null ||
	fail "decode_limit slot"
ALL="decode $SYSTEMS"

# The CPU seconds each process of SYSTEM's data path used, read when its
# catch-up ended: every one of them started with it (the walsender, the
# apply worker, pgferry's source, sink and the sink's DR sessions) and
# idles once it is done, so their lifetime is the catch-up's. Sets CPU
# ("part=seconds ...") and appends "link run system part seconds" lines to
# CPUS. On 2 shared cores the seconds of a run swing with the machine's
# load; the CPU a system used swings less, so a change that saves work
# shows there first.
catch_up_cpu()
{
	local part pids line
	CPU="walsender=$(cpu_seconds "$(walsender_pid "$1")")"
	while read -r part pids; do
		CPU="$CPU $part=$(cpu_seconds "$pids")"
	done < <(replica_parts "$1")
	for line in $CPU; do
		echo "$link $RUN $1 ${line%=*} ${line#*=}" >>"$CPUS"
	done
}

# catch_up SYSTEM TARGET: sets SECS and BYTES
catch_up()
{
	local s=$1 target=$2 start
	if [ "$s" = decode ]; then
		start=$(now_ms)
		pg_recvlogical -d "$PRIMARY_CONN" --slot decode_limit --start --endpos "$target" --no-loop \
			-o proto_version=1 -o publication_names=pgferry -F 0 -f /dev/null 2>"$T/recvlogical.log" ||
			fail "pg_recvlogical: $(cat "$T/recvlogical.log")"
		SECS=$(awk -v ms=$(($(now_ms) - start)) 'BEGIN { printf "%.2f", ms / 1000 }')
		BYTES=-
		return
	fi
	proxy_start "$s"
	replica_prepare "$s"
	from=$(psql_on primary -c "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '${SLOT_OF[$s]}'")
	# the end, seen over one connection every 10 ms (wait_progress.py)
	rm -f "$T/wait_progress.log"
	bg_start wait_progress /usr/bin/python3 "$(dirname "$0")/wait_progress.py" \
		"host=$DR_HOST port=$DR_PORT user=postgres dbname=$(db_of "$s")" "$(origin_expr "$s")" "$target" 3600
	until grep -q '^ready' "$T/wait_progress.log" 2>/dev/null; do
		bg_alive wait_progress || fail "wait_progress.py: $(cat "$T/wait_progress.log")"
		sleep 0.02
	done
	start=$(now_ms)
	replica_enable "$s"
	[ "$s" = pgferry ] && [ "${BENCH_TIMELINE:-0}" != 0 ] && timeline_start "$from" "$target"
	[ "$s" = pgferry ] && [ "${BENCH_PROFILE:-0}" = 1 ] && [ "$RUN" = 1 ] && profile_start
	wait "$(bg_pid wait_progress)" || fail "$s catch-up: $(cat "$T/wait_progress.log")"
	SECS=$(awk -v ms=$(($(now_ms) - start)) 'BEGIN { printf "%.2f", ms / 1000 }')
	BG_PIDS[wait_progress]=""
	catch_up_cpu "$s"
	[ "$s" = pgferry ] && [ "${BENCH_PROFILE:-0}" = 1 ] && [ "$RUN" = 1 ] && profile_stop
	[ "$s" = pgferry ] && [ "${BENCH_TIMELINE:-0}" != 0 ] && timeline_stop
	replica_disable "$s"
	if [ -n "${BENCH_DEBUG_DIR:-}" ]; then
		case $s in
		pgferry) cp "$T/source.log" "$T/sink.log" "$BENCH_DEBUG_DIR/" ;;
		baseline) cp "$T/source_base.log" "$T/sink_base.log" "$BENCH_DEBUG_DIR/" ;;
		esac
	fi
	proxy_stop "$s"
	BYTES=$WIRE_BYTES
}

# stage_timeline.py beside pgferry's catch-up: timeline_start FROM TARGET
timeline_start()
{
	rm -f "$T/timeline.log"
	bg_start timeline /usr/bin/python3 "$(dirname "$0")/stage_timeline.py" "$PRIMARY_CONN" pgferry \
		"host=$DR_HOST port=$DR_PORT user=postgres dbname=ferry" "$SINK_URL/metrics" "$1" "$2" \
		"source=$(bg_pid source)" "sink=$(bg_pid sink)"
}

timeline_stop()
{
	local i
	# it ends by itself once the sink reported the end of the backlog
	for i in $(seq 300); do
		grep -q '^stage timeline' "$T/timeline.log" && break
		sleep 0.1
	done
	bg_stop timeline TERM
	sed 's/^/  /' "$T/timeline.log"
}

# perf of the walsender, the source, the sink and the DR backends serving
# the sink: the four processes that share the cores during a catch-up
profile_start()
{
	local pids w
	# the apply session, once it writes (the first sessions may be checks)
	wait_until "the sink's apply session" 60 bash -c \
		"[ -n \"\$(psql 'host=$DR_HOST port=$DR_PORT user=postgres dbname=ferry' -XAtc \"SELECT pid FROM pg_stat_activity WHERE datname = 'ferry' AND application_name = 'pgferry sink' AND backend_xid IS NOT NULL LIMIT 1\")\" ]"
	pids=$(dr ferry "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE datname = 'ferry' AND application_name = 'pgferry sink'")
	PROFILE_PIDS_backend=$pids
	PROFILE_PIDS_sink=$(bg_pid sink)
	PROFILE_PIDS_source=$(bg_pid source)
	PROFILE_PIDS_walsender=$(psql_on primary -c "SELECT active_pid FROM pg_replication_slots WHERE slot_name = '${SLOT_OF[pgferry]}'")
	PROFILE_T0=$(now_ms)
	for w in walsender source sink backend; do
		eval "PROFILE_CPU0_$w=\$(cpu_seconds \"\$PROFILE_PIDS_$w\")"
		eval "bg_start perf_$w perf record -F 499 -g -o \"\$T/perf-$w.data\" -p \"\$PROFILE_PIDS_$w\""
	done
}

profile_stop()
{
	local w pids cpu0
	for w in walsender source sink backend; do
		eval "pids=\$PROFILE_PIDS_$w cpu0=\$PROFILE_CPU0_$w"
		awk -v w=$w -v wall=$(($(now_ms) - PROFILE_T0)) -v c0="$cpu0" -v c1="$(cpu_seconds "$pids")" \
			'BEGIN { printf "CPU during pgferry'"'"'s catch-up: %s %.2f s of %.2f s\n", w, c1 - c0, wall / 1000 }'
	done
	for w in walsender source sink backend; do
		bg_stop "perf_$w" INT
	done
	for w in walsender source sink backend; do
		perf report -i "$T/perf-$w.data" --no-children --percent-limit 1.5 --stdio -g none --sort symbol 2>/dev/null |
			grep -v '^$' | grep -E '^ +[0-9]' | head -25 >"$T/profile-$w.txt"
		echo "profile of the $w during pgferry's catch-up (self time, top symbols):"
		cat "$T/profile-$w.txt"
		perf report -i "$T/perf-$w.data" --no-children --percent-limit 3 --stdio --sort dso 2>/dev/null |
			grep -E '^ +[0-9]' | head -8
	done
}

RESULTS=$T/results # link run system seconds bytes
CPUS=$T/cpus       # link run system part seconds
CPU=
: >"$RESULTS"
: >"$CPUS"
for link in $LINKS; do
	link_set "$link"
	for RUN in $(seq "$RUNS"); do
		log "$link, run $RUN: building a backlog of $N transactions ($CLIENTS clients)"
		pgbench -n -c $CLIENTS -j 2 -t $((N / CLIENTS)) "$PRIMARY_CONN" >"$T/pgbench.log" 2>&1 || fail "pgbench run"
		TARGET=$(psql_on primary -c "SELECT pg_current_wal_lsn()")
		# a published commit after TARGET: WAL written after the backlog's
		# last commit (autovacuum's, say) holds no commit a replica applies,
		# so an origin could stop short of TARGET for good; every replica
		# passes TARGET when it applies this one
		psql_on primary -c "INSERT INTO pgferry_test_marker VALUES ('catch-up $link $RUN')" >/dev/null ||
			fail "the end marker"
		WAL=$(psql_on primary -c "SELECT pg_wal_lsn_diff('$TARGET', confirmed_flush_lsn) FROM pg_replication_slots WHERE slot_name = 'native'")
		log "backlog: $((WAL / 1048576)) MB of WAL up to $TARGET"
		# rotate: run r starts with the r-th system
		set -- $ALL
		order=()
		for i in $(seq 0 $(($# - 1))); do
			j=$(((i + RUN - 1) % $# + 1))
			order+=("${!j}")
		done
		for s in "${order[@]}"; do
			catch_up "$s" "$TARGET"
			log "  $s: $SECS s, $BYTES bytes${CPU:+; CPU s: $CPU}"
			CPU=
			echo "$link $RUN $s $SECS $BYTES" >>"$RESULTS"
		done
		copies_equal
	done
done

awk -v n="$N" -v scale="$SCALE" -v runs="$RUNS" -v systems="$ALL" '
function median(a, k,   i, j, t, b) {
	for (i = 1; i <= k; i++) b[i] = a[i]
	for (i = 2; i <= k; i++) for (j = i; j > 1 && b[j - 1] > b[j]; j--) { t = b[j]; b[j] = b[j - 1]; b[j - 1] = t }
	return k % 2 ? b[(k + 1) / 2] : (b[k / 2] + b[k / 2 + 1]) / 2
}
function lo(a, k,   i, m) { m = a[1]; for (i = 2; i <= k; i++) if (a[i] < m) m = a[i]; return m }
function hi(a, k,   i, m) { m = a[1]; for (i = 2; i <= k; i++) if (a[i] > m) m = a[i]; return m }
{ secs[$1, $3, $2] = $4; bytes[$1, $3, $2] = $5; if (!($1 in seen)) { seen[$1] = 1; links[++nl] = $1 } }
END {
	ns = split(systems, sys, " ")
	for (l = 1; l <= nl; l++) {
		link = links[l]
		printf "\ncatch-up of %d pgbench transactions at scale %d, %s, %d runs (median [range])\n", n, scale, link == "wan" ? "80 ms round trip, 50 Mbit/s" : "loopback", runs
		printf "  %-10s %22s %22s %14s %12s\n", "", "seconds", "native s / its s", "wire bytes", "vs native"
		for (r = 1; r <= runs; r++) nat[r] = secs[link, "native", r]
		for (r = 1; r <= runs; r++) natb[r] = bytes[link, "native", r]
		for (i = 1; i <= ns; i++) {
			s = sys[i]
			for (r = 1; r <= runs; r++) { x[r] = secs[link, s, r]; q[r] = nat[r] / x[r]; b[r] = bytes[link, s, r] }
			med[s] = median(x, runs); rat[s] = median(q, runs); rlo[s] = lo(q, runs); rhi[s] = hi(q, runs)
			slo[s] = lo(x, runs); shi[s] = hi(x, runs)
			if (s == "decode") { mb[s] = "-"; wr[s] = "-" } else { mb[s] = sprintf("%d", median(b, runs)); wr[s] = sprintf("%.3f", median(b, runs) / median(natb, runs)) }
			printf "  %-10s %7.2f [%5.2f-%5.2f] %8.2fx [%4.2f-%4.2f] %14s %12s\n", s, med[s], slo[s], shi[s], rat[s], rlo[s], rhi[s], mb[s], wr[s]
		}
		row = sprintf("| %d | %s | %.2f [%.2f–%.2f] | %.2f [%.2f–%.2f]", scale, link == "wan" ? "80 ms / 50 Mbit/s" : "loopback", med["decode"], slo["decode"], shi["decode"], med["native"], slo["native"], shi["native"])
		row = row sprintf(" | %s", ("pglogical" in med) ? sprintf("%.2f [%.2f–%.2f]", med["pglogical"], slo["pglogical"], shi["pglogical"]) : "—")
		row = row sprintf(" | %.2f [%.2f–%.2f] | %.2f× [%.2f–%.2f] | %s |", med["pgferry"], slo["pgferry"], shi["pgferry"], rat["pgferry"], rlo["pgferry"], rhi["pgferry"], wr["pgferry"])
		rows[l] = row
	}
	print "\nREADME rows: | scale | link | decode limit s | native s | pglogical s | pgferry s | pgferry vs native | pgferry wire / native |"
	for (l = 1; l <= nl; l++) print rows[l]
}' "$RESULTS"
awk -v runs="$RUNS" '
function median(a, k,   i, j, t, b) {
	for (i = 1; i <= k; i++) b[i] = a[i]
	for (i = 2; i <= k; i++) for (j = i; j > 1 && b[j - 1] > b[j]; j--) { t = b[j]; b[j] = b[j - 1]; b[j - 1] = t }
	return k % 2 ? b[(k + 1) / 2] : (b[k / 2] + b[k / 2 + 1]) / 2
}
{
	k = $1 SUBSEP $3 SUBSEP $4
	if (!(k in n)) { keys[++nk] = k; if (!(($1, $3) in tot)) sl[++ns] = $1 SUBSEP $3 }
	v[k, ++n[k]] = $5; tot[$1, $3, $2] += $5; nt[$1, $3] = $2 > nt[$1, $3] ? $2 : nt[$1, $3]
	tot[$1, $3] = 1
}
END {
	if (nk == 0) exit
	print "\nCPU seconds of each process over a catch-up (median of the runs)"
	for (j = 1; j <= ns; j++) {
		split(sl[j], ls, SUBSEP); line = ""
		for (i = 1; i <= nk; i++) {
			split(keys[i], p, SUBSEP)
			if (p[1] != ls[1] || p[2] != ls[2]) continue
			for (r = 1; r <= n[keys[i]]; r++) a[r] = v[keys[i], r]
			line = line sprintf(" %s %.2f", p[3], median(a, n[keys[i]]))
		}
		for (r = 1; r <= nt[ls[1], ls[2]]; r++) a[r] = tot[ls[1], ls[2], r]
		printf "  %-8s %-10s total %.2f:%s\n", ls[1], ls[2], median(a, nt[ls[1], ls[2]]), line
	}
}' "$CPUS"
