#!/usr/bin/env bash
# demo.sh — "make demo": pgferry's main job on an embedded default, in about
# two minutes, cleaning up after itself.
#
#   1. throwaway TLS keys (a CA, the sink's and the source's certificates)
#   2. a primary and a DR cluster (PostgreSQL, loopback, temporary directory)
#   3. source and sink; a pgbench workload; the live lag report
#   4. a regional failure: kill -9 of the primary and of the source
#   5. promote-check right away and once the backlog drained
#   6. the old primary restarted: which commits never reached the DR side
. "$(dirname "$0")/../tests/integration/lib.sh"
. "$(dirname "$0")/../tests/integration/relay.sh"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
WORKLOAD_SECONDS=${DEMO_WORKLOAD_SECONDS:-25}

say "1. Throwaway TLS keys: a CA, a certificate for the sink and one for the source"
make_certs "$T/certs"
ls "$T/certs"/*.crt | sed 's|^|   |'

say "2. A primary and a DR cluster (PostgreSQL $(pg_config --version | awk '{print $2}'), loopback)"
cluster_start primary
cluster_start dr
echo "   primary: port $PRIMARY_PORT     DR: port $DR_PORT     (in $T)"
pgbench -q -i -I dtp "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench schema on the primary"
pgbench -q -i -I dtp "$DR_CONN" >/dev/null 2>&1 || fail "pgbench schema on DR"
psql_on primary -c "CREATE TABLE pgferry_test_marker (id text PRIMARY KEY)" >/dev/null
psql_on dr -c "CREATE TABLE pgferry_test_marker (id text PRIMARY KEY)" >/dev/null
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
echo "   schema on both sides; publication \"pgferry\" on the primary"

say "3. pgferry source (next to the primary) → mutual TLS → pgferry sink (next to DR)"
relay_setup "sink:max_rpo = 60s"
sink_start
source_start
wait_applied 60
echo "   streaming; the sink serves $SINK_URL/v1/status, /metrics, /v1/promotion-safety"
pgbench -q -i -I g -s 2 "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench data"
wait_applied 120
echo "   200,000 accounts loaded on the primary and streamed to DR"

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

say "6. The old primary comes back: what did the DR side never receive?"
bg_stop pgbench
sink_stop
cluster_ctl primary start
p_rows=$(psql_on primary -c "SELECT count(*) FROM pgbench_history")
d_rows=$(psql_on dr -c "SELECT count(*) FROM pgbench_history")
lost=$((p_rows - d_rows))
p_last=$(psql_on primary -c "SELECT max(mtime) FROM pgbench_history")
d_last=$(psql_on dr -c "SELECT max(mtime) FROM pgbench_history")
gap_ms=$(psql_on primary -c "SELECT round(extract(epoch FROM '$p_last'::timestamp - '$d_last'::timestamp) * 1000)")
echo "   committed on the primary: $p_rows pgbench transactions; on DR: $d_rows"
echo "   measured RPO: $lost committed transaction(s) never reached the DR side;"
echo "   the newest transaction on DR is ${gap_ms} ms older than the newest on the primary"
if [ -n "$SAFE_AT" ]; then
	echo "   time from the failure to a safe verdict (max_rpo 30s): $((SAFE_AT - FAILED_AT)) ms"
else
	echo "   the verdict did not turn safe within 15 s"
fi
say "Done. Everything started here is being stopped and removed."
