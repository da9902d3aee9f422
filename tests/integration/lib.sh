# lib.sh — the integration-test harness: real PostgreSQL clusters on loopback.
#
# A test sources this file, then calls cluster_start for each server it needs
# and bg_start for each pgferry process. Everything started is recorded by
# PID and torn down on exit, also on failure or interrupt; on failure the
# temporary directory with the server logs is kept and named.
#
#   cluster_start NAME [extra postgresql.conf lines...]
#       sets NAME_PORT, NAME_HOST (socket dir), NAME_DATA, NAME_CONN
#   psql_on NAME [psql args]     run psql against NAME's postgres database
#   bg_start NAME cmd...         start a background process, log in $T/NAME.log
#   bg_stop NAME [signal]        stop it (default TERM) and wait
#   wait_until "desc" timeout_s cmd...   poll cmd until it succeeds
#   fail "message"               fail the test

set -u
set -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PGFERRY=${PGFERRY:-$ROOT/bin/pgferry}
PG_BINDIR=${PG_BINDIR:-$(pg_config --bindir)}
export PATH="$PG_BINDIR:$PATH"

T=$(mktemp -d "${TMPDIR:-/tmp}/pgferry-it.XXXXXX")
chmod 755 "$T"
# whatever the processes of a test leave in a temporary directory (a killed
# clone's schema dump, say) goes with the test's directory
mkdir -m 1777 "$T/tmp"
export TMPDIR="$T/tmp"
CLUSTERS=()
BG_NAMES=()
declare -A BG_PIDS=()
TEST_FAILED=0

if [ "$(id -u)" -eq 0 ]; then
	chown postgres: "$T"
	# PostgreSQL refuses to run as root: run its tools as the postgres user
	as_pg() { runuser -u postgres -- "$@"; }
else
	as_pg() { "$@"; }
fi

log() { printf '[%s] %s\n' "$(date +%H:%M:%S.%3N)" "$*"; }

fail()
{
	log "FAIL: $*"
	TEST_FAILED=1
	exit 1
}

# A loopback port nobody listens on now; random so parallel runs do not meet.
free_port()
{
	local port tries=0
	while [ $tries -lt 200 ]; do
		port=$((20000 + RANDOM % 40000))
		if ! ss -Htan "( sport = :$port )" 2>/dev/null | grep -q .; then
			echo "$port"
			return 0
		fi
		tries=$((tries + 1))
	done
	return 1
}

cluster_start()
{
	local name=$1
	shift
	local dir=$T/$name port
	port=$(free_port) || fail "no free port"
	as_pg mkdir -p "$dir"
	as_pg "$PG_BINDIR/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C \
		>"$T/$name-initdb.log" 2>&1 || fail "initdb for $name failed; see $T/$name-initdb.log"
	as_pg tee -a "$dir/data/postgresql.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
wal_level = logical
max_wal_senders = 20
max_replication_slots = 20
max_worker_processes = 16
max_logical_replication_workers = 8
max_prepared_transactions = 10
track_commit_timestamp = on
shared_buffers = 32MB
fsync = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %a '
CONF
	local line
	for line in "$@"; do
		echo "$line" | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
	done
	cluster_ctl "$name" start
	CLUSTERS+=("$name")
	local up=${name^^}
	eval "${up}_PORT=$port ${up}_HOST=$dir ${up}_DATA=$dir/data"
	eval "${up}_CONN='host=$dir port=$port user=postgres dbname=postgres'"
	export "${up}_PORT" "${up}_HOST" "${up}_DATA" "${up}_CONN"
}

# cluster_ctl NAME start|stop|restart|kill [mode]
# Whether any of the PIDs given is a live process (a zombie is not: it has
# let go of everything, the shared memory too).
alive_procs()
{
	local p state
	for p in "$@"; do
		state=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)
		[ -n "$state" ] && [ "$state" != Z ] && return 0
	done
	return 1
}

