#!/usr/bin/env bash
# lint-unused.sh OBJECT... — fails on an exported function that nothing
# calls: its name appears in the code of no .c file of relay/, decoder/,
# tests/ or bench/ but where it is defined. Comments and string literals do
# not count (a function only named in a comment is still unused). The
# objects (nm) say which functions are exported; unused static functions
# are the compiler's (-Wunused-function). tools/lint-unused.allow lists,
# one a line, the functions kept on purpose; say why there in a comment.
cd "$(dirname "$0")/.." || exit 2
allow=tools/lint-unused.allow
bad=0
code=$(mktemp) || exit 2
trap 'rm -f "$code"' EXIT
# one pass, so that "//" in a string or a quote in a comment misleads nothing
find relay decoder tests bench -name '*.c' -print0 | xargs -0 perl -0777 -pe \
	's{("(?:[^"\\\n]|\\.)*")|(\x27(?:[^\x27\\\n]|\\.)*\x27)|/\*.*?\*/|//[^\n]*}{defined $1 ? "\"\"" : defined $2 ? $2 : " "}gse' \
	>"$code" || exit 2
for f in $(nm --defined-only -g "$@" | awk '$2 == "T" { print $3 }' | sort -u); do
	[ "$f" = main ] && continue
	grep -qx -- "$f" "$allow" 2>/dev/null && continue
	n=$(grep -ow -- "$f" "$code" | wc -l)
	if [ "$n" -le 1 ]; then
		echo "unused function: $f (remove it, or list it in $allow with the reason)"
		bad=1
	fi
done
exit $bad
