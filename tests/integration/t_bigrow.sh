# t_bigrow.sh — no livelock on a big row over a slow link: a 12.8 MB row
# (about 6.5 MB compressed) crosses a 300 kB/s link, so its frame takes far
# longer than source_timeout (10 s) to arrive. The sink must count the bytes
# arriving as word from the source, not cut it every 10 s for silence; the
# row is applied once. Then a row larger than the source's max_frame_bytes:
# the stream is stuck there, and /v1/status, /metrics and the verdict say so
# with the LSN and the setting to raise, until the setting is raised.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE big (id int PRIMARY KEY, v text)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
PROXY_PORT=$(free_port) || fail "no free port"
relay_setup
sed -i "s/^sink_address = .*/sink_address = '127.0.0.1:$PROXY_PORT'/" "$T/source.conf"
bg_start proxy "$ROOT/build/faultproxy" "$PROXY_PORT" "$SINK_PORT" -1 0 300
sink_start
source_start
wait_applied 60
psql_on primary -c "INSERT INTO big SELECT 1, string_agg(md5(g::text || random()::text), '') FROM generate_series(1, 400000) g" >/dev/null ||
	fail "the big row"
log "a 12.8 MB row committed; the link carries 300 kB/s"
start=$SECONDS
wait_applied 180
log "applied after $((SECONDS - start)) s"
tables_equal big
if grep "nothing heard from the source" "$T/sink.log"; then
	fail "the sink took the slow frame for silence"
fi
[ "$(grep -c "stream accepted" "$T/sink.log")" = 1 ] || fail "the source was reconnected: $(grep "stream accepted" "$T/sink.log")"
log "big row over a slow link ok"

# a change larger than max_frame_bytes (4MB here; the row is 6.4 MB)
source_stop
source_start -c "sink_address=127.0.0.1:$SINK_PORT" -c max_frame_bytes=4MB
wait_applied 60
lsn=$(psql_on primary -c "SELECT pg_current_wal_lsn()")
psql_on primary -c "INSERT INTO big SELECT 2, string_agg(md5(g::text || random()::text), '') FROM generate_series(1, 200000) g" >/dev/null ||
	fail "the too-large row"
wait_until "the status names the blocked change" 60 bash -c "curl -s '$SINK_URL/v1/status' | grep -q '\"stream_blocked\":\"a message of'"
curl -s "$SINK_URL/v1/status" | grep -Eo '"stream_blocked":"[^"]*"'
curl -s "$SINK_URL/v1/status" | grep -q 'stream_blocked":"a message of [0-9]* bytes at [0-9A-F]*/[0-9A-F]* is larger than max_frame_bytes.*Raise max_frame_bytes' ||
	fail "stream_blocked does not name the LSN and the setting"
[ "$(metric pgferry_stream_blocked)" = 1 ] ||
	fail "pgferry_stream_blocked is not 1"
code=$(curl -s -o "$T/verdict.json" -w '%{http_code}' "$SINK_URL/v1/promotion-safety?max_rpo=1h")
cat "$T/verdict.json"
[ "$code" = 409 ] || fail "verdict HTTP $code while the stream is stuck"
grep -q "cannot ship the next change.*max_frame_bytes" "$T/verdict.json" || fail "the verdict does not say why"
# the setting raised: the change passes and the fault clears
source_stop
source_start -c "sink_address=127.0.0.1:$SINK_PORT"
wait_applied 120
tables_equal big
wait_until "stream_blocked cleared" 30 bash -c "curl -s '$SINK_URL/v1/status' | grep -q '\"stream_blocked\":null'"
[ "$(metric pgferry_stream_blocked)" = 0 ] ||
	fail "pgferry_stream_blocked is not 0 once the change passed"
log "too-large change shown and cleared"
