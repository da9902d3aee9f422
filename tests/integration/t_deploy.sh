# t_deploy.sh — a deployment from what the README points to and nothing
# else: sql/primary_setup.sql and sql/dr_setup.sql run by a superuser, the
# pg_hba.conf lines they give, deploy/make-certs.sh, and the two samples of
# deploy/ with only hosts, ports and paths changed. The source and the sink
# and clone then run as roles that are no superuser (the proof that the
# grants are complete): clone copies schema and data, then rows, updates,
# deletes, a truncate and sequences arrive, and verify (as the same roles)
# finds both sides equal.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
for c in primary dr; do
	psql_on "$c" -c "CREATE DATABASE app" >/dev/null || fail "createdb app on $c"
done
PRIMARY_CONN="host=$PRIMARY_HOST port=$PRIMARY_PORT user=postgres dbname=app"
DR_CONN="host=$DR_HOST port=$DR_PORT user=postgres dbname=app"

# the application with data, owned by the DBA; the DR database empty
APP_SCHEMA="
CREATE TABLE customer (id bigserial PRIMARY KEY, name text NOT NULL);
CREATE TABLE account (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                      customer_id bigint NOT NULL REFERENCES customer, balance numeric NOT NULL);
CREATE TABLE audit (at timestamptz, what text);
CREATE FUNCTION audit_it() RETURNS trigger LANGUAGE plpgsql AS
  \$\$BEGIN INSERT INTO audit VALUES (now(), TG_OP); RETURN NEW; END\$\$;
CREATE TRIGGER account_audit AFTER INSERT OR UPDATE ON account FOR EACH ROW EXECUTE FUNCTION audit_it();"
psql_on primary -c "$APP_SCHEMA
CREATE TABLE pgferry_test_marker (id text PRIMARY KEY);
INSERT INTO customer (name) SELECT 'first' || g FROM generate_series(1, 300) g;
INSERT INTO account (customer_id, balance) SELECT id, 1 FROM customer;" >/dev/null || fail "application schema"

# as a DBA would: the two SQL files as a superuser, passwords, pg_hba.conf
psql_on primary -f "$ROOT/sql/primary_setup.sql" >/dev/null || fail "sql/primary_setup.sql failed"
psql_on dr -f "$ROOT/sql/dr_setup.sql" >/dev/null || fail "sql/dr_setup.sql failed"
psql_on primary -f "$ROOT/sql/primary_setup.sql" >/dev/null || fail "sql/primary_setup.sql is not idempotent"
psql_on dr -f "$ROOT/sql/dr_setup.sql" >/dev/null || fail "sql/dr_setup.sql is not idempotent"
psql_on primary -c "ALTER ROLE pgferry_source PASSWORD 'source-secret'" >/dev/null
psql_on dr -c "ALTER ROLE pgferry_dr PASSWORD 'dr-secret'" >/dev/null
# only the lines the SQL files give (scram, by database name), and the
# harness's own superuser on the socket; no "replication" line at all
hba_line()
{ # the pg_hba.conf line in the header of an SQL file, for 127.0.0.1
	sed -n 's/^--   \(host  app  pgferry_[a-z]*  \)[^ ]*\(  scram-sha-256\)$/\1127.0.0.1\/32\2/p' "$1" | head -1
}
for c in primary dr; do
	f=$ROOT/sql/primary_setup.sql
	[ $c = dr ] && f=$ROOT/sql/dr_setup.sql
	line=$(hba_line "$f")
	[ -n "$line" ] || fail "no pg_hba.conf line in $f"
	up=${c^^}
	data_var=${up}_DATA
	printf 'local all postgres trust\n%s\n' "$line" | as_pg tee "${!data_var}/pg_hba.conf" >/dev/null
	psql_on "$c" -c "SELECT pg_reload_conf()" >/dev/null
done
cat >"$T/pgpass" <<PASS
127.0.0.1:$PRIMARY_PORT:app:pgferry_source:source-secret
127.0.0.1:$DR_PORT:app:pgferry_dr:dr-secret
PASS
chmod 600 "$T/pgpass"
for r in "primary pgferry_source" "dr pgferry_dr"; do
	set -- $r
	[ "$(psql_on "$1" -c "SELECT rolsuper FROM pg_roles WHERE rolname = '$2'")" = f ] ||
		fail "$2 is a superuser"
done
[ "$(psql_on dr -c "SELECT rolreplication FROM pg_roles WHERE rolname = 'pgferry_dr'")" = f ] ||
	fail "pgferry_dr has REPLICATION"

# certificates: the recipe, keys 0600
bash "$ROOT/deploy/make-certs.sh" -d "$T/certs" localhost,127.0.0.1 pgferry-source >"$T/certs.log" 2>&1 ||
	fail "deploy/make-certs.sh failed: $(cat "$T/certs.log")"
for k in ca sink source; do
	[ "$(stat -c %a "$T/certs/$k.key")" = 600 ] || fail "$k.key is mode $(stat -c %a "$T/certs/$k.key")"
done
bash "$ROOT/deploy/make-certs.sh" -d "$T/certs" localhost pgferry-source >/dev/null 2>&1 &&
	fail "make-certs.sh overwrote existing certificates"

