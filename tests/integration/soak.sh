# soak.sh — "make soak": a seeded, randomized fault campaign (not part of
# make check). A mixed workload (pgbench; a table of TOAST values; a table
# without a key holding identical rows; a partitioned table whose rows move
# between partitions; large streamed and tiny transactions) runs in cycles.
# Each cycle injects one fault drawn from the seeded schedule, heals it,
# stops the workload, waits until the DR side has caught up and compares:
#
#   * every table row by row (count + md5 of all rows in a stable order, so
#     a table without a key compares as a multiset: a lost or a duplicated
#     row shows);
#   * the slot's confirmed_flush_lsn never ahead of the DR origin's durable
#     progress (sampled every half second throughout, and after each cycle);
#   * the sink and the source still running (a crash is a failure);
#   * an independent visibility probe (truth_probe.py: a writer commits a
#     timestamped row every 20 ms on the primary, a reader on the DR side, a
#     sampler of /v1/status) never finds a committed row missing on the DR
#     side older than the reported rpo_bound_ms plus 50 ms.
#
# Fault kinds: kill -9 and restart of the source, the sink, the primary and
# the DR server; SIGSTOP of the source or of the sink for seconds (a silent
# link in either direction); a bit flipped or the stream cut mid-frame by
# the proxy between source and sink (tls = off there, so the damage reaches
# pgferry's own checks); work_dir full (a small tmpfs filled up while apply
# is stalled and a large transaction streams); a DR table locked; a slow,
# long link (proxy delay and rate).
#
#   SOAK_SEED=N     the schedule's seed (default: from the clock); the same
#                   seed gives the same faults, parameters and order
#   SOAK_FAULTS=N   how many faults (default 100)
#
# It prints a table of the faults survived (kind, count, how many actually
# took effect, worst recovery time, invariant and bound violations) and the
# seed; on failure also the cycle that failed and the command that replays
# the schedule. Timing (what the fault hits) still varies between runs.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

PY=/usr/bin/python3 # the Debian python, with python3-psycopg2
SEED=${SOAK_SEED:-$(($(date +%s) % 1000000))}
FAULTS=${SOAK_FAULTS:-100}
KINDS="kill_source kill_sink kill_primary kill_dr stop_source stop_sink bitflip truncate workdir_full dr_lock slow_link"
TABLES="pgbench_accounts pgbench_branches pgbench_tellers pgbench_history toasty nokey parted big"
CAMPAIGN_START=$SECONDS
CYCLE=0
CYCLE_KIND=""
declare -A COUNT=() FIRED=() WORST=() INVBAD=() REJECTED=()

now() { echo "$EPOCHREALTIME"; }
phase() { echo "$1" >"$T/phase.new" && mv "$T/phase.new" "$T/phase"; }

# The schedule, drawn before anything runs so that it depends on the seed
# only: the kinds in shuffled rounds (each kind about equally often), and
# per fault the time into the cycle, the duration and a parameter.
"$PY" - "$SEED" "$FAULTS" "$KINDS" >"$T/schedule" <<'PY' || fail "cannot draw the schedule"
import random, sys
seed, n, kinds = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split()
rng = random.Random(seed)
out = []
while len(out) < n:
    block = kinds[:]
    rng.shuffle(block)
    out.extend(block)
for i, kind in enumerate(out[:n], 1):
    pre = round(rng.uniform(0.5, 2.5), 1)
    dur = round(rng.uniform(1.0, 4.0), 1)
    if kind == "bitflip":
        param = str(rng.randint(50, 60000))
    elif kind == "truncate":
        param = "cut:%d" % rng.randint(5, 60000)
    elif kind == "slow_link":
        param = "%d:%d" % (rng.randint(10, 120), rng.randint(30, 400))
    elif kind == "dr_lock":
        param = rng.choice(["pgbench_accounts", "pgbench_history", "toasty", "nokey", "parted", "truth"])
    else:
        param = "-"
    big = rng.choice([0, 0, 0, rng.randint(2000, 40000)])
    print(i, kind, pre, dur, param, big)
PY

