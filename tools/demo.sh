#!/usr/bin/env bash
# demo.sh — "make demo": pgferry's main job on an embedded default, in about
# two minutes, cleaning up after itself. It runs the product only: the
# certificates come from deploy/make-certs.sh, the configuration files it
# writes are printed to be copied, and nothing of the tests is used but the
# helpers that start and stop the two PostgreSQL clusters.
#
#   1. certificates with deploy/make-certs.sh (a CA, the sink's, the source's)
#   2. a primary with data and an empty DR cluster; the three configuration
#      files; pgferry check; pgferry clone
#   3. source and sink; a pgbench workload; the live lag report
#   4. a regional failure: kill -9 of the primary and of the source
#   5. promote-check right away and once the backlog drained
#   6. pgferry promote: drain, fence, sequences, the promotion point
#   7. the old primary restarted: refused by the fenced sink; pgferry verify
#      shows which commits never reached the DR side
. "$(dirname "$0")/../tests/integration/lib.sh"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
WORKLOAD_SECONDS=${DEMO_WORKLOAD_SECONDS:-25}

say "1. Certificates (deploy/make-certs.sh): a CA, one for the sink (localhost), one for the source"
bash "$ROOT/deploy/make-certs.sh" -d "$T/certs" localhost,127.0.0.1 pgferry-source >"$T/certs.log" 2>&1 ||
	fail "deploy/make-certs.sh: $(cat "$T/certs.log")"
