#!/usr/bin/env bash
# install-deps.sh — install the Debian packages the tests need, only if one is missing.
#   check, pkg-config, gcc: build the Check suites;  python3 + its test suite, git, sqlite3,
#   g++, binutils: the real programs run under LD_PRELOAD;  valgrind: optional debugging.
set -eu
packages="check pkg-config gcc g++ make binutils python3 libpython3.11-testsuite git sqlite3"
optional="valgrind"

missing=""
for p in $packages $optional; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing:$missing"
$sudo apt-get update -q
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $packages
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $optional || echo "optional: $optional not installed"
