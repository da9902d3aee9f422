# t_pipeline.sh — source → TLS → sink → DR: every kind of change of the
# workload plus pgbench arrives, and the DR tables equal the primary's.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary "logical_decoding_work_mem = 64kB"
cluster_start dr
schema_both "$(cat "$(dirname "$0")/schema.sql")"
pgbench -q -i -I dtp "$DR_CONN" >/dev/null 2>&1 || fail "pgbench schema on DR"
pgbench -q -i -I dtp "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench schema on primary"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES WITH (publish_via_partition_root = true)" >/dev/null

relay_setup
sink_start
source_start
wait_applied 60

psql_on primary -f "$(dirname "$0")/workload.sql" >/dev/null || fail "workload failed"
pgbench -q -i -I g -s 1 "$PRIMARY_CONN" >/dev/null 2>&1 || fail "pgbench data"
pgbench -n -c 4 -j 2 -t 500 "$PRIMARY_CONN" >"$T/pgbench.log" 2>&1 || fail "pgbench run"
wait_applied 180
check_no_loss_invariant

tables_equal kinds toasty full_ident nokey pkchange parted gen trunc1 trunc2 bulk \
	pgbench_accounts pgbench_branches pgbench_tellers pgbench_history
# the aborted streamed transaction and the rolled back subtransaction left nothing
[ "$(psql_on dr -c "SELECT count(*) FROM bulk WHERE v IN ('aborted', 'rolled back')")" = 0 ] ||
	fail "aborted changes reached the DR database"
[ "$(psql_on dr -c "SELECT count(*) FROM kinds WHERE id = 51")" = 0 ] || fail "rolled back prepared transaction applied"
[ -z "$(ls "$T/work"/*.spill 2>/dev/null)" ] || fail "spill files left behind: $(ls "$T/work")"
# exactly once: the origin's progress is where the DR side says it is
source_stop
sink_stop
progress=$(psql_on dr -c "SELECT pgferry.applied_lsn(true)")
recorded=$(psql_on dr -c "SELECT source_lsn FROM pgferry.progress")
[ "$progress" = "$recorded" ] || fail "origin progress $progress, recorded $recorded"
grep -q "first contact" "$T/sink.log" || fail "the sink did not record the identity"
log "pipeline ok"
