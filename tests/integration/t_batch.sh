# t_batch.sh — held net changes written as set operations (relay/apply/
# batch.c): thousands of inserts, updates and deletes of one DR transaction
# go as a few statements with arrays, and the tables end equal to the
# primary's. Values that an array literal must escape (quotes, backslashes,
# braces, the delimiter, NULL and the text 'NULL', empty strings, unicode),
# a type whose arrays use another delimiter (box: ';'), composites, jsonb,
# integers of each width at their limits and padded or trailing-space
# characters (these go as arrays in binary form),
# a key of two columns, unchanged TOAST values (another shape), and a
# column whose type has no array type (arrays: row by row). Exactness
# holds per row: a missing row, a key the DR side holds twice (no unique
# key there, or a row of an inheritance child its key does not cover) and a
# duplicate insert each stop apply with the table named, nothing of the DR
# transaction committed, until repaired. Where the DR side's key is unique
# (a partitioned table's included) a statement counts its rows changed
# together, else per element.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
# every statement apply runs is logged, so the test sees how many there were
cluster_start dr "log_statement = 'all'"
SCHEMA="CREATE TYPE pair AS (x int, y text);
CREATE TABLE plain (id int PRIMARY KEY, t text, n numeric, j jsonb, bx box, ts timestamptz);
CREATE TABLE composite (id int PRIMARY KEY, p pair);
CREATE TABLE two_key (a int, b text, v int, PRIMARY KEY (a, b));
CREATE TABLE toasty (id int PRIMARY KEY, doc text, small int);
ALTER TABLE toasty ALTER doc SET STORAGE EXTERNAL;
CREATE TABLE arrays (id int PRIMARY KEY, a int[]);
CREATE TABLE keyless (n int, note text);
CREATE TABLE widths (id int8 PRIMARY KEY, s smallint, i int, c char(6), vc varchar(8), t text)"
schema_both "$SCHEMA"
# on the DR side dup has no unique key, so a key may be there twice
psql_on primary -c "CREATE TABLE dup (id int PRIMARY KEY, v text)" >/dev/null
psql_on dr -c "CREATE TABLE dup (id int, v text)" >/dev/null
# heir's primary key on the DR side does not cover the rows of its
# inheritance child, where a key may be once more; part's covers all its
# partitions
psql_on primary -c "CREATE TABLE heir (id int PRIMARY KEY, v text)" >/dev/null
psql_on dr -c "CREATE TABLE heir (id int PRIMARY KEY, v text); CREATE TABLE heir_child () INHERITS (heir)" >/dev/null
psql_on primary -c "CREATE TABLE part (id int PRIMARY KEY, v text)" >/dev/null
psql_on dr -c "CREATE TABLE part (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE part_low PARTITION OF part FOR VALUES FROM (MINVALUE) TO (50);
CREATE TABLE part_high PARTITION OF part FOR VALUES FROM (50) TO (MAXVALUE)" >/dev/null
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
TABLES="plain composite two_key toasty arrays keyless dup widths heir part"
relay_setup "sink:reconnect_max_delay = 300ms"
sink_start
source_start
wait_applied 60

log "one transaction: 3000 inserts, then updates and deletes of most of them"
psql_on primary -v ON_ERROR_STOP=1 >/dev/null <<'SQL' || fail "workload"
BEGIN;
INSERT INTO plain SELECT g,
    CASE g % 7 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'NULL' WHEN 3 THEN 'quote " and \ back {a,b} ; x'
                WHEN 4 THEN 'ünï ✓ ' || g WHEN 5 THEN E'tab\tnew\nline' ELSE 'v' || g END,
    g / 7.0, jsonb_build_object('k', g, 's', 'a"b\c'), box(point(g, g), point(0, 0)),
    '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 min'
    FROM generate_series(1, 3000) g;