# the samples, with hosts, ports and paths of this machine
SINK_PORT=$(free_port) || fail "no free port"
HTTP_PORT=$(free_port) || fail "no free port"
SINK_URL="http://127.0.0.1:$HTTP_PORT"
localize()
{
	sed -e "s|0\.0\.0\.0:7433|127.0.0.1:$SINK_PORT|; s|dr-host\.example\.com:7433|localhost:$SINK_PORT|" \
		-e "s|127\.0\.0\.1:7480|127.0.0.1:$HTTP_PORT|" \
		-e "s|/etc/pgferry/certs/|$T/certs/|; s|/etc/pgferry/pgpass|$T/pgpass|" \
		-e "s|/var/lib/pgferry/sink|$T/work|" \
		-e "s|host=127\.0\.0\.1 port=5432 \(.*user=pgferry_source\)|host=127.0.0.1 port=$PRIMARY_PORT \1|" \
		-e "s|host=127\.0\.0\.1 port=5432 \(.*user=pgferry_dr\)|host=127.0.0.1 port=$DR_PORT \1|" "$1"
}
localize "$ROOT/deploy/sink.conf.sample" >"$T/sink.conf"
localize "$ROOT/deploy/source.conf.sample" >"$T/source.conf"
changed() { diff "$1" "$2" | grep -c '^>' || true; }
[ "$(changed "$ROOT/deploy/sink.conf.sample" "$T/sink.conf")" = 7 ] ||
	fail "sink sample: not the 7 lines expected changed: $(diff "$ROOT/deploy/sink.conf.sample" "$T/sink.conf")"
[ "$(changed "$ROOT/deploy/source.conf.sample" "$T/source.conf")" = 5 ] ||
	fail "source sample: not the 5 lines expected changed: $(diff "$ROOT/deploy/source.conf.sample" "$T/source.conf")"

# the pre-flight of each configuration passes before anything runs (the
# source's once the sink listens: it shakes hands with it)
PRIMARY_ROLE_CONN=$(sed -n "s/^primary_conninfo = '\(.*\)'$/\1/p" "$T/source.conf")
"$PGFERRY_BIN" check --config "$T/sink.conf" >"$T/check-sink.log" 2>&1 ||
	fail "pgferry check of the sink's configuration: $(cat "$T/check-sink.log")"
"$PGFERRY_BIN" check --config "$T/sink.conf" --role clone -c "primary_conninfo=$PRIMARY_ROLE_CONN" \
	>"$T/check-clone.log" 2>&1 || fail "pgferry check --role clone: $(cat "$T/check-clone.log")"
# clone as the deployed roles: schema and data, consistent with the new slot
"$PGFERRY_BIN" clone --config "$T/sink.conf" -c "primary_conninfo=$(sed -n "s/^primary_conninfo = '\(.*\)'$/\1/p" "$T/source.conf")" \
	>"$T/clone.log" 2>&1 || fail "clone as the deployed roles failed: $(tail -5 "$T/clone.log")"
tables_equal customer account
sink_start
# the source once the sink listens, so that the logs of a clean start hold
# no retry of a connection refused
wait_until "the sink listening" 60 bash -c "ss -Htln '( sport = :$SINK_PORT )' | grep -q ."
"$PGFERRY_BIN" check --config "$T/source.conf" >"$T/check-source.log" 2>&1 ||
	fail "pgferry check of the source's configuration: $(cat "$T/check-source.log")"
source_start
wait_until "the sink's HTTP API" 60 curl -sf "$SINK_URL/v1/status"
wait_applied 90
psql_on primary -c "INSERT INTO customer (name) SELECT 'c' || g FROM generate_series(1, 200) g;
                    INSERT INTO account (customer_id, balance) SELECT id, id * 10 FROM customer;
                    UPDATE account SET balance = balance + 1 WHERE id % 3 = 0;
                    DELETE FROM account WHERE id % 7 = 0;
                    TRUNCATE audit;
                    SELECT nextval('customer_id_seq') FROM generate_series(1, 5)" >/dev/null ||
	fail "workload on the primary failed"
wait_applied 90
tables_equal customer account audit
# sequences travel by the role's SELECT on them
wait_until "customer_id_seq on the DR side" 60 bash -c \
	"[ \"\$(psql '$DR_CONN' -XAtc 'SELECT last_value FROM customer_id_seq')\" = \"\$(psql '$PRIMARY_CONN' -XAtc 'SELECT last_value FROM customer_id_seq')\" ]"
[ "$(psql_on dr -c "SELECT count(*) FROM audit")" = 0 ] || fail "a DR trigger fired on applied rows"
[ "$(psql_on dr -c "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'pgferry'")" = pgferry_dr ] ||
	fail "the pgferry schema is not the DR role's"
grep -E ' (ERROR|FATAL|WARNING): ' "$T/sink.log" "$T/source.log" | grep -v 'tls = off' &&
	fail "errors or warnings in the logs of a clean deployment"

# verify and lag as the same roles, from the same configuration files
"$PGFERRY_BIN" verify --config "$T/sink.conf" -c "primary_conninfo=$(sed -n "s/^primary_conninfo = '\(.*\)'$/\1/p" "$T/source.conf")" \
	>"$T/verify.log" 2>&1 || fail "verify as the deployed roles: $(tail -5 "$T/verify.log")"
"$PGFERRY_BIN" lag --url "$SINK_URL" | grep -q 'source *connected' || fail "pgferry lag does not show a connected source"
log "deploy ok"
