# t_spool_fault.sh — a receive spool that fails is shown, and tried again:
# work_dir is a 4 MB tmpfs, apply stalls (a DR lock) while 12 MB of changes
# arrive, so writing the spool fails with "No space left on device". The
# sink must say so in /v1/status (apply_backlog.spool_error) and the metrics
# (pgferry_receive_spool_failed 1, pgferry_receive_spool_failures_total),
# keep everything, and, once the stall ends and the spool has drained, use
# the spool again (QUEUE_SPOOL_RETRY_S, 10 s): the figures clear and a
# second stall spools again. Needs root (mount).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE t (id int PRIMARY KEY, pad text)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup "sink:spool_memory_limit = 1MB" "sink:spool_disk_limit = 512MB"
mount -t tmpfs -o size=4m,mode=0700 pgferry-spool-fault "$T/work" || fail "cannot mount a tmpfs on work_dir (not root?)"
# teardown keeps the status it is called with
trap 'rc=$?; umount -l "$T/work" 2>/dev/null; (exit $rc); teardown' EXIT
sink_start
source_start
wait_applied 60

status() { curl -s "$SINK_URL/v1/status"; }
stall()
{
	bg_start locker psql "$DR_CONN" -Xqc "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3600)"
	wait_until "the DR lock" 30 bash -c "[ \"\$(psql '$DR_CONN' -XAtc \"SELECT count(*) FROM pg_locks WHERE relation = 't'::regclass AND mode = 'AccessExclusiveLock' AND granted\")\" = 1 ]"
}
unstall()
{
	psql_on dr -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3600)%' AND pid <> pg_backend_pid()" >/dev/null
	bg_stop locker
}
load()
{ # load FIRST_THOUSAND LAST_THOUSAND: about 1 MB of hardly compressible rows a thousand
	local i
	for i in $(seq "$1" "$2"); do
		psql_on primary -c "INSERT INTO t SELECT g, (SELECT string_agg(md5(random()::text || k || g), '') FROM generate_series(1, 30) k) FROM generate_series($((i * 1000 + 1)), $(((i + 1) * 1000))) g" >/dev/null || fail "insert"
	done
}

# 1. a stall with more to spool than work_dir holds
stall
load 0 11
wait_until "the spool failure in /v1/status" 60 bash -c "curl -s '$SINK_URL/v1/status' | grep -q '\"spool_error\":\"writing the receive spool: No space left on device\"'"
status | grep -Eo '"apply_backlog":\{[^}]*\}'
[ "$(metric pgferry_receive_spool_failed)" = 1 ] || fail "pgferry_receive_spool_failed is $(metric pgferry_receive_spool_failed)"
[ "$(metric pgferry_receive_spool_failures_total)" -ge 1 ] || fail "no spool failure counted"
grep -q "could not write to the receive spool in work_dir (No space left on device)" "$T/sink.log" ||
	fail "the sink's log does not name the failure"

# 2. the stall ends: everything is applied, and the spool is tried again
unstall
wait_applied 120
tables_equal t
wait_until "the spool in use again" 60 bash -c "curl -s '$SINK_URL/v1/status' | grep -q '\"spool_error\":null'"
[ "$(metric pgferry_receive_spool_failed)" = 0 ] || fail "pgferry_receive_spool_failed still $(metric pgferry_receive_spool_failed)"
grep -m1 "using the receive spool again" "$T/sink.log" || fail "the sink did not say it uses the spool again"

# 3. a second, smaller stall spools again
stall
load 12 13
spooled_again() { [ "$(metric pgferry_receive_spool_bytes | cut -d. -f1)" -gt 0 ]; }
wait_until "batches in the spool again" 60 spooled_again
unstall
wait_applied 120
tables_equal t
log "spool fault ok: $(metric pgferry_receive_spool_failures_total) failure(s) shown, the spool used again"
