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
# flip a bit 100 kB into the stream: inside the batches of the data load
# (100k pgbench rows compress to about 270 kB)
bg_start proxy "$ROOT/build/faultproxy" "$PROXY_PORT" "$SINK_PORT" 100000
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

# garbage straight to the sink (the source stopped, so the sink reads it):
# a clear error each time, and replication goes on afterwards
source_stop
wait_until "the sink to see the source gone" 20 bash -c "curl -s '$SINK_URL/v1/status' | grep -q '\"state\":\"disconnected\"'"
send_bytes()
{ # the sink closes on us: a broken pipe here is expected
	(
		exec 3<>"/dev/tcp/127.0.0.1/$SINK_PORT" || exit 0
		printf "$1" >&3
		sleep 0.3
	) 2>/dev/null || true
}
send_bytes 'GET / HTTP/1.0\r\n\r\nthis is not pgferry'
wait_until "garbage reported" 10 grep -q "damaged frame header at byte 0" "$T/sink.log"
# frame headers with a valid check (CRC-32C of type and length)
header()
{ # header TYPE LENGTH: printf escapes of a 9-byte frame header
	python3 - "$1" "$2" <<'PY'
import struct, sys
h = bytes([int(sys.argv[1])]) + struct.pack(">I", int(sys.argv[2]))
crc = 0xffffffff
for b in h:
    crc ^= b
    for _ in range(8):
        crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
print("".join("\\%03o" % b for b in h + struct.pack(">I", crc ^ 0xffffffff)))
PY
}
# an oversized frame: type 1 (hello), length 2^31 - 1
send_bytes "$(header 1 2147483647)"
wait_until "oversized frame reported" 10 grep -q "exceeds max_frame_bytes" "$T/sink.log"
# an unknown type
send_bytes "$(header 200 4)"
wait_until "unknown type reported" 10 grep -q "unknown frame type 200" "$T/sink.log"
# a truncated hello, then the peer goes away
send_bytes "$(header 1 32)\000\002"
grep -E "damaged frame header|unknown frame type|exceeds max_frame_bytes" "$T/sink.log" | head -3
source_start
psql_on primary -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 100" >/dev/null
wait_applied 60
tables_equal pgbench_accounts
bad=$(curl -s "$SINK_URL/metrics" | awk '/^pgferry_bad_batches_total/ {print $2}')
[ "${bad:-0}" -ge 3 ] || fail "pgferry_bad_batches_total is ${bad:-missing}, expected at least 3"
log "integrity ok: $bad bad frames counted"
