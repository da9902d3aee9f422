#!/usr/bin/env bash
# run.sh — runs the integration tests (t_*.sh), or the one named, each in its
# own process with its own clusters, and prints "N passed, N failed".
set -u
cd "$(dirname "$0")"
filter=${1:-}
ROOT=$(cd ../.. && pwd)
# these run pgferry built with AddressSanitizer + UndefinedBehaviorSanitizer
# (the others measure memory or time, for which the plain build is right)
ASAN_TESTS=" forge verdict cli deploy prometheus pipeline integrity tls secrets files readahead admission http_attack identity apply_error metrics lag promote drift ddl verify clone coalesce partition spool missing_row types encoding origins seeding sequences permanent "
passed=0
failed=0
failed_names=()
for t in t_*.sh; do
	name=${t%.sh}
	name=${name#t_}
	if [ -n "$filter" ] && [ "$filter" != "$name" ] && [ "$filter" != "$t" ]; then
		continue
	fi
	start=$SECONDS
	out=$(mktemp)
	if [[ "$ASAN_TESTS" == *" $name "* ]] && [ -x "$ROOT/bin/pgferry-asan" ]; then
		export PGFERRY_BIN=$ROOT/bin/pgferry-asan
	else
		unset PGFERRY_BIN
	fi
	if timeout --kill-after=10 "${TEST_TIMEOUT:-600}" bash "$t" >"$out" 2>&1; then
		passed=$((passed + 1))
		printf 'integration %-28s ok    (%ds)\n' "$name" $((SECONDS - start))
	else
		failed=$((failed + 1))
		failed_names+=("$name")
		printf 'integration %-28s FAIL  (%ds)\n' "$name" $((SECONDS - start))
		sed 's/^/    /' "$out" | tail -n 60
	fi
	rm -f "$out"
done
[ $failed -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "integration: $passed passed, $failed failed"
[ $failed -eq 0 ]