soak_report()
{
	local k bad
	[ -n "${BG_PIDS[probe]:-}" ] && bg_stop probe TERM
	echo
	echo "soak: seed $SEED, $CYCLE of $FAULTS faults run, $((SECONDS - CAMPAIGN_START)) s"
	printf '%-14s %6s %6s %9s %14s %8s %11s\n' kind count fired rejected "worst recov s" "slot>DR" "bound viol."
	for k in $KINDS; do
		bad=$(awk -v k="$k" '$1 == k {print $3}' "$T/probe.log" 2>/dev/null)
		printf '%-14s %6s %6s %9s %14s %8s %11s\n' "$k" "${COUNT[$k]:-0}" "${FIRED[$k]:-0}" \
			"${REJECTED[$k]:-0}" "${WORST[$k]:--}" "${INVBAD[$k]:-0}" "${bad:--}"
	done
	echo "(fired: the fault took effect; rejected: cycles in which the sink rejected a frame or batch)"
	echo "probe (per fault kind; tolerance 50 ms):"
	cat "$T/probe.log" 2>/dev/null
}

soak_exit()
{
	local rc=$?
	if [ $rc -ne 0 ]; then
		log "FAILED in cycle $CYCLE ($CYCLE_KIND); replay: SOAK_SEED=$SEED SOAK_FAULTS=$FAULTS make soak"
	fi
	soak_report
	if [ -n "${WORK_MOUNTED:-}" ]; then
		{ bg_stop sink KILL; } 2>/dev/null
		umount -l "$T/work" 2>/dev/null
	fi
	(exit $rc)
	teardown
}
trap soak_exit EXIT

log "soak: seed $SEED, $FAULTS faults"
cluster_start primary "logical_decoding_work_mem = 64kB"
cluster_start dr
pgbench -q -i -I dtp "$DR_CONN" >/dev/null 2>&1 || fail "pgbench schema on DR"
pgbench -q -i -I dtp "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench schema on primary"
schema_both "CREATE TABLE toasty (id bigserial PRIMARY KEY, n int NOT NULL DEFAULT 0, v text);
	CREATE TABLE nokey (a int, b text);
	ALTER TABLE nokey REPLICA IDENTITY FULL;
	CREATE TABLE parted (id bigint, k int, v text, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
	CREATE TABLE parted_0 PARTITION OF parted FOR VALUES FROM (0) TO (100);
	CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (100) TO (200);
	CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (200) TO (300);
	CREATE SEQUENCE parted_id;
	CREATE TABLE big (id int PRIMARY KEY, v text);
	CREATE TABLE truth (id bigserial PRIMARY KEY, written_at timestamptz NOT NULL)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null

relay_setup "sink:tls = off" "source:tls = off" "sink:spool_memory_limit = 1MB" \
	"sink:source_timeout = 3s" "source:sink_timeout = 3s" "sink:reconnect_max_delay = 300ms"
# the source reaches the sink through the proxy, which flips, cuts and slows
PROXY_PORT=$(free_port) || fail "no free port"
sed -i "s/^sink_address = .*/sink_address = '127.0.0.1:$PROXY_PORT'/" "$T/source.conf"
# work_dir on a small filesystem of its own, so that it can be filled
if mount -t tmpfs -o size=48m,mode=0700 pgferry-soak "$T/work" 2>/dev/null; then
	WORK_MOUNTED=1
else
	log "cannot mount a tmpfs for work_dir (not root?): no workdir_full faults"
fi

# a process killed on purpose is no news: keep bash's "Killed" out of the output
quiet_stop() { { bg_stop "$@"; } 2>/dev/null; }
proxy_start() { bg_start proxy "$ROOT/build/faultproxy" "$PROXY_PORT" "$SINK_PORT" "$@"; }
proxy_restart()
{ # the open connection goes with the old proxy: its handlers are its children
	local pid
	pid=$(bg_pid proxy)
	if [ -n "$pid" ]; then
		kill -STOP "$pid" # accepts no more while its children go
		pkill -KILL -P "$pid" 2>/dev/null
	fi
	quiet_stop proxy KILL
	proxy_start "$@"
}
proxy_start -1
sink_start
source_start
wait_applied 120
pgbench -q -i -I g -s 1 "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench data"
wait_applied 300
tables_equal pgbench_accounts

# tiny transactions on every table kind, each statement its own transaction
cat >"$T/tiny.sql" <<'SQL'
INSERT INTO toasty (v) SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 400);
UPDATE toasty SET n = n + 1 WHERE id = (SELECT max(id) FROM toasty);
UPDATE toasty SET v = (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 300)) WHERE id = (SELECT min(id) FROM toasty);
DELETE FROM toasty WHERE id = (SELECT min(id) FROM toasty) AND (SELECT count(*) FROM toasty) > 40;
WITH r AS (SELECT floor(random() * 40)::int AS k) INSERT INTO nokey SELECT k, 'v' FROM r, generate_series(1, 2);
WITH r AS (SELECT floor(random() * 40)::int AS k) UPDATE nokey SET b = b || '.' FROM r WHERE a = r.k AND length(b) < 20;
DELETE FROM nokey WHERE ctid = (SELECT ctid FROM nokey ORDER BY random() LIMIT 1);
INSERT INTO parted SELECT nextval('parted_id'), floor(random() * 300)::int, md5(random()::text);
UPDATE parted SET k = (k + 100) % 300 WHERE (id, k) = (SELECT id, k FROM parted ORDER BY random() LIMIT 1);
DELETE FROM parted WHERE id = (SELECT min(id) FROM parted) AND (SELECT count(*) FROM parted) > 300;
BEGIN;
INSERT INTO parted SELECT nextval('parted_id'), g % 300, 'multi' FROM generate_series(1, 20) g;
UPDATE toasty SET n = n + 1 WHERE id IN (SELECT id FROM toasty ORDER BY random() LIMIT 3);
INSERT INTO nokey VALUES (7, 'v');
COMMIT;
SQL
# WORKLOAD_BIG rows: one large transaction (streamed by the primary) at the
# start of the cycle; then pgbench and the tiny ones until told to stop
cat >"$T/workload.sh" <<LOAD
if [ "\$WORKLOAD_BIG" -gt 0 ]; then
	psql "$PRIMARY_CONN" -Xq >/dev/null 2>&1 <<SQL
