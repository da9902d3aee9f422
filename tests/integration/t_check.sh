# t_check.sh — `pgferry check`, the pre-flight: with the roles of
# sql/primary_setup.sql and sql/dr_setup.sql (no superuser) it passes for
# the sink, the source and clone, and it fails with the right line (and
# exit 2) for each of: wal_level = replica, a missing publication, a role
# without SELECT on a sequence, a DR role without origin rights, a sink
# certificate for the wrong name, a world-readable key; the source and the
# sink refuse to start with the same line.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

# check FILE NAME [args]: runs pgferry check, output in $T/check-NAME.out, exit code in $CHECK_RC
check()
{
	local conf=$1 name=$2
	shift 2
	CHECK_RC=0
	"$PGFERRY_BIN" check --config "$conf" "$@" >"$T/check-$name.out" 2>&1 || CHECK_RC=$?
}
# expect_line NAME STATUS CHECK TEXT: the line of that check says so
expect_line()
{
	grep -q "^$2 *$3: .*$4" "$T/check-$1.out" ||
		fail "$1: no \"$2 $3: ...$4\" line: $(cat "$T/check-$1.out")"
}

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE customer (id bigserial PRIMARY KEY, name text)"
psql_on primary -f "$ROOT/sql/primary_setup.sql" >/dev/null || fail "sql/primary_setup.sql failed"
psql_on dr -f "$ROOT/sql/dr_setup.sql" >/dev/null || fail "sql/dr_setup.sql failed"
PRIMARY_ROLE_CONN="host=$PRIMARY_HOST port=$PRIMARY_PORT user=pgferry_source dbname=postgres"
DR_ROLE_CONN="host=$DR_HOST port=$DR_PORT user=pgferry_dr dbname=postgres"
# certificates of the recipe (the harness's own expire in 2 days), and one
# of the same CA for another host
bash "$ROOT/deploy/make-certs.sh" -d "$T/dcerts" localhost,127.0.0.1 pgferry-source >"$T/certs.log" 2>&1 ||
	fail "deploy/make-certs.sh: $(cat "$T/certs.log")"
(
	cd "$T/dcerts" && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out wrong.key 2>/dev/null &&
		openssl req -new -key wrong.key -subj /CN=wrong.example -addext subjectAltName=DNS:wrong.example -out wrong.csr &&
		printf 'subjectAltName=DNS:wrong.example\nextendedKeyUsage=serverAuth,clientAuth\n' >wrong.ext &&
		openssl x509 -req -in wrong.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile wrong.ext -out wrong.crt 2>/dev/null
) || fail "could not sign a certificate for another name"
relay_setup "source:primary_conninfo = '$PRIMARY_ROLE_CONN'" "sink:dr_conninfo = '$DR_ROLE_CONN'"
# a certificate that expires in 10 days: a warning, exit 1
bash "$ROOT/deploy/make-certs.sh" -d "$T/shortcerts" -days 10 localhost pgferry-source >"$T/certs.log" 2>&1 ||
	fail "deploy/make-certs.sh -days 10: $(cat "$T/certs.log")"
check "$T/sink.conf" expiry -c "tls_ca=$T/shortcerts/ca.crt" -c "tls_cert=$T/shortcerts/sink.crt" \
	-c "tls_key=$T/shortcerts/sink.key"
[ "$CHECK_RC" = 1 ] || fail "a certificate expiring in 10 days: exit $CHECK_RC: $(cat "$T/check-expiry.out")"
expect_line expiry warning tls_expiry 'expires in \(9\|10\) days.*Fix: issue a new certificate'
for side in sink source; do
	cat >>"$T/$side.conf" <<CONF
tls_ca = '$T/dcerts/ca.crt'
tls_cert = '$T/dcerts/$side.crt'
tls_key = '$T/dcerts/$side.key'
CONF
done

# all is well: the sink's configuration before the sink runs, the source's
# once the sink listens, clone's (the sink's file with the primary)
check "$T/sink.conf" sink
[ "$CHECK_RC" = 0 ] || fail "sink check exit $CHECK_RC: $(cat "$T/check-sink.out")"
for c in tls_chain tls_expiry tls_peer_name listen_address http_listen dr_schema dr_origin_rights \
	dr_replication_role replication_origin clock_dr; do
	grep -q "^ok *$c" "$T/check-sink.out" || fail "sink check has no ok $c line: $(cat "$T/check-sink.out")"
done
check "$T/source.conf" source-alone
[ "$CHECK_RC" = 1 ] || fail "source check without a sink: exit $CHECK_RC, not 1: $(cat "$T/check-source-alone.out")"
expect_line source-alone warning sink_reachable "does not answer"
sink_start
wait_until "the sink listening" 60 bash -c "ss -Htln '( sport = :$SINK_PORT )' | grep -q ."
check "$T/source.conf" source
[ "$CHECK_RC" = 0 ] || fail "source check exit $CHECK_RC: $(cat "$T/check-source.out")"
for c in wal_level replication_slot wal_senders replication_role publication table_privileges \
	sequence_privileges sink_tls clock_primary; do
	grep -q "^ok *$c" "$T/check-source.out" || fail "source check has no ok $c line: $(cat "$T/check-source.out")"
