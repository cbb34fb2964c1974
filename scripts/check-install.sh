#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# check-install.sh [BUILDDIR] - what a packager gets: `make install` into a
# scratch DESTDIR with PREFIX=/usr, then each of these checks:
#   files      headers, libraries and their links, pkg-config files, daemon,
#              units, LICENSE and every man page of man/ are installed
#   man-pages  every function the installed headers declare has its page in
#              man3, and every installed page renders without a warning
#              (groff -man -ww; .so aliases resolved in the installed tree)
#   exports    the installed libraries export exactly what the installed
#              headers declare (scripts/check-exports.sh)
#   client     a small client and the examples build against the installed
#              tree alone (pkg-config, PKG_CONFIG_SYSROOT_DIR into DESTDIR),
#              link with the installed libcowguard.so, and the client runs:
#              cg_version() = the header's macros = pkg-config's version,
#              and an embedded handle tracks a write (skipped, and says so,
#              without userfaultfd for this user)
#   uninstall  `make uninstall` leaves no file behind
#   dist       `make dist` packs the committed tree under cowguard-VERSION/
# No root needed.  Environment: CG_TEST_TALLY, CG_TEST_LANE (default
# "install") as in scripts/run-tests.sh: "LANE PASSED FAILED 0 STATUS" is
# appended to the tally.  The last line is "check-install: N passed, N
# failed"; exit status 1 when a check failed.
set -uo pipefail

builddir=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
prefix=/usr
passed=0 failed=0

pass() { echo "check-install: ok: $1"; passed=$((passed + 1)); }
fail() { echo "check-install: FAILED: $1"; failed=$((failed + 1)); }

finish() {
	echo "check-install: $passed passed, $failed failed"
	if [ -n "${CG_TEST_TALLY:-}" ]; then
		echo "${CG_TEST_LANE:-install} $passed $failed 0 $((failed > 0))" \
			>>"$CG_TEST_TALLY"
		[ "$failed" -eq 0 ] ||
			echo "${CG_TEST_LANE:-install}: scripts/check-install.sh" \
				>>"$CG_TEST_TALLY.failures"
	fi
	exit $((failed > 0))
}

make_q() { make --no-print-directory BUILDDIR="$builddir" "$@"; }

if ! make_q -s install DESTDIR="$dest" PREFIX="$prefix" >"$tmp/install.log" 2>&1; then
	cat "$tmp/install.log"
	fail "make install DESTDIR=... PREFIX=$prefix"
	finish
fi
version=$(make_q -s -f Makefile -f - print-version <<<'print-version: ; @echo $(VERSION)')

# ---- files -------------------------------------------------------------------
missing=()
want=(
	"$prefix/include/cowguard.h"
	"$prefix/lib/libcowguard.so.$version" "$prefix/lib/libcowguard.so.0"
	"$prefix/lib/libcowguard.so" "$prefix/lib/libcowguard.a"
	"$prefix/lib/pkgconfig/cowguard.pc"
	"$prefix/share/doc/cowguard/LICENSE"
)
for h in include/cowguard/*.h; do want+=("$prefix/$h"); done
for lib in uring verbs; do
	[ -e "lib/$lib/$lib.c" ] && want+=("$prefix/lib/libcowguard-$lib.so.$version"
		"$prefix/lib/libcowguard-$lib.so" "$prefix/lib/pkgconfig/cowguard-$lib.pc")
done
[ -e daemon/main.c ] && want+=("$prefix/sbin/cowguardd")
[ -e daemon/ctl/cowguardctl.c ] && want+=("$prefix/bin/cowguardctl")
[ -e daemon/run/cowguard-run.c ] && want+=("$prefix/bin/cowguard-run"
	"$prefix/lib/libcowguard-preload.so")
for u in systemd/*.service systemd/*.socket; do
	[ -e "$u" ] && want+=("$prefix/lib/systemd/system/${u##*/}")
done
for m in man/*.[1378]; do
	[ -e "$m" ] && want+=("$prefix/share/man/man${m##*.}/${m##*/}")
