# t_hugerow.sh — the sink gives back the memory a huge row took: a row of
# HUGEROW_MB (default 40) MB of random, incompressible text is inserted,
# then updated (the small column and the big one); the DR copy must be
# byte-equal (md5 on both sides). The sink's own buffers must not keep the
# row: once it is applied, its resident memory (VmRSS) must be within 2.5
# times the row of what it was at rest, and its peak (VmHWM) within 5 times
# (before: 3.8 and 5.8 times). What stays is the DR connection's libpq
# output buffer, which holds a whole statement and is kept for the
# connection's life; a bound of about one chunk needs the change streamed
# to the DR server in pieces (COPY), not done yet.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

MB=${HUGEROW_MB:-40}
cluster_start primary
cluster_start dr
schema_both "CREATE TABLE huge (id int PRIMARY KEY, note text, v text)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup
sink_start
source_start
wait_applied 60
sink_pid=$(bg_pid sink)
kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$sink_pid/status"; }
rss0=$(kb VmRSS)
log "sink at rest: VmRSS $((rss0 / 1024)) MB, VmHWM $(($(kb VmHWM) / 1024)) MB"

# random bytes as base64 without newlines: text that does not compress
huge_value="(SELECT string_agg(encode(decode(md5(random()::text) || md5(random()::text), 'hex'), 'base64'), '') FROM generate_series(1, $MB * 1024 * 1024 / 44))"
psql_on primary -c "INSERT INTO huge VALUES (1, 'first', $huge_value)" >/dev/null || fail "the huge insert"
psql_on primary -c "INSERT INTO huge VALUES (2, 'small', 'x')" >/dev/null
log "a $(psql_on primary -c "SELECT octet_length(v) / 1048576 FROM huge WHERE id = 1") MB row committed"
wait_applied 300
digest() { psql_on "$1" -c "SELECT id, note, octet_length(v), md5(v) FROM huge ORDER BY id"; }
[ "$(digest primary)" = "$(digest dr)" ] || fail "the DR copy differs after the insert: $(digest dr)"
psql_on primary -c "UPDATE huge SET note = 'updated', v = $huge_value WHERE id = 1" >/dev/null || fail "the huge update"
wait_applied 300
[ "$(digest primary)" = "$(digest dr)" ] || fail "the DR copy differs after the update: $(digest dr)"
log "the DR copy is byte-equal: $(digest dr | head -1)"
# the sink's apply gives memory back after the transaction: let it settle
sleep 2
wait_applied 60
rss1=$(kb VmRSS)
hwm=$(kb VmHWM)
log "sink: VmRSS before $((rss0 / 1024)) MB, peak (VmHWM) $((hwm / 1024)) MB, after $((rss1 / 1024)) MB"
# the sink's largest resident mappings, for whoever must find the holder
awk '/^[0-9a-f]+-[0-9a-f]+ / {m = $1 " " $6} /^Rss:/ && $2 > 4096 {print "  " $2 " kB resident in " m}' "/proc/$sink_pid/smaps" | sort -rn | head -8
[ "$rss1" -le $((rss0 + MB * 1024 * 5 / 2)) ] ||
	fail "the sink keeps $(((rss1 - rss0) / 1024)) MB after a $MB MB row (at most 2.5 times the row)"
[ "$hwm" -le $((rss0 + MB * 1024 * 5)) ] ||
	fail "the sink's peak was $(((hwm - rss0) / 1024)) MB over its rest for a $MB MB row (at most 5 times the row)"
log "huge row ok"
