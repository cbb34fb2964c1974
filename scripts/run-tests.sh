#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# run-tests.sh DIR - run every test binary in DIR, each under a hard timeout.
# run-tests.sh --total TALLY LANE... - add up the lanes recorded in TALLY.
#
# Each binary is a Check suite: its "NN%: Checks: N, Failures: N, Errors: N"
# lines are added up.  A test case that skips prints one line starting with
# "SKIP:" (and the reason) and returns; it is counted as skipped, not passed.
# A binary that exits 77 is skipped whole.  A binary that crashes, times out,
# or exits non-zero without a failed check (a sanitizer report at exit, say)
# counts as one more failure.
#
# Environment:
#   CG_TEST_FILTER   run only binaries whose name contains one of these
#                    strings (separated by spaces)
#   CG_TEST_EXCLUDE  and not those whose name contains one of these: each
#                    is named once, "not run in this lane"
#   CG_TEST_TIMEOUT  seconds per binary (default 300)
#   CG_BUILDDIR      exported to the tests: the build tree (default: DIR/..)
#   CG_TEST_RUN_AS   a command that runs each binary, its arguments split on
#                    spaces (scripts/run-unprivileged.sh: setpriv ...)
#   CG_TEST_LANE     a name for this run: the summary line starts "NAME lane: "
#   CG_TEST_TALLY    a file to which "LANE PASSED FAILED SKIPPED STATUS" is
#                    appended at the end, for --total (and the failed
#                    binaries with their failed checks to TALLY.failures)
#   CG_TEST_SLOW     print each test case (and loop index: the cell) that
#                    took at least this many seconds, from Check's XML log:
#                    where a lane's time goes
#
# The last line printed is "N passed, N failed" (", N skipped" when any).
# Exit status is non-zero when any binary failed or timed out, or none ran.
#
# With --total, the last line adds up every line of TALLY of each lane named
# (a lane's script may add a line of its own: a failure outside the tests);
# a lane that recorded nothing (its script died first) counts as one
# failure.  The failed binaries of every lane are listed again just before
# it.  Exit status is non-zero when any recorded status was.
set -euo pipefail

counts() {
	local s="$1 passed, $2 failed"

	[ "$3" -gt 0 ] && s="$s, $3 skipped"
	echo "$s"
}

if [ "${1:-}" = --total ]; then
	tally=${2:?usage: run-tests.sh --total TALLY LANE...}
	shift 2
	passed=0 failed=0 skipped=0 status=0
	for lane in "$@"; do
		lines=$(grep -s "^$lane " "$tally") || true
		if [ -z "$lines" ]; then
			echo "run-tests: the $lane lane recorded no result"
			failed=$((failed + 1)) status=1
			continue
		fi
		while read -r _ p f s rc extra; do
			if ! [[ "$p$f$s$rc" =~ ^[0-9]+$ ]] || [ -n "$extra" ]; then
				echo "run-tests: the $lane lane's tally line is garbled:" \
				     "$lane $p $f $s $rc $extra"
				failed=$((failed + 1)) status=1
				continue
			fi
			passed=$((passed + p)) failed=$((failed + f))
			skipped=$((skipped + s))
			[ "$rc" -eq 0 ] || status=1
		done <<<"$lines"
	done
	if [ -s "$tally.failures" ]; then
		echo "run-tests: failed, in all lanes:"
		cat "$tally.failures"
	fi
	rm -f "$tally.failures"
	counts "$passed" "$failed" "$skipped"
	exit "$status"
fi

dir=${1:?usage: run-tests.sh DIR}
lane=${CG_TEST_LANE:-}
read -r -a run_as <<<"${CG_TEST_RUN_AS:-}"
timeout_s=${CG_TEST_TIMEOUT:-300}
filter=${CG_TEST_FILTER:-}
exclude=${CG_TEST_EXCLUDE:-}
slow=${CG_TEST_SLOW:-}

if [ ! -d "$dir" ]; then
	echo "run-tests: no such directory: $dir" >&2
	exit 1
fi
CG_BUILDDIR=${CG_BUILDDIR:-$(cd "$dir/.." && pwd)}
export CG_BUILDDIR

logdir=$(mktemp -d)

# khugepaged collapses a THP range's written 4 KiB pages into a new THP
# (new frames) when nothing holds them.  A real consumer does (FOLL_PIN, a
# pipe's reference) and stops it; a test's bare cg_pin() does not, and its
# frame checks would fail now and then (seen: 1 run in 10).  Pause it for
# the run (root only), and put it back after.
khugepaged=/sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs
khugepaged_was=
if [ -w "$khugepaged" ]; then
	khugepaged_was=$(cat "$khugepaged")
	echo 86400000 >"$khugepaged"
fi
# shellcheck disable=SC2317 # the EXIT trap
cleanup() {
	[ -n "$khugepaged_was" ] && echo "$khugepaged_was" >"$khugepaged"
	rm -rf "$logdir"
}
trap cleanup EXIT

dmesg_before=
if dmesg >/dev/null 2>&1; then
	dmesg_before=$(dmesg | wc -l)
fi

passed=0 failed=0 skipped=0 ran=0
bad=()

