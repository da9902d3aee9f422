#!/usr/bin/env bash
# run-all.sh — what "make check" runs after building: unit tests (plain and
# under ASan+UBSan), valgrind, each fuzz target briefly, the Debian
# package, then the integration tests.
# Ends with one line "check: N passed, N failed"; exits non-zero on failure.
set -u
cd "$(dirname "$0")/.."
passed=0
failed=0
start=$SECONDS

count_check()
{ # adds the counts from Check's "NN%: Checks: N, Failures: F, Errors: E"
	local line n f e
	line=$(grep -E '^[0-9]+%: Checks: ' "$1" | tail -1)
	if [ -z "$line" ]; then
		failed=$((failed + 1))
		return
	fi
	n=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
	f=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
	e=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
	passed=$((passed + n - f - e))
	failed=$((failed + f + e))
}

for flavour in release asan; do
	log=$(mktemp)
	echo "== unit tests ($flavour)"
	build/$flavour/unit_tests >"$log" 2>&1
	rc=$?
	cat "$log"
	count_check "$log"
	[ $rc -eq 0 ] || grep -q 'Failures: [1-9]\|Errors: [1-9]' "$log" || failed=$((failed + 1))
	rm -f "$log"
done

# valgrind sees what ASan does not (reads of uninitialised memory): the
# unit tests, and the decoder over every capture seed (valid and broken)
echo "== valgrind (unit tests; pgferry decode of the capture seeds)"
VG=(valgrind -q --error-exitcode=3 --leak-check=full --errors-for-leak-kinds=definite)
if CK_FORK=no "${VG[@]}" build/release/unit_tests >/dev/null 2>"${TMPDIR:-/tmp}/pgferry-vg.$$"; then
	passed=$((passed + 1))
	echo "valgrind unit tests: clean"
else
	failed=$((failed + 1))
	echo "valgrind unit tests: FAILED"
	cat "${TMPDIR:-/tmp}/pgferry-vg.$$"
fi
vg_bad=0
for f in tests/fuzz/corpus/capture/*; do
	"${VG[@]}" bin/pgferry decode "$f" >/dev/null 2>"${TMPDIR:-/tmp}/pgferry-vg.$$"
	if [ $? -eq 3 ]; then
		vg_bad=$((vg_bad + 1))
		echo "valgrind: errors decoding $f"
		cat "${TMPDIR:-/tmp}/pgferry-vg.$$"
	fi
done
rm -f "${TMPDIR:-/tmp}/pgferry-vg.$$"
if [ $vg_bad -eq 0 ]; then
	passed=$((passed + 1))
	echo "valgrind decode of $(ls tests/fuzz/corpus/capture | wc -l) capture seeds: clean"
else
	failed=$((failed + 1))
fi

if [ $# -gt 0 ]; then
	echo "== fuzz targets (brief)"
	if bash tests/fuzz/run.sh brief "$@"; then
		passed=$((passed + $#))
	else
		failed=$((failed + 1))
	fi
fi

echo "== Debian package (make deb; tests/package-check.sh)"
if make --no-print-directory -s package-check; then
	passed=$((passed + 1))
else
	failed=$((failed + 1))
fi

echo "== integration tests (real PostgreSQL)"
log=$(mktemp)
bash tests/integration/run.sh 2>&1 | tee "$log"
line=$(grep -E '^integration: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
if [ -n "$line" ]; then
	passed=$((passed + $(sed -E 's/^integration: ([0-9]+) passed.*/\1/' <<<"$line")))
	failed=$((failed + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")))
else
	failed=$((failed + 1))
fi
rm -f "$log"

echo "make check took $((SECONDS - start))s"
echo "check: $passed passed, $failed failed"
[ $failed -eq 0 ]
