#!/bin/bash
# callgrind.sh — a deterministic figure: instructions per malloc(32)+free pair on the small
# fast path, counted by valgrind's callgrind. build/bench/fastpath runs N and then 2N pairs
# after a warm-up; (Ir(2N) - Ir(N)) / N cancels start-up and warm-up.
#   CALLGRIND_PAIRS=N (default 1000000)  CALLGRIND_SIZE=bytes (default 32)
set -u
cd "$(dirname "$0")/.." || exit 1
export BENCH_ROOT; BENCH_ROOT=$(pwd)
# shellcheck source=bench/allocators.sh
. bench/allocators.sh

PAIRS=${CALLGRIND_PAIRS:-1000000}
SIZE=${CALLGRIND_SIZE:-32}
PROGRAM=build/bench/fastpath
valgrind_ready callgrind.sh "$PROGRAM"

# Total instructions of one run, or nothing if it failed.
instructions() {
    local lib=$1 pairs=$2 out=$WORK/callgrind.out
    rm -f "$out"
    LD_PRELOAD=$lib valgrind --tool=callgrind --trace-children=no --callgrind-out-file="$out" \
        "$PROGRAM" "$pairs" "$SIZE" > /dev/null 2> "$WORK/valgrind.log" || return 1
    sed -n 's/^summary: *//p' "$out" | head -1
}

echo "instructions per malloc($SIZE)+free pair, from $PAIRS and $((2 * PAIRS)) pairs:"
for alloc in $ALLOCATORS; do
    lib=$(alloc_lib "$alloc")
    if [ "$lib" = missing ]; then
        printf '  %-9s missing\n' "$alloc"
        continue
    fi
    one=$(instructions "$lib" "$PAIRS")
    two=$(instructions "$lib" $((2 * PAIRS)))
    if [ -z "$one" ] || [ -z "$two" ]; then
        printf '  %-9s failed: %s\n' "$alloc" "$(grep -v '^==' "$WORK/valgrind.log" | head -1)"
        continue
    fi
    awk -v a="$alloc" -v one="$one" -v two="$two" -v n="$PAIRS" \
        'BEGIN { printf "  %-9s %6.1f\n", a, (two - one) / n }'
done
