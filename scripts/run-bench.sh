#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# run-bench.sh [DIR] - run every benchmark binary in DIR (default build/bench)
# in name order and print its output.  Exits non-zero if any benchmark failed.
set -euo pipefail

dir=${1:-build/bench}
status=0
for bin in "$dir"/*; do
	[[ -f $bin && -x $bin ]] || continue
	"$bin" </dev/null || status=1
done
exit "$status"