BEGIN;
DELETE FROM big;
INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, \$WORKLOAD_BIG) g;
COMMIT;
SQL
fi
while [ ! -e "$T/stop-load" ]; do
	pgbench -n -c 2 -j 1 -T 1 -R 100 "$PRIMARY_CONN" >/dev/null 2>&1
	psql "$PRIMARY_CONN" -Xq -f "$T/tiny.sql" >/dev/null 2>&1
done
LOAD
workload_start()
{
	rm -f "$T/stop-load"
	WORKLOAD_BIG=$1 bg_start load bash "$T/workload.sh"
}
workload_stop()
{ # the loop ends by itself: killing it would leave its pgbench running
	touch "$T/stop-load"
	wait_until "the workload to stop" 120 bash -c "! kill -0 $(bg_pid load) 2>/dev/null"
}

# the no-loss invariant, sampled every half second whatever happens
cat >"$T/invariant.sh" <<INV
while :; do
	slot=\$(psql "$PRIMARY_CONN" -XAtc "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'pgferry'" 2>/dev/null)
	dr=\$(psql "$DR_CONN" -XAtc "SELECT pgferry.applied_lsn(true)" 2>/dev/null)
	if [ -n "\$slot" ] && [ -n "\$dr" ]; then
		ok=\$(psql "$DR_CONN" -XAtc "SELECT '\$slot'::pg_lsn <= '\$dr'::pg_lsn" 2>/dev/null)
		[ "\$ok" = f ] && echo "VIOLATION \$(cat "$T/phase") slot \$slot DR \$dr"
	fi
	sleep 0.5
done
INV
bg_start invariant bash "$T/invariant.sh"

phase quiet
bg_start probe "$PY" "$(dirname "$0")/truth_probe.py" "$PRIMARY_CONN" "$DR_CONN" "$SINK_URL/v1/status" "$T/phase" 50

count_in() { grep -c "$2" "$T/$1.log" 2>/dev/null || true; }

