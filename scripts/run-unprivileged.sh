#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# run-unprivileged.sh DIR - the unprivileged lane: run every test binary in
# DIR again, as a user in the `cowguard` group, against one root cowguardd.
#
# What an administrator's machine looks like after `make install`, made here
# for the run and undone after (EXIT trap), as root:
#   - the group `cowguard` and the user `cowguard-test` (system, no home),
#     created if missing and left in place;
#   - /dev/userfaultfd root:cowguard 0660 (its owner and mode are restored);
#   - the hugetlb pools raised (the user cannot; restored after);
#   - one cowguardd, as root, on a socket in a fresh directory.
# Each binary then runs (scripts/run-tests.sh, CG_TEST_RUN_AS) through
#   setpriv --reuid=cowguard-test --regid=cowguard-test --groups=cowguard
#           --inh-caps=-all
# (cowguard-test's own group is its primary one; cowguard is the only
# supplementary group, as for a user who joined it)
# with CG_TEST_DAEMON_SOCKET naming that socket: the harness starts no
# daemon of its own, and a case that needs root or its own daemon prints
# "SKIP: needs root: ..." or "SKIP: needs its own daemon: ...".
#
# The binaries, cowguardd and cowguardctl are copied into the fresh
# directory first, so the lane runs even when the tree sits where the user
# cannot enter (/root).  Not root: prints why and skips (exit 0).  The last
# line is run-tests.sh's, "unprivileged lane: N passed, N failed, ...".
set -euo pipefail

dir=${1:?usage: run-unprivileged.sh DIR}
group=cowguard
user=cowguard-test
lane=${CG_TEST_LANE:-unprivileged}	# the async lane's second half names it
dev=/dev/userfaultfd
nr_2m=/proc/sys/vm/nr_hugepages
nr_1g=/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages
want_2m=64	# as tests/harness.c reserves them
want_1g=3

skip() {
	echo "run-unprivileged: SKIP: $*"
	[ -n "${CG_TEST_TALLY:-}" ] && echo "$lane 0 0 1 0" >>"$CG_TEST_TALLY"
	echo "$lane lane: 0 passed, 0 failed, 1 skipped"
	exit 0
}

if [ "$(id -u)" -ne 0 ]; then
	skip "needs root (to add the user $user, give $dev to the group" \
	     "$group and start cowguardd); run the suites as root"
fi
for tool in setpriv groupadd useradd; do
	command -v "$tool" >/dev/null || skip "no $tool on this machine"
done
[ -c "$dev" ] || skip "no $dev (kernel before 6.1): the group has nothing to open"
build=$(cd "$dir/.." && pwd)
dir=$(cd "$dir" && pwd)

lanedir=
daemon=
saved_dev=
saved_2m=
saved_1g=

# Pages still being freed (gigantic ones go back lazily) hold a pool up:
# write the old size until it takes, for up to 5 s.
# shellcheck disable=SC2317 # called by cleanup
restore_pool() {
	for _ in $(seq 50); do
		echo "$2" >"$1" 2>/dev/null || true
		[ "$(cat "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	echo "run-unprivileged: $1 is $(cat "$1"), not back to $2" >&2
}

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [ -n "$daemon" ]; then
		kill "$daemon" 2>/dev/null || true
		wait "$daemon" 2>/dev/null || true
	fi
	if [ -n "$saved_dev" ]; then
		read -r uid gid mode <<<"$saved_dev"
		chown "$uid:$gid" "$dev" && chmod "$mode" "$dev" ||
			echo "run-unprivileged: could not restore $dev to $saved_dev" >&2
	fi
	[ -n "$saved_2m" ] && restore_pool "$nr_2m" "$saved_2m"
	[ -n "$saved_1g" ] && restore_pool "$nr_1g" "$saved_1g"
	[ -n "$lanedir" ] && rm -rf "$lanedir"
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Two lanes at once would each restore what the other set: take turns.
lock=/run/lock/cowguard-unprivileged-lane.lock
[ -d /run/lock ] || lock=/tmp/cowguard-unprivileged-lane.lock
exec 9>>"$lock"
if ! flock -n 9; then
	echo "run-unprivileged: waiting for another unprivileged lane ($lock)"
	flock -w 900 9 || { echo "run-unprivileged: gave up waiting" >&2; exit 1; }
fi

getent group "$group" >/dev/null || groupadd --system "$group"
if ! getent passwd "$user" >/dev/null; then
	useradd --system --user-group --no-create-home --home-dir / \
		--shell /usr/sbin/nologin "$user"
fi

saved_dev=$(stat -c '%u %g %a' "$dev")
chown "root:$group" "$dev"
chmod 0660 "$dev"

if [ -w "$nr_2m" ] && [ "$(cat "$nr_2m")" -lt "$want_2m" ]; then
	saved_2m=$(cat "$nr_2m")
	echo "$want_2m" >"$nr_2m"
fi
if [ -w "$nr_1g" ] && [ "$(cat "$nr_1g")" -lt "$want_1g" ]; then
	saved_1g=$(cat "$nr_1g")
	echo "$want_1g" >"$nr_1g" || true	# may find no gigantic page
fi

lanedir=$(mktemp -d /tmp/cg-unprivileged.XXXXXX)
chmod 0755 "$lanedir"
mkdir "$lanedir/tests"
cp -p "$dir"/test-* "$lanedir/tests/"
for bin in cowguardd cowguardctl cowguard-run libcowguard-preload.so; do
	[ -e "$build/$bin" ] && cp -p "$build/$bin" "$lanedir/"
done
# The examples, for the suite that asks them for --help; the programs
# that know nothing of cowguard, for the preload suite.
[ -d "$build/examples" ] && cp -pr "$build/examples" "$lanedir/"
[ -d "$dir/apps" ] && cp -pr "$dir/apps" "$lanedir/tests/"
sock=$lanedir/cowguardd.sock

"$lanedir/cowguardd" --verbose --socket "$sock" 2>"$lanedir/cowguardd.log" 9>&- &
daemon=$!
for _ in $(seq 200); do
	[ -S "$sock" ] && break
	kill -0 "$daemon" 2>/dev/null || break
	sleep 0.05
done
if [ ! -S "$sock" ]; then
	echo "run-unprivileged: cowguardd did not start; its log:" >&2
	cat "$lanedir/cowguardd.log" >&2
	exit 1
fi

echo "run-unprivileged: as $user (groups: $group), $dev $(stat -c '%U:%G %a' "$dev"), one root cowguardd on $sock"
status=0
CG_TEST_DAEMON_SOCKET=$sock CG_BUILDDIR=$lanedir CG_TEST_LANE=$lane \
CG_TEST_RUN_AS="setpriv --reuid=$user --regid=$user --groups=$group --inh-caps=-all" \
	bash "$(dirname "$0")/run-tests.sh" "$lanedir/tests" 9>&- || status=$?

# The daemon must have lived through the lane and must stop cleanly.
alive=1
kill "$daemon" 2>/dev/null || alive=0
dstatus=0
wait "$daemon" || dstatus=$?
daemon=
if [ "$alive" = 0 ] || [ "$dstatus" -ne 0 ]; then
	echo "run-unprivileged: cowguardd $([ "$alive" = 0 ] && echo "died during the lane" ||
		echo "exited with status $dstatus"); its log:" >&2
	cat "$lanedir/cowguardd.log" >&2
	status=1
	# One more failure for --total, beside the tests' own line.
	[ -n "${CG_TEST_TALLY:-}" ] && echo "$lane 0 1 0 1" >>"$CG_TEST_TALLY"
fi
exit "$status"
