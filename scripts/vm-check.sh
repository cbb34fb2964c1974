#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# vm-check.sh DIR - a guest lane: every test binary in DIR, run by
# scripts/run-tests.sh inside a QEMU guest booted on one of Debian's kernels
# with soft-RoCE (scripts/vm-run --rdma --dist DIST), then the RDMA example
# there (scripts/vm-lane.sh).  CG_VM_DIST picks the kernel: bookworm or
# 6.1 (Debian 12's 6.1, the default), bullseye or 5.10 (Debian 11's 5.10).
# Prints the lane and the guest's kernel version, `rdma link` and
# `ibv_devices` (vm-run does), the suites with run-tests.sh's summary,
# "NAME lane: N passed, N failed[, N skipped]" (NAME is CG_TEST_LANE,
# by default vm-6.1 or vm-5.10), what the example did, and at the end the
# guest's kernel and how long the lane took.
#
# The guest sees the host's / read-only, so it cannot append to
# CG_TEST_TALLY itself: with CG_TEST_TALLY set, this script appends the
# lane's line ("LANE PASSED FAILED SKIPPED STATUS", run-tests.sh --total)
# from the summary the guest printed, or a failure when there was none
# (the guest did not come up, or timed out); and the failed binaries the
# guest listed to TALLY.failures.
#
# Environment:
#   CG_VM_DIST       bookworm|6.1 (default) or bullseye|5.10: vm-run --dist
#   CG_VM_ARGS       vm-run options (default: --rdma --mem 6G --timeout 1200
#                    --append "hugepagesz=1G hugepages=3": the 1 GiB pool
#                    the harness wants, reserved at boot where a run-time
#                    request finds no room; 20 minutes at most, where a
#                    lane took 5 to 8); --dist is added to them
#   CG_VM_CPUS       the guest's virtual CPUs (vm-run --cpus; vm-run's
#                    default when unset)
#   CG_TEST_TIMEOUT  seconds per binary in the guest (default 300: code
#                    runs about 6x slower there, and the slowest binary
#                    took 87 s on 6.1 with the host loaded; a binary that
#                    hangs costs the lane 5 minutes, not 15)
#   CG_TEST_1G_ONE_MODE  1 GiB hugetlb cells in daemon mode only (default 1;
#                    empty: both modes): a third of the 6.1 lane's time
#                    went to 1 GiB cells (tests/harness-cases.c)
#   CG_TEST_FILTER, CG_TEST_LANE, CK_TIMEOUT_MULTIPLIER: passed to the guest
set -uo pipefail

dir=${1:?usage: vm-check.sh DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
case ${CG_VM_DIST:-bookworm} in
bookworm | 6.1) dist=bookworm series=6.1 ;;
bullseye | 5.10) dist=bullseye series=5.10 ;;
*) echo "vm-check: CG_VM_DIST: bookworm (6.1) or bullseye (5.10), not $CG_VM_DIST" >&2; exit 2 ;;
esac
lane=${CG_TEST_LANE:-vm-$series}
export CG_TEST_LANE=$lane
tally=${CG_TEST_TALLY:-}
if [ -n "${CG_VM_ARGS:-}" ]; then
	read -r -a vm_args <<<"$CG_VM_ARGS"
else
	vm_args=(--rdma --mem 6G --timeout 1200 --append "hugepagesz=1G hugepages=3")
fi
vm_args+=(--dist "$dist")
[ -z "${CG_VM_CPUS:-}" ] || vm_args+=(--cpus "$CG_VM_CPUS")
export CG_TEST_TIMEOUT=${CG_TEST_TIMEOUT:-300}
export CG_TEST_1G_ONE_MODE=${CG_TEST_1G_ONE_MODE-1}
[ -n "$CG_TEST_1G_ONE_MODE" ] || unset CG_TEST_1G_ONE_MODE

log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "vm-check: the $lane lane: $dist's newest $series kernel, $dir"
start=$SECONDS
# The guest must not try the host's tally (read-only there): unset it.
env -u CG_TEST_TALLY bash "$root/scripts/vm-run" "${vm_args[@]}" -- \
	bash "$root/scripts/vm-lane.sh" "$dir" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
secs=$((SECONDS - start))
guest=$(sed -n 's/^vm-run: guest kernel //p' "$log" | head -n 1)
echo "vm-check: the $lane lane ran on ${guest:-no guest kernel (it never came up)}" \
     "in $((secs / 60)) min $((secs % 60)) s (vm-run exit $status)"

summary=$(grep -E "^${lane//./\\.} lane: [0-9]+ passed, [0-9]+ failed" "$log" | tail -n 1)
if [ -n "$tally" ]; then
	if [ -n "$summary" ]; then
		read -r p f s < <(sed -E 's/^.*\b([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?.*$/\1 \2 \4/' <<<"$summary")
		echo "$lane $p $f ${s:-0} $status" >>"$tally"
		sed -n '/^run-tests: failed binaries:$/,$p' "$log" |
			grep '^  ' >>"$tally.failures" || true
	else
		echo "$lane 0 1 0 1" >>"$tally"
		echo "  $lane lane: no summary from the guest (vm-run exit $status)" >>"$tally.failures"
		grep '^vm-lane: run-tests.sh exited' "$log" | sed 's/^/  /' >>"$tally.failures" || true
	fi
	grep '^vm-lane: example' "$log" | sed 's/^/  /' >>"$tally.failures" || true
fi
if [ -z "$summary" ]; then
	echo "vm-check: the guest printed no summary (vm-run exit $status)"
	echo "$lane lane: 0 passed, 1 failed"
	exit 1
fi
exit "$status"
