#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# run-bench.sh [DIR] - run every benchmark binary in DIR (default build/bench)
# in name order, with a cowguardd of the build tree on a private socket so
# that daemon mode is measured too.  Exits non-zero if any benchmark failed.
# BENCH_ARGS are passed to every benchmark (for example --quick).
set -euo pipefail

dir=${1:-build/bench}
build=$(cd "$dir/.." && pwd)
sock=$build/bench-cowguardd.sock
daemon=

# shellcheck disable=SC2317 # called by the EXIT trap
stop() { [ -n "$daemon" ] && kill "$daemon" 2>/dev/null; return 0; }
trap stop EXIT

"$build/cowguardd" --socket "$sock" 2>"$build/bench-cowguardd.log" &
daemon=$!
for _ in $(seq 100); do
	[ -S "$sock" ] && break
	sleep 0.05
done
export COWGUARD_SOCKET=$sock

status=0
for bin in "$dir"/*; do
	[[ -f $bin && -x $bin ]] || continue
	# shellcheck disable=SC2086 # BENCH_ARGS is a list of options
	"$bin" ${BENCH_ARGS:-} </dev/null || status=1
done
exit "$status"
