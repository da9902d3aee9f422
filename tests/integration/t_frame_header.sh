# t_frame_header.sh — a damaged frame header is refused at once. With
# tls = off a proxy flips bit 25 of the length of a frame header in the
# middle of a stream of small transactions (+32 MB: under max_frame_bytes,
# so a sink that believed it would wait for bytes that never come). The sink
# must refuse the header by its check, naming the offset; the source
# reconnects and resends, a row committed after the flip reaches the DR side
# within 20 s (about 1 s on a quiet machine), and the tables are equal with
# nothing applied twice. Then peers of wire protocol 1 (5-byte headers) are
# told so, each in its own framing, and a source of protocol 2 (no pieces)
# is refused with both versions named.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY, v text)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup "sink:tls = off" "source:tls = off"
PROXY_PORT=$(free_port) || fail "no free port"
sed -i "s/^sink_address = .*/sink_address = '127.0.0.1:$PROXY_PORT'/" "$T/source.conf"
bg_start proxy "$ROOT/build/faultproxy" "$PROXY_PORT" "$SINK_PORT" len
sink_start
source_start
wait_applied 60

# small transactions, one row each, so that batches are in flight when the
# header is damaged
psql_on primary -c "DO \$\$ BEGIN FOR i IN 1..1500 LOOP INSERT INTO t VALUES (i, md5(i::text)); COMMIT; PERFORM pg_sleep(0.004); END LOOP; END \$\$" \
	>"$T/workload.log" 2>&1 &
workload=$!
wait_until "rows arriving on the DR side" 60 bash -c "[ \"\$(psql '$DR_CONN' -XAtc 'SELECT count(*) > 100 FROM t')\" = t ]"
kill -USR1 "$(bg_pid proxy)"
wait_until "the proxy to flip a length bit" 20 grep -q flipped "$T/proxy.log"
grep flipped "$T/proxy.log"
start=$(date +%s%N)
psql_on primary -c "INSERT INTO t VALUES (0, 'committed after the flip')" >/dev/null || fail "insert after the flip"
wait_until "the row committed after the flip on the DR side (bound 20 s)" 20 \
	bash -c "[ \"\$(psql '$DR_CONN' -XAtc 'SELECT count(*) FROM t WHERE id = 0')\" = 1 ]"
log "replication resumed $(((($(date +%s%N) - start) / 1000000))) ms after the flip"
grep -q "damaged frame header at byte [0-9]* of the stream" "$T/sink.log" ||
	fail "the sink did not refuse the damaged header by its check"
grep -m1 -A2 "damaged frame header" "$T/sink.log"
grep -q "HINT: The connection is dropped and the source resends" "$T/sink.log" ||
	fail "the sink's log does not say what happens and what to do"
wait "$workload" || fail "the workload failed: $(cat "$T/workload.log")"
wait_applied 120
tables_equal t
[ "$(psql_on dr -c "SELECT count(*) FROM t")" = 1501 ] || fail "not 1501 rows on the DR side"
[ "$(grep -c "stream accepted" "$T/sink.log")" = 2 ] ||
	fail "expected one reconnect: $(grep "stream accepted" "$T/sink.log")"
bad=$(metric pgferry_bad_batches_total)
[ "${bad:-0}" = 1 ] || fail "pgferry_bad_batches_total is ${bad:-missing}, expected 1"
if grep -Ei "apply (error|failed)|duplicate key" "$T/sink.log"; then
	fail "something was applied twice or failed to apply"
fi
check_no_loss_invariant

# old_hello VERSION: sends the sink a hello of wire protocol VERSION (1:
# 5-byte frame headers; 2: checked 9-byte headers, no pieces) and prints
# its answer, read in that framing; fails unless it is an error frame
# (code 2) of the length announced
old_hello()
{
	python3 - "$SINK_PORT" "$1" <<'PY'
import socket, struct, sys
version = int(sys.argv[2])
head = 9 if version >= 2 else 5
def crc32c(b):
    crc = 0xffffffff
    for x in b:
        crc ^= x
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff
def frame(t, p):
    h = bytes([t]) + struct.pack(">I", len(p))
    return h + (struct.pack(">I", crc32c(h)) if version >= 2 else b"") + p
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
st = lambda x: struct.pack(">H", len(x)) + x
s.sendall(frame(1, struct.pack(">HQIBIq", version, 7311, 1, 3, 1, 0) + st(b"postgres") + st(b"pgferry")))
got = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    got += d
t, n = got[0], struct.unpack(">I", got[1:5])[0]
code, m = struct.unpack(">HH", got[head:head + 4])
print("type", t, "length", n, "code", code, got[head + 4:head + 4 + m].decode())
sys.exit(0 if t == 7 and n == len(got) - head and code == 2 else 1)
PY
}

# a source of protocol 1: its hello has a 5-byte header; the sink says why
# it refuses it, in protocol 1's framing, so that the old source can log it
source_stop
wait_until "the sink to see the source gone" 20 bash -c "curl -s '$SINK_URL/v1/status' | grep -q '\"state\":\"disconnected\"'"
old_hello 1 >"$T/v1_reply.txt" || fail "the sink's answer to an old hello: $(cat "$T/v1_reply.txt")"
cat "$T/v1_reply.txt"
grep -q "wire protocol 3.*upgrade the source" "$T/v1_reply.txt" || fail "the old source is not told to upgrade"
wait_until "the sink's log names the old protocol" 10 grep -q "refused the source at .*wire protocol 1 (an older pgferry)" "$T/sink.log"

# a source of protocol 2 (checked headers, no pieces): refused with both
# versions named, in the framing it reads
old_hello 2 >"$T/v2_reply.txt" || fail "the sink's answer to a protocol 2 hello: $(cat "$T/v2_reply.txt")"
cat "$T/v2_reply.txt"
grep -q "the source speaks wire protocol 2, this sink 3: upgrade the source" "$T/v2_reply.txt" ||
	fail "a protocol 2 source is not told both versions"

# a sink of protocol 1: it answers a hello it cannot read with an error in
# its framing; the source says the sink is older, with what it said
OLD_PORT=$(free_port) || fail "no free port"
python3 - "$OLD_PORT" >"$T/old_sink.log" 2>&1 <<'PY' &
import socket, struct, sys
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", int(sys.argv[1])))
l.listen(4)
l.settimeout(60)
for _ in range(2):
    c, _ = l.accept()
    c.recv(4096)
    m = b"unsupported wire protocol version"
    p = struct.pack(">HH", 2, len(m)) + m
    c.sendall(bytes([7]) + struct.pack(">I", len(p)) + p)
    c.close()
PY
old_sink=$!
source_start -c "sink_address=127.0.0.1:$OLD_PORT"
wait_until "the source's log names the older sink" 30 grep -q "the peer speaks wire protocol 1" "$T/source.log"
grep -m1 -A2 "the peer speaks wire protocol 1" "$T/source.log"
grep -q "Its first frame was an error in protocol 1's framing: unsupported wire protocol version" "$T/source.log" ||
	fail "the source does not repeat what the old sink said"
source_stop
kill "$old_sink" 2>/dev/null
wait "$old_sink" 2>/dev/null
log "frame header ok"
