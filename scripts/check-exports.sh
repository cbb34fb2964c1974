#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# check-exports.sh [LIBDIR [INCLUDEDIR]] - each of libcowguard, -uring and
# -verbs exports exactly the functions its headers declare, each with the
# version node its symbol map lists it under.
#
# LIBDIR holds the built (or installed) .so files (default: build), and
# INCLUDEDIR the headers (default: include).  For each library three lists
# of names must be equal:
#   - declared: every CG_EXPORT function of its headers;
#   - listed:   every name in its symbol map (lib/, lib/uring/, lib/verbs/)
#               but COWGUARD_PRIVATE;
#   - exported: `nm -D --defined-only` of the .so, but COWGUARD_PRIVATE.
# A name exported but not declared is an accident that becomes ABI; one
# declared but not exported fails to link in every program that calls it.
# Prints what differs; exit 1 when anything does, 77 when nm is missing.
set -euo pipefail

libdir=${1:-build}
incdir=${2:-include}
mapdir=$(cd "$(dirname "$0")/../lib" && pwd)

if ! command -v nm >/dev/null; then
	echo "SKIP: check-exports: needs nm (binutils)"
	exit 77
fi

# The functions a header declares: "CG_EXPORT <type> [*]name(" on one line.
declared() {
	sed -n 's/^CG_EXPORT .*[ *]\([a-z_][a-z0-9_]*\)(.*/\1/p' "$@" | sort -u
}

# The names listed in a map's public nodes, with "name node" per line.
listed() {
	awk '/^[A-Z_0-9.]+ *{/ { node = $1; next }
	     node != "" && node != "COWGUARD_PRIVATE" &&
	     /^[ \t]*[a-z_][a-z0-9_]*;/ { sub(/^[ \t]*/, ""); sub(/;.*/, "");
					  print $0, node }' "$1" | sort -u
}

# The library's dynamic symbols, "name node" per line, private ones left out.
exported() {
	nm -D --defined-only "$1" |
		awk '$2 ~ /^[TtWwDdBbRri]$/ { print $3 }' |
		sed 's/@@*/ /' | grep -v ' COWGUARD_PRIVATE$' | sort -u
}

status=0
check() {
	local so=$1 map=$2 node=$3	# node: the prefix of its version nodes
	shift 3
	local d l e bad=0

	if [ ! -e "$libdir/$so" ]; then
		echo "check-exports: $libdir/$so: not built"
		status=1
		return
	fi
	d=$(declared "$@")
	l=$(listed "$mapdir/$map")
	e=$(exported "$libdir/$so")
	diff -u --label "declared in $*" --label "listed in lib/$map" \
		<(echo "$d") <(cut -d' ' -f1 <<<"$l") || bad=1
	diff -u --label "listed in lib/$map (name node)" \
		--label "exported by $so (name node)" \
		<(echo "$l") <(echo "$e") || bad=1
	# One node per release: PREFIX_MAJOR.MINOR.
	if grep -Ev " ${node}[0-9]+\.[0-9]+\$" <<<"$l"; then
		echo "check-exports: lib/$map: the names above are in a node not named ${node}MAJOR.MINOR"
		bad=1
	fi
	if [ "$bad" -ne 0 ]; then
		status=1
		return
	fi
	echo "check-exports: $so: $(wc -l <<<"$d") functions, declared = listed = exported"
}

check libcowguard.so libcowguard.map COWGUARD_ \
	"$incdir/cowguard.h" "$incdir/cowguard/splice.h"
check libcowguard-uring.so uring/libcowguard-uring.map COWGUARD_URING_ \
	"$incdir/cowguard/uring.h"
check libcowguard-verbs.so verbs/libcowguard-verbs.map COWGUARD_VERBS_ \
	"$incdir/cowguard/verbs.h"
[ "$status" -eq 0 ] || echo "check-exports: FAILED"
exit "$status"
