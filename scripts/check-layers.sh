#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# check-layers.sh - the boundaries docs/architecture.md draws, checked on
# the sources:
#   1. Outside lib/engine/ only the engine's face, engine/engine.h, is
#      included from it (daemon/, the handle side lib/*.c, lib/uring/,
#      lib/verbs/, lib/preload/, lib/kernel/, lib/wire/).  tests/ and bench/ may look
#      inside: they test and time the engine's parts.
#   2. Kernel I/O (lib/kernel/), the wire format (lib/wire/) and the image
#      format (lib/image/) include nothing above them: neither the engine
#      nor the handle side.
#   3. The engine includes nothing of the handle side (lib/*.h).
#   4. Outside lib/engine/, of struct cg__mm only the owner's fields (those
#      above "the engine's" line in engine.h) are touched.
#   5. No include cycle: a module is a .c and the .h of the same name in
#      one folder, and includes are its edges (tsort finds loops).
# Prints each breach and exits 1, or one line and 0.
set -euo pipefail

cd "$(dirname "$0")/.."
bad=0

breach() {
	echo "check-layers: $*"
	bad=1
}

# "file:header" for each quoted include of the files given.
includes() {
	grep -H '^#include "' "$@" | sed 's/:#include "\([^"]*\)".*/:\1/'
}

sources() {
	find "$@" -maxdepth 1 \( -name '*.c' -o -name '*.h' \) | sort
}

# 1.
while IFS=: read -r f h; do
	case $h in
	engine/engine.h) ;;
	engine/*) breach "$f includes $h, private to lib/engine/ (use engine/engine.h)" ;;
	esac
done < <(includes $(sources daemon daemon/ctl daemon/run lib lib/uring lib/verbs lib/preload lib/criu lib/kernel lib/wire lib/image))

# 2.
while IFS=: read -r f h; do
	case $h in
	kernel/* | wire/* | cowguard.h | cowguard/*) ;;
	*/*) breach "$f (a lower layer) includes $h" ;;
	*) [ -e "$(dirname "$f")/$h" ] || breach "$f (a lower layer) includes $h" ;;
	esac
done < <(includes $(sources lib/kernel lib/wire lib/image))

# 3.
while IFS=: read -r f h; do
	case $h in
	*/*) [[ $h == engine/* || $h == kernel/* || $h == wire/* || $h == cowguard/* ]] ||
		breach "$f (the engine) includes $h" ;;
	*) [ -e "lib/engine/$h" ] || [ "$h" = cowguard.h ] ||
		breach "$f (the engine) includes $h of the handle side" ;;
	esac
done < <(includes $(sources lib/engine))

# 4. The owner's fields: from "struct cg__mm {" to the engine's line.
owner=$(sed -n '/^struct cg__mm {/,/---- the engine.s/p' lib/engine/engine.h |
	sed 's|/\*.*\*/||g' | grep -v '^[[:space:]]*\*' |
	sed -n 's/.*(\*\([a-z_]*\))(.*/\1/p; s/.*[ *]\([a-z_][a-z0-9_]*\)\(\[[^]]*\]\)*;.*/\1/p' |
	sort -u | tr '\n' ' ')
[ -n "$owner" ] || breach "cannot read the owner's fields of struct cg__mm in lib/engine/engine.h"
while IFS=: read -r f field; do
	[[ " $owner " == *" $field "* ]] ||
		breach "$f touches mm.$field, the engine's (ask lib/engine/engine.h)"
done < <(grep -oH '\bmm\(\.\|->\)[a-z_][a-z0-9_]*' $(sources daemon lib lib/uring lib/verbs lib/preload) |
	 grep -v ':mm\.[ch]$' | sed 's/:mm\(\.\|->\)/:/' | sort -u)

# 5. Edges between modules (folder/name without the suffix).
edges=$(includes $(sources lib lib/engine lib/kernel lib/wire lib/image lib/uring lib/verbs lib/preload daemon daemon/ctl daemon/run) |
	while IFS=: read -r f h; do
		from=${f%.*}
		if [ -e "$(dirname "$f")/$h" ]; then
			to=$(dirname "$f")/${h%.h}
		elif [ -e "lib/$h" ]; then
			to=lib/${h%.h}
		else
			continue	# include/: the public headers
		fi
		[ "$from" = "$to" ] || echo "$from $to"
	done | sort -u)
if ! loops=$(tsort <<<"$edges" 2>&1 >/dev/null); then
	breach "include cycle: $(sed "s/^tsort: //" <<<"$loops" | tr "\n" " ")"
fi

if [ "$bad" -ne 0 ]; then
	echo "check-layers: FAILED"
	exit 1
fi
echo "check-layers: $(wc -l <<<"$edges") include edges, no cycle; the engine behind engine/engine.h; owner fields: $(wc -w <<<"$owner")"
