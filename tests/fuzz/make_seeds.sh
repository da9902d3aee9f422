#!/usr/bin/env bash
# make_seeds.sh — seeds the fuzz corpora from a real PostgreSQL capture:
# corpus/capture/ gets small capture files, corpus/pgoutput/ each distinct
# message (prefixed by the fuzz target's selector byte), corpus/frame/ a few
# hand-made frames. Run by hand when the protocol grows; the output is
# committed. "make_seeds.sh frames" remakes only the frames (no server).
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$HERE/corpus/frame"
python3 - "$HERE/corpus/frame" <<'PY'
import hashlib, os, struct, sys
out = sys.argv[1]
for f in [f for f in os.listdir(out) if not f.startswith("batch-")]:
    os.remove(os.path.join(out, f))
def crc32c(b):
    crc = 0xffffffff
    for x in b:
        crc ^= x
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff
def save(blob):
    open(os.path.join(out, hashlib.sha1(blob).hexdigest()[:16]), "wb").write(blob)
# frames (protocol 3: type, length, CRC-32C of both; control frames but
# ERROR end with a CRC-32C of their payload): hello, ack, ping,
# pong, error, end-of-stream, primary facts, a batch; one damaged header
# (batch-seed, a real batch from a capture, batch-pieces, a message in
# two pieces made with batch_encoder_add_piece, and batch-delta-pieces, the
# first batch of a connection coded as differences holding a Begin, whole
# XLogData records and the first pieces of a larger one, are kept: they are
# not remade here, python has no zstd or XXH3)
def frame(t, p):
    if t not in (3, 7):  # every control frame but ERROR checks its payload
        p += struct.pack(">I", crc32c(p))
    h = bytes([t]) + struct.pack(">I", len(p))
    return h + struct.pack(">I", crc32c(h)) + p
s = lambda x: struct.pack(">H", len(x)) + x
save(frame(1, struct.pack(">HQIBIq", 3, 7311, 1, 3, 1, 1000) + s(b"postgres") + s(b"pgferry")))
save(frame(4, struct.pack(">QQQ", 1, 2, 3)))
save(frame(5, struct.pack(">q", 5)))
save(frame(6, struct.pack(">qqq", 5, 6, 7)))
save(frame(7, struct.pack(">H", 3) + s(b"identity mismatch")))
save(frame(8, struct.pack(">Q", 99)))
save(frame(9, struct.pack(">qQQ", 5, 6, 7) + s(b"") + struct.pack(">qqBq", 1, -1, 1, 0)))
save(frame(3, b"\0" * 40))
bad = bytearray(frame(4, struct.pack(">QQQ", 1, 2, 3)))
bad[2] ^= 0x02
save(bytes(bad))
PY
[ "${1:-}" = frames ] && exit 0
. "$(dirname "$0")/../integration/lib.sh"
cluster_start primary "logical_decoding_work_mem = 64kB"
psql_on primary -f "$HERE/../integration/schema.sql" >/dev/null
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES WITH (publish_via_partition_root = true)" >/dev/null
psql_on primary -c "SELECT pg_create_logical_replication_slot('seed', 'pgoutput', false, true)" >/dev/null
# the workload without its large parts, plus one small streamed transaction
sed -e 's/generate_series(1, 20000)/generate_series(1, 300)/' -e 's/generate_series(100001, 120000)/generate_series(100001, 100300)/' \
	-e 's/generate_series(200001, 205000)/generate_series(200001, 200300)/' -e 's/generate_series(300001, 310000)/generate_series(300001, 300300)/' \
	-e 's/generate_series(400001, 405000)/generate_series(400001, 400300)/' -e 's/generate_series(1, 4000)/generate_series(1, 200)/' \
	"$HERE/../integration/workload.sql" | psql_on primary >/dev/null
"$PGFERRY" capture -d "$PRIMARY_CONN" --slot seed -o "$T/seed.cap" --proto-version 3 --streaming \
	--two-phase --messages --until-idle 2s
mkdir -p "$HERE/corpus/capture" "$HERE/corpus/pgoutput"
python3 - "$T/seed.cap" "$HERE/corpus" <<'PY'
import hashlib, os, struct, sys
data = open(sys.argv[1], "rb").read()
out = sys.argv[2]
pos, recs = 8, []
while pos < len(data):
    n = struct.unpack(">I", data[pos:pos + 4])[0]
    recs.append(data[pos + 4:pos + 4 + n]); pos += 4 + n
def save(d, blob):
    open(os.path.join(out, d, hashlib.sha1(blob).hexdigest()[:16]), "wb").write(blob)
# captures: the head of the stream and a few slices
save("capture", data[:min(len(data), 6000)])
for i in range(0, len(recs), 40):
    save("capture", b"PGFCAP1\n" + b"".join(struct.pack(">I", len(r)) + r for r in recs[i:i + 40]))
seen, in_stream = set(), False
for r in recs:
    if r[:1] != b"w":
        continue
    msg = r[25:]
    t = msg[:1]
    sel = 2 | (4 if in_stream and t not in b"SE" else 0)   # protocol 3
    if t == b"S": in_stream = True
    if t == b"E": in_stream = False
    key = (t, len(msg) // 64)
    if key in seen:
        continue
    seen.add(key)
    save("pgoutput", bytes([sel]) + msg)
PY
ls "$HERE/corpus"/* | head -3; du -sh "$HERE/corpus"
