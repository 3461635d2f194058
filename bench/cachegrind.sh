#!/bin/bash
# cachegrind.sh — a deterministic figure of the fast paths' memory traffic: instructions
# and L1/LL data misses per malloc+free pair on the allocator-bound churn (touch_churn,
# sizes 8-512 B, a working set of 10,000 blocks, one thread), counted by valgrind's
# cachegrind (L1d 32 KiB 8-way, LL 1 MiB 16-way: fixed, so runs compare).  Two runs of
# N and 2N steps; the difference over N cancels the start-up and the working set's fill.
# Only the events outside the benchmark's own code count (its loop is the same under
# every allocator): the source files under bench/ are left out.
#   CACHEGRIND_STEPS=N (default 200000)
set -u
cd "$(dirname "$0")/.." || exit 1
export BENCH_ROOT; BENCH_ROOT=$(pwd)
# shellcheck source=bench/allocators.sh
. bench/allocators.sh

STEPS=${CACHEGRIND_STEPS:-200000}
PROGRAM=build/bench/touch_churn
BASE_STEPS=20000000   # touch_churn's steps at scale 1
valgrind_ready cachegrind.sh "$PROGRAM"

# "Ir D1miss LLmiss" of the allocator's share of one run of `steps` steps, or nothing.
events() {
    local lib=$1 steps=$2 out=$WORK/cachegrind.out
    rm -f "$out"
    LD_PRELOAD=$lib valgrind --tool=cachegrind --cache-sim=yes --I1=32768,8,64 --D1=32768,8,64 \
        --LL=1048576,16,64 --cachegrind-out-file="$out" \
        "$PROGRAM" 1 "$(awk -v s="$steps" -v b="$BASE_STEPS" 'BEGIN { printf "%.9f", s / b }')" 512 10000 \
        > /dev/null 2> "$WORK/valgrind.log" || return 1
    # events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw, per line after "fl=" and "fn="
    awk '/^fl=/ { bench = ($0 ~ /\/bench\//) ; next }
         /^[0-9]/ && !bench { ir += $2; d1 += $6 + $9; ll += $7 + $10 }
         END { printf "%d %d %d\n", ir, d1, ll }' "$out"
}

echo "per malloc+free pair of touch_churn (8-512 B, 10,000 blocks), from $STEPS and $((2 * STEPS)) steps:"
printf '  %-9s %8s %8s %8s\n' allocator instr L1d-miss LL-miss
for alloc in $ALLOCATORS; do
    lib=$(alloc_lib "$alloc")
    if [ "$lib" = missing ]; then
        printf '  %-9s missing\n' "$alloc"
        continue
    fi
    one=$(events "$lib" "$STEPS")
    two=$(events "$lib" $((2 * STEPS)))
    if [ -z "$one" ] || [ -z "$two" ]; then
        printf '  %-9s failed: %s\n' "$alloc" "$(grep -v '^==' "$WORK/valgrind.log" | head -1)"
        continue
    fi
    read -r i1 d1 l1 <<< "$one"
    read -r i2 d2 l2 <<< "$two"
    awk -v a="$alloc" -v i1="$i1" -v i2="$i2" -v d1="$d1" -v d2="$d2" -v l1="$l1" -v l2="$l2" -v n="$STEPS" \
        'BEGIN { printf "  %-9s %8.1f %8.3f %8.3f\n", a, (i2 - i1) / n, (d2 - d1) / n, (l2 - l1) / n }'
done
