# t_files.sh — the files the sink and source trust: a private key others can
# read is refused (0640 only when root owns it), so is a work_dir other users
# can write to, and links planted where the sink creates its receive spool and
# its spill files of streamed transactions are never written through.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary "logical_decoding_work_mem = 64kB"
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY, v text)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
# no heartbeats, so the next transaction ids are known in advance
relay_setup "source:heartbeat_interval = 0"

# refuse_start NAME PATTERN cmd...: cmd must exit at once with PATTERN in its output
refuse_start()
{
	local name=$1 pattern=$2 rc=0
	shift 2
	timeout 20 "$@" >"$T/$name.out" 2>&1 || rc=$?
	[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "$name: started anyway (exit $rc)"
	grep -q "$pattern" "$T/$name.out" || fail "$name: no clear error: $(cat "$T/$name.out")"
	log "$name: refused: $(grep -m1 "$pattern" "$T/$name.out")"
}
other_ports=(-c "listen_address=127.0.0.1:$(free_port)" -c "http_listen=127.0.0.1:$(free_port)")

chmod 644 "$T/certs/server.key"
refuse_start key_world "group or world access" "$PGFERRY_BIN" sink --config "$T/sink.conf" "${other_ports[@]}"
chmod 600 "$T/certs/client.key"
chown postgres "$T/certs/client.key"
chmod 640 "$T/certs/client.key"
refuse_start key_group "group or world access" "$PGFERRY_BIN" source --config "$T/source.conf"
chown root "$T/certs/client.key"
chmod 600 "$T/certs/client.key"
chmod 777 "$T/work"
refuse_start workdir_777 "writable by other users" "$PGFERRY_BIN" sink --config "$T/sink.conf" "${other_ports[@]}"
chmod 1777 "$T/work"
refuse_start workdir_1777 "writable by other users" "$PGFERRY_BIN" sink --config "$T/sink.conf" "${other_ports[@]}"
chmod 700 "$T/work"

# root's key readable by its group is accepted (as libpq); links planted in work_dir
chmod 640 "$T/certs/server.key"
printf 'precious\n' >"$T/victim"
ln -s "$T/victim" "$T/work/receive.spool"
sink_start
source_start
wait_applied 60
[ -L "$T/work/receive.spool" ] && fail "the planted receive.spool link is still there"
x=$(psql_on primary -c "SELECT txid_current()")
for i in $(seq 1 40); do
	ln -s "$T/victim" "$T/work/stream-$((x + i)).spill"
done
# streamed by the primary (logical_decoding_work_mem = 64kB), spilled by the sink
psql_on primary -c "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g" >/dev/null
wait_applied 120
tables_equal t
[ "$(cat "$T/victim")" = precious ] || fail "a file was written through a planted link: $(head -c 200 "$T/victim" | od -c | head -3)"
n=$(find "$T/work" -name 'stream-*.spill' -type l | wc -l)
[ "$n" -lt 40 ] || fail "no spill file was created where a link was planted (streaming not used?)"
log "spill files created in place of $((40 - n)) planted links; the victim is untouched"
