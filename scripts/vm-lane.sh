#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# vm-lane.sh DIR - what scripts/vm-check.sh runs inside the 6.1 guest: every
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
