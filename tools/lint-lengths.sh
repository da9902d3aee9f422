#!/usr/bin/env bash
# lint-lengths.sh FILE... — the length report of `make lint`: every function
# longer than FUNC_WARN lines and every file longer than FILE_WARN lines,
# longest first. A function is what clang-format leaves as a line that does
# not start with a blank, "{" alone on the next line and "}" alone at the
# end. It only reports (exit 0): long code is a smell to look at, not an
# error.
FUNC_WARN=${FUNC_WARN:-80}
FILE_WARN=${FILE_WARN:-600}

awk -v limit="$FUNC_WARN" '
FNR == 1 { prev = ""; inside = 0 }
inside && /^}/ {
	n = FNR - start + 1
	if (n > limit)
		printf "%6d %s:%d %s\n", n, FILENAME, start, name
	inside = 0
}
# a signature may span lines: it starts at the last line that starts a
# declaration
!inside && /^{$/ && prev ~ /\)$/ && sig != "" {
	inside = 1
	start = sig_line
	name = sig
	sub(/\(.*/, "", name)
	sub(/.*[ *]/, "", name)
}
!inside && /^[A-Za-z_]/ { sig = $0; sig_line = FNR }
{ prev = $0 }
' "$@" | sort -rn | awk -v limit="$FUNC_WARN" '
NR == 1 { print "functions over " limit " lines:" }
{ print "  " $0 }'

wc -l "$@" | grep -v ' total$' | awk -v limit="$FILE_WARN" '$1 > limit' | sort -rn |
	awk -v limit="$FILE_WARN" 'NR == 1 { print "files over " limit " lines:" } { print "  " $0 }'
exit 0
