#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# demo.sh - cowguardd servicing a real process's userfaultfd, end to end:
# start the daemon on a socket under the build tree, run examples/fork_share
# against it, show `cowguardctl status` while the example still holds its
# regions, then stop the daemon and show what it logged.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${CG_BUILDDIR:-build}
dir=$build/demo
sock=$dir/cowguardd.sock
log=$dir/cowguardd.log
out=$dir/fork_share.out
nr_2m=/proc/sys/vm/nr_hugepages
saved_2m=
daemon=

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	[ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
	[ -n "$saved_2m" ] && echo "$saved_2m" >"$nr_2m"
	return 0
}
trap cleanup EXIT

mkdir -p "$dir"
rm -f "$sock" "$log" "$out"

# A hugetlb region needs pages in the pool; root may lend a few, and gets
# the old value back on exit.
if [ "$(id -u)" = 0 ] && [ -w "$nr_2m" ] && [ "$(cat "$nr_2m")" -lt 8 ]; then
	saved_2m=$(cat "$nr_2m")
	echo 8 >"$nr_2m"
	echo "demo: lent 8 huge pages to the 2 MiB pool (vm.nr_hugepages was $saved_2m)"
fi

echo "demo: starting $build/cowguardd on $sock"
"$build/cowguardd" --verbose --socket "$sock" 2>"$log" &
daemon=$!
for _ in $(seq 100); do
	[ -S "$sock" ] && break
	sleep 0.05
done
[ -S "$sock" ] || { echo "demo: cowguardd did not start:"; cat "$log"; exit 1; }

echo "demo: running examples/fork_share against it"
echo "demo: audit lines: unsafe (cowguard exclusive, kernel shared) and conservative (cowguard maybe-shared, kernel exclusive) must be 0; unknowable: not compared, the kernel cannot tell (4 KiB parts of a THP mapped by 4 KiB entries; without root, every page mapped once)"
echo
COWGUARD_SOCKET=$sock "$build/examples/fork_share" --linger 2 | tee "$out" &
example=$!
for _ in $(seq 200); do
	grep -q '^lingering' "$out" 2>/dev/null && break
	sleep 0.05
done

echo
echo "demo: cowguardctl status, while fork_share still holds its regions:"
echo
"$build/cowguardctl" --socket "$sock" status
status=0
wait "$example" || status=$?

echo
echo "demo: stopping cowguardd; what it logged:"
kill "$daemon"
wait "$daemon" || true
daemon=
sed 's/^/  /' "$log"
echo
if [ "$status" = 0 ]; then
	echo "demo: done: every audit found zero mismatches."
else
	echo "demo: fork_share exited $status: see above."
fi
exit "$status"
