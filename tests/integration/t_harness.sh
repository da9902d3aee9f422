# t_harness.sh — the harness itself: two clusters, a replication connection
# to the primary, IDENTIFY_SYSTEM, teardown.
. "$(dirname "$0")/lib.sh"

cluster_start primary
cluster_start dr

[ "$PRIMARY_PORT" != "$DR_PORT" ] || fail "both clusters got port $PRIMARY_PORT"
[ "$(psql_on primary -c 'SHOW wal_level')" = logical ] || fail "wal_level is not logical"
[ "$(psql_on primary -c 'SHOW track_commit_timestamp')" = on ] || fail "track_commit_timestamp is off"

# IDENTIFY_SYSTEM over a libpq replication connection
row=$(psql "$PRIMARY_CONN replication=database" -X -At -F '|' -c IDENTIFY_SYSTEM) ||
	fail "IDENTIFY_SYSTEM failed"
IFS='|' read -r sysid timeline xlogpos dbname <<<"$row"
expected=$(as_pg "$PG_BINDIR/pg_controldata" "$PRIMARY_DATA" | awk -F': *' '/Database system identifier/ {print $2}')
[ "$sysid" = "$expected" ] || fail "system identifier $sysid, pg_controldata says $expected"
[ "$timeline" = 1 ] || fail "timeline $timeline"
[[ "$xlogpos" =~ ^[0-9A-F]+/[0-9A-F]+$ ]] || fail "xlogpos $xlogpos"
[ "$dbname" = postgres ] || fail "dbname $dbname"

# the two clusters are distinct systems
dr_sysid=$(psql_on dr -c 'SELECT system_identifier FROM pg_control_system()')
[ "$dr_sysid" != "$sysid" ] || fail "primary and DR share a system identifier"

# the harness stops and restarts servers by PID
cluster_ctl dr restart
psql_on dr -c 'SELECT 1' >/dev/null || fail "DR did not come back"
log "harness ok: primary $sysid on port $PRIMARY_PORT, DR on $DR_PORT"
