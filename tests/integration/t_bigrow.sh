# t_bigrow.sh — no livelock on a big row over a slow link: a 12.8 MB row
# (about 6.5 MB compressed) crosses a 300 kB/s link, so its frame takes far
# longer than source_timeout (10 s) to arrive. The sink must count the bytes
# arriving as word from the source, not cut it every 10 s for silence; the
# row is applied once. Then a row larger than the source's max_frame_bytes
# passes in pieces (wire protocol 3), and nothing shows the stream blocked.
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
# batches up to 16 MB: the row goes in one frame, not in pieces
source_start -c batch_max_bytes=16MB
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

# a change larger than max_frame_bytes (4MB here; the row is 6.4 MB): it
# travels in pieces of batch_max_bytes, so nothing blocks the stream
source_stop
source_start -c "sink_address=127.0.0.1:$SINK_PORT" -c max_frame_bytes=4MB
wait_applied 60
psql_on primary -c "INSERT INTO big SELECT 2, string_agg(md5(g::text || random()::text), '') FROM generate_series(1, 200000) g" >/dev/null ||
	fail "the row larger than a frame"
wait_applied 120
tables_equal big
curl -s "$SINK_URL/v1/status" | grep -q '"stream_blocked":null' || fail "the stream shows as blocked"
[ "$(metric pgferry_stream_blocked)" = 0 ] || fail "pgferry_stream_blocked is not 0"
log "a change larger than max_frame_bytes passed in pieces"
