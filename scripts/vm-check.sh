#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# vm-check.sh DIR - the 6.1 guest lane: every test binary in DIR, run by
# scripts/run-tests.sh inside a QEMU guest booted on Debian's 6.1 kernel
# with soft-RoCE (scripts/vm-run --rdma), then the RDMA example there
# (scripts/vm-lane.sh).  Prints the guest's kernel version, `rdma link`
# and `ibv_devices` (vm-run does), the suites with run-tests.sh's summary,
# "N passed, N failed[, N skipped]" (with CG_TEST_LANE=NAME: "NAME lane:
# ..."), and what the example did.
#
# The guest sees the host's / read-only, so it cannot append to
# CG_TEST_TALLY itself: with CG_TEST_TALLY set, this script appends the
# lane's line ("LANE PASSED FAILED SKIPPED STATUS", run-tests.sh --total)
# from the summary the guest printed, or a failure when there was none
# (the guest did not come up, or timed out); and the failed binaries the
# guest listed to TALLY.failures.
#
# Environment:
#   CG_VM_ARGS       vm-run options (default: --rdma --mem 6G --timeout 2400
#                    --append "hugepagesz=1G hugepages=3": the 1 GiB pool
#                    the harness wants, reserved at boot where a run-time
#                    request finds no room)
#   CG_TEST_TIMEOUT  seconds per binary in the guest (default 900: code
#                    runs about 6x slower there)
#   CG_TEST_FILTER, CG_TEST_LANE, CK_TIMEOUT_MULTIPLIER: passed to the guest
set -uo pipefail

dir=${1:?usage: vm-check.sh DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
lane=${CG_TEST_LANE:-}
tally=${CG_TEST_TALLY:-}
if [ -n "${CG_VM_ARGS:-}" ]; then
	read -r -a vm_args <<<"$CG_VM_ARGS"
else
	vm_args=(--rdma --mem 6G --timeout 2400 --append "hugepagesz=1G hugepages=3")
fi
export CG_TEST_TIMEOUT=${CG_TEST_TIMEOUT:-900}

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# The guest must not try the host's tally (read-only there): unset it.
env -u CG_TEST_TALLY bash "$root/scripts/vm-run" "${vm_args[@]}" -- \
	bash "$root/scripts/vm-lane.sh" "$dir" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

summary=$(grep -E "^(${lane:+$lane lane: })[0-9]+ passed, [0-9]+ failed" "$log" | tail -n 1)
if [ -n "$tally" ]; then
	if [ -n "$summary" ]; then
		read -r p f s < <(sed -E 's/^.*\b([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?.*$/\1 \2 \4/' <<<"$summary")
		echo "${lane:-vm} $p $f ${s:-0} $status" >>"$tally"
		sed -n '/^run-tests: failed binaries:$/,$p' "$log" |
			grep '^  ' >>"$tally.failures" || true
		grep '^vm-lane: example' "$log" | sed 's/^/  /' >>"$tally.failures" || true
	else
		echo "${lane:-vm} 0 1 0 1" >>"$tally"
	fi
fi
if [ -z "$summary" ]; then
	echo "vm-check: the guest printed no summary (vm-run exit $status)"
	echo "${lane:+$lane lane: }0 passed, 1 failed"
	exit 1
fi
exit "$status"
