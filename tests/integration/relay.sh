# relay.sh — helpers for tests that run pgferry source and sink between two
# harness clusters. Source after lib.sh.
#
#   make_certs DIR                    CA, sink (server) and source (client) keys;
#                                     DIR/other-* signed by an unrelated CA;
#                                     DIR/stranger-* signed by the CA for another host
#   relay_setup [sink|source extra config lines...]  write $T/sink.conf and $T/source.conf
#                                     (the sink with initial_copy = external: most
#                                     tests create the schema on both sides)
#   sink_start / source_start / sink_stop / source_stop
#   wait_applied TIMEOUT              until a marker committed on the primary now
#                                     is visible on the DR database
#   tables_equal TABLE...             same rows on both sides (fails the test if not)
#   metric NAME / metric_in FILE NAME the value of the series NAME on the sink's
#                                     /metrics (or in a saved copy), whatever its
#                                     constant labels (slot, database)

PGFERRY_BIN=${PGFERRY_BIN:-$PGFERRY}

# valid long enough that pgferry check (and the start of source and sink)
# does not warn of their expiry
make_certs()
{
	local d=$1
	mkdir -p "$d"
	(
		cd "$d" || exit 1
		gen_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
		gen_ca()
		{
			gen_key "$1.key"
			openssl req -x509 -new -key "$1.key" -out "$1.crt" -days 400 -subj "/CN=$2" 2>/dev/null
		}
		sign()
		{ # sign NAME CN SAN CA
			gen_key "$1.key"
			openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
			printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" >"$1.ext"
			openssl x509 -req -in "$1.csr" -CA "$4.crt" -CAkey "$4.key" -CAcreateserial \
				-out "$1.crt" -days 400 -extfile "$1.ext" 2>/dev/null
		}
		gen_ca ca "pgferry test CA"
		sign server pgferry-sink "DNS:localhost,IP:127.0.0.1" ca
		sign client pgferry-source "DNS:pgferry-source" ca
		gen_ca other-ca "some other CA"
		sign other-client pgferry-source "DNS:pgferry-source" other-ca
		sign stranger other-host "DNS:other-host" ca
	) || fail "could not make test certificates"
}

relay_setup()
{
	SINK_PORT=$(free_port) || fail "no free port"
	HTTP_PORT=$(free_port) || fail "no free port"
	mkdir -p "$T/work" "$T/certs"
	[ -f "$T/certs/ca.crt" ] || make_certs "$T/certs"
	cat >"$T/sink.conf" <<CONF
# written by relay.sh
listen_address = '127.0.0.1:$SINK_PORT'
http_listen = '127.0.0.1:$HTTP_PORT'
dr_conninfo = '$DR_CONN'
work_dir = '$T/work'
tls_ca = '$T/certs/ca.crt'
tls_cert = '$T/certs/server.crt'
tls_key = '$T/certs/server.key'
tls_peer_name = 'pgferry-source'
log_level = info
# most tests create the same schema on both sides instead of cloning
initial_copy = external
CONF
	# PGFERRY_TEST_APPLY_WORKERS runs a test with parallel apply
	[ -z "${PGFERRY_TEST_APPLY_WORKERS:-}" ] ||
		echo "apply_workers = $PGFERRY_TEST_APPLY_WORKERS" >>"$T/sink.conf"
	cat >"$T/source.conf" <<CONF
# written by relay.sh
primary_conninfo = '$PRIMARY_CONN'
sink_address = '127.0.0.1:$SINK_PORT'
tls_ca = '$T/certs/ca.crt'
tls_cert = '$T/certs/client.crt'
tls_key = '$T/certs/client.key'
tls_peer_name = 'localhost'
reconnect_max_delay = 500ms
log_level = info
CONF
	local line
	for line in "$@"; do
		case $line in
		sink:*) echo "${line#sink:}" >>"$T/sink.conf" ;;
		source:*) echo "${line#source:}" >>"$T/source.conf" ;;
		*) fail "relay_setup: say sink: or source: before \"$line\"" ;;
		esac
	done
	SINK_URL="http://127.0.0.1:$HTTP_PORT"
	export SINK_PORT HTTP_PORT SINK_URL
}

