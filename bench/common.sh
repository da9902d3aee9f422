# common.sh — set-up shared by the benchmarks that race pgferry against
# native logical replication (and pglogical, when installed). Source after
# tests/integration/lib.sh and relay.sh.
#
#   bench_setup SCALE [sink config line...]
#       a primary and a DR cluster; pgbench at SCALE (and BENCH_TABLES_SQL,
#       if set, before any replica exists) on the primary and on
#       the DR databases "ferry" (pgferry's), "native" and, with pglogical,
#       "pglog"; the publication; pgferry's configuration, its slot made by
#       a first contact; native's subscription and pglogical's, created
#       disabled (their slots exist from then on), each through a proxy
#   link_set loopback|wan
#       the link every replica's proxy emulates from the next proxy_start:
#       loopback, or an 80 ms round trip capped at 50 Mbit/s each way
#       (BENCH_DELAY_MS, BENCH_RATE_KBPS change it)
#   proxy_start SYSTEM / proxy_stop SYSTEM
#       the counting proxy between a replica and its upstream: pgferry's
#       source-to-sink link, native's and pglogical's subscriber-to-primary
#       link; proxy_stop sets WIRE_BYTES (both directions)
#   replica_prepare SYSTEM   pgferry's sink up and listening (else nothing)
#   replica_enable SYSTEM / replica_disable SYSTEM
#   copies_equal    every enabled copy matches the primary (fails if not)
#
# BENCH_DR_SHARED_BUFFERS (1GB): the DR cluster's shared_buffers; it holds
# every system's copy, so each copy's working set fits as it would on a DR
# server of its own (at 256 MB the copies evicted each other's pages).
#
# BENCH_BASELINE=PATH adds the system "baseline": the pgferry binary at PATH
# (an older build, say) with its own slot, sink, DR database and proxy, so
# a change is measured against what it replaces in the same run;
# BENCH_BASELINE_SINK_EXTRA and BENCH_BASELINE_SOURCE_EXTRA are one more
# line of its sink's and its source's configuration (a later line wins).

PROXY=$ROOT/build/faultproxy
[ -x "$PROXY" ] || (cd "$ROOT" && make -s build/faultproxy) || fail "cannot build the proxy"

dr() { psql "host=$DR_HOST port=$DR_PORT user=postgres dbname=$1" -XAtc "$2"; }
now_ms() { date +%s%3N; }

# the database each system applies into on the DR cluster
db_of()
{
	case $1 in
	pgferry) echo ferry ;;
	baseline) echo ferry_base ;;
	native) echo native ;;
	pglogical) echo pglog ;;
	esac
}

# pglogical, when its package is installed (tools/install-deps.sh bench)
PGLOGICAL=0
if [ "${BENCH_PGLOGICAL:-1}" = 0 ]; then
	:
elif [ -e "$(pg_config --pkglibdir)/pglogical.so" ]; then
	PGLOGICAL=1
else
	echo "pglogical: not installed (postgresql-15-pglogical; tools/install-deps.sh bench), left out"
fi
SYSTEMS="native pgferry"
[ $PGLOGICAL = 1 ] && SYSTEMS="native pgferry pglogical"
BASELINE_BIN=${BENCH_BASELINE:-}
if [ -n "$BASELINE_BIN" ]; then
	BASELINE_BIN=$(realpath "$BASELINE_BIN")
	[ -x "$BASELINE_BIN" ] || fail "BENCH_BASELINE: $BASELINE_BIN is not an executable"
	SYSTEMS="$SYSTEMS baseline"
fi

# CPU seconds used so far by the processes PIDS (comma-separated)
cpu_seconds()
{
	local pid ticks=0
	for pid in ${1//,/ }; do
		[ -r "/proc/$pid/stat" ] || continue
		ticks=$((ticks + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
	done
	awk -v t=$ticks -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

# The processes that do SYSTEM's replica-side work, one "part pids" line
# each (pids comma-separated): the source, the sink and the sink's DR
# sessions for pgferry; the apply worker for native and pglogical.
replica_parts()
{
	local db
	db=$(db_of "$1")
	case $1 in
	pgferry) echo "source $(bg_pid source)" && echo "sink $(bg_pid sink)" ;;
	baseline) echo "source $(bg_pid source_base)" && echo "sink $(bg_pid sink_base)" ;;
	esac
	case $1 in
	pgferry | baseline)
		echo "dr $(dr "$db" "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE datname = '$db' AND application_name = 'pgferry sink'")"
		;;
	*) echo "apply $(dr "$db" "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE datname = '$db' AND backend_type = 'logical replication worker'")" ;;
	esac
}

