#!/usr/bin/env bash
# lint-unused.sh OBJECT... — fails on an exported function that nothing
# calls: its name appears in no .c file of relay/, decoder/, tests/ or
# bench/ but on the line that defines it. The objects (nm) say which
# functions are exported; unused static functions are the compiler's
# (-Wunused-function). tools/lint-unused.allow lists, one a line, the
# functions kept on purpose; say why there in a comment.
cd "$(dirname "$0")/.." || exit 2
allow=tools/lint-unused.allow
bad=0
for f in $(nm --defined-only -g "$@" | awk '$2 == "T" { print $3 }' | sort -u); do
	[ "$f" = main ] && continue
	grep -qx -- "$f" "$allow" 2>/dev/null && continue
	n=$(grep -rhw --include='*.c' -- "$f" relay decoder tests bench | wc -l)
	if [ "$n" -le 1 ]; then
		echo "unused function: $f (remove it, or list it in $allow with the reason)"
		bad=1
	fi
done
exit $bad
