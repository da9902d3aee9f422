# t_admission.sh — nobody who can reach the sink's port keeps the real source
# out. While 20 addresses (127.0.0.2-21) each keep 8 connections open that
# never finish TLS, reopening them twice a second, and a holder with a valid
# source certificate keeps connecting and only pings (it never says hello),
# the real source is restarted and must stream again within ADMISSION_BOUND
# seconds; its log must not blame the certificates. Then the flood from
# 127.0.0.1 itself, the real source's own address.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

BOUND=${ADMISSION_BOUND:-20}
cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup
sink_start
source_start
wait_applied 60

cat >"$T/attack.py" <<'PY'
# attack.py PORT STOP_FILE CERT_DIR FIRST_ADDR LAST_ADDR
import socket, ssl, struct, sys, threading, time, os
port, stop, certs = int(sys.argv[1]), sys.argv[2], sys.argv[3]
first, last = int(sys.argv[4]), int(sys.argv[5])
stats = {'flood': 0, 'holder': 0, 'held_s': 0.0}

def flood(addr):
    # 8 connections that never start TLS, each reopened after half a second
    conns = []
    while not os.path.exists(stop):
        while len(conns) < 8:
            s = socket.socket()
            try:
                s.bind((addr, 0))
                s.settimeout(1)
                s.connect(('127.0.0.1', port))
                conns.append(s)
                stats['flood'] += 1
            except OSError:
                s.close()
                break
        time.sleep(0.5)
        for s in conns:
            s.close()
        conns = []

def holder():
    # a valid source certificate that pings and never says hello
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(certs + '/ca.crt')
    ctx.load_cert_chain(certs + '/client.crt', certs + '/client.key')
    ctx.check_hostname = False
    while not os.path.exists(stop):
        try:
            raw = socket.create_connection(('127.0.0.1', port), timeout=2)
            s = ctx.wrap_socket(raw, server_hostname='localhost')
            stats['holder'] += 1
            t0 = time.time()
            try:
                while not os.path.exists(stop):
                    # a ping frame: type 5, length 12, the header's CRC-32C,
                    # t1 0 and the payload's CRC-32C
                    s.sendall(struct.pack('>BIIqI', 5, 12, 0xd06568f9, 0, 0x8c28b28a))
                    time.sleep(0.1)
            finally:
                stats['held_s'] += time.time() - t0
                s.close()
        except (OSError, ssl.SSLError):
            time.sleep(0.05)

threads = [threading.Thread(target=flood, args=('127.0.0.%d' % i,)) for i in range(first, last + 1)]
threads.append(threading.Thread(target=holder))
for t in threads:
    t.daemon = True
    t.start()
while not os.path.exists(stop):
    time.sleep(0.2)
print('flood connections %d, holder connections %d, held %.1f s in all' %
      (stats['flood'], stats['holder'], stats['held_s']), flush=True)
PY

# restart_under_attack NAME FIRST LAST: the real source restarted during the attack
restart_under_attack()
{
	local name=$1 start
	rm -f "$T/$name.stop"
	bg_start "$name" python3 "$T/attack.py" "$SINK_PORT" "$T/$name.stop" "$T/certs" "$2" "$3"
	sleep 2 # the attack in full swing
	source_stop KILL
	sleep 5 # the holder has the slot to itself for longer than the hello deadline
	: >"$T/source.log"
	start=$SECONDS
	source_start
	wait_until "the real source streaming again during the attack ($name)" "$BOUND" \
		grep -q "streaming slot" "$T/source.log"
	log "$name: the real source streamed again $((SECONDS - start)) s after its restart (bound ${BOUND} s)"
	wait_applied 60
	touch "$T/$name.stop"
	wait_until "the attack ($name) stopped" 30 bash -c "! kill -0 $(bg_pid "$name")"
	cat "$T/$name.log"
	# a handshake the sink dropped in the flood is retried, and its hint
	# says that no certificate was refused: that line blames nothing
	if grep -Ei "certificate|tls_ca|tls_peer_name" "$T/source.log" | grep -v "No certificate was refused"; then
		fail "the source's log blames the certificates"
	fi
}
restart_under_attack attack 2 21
grep -E "dropped|no hello|sent no hello|before its hello" "$T/sink.log" | head -5
grep -qE "no hello|sent no hello|before its hello" "$T/sink.log" || fail "the sink did not say it dropped the holder"
restart_under_attack attack_same 1 1
tables_equal t
log "admission ok"
