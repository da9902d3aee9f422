# t_reload.sh — SIGHUP: the sink reads its file again and the verdict
# follows a new max_rpo at once; each change is logged, a changed key that
# needs a restart is named (a connection string without its password), a
# file that does not load is refused and the running configuration stays;
# the source applies sink_timeout and log_level the same way.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup "sink:max_rpo = 1h"
sink_start
source_start
wait_applied 90

# the verdict with the configured limit (the request names none)
verdict()
{
	curl -s -o "$T/verdict.json" -w '%{http_code}' "$SINK_URL/v1/promotion-safety"
}
sighup() { kill -HUP "$(bg_pid "$1")" || fail "SIGHUP to $1"; }

# the source first: a live key and one that needs a restart
echo "sink_timeout = 20s" >>"$T/source.conf"
echo "compression_level = 3" >>"$T/source.conf"
sighup source
wait_until "the source's reload" 30 grep -q "configuration: sink_timeout changed from 10000ms to 20000ms" "$T/source.log"
grep -q "configuration: compression_level changed in the file but takes effect only after a restart" "$T/source.log" ||
	fail "the source did not name compression_level as needing a restart"
grep -q "SIGHUP: configuration read again .*1 change applied, 1 waiting for a restart" "$T/source.log" ||
	fail "no summary of the source's reload: $(grep SIGHUP "$T/source.log")"

# stop the source: the bound grows past 3 s, within max_rpo = 1h
source_stop
wait_until "an RPO bound over 3 s" 60 bash -c \
	"curl -s '$SINK_URL/v1/status' | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if (d[\"rpo_bound_ms\"] or 0) > 3000 else 1)'"
[ "$(verdict)" = 200 ] || fail "not safe with max_rpo = 1h: $(cat "$T/verdict.json")"

# max_rpo = 2s: the verdict turns unsafe without a restart
echo "max_rpo = 2s" >>"$T/sink.conf"
sighup sink
wait_until "the verdict under max_rpo = 2s" 30 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$SINK_URL/v1/promotion-safety')\" = 409 ]"
grep -q "configuration: max_rpo changed from 3600000ms to 2000ms" "$T/sink.log" || fail "the change of max_rpo is not logged"

# a file that does not load: refused, the running configuration stays
cp "$T/sink.conf" "$T/sink.conf.good"
echo "max_rpo = banana" >>"$T/sink.conf"
sighup sink
wait_until "the refusal" 30 grep -q "SIGHUP: the configuration in \"$T/sink.conf\" is refused; running on with the previous one" "$T/sink.log"
grep -q 'invalid value "banana" for duration parameter "max_rpo"' "$T/sink.log" || fail "the reason of the refusal is not logged"
kill -0 "$(bg_pid sink)" || fail "the sink died of a bad file"
[ "$(verdict)" = 409 ] || fail "the verdict changed with a refused file: $(cat "$T/verdict.json")"

# back to 1h, with a key that needs a restart (a password in it) and log_level
cp "$T/sink.conf.good" "$T/sink.conf"
cat >>"$T/sink.conf" <<CONF
max_rpo = 1h
log_level = debug
dr_conninfo = '$DR_CONN password=reload-secret'
CONF
sighup sink
wait_until "safe again under max_rpo = 1h" 30 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$SINK_URL/v1/promotion-safety')\" = 200 ]"
grep -q "configuration: dr_conninfo changed in the file but takes effect only after a restart" "$T/sink.log" ||
	fail "dr_conninfo not named as needing a restart"
grep -q "configuration: log_level changed from info to debug" "$T/sink.log" || fail "log_level change not logged"
grep -q "reload-secret" "$T/sink.log" && fail "a password reached the log"
log "reload ok"
