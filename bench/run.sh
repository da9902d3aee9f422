#!/usr/bin/env bash
# run.sh — "make bench": every benchmark in bench/, each printing ratios.
# The catch-up runs twice: on loopback, and across an emulated 80 ms round
# trip (the proxy holds each byte 40 ms each way).
set -u
cd "$(dirname "$0")"
rc=0
for b in bench_*.sh; do
	[ -e "$b" ] || { echo "no benchmarks yet"; exit 0; }
	echo "== $b"
	bash "$b" || rc=1
	if [ "$b" = bench_catchup.sh ]; then
		echo "== $b across an 80 ms round trip"
		BENCH_DELAY_MS=40 bash "$b" || rc=1
	fi
done
exit $rc