done
check "$T/sink.conf" clone --role clone -c "primary_conninfo=$PRIMARY_ROLE_CONN"
[ "$CHECK_RC" = 0 ] || fail "clone check exit $CHECK_RC: $(cat "$T/check-clone.out")"
grep -q "^ok *clock_hosts" "$T/check-clone.out" || fail "no clock_hosts line: $(cat "$T/check-clone.out")"
check "$T/source.conf" json --json
[ "$CHECK_RC" = 0 ] || fail "check --json exit $CHECK_RC"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['role']=='source' and d['result']=='ok' and all(c['status']=='ok' for c in d['checks']), d" \
	"$T/check-json.out" || fail "check --json: $(cat "$T/check-json.out")"

# a missing publication
check "$T/source.conf" publication -c publication=nosuch
[ "$CHECK_RC" = 2 ] || fail "missing publication: exit $CHECK_RC"
expect_line publication error publication 'the publication "nosuch" does not exist.*Fix: run sql/primary_setup.sql'

# no SELECT on a sequence
psql_on primary -c "REVOKE SELECT ON SEQUENCE customer_id_seq FROM pgferry_source" >/dev/null
check "$T/source.conf" sequence
[ "$CHECK_RC" = 2 ] || fail "unreadable sequence: exit $CHECK_RC"
expect_line sequence error sequence_privileges 'cannot read the sequence public.customer_id_seq of the published table public.customer.*GRANT SELECT ON ALL SEQUENCES'
check "$T/source.conf" sequence-json --json
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); c=[c for c in d['checks'] if c['check']=='sequence_privileges'][0]; assert d['result']=='error' and c['status']=='error' and 'GRANT' in c['fix'], d" \
	"$T/check-sequence-json.out" || fail "check --json on an error: $(cat "$T/check-sequence-json.out")"
psql_on primary -c "GRANT SELECT ON SEQUENCE customer_id_seq TO pgferry_source" >/dev/null

# a DR role without origin rights; the sink refuses to start with the same line
psql_on dr -c "REVOKE EXECUTE ON FUNCTION pg_replication_origin_session_setup(text) FROM pgferry_dr" >/dev/null
check "$T/sink.conf" origin -c "http_listen=127.0.0.1:$(free_port)" -c "listen_address=127.0.0.1:$(free_port)"
[ "$CHECK_RC" = 2 ] || fail "no origin rights: exit $CHECK_RC"
expect_line origin error dr_origin_rights 'may not use replication origins.*pg_replication_origin_session_setup(text).*Fix: run sql/dr_setup.sql'
line=$(grep "dr_origin_rights" "$T/check-origin.out")
rc=0
"$PGFERRY_BIN" sink --config "$T/sink.conf" -c "http_listen=127.0.0.1:$(free_port)" \
	-c "listen_address=127.0.0.1:$(free_port)" >"$T/sink-refused.log" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "the sink started without origin rights (exit $rc): $(tail -5 "$T/sink-refused.log")"
grep -qF "$line" "$T/sink-refused.log" || fail "the sink did not say \"$line\": $(cat "$T/sink-refused.log")"
psql_on dr -f "$ROOT/sql/dr_setup.sql" >/dev/null

# a world-readable key; the source refuses to start with the same line
chmod 644 "$T/dcerts/source.key"
check "$T/source.conf" key
[ "$CHECK_RC" = 2 ] || fail "world-readable key: exit $CHECK_RC"
expect_line key error tls_key 'has group or world access (mode 0644).*Fix: chmod 0600'
line=$(grep "tls_key" "$T/check-key.out")
rc=0
"$PGFERRY_BIN" source --config "$T/source.conf" >"$T/source-refused.log" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "the source started with a world-readable key (exit $rc)"
grep -qF "$line" "$T/source-refused.log" || fail "the source did not say \"$line\": $(cat "$T/source-refused.log")"
chmod 600 "$T/dcerts/source.key"

# the sink's certificate is for another name than the source reaches it by;
# then a source certificate the sink does not take (its tls_peer_name)
sink_stop
sink_start -c "tls_cert=$T/dcerts/wrong.crt" -c "tls_key=$T/dcerts/wrong.key"
wait_until "the sink listening" 60 bash -c "ss -Htln '( sport = :$SINK_PORT )' | grep -q ."
check "$T/source.conf" wrong-name
[ "$CHECK_RC" = 2 ] || fail "wrong sink name: exit $CHECK_RC"
expect_line wrong-name error sink_tls 'the sink.s certificate does not carry the name "localhost".*Fix: issue the sink.s certificate for "localhost"'
sink_stop
sink_start -c "tls_peer_name=someone-else"
wait_until "the sink listening" 60 bash -c "ss -Htln '( sport = :$SINK_PORT )' | grep -q ."
check "$T/source.conf" refused
[ "$CHECK_RC" = 2 ] || fail "source certificate refused: exit $CHECK_RC: $(cat "$T/check-refused.out")"
expect_line refused error sink_tls 'the sink refused this source.s certificate'
sink_stop

# wal_level = replica (a restart of the primary); the source refuses to start
psql_on primary -c "ALTER SYSTEM SET wal_level = replica" >/dev/null
cluster_ctl primary restart
check "$T/source.conf" wal_level
[ "$CHECK_RC" = 2 ] || fail "wal_level replica: exit $CHECK_RC"
expect_line wal_level error wal_level 'wal_level is replica on the primary.*Fix: set wal_level = logical'
line=$(grep "wal_level" "$T/check-wal_level.out")
rc=0
"$PGFERRY_BIN" source --config "$T/source.conf" >"$T/source-wal.log" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "the source started with wal_level = replica (exit $rc)"
grep -qF "$line" "$T/source-wal.log" || fail "the source did not say \"$line\": $(cat "$T/source-wal.log")"
log "check ok"
