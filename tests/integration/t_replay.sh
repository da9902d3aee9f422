# t_replay.sh — `pgferry replay`: a workload captured off the slot of a
# cloned DR database is applied to it through the apply engine (every
# table then equals the primary), and replayed a second time without a
# duplicate or a change (the origin's progress skips what was applied).
# The clone runs with log_format = json: its log is JSON lines.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
psql_on primary -c "
  CREATE TABLE orders (id bigserial PRIMARY KEY, v text, n numeric);
  CREATE TABLE nokey (a int, b text);
  ALTER TABLE nokey REPLICA IDENTITY FULL;
  INSERT INTO orders (v, n) SELECT 'o' || g, g FROM generate_series(1, 200) g;
  CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null || fail "primary schema"
TABLES="orders nokey"
# with log_format = json, every line clone writes on stderr is a JSON object
# (its summary goes to stdout, for people)
"$PGFERRY_BIN" clone -c "primary_conninfo=$PRIMARY_CONN" -c "dr_conninfo=$DR_CONN" -c log_format=json \
	>"$T/clone.out" 2>"$T/clone.err" || fail "clone failed: $(cat "$T/clone.out" "$T/clone.err")"
python3 -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert lines, "clone logged nothing"
for line in lines:
    d = json.loads(line)
    assert d["role"] == "clone" and d["level"] in ("INFO", "WARNING") and d["message"], line
assert any("consistent point" in json.loads(l)["message"] for l in lines), "no slot line"
' "$T/clone.err" || fail "clone's log is not JSON lines: $(head -5 "$T/clone.err")"
grep -q "pgferry clone: done" "$T/clone.out" || fail "no summary on stdout: $(cat "$T/clone.out")"
log "clone logged $(wc -l <"$T/clone.err") JSON lines"
tables_equal $TABLES

# a workload after the clone's consistent point: inserts, updates, deletes,
# a rolled-back transaction, a table without a key
psql_on primary -c "
  INSERT INTO orders (v, n) SELECT 'new' || g, g FROM generate_series(1, 300) g;
  UPDATE orders SET v = v || '+', n = n * 2 WHERE id % 3 = 0;
  DELETE FROM orders WHERE id % 7 = 0;
  INSERT INTO nokey SELECT g, 'b' || g FROM generate_series(1, 50) g;
  UPDATE nokey SET b = 'changed' WHERE a < 10;
  DELETE FROM nokey WHERE a > 40" >/dev/null || fail "workload"
psql_on primary -c "BEGIN; INSERT INTO orders (v) VALUES ('rolled back'); ROLLBACK" >/dev/null
psql_on primary -c "INSERT INTO orders (v, n) VALUES ('last', -1)" >/dev/null

# the clone made the slot pgferry; capture reads it from the consistent point
"$PGFERRY_BIN" capture -d "$PRIMARY_CONN" --slot pgferry --publication pgferry --proto-version 1 \
	-o "$T/work.cap" --until-idle 2s 2>"$T/capture.log" || fail "capture failed: $(tail -3 "$T/capture.log")"
[ "$(table_digest dr orders)" != "$(table_digest primary orders)" ] || fail "DR equal before the replay"

replay()
{
	"$PGFERRY_BIN" replay -c "dr_conninfo=$DR_CONN" -c "work_dir=$T/work" --proto-version 1 \
		"$T/work.cap" >"$T/$1.out" 2>&1 || fail "replay $1 failed: $(cat "$T/$1.out")"
	log "replay $1: $(cat "$T/$1.out")"
}
mkdir -p "$T/work"
replay first
grep -Eq "applied [1-9][0-9]* transactions" "$T/first.out" || fail "the first replay applied nothing"
tables_equal $TABLES
progress=$(psql_on dr -c "SELECT pgferry.applied_lsn(true)")

# the same file again: every transaction is at or below the origin's progress
replay second
grep -q "applied 0 transactions" "$T/second.out" || fail "the second replay applied something"
tables_equal $TABLES
[ "$(psql_on dr -c "SELECT count(*) - count(DISTINCT id) FROM orders")" = 0 ] || fail "duplicate orders"
[ "$(psql_on dr -c "SELECT pgferry.applied_lsn(true)")" = "$progress" ] ||
	fail "the second replay moved the origin's progress"

# a file that is no capture is named, nothing applied, exit 2
printf 'NOTACAP!' >"$T/bad.cap"
"$PGFERRY_BIN" replay -c "dr_conninfo=$DR_CONN" -c "work_dir=$T/work" "$T/bad.cap" >"$T/bad.out" 2>&1
rc=$?
[ $rc = 2 ] || fail "replay of a bad file exited $rc"
grep -q PGFCAP1 "$T/bad.out" || fail "no clear error for a non-capture file: $(cat "$T/bad.out")"
tables_equal $TABLES
log "replay ok"
