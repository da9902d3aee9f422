# t_coalesce.sh — apply_coalesce: within one DR transaction only the net
# change per row is written. Sequences of changes to the same rows across
# many source transactions grouped together (insert-update-delete, delete
# then insert, unchanged TOAST after an insert, a key that changes, values
# of a secondary unique index swapped, a table with an ENABLE ALWAYS
# trigger) end with the DR tables equal to the primary's, and with
# apply_coalesce off too.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
schema_both "CREATE TABLE acct (id int PRIMARY KEY, v text, n int);
             CREATE TABLE big (id int PRIMARY KEY, doc text, small int);
             ALTER TABLE big ALTER doc SET STORAGE EXTERNAL;
             CREATE TABLE uniq (id int PRIMARY KEY, u int UNIQUE, v text);
             CREATE TABLE audited (id int PRIMARY KEY, v int);
             CREATE TABLE audit_log (seq serial PRIMARY KEY, id int, v int, acct_n int);
             CREATE TABLE logbook (at int, what text)"
# on the DR side a trigger that reads another table while apply runs: order
# matters for it, so its table is applied change by change
psql_on dr -c "CREATE FUNCTION log_it() RETURNS trigger LANGUAGE plpgsql AS \$\$
                 BEGIN INSERT INTO audit_log (id, v, acct_n) VALUES (NEW.id, NEW.v, (SELECT n FROM acct WHERE id = 1)); RETURN NEW; END \$\$;
               CREATE TRIGGER audited_log AFTER INSERT OR UPDATE ON audited FOR EACH ROW EXECUTE FUNCTION log_it();
               ALTER TABLE audited ENABLE ALWAYS TRIGGER audited_log;
               ALTER TABLE audit_log REPLICA IDENTITY FULL" >/dev/null
psql_on primary -c "CREATE PUBLICATION pgferry FOR TABLE acct, big, uniq, audited, logbook, pgferry_test_marker" >/dev/null

run_workload()
{
	psql_on primary -v ON_ERROR_STOP=1 >/dev/null <<'SQL' || fail "workload"
INSERT INTO acct SELECT g, 'v', 0 FROM generate_series(1, 50) g;
UPDATE acct SET n = n + 1 WHERE id <= 10;
UPDATE acct SET n = n + 1 WHERE id <= 10;
DELETE FROM acct WHERE id = 3;
INSERT INTO acct VALUES (3, 'again', 7);
UPDATE acct SET v = 'x' WHERE id = 3;
INSERT INTO acct VALUES (100, 'short-lived', 1);
UPDATE acct SET n = 5 WHERE id = 100;
DELETE FROM acct WHERE id = 100;
UPDATE acct SET id = 200 WHERE id = 4;
UPDATE acct SET n = 9 WHERE id = 200;
UPDATE acct SET id = 4 WHERE id = 5;
INSERT INTO big VALUES (1, repeat('toast', 5000), 1);
UPDATE big SET small = 2 WHERE id = 1;
UPDATE big SET small = 3 WHERE id = 1;
INSERT INTO big VALUES (2, repeat('more', 6000), 1);
UPDATE big SET doc = doc || 'end' WHERE id = 2;
UPDATE big SET small = 9 WHERE id = 2;
UPDATE uniq SET u = 9 WHERE id = 1;
UPDATE uniq SET u = 1 WHERE id = 2;
UPDATE uniq SET u = 2 WHERE id = 1;
INSERT INTO audited VALUES (1, 1);
UPDATE acct SET n = 42 WHERE id = 1;
UPDATE audited SET v = 2 WHERE id = 1;
UPDATE acct SET n = 43 WHERE id = 1;
INSERT INTO logbook SELECT g, 'entry' FROM generate_series(1, 20) g;
DELETE FROM acct WHERE id > 40;
INSERT INTO acct SELECT g, 'back', g FROM generate_series(41, 45) g;
SQL
}

# big groups: every source transaction above lands in one or two DR ones
relay_setup "sink:apply_group_max_transactions = 10000" "sink:apply_group_max_delay = 2s"
sink_start
source_start
wait_applied 60
# rows that exist before the group, so that the swap below is of existing rows
psql_on primary -c "INSERT INTO uniq VALUES (1, 1, 'a'), (2, 2, 'b')" >/dev/null
wait_applied 60
run_workload
wait_applied 60
tables_equal acct big uniq audited logbook
# the trigger saw acct as it was at each change: in order
[ "$(psql_on dr -c "SELECT string_agg(acct_n::text, ',' ORDER BY seq) FROM audit_log")" = "2,42" ] ||
	fail "the ENABLE ALWAYS trigger saw $(psql_on dr -c "SELECT string_agg(acct_n::text, ',' ORDER BY seq) FROM audit_log"), expected 2,42"

# the same with apply_coalesce off
source_stop
sink_stop
for db in primary dr; do
	psql_on $db -c "TRUNCATE acct, big, uniq, audited, audit_log, logbook" >/dev/null
done
echo "apply_coalesce = off" >>"$T/sink.conf"
sink_start
source_start
wait_applied 60
# rows that exist before the group, so that the swap below is of existing rows
psql_on primary -c "INSERT INTO uniq VALUES (1, 1, 'a'), (2, 2, 'b')" >/dev/null
wait_applied 60
run_workload
wait_applied 60
tables_equal acct big uniq audited logbook
log "coalesce ok"
