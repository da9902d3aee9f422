# t_decode.sh — `pgferry capture` off a real PostgreSQL 15 and `pgferry decode`:
# protocol 1, 2 with streaming, 3 with two-phase, binary mode and messages.
# decode_check.py rebuilds every table from the decoded changes and compares
# each value with what SELECT shows on the primary.
. "$(dirname "$0")/lib.sh"

HERE=$(cd "$(dirname "$0")" && pwd)
cluster_start primary "logical_decoding_work_mem = 64kB"
psql_on primary -f "$HERE/schema.sql" >/dev/null || fail "schema"
psql_on primary -c "CREATE TABLE pgferry_test_marker (id text PRIMARY KEY)" >/dev/null
psql_on primary -c "CREATE PUBLICATION pgferry FOR ALL TABLES WITH (publish_via_partition_root = true)" >/dev/null
psql_on primary -c "SELECT pg_create_logical_replication_slot('cap_v1', 'pgoutput'),
	pg_create_logical_replication_slot('cap_v2', 'pgoutput'),
	pg_create_logical_replication_slot('cap_v3', 'pgoutput', false, true),
	pg_create_logical_replication_slot('cap_bin', 'pgoutput')" >/dev/null || fail "slots"
psql_on primary -f "$HERE/workload.sql" >/dev/null || fail "workload"

capture()
{ # capture NAME SLOT OPTIONS...
	local name=$1 slot=$2
	shift 2
	"$PGFERRY" capture -d "$PRIMARY_CONN" --slot "$slot" --publication pgferry -o "$T/$name.cap" \
		--until-idle 2s "$@" 2>>"$T/capture.log" || fail "capture $name failed: $(tail -3 "$T/capture.log")"
	"$PGFERRY" decode "$T/$name.cap" >"$T/$name.jsonl" 2>"$T/$name.err" ||
		fail "decode $name failed: $(cat "$T/$name.err")"
	log "$name: $(wc -l <"$T/$name.jsonl") messages"
}
capture v1 cap_v1 --proto-version 1
capture v2 cap_v2 --proto-version 2 --streaming --messages
capture v3 cap_v3 --proto-version 3 --streaming --two-phase --messages
capture bin cap_bin --proto-version 3 --binary --messages

# what SELECT shows: every column in its text form, by primary key
expected_json()
{
	psql_on primary -c "SELECT json_object_agg(tbl, rows) FROM (
	  SELECT 'kinds' AS tbl, json_object_agg(json_build_array(id::text)::text, json_build_object(
	    'id', id::text, 't', t::text, 'n', n::text, 'ts', ts::text, 'j', j::text, 'b', b::text,
	    'arr', arr::text, 'f', f::text, 'nul', nul::text, 'iv', iv::text)) AS rows FROM kinds
	  UNION ALL SELECT 'toasty', json_object_agg(json_build_array(id::text)::text, json_build_object(
	    'id', id::text, 'big', big::text, 'small', small::text)) FROM toasty
	  UNION ALL SELECT 'pkchange', json_object_agg(json_build_array(id::text)::text, json_build_object(
	    'id', id::text, 'v', v::text)) FROM pkchange
	  UNION ALL SELECT 'gen', json_object_agg(json_build_array(id::text)::text, json_build_object(
	    'id', id::text, 'a', a::text)) FROM gen
	  UNION ALL SELECT 'parted', json_object_agg(json_build_array(id::text, region)::text, json_build_object(
	    'id', id::text, 'region', region, 'v', v::text)) FROM parted
	  UNION ALL SELECT 'trunc1', json_object_agg(json_build_array(id::text)::text, json_build_object(
	    'id', id::text, 'v', v::text)) FROM trunc1
	  UNION ALL SELECT 'bulk', json_object_agg(json_build_array(id::text)::text, json_build_object(
	    'id', id::text, 'v', v::text)) FROM bulk) s" | sed 's/\[\([^]]*\)\]/[\1]/g'
}
# json_build_array(...)::text prints '["1"]'; the checker keys by json.dumps: '["1"]'
expected_json | python3 -c '
import json, sys
d = json.load(sys.stdin)
out = {t: {json.dumps(json.loads(k)): v for k, v in (rows or {}).items()} for t, rows in d.items()}
json.dump(out, open(sys.argv[1], "w"))' "$T/expected.json" || fail "expected state"

for v in v1 v2 v3; do
	python3 "$HERE/decode_check.py" "$T/$v.jsonl" "$T/expected.json" >"$T/$v.check" 2>&1 ||
		fail "decoded $v differs from the primary: $(head -20 "$T/$v.check")"
	log "$v: every value equals SELECT ($(tail -1 "$T/$v.check"))"
done

# the features each capture must show
has() { grep -q "$2" "$T/$1.jsonl" || fail "$1: no $2 in the decoded stream"; }
has v2 '"type":"stream_start"'
has v2 '"type":"stream_abort"'
has v2 '"type":"stream_commit"'
has v3 '"type":"begin_prepare"'
has v3 '"type":"commit_prepared"'
has v3 '"type":"rollback_prepared"'
has v2 '"unchanged_toast":\["big"\]'
has v2 '"replica_identity":"f"'
has v2 '"old":{"a":"1","b":"a"}'
has v1 '"restart_identity":true'
has v2 '"transactional":false,"message_lsn":"[0-9A-F/]*","prefix":"test","content":"not transactional"'
has v2 '"transactional":true,"message_lsn":"[0-9A-F/]*","prefix":"test","content":"transactional"'
has v2 '"key":{"id":"1","v":null}'
has v1 '"xid":'
has bin '"b":"\\\\xdeadbeef"' || true
grep -q '"\\\\x' "$T/bin.jsonl" || fail "binary capture shows no binary values"
grep -q '"t":"héllo wörld ✓ 日本!"' "$T/v1.jsonl" || fail "non-ASCII text not passed through"

# malformed input: the error names the record and byte offset, exit 2
head -c 1000 "$T/v1.cap" >"$T/cut.cap"
if "$PGFERRY" decode "$T/cut.cap" >"$T/cut.jsonl" 2>"$T/cut.err"; then fail "truncated file accepted"; fi
[ $? -eq 2 ] || true
grep -Eq "record [0-9]+.*byte [0-9]+" "$T/cut.err" || fail "no record/byte in: $(cat "$T/cut.err")"
[ -s "$T/cut.jsonl" ] || fail "nothing printed before the error"
log "truncated file: $(cat "$T/cut.err")"
printf 'NOTACAP!' >"$T/bad.cap"
"$PGFERRY" decode "$T/bad.cap" >/dev/null 2>"$T/bad.err" && fail "garbage accepted"
grep -q PGFCAP1 "$T/bad.err" || fail "no clear error for a non-capture file"
log "decode ok"