walsender_pid() { psql_on primary -c "SELECT active_pid FROM pg_replication_slots WHERE slot_name = '${SLOT_OF[$1]}'"; }

link_set()
{
	case $1 in
	loopback) LINK_DELAY=0 LINK_RATE=0 ;;
	wan) LINK_DELAY=${BENCH_DELAY_MS:-40} LINK_RATE=${BENCH_RATE_KBPS:-6250} ;;
	*) fail "link_set: loopback or wan, not $1" ;;
	esac
	LINK=$1
}
link_set loopback

proxy_start()
{
	local port target
	case $1 in
	pgferry) port=$FERRY_PROXY_PORT target=$SINK_PORT ;;
	baseline) port=$BASE_PROXY_PORT target=$BASE_SINK_PORT ;;
	native) port=$NATIVE_PROXY_PORT target=$PRIMARY_PORT ;;
	pglogical) port=$PGLOG_PROXY_PORT target=$PRIMARY_PORT ;;
	esac
	bg_start "proxy_$1" "$PROXY" "$port" "$target" -1 "$LINK_DELAY" "$LINK_RATE"
}

proxy_stop()
{
	bg_stop "proxy_$1" TERM
	WIRE_BYTES=$(grep -Eo 'up=[0-9]+ down=[0-9]+' "$T/proxy_$1.log" | tail -1 | awk -F'[= ]' '{print $2 + $4}')
}

# pgferry's sink started and listening. It is the DR side's daemon, up
# when an outage ends as the DR server that runs native's apply worker is:
# catch_up starts its clock after this, at the source's start.
replica_prepare()
{
	local name log n
	case $1 in
	pgferry) name=sink ;;
	baseline) name=sink_base ;;
	*) return 0 ;;
	esac
	bg_alive $name && return 0
	log=$T/$name.log
	n=$(grep -c 'pgferry sink listening' "$log" 2>/dev/null)
	case $1 in
	pgferry) sink_start ;;
	baseline) bg_start sink_base "$BASELINE_BIN" sink --config "$T/sink_base.conf" ;;
	esac
	wait_until "the $1 sink listening" 60 bash -c \
		"[ \"\$(grep -c 'pgferry sink listening' '$log')\" -gt ${n:-0} ]"
}

replica_enable()
{
	case $1 in
	pgferry)
		replica_prepare pgferry
		source_start
		;;
	baseline)
		replica_prepare baseline
		bg_start source_base "$BASELINE_BIN" source --config "$T/source_base.conf"
		;;
	native) dr native "ALTER SUBSCRIPTION native ENABLE" >/dev/null ;;
	pglogical) dr pglog "SELECT pglogical.alter_subscription_enable('pglog', true)" >/dev/null ;;
	esac
}

# stopped, and its connection to the upstream closed (so the proxy's count
# is complete)
replica_disable()
{
	case $1 in
	pgferry)
		source_stop
		sink_stop
		;;
	baseline)
		bg_stop source_base TERM
		bg_stop sink_base TERM
		;;
	native) dr native "ALTER SUBSCRIPTION native DISABLE" >/dev/null ;;
	pglogical) dr pglog "SELECT pglogical.alter_subscription_disable('pglog', true)" >/dev/null ;;
	esac
	wait_until "$1 disconnected from the primary" 60 bash -c \
		"[ \"\$(psql '$PRIMARY_CONN' -XAtc \"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '${SLOT_OF[$1]}' AND active\")\" = 0 ]"
}

origin_expr()
{
	case $1 in
	pgferry | baseline) echo "pgferry.origin()" ;;
	*) echo "'${ORIGIN_OF[$1]}'" ;;
	esac
}

