# t_relation_again.sh — the walsender describes a table again after any
# invalidation of it (a VACUUM or ANALYZE on the primary, which updates
# pg_class); the same description must not make the sink check the table
# against the DR database again, nor prepare its statements again
# (decoder/relcache.c): each such check waits for every group in flight
# and runs a catalog query. A new description (a column added) is checked.
# Counted by an independent probe: the DR server's own statement log.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start primary
cluster_start dr "log_statement = 'all'"
schema_both "CREATE TABLE t (id int PRIMARY KEY, v int)"
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES" >/dev/null
relay_setup
sink_start
source_start
wait_applied 60

visible() { [ "$(psql_on dr -c "SELECT count(*) FROM t WHERE id = $1")" = 1 ]; }
# the sink's check of table t on the DR database (relay/apply/schema.c)
checks() { grep -c "type_has_equality(a.atttypid).*c.relname = \$2" "$DR_HOST/server.log"; }
checks_of_t()
{
	# each check's parameters follow it in the log: count those naming t
	grep -A1 "type_has_equality(a.atttypid).*c.relname = \$2" "$DR_HOST/server.log" |
		grep -c "\$2 = 't'"
}

psql_on primary -c "INSERT INTO t VALUES (1, 0)" >/dev/null
wait_until "the first row on the DR side" 60 visible 1
first=$(checks_of_t)
log "table t checked $first time(s) once its first row came"
[ "$first" -ge 1 ] || fail "no check of t in the DR server's log: the probe is blind ($(checks) checks)"

log "VACUUM and ANALYZE on the primary between changes: t is described again, the same"
for i in 2 3 4 5; do
	psql_on primary -c "VACUUM t" >/dev/null || fail "vacuum"
	psql_on primary -c "ANALYZE t" >/dev/null || fail "analyze"
	psql_on primary -c "INSERT INTO t VALUES ($i, $i); UPDATE t SET v = v + 1 WHERE id = 1" >/dev/null ||
		fail "change $i"
	wait_until "row $i on the DR side" 60 visible "$i"
done
again=$(checks_of_t)
log "table t checked $again time(s) after four VACUUM and ANALYZE"
[ "$again" = "$first" ] ||
	fail "the sink checked t again $((again - first)) time(s) for descriptions that did not change"
tables_equal t

log "a column added on both sides: a new description, checked"
psql_on dr -c "ALTER TABLE t ADD COLUMN w int" >/dev/null
psql_on primary -c "ALTER TABLE t ADD COLUMN w int" >/dev/null
psql_on primary -c "INSERT INTO t VALUES (6, 6, 6)" >/dev/null
wait_until "row 6 on the DR side" 60 visible 6
[ "$(checks_of_t)" -gt "$again" ] || fail "the new description of t was not checked"
[ "$(psql_on dr -c "SELECT w FROM t WHERE id = 6")" = 6 ] || fail "the new column's value is not on the DR side"
tables_equal t