INSERT INTO composite SELECT g, ROW(g, CASE WHEN g % 2 = 0 THEN 'x,y' ELSE NULL END)::pair FROM generate_series(1, 50) g;
INSERT INTO two_key SELECT g % 50, 'b' || (g / 50), g FROM generate_series(1, 1000) g;
INSERT INTO toasty SELECT g, repeat('toast' || g, 2000), 0 FROM generate_series(1, 40) g;
INSERT INTO arrays SELECT g, ARRAY[g, NULL, -g] FROM generate_series(1, 100) g;
INSERT INTO keyless SELECT g, 'n' || g FROM generate_series(1, 500) g;
INSERT INTO dup SELECT g, 'd' || g FROM generate_series(1, 100) g;
INSERT INTO heir SELECT g, 'h' || g FROM generate_series(1, 100) g;
INSERT INTO part SELECT g, 'p' || g FROM generate_series(1, 100) g;
INSERT INTO widths VALUES (-9223372036854775808, -32768, -2147483648, '', '', ''),
    (9223372036854775807, 32767, 2147483647, 'ab', 'ab  ', ' x '),
    (0, 0, 0, 'abcdef', 'abcdefgh', E'\\0'), (-1, -1, -1, ' ', ' ', 'NULL'),
    (10, NULL, NULL, NULL, NULL, NULL);
INSERT INTO widths SELECT g::int8 * 1000000007, g, -g * 65537, 'c' || g, 'v' || g || ' ', g::text
    FROM generate_series(1, 40) g;
COMMIT;
SQL
wait_applied 60
tables_equal $TABLES
psql_on primary -v ON_ERROR_STOP=1 >/dev/null <<'SQL' || fail "workload 2"
BEGIN;
UPDATE plain SET t = t || ' "2"', n = -n WHERE id % 3 <> 0;
UPDATE composite SET p = ROW((p).x + 1, 'a\b')::pair;
DELETE FROM plain WHERE id % 5 = 0;
UPDATE two_key SET v = -v WHERE a < 25;
DELETE FROM two_key WHERE a >= 40;
UPDATE toasty SET small = id;
UPDATE arrays SET a = a || 7;
INSERT INTO keyless SELECT g, NULL FROM generate_series(501, 600) g;
INSERT INTO plain SELECT g, 'late', 0, NULL, NULL, NULL FROM generate_series(3001, 3100) g;
UPDATE widths SET s = -(s / 2), i = i / 2, c = rpad(coalesce(c, ''), 3), vc = left(vc, 7) || '.' WHERE id <> 10;
UPDATE widths SET s = 32767, i = -2147483648, c = 'z', vc = '' WHERE id = 10;
UPDATE heir SET v = v || '+' WHERE id > 50;
DELETE FROM part WHERE id % 4 = 0;
UPDATE part SET v = v || '+';
DELETE FROM widths WHERE id IN (-1, 40000000280);
COMMIT;
SQL
wait_applied 60
tables_equal $TABLES
# a few statements per table and kind, not one per row: 2900 rows in plain
n=$(grep -c 'UPDATE "public"."plain" AS pgferry_t' "$T/dr/server.log")
[ "$n" -ge 1 ] && [ "$n" -le 10 ] || fail "$n batched updates of plain logged (expected 1 to 10)"
n=$(grep -c 'UPDATE "public"."plain" SET' "$T/dr/server.log")
[ "$n" = 0 ] || fail "$n row-by-row updates of plain logged (expected none)"
grep -q 'DELETE FROM "public"."two_key" AS pgferry_t USING (SELECT unnest' "$T/dr/server.log" ||
	fail "the deletes of two_key were not batched"
grep -q 'UPDATE "public"."toasty" AS pgferry_t SET "id" = pgferry_v.c0, "small"' "$T/dr/server.log" ||
	fail "the updates of toasty (unchanged TOAST left out) were not batched"
n=$(grep -c 'UPDATE "public"."widths" SET' "$T/dr/server.log")
[ "$n" = 0 ] || fail "$n row-by-row updates of widths logged (expected none)"
n=$(grep -c 'UPDATE "public"."arrays" SET' "$T/dr/server.log")
[ "$n" = 100 ] || fail "$n row-by-row updates of arrays (int[]: no array type) logged, expected 100"
n=$(grep -c 'UPDATE "public"."composite" SET' "$T/dr/server.log")
[ "$n" = 50 ] || fail "$n row-by-row updates of composite logged, expected 50"
# where the DR side's key is unique, the rows changed are counted together
# (the statement's source streams, with no numbering of its elements);
# where it is not (dup, heir), each element's rows are counted
for t in plain part; do
	grep -q "UPDATE \"public\".\"$t\" AS pgferry_t SET .* FROM (SELECT unnest(\$1) AS c0, .* RETURNING 1) SELECT CASE WHEN count(\*) = cardinality" \
		"$T/dr/server.log" || fail "the updates of $t were not counted together"