# order-independent digest of a pgbench table: rows and a sum of row hashes
table_digest_of()
{ # table_digest_of CONNINFO TABLE
	psql "$1" -XAtc "SELECT count(*), sum(hashtext(ROW(t.*)::text)::bigint) FROM $2 t"
}

copies_equal()
{
	local t p c s
	for t in pgbench_accounts pgbench_branches pgbench_tellers pgbench_history; do
		p=$(table_digest_of "$PRIMARY_CONN" $t)
		for s in $SYSTEMS; do
			c=$(table_digest_of "host=$DR_HOST port=$DR_PORT user=postgres dbname=$(db_of "$s")" $t)
			[ -n "$p" ] && [ "$p" = "$c" ] || fail "$t: the $s copy differs from the primary: $c vs $p"
		done
	done
}

declare -A SLOT_OF=([pgferry]=pgferry [baseline]=pgferry_base [native]=native)
declare -A ORIGIN_OF=()

bench_setup()
{
	local scale=$1 db s preload=()
	shift
	[ $PGLOGICAL = 1 ] && preload=("shared_preload_libraries = 'pglogical'")
	cluster_start primary "max_wal_size = 4GB" "shared_buffers = 256MB" "${preload[@]}"
	# the DR cluster holds every system's copy: room for each copy's
	# working set, as on a DR server of its own. Native's apply worker
	# starts at once when enabled: by default the launcher waits 5 s after
	# the worker's last start, which a short backlog's next run hit
	# (10,000 transactions: 5.5 s instead of 0.7)
	cluster_start dr "max_wal_size = 4GB" "shared_buffers = ${BENCH_DR_SHARED_BUFFERS:-1GB}" \
		"wal_retrieve_retry_interval = 100ms" "${preload[@]}"
	log "preparing: pgbench scale $scale on the primary and on a DR database for each of: $SYSTEMS"
	pgbench -q -i -s "$scale" "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench -i on the primary"
	psql_on primary -c "CREATE TABLE pgferry_test_marker (id text PRIMARY KEY)" >/dev/null
	psql_on primary -c "CREATE PUBLICATION pgferry FOR TABLES IN SCHEMA public" >/dev/null
	for s in $SYSTEMS; do
		db=$(db_of "$s")
		psql_on dr -c "CREATE DATABASE $db" >/dev/null
		pgbench -q -i -s "$scale" "host=$DR_HOST port=$DR_PORT user=postgres dbname=$db" \
			>/dev/null 2>&1 || fail "pgbench -i on DR $db"
		# pgbench -i fills the tables the same on both sides; the history starts empty
		dr "$db" "CREATE TABLE pgferry_test_marker (id text PRIMARY KEY)" >/dev/null
		[ -z "${BENCH_TABLES_SQL:-}" ] || dr "$db" "$BENCH_TABLES_SQL" >/dev/null || fail "BENCH_TABLES_SQL on DR $db"
	done
	[ -z "${BENCH_TABLES_SQL:-}" ] || psql_on primary -c "$BENCH_TABLES_SQL" >/dev/null || fail "BENCH_TABLES_SQL on the primary"

	FERRY_PROXY_PORT=$(free_port)
	NATIVE_PROXY_PORT=$(free_port)
	PGLOG_PROXY_PORT=$(free_port)
	BASE_PROXY_PORT=$(free_port)
	relay_setup "sink:dr_conninfo = 'host=$DR_HOST port=$DR_PORT user=postgres dbname=ferry'" "$@"
	sed -i "s/^sink_address = .*/sink_address = '127.0.0.1:$FERRY_PROXY_PORT'/" "$T/source.conf"
	if [ -n "$BASELINE_BIN" ]; then
		# the same configuration on other ports, slot, DR database and work_dir
		BASE_SINK_PORT=$(free_port)
		mkdir -p "$T/work_base"
		sed -e "s/^listen_address = .*/listen_address = '127.0.0.1:$BASE_SINK_PORT'/" \
			-e "s/^http_listen = .*/http_listen = '127.0.0.1:$(free_port)'/" \
			-e "s/dbname=ferry'/dbname=ferry_base'/" -e "s|^work_dir = .*|work_dir = '$T/work_base'|" \
			"$T/sink.conf" >"$T/sink_base.conf"
		sed -e "s/^sink_address = .*/sink_address = '127.0.0.1:$BASE_PROXY_PORT'/" "$T/source.conf" >"$T/source_base.conf"
		echo "slot_name = 'pgferry_base'" >>"$T/source_base.conf"
		echo "${BENCH_BASELINE_SINK_EXTRA:-}" >>"$T/sink_base.conf"
		echo "${BENCH_BASELINE_SOURCE_EXTRA:-}" >>"$T/source_base.conf"
	fi
	for s in $SYSTEMS; do proxy_start "$s"; done

	# pgferry: first contact creates the slot and the DR state
	replica_enable pgferry
	DR_CONN="host=$DR_HOST port=$DR_PORT user=postgres dbname=ferry" wait_applied 120
	replica_disable pgferry
	if [ -n "$BASELINE_BIN" ]; then
		replica_enable baseline
		DR_CONN="host=$DR_HOST port=$DR_PORT user=postgres dbname=ferry_base" WAIT_SLOT=pgferry_base wait_applied 120
		replica_disable baseline
	fi

	dr native "CREATE SUBSCRIPTION native CONNECTION 'host=127.0.0.1 port=$NATIVE_PROXY_PORT user=postgres dbname=postgres sslmode=disable' PUBLICATION pgferry WITH (enabled = false, copy_data = false)" \
		>/dev/null || fail "CREATE SUBSCRIPTION"
	ORIGIN_OF[native]=$(dr native "SELECT 'pg_' || oid FROM pg_subscription WHERE subname = 'native'")

	if [ $PGLOGICAL = 1 ]; then
		# tables without a primary key go in pglogical's insert-only set
		psql_on primary -c "CREATE EXTENSION pglogical" >/dev/null || fail "pglogical on the primary"
		psql_on primary -c "SELECT pglogical.create_node('provider', 'host=127.0.0.1 port=$PRIMARY_PORT user=postgres dbname=postgres')" >/dev/null
		psql_on primary -c "SELECT pglogical.replication_set_add_all_tables('default', ARRAY['public'])" >/dev/null 2>&1 ||
			psql_on primary -c "SELECT pglogical.replication_set_add_table('default', c.oid::regclass)
			                    FROM pg_class c JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
			                    WHERE c.relnamespace = 'public'::regnamespace" >/dev/null || fail "pglogical set default"
		psql_on primary -c "SELECT pglogical.replication_set_add_table('default_insert_only', c.oid::regclass)
		                    FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
		                    AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)" >/dev/null ||
			fail "pglogical set default_insert_only"
		dr pglog "CREATE EXTENSION pglogical" >/dev/null || fail "pglogical on DR"
		dr pglog "SELECT pglogical.create_node('subscriber', 'host=$DR_HOST port=$DR_PORT user=postgres dbname=pglog')" >/dev/null
		dr pglog "SELECT pglogical.create_subscription('pglog', 'host=127.0.0.1 port=$PGLOG_PROXY_PORT user=postgres dbname=postgres sslmode=disable', ARRAY['default', 'default_insert_only'], synchronize_structure := false, synchronize_data := false)" \
			>/dev/null || fail "pglogical subscription"
		wait_until "pglogical subscription replicating" 120 bash -c \
			"[ \"\$(psql 'host=$DR_HOST port=$DR_PORT user=postgres dbname=pglog' -XAtc \"SELECT status FROM pglogical.show_subscription_status('pglog')\")\" = replicating ]"
		SLOT_OF[pglogical]=$(dr pglog "SELECT slot_name FROM pglogical.show_subscription_status('pglog')")
		ORIGIN_OF[pglogical]=${SLOT_OF[pglogical]}
		dr pglog "SELECT 1 FROM pg_replication_origin WHERE roname = '${ORIGIN_OF[pglogical]}'" | grep -q 1 ||
			fail "pglogical's origin is not named after its slot (${SLOT_OF[pglogical]})"
		replica_disable pglogical
	fi
	for s in $SYSTEMS; do proxy_stop "$s"; done
}
