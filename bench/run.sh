#!/usr/bin/env bash
# run.sh — "make bench": every benchmark in bench/, each printing ratios.
# The catch-up runs at pgbench scale 1 and 10, each on loopback and across
# an emulated 80 ms round trip capped at 50 Mbit/s; then the steady load.
# BENCH_QUICK=1 runs smaller backlogs and shorter loads (a few minutes in
# all: the figures are noisier, the comparison is the same).
set -u
cd "$(dirname "$0")"
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	export BENCH_TRANSACTIONS=${BENCH_TRANSACTIONS:-10000}
	export BENCH_SECONDS=${BENCH_SECONDS:-8}
	export BENCH_DECODE_TRANSACTIONS=${BENCH_DECODE_TRANSACTIONS:-10000}
fi
rc=0
for scale in ${BENCH_SCALES:-1 10}; do
	echo "== bench_catchup.sh at scale $scale"
	BENCH_SCALE=$scale bash bench_catchup.sh || rc=1
done
echo "== bench_steady.sh"
bash bench_steady.sh || rc=1
echo "== bench_decode.sh"
bash bench_decode.sh || rc=1
exit $rc