done
grep -q 'DELETE FROM "public"."part" AS pgferry_t USING (SELECT unnest($1) AS c0) AS pgferry_v WHERE .* RETURNING 1)' \
	"$T/dr/server.log" || fail "the deletes of part were not counted together"
grep -q 'INSERT INTO "public"."plain" ("id", "t", "n", "j", "bx", "ts") SELECT unnest($1), unnest($2)' \
	"$T/dr/server.log" || fail "the inserts into plain were not batched as unnests in step"
if grep -E 'UPDATE "public"."(plain|part)" AS pgferry_t .*(pgferry_n|GROUP BY)' "$T/dr/server.log"; then
	fail "an update of a table with a unique key counted its rows per element"
fi
grep -q 'UPDATE "public"."heir" AS pgferry_t .*generate_subscripts($1, 1) AS pgferry_n' \
	"$T/dr/server.log" || fail "the updates of heir (inherited rows) were not counted per element"

status() { curl -s "$SINK_URL/v1/status"; }
# broken BREAK_ON_DR CHANGE_ON_PRIMARY EXPECT REPAIR_ON_DR: apply stops
# with EXPECT and commits nothing of the transaction until repaired
broken()
{
	local break_sql=$1 change_sql=$2 expect=$3 repair_sql=$4 before
	log "broken: $expect"
	wait_applied 60
	before=$(psql_on dr -c "SELECT count(*) FROM keyless")
	psql_on dr -c "$break_sql" >/dev/null
	psql_on primary -c "BEGIN; INSERT INTO keyless VALUES (-1, 'with it'); $change_sql; COMMIT" >/dev/null
	wait_until "apply error: $expect" 60 bash -c "curl -s '$SINK_URL/v1/status' | grep -q '$expect'"
	sleep 1
	[ "$(psql_on dr -c "SELECT count(*) FROM keyless")" = "$before" ] ||
		fail "the DR transaction committed past: $expect"
	grep -q "$expect" "$T/sink.log" || fail "no log line for: $expect"
	psql_on dr -c "$repair_sql" >/dev/null
	wait_applied 60
	wait_until "apply error cleared" 30 bash -c "curl -s '$SINK_URL/v1/status' | grep -q '\"apply\":null'"
	tables_equal $TABLES
}
# the broken rows are kept aside on the DR side and put back as they were
broken "CREATE TABLE saved_plain AS SELECT * FROM plain WHERE id = 7; DELETE FROM plain WHERE id = 7" \
	"UPDATE plain SET t = 'again' WHERE id < 30" \
	'row to update not found on the DR database in public.plain' \
	"INSERT INTO plain SELECT * FROM saved_plain"
broken "CREATE TABLE saved_two_key AS SELECT * FROM two_key WHERE a = 3 AND b = 'b1'; DELETE FROM two_key WHERE a = 3 AND b = 'b1'" \
	"DELETE FROM two_key WHERE a < 10" \
	'row to delete not found on the DR database in public.two_key' \
	"INSERT INTO two_key SELECT * FROM saved_two_key"
broken "INSERT INTO dup VALUES (9, 'twin')" "UPDATE dup SET v = 'once' WHERE id < 20" \
	'row to update found 2 times on the DR database in public.dup' \
	"DELETE FROM dup WHERE v = 'twin'"
# one key missing and one there twice: as many rows changed as given, so
# only a count per element sees it (and names either)
broken "INSERT INTO heir_child VALUES (70, 'twin'); CREATE TABLE saved_heir AS SELECT * FROM ONLY heir WHERE id = 61; DELETE FROM ONLY heir WHERE id = 61" \
	"UPDATE heir SET v = 'once' WHERE id > 60" \
	'row to update \(not found\|found 2 times\) on the DR database in public.heir' \
	"DELETE FROM heir_child; INSERT INTO heir SELECT * FROM saved_heir"
broken "CREATE TABLE saved_part AS SELECT * FROM part WHERE id = 61; DELETE FROM part WHERE id = 61" \
	"UPDATE part SET v = 'again' WHERE id > 55" \
	'row to update not found on the DR database in public.part' \
	"INSERT INTO part SELECT * FROM saved_part"
broken "INSERT INTO plain VALUES (4000, 'DR only', 0, NULL, NULL, NULL)" \
	"INSERT INTO plain SELECT g, 'new' FROM generate_series(3990, 4010) g" \
	'duplicate key value violates unique constraint' \
	"DELETE FROM plain WHERE id = 4000"
log "batch ok"
