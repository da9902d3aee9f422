#!/usr/bin/env bash
# run.sh — runs the integration tests (t_*.sh), or the one named, each in its
# own process with its own clusters, and prints "N passed, N failed".
# INTEGRATION_JOBS tests run at once (default 2): most of a test's time is
# spent waiting on servers, and every test has its own clusters on random
# free ports, so they do not meet. The longest start first.
set -u
cd "$(dirname "$0")"
filter=${1:-}
ROOT=$(cd ../.. && pwd)
JOBS=${INTEGRATION_JOBS:-2}
[ -n "$filter" ] && JOBS=1
# these run pgferry built with AddressSanitizer + UndefinedBehaviorSanitizer
# (the others measure memory or time, for which the plain build is right)
ASAN_TESTS=" forge frame_header verdict cli deploy prometheus pipeline integrity tls secrets files readahead admission http_attack identity apply_error metrics lag promote drift ddl relation_again verify clone coalesce batch partition spool missing_row types encoding origins seeding sequences permanent slot_wal check replay reload events rpo_guard status_page sigterm drill commit_failure "
# the longest tests, started first so that two lanes end together
FIRST="truth crash large_txn lag verify clone pipeline bigrow"
passed=0
failed=0
failed_names=()
outdir=$(mktemp -d "${TMPDIR:-/tmp}/pgferry-run.XXXXXX")
trap 'rm -rf "$outdir"' EXIT

names=()
for n in $FIRST; do
	[ -f "t_$n.sh" ] && names+=("$n")
done
for t in t_*.sh; do
	name=${t%.sh}
	name=${name#t_}
	[[ " $FIRST " == *" $name "* ]] && continue
	names+=("$name")
done

run_one()
{ # runs test $1, leaves its output in $outdir/$1.out and its status in .rc
	local name=$1 start=$SECONDS rc bin=
	if [[ "$ASAN_TESTS" == *" $name "* ]] && [ -x "$ROOT/bin/pgferry-asan" ]; then
		bin=$ROOT/bin/pgferry-asan
	fi
	if [ -n "$bin" ]; then
		PGFERRY_BIN=$bin timeout --kill-after=10 "${TEST_TIMEOUT:-600}" bash "t_$name.sh" \
			>"$outdir/$name.out" 2>&1
	else
		(unset PGFERRY_BIN; timeout --kill-after=10 "${TEST_TIMEOUT:-600}" bash "t_$name.sh") \
			>"$outdir/$name.out" 2>&1
	fi
	rc=$?
	echo "$rc $((SECONDS - start))" >"$outdir/$name.rc"
}

report()
{ # prints the result of test $1 once it has ended
	local name=$1 rc secs
	read -r rc secs <"$outdir/$name.rc"
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		printf 'integration %-28s ok    (%ds)\n' "$name" "$secs"
	else
		failed=$((failed + 1))
		failed_names+=("$name")
		printf 'integration %-28s FAIL  (%ds)\n' "$name" "$secs"
		sed 's/^/    /' "$outdir/$name.out" | tail -n 60
	fi
	rm -f "$outdir/$name.rc"
}

declare -A running=()
reap()
{ # waits for a test to end, then reports each one that has
	local r
	wait -n 2>/dev/null
	for r in "${!running[@]}"; do
		if [ -f "$outdir/$r.rc" ]; then
			wait "${running[$r]}" 2>/dev/null
			unset "running[$r]"
			report "$r"
		fi
	done
}

for name in "${names[@]}"; do
	if [ -n "$filter" ] && [ "$filter" != "$name" ] && [ "$filter" != "t_$name.sh" ]; then
		continue
	fi
	while [ ${#running[@]} -ge "$JOBS" ]; do
		reap
	done
	run_one "$name" &
	running[$name]=$!
done
while [ ${#running[@]} -gt 0 ]; do
	reap
done
if [ $failed -gt 0 ]; then
	# a CI log is often read from its end: say here why each test failed
	for name in "${failed_names[@]}"; do
		grep -m 3 -E 'FAIL|timed out|Sanitizer' "$outdir/$name.out" | sed "s/^/    $name: /" | cut -c1-300
	done
	echo "failed: ${failed_names[*]}"
fi
echo "integration: $passed passed, $failed failed"
[ $failed -eq 0 ]