metric_in()
{ # reads to the end: curl | awk must not lose its pipe under pipefail
	awk -v m="$2" '{ n = $1; sub(/[{].*/, "", n) } n == m && !done { print $2; done = 1 }' "$1"
}
metric()
{
	curl -s "$SINK_URL/metrics" >"$T/metric.$$.txt"
	metric_in "$T/metric.$$.txt" "$1"
}

sink_start() { bg_start sink "$PGFERRY_BIN" sink --config "$T/sink.conf" "$@"; }
source_start() { bg_start source "$PGFERRY_BIN" source --config "$T/source.conf" "$@"; }
sink_stop() { bg_stop sink "${1:-TERM}"; }
source_stop() { bg_stop source "${1:-TERM}"; }

# Where the DR side's apply stands (over all of the stream's origins), and
# a wait until it has moved from such a figure: the first groups of a
# backlog committed, the rest under way.
dr_applied() { psql_on dr -c "SELECT coalesce(pgferry.applied_lsn(false), '0/0')"; }
wait_apply_moved()
{
	wait_until "apply under way" 60 bash -c \
		"[ \"\$(psql '$DR_CONN' -XAtc \"SELECT coalesce(pgferry.applied_lsn(false), '0/0')\")\" != '$1' ]"
}

# A marker row committed on the primary now; wait until the DR side has it.
MARKER_SEQ=0
wait_applied()
{
	local timeout=${1:-60}
	# a marker written before the slot exists would never be streamed
	wait_until "an active slot on the primary" "$timeout" bash -c \
		"[ \"\$(psql '$PRIMARY_CONN' -XAtc \"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '${WAIT_SLOT:-pgferry}' AND active\")\" = 1 ]"
	MARKER_SEQ=$((MARKER_SEQ + 1))
	local id="$$-$MARKER_SEQ-$RANDOM"
	psql_on primary -c "INSERT INTO pgferry_test_marker VALUES ('$id')" >/dev/null ||
		fail "could not write a marker on the primary"
	wait_until "marker $id on the DR database" "$timeout" \
		bash -c "[ \"\$(psql '$DR_CONN' -XAtc \"SELECT count(*) FROM pgferry_test_marker WHERE id = '$id'\")\" = 1 ]"
}

# Creates the same schema on both sides (DR first, empty) plus the marker table.
schema_both()
{
	local sql=$1
	psql_on dr -c "$sql" >/dev/null || fail "schema on DR failed"
	psql_on primary -c "$sql" >/dev/null || fail "schema on primary failed"
	psql_on dr -c "CREATE TABLE IF NOT EXISTS pgferry_test_marker (id text PRIMARY KEY)" >/dev/null
	psql_on primary -c "CREATE TABLE IF NOT EXISTS pgferry_test_marker (id text PRIMARY KEY)" >/dev/null
}

table_digest()
{ # rows in a stable order, hashed: equal digests mean equal contents
	psql_on "$1" -c "SELECT count(*) || ':' || coalesce(md5(string_agg(ROW(t.*)::text, E'\\n' ORDER BY ROW(t.*)::text)), '') FROM $2 t"
}

tables_equal()
{
	local t p d
	for t in "$@"; do
		p=$(table_digest primary "$t") || fail "cannot read $t on the primary"
		d=$(table_digest dr "$t") || fail "cannot read $t on the DR database"
		[ "$p" = "$d" ] || fail "table $t differs: primary $p, DR $d"
		log "table $t equal (${p%%:*} rows)"
	done
}

# The slot's confirmed_flush_lsn must never pass the DR origin's progress.
check_no_loss_invariant()
{
	local slot dr
	slot=$(psql_on primary -c "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'pgferry'")
	dr=$(psql_on dr -c "SELECT pgferry.applied_lsn(true)")
	[ -z "$slot" ] && return 0
	[ -z "$dr" ] && dr=0/0
	ok=$(psql_on dr -c "SELECT '$slot'::pg_lsn <= '$dr'::pg_lsn")
	[ "$ok" = t ] || fail "slot confirmed_flush_lsn $slot is ahead of the DR origin progress $dr"
}
