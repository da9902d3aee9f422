#!/usr/bin/env bash
# run.sh — "make bench": every benchmark in bench/, each printing ratios.
set -u
cd "$(dirname "$0")"
rc=0
for b in bench_*.sh; do
	[ -e "$b" ] || { echo "no benchmarks yet"; exit 0; }
	echo "== $b"
	bash "$b" || rc=1
done
exit $rc
