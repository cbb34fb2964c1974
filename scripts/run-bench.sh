#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# run-bench.sh [DIR] - run every benchmark binary in DIR (default build/bench)
# in name order, with a cowguardd of the build tree on a private socket so
# that daemon mode is measured too, and a second one on asynchronous write
# protection (COWGUARD_WP=async, $COWGUARD_ASYNC_SOCKET).  Exits non-zero if
# any benchmark failed.
# BENCH_ARGS are passed to every benchmark (for example --quick).
set -euo pipefail

dir=${1:-build/bench}
build=$(cd "$dir/.." && pwd)
sock=$build/bench-cowguardd.sock
async_sock=$build/bench-cowguardd-async.sock
daemons=()

# shellcheck disable=SC2317 # called by the EXIT trap
stop() { [ ${#daemons[@]} -gt 0 ] && kill "${daemons[@]}" 2>/dev/null; return 0; }
trap stop EXIT

# start_daemon SOCKET LOG [VAR=VALUE...]: a cowguardd of the build tree.
start_daemon() {
	local socket=$1 log=$2
	shift 2
	env "$@" "$build/cowguardd" --socket "$socket" 2>"$log" &
	daemons+=("$!")
	for _ in $(seq 100); do
		[ -S "$socket" ] && break
		sleep 0.05
	done
}

start_daemon "$sock" "$build/bench-cowguardd.log"
start_daemon "$async_sock" "$build/bench-cowguardd-async.log" COWGUARD_WP=async
export COWGUARD_SOCKET=$sock COWGUARD_ASYNC_SOCKET=$async_sock

status=0
for bin in "$dir"/*; do
	[[ -f $bin && -x $bin ]] || continue
	# shellcheck disable=SC2086 # BENCH_ARGS is a list of options
	"$bin" ${BENCH_ARGS:-} </dev/null || status=1
done
exit "$status"
