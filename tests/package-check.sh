#!/usr/bin/env bash
# package-check.sh — the Debian package that "make deb" built, checked as
# it would be installed: unpacked into a fresh root, the systemd units pass
# systemd-analyze verify (against the unpacked binary and man page), the man
# page renders without a warning and lists every command and configuration
# key, /usr/bin/pgferry runs, lintian finds no error; and "make install"
# under another PREFIX puts every file in place. Run by "make package-check"
# (and make check). Prints "package-check: ok" or the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "package-check: FAIL: $*" >&2; exit 1; }

version=$(sed -n 's/^#define PGFERRY_VERSION "\(.*\)"$/\1/p' include/pgferry/version.h)
deb=build/pgferry_${version}_$(dpkg --print-architecture).deb
[ -f "$deb" ] || fail "$deb is missing: run make deb"
T=$(mktemp -d "${TMPDIR:-/tmp}/pgferry-pkg.XXXXXX")
trap 'rm -rf "$T"' EXIT
R=$T/root

dpkg -x "$deb" "$R" || fail "dpkg -x $deb"
for f in usr/bin/pgferry usr/share/pgferry/sql/primary_setup.sql usr/share/pgferry/sql/dr_setup.sql \
	usr/share/pgferry/sql/dr_state.sql usr/share/pgferry/make-certs.sh \
	usr/share/pgferry/prometheus/alerts.yml usr/share/pgferry/prometheus/rules.yml \
	usr/share/pgferry/grafana/pgferry.json \
	etc/pgferry/source.conf.sample etc/pgferry/sink.conf.sample \
	lib/systemd/system/pgferry-source@.service lib/systemd/system/pgferry-sink@.service \
	usr/share/man/man1/pgferry.1.gz usr/share/doc/pgferry/copyright; do
	[ -e "$R/$f" ] || fail "the package has no /$f"
done
dpkg-deb -f "$deb" Depends | grep -q 'libpq5' || fail "Depends does not name libpq5"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/pgferry/sink.conf.sample ||
	fail "the samples are not conffiles"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./postinst | grep -q 'adduser --system' ||
	fail "postinst creates no pgferry user"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./postinst | sh -n || fail "postinst is not valid sh"

# the binary from the package
"$R/usr/bin/pgferry" version >"$T/version" || fail "/usr/bin/pgferry version failed"
grep -q "^pgferry $version" "$T/version" || fail "version says: $(head -1 "$T/version")"

# the units: one instance each, against the unpacked binary and man page
mkdir -p "$T/units"
for role in source sink; do
	u=$R/lib/systemd/system/pgferry-$role@.service
	for key in 'Restart=on-failure' 'ProtectSystem=strict' 'NoNewPrivileges=yes' 'PrivateTmp=yes' \
		'User=pgferry' 'ReadWritePaths=/var/lib/pgferry' \
		"ExecStart=/usr/bin/pgferry $role --config /etc/pgferry/%i.conf"; do
		grep -qxF "$key" "$u" || fail "pgferry-$role@.service has no $key"
	done
	sed "s|/usr/bin/pgferry|$R/usr/bin/pgferry|" "$u" >"$T/units/pgferry-$role@test.service"
	MANPATH=$R/usr/share/man systemd-analyze verify "$T/units/pgferry-$role@test.service" \
		>"$T/verify" 2>&1 || fail "systemd-analyze verify pgferry-$role@: $(cat "$T/verify")"
	[ ! -s "$T/verify" ] || fail "systemd-analyze verify pgferry-$role@ warns: $(cat "$T/verify")"
done

# the man page: renders without a warning, and has what --help has
MANWIDTH=80 man --warnings -l "$R/usr/share/man/man1/pgferry.1.gz" >"$T/man.txt" 2>"$T/man.err" ||
	fail "man -l failed: $(cat "$T/man.err")"
[ ! -s "$T/man.err" ] || fail "man -l warns: $(head -5 "$T/man.err")"
"$R/usr/bin/pgferry" --help >"$T/help"
for c in $(sed -n '/^Commands:/,/^$/p' "$T/help" | awk 'NF > 1 {print $1}'); do
	grep -q "^   pgferry $c\$" "$T/man.txt" || fail "the man page has no section for $c"
done
for k in $(sed -n '/^Configuration keys/,$p' "$T/help" | awk 'NF > 1 && /^  / {print $1}'); do
	grep -Eq "^       $k +\\(" "$T/man.txt" || fail "the man page does not list the key $k"
done
grep -q 'EXIT STATUS' "$T/man.txt" || fail "the man page has no EXIT STATUS"

lintian --tag-display-limit 0 "$deb" >"$T/lintian" 2>&1 || true
if grep -q '^E: ' "$T/lintian"; then
	fail "lintian errors: $(grep '^E: ' "$T/lintian")"
fi

# make install under another PREFIX: the units point at it
make --no-print-directory -s install DESTDIR="$T/inst" PREFIX=/opt/pgf >/dev/null || fail "make install"
for f in bin/pgferry share/pgferry/sql/dr_setup.sql share/pgferry/make-certs.sh \
	etc/pgferry/sink.conf.sample lib/systemd/system/pgferry-sink@.service share/man/man1/pgferry.1; do
	[ -e "$T/inst/opt/pgf/$f" ] || fail "make install PREFIX=/opt/pgf put no $f"
done
grep -qxF 'ExecStart=/opt/pgf/bin/pgferry sink --config /opt/pgf/etc/pgferry/%i.conf' \
	"$T/inst/opt/pgf/lib/systemd/system/pgferry-sink@.service" || fail "installed unit does not point at PREFIX"
echo "package-check: ok ($(grep -c '^[WI]: ' "$T/lintian" || true) lintian warnings or notes, no error)"