done
for f in "${want[@]}"; do
	[ -e "$dest$f" ] || missing+=("$f")
done
if [ "${#missing[@]}" -eq 0 ]; then
	pass "files: ${#want[@]} installed, LICENSE and man pages among them"
else
	fail "files: not installed: ${missing[*]}"
fi

# ---- man pages ---------------------------------------------------------------
mandir=$dest$prefix/share/man
if ! command -v groff >/dev/null; then
	fail "man-pages: groff is missing (apt-get install groff-base: make deps)"
else
	bad=()
	for f in $(sed -n 's/^CG_EXPORT .*[ *]\([a-z_][a-z0-9_]*\)(.*/\1/p' \
			"$dest$prefix"/include/cowguard.h "$dest$prefix"/include/cowguard/*.h); do
		[ -e "$mandir/man3/$f.3" ] || bad+=("no page: man3/$f.3")
	done
	n=0
	for page in "$mandir"/man*/*; do
		rel=${page#"$mandir"/}
		out=$(cd "$mandir" && groff -man -ww -z "$rel" 2>&1)
		[ -z "$out" ] || bad+=("$rel: $out")
		[ -n "$(cd "$mandir" && groff -man -Tutf8 "$rel" 2>/dev/null)" ] ||
			bad+=("$rel: renders empty")
		n=$((n + 1))
	done
	if [ "${#bad[@]}" -eq 0 ]; then
		pass "man-pages: every public function has its page; $n pages render without warnings"
	else
		printf '  %s\n' "${bad[@]}"
		fail "man-pages"
	fi
fi

# ---- exports -----------------------------------------------------------------
if bash scripts/check-exports.sh "$dest$prefix/lib" "$dest$prefix/include" \
	>"$tmp/exports.log" 2>&1; then
	pass "exports: $(grep -c 'declared = listed = exported' "$tmp/exports.log") libraries export what their headers declare"
else
	cat "$tmp/exports.log"
	fail "exports"
fi

# ---- client ------------------------------------------------------------------
cat >"$tmp/client.c" <<'EOF'
/* Built against the installed tree only: the version, and one tracked write. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include <cowguard.h>

#define STR_(x) #x
#define STR(x) STR_(x)

int main(void)
{
	const char *hdr = STR(CG_VERSION_MAJOR) "." STR(CG_VERSION_MINOR) "."
			  STR(CG_VERSION_PATCH);
	struct cg_options o = { .mode = CG_MODE_EMBEDDED };
	struct cg_page_info info;
	struct cg_stats st;
	struct cg *cg;
	char *p;
	int ret;

	printf("%s\n", cg_version());
	if (strcmp(cg_version(), hdr) || cg_version_major() != CG_VERSION_MAJOR ||
	    cg_version_minor() != CG_VERSION_MINOR) {
		fprintf(stderr, "library %s, header %s\n", cg_version(), hdr);
		return 1;
	}
	ret = cg_open(&o, sizeof(o), &cg);
	if (ret == -EPERM || ret == -ENOSYS) {
		printf("SKIP: embedded handle: %s\n", cg_strerror(ret));
		return 0;
	}
	if (ret) {
		fprintf(stderr, "cg_open: %s\n", cg_strerror(ret));
		return 1;
	}
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 1;
	p[0] = 1;
	ret = cg_register(cg, p, 4096, 0);
	if (!ret) {
		p[0] = 2;	/* a write-protect fault, resolved */
		ret = cg_query(cg, p, &info, sizeof(info));
	}
	if (!ret)
		ret = cg_stats(cg, &st, sizeof(st));
	if (!ret && !(info.present && info.dirty && st.wp_faults >= 1))
		ret = -EPROTO;
	if (ret)
		fprintf(stderr, "client: %s\n", cg_strerror(ret));
	else
		printf("tracked: present %u dirty %u, %llu wp faults\n", info.present,
		       info.dirty, (unsigned long long)st.wp_faults);
	cg_close(cg);
	return ret ? 1 : 0;
}
EOF
export PKG_CONFIG_SYSROOT_DIR=$dest
export PKG_CONFIG_PATH=$dest$prefix/lib/pkgconfig
cc=${CC:-cc}
errs=()
# shellcheck disable=SC2046 # pkg-config's words are meant to split
if ! $cc -std=gnu11 -Wall -Wextra -Werror -o "$tmp/client" "$tmp/client.c" \
	$(pkg-config --cflags --libs cowguard) 2>"$tmp/cc.log"; then
	errs+=("client does not build: $(cat "$tmp/cc.log")")
