# shellcheck shell=bash
# allocators.sh — sourced by the bench scripts: which allocators to compare and where their
# libraries are. Sets ALLOCATORS (names, crtheap first) and alloc_lib NAME (prints the
# LD_PRELOAD value: empty for glibc; "missing" when the library is not there).
# BENCH_ALLOCATORS="crtheap glibc" restricts the set.

BENCH_ROOT=${BENCH_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
ALLOCATORS=${BENCH_ALLOCATORS:-"crtheap mimalloc jemalloc tcmalloc glibc"}
MULTIARCH_LIBDIR=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)

first_existing() {
    for candidate in "$@"; do
        if [ -e "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
    echo missing
}

alloc_lib() {
    case "$1" in
    crtheap) first_existing "$BENCH_ROOT/build/libcrtheap.so" ;;
    mimalloc) first_existing "$MULTIARCH_LIBDIR/libmimalloc.so.2" "$MULTIARCH_LIBDIR/libmimalloc.so" ;;
    jemalloc) first_existing "$MULTIARCH_LIBDIR/libjemalloc.so.2" "$MULTIARCH_LIBDIR/libjemalloc.so" ;;
    tcmalloc) first_existing "$MULTIARCH_LIBDIR/libtcmalloc_minimal.so.4" \
                             "$MULTIARCH_LIBDIR/libtcmalloc.so.4" ;;
    glibc) echo "" ;;
    # another build of crtheap (CRTHEAP_BASE_LIB=path/libcrtheap.so), for before/after in one run
    crtheap-base) first_existing "${CRTHEAP_BASE_LIB:-/nonexistent}" ;;
    *) echo missing ;;
    esac
}

# Version strings for the report.
alloc_version() {
    case "$1" in
    crtheap) sed -n 's/^VERSION *:= *//p' "$BENCH_ROOT/Makefile" ;;
    crtheap-base) echo "${CRTHEAP_BASE_LIB:-}" ;;
    mimalloc) dpkg-query -W -f '${Version}' libmimalloc-dev 2>/dev/null ;;
    jemalloc) dpkg-query -W -f '${Version}' libjemalloc-dev 2>/dev/null ;;
    tcmalloc) dpkg-query -W -f '${Version}' libgoogle-perftools-dev 2>/dev/null ;;
    glibc) ldd --version 2>/dev/null | sed -n '1s/.* //p' ;;
    esac
}

machine_description() {
    echo "- CPUs: $(nproc) ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1))"
    echo "- kernel: $(uname -sr); memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- compiler: $(${CC:-cc} --version | head -1)"
    local name
    for name in $ALLOCATORS; do
        local lib
        lib=$(alloc_lib "$name")
        echo "- $name $(alloc_version "$name"): ${lib:-system malloc, no preload}"
    done
}

# valgrind_ready SCRIPT PROGRAM: exit with a message unless valgrind and PROGRAM are
# there; then make WORK, a scratch directory removed at exit (callgrind.sh, cachegrind.sh).
valgrind_ready() {
    if ! command -v valgrind >/dev/null; then
        echo "$1: valgrind is not installed (bench/install-deps.sh installs it)"
        exit 1
    fi
    if [ ! -x "$2" ]; then
        echo "$1: $2 is missing; run 'make bench-build'"
        exit 1
    fi
    WORK=$(mktemp -d)
    # shellcheck disable=SC2064 # WORK is expanded now, on purpose
    trap "rm -rf '$WORK'" EXIT
}

# measure_run KEY ALLOC LOG REPORT CMD...: run CMD under ALLOC through $BIN/measure (at
# most $TIMEOUT s, output to LOG, measure's "wall_s= maxrss_kib= status=" line to REPORT),
# unless ALLOC's library is missing or KEY.ALLOC failed in an earlier run (the caller's
# FAILED array).  Sets RUN_STATE to missing, skipped or ran.
# shellcheck disable=SC2034 # RUN_STATE is read by the scripts that source this
measure_run() {
    local key=$1 alloc=$2 log=$3 report=$4 lib
    shift 4
    lib=$(alloc_lib "$alloc")
    if [ "$lib" = missing ]; then
        RUN_STATE=missing
    elif [ -n "${FAILED[$key.$alloc]:-}" ]; then
        RUN_STATE=skipped
    else
        rm -f "$report"
        "$BIN/measure" -p "$lib" -t "$TIMEOUT" -o "$report" -- "$@" < /dev/null > "$log" 2>&1
        RUN_STATE=ran
    fi
}

# awk functions for the scripts that summarise raw.tsv-style runs (one row per run, key
# "workload<TAB>allocator"): median() of a space-separated list, and run_ok(), which
# records the key in order[]/state[] and says whether the row is a successful run
# (status "0"; "missing" and "failed:N" mark the key, "skipped" rows are ignored).
# shellcheck disable=SC2016,SC2034 # awk source, not shell; used by the scripts that source this
AWK_RUN_SUMMARY='
function median(list,    n, v, i, j, t) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function run_ok(key, status) {
    if (!(key in state)) { order[++keys] = key; state[key] = "ok" }
    if (status == "missing") state[key] = "missing"
    else if (status != "0" && status != "skipped" && state[key] == "ok") state[key] = "failed:" status
    return status == "0"
}
'

# One colour per allocator, the same in every chart.
alloc_color() {
    case "$1" in
    crtheap) echo "#d62728" ;;
    mimalloc) echo "#9467bd" ;;
    jemalloc) echo "#2ca02c" ;;
    tcmalloc) echo "#1f77b4" ;;
    glibc) echo "#ff7f0e" ;;
    *) echo "#7f7f7f" ;;
    esac
}

# The colours of the given allocators, space-separated, for gnuplot's word().
alloc_colors() {
    local name
    for name in "$@"; do alloc_color "$name"; done | tr '\n' ' '
}
