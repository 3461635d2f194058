#!/bin/sh
# Install what crtheap's build, demo, tests and benchmarks need, from Debian's packages.
# Safe to run again: it installs only what is missing.  Run as root (or via sudo).
set -e
want="build-essential libtsan2 libubsan1 pkg-config check python3 libpython3.11-testsuite git sqlite3 valgrind redis-server redis-tools cppcheck clang-tidy gnuplot-nox procps"
[ "${1:-}" = "--bench" ] && want="$want libmimalloc-dev libjemalloc-dev libgoogle-perftools-dev"
missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
