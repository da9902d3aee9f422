# t_integrity.sh — guarantee 3: a flipped bit in a frame (injected by a proxy
# between source and sink) is rejected, counted and resent, and nothing of the
# damaged batch is applied; garbage and oversized frames get clear errors and
# disturb nothing. Plaintext (tls = off, loopback) so that the damage reaches
# pgferry's own checks instead of TLS's.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
pgbench -q -i -I dtp "$DR_CONN" >/dev/null 2>&1 || fail "pgbench schema on DR"
pgbench -q -i -I dtp "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench schema on primary"
schema_both "SELECT 1"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null

relay_setup "sink:tls = off" "source:tls = off"
PROXY_PORT=$(free_port)
sed -i "s/^sink_address = .*/sink_address = '127.0.0.1:$PROXY_PORT'/" "$T/source.conf"
# flip a bit 300 kB into the stream: inside the batches of the data load
bg_start proxy "$ROOT/build/faultproxy" "$PROXY_PORT" "$SINK_PORT" 300000
sink_start
source_start
wait_applied 60
pgbench -q -i -I g -s 1 "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench data"
wait_applied 120
grep -q flipped "$T/proxy.log" || fail "the proxy flipped nothing"
grep -Eiq "rejected|checksum|decompress|malformed|frame" "$T/sink.log" ||
	fail "the sink did not report the damaged frame"
grep -Ei "rejected|checksum|decompress|malformed|frame" "$T/sink.log" | head -3
tables_equal pgbench_accounts pgbench_branches pgbench_tellers

# garbage straight to the sink: a clear error, and replication goes on
exec 3<>"/dev/tcp/127.0.0.1/$SINK_PORT" || fail "cannot reach the sink"
printf 'GET / HTTP/1.0\r\n\r\nthis is not pgferry' >&3
exec 3>&-
# an oversized frame header: type 1, length 2^31
exec 3<>"/dev/tcp/127.0.0.1/$SINK_PORT"
printf '\001\177\377\377\377' >&3
exec 3>&-
sleep 1
psql_on primary -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 100" >/dev/null
wait_applied 60
tables_equal pgbench_accounts
log "integrity ok"
