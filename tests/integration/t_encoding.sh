# t_encoding.sh — a LATIN1 primary database and a UTF-8 DR database: values
# and names are converted (pgoutput converts them to the UTF8 the source's
# connection asks for, the DR server from UTF8 to its own encoding), as
# native logical replication does. Rows are found again by converted values
# (REPLICA IDENTITY FULL).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr
psql_on primary -c "CREATE DATABASE latin ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" >/dev/null
PRIMARY_CONN="host=$PRIMARY_HOST port=$PRIMARY_PORT user=postgres dbname=latin"
[ "$(psql_on primary -c "SHOW server_encoding")" = LATIN1 ] || fail "the primary database is not LATIN1"
[ "$(psql_on dr -c "SHOW server_encoding")" = UTF8 ] || fail "the DR database is not UTF8"
# psql speaks UTF8 to both; each server converts
export PGCLIENTENCODING=UTF8
schema_both "CREATE TABLE café (id int PRIMARY KEY, été text, c char(3));
CREATE TABLE plein (v text, n int); ALTER TABLE plein REPLICA IDENTITY FULL"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup
# pgferry states its client_encoding itself: it must not inherit this one
unset PGCLIENTENCODING
sink_start
source_start
export PGCLIENTENCODING=UTF8
wait_applied 60

psql_on primary -c "INSERT INTO café VALUES (1, 'été', 'àé'), (2, 'ÿ £ © ß Æ', 'x');
INSERT INTO plein VALUES ('été', 1), ('été', 1), ('naïve', 2)" >/dev/null
psql_on primary -c "UPDATE café SET été = été || ' à Noël' WHERE id = 1;
UPDATE plein SET n = 3 WHERE ctid = (SELECT ctid FROM plein WHERE v = 'été' LIMIT 1);
DELETE FROM plein WHERE v = 'naïve'" >/dev/null
wait_applied 60
for t in café plein; do
	# the hash of the rows' texts in UTF-8 on both sides
	q="SELECT count(*) || ':' || md5(convert_to(string_agg(ROW(t.*)::text, E'\\n' ORDER BY ROW(t.*)::text), 'UTF8')) FROM $t t"
	p=$(psql_on primary -c "$q") && d=$(psql_on dr -c "$q") || fail "cannot read $t"
	[ "$p" = "$d" ] || fail "table $t differs: primary $p, DR $d"
	log "table $t equal (${p%%:*} rows)"
done
[ "$(psql_on dr -c "SELECT encode(convert_to(été, 'UTF8'), 'hex') FROM café WHERE id = 1")" = \
	"$(printf 'été à Noël' | od -An -tx1 | tr -d ' \n')" ] || fail "the DR side does not hold 'été à Noël' in UTF-8"
[ "$(psql_on dr -c "SELECT count(*) FROM plein WHERE v = 'été' AND n = 3")" = 1 ] || fail "not exactly one row updated"
grep -q "ERROR" "$T/sink.log" && fail "the sink logged an error: $(grep -m1 ERROR "$T/sink.log")"

log "a UTF-8 primary database into a LATIN1 DR database: what LATIN1 cannot hold stops apply"
sink_stop
source_stop
mv "$T/sink.log" "$T/sink-latin.log"
cluster_start dr2
psql_on dr2 -c "CREATE DATABASE latin ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" >/dev/null
DR2_CONN="host=$DR2_HOST port=$DR2_PORT user=postgres dbname=latin"
PRIMARY_CONN="host=$PRIMARY_HOST port=$PRIMARY_PORT user=postgres dbname=postgres"
DR_CONN=$DR2_CONN
schema_both "CREATE TABLE t (id int PRIMARY KEY, v text)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup "source:slot_name = 'second'"
export WAIT_SLOT=second
unset PGCLIENTENCODING
sink_start
source_start
export PGCLIENTENCODING=UTF8
wait_applied 60
psql_on primary -c "INSERT INTO t VALUES (1, 'été')" >/dev/null
wait_applied 60
psql_on primary -c "INSERT INTO t VALUES (2, 'été'), (3, 'smile 😀')" >/dev/null
wait_until "the conversion error in status" 60 bash -c "curl -s '$SINK_URL/v1/status' | grep -q 'has no equivalent in encoding'"
curl -s "$SINK_URL/v1/status" | grep -o '"apply":{[^}]*}' | head -1
curl -s "$SINK_URL/v1/status" | grep -q '\\"UTF8\\".*\\"LATIN1\\"' || fail "the error does not name both encodings"
[ "$(psql_on dr -c "SELECT string_agg(id::text || v, ',' ORDER BY id) FROM t")" = "1été" ] ||
	fail "the DR database holds more than the rows before the failing transaction"
log "encoding ok"
