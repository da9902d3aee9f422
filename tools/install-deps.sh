#!/usr/bin/env bash
# install-deps.sh — install the Debian packages pgferry needs, if missing.
# Quick when everything is there (dpkg-query only, no apt call). As root it
# runs apt-get; otherwise it prints the command and fails.
set -euo pipefail

# Sets, by what a target runs: "build" (the default: make), "demo" (make
# demo: the build, PostgreSQL and what the demo script calls, nothing of the
# tests), "test" (make check: also the unit-test library, clang for the
# fuzzers, valgrind, python for the probes, chromium for the status page).
build=(
	pkg-config gcc make libev-dev libzstd-dev libxxhash-dev libssl-dev libpq-dev
	libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev
)
demo=(openssl iproute2 procps postgresql-15 postgresql-client-15 curl)
test=(check clang libclang-rt-14-dev python3 python3-psycopg2 python3-yaml valgrind chromium fonts-dejavu-core)
case "${1:-build}" in
build) packages=("${build[@]}") ;;
demo) packages=("${build[@]}" "${demo[@]}") ;;
test) packages=("${build[@]}" "${demo[@]}" "${test[@]}") ;;
# what make lint/format need
tools) packages=("${build[@]}" clang-format clang-tidy cppcheck) ;;
# promtool for t_prometheus
prometheus) packages=(prometheus) ;;
# make bench: the test set, pglogical (a peer to compare with) and perf
# (BENCH_PROFILE=1)
bench) packages=("${build[@]}" "${demo[@]}" "${test[@]}" postgresql-15-pglogical linux-perf) ;;
# what make deb and make package-check use (systemd-analyze, man, lintian)
package) packages=(dpkg-dev lintian man-db systemd) ;;
*)
	echo "install-deps.sh: unknown set \"$1\" (build, demo, test, bench, tools, prometheus, package)" >&2
	exit 2
	;;
esac

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*"install ok installed"*) ;;
	*) missing+=("$p") ;;
	esac
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "pgferry: missing packages: ${missing[*]}" >&2
	echo "pgferry: run as root:  apt-get update && $cmd" >&2
	exit 1
fi
echo "pgferry: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Debian's prometheus package would start a server; we only want promtool
if [[ " ${missing[*]} " == *" prometheus "* ]] && [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq >/dev/null || apt-get update
$cmd -qq >/dev/null || $cmd