cluster_ctl()
{
	local name=$1 action=$2 mode=${3:-fast} dir=$T/$1 pid
	case $action in
	start | restart)
		as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -m "$mode" \
			"$action" >/dev/null || fail "server $name did not $action; see $dir/server.log"
		;;
	stop)
		as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data" -w -t 60 -m "$mode" stop >/dev/null ||
			fail "server $name did not stop"
		;;
	kill)
		# the crash of the whole server: the postmaster and every process it
		# started, at once. Killing the postmaster alone is not enough: a
		# backend busy with a client's pipelined input notices the loss only
		# when it next waits, meanwhile it goes on committing, and its
		# attachment to the shared memory makes the next start fail.
		pid=$(head -1 "$dir/data/postmaster.pid" 2>/dev/null) || return 0
		local i children
		children=$(pgrep -P "$pid" 2>/dev/null | tr '\n' ' ')
		# shellcheck disable=SC2086 # one PID per word
		kill -9 "$pid" $children 2>/dev/null || true
		for i in $(seq 100); do
			alive_procs $children || break
			sleep 0.1
		done
		# a dead postmaster nobody reaped is a zombie, which still "exists"
		# for the lock-file check: the crash left a stale file, remove it
		for i in $(seq 50); do
			state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)
			[ -z "$state" ] || [ "$state" = Z ] && break
			sleep 0.1
		done
		as_pg rm -f "$dir/data/postmaster.pid" "$dir"/.s.PGSQL.*.lock
		;;
	esac
}

psql_on()
{
	local name=$1 up=${1^^}
	shift
	local conn_var=${up}_CONN
	psql "${!conn_var}" -X -q -v ON_ERROR_STOP=1 -At "$@"
}

bg_start()
{
	local name=$1
	shift
	"$@" >>"$T/$name.log" 2>&1 &
	BG_PIDS[$name]=$!
	BG_NAMES+=("$name")
}

bg_pid() { echo "${BG_PIDS[$1]:-}"; }

bg_alive()
{
	local pid=${BG_PIDS[$1]:-}
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

bg_stop()
{
	local name=$1 sig=${2:-TERM} pid=${BG_PIDS[$1]:-} i
	[ -n "$pid" ] || return 0
	kill -"$sig" "$pid" 2>/dev/null || true
	for i in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	BG_PIDS[$name]=""
}

wait_until()
{
	local desc=$1 timeout=$2
	shift 2
	local deadline=$((SECONDS + timeout))
	while ! "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || fail "timed out after ${timeout}s waiting for: $desc"
		sleep 0.1
	done
}

teardown()
{
	local rc=$? name pid
	trap - EXIT INT TERM
	[ $rc -ne 0 ] && TEST_FAILED=1
	# a sanitizer report in any process's output fails the test
	for name in "${BG_NAMES[@]}"; do
		if grep -Eq "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$T/$name.log" 2>/dev/null; then
			log "FAIL: sanitizer report in $T/$name.log"
			grep -E -A12 "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$T/$name.log" | head -40
			TEST_FAILED=1
			rc=1
		fi
	done
	for name in "${BG_NAMES[@]}"; do
		pid=${BG_PIDS[$name]:-}
		[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	done
	# reap them here, so bash does not report each as "Killed"
	for name in "${BG_NAMES[@]}"; do
		pid=${BG_PIDS[$name]:-}
		[ -n "$pid" ] && { wait "$pid"; } 2>/dev/null
	done
	for name in "${CLUSTERS[@]}"; do
		pid=$(head -1 "$T/$name/data/postmaster.pid" 2>/dev/null) || continue
		kill -INT "$pid" 2>/dev/null || continue # fast shutdown, by PID
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
	done
	if [ $TEST_FAILED -ne 0 ]; then
		log "logs kept in $T (server logs: $T/<cluster>/server.log; processes: $T/<name>.log)"
		for name in "${BG_NAMES[@]}"; do
			[ -f "$T/$name.log" ] && { echo "--- last lines of $T/$name.log"; tail -n 15 "$T/$name.log"; }
		done
		for name in "${CLUSTERS[@]}"; do
			echo "--- last lines of $T/$name/server.log"
			tail -n 15 "$T/$name/server.log" 2>/dev/null
		done
	else
		rm -rf "$T"
	fi
	exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM
