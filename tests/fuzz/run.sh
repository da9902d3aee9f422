#!/usr/bin/env bash
# run.sh SECONDS|brief FUZZER... — runs each libFuzzer target for a bounded
# time on its corpus (tests/fuzz/corpus/NAME, seeded from real captures).
# "brief" shares about 30 seconds among all targets (for make check).
set -u
cd "$(dirname "$0")"
mode=$1
shift
[ $# -gt 0 ] || exit 0
if [ "$mode" = brief ]; then
	per=$((30 / $#))
	[ $per -ge 3 ] || per=3
else
	per=$mode
fi
rc=0
for bin in "$@"; do
	name=$(basename "$bin")
	name=${name#fuzz_}
	seeds=corpus/$name
	work=$(mktemp -d)
	[ -d "$seeds" ] && cp -r "$seeds/." "$work/" 2>/dev/null
	log=$(mktemp)
	if "../../$bin" -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="${TMPDIR:-/tmp}/pgferry-fuzz-$name-" "$work" >"$log" 2>&1; then
		execs=$(grep -E 'stat::number_of_executed_units' "$log" | awk '{print $2}')
		echo "fuzz $name: ${per}s, ${execs:-?} executions, nothing found"
	else
		echo "fuzz $name: FAILED (artifact in ${TMPDIR:-/tmp}/pgferry-fuzz-$name-*)"
		tail -n 40 "$log"
		rc=1
	fi
	rm -rf "$work" "$log"
done
exit $rc
