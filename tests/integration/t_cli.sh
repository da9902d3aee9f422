# t_cli.sh — commands behave like Unix tools: `pgferry CMD --help` prints
# that command's usage and exits 0 without starting anything, an unknown
# option is named and exits 2, `pgferry version` names every library, and
# `pgferry lag --watch` writes terminal escapes to a terminal only.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/relay.sh"

cluster_start dr
relay_setup
rm -rf "$T/work"

# every command --help listed by `pgferry --help`, plus a daemon given a
# complete configuration: usage on stdout, exit 0, nothing started
"$PGFERRY_BIN" --help >"$T/help.txt" || fail "pgferry --help failed"
cmds=$(sed -n '/^Commands:/,/^$/p' "$T/help.txt" | awk 'NF > 1 {print $1}')
[ "$(wc -w <<<"$cmds")" -ge 10 ] || fail "pgferry --help lists too few commands: $cmds"
for c in $cmds; do
	rc=0
	timeout 30 "$PGFERRY_BIN" "$c" --help >"$T/out" 2>"$T/err" || rc=$?
	[ $rc -eq 0 ] || fail "pgferry $c --help exited $rc: $(cat "$T/err")"
	head -1 "$T/out" | grep -q "^Usage: pgferry $c" || fail "pgferry $c --help printed: $(head -3 "$T/out")"
	grep -q -- '--help' "$T/out" || fail "pgferry $c --help does not list --help"
	[ ! -s "$T/err" ] || fail "pgferry $c --help wrote to stderr: $(cat "$T/err")"
done
for c in sink source; do
	timeout 30 "$PGFERRY_BIN" "$c" --config "$T/$c.conf" -h >"$T/out" 2>&1 ||
		fail "pgferry $c --config FILE -h failed: $(cat "$T/out")"
done
[ ! -e "$T/work" ] || fail "pgferry sink --help started the sink (it created work_dir)"
ss -Htln "( sport = :$SINK_PORT or sport = :$HTTP_PORT )" | grep -q . &&
	fail "something listens on the sink's ports after --help"
grep -q -- '--watch \[INTERVAL\]' <("$PGFERRY_BIN" lag --help) || fail "lag --help does not show --watch [INTERVAL]"

# an unknown option is named, on stderr, exit 2, before anything starts
for c in $cmds; do
	rc=0
	timeout 30 "$PGFERRY_BIN" "$c" --no-such-option >"$T/out" 2>"$T/err" || rc=$?
	[ $rc -eq 2 ] || fail "pgferry $c --no-such-option exited $rc"
	grep -q '"--no-such-option"' "$T/err" || fail "pgferry $c does not name the unknown option: $(cat "$T/err")"
done
rc=0
"$PGFERRY_BIN" sink --config "$T/sink.conf" --jsno >"$T/out" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q 'unknown option "--jsno"' "$T/out" || fail "sink with a typo: exit $rc, $(cat "$T/out")"
[ ! -e "$T/work" ] || fail "pgferry sink with an unknown option started the sink"
rc=0
"$PGFERRY_BIN" lag --url >"$T/out" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q -- '--url needs a value' "$T/out" || fail "lag --url without a value: exit $rc, $(cat "$T/out")"
rc=0
"$PGFERRY_BIN" lag --watch soon >"$T/out" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q -- '"soon"' "$T/out" || fail "lag --watch soon: exit $rc, $(cat "$T/out")"
rc=0
"$PGFERRY_BIN" lag --watch 5 >"$T/out" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q -- 'with its unit' "$T/out" || fail "lag --watch 5 (no unit) was taken: exit $rc, $(cat "$T/out")"

# version: pgferry and each library it links, with a version number
"$PGFERRY_BIN" version >"$T/version.txt" || fail "pgferry version failed"
head -1 "$T/version.txt" | grep -Eq '^pgferry [0-9]+\.[0-9]+' || fail "version: $(head -1 "$T/version.txt")"
for lib in libpq zstd OpenSSL libev libmicrohttpd jansson libcurl xxhash; do
	grep -Eq "^  $lib +[0-9]+\.[0-9]+" "$T/version.txt" || fail "pgferry version does not name $lib: $(cat "$T/version.txt")"
done
[ "$(awk '/libpq/ {print $2}' "$T/version.txt" | cut -d. -f1)" = "$(pg_config --version | awk '{print $2}' | cut -d. -f1)" ] ||
	fail "libpq version $(grep libpq "$T/version.txt") is not PostgreSQL's major"

# lag --watch: into a file, each report in turn and not one escape byte;
# on a terminal (script(1) gives it one) the screen is cleared each time
sink_start
wait_until "the sink's HTTP API" 60 curl -sf "$SINK_URL/v1/status"
bg_start watch_pipe "$PGFERRY_BIN" lag --url "$SINK_URL" --watch 200ms
wait_until "three reports into a file" 60 bash -c "[ \$(grep -c 'pgferry lag report' '$T/watch_pipe.log') -ge 3 ]"
bg_stop watch_pipe
if grep -q $'\033' "$T/watch_pipe.log"; then
	fail "lag --watch wrote terminal escapes into a file: $(grep -c $'\033' "$T/watch_pipe.log") lines"
fi
bg_start watch_tty script -qfec "$PGFERRY_BIN lag --url $SINK_URL --watch 200ms" /dev/null
wait_until "three cleared screens on a terminal" 60 bash -c "[ \$(grep -c $'\033\\\\[2J' '$T/watch_tty.log') -ge 3 ]"
bg_stop watch_tty
log "cli ok"
