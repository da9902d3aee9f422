# t_ddl.sh — DDL capture (replicate_ddl = on): a typical migration flows
# through without stopping apply — add a column with a default, create an
# index (also CONCURRENTLY), create a table and fill it in the same
# transaction, rename a column, drop a column — each at its place in the
# stream, with data changes before and after. Temporary tables stay home.
# Then DDL inside a streamed transaction, and DDL larger than a batch.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE acct (id int PRIMARY KEY, v text)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup "source:replicate_ddl = on" "sink:replicate_ddl = on"
sink_start
source_start
wait_applied 60
psql_on primary -c "INSERT INTO acct SELECT g, 'v' || g FROM generate_series(1, 100) g" >/dev/null
wait_applied 60

cat >"$T/migration.sql" <<'SQL'
ALTER TABLE acct ADD COLUMN status text NOT NULL DEFAULT 'open';
INSERT INTO acct (id, v, status) VALUES (101, 'v101', 'closed');
CREATE INDEX acct_status ON acct (status);
CREATE INDEX CONCURRENTLY acct_v ON acct (v);
BEGIN;
CREATE TABLE ledger (id bigserial PRIMARY KEY, acct int REFERENCES acct, amount numeric(12,2));
INSERT INTO ledger (acct, amount) SELECT id, id * 1.5 FROM acct;
COMMIT;
ALTER TABLE acct RENAME COLUMN v TO label;
UPDATE acct SET label = label || '!' WHERE id <= 10;
CREATE TEMP TABLE scratch (x int);
INSERT INTO scratch VALUES (1);
DROP TABLE scratch;
ALTER TABLE acct DROP COLUMN status;
INSERT INTO acct (id, label) VALUES (102, 'v102');
INSERT INTO ledger (acct, amount) VALUES (102, 7);
SQL
psql_on primary -v ON_ERROR_STOP=1 -f "$T/migration.sql" >/dev/null || fail "migration failed on the primary"
wait_applied 60
tables_equal acct ledger
[ "$(psql_on dr -c "SELECT count(*) FROM pg_indexes WHERE indexname = 'acct_v'")" = 1 ] || fail "index acct_v missing on DR"
[ "$(psql_on dr -c "SELECT count(*) FROM information_schema.columns WHERE table_name = 'acct' AND column_name IN ('label', 'status')")" = 1 ] ||
	fail "DR columns of acct: $(psql_on dr -c "SELECT string_agg(column_name, ',') FROM information_schema.columns WHERE table_name = 'acct'")"
[ "$(psql_on dr -c "SELECT count(*) FROM pg_class WHERE relname = 'scratch'")" = 0 ] || fail "a temporary table reached DR"
[ "$(metric pgferry_apply_errors_total)" = 0 ] ||
	fail "apply stopped during the migration: $(grep -i error "$T/sink.log" | head -5)"
# the sequence of the new table followed
psql_on dr -c "SELECT last_value FROM ledger_id_seq" | grep -qx "$(psql_on primary -c "SELECT last_value FROM ledger_id_seq")" ||
	wait_until "ledger's sequence synced" 30 bash -c \
		"[ \"\$(psql '$DR_CONN' -XAtc 'SELECT last_value FROM ledger_id_seq')\" = \"\$(psql '$PRIMARY_CONN' -XAtc 'SELECT last_value FROM ledger_id_seq')\" ]"
log "ddl ok"

# DDL reaches the apply thread as the network thread decoded it, also when
# it waits in a spill file (inside a streamed transaction) or in a file of
# its own (a message larger than a batch: 40 kB in batches of 16 kB)
source_stop
source_start -c batch_max_bytes=16kB
long=$(head -c 40000 /dev/zero | tr '\0' x)
psql_on primary -c "COMMENT ON TABLE ledger IS 'outside $long'" >/dev/null || fail "the long comment"
psql_on primary -c "ALTER SYSTEM SET logical_decoding_work_mem = '64kB'" -c "SELECT pg_reload_conf()" >/dev/null
cat >"$T/streamed.sql" <<SQL
BEGIN;
INSERT INTO acct (id, label) SELECT g, repeat('s', 200) FROM generate_series(1000, 3000) g;
ALTER TABLE acct ADD COLUMN note text DEFAULT 'streamed';
COMMENT ON TABLE acct IS 'inside $long';
INSERT INTO acct (id, label, note) SELECT g, 'after', 'n' || g FROM generate_series(3001, 3100) g;
COMMIT;
SQL
psql_on primary -v ON_ERROR_STOP=1 -f "$T/streamed.sql" >/dev/null || fail "the streamed transaction"
wait_applied 60
psql_on primary -c "ALTER SYSTEM RESET logical_decoding_work_mem" -c "SELECT pg_reload_conf()" >/dev/null
[ "$(psql_on primary -c "SELECT stream_txns > 0 FROM pg_stat_replication_slots WHERE slot_name = 'pgferry'")" = t ] ||
	fail "the transaction was not streamed"
tables_equal acct ledger
for t in acct ledger; do
	[ "$(psql_on dr -c "SELECT md5(obj_description('$t'::regclass, 'pg_class'))")" = \
		"$(psql_on primary -c "SELECT md5(obj_description('$t'::regclass, 'pg_class'))")" ] ||
		fail "the comment on $t differs on DR"
done
[ "$(metric pgferry_apply_errors_total)" = 0 ] || fail "apply stopped: $(grep -i error "$T/sink.log" | head -5)"
log "ddl in a streamed transaction and larger than a batch ok"