# slow_cells XML NAME: the cells of NAME's Check XML log that took $slow
# seconds or more, one "slow: SECONDS NAME CASE [INDEX]" line each.
slow_cells() {
	[ -r "$1" ] || return 0
	awk -v name="$2" -v min="$slow" '
		/<id>/ { sub(/.*<id>/, ""); sub(/<\/id>.*/, ""); id = $0 }
		/<iteration>/ { sub(/.*<iteration>/, ""); sub(/<\/iteration>.*/, ""); it = $0 }
		/<duration>/ { sub(/.*<duration>/, ""); sub(/<\/duration>.*/, "")
			if ($0 + 0 >= min + 0) printf "slow: %.2f %s %s [%s]\n", $0, name, id, it }
	' "$1"
}

# matches NAME FILTER: whether NAME contains one of FILTER's words.
matches() {
	local word

	for word in $2; do
		[[ $1 == *"$word"* ]] && return 0
	done
	return 1
}

for bin in "$dir"/*; do
	[[ -f $bin && -x $bin ]] || continue
	name=$(basename "$bin")
	if [ -n "$filter" ] && ! matches "$name" "$filter"; then
		continue
	fi
	if [ -n "$exclude" ] && matches "$name" "$exclude"; then
		echo "=== $name: not run in this lane (CG_TEST_EXCLUDE)"
		continue
	fi
	ran=$((ran + 1))
	log="$logdir/$name.log"

	echo "=== $name"
	start=$SECONDS
	set +e
	xml=()
	[ -z "$slow" ] || xml=(env "CK_XML_LOG_FILE_NAME=$logdir/$name.xml")
	timeout -k 10 "$timeout_s" "${xml[@]}" "${run_as[@]}" "$bin" </dev/null 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	set -e
	secs=$((SECONDS - start))
	[ -z "$slow" ] || slow_cells "$logdir/$name.xml" "$name"

	checks=0 fails=0
	while read -r c f e; do
		checks=$((checks + c))
		fails=$((fails + f + e))
	done < <(sed -nE 's/^[0-9]+%: Checks: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2 \3/p' "$log")
	skips=$(grep -c '^SKIP:' "$log" || true)
	grep '^SKIP:' "$log" | sort | uniq -c |
		sed -E "s/^ *([0-9]+) SKIP: */  $name: \1x /" >>"$logdir/skips" || true

	if [ "$rc" -eq 77 ]; then
		[ "$skips" -gt 0 ] || skips=1
		skipped=$((skipped + skips))
		echo "=== $name: skipped (${secs}s)"
		continue
	fi

	if [ "$checks" -eq 0 ] && [ "$skips" -eq 0 ] && [ "$rc" -eq 0 ]; then
		ok=1		# exited 0 without a Check summary: one test
	else
		ok=$((checks - fails - skips))
		[ "$ok" -ge 0 ] || ok=0
	fi
	passed=$((passed + ok))
	failed=$((failed + fails))
	skipped=$((skipped + skips))

	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		failed=$((failed + 1))
		bad+=("$name (timed out after ${timeout_s}s)")
		echo "=== $name: TIMED OUT after ${timeout_s}s"
	elif [ "$rc" -ne 0 ]; then
		[ "$fails" -gt 0 ] || failed=$((failed + 1))
		bad+=("$name (exit $rc)")
		echo "=== $name: FAILED, exit $rc (${secs}s)"
	else
		echo "=== $name: ok (${secs}s)"
	fi
done

if [ -n "$dmesg_before" ]; then
	if dmesg | tail -n "+$((dmesg_before + 1))" | grep -E 'BUG:|WARNING:|Oops|general protection' >"$logdir/dmesg"; then
		echo "run-tests: the kernel logged during the run:"
		cat "$logdir/dmesg"
	fi
fi

# Which binaries skipped what, and why, in one place.
if [ -s "$logdir/skips" ]; then
	echo "run-tests: skipped${lane:+ in the $lane lane} (binary: times, reason):"
	cut -c1-300 "$logdir/skips"
fi

status=0
if [ "$ran" -eq 0 ]; then
	echo "run-tests: no test binaries in $dir${filter:+ matching \"$filter\"}" >&2
	status=1
fi
if [ "${#bad[@]}" -gt 0 ]; then
	# Repeated at the end, where a CI log's tail shows it: each failed
	# binary with its failed checks (or its last lines, when none).
	for entry in "${bad[@]}"; do
		echo "  ${lane:+$lane lane: }$entry"
		log="$logdir/${entry%% *}.log"
		# grep -m, not head: a head that exits early kills the
		# writer with SIGPIPE, and pipefail the whole script.
		{ grep -m 5 -E ':[FE]:' "$log" || tail -n 5 "$log"; } |
			cut -c1-400 | sed 's/^/    /'
	done >"$logdir/failures"
	echo "run-tests: failed binaries:"
	cat "$logdir/failures"
	[ -n "${CG_TEST_TALLY:-}" ] && cat "$logdir/failures" >>"$CG_TEST_TALLY.failures"
	status=1
fi

if [ -n "${CG_TEST_TALLY:-}" ]; then
	echo "${lane:-tests} $passed $failed $skipped $status" >>"$CG_TEST_TALLY"
fi
echo "${lane:+$lane lane: }$(counts "$passed" "$failed" "$skipped")"
exit "$status"
