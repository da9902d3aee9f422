#!/usr/bin/env bash
# make-deb.sh — builds build/pgferry_VERSION_ARCH.deb with dpkg-deb from
# what `make install` installs (PREFIX=/usr): the binary, the SQL, the
# certificate recipe, the samples as conffiles, the templated systemd units
# and the man page, plus the user pgferry created by postinst.
#
#   tools/make-deb.sh BINARY MANPAGE          (run by "make deb")
# DEB_MAINTAINER overrides the Maintainer field (default: the last commit's author).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1
man=$2
version=$(sed -n 's/^#define PGFERRY_VERSION "\(.*\)"$/\1/p' include/pgferry/version.h)
arch=$(dpkg --print-architecture)
maintainer=${DEB_MAINTAINER:-$(git log -1 --format='%an <%ae>' 2>/dev/null || true)}
[ -n "$version" ] || { echo "make-deb.sh: no PGFERRY_VERSION in include/pgferry/version.h" >&2; exit 2; }
[ -n "$maintainer" ] || { echo "make-deb.sh: set DEB_MAINTAINER='Name <mail>'" >&2; exit 2; }

stage=build/deb/pgferry_${version}_$arch
out=build/pgferry_${version}_$arch.deb
rm -rf "$stage" "$out"
mkdir -p "$stage/DEBIAN"
umask 022

make --no-print-directory -s install DESTDIR="$PWD/$stage" PREFIX=/usr SYSCONFDIR=/etc \
	UNITDIR=/lib/systemd/system >/dev/null
# Debian ships binaries stripped (the debug symbols would go in a -dbgsym package)
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/bin/pgferry"
gzip -9n "$stage/usr/share/man/man1/pgferry.1"
doc=$stage/usr/share/doc/pgferry
mkdir -p "$doc"
cat >"$doc/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: pgferry
Comment: The source tree states no licence; ask its maintainers before redistributing.

Files: *
Copyright: the pgferry authors
License: unknown
 No licence has been stated for pgferry.
COPY
{
	echo "pgferry ($version) unstable; urgency=medium"
	echo
	echo "  * Package built from the pgferry source tree (see its git history)."
	echo
	echo " -- $maintainer  $(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")"
} | gzip -9n >"$doc/changelog.gz"

# the libraries the binary links, as dpkg-shlibdeps finds them
shlib=$(mktemp -d)
mkdir -p "$shlib/debian"
printf 'Source: pgferry\n\nPackage: pgferry\nArchitecture: any\n' >"$shlib/debian/control"
depends=$(cd "$shlib" && dpkg-shlibdeps -O "$OLDPWD/$stage/usr/bin/pgferry" 2>/dev/null |
	sed -n 's/^shlibs:Depends=//p')
rm -rf "$shlib"
[ -n "$depends" ] || { echo "make-deb.sh: dpkg-shlibdeps found no dependencies" >&2; exit 2; }

cat >"$stage/DEBIAN/control" <<CONTROL
Package: pgferry
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: adduser, $depends
Suggests: postgresql-client, openssl
Section: database
Priority: optional
Description: disaster-recovery copy of PostgreSQL with a provable RPO
 pgferry keeps a disaster-recovery copy of a PostgreSQL database by logical
 replication (pgoutput). The source, next to the primary, ships compressed,
 checksummed batches over mutual TLS; the sink, next to the DR database,
 applies each transaction exactly once and in order and reports how much
 data a promotion would lose (Prometheus metrics, an HTTP API and
 promote-check).
CONTROL
(cd "$stage" && find etc -type f | sed 's|^|/|') >"$stage/DEBIAN/conffiles"

cat >"$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
	if ! getent passwd pgferry >/dev/null; then
		adduser --system --group --home /var/lib/pgferry --no-create-home \
			--gecos "pgferry relay" --shell /usr/sbin/nologin pgferry >/dev/null
	fi
	install -d -o pgferry -g pgferry -m 0700 /var/lib/pgferry
	install -d -o root -g pgferry -m 0750 /etc/pgferry/certs
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null || true
	fi
fi
exit 0
POSTINST
cat >"$stage/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
	rm -rf /var/lib/pgferry
	rmdir /etc/pgferry/certs /etc/pgferry 2>/dev/null || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null || true
fi
exit 0
POSTRM
chmod 755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/postrm"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
	xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "$out"
