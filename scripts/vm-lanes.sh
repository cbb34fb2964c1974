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
# with 6 GiB.
#
# Each guest gets its share of the host's cores as virtual CPUs
# (CG_VM_CPUS, unless set): one each on 2 cores.  Two guests of 2 virtual
# CPUs each on 2 cores took 17-20 minutes: a virtual CPU that waits for
# another to take an interrupt (a TLB flush across the threads of one
# process, such as the embedded engine's handler and the test) spins
# while the host runs the other guest, and a suite that takes 7 s in a
# guest alone took 86 s (2026-12-07).
#
# Exit status: non-zero when any lane failed.
set -uo pipefail

dir=${1:?usage: vm-lanes.sh DIR SERIES...}
shift
here=$(cd "$(dirname "$0")" && pwd)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

cpus=$(($(nproc 2>/dev/null || echo 2) / $#))
[ "$cpus" -ge 1 ] || cpus=1
export CG_VM_CPUS=${CG_VM_CPUS:-$cpus}

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
