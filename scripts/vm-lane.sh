#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# vm-lane.sh DIR - what scripts/vm-check.sh runs inside the guest (Debian's
# 6.1 or 5.10 kernel, scripts/vm-run --dist): every
# test binary in DIR (scripts/run-tests.sh, its summary line as usual), then
# the RDMA example (DIR/../examples/verbs_reg_mr) against the guest's
# device, which prints what it did.  An example that fails prints
# "vm-lane: example NAME failed (exit N)".  Exit status: non-zero when the
# suites or the example failed.
set -uo pipefail

dir=${1:?usage: vm-lane.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)

bash "$here/run-tests.sh" "$dir"
status=$?
# run-tests.sh ends 0 or 1; anything else means it died, perhaps before its
# summary line (vm-check.sh then counts the lane as one failure).
if [ "$status" -gt 1 ]; then
	why=
	[ "$status" -gt 128 ] && why=" (signal $((status - 128)))"
	echo "vm-lane: run-tests.sh exited $status$why, perhaps before its summary"
fi

example=$dir/../examples/verbs_reg_mr
echo "=== example $(basename "$example")"
if [ -x "$example" ]; then
	"$example"
	rc=$?
else
	echo "vm-lane: no $example (not built)"
	rc=1
fi
if [ "$rc" -ne 0 ]; then
	echo "vm-lane: example $(basename "$example") failed (exit $rc)"
	status=1
fi
exit "$status"
