# t_tls.sh — mutual TLS: the sink refuses a client without a certificate, one
# signed by another CA, one the CA signed for another host, the sink's own
# certificate, and a plaintext client; the sink does not start without
# tls_peer_name; the source refuses a sink whose name does not match;
# plaintext is refused off loopback.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup
sink_start
wait_until "sink listening" 30 bash -c "ss -Htln '( sport = :$SINK_PORT )' | grep -q ."

# no client certificate at all
echo | timeout 10 openssl s_client -connect "127.0.0.1:$SINK_PORT" -CAfile "$T/certs/ca.crt" \
	>"$T/s_client.log" 2>&1 || true
# a client certificate from another CA
echo | timeout 10 openssl s_client -connect "127.0.0.1:$SINK_PORT" -CAfile "$T/certs/ca.crt" \
	-cert "$T/certs/other-client.crt" -key "$T/certs/other-client.key" >>"$T/s_client.log" 2>&1 || true
# the source itself with the wrong certificate
bg_start badsource "$PGFERRY_BIN" source --config "$T/source.conf" \
	-c "tls_cert=$T/certs/other-client.crt" -c "tls_key=$T/certs/other-client.key"
sleep 3
bg_stop badsource
[ "$(psql_on dr -c "SELECT count(*) FROM pgferry.identity")" = 0 ] ||
	fail "a stream was accepted from a source with a foreign certificate"
n=$(grep -Eic "certificate|tls|handshake" "$T/sink.log")
[ "$n" -ge 2 ] || fail "the sink did not log the refused clients ($n lines)"
grep -Ei "certificate|tls|handshake" "$T/sink.log" | head -5

# certificates the right CA signed, but not for the source: another host's, the sink's own
for c in stranger server; do
	before=$(grep -c "hostname mismatch" "$T/sink.log")
	bg_start "as_$c" "$PGFERRY_BIN" source --config "$T/source.conf" \
		-c "tls_cert=$T/certs/$c.crt" -c "tls_key=$T/certs/$c.key"
	wait_until "the sink refused the $c certificate" 30 \
		bash -c "[ \$(grep -c 'hostname mismatch' '$T/sink.log') -gt $before ]"
	bg_stop "as_$c"
	[ "$(psql_on dr -c "SELECT count(*) FROM pgferry.identity")" = 0 ] ||
		fail "a stream was accepted from a source with the $c certificate"
done
grep -i "hostname mismatch" "$T/sink.log" | head -2

# a sink without tls_peer_name does not start
grep -v tls_peer_name "$T/sink.conf" >"$T/sink-noname.conf"
rc=0
timeout 10 "$PGFERRY_BIN" sink --config "$T/sink-noname.conf" \
	-c "listen_address=127.0.0.1:$(free_port)" -c "http_listen=127.0.0.1:$(free_port)" \
	>"$T/noname.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || [ "$rc" = 124 ] && fail "a sink without tls_peer_name started (exit $rc)"
grep -q "tls_peer_name" "$T/noname.log" || fail "no clear error for a sink without tls_peer_name"
cat "$T/noname.log"

# a plaintext client against a TLS sink
bg_start plainsource "$PGFERRY_BIN" source --config "$T/source.conf" -c tls=off
sleep 2
bg_stop plainsource
[ "$(psql_on dr -c "SELECT count(*) FROM pgferry.identity")" = 0 ] || fail "plaintext accepted"

# the source checks the sink's name
bg_start wrongname "$PGFERRY_BIN" source --config "$T/source.conf" -c tls_peer_name=not-the-sink
sleep 2
bg_stop wrongname
grep -Eiq "name|certificate|verify" "$T/wrongname.log" || fail "the source did not say why it refused the sink"

# plaintext off loopback is refused at start
if "$PGFERRY_BIN" source --config "$T/source.conf" -c tls=off -c sink_address=192.0.2.1:7433 \
	>"$T/offloop.log" 2>&1; then
	fail "plaintext to a non-loopback address was accepted"
fi
grep -qi loopback "$T/offloop.log" || fail "no clear error for plaintext off loopback"

# and the right source gets through
source_start
wait_applied 60
log "tls ok"
