# t_permanent.sh — a permanent error is said once and clearly, not retried
# five times a second: with a dropped publication every session fails on
# the first change; the source backs off (doubling, up to
# reconnect_max_delay) and logs the cause once; the sink's /v1/status
# (source_error) and verdict name it. The sink hears the cause from the
# session that met it: the next sessions' hellos wait here on a DR database
# that holds the stream's identity locked, so nothing of theirs is read.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
# the source refuses to start without its publication (pgferry check), so
# the mistyped one exists at start and is dropped once the slot is made
psql_on primary -c "CREATE PUBLICATION pgferyy FOR ALL TABLES" >/dev/null
relay_setup "source:publication = 'pgferyy'" "source:reconnect_max_delay = 30s"
sink_start
source_start
wait_until "the slot" 60 bash -c \
	"[ \"\$(psql '$PRIMARY_CONN' -XAtc \"SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgferry'\")\" = 1 ]"
psql_on primary -c "DROP PUBLICATION pgferyy" >/dev/null

bg_start locker psql "$DR_CONN" -X -q -c "SET application_name = 'locker'" \
	-c "BEGIN" -c "LOCK TABLE pgferry.identity" -c "SELECT pg_sleep(120)"
wait_until "the DR lock" 30 bash -c \
	"[ \"\$(psql '$DR_CONN' -XAtc \"SELECT count(*) FROM pg_locks WHERE granted AND relation = 'pgferry.identity'::regclass AND mode = 'AccessExclusiveLock'\")\" = 1 ]"
psql_on primary -c "INSERT INTO t VALUES (0)" >/dev/null
wait_until "the cause in the source's log" 30 grep -q 'publication "pgferyy" does not exist' "$T/source.log"
wait_until "the cause in the sink's status while its DR database holds the next sessions" 30 \
	bash -c "curl -s '$SINK_URL/v1/status' | grep -q 'pgferyy'"
psql_on dr -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'locker'" >/dev/null
bg_stop locker

# commits keep coming for 15 s: each session meets one and fails
for i in $(seq 1 30); do
	psql_on primary -c "INSERT INTO t VALUES ($i)" >/dev/null
	sleep 0.5
done
starts=$(grep -c 'starting logical decoding for slot "pgferry"' "$T/primary/server.log")
said=$(grep -c 'publication "pgferyy" does not exist' "$T/source.log")
log "in 15 s: $starts sessions on the primary, the cause logged $said times by the source"
[ "$starts" -le 10 ] || fail "the source retried $starts times in 15 s (back-off expected)"
[ "$said" = 1 ] || fail "the cause was logged $said times: $(grep -c ERROR "$T/source.log") errors in all"

status=$(curl -s "$SINK_URL/v1/status")
echo "$status" | grep -q '"source_error":"[^"]*publication \\"pgferyy\\" does not exist' ||
	fail "status does not name the cause: $status"
code=$(curl -s -o "$T/verdict.json" -w '%{http_code}' "$SINK_URL/v1/promotion-safety?max_rpo=1s")
[ "$code" = 409 ] || fail "verdict $code: $(cat "$T/verdict.json")"
grep -q 'pgferyy' "$T/verdict.json" || fail "the verdict does not name the cause: $(cat "$T/verdict.json")"
[ "$(psql_on dr -c "SELECT count(*) FROM t")" = 0 ] || fail "rows applied without a publication"
log "permanent ok"
