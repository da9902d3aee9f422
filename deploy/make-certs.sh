#!/bin/sh
# make-certs.sh — a private CA and the two certificates pgferry's mutual TLS
# needs, with openssl:
#
#   make-certs.sh [-d DIR] [-days N] SINK_NAMES SOURCE_NAME
#
#   SINK_NAMES   the names the source reaches the sink by, comma-separated:
#                host names and/or IP addresses (dr-host.example.com,10.0.0.7).
#                The source checks the sink's certificate against the host of
#                sink_address, or against its tls_peer_name when set.
#   SOURCE_NAME  a name for the source (its host name, or pgferry-source).
#                The sink accepts only a certificate with this name: put it
#                in the sink's tls_peer_name.
#
# Writes into DIR (default ./pgferry-certs, created; existing files are not
# overwritten): ca.crt, ca.key, sink.crt, sink.key, source.crt, source.key.
# Keys are created mode 0600. Copy ca.crt, sink.crt and sink.key to the DR
# host; ca.crt, source.crt and source.key to the primary's host; keep ca.key
# offline (it signs new certificates). Certificates are valid for -days
# (default 825; the CA ten years).
set -eu

dir=./pgferry-certs
days=825
while [ $# -gt 0 ]; do
	case $1 in
	-d) dir=${2:?-d needs a directory}; shift 2 ;;
	-days) days=${2:?-days needs a number}; shift 2 ;;
	-h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "make-certs.sh: unknown option \"$1\" (see --help)" >&2; exit 2 ;;
	*) break ;;
	esac
done
if [ $# -ne 2 ]; then
	echo "usage: make-certs.sh [-d DIR] [-days N] SINK_NAMES SOURCE_NAME (see --help)" >&2
	exit 2
fi
sink_names=$1
source_name=$2
command -v openssl >/dev/null || { echo "make-certs.sh: openssl is not installed" >&2; exit 2; }

umask 077
mkdir -p "$dir"
cd "$dir"
for f in ca.key ca.crt sink.key sink.crt source.key source.crt; do
	if [ -e "$f" ]; then
		echo "make-certs.sh: $dir/$f exists; remove it or choose another -d" >&2
		exit 2
	fi
done

# "a.example,10.0.0.7" -> "DNS:a.example,IP:10.0.0.7"
san_of()
{
	echo "$1" | tr ',' '\n' | while read -r n; do
		[ -n "$n" ] || continue
		case $n in
		*[!0-9.]* | "") case $n in *:*) echo "IP:$n" ;; *) echo "DNS:$n" ;; esac ;;
		*) echo "IP:$n" ;;
		esac
	done | paste -sd, -
}

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# sign NAME CN SAN: NAME.key, NAME.crt for both server and client use
sign()
{
	key "$1.key"
	openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
	printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' \
		"$3" >"$1.ext"
	openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
		-extfile "$1.ext" -out "$1.crt" 2>/dev/null
	rm -f "$1.csr" "$1.ext"
}

key ca.key
openssl req -x509 -new -key ca.key -days 3650 -subj "/CN=pgferry CA" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-out ca.crt
sign sink "${sink_names%%,*}" "$(san_of "$sink_names")"
sign source "$source_name" "$(san_of "$source_name")"
rm -f ca.srl
chmod 600 ca.key sink.key source.key
chmod 644 ca.crt sink.crt source.crt
openssl verify -CAfile ca.crt sink.crt source.crt >/dev/null

cat <<MSG
Certificates in $dir:
  DR host (sink):       ca.crt sink.crt sink.key      tls_peer_name = '$source_name'
  primary host (source): ca.crt source.crt source.key  sink_address = '${sink_names%%,*}:7433'
Keep ca.key offline. Keys must stay readable by the pgferry user only (0600).
MSG
