# t_http_attack.sh — the HTTP API answers under attack and parses strictly.
# Slow-header clients (16 from 127.0.0.1, the failover tool's own address,
# and 80 spread over 127.0.0.2-81), each sending a header byte every 0.3 s
# and reconnecting when dropped, while a failover tool asks for the verdict
# ten times: each answer must come within a second. Then unknown, repeated,
# valueless and out-of-range parameters: 400 with the reason.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup
sink_start
source_start
wait_applied 60

cat >"$T/slow.py" <<'PY'
# slow.py PORT STOP_FILE: slow-header clients that never finish their request
import os, socket, sys, threading, time
port, stop = int(sys.argv[1]), sys.argv[2]
opened = [0]

def client(addr):
    while not os.path.exists(stop):
        s = socket.socket()
        try:
            s.bind((addr, 0))
            s.settimeout(2)
            s.connect(('127.0.0.1', port))
            opened[0] += 1
            s.sendall(b'GET /v1/status HTTP/1.1\r\nHost: x\r\n')
            while not os.path.exists(stop):
                s.sendall(b'X')
                time.sleep(0.3)
        except OSError:
            time.sleep(0.05)
        finally:
            s.close()

addrs = ['127.0.0.1'] * 16 + ['127.0.0.%d' % i for i in range(2, 82)]
for a in addrs:
    threading.Thread(target=client, args=(a,), daemon=True).start()
while not os.path.exists(stop):
    time.sleep(0.2)
print('slow clients opened %d connections' % opened[0], flush=True)
PY
bg_start slow python3 "$T/slow.py" "$HTTP_PORT" "$T/slow.stop"
sleep 3 # every slow client connected, the limits reached
for i in $(seq 10); do
	out=$(curl -s -o /dev/null --max-time 1 -w '%{http_code} %{time_total}' "$SINK_URL/v1/promotion-safety") || true
	log "failover tool request $i: HTTP ${out% *} in ${out#* } s"
	case ${out% *} in 200 | 409 | 503) ;; *) fail "request $i during the attack not answered within 1 s: $out" ;; esac
	sleep 0.3
done
touch "$T/slow.stop"
wait_until "the slow clients stopped" 30 bash -c "! kill -0 $(bg_pid slow)"
cat "$T/slow.log"
grep "HTTP API: dropped" "$T/sink.log" | head -3

# strict query parsing
bad()
{ # bad PATH PATTERN: 400 whose body names the reason
	local body code
	code=$(curl -s -o "$T/bad.out" -w '%{http_code}' "$SINK_URL$1")
	body=$(cat "$T/bad.out")
	[ "$code" = 400 ] || fail "$1: HTTP $code, not 400 ($body)"
	grep -q "$2" "$T/bad.out" || fail "$1: the reason does not say \"$2\": $body"
	log "$1 -> 400 $body"
}
bad "/v1/promotion-safety?maxrpo=1ms" 'unknown parameter \\"maxrpo\\"'
bad "/v1/promotion-safety?max_rpo=1s&max_rpo=2s" "more than once"
bad "/v1/promotion-safety?max_rpo=" "no value"
bad "/v1/promotion-safety?max_rpo=400d" "out of range"
bad "/v1/promotion-safety?max_apply_backlog=99999999999999999999" "max_apply_backlog"
bad "/v1/status?verbose=1" "unknown parameter"
bad "/metrics?x" "unknown parameter"
code=$(curl -s -o /dev/null -w '%{http_code}' "$SINK_URL/v1/promotion-safety?max_rpo=1h&max_apply_backlog=0")
[ "$code" = 200 ] || fail "a good query: HTTP $code"
log "http under attack ok"
