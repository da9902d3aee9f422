# t_secrets.sh — passwords stay secret. Both servers ask ferry for a
# password (scram-sha-256). clone hands pg_dump and pg_restore their
# passwords in the environment, never on their command lines (checked by the
# PostgreSQL tools' wrappers and by watching every /proc/*/cmdline while
# clone runs); the sink and source log no password (text and JSON), /v1/status
# and /metrics show none, and a password given with -c is gone from the
# process's command line once read.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

PW='Pw-known-secret-4711'
unset PGPASSWORD PGPASSFILE
cluster_start primary
cluster_start dr
for c in primary dr; do
	psql_on "$c" -c "SET password_encryption = 'scram-sha-256'" \
		-c "CREATE ROLE ferry LOGIN SUPERUSER REPLICATION PASSWORD '$PW'" >/dev/null ||
		fail "role on $c"
	hba="$T/$c/data/pg_hba.conf"
	{
		printf 'local all ferry scram-sha-256\nlocal replication ferry scram-sha-256\n'
		cat "$hba"
	} >"$T/hba.tmp"
	cat "$T/hba.tmp" >"$hba" # in place: the file stays the postgres user's
	psql_on "$c" -c "SELECT pg_reload_conf()" >/dev/null
done
P_PW="host=$PRIMARY_HOST port=$PRIMARY_PORT user=ferry dbname=postgres password=$PW"
D_PW="host=$DR_HOST port=$DR_PORT user=ferry dbname=postgres password=$PW"
D_URI="postgresql://ferry:$PW@/postgres?host=$DR_HOST&port=$DR_PORT"
# the password is really needed, so a tool that did not get it would fail
if psql -w -X "host=$PRIMARY_HOST port=$PRIMARY_PORT user=ferry dbname=postgres" \
	-c "SELECT 1" >/dev/null 2>&1; then
	fail "the primary lets ferry in without a password"
fi
psql_on primary -c "
  CREATE TABLE pgferry_test_marker (id text PRIMARY KEY);
  CREATE TABLE t (id int PRIMARY KEY, v text);
  INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 20000) g;
  CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null || fail "primary schema"

# every process's command line, read all the time clone runs
cat >"$T/watch.py" <<'PY'
import os, sys, time
secret = open(sys.argv[1], 'rb').read().strip()
stop, out = sys.argv[2], open(sys.argv[3], 'w')
scans = 0
while not os.path.exists(stop):
    for pid in os.listdir('/proc'):
        if pid.isdigit():
            try:
                cmd = open('/proc/%s/cmdline' % pid, 'rb').read()
            except OSError:
                continue
            if secret in cmd:
                out.write('%s %s\n' % (pid, cmd.replace(b'\0', b' ').decode(errors='replace')))
                out.flush()
    scans += 1
    time.sleep(0.01)
print('scans', scans)
PY
echo "$PW" >"$T/secret"
chmod 600 "$T/secret"
bg_start watch python3 "$T/watch.py" "$T/secret" "$T/watch.stop" "$T/cmdline-hits"
# the PostgreSQL tools, run through wrappers that note their argv and whether a
# password came in the environment, then exec the real program
mkdir -p "$T/bin"
for tool in pg_dump pg_restore; do
	cat >"$T/bin/$tool" <<SH
#!/bin/bash
printf '%s %s\n' $tool "\$*" >>"$T/child-argv.log"
[ -n "\${PGPASSWORD:-}" ] && echo "$tool: password in the environment" >>"$T/child-env.log"
exec "$PG_BINDIR/$tool" "\$@"
SH
	chmod 755 "$T/bin/$tool"
done
printf "primary_conninfo = '%s'\ndr_conninfo = '%s'\n" "$P_PW" "$D_URI" >"$T/admin.conf"
chmod 600 "$T/admin.conf"
"$PGFERRY_BIN" clone --config "$T/admin.conf" --pg-bindir "$T/bin" >"$T/clone.out" 2>&1 ||
	fail "clone failed: $(cat "$T/clone.out")"
touch "$T/watch.stop"
wait_until "the watcher stopped" 30 bash -c "! kill -0 $(bg_pid watch)"
cat "$T/watch.log"
grep -q pg_dump "$T/child-argv.log" && grep -q pg_restore "$T/child-argv.log" ||
	fail "clone did not run pg_dump and pg_restore through the wrappers"
grep -c "password in the environment" "$T/child-env.log"
grep -F -q "$PW" "$T/child-argv.log" && fail "a password on a child's command line: $(cat "$T/child-argv.log")"
[ -s "$T/cmdline-hits" ] && fail "a password in /proc/*/cmdline during clone: $(head -3 "$T/cmdline-hits")"
grep -F -q "$PW" "$T/clone.out" && fail "clone printed a password"
log "clone: no password on any command line (pg_dump, pg_restore got it in the environment)"

# sink and source, passwords given with -c (text logs), then from the file (JSON logs)
relay_setup
sink_start -c "dr_conninfo=$D_PW"
source_start -c "primary_conninfo=$P_PW"
wait_applied 60
tables_equal t
for p in sink source; do
	tr '\0' ' ' <"/proc/$(bg_pid $p)/cmdline" >"$T/$p.cmdline"
	grep -F -q "$PW" "$T/$p.cmdline" && fail "the $p's command line still shows the password"
	grep -q "password=\*" "$T/$p.cmdline" || fail "the $p's command line: $(cat "$T/$p.cmdline")"
done
curl -sf "$SINK_URL/v1/status" >"$T/status.json" || fail "no status"
curl -sf "$SINK_URL/metrics" >"$T/metrics.txt" || fail "no metrics"
sink_stop
source_stop
grep "DR database" "$T/sink.log"
grep -q "password=\*\*\*\*\*\*\*\*" "$T/sink.log" || fail "the sink's start line does not show the masked password"
echo "dr_conninfo = '$D_URI'" >>"$T/sink.conf"
echo "log_format = json" >>"$T/sink.conf"
sink_start
wait_until "sink up again" 30 bash -c "[ \"\$(curl -s -o /dev/null -w %{http_code} $SINK_URL/healthz)\" != 000 ]"
grep "DR database" "$T/sink.log" | tail -1
sink_stop
for f in sink.log source.log status.json metrics.txt; do
	grep -F -q "$PW" "$T/$f" && fail "$f shows the password: $(grep -F "$PW" "$T/$f" | head -2)"
done
log "no password in logs, status or metrics"
