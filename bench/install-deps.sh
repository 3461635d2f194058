#!/bin/bash
# install-deps.sh — install what the benchmarks compare against and plot with, if missing:
# the peers (mimalloc, jemalloc, tcmalloc from Debian), gnuplot, valgrind.
set -eu
PACKAGES="libmimalloc-dev libjemalloc-dev libgoogle-perftools-dev gnuplot-nox valgrind"

missing=""
for package in $PACKAGES; do
    if ! dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $package"
    fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then
        SUDO="sudo"
    else
        echo "install-deps: need root (or sudo) to install$missing" >&2
        exit 1
    fi
fi
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