fi
export LD_LIBRARY_PATH=$dest$prefix/lib
# ldd's output first: grep -q stops reading at the match, and under
# pipefail the SIGPIPE ldd then dies of would fail the check.
libs=$(ldd "$tmp/client" 2>/dev/null || true)
if [ -x "$tmp/client" ] &&
   ! grep -qF "libcowguard.so.0 => $dest$prefix/lib/" <<<"$libs"; then
	errs+=("client does not run with the installed libcowguard.so.0: $(grep cowguard <<<"$libs")")
fi
if [ -x "$tmp/client" ]; then
	out=$("$tmp/client" 2>&1)
	status=$?
	pc_version=$(pkg-config --modversion cowguard)
	[ "$status" -eq 0 ] || errs+=("client exits $status: $out")
	[ "$(head -n1 <<<"$out")" = "$version" ] && [ "$pc_version" = "$version" ] ||
		errs+=("versions: cg_version() $(head -n1 <<<"$out"), pkg-config $pc_version, Makefile $version")
	sed -n '2,$s/^/  client: /p' <<<"$out"
fi
# Each example against the installed tree, with the package its name says.
for ex in examples/*.c; do
	pkg=cowguard
	case $ex in *uring*) pkg=cowguard-uring ;; *verbs*) pkg=cowguard-verbs ;; esac
	flags=$(pkg-config --cflags --libs "$pkg" 2>"$tmp/pc.log") || {
		echo "  SKIP: $ex: pkg-config $pkg: $(cat "$tmp/pc.log")"
		continue
	}
	# shellcheck disable=SC2086
	$cc -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "$tmp/example" "$ex" \
		$flags -lpthread 2>"$tmp/cc.log" ||
		errs+=("$ex does not build against the installed tree: $(cat "$tmp/cc.log")")
done
if [ "${#errs[@]}" -eq 0 ]; then
	pass "client: built with pkg-config against DESTDIR, runs with its libcowguard.so, cg_version() $version; examples build"
else
	printf '  %s\n' "${errs[@]}"
	fail "client"
fi
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_PATH LD_LIBRARY_PATH

# ---- uninstall ---------------------------------------------------------------
make_q -s uninstall DESTDIR="$dest" PREFIX="$prefix" >"$tmp/uninstall.log" 2>&1
left=$(find "$dest" ! -type d | sed "s|^$dest||")
if [ -z "$left" ]; then
	pass "uninstall: nothing left"
else
	printf '  left: %s\n' $left
	fail "uninstall"
fi

# ---- dist --------------------------------------------------------------------
if ! git rev-parse --git-dir >/dev/null 2>&1; then
	echo "check-install: SKIP: dist: not a git checkout"
elif ! make_q -s dist DISTDIR="$tmp" >"$tmp/dist.log" 2>&1; then
	cat "$tmp/dist.log"
	fail "dist"
else
	tarball=$tmp/cowguard-$version.tar.gz
	list=$(tar tzf "$tarball" 2>/dev/null)
	outside=$(grep -v "^cowguard-$version/" <<<"$list")
	absent=()
	for f in LICENSE Makefile include/cowguard.h cowguard.pc.in man/cowguard.7; do
		grep -qx "cowguard-$version/$f" <<<"$list" || absent+=("$f")
	done
	if [ -n "$list" ] && [ -z "$outside" ] && [ "${#absent[@]}" -eq 0 ]; then
		pass "dist: cowguard-$version.tar.gz, $(wc -l <<<"$list") entries under cowguard-$version/"
	else
		fail "dist: entries outside cowguard-$version/: ${outside:-none}; missing: ${absent[*]:-none}"
	fi
fi

finish
