#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Install the Debian packages needed to build and test cowguard.
# Silent when everything is already there; apt-get runs only for what is missing.
set -euo pipefail

PACKAGES=(
	build-essential		# gcc, make
	pkg-config
	libuv1-dev		# cowguardd's event loop
	liburing-dev		# tests and io_uring examples
	libcap-dev		# cowguardd drops privileges
	check			# unit-test framework (pulls libsubunit-dev)
	libibverbs-dev		# RDMA examples
	libasan8		# gcc's AddressSanitizer runtime (make check-asan)
	libubsan1		# gcc's UBSan runtime (make check-asan)
	groff-base		# man pages rendered by make check-install
	fio			# a real program under cowguard-run (tests)
	criu			# CRIU's plugin header; dumps and restores clients (tests, guests)
)

installed() {
	local status
	status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
	[ "$status" = "install ok installed" ]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
	installed "$pkg" || missing+=("$pkg")
done

[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]}" >&2
	echo "install-deps: not root; run as root or install them with:" >&2
	echo "  sudo apt-get install ${missing[*]}" >&2
	exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
