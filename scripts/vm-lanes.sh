#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# vm-lanes.sh DIR SERIES... - the guest lanes of SERIES (6.1, 5.10) at
# once, each by scripts/vm-check.sh DIR (CG_TEST_TALLY passed on), their
# outputs shown whole one after the other once all are done.
#
# Why at once: a guest (QEMU TCG) keeps about one host core busy while its
# suites run one binary at a time, and a lane spends a minute or more
# booting and waiting; side by side the 6.1 and 5.10 lanes took 15 min 9 s
# where one after the other took 21 min 2 s (2 cores, 2026-12-07), each
# with 6 GiB.  Exit status: non-zero when any lane failed.
set -uo pipefail

dir=${1:?usage: vm-lanes.sh DIR SERIES...}
shift
here=$(cd "$(dirname "$0")" && pwd)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

pids=()
for series in "$@"; do
	CG_VM_DIST=$series CG_TEST_LANE=vm-$series \
		bash "$here/vm-check.sh" "$dir" >"$logs/$series" 2>&1 &
	pids+=($!)
	echo "vm-lanes: the vm-$series lane started (pid $!)"
done

status=0
for i in "${!pids[@]}"; do
	wait "${pids[$i]}" || status=1
done
for series in "$@"; do
	cat "$logs/$series"
done
exit "$status"