inject()
{ # inject KIND DURATION PARAM: the fault and its healing; sets $fired
	local kind=$1 dur=$2 param=$3 before locker
	fired=1
	case $kind in
	kill_source)
		quiet_stop source KILL
		check_no_loss_invariant
		sleep "$dur"
		source_start
		;;
	kill_sink)
		quiet_stop sink KILL
		check_no_loss_invariant
		sleep "$dur"
		sink_start
		;;
	kill_primary)
		cluster_ctl primary kill
		sleep "$dur"
		cluster_ctl primary start
		;;
	kill_dr)
		cluster_ctl dr kill
		sleep "$dur"
		cluster_ctl dr start
		;;
	stop_source | stop_sink)
		kill -STOP "$(bg_pid "${kind#stop_}")"
		sleep "$dur"
		check_no_loss_invariant
		kill -CONT "$(bg_pid "${kind#stop_}")"
		;;
	bitflip | truncate)
		before=$(count_in proxy 'flipped\|^cut')
		proxy_restart "$param"
		sleep "$dur"
		check_no_loss_invariant
		[ "$(count_in proxy 'flipped\|^cut')" -gt "$before" ] || fired=0
		;;
	slow_link)
		proxy_restart -1 "${param%%:*}" "${param##*:}"
		sleep "$dur"
		check_no_loss_invariant
		proxy_restart -1
		;;
	dr_lock)
		psql_on dr -c "BEGIN; LOCK TABLE $param IN EXCLUSIVE MODE; SELECT pg_sleep($dur); COMMIT" >/dev/null ||
			fail "could not lock $param on the DR side"
		;;
	workdir_full)
		before=$(count_in sink 'No space left')
		dd if=/dev/zero of="$T/work/filler" bs=1M >/dev/null 2>&1
		# apply stalls, so what arrives must go to the spool; a large
		# transaction is streamed, so the sink must spill it
		bg_start locker psql "$DR_CONN" -Xqc "BEGIN; LOCK TABLE pgbench_history IN EXCLUSIVE MODE; SELECT pg_sleep(3600)"
		psql_on primary -c "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1000001, 1030000) g" >/dev/null ||
			fail "the large transaction failed"
		sleep "$dur"
		check_no_loss_invariant
		rm -f "$T/work/filler"
		psql_on dr -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3600)%' AND pid <> pg_backend_pid()" >/dev/null
		bg_stop locker
		psql_on primary -c "DELETE FROM big WHERE id > 1000000" >/dev/null || fail "cleaning big"
		[ "$(count_in sink 'No space left')" -gt "$before" ] || fired=0
		;;
	*) fail "unknown fault kind $kind" ;;
	esac
}

while read -r i kind pre dur param big; do
	CYCLE=$i
	CYCLE_KIND=$kind
	if [ "$kind" = workdir_full ] && [ -z "${WORK_MOUNTED:-}" ]; then
		continue
	fi
	phase "$kind"
	rejected=$(count_in sink 'rejected a ')
	workload_start "$big"
	sleep "$pre"
	inject "$kind" "$dur" "$param"
	healed=$(now)
	workload_stop
	wait_applied 300
	recov=$(awk -v a="$healed" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}')
	phase quiet
	bg_alive sink || fail "the sink is not running"
	bg_alive source || fail "the source is not running"
	check_no_loss_invariant
	for t in $TABLES; do
		p=$(table_digest primary "$t") || fail "cannot read $t on the primary"
		d=$(table_digest dr "$t") || fail "cannot read $t on the DR database"
		[ "$p" = "$d" ] || fail "after fault $i ($kind $param): table $t differs: primary $p, DR $d"
	done
	COUNT[$kind]=$((${COUNT[$kind]:-0} + 1))
	FIRED[$kind]=$((${FIRED[$kind]:-0} + fired))
	[ "$(count_in sink 'rejected a ')" -gt "$rejected" ] && REJECTED[$kind]=$((${REJECTED[$kind]:-0} + 1))
	INVBAD[$kind]=$(grep -c "^VIOLATION $kind " "$T/invariant.log" || true)
	grep "^VIOLATION" "$T/invariant.log" && fail "the slot was ahead of the DR progress"
	if [ -z "${WORST[$kind]:-}" ] || awk -v a="$recov" -v b="${WORST[$kind]}" 'BEGIN {exit !(a > b)}'; then
		WORST[$kind]=$recov
	fi
	log "fault $i/$FAULTS $kind (${param}, ${dur} s, big $big): $([ "$fired" = 1 ] || echo "did not take effect; ")caught up ${recov} s after healing, tables equal"
done <"$T/schedule"

# at the end: the probe's table too, and its verdict
bg_stop probe TERM
wait_applied 300
tables_equal $TABLES truth
check_no_loss_invariant
grep -q "^VIOLATION" "$T/probe.log" && fail "the probe found committed rows older than the RPO bound missing on DR"
log "soak ok: $FAULTS faults, seed $SEED, no row lost or doubled, no bound violated"