ls "$T/certs"/*.crt | sed 's|^|   |'

say "2. A primary with data and an empty DR cluster (PostgreSQL $(pg_config --version | awk '{print $2}'), loopback)"
cluster_start primary
cluster_start dr
echo "   primary: port $PRIMARY_PORT     DR: port $DR_PORT     (in $T)"
pgbench -q -i -s 2 "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench data on the primary"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
echo "   200,000 pgbench accounts on the primary; publication \"pgferry\"; the DR database is empty"

SINK_PORT=$(free_port) || fail "no free port"
HTTP_PORT=$(free_port) || fail "no free port"
SINK_URL="http://127.0.0.1:$HTTP_PORT"
mkdir -p "$T/work"
cat >"$T/clone.conf" <<CONF
# clone.conf: pgferry clone and pgferry verify (on the DR host)
primary_conninfo = '$PRIMARY_CONN'
dr_conninfo = '$DR_CONN'
slot_name = 'pgferry'
publication = 'pgferry'
CONF
cat >"$T/sink.conf" <<CONF
# sink.conf: pgferry sink, next to the DR database
listen_address = '127.0.0.1:$SINK_PORT'
http_listen = '127.0.0.1:$HTTP_PORT'
dr_conninfo = '$DR_CONN'
work_dir = '$T/work'
tls_ca = '$T/certs/ca.crt'
tls_cert = '$T/certs/sink.crt'
tls_key = '$T/certs/sink.key'
tls_peer_name = 'pgferry-source'
max_rpo = 60s
CONF
cat >"$T/source.conf" <<CONF
# source.conf: pgferry source, next to the primary
primary_conninfo = '$PRIMARY_CONN'
sink_address = 'localhost:$SINK_PORT'
tls_ca = '$T/certs/ca.crt'
tls_cert = '$T/certs/source.crt'
tls_key = '$T/certs/source.key'
reconnect_max_delay = 1s
CONF
echo
echo "   The three configuration files of this demo (deploy/*.conf.sample explain every line):"
for f in clone sink source; do
	echo
	sed 's/^/     /' "$T/$f.conf"
done
echo
echo "   pgferry check --config sink.conf: the pre-flight, before the sink starts"
"$PGFERRY" check --config "$T/sink.conf" 2>&1 | sed 's/^/   /'
[ "${PIPESTATUS[0]}" = 0 ] || fail "the sink's configuration does not pass its check"
echo
echo "   pgferry clone --config clone.conf: slot with an exported snapshot, schema, data, hand-over"
"$PGFERRY" clone --config "$T/clone.conf" 2>&1 | sed 's/^/   /'
[ "${PIPESTATUS[0]}" = 0 ] || fail "clone failed"

say "3. pgferry source (next to the primary) → mutual TLS → pgferry sink (next to DR)"
bg_start sink "$PGFERRY" sink --config "$T/sink.conf"
wait_until "the sink listening" 60 bash -c "ss -Htln '( sport = :$SINK_PORT )' | grep -q ."
echo "   pgferry check --config source.conf, with the sink listening (a TLS handshake with it):"
"$PGFERRY" check --config "$T/source.conf" 2>&1 | tail -1 | sed 's/^/   /'
bg_start source "$PGFERRY" source --config "$T/source.conf"
# the verdict is safe once the stream is applied up to the primary's present
wait_until "the DR side caught up" 60 "$PGFERRY" promote-check --url "$SINK_URL" --max-rpo 10s
echo "   streaming from the clone's consistent point; the sink serves $SINK_URL/v1/status,"
echo "   /metrics, /v1/promotion-safety"

say "   A pgbench workload on the primary for ${WORKLOAD_SECONDS}s (4 clients); the live lag report:"
bg_start pgbench pgbench -n -c 4 -j 2 -T "$WORKLOAD_SECONDS" -P 5 "$PRIMARY_CONN"
for _ in 1 2 3; do
	sleep $((WORKLOAD_SECONDS / 4))
	echo
	"$PGFERRY" lag --url "$SINK_URL" | sed 's/^/   /'
done

say "4. Regional failure: kill -9 of the primary and of the source, mid-workload"
cluster_ctl primary kill
kill -9 "$(bg_pid source)" 2>/dev/null
{ wait "$(bg_pid source)"; } 2>/dev/null
FAILED_AT=$(date +%s%3N)
echo "   primary and source are gone at $(date -u +%H:%M:%S.%3N) UTC"

say "5. Ask before promoting: pgferry promote-check --max-rpo 30s (right away, then until safe)"
"$PGFERRY" promote-check --url "$SINK_URL" --max-rpo 30s | sed 's/^/   /'
echo "   (exit code ${PIPESTATUS[0]}: 0 safe, 1 unsafe, 2 cannot tell)"
SAFE_AT=""
for _ in $(seq 300); do
	if "$PGFERRY" promote-check --url "$SINK_URL" --max-rpo 30s >/dev/null 2>&1; then
		SAFE_AT=$(date +%s%3N)
		break
	fi
	sleep 0.05
done
echo
"$PGFERRY" lag --url "$SINK_URL" | sed 's/^/   /'
sleep 2
echo
echo "   Two seconds on, with a tighter budget of 1 s: nothing has been heard from the"
echo "   primary for longer than that, so commits it made since may be missing:"
"$PGFERRY" promote-check --url "$SINK_URL" --max-rpo 1s | sed 's/^/   /'
echo "   (exit code ${PIPESTATUS[0]})"

say "6. pgferry promote: drain what was received, fence the sink, move sequences, record the point"
bg_stop pgbench
"$PGFERRY" promote --config "$T/sink.conf" --url "$SINK_URL" --reason "demo: primary region lost" 2>&1 |
	sed 's/^/   /'
"$PGFERRY" promote-check --url "$SINK_URL" --max-rpo 1h 2>&1 | grep -i fenced | head -1 | sed 's/^ *- /   promote-check now says: /'

say "7. The old primary comes back: it is refused, and pgferry verify shows what it has that DR lacks"
cluster_ctl primary start
bg_start source "$PGFERRY" source --config "$T/source.conf"
wait_until "the fenced sink refuses the old primary" 30 grep -q "refusing the stream" "$T/sink.log"
grep "refusing the stream" "$T/sink.log" | tail -1 | sed 's/^.*ERROR: /   sink: /'
p_rows=$(psql_on primary -c "SELECT count(*) FROM pgbench_history")
d_rows=$(psql_on dr -c "SELECT count(*) FROM pgbench_history")
lost=$((p_rows - d_rows))
p_last=$(psql_on primary -c "SELECT max(mtime) FROM pgbench_history")
d_last=$(psql_on dr -c "SELECT max(mtime) FROM pgbench_history")
gap_ms=$(psql_on primary -c "SELECT round(extract(epoch FROM '$p_last'::timestamp - '$d_last'::timestamp) * 1000)")
echo
"$PGFERRY" verify --config "$T/clone.conf" 2>&1 | sed 's/^/   /'
echo "   (exit code ${PIPESTATUS[0]}: 0 equal, 1 differ, 2 cannot tell)"
echo
echo "   committed on the old primary: $p_rows pgbench transactions; on DR: $d_rows"
echo "   measured RPO: $lost committed transaction(s) never reached the DR side;"
echo "   the newest transaction on DR is ${gap_ms} ms older than the newest on the primary"
if [ -n "$SAFE_AT" ]; then
	echo "   time from the failure to a safe verdict (max_rpo 30s): $((SAFE_AT - FAILED_AT)) ms"
else
	echo "   the verdict did not turn safe within 15 s"
fi
say "Done. Everything started here is being stopped and removed."
