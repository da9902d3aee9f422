# common.sh — set-up shared by the benchmarks that race pgferry against
# native logical replication. Source after tests/integration/lib.sh and
# relay.sh.
#
#   bench_setup SCALE DELAY_MS [sink config line...]
#       a primary and a DR cluster; pgbench at SCALE on the primary and on
#       two DR databases, "ferry" (pgferry's) and "native"; the publication;
#       pgferry's configuration; and two proxies that count every byte and
#       hold each DELAY_MS each way: ferry_proxy (source to sink) and
#       native_proxy (subscriber to primary, at $NATIVE_PROXY_PORT)

PROXY=$ROOT/build/faultproxy
[ -x "$PROXY" ] || (cd "$ROOT" && make -s build/faultproxy) || fail "cannot build the proxy"

dr() { psql "host=$DR_HOST port=$DR_PORT user=postgres dbname=$1" -XAtc "$2"; }
now_ms() { date +%s%3N; }

bench_setup()
{
	local scale=$1 delay=$2 db
	shift 2
	cluster_start primary "max_wal_size = 4GB"
	cluster_start dr "max_wal_size = 4GB"
	log "preparing: pgbench scale $scale on the primary and two DR databases (pgferry, native)"
	psql_on dr -c "CREATE DATABASE ferry" >/dev/null
	psql_on dr -c "CREATE DATABASE native" >/dev/null
	pgbench -q -i -s "$scale" "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench -i on the primary"
	for db in ferry native; do
		pgbench -q -i -s "$scale" "host=$DR_HOST port=$DR_PORT user=postgres dbname=$db" \
			>/dev/null 2>&1 || fail "pgbench -i on DR $db"
		dr $db "CREATE TABLE pgferry_test_marker (id text PRIMARY KEY)" >/dev/null
	done
	psql_on primary -c "CREATE TABLE pgferry_test_marker (id text PRIMARY KEY)" >/dev/null
	psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null

	FERRY_PROXY_PORT=$(free_port)
	NATIVE_PROXY_PORT=$(free_port)
	relay_setup "sink:dr_conninfo = 'host=$DR_HOST port=$DR_PORT user=postgres dbname=ferry'" "$@"
	sed -i "s/^sink_address = .*/sink_address = '127.0.0.1:$FERRY_PROXY_PORT'/" "$T/source.conf"
	bg_start ferry_proxy "$PROXY" "$FERRY_PROXY_PORT" "$SINK_PORT" -1 "$delay"
	bg_start native_proxy "$PROXY" "$NATIVE_PROXY_PORT" "$PRIMARY_PORT" -1 "$delay"
}
