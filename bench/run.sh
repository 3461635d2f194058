#!/bin/bash
# run.sh — the speed and memory benchmark (SPEC §3): every workload under every allocator
# (LD_PRELOAD), allocators alternating round-robin, BENCH_RUNS runs each (default 5).
# Records wall time and peak RSS through build/bench/measure, then writes
# bench/results/latest.md and speed.svg; runs callgrind.sh, cachegrind.sh and trim-run.sh and includes
# their results unless BENCH_SKIP_EXTRAS=1.
#   BENCH_RUNS=n  BENCH_SCALE=x (work per run)  BENCH_FILTER=regex (workload names)
#   BENCH_ALLOCATORS="crtheap glibc ..."  BENCH_TIMEOUT=s (per run, default 60)
set -u
cd "$(dirname "$0")/.." || exit 1
export BENCH_ROOT; BENCH_ROOT=$(pwd)
# shellcheck source=bench/allocators.sh
. bench/allocators.sh

RUNS=${BENCH_RUNS:-5}
SCALE=${BENCH_SCALE:-1}
FILTER=${BENCH_FILTER:-.}
TIMEOUT=${BENCH_TIMEOUT:-60}
declare -A FAILED  # allocator.workload -> status: a failure is not run again
BIN=build/bench
RESULTS=${BENCH_RESULTS:-bench/results}
LOGS=build/bench/logs
mkdir -p "$RESULTS" "$LOGS"

# name          program            threads  [program arguments after the scale]
# touch-*: allocator-bound churn (touch_churn: max size, working set, % of sizes to 64 KiB)
# bignum, malloc-simple, malloc-thread, rptest: on the model of cfrac, glibc's bench-malloc-simple
# and bench-malloc-thread, and rpmalloc's rptest
WORKLOADS="
small-churn-1t       small_churn        1
small-churn-2t       small_churn        2
mixed-sizes-1t       mixed_sizes        1
mixed-sizes-2t       mixed_sizes        2
larson-1t            larson             1
larson-2t            larson             2
larson-8t            larson             8
producer-consumer-2t producer_consumer  2
producer-consumer-8t producer_consumer  8
realloc-growth-1t    realloc_growth     1
large-blocks-1t      large_blocks       1
large-blocks-2t      large_blocks       2
large-sparse-1t      large_blocks       1  sparse
thread-churn-2t      thread_churn       2
thread-churn-8t      thread_churn       8
tiny-lists-1t        tiny_lists         1
tiny-lists-8t        tiny_lists         8
touch-512-1k-1t      touch_churn        1  512 1000
touch-512-10k-1t     touch_churn        1  512 10000
touch-512-10k-2t     touch_churn        2  512 10000
touch-512-10k-8t     touch_churn        8  512 10000
touch-1k-100k-1t     touch_churn        1  1024 100000
touch-1k-1m-1t       touch_churn        1  1024 1000000
touch-64k-10k-1t     touch_churn        1  512 10000 5
bignum-1t            bignum             1
malloc-simple-1t     malloc_simple      1
malloc-simple-2t     malloc_simple      2
malloc-thread-1t     malloc_thread      1
malloc-thread-2t     malloc_thread      2
malloc-thread-8t     malloc_thread      8
rptest-2t            rptest             2
rptest-8t            rptest             8
"
WORKLOADS=$(echo "$WORKLOADS" | awk 'NF >= 3' | grep -E "^[^ ]*($FILTER)" || true)
if [ -z "$WORKLOADS" ]; then
    echo "run.sh: no workload matches BENCH_FILTER=$FILTER" >&2
    exit 1
fi

for program in $(echo "$WORKLOADS" | awk '{print $2}' | sort -u) measure; do
    if [ ! -x "$BIN/$program" ]; then
        echo "run.sh: $BIN/$program is missing; run 'make bench-build'" >&2
        exit 1
    fi
done

RAW=$RESULTS/raw.tsv
MACHINE=$(machine_description)
printf 'workload\tallocator\trun\twall_s\tmaxrss_kib\tstatus\n' > "$RAW"
total=$(( $(echo "$WORKLOADS" | wc -l) * RUNS ))
step=0
echo "run.sh: $(echo "$WORKLOADS" | wc -l) workloads x [$ALLOCATORS] x $RUNS runs"
# Each run takes the allocators in another order (the first as listed, the others a
# shuffle seeded by the run's number), and each workload first runs once unmeasured
# (under the allocator that goes first): a process pays for the state the one before it
# left in the kernel (the first after a different workload: large-blocks-1t 0.25-0.33 s
# against 0.10-0.15 s after; crtheap's large-blocks-1t right after glibc's 0.14-0.38 s,
# right after its own 0.12-0.19 s).  A rotation kept every allocator behind the same one
# in every run: crtheap, always behind glibc, took 0.21-0.41 s there where the previous
# crtheap build, always behind crtheap, took 0.13-0.21 s.
# BENCH_WARMUP=0 skips the unmeasured run.
read -r -a ALLOC_LIST <<< "$ALLOCATORS"
shuffle_bytes() { for i in $(seq 32); do echo "$1 $i" | sha256sum; done; }   # the same each time
for run in $(seq 1 "$RUNS"); do
    if [ "$run" = 1 ]; then
        ORDER="${ALLOC_LIST[*]}"
    else
        ORDER=$(printf '%s\n' "${ALLOC_LIST[@]}" | shuf --random-source=<(shuffle_bytes "$run") | tr '\n' ' ')
        ORDER=${ORDER% }
    fi
    while read -r name program threads extra; do
        step=$((step + 1))
        line="[$step/$total] $name:"
        if [ "${BENCH_WARMUP:-1}" != 0 ]; then
            first=${ORDER%% *}
            measure_run "$name" "$first" "$LOGS/$name.warmup.log" "$LOGS/$name.warmup.measure" \
                "$BIN/$program" "$threads" "$SCALE" $extra
        fi
        for alloc in $ORDER; do
            report=$LOGS/$name.$alloc.$run.measure
            measure_run "$name" "$alloc" "$LOGS/$name.$alloc.$run.log" "$report" \
                "$BIN/$program" "$threads" "$SCALE" $extra
            if [ "$RUN_STATE" != ran ]; then
                printf '%s\t%s\t%s\t\t\t%s\n' "$name" "$alloc" "$run" "$RUN_STATE" >> "$RAW"
                line="$line $alloc=$RUN_STATE"
                continue
            fi
            # wall_s=.. maxrss_kib=.. status=..
            read -r wall rss status < <(sed 's/[a-z_]*=//g' "$report" 2>/dev/null || echo "0 0 255")
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$alloc" "$run" "$wall" "$rss" "$status" >> "$RAW"
            if [ "$status" = 0 ]; then
                line="$line $alloc=${wall:0:5}s"
            else
                line="$line $alloc=FAILED($status)"
                FAILED[$name.$alloc]=$status
            fi
        done
        echo "$line"
    done <<< "$WORKLOADS"
done

# ---- summary: medians per workload and allocator ----
# summary.tsv: workload allocator median_wall median_rss_kib state(ok|failed:status|missing)
SUMMARY=$RESULTS/summary.tsv
awk -F'\t' "$AWK_RUN_SUMMARY"'
NR == 1 { next }
run_ok($1 "\t" $2, $6) { key = $1 "\t" $2; walls[key] = walls[key] " " $4; rsss[key] = rsss[key] " " $5 }
END {
    for (k = 1; k <= keys; k++) {
        key = order[k]
        if (state[key] == "ok")
            printf "%s\t%.4f\t%d\tok\n", key, median(walls[key]), median(rsss[key])
        else
            printf "%s\t\t\t%s\n", key, state[key]
    }
}' "$RAW" > "$SUMMARY"

# Baseline for ratios: crtheap where it ran; glibc when crtheap has no result at all.
BASE=crtheap
if ! awk -F'\t' '$2 == "crtheap" && $5 == "ok" { found = 1 } END { exit !found }' "$SUMMARY"; then
    BASE=glibc
fi
PEERS=$(for a in $ALLOCATORS; do [ "$a" != "$BASE" ] && echo "$a"; done | tr '\n' ' ')

# ---- speed.svg: time ratio of each peer to the baseline, per workload ----
DAT=$RESULTS/speed.dat
awk -F'\t' -v base="$BASE" -v peers="$PEERS" '
{ wl[$1] = 1; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
  if ($5 == "ok") t[$1, $2] = $3 }
END {
    np = split(peers, p, " ")
    printf "workload"; for (i = 1; i <= np; i++) printf "\t%s", p[i]; printf "\n"
    for (k = 1; k <= n; k++) {
        w = order[k]; printf "%s", w
        for (i = 1; i <= np; i++)
            if (((w, base) in t) && ((w, p[i]) in t) && t[w, base] > 0)
                printf "\t%.4f", t[w, p[i]] / t[w, base]
            else printf "\t?"
        printf "\n"
    }
}' "$SUMMARY" > "$DAT"

if command -v gnuplot >/dev/null; then
    npeers=$(echo "$PEERS" | wc -w)
    # shellcheck disable=SC2086 # one word per allocator
    colors=$(alloc_colors $PEERS)
    gnuplot <<GP 2> "$LOGS/gnuplot.log" || echo "run.sh: gnuplot failed, see $LOGS/gnuplot.log"
set terminal svg size 1100,520 dynamic font "sans,11" background rgb "white"
set output "$RESULTS/speed.svg"
set title "Wall time relative to $BASE (above 1: $BASE is faster), median of $RUNS runs"
set datafile separator "\t"
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key top left
set ylabel "time / time under $BASE"
set xtics rotate by 30 right scale 0 nomirror
set bmargin 8
set grid ytics
set yrange [0:*]
set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 lw 1.5 lc rgb "black" front
colors = "$colors"
plot for [i=2:$((npeers + 1))] "$DAT" using i:xtic(1) title columnheader(i) lc rgb word(colors, i - 1)
GP
fi

# ---- latest.md ----
LATEST=$RESULTS/latest.md
{
    echo "# crtheap benchmark results"
    echo
    echo "Generated by \`make bench\` (bench/run.sh). Each workload ran $RUNS times per allocator,"
    echo "allocators alternating round-robin; the figures are medians. Time is wall time of the"
    echo "whole process, RSS its peak resident set (wait4 ru_maxrss), both from build/bench/measure."
    echo "Ratios are allocator / $BASE: above 1 means $BASE is faster or smaller."
    [ "$BASE" != crtheap ] && echo "**crtheap has no results in this run (missing or failed everywhere): ratios are to glibc.**"
    echo
    echo "## Machine"
    echo
    echo "$MACHINE"
    echo
    echo "## Time ratio to $BASE (geometric mean at the bottom)"
    echo
    echo "![time ratios](speed.svg)"
    echo
    awk -F'\t' -v base="$BASE" -v allocs="$ALLOCATORS" '
    { if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
      state[$1, $2] = $5; if ($5 == "ok") { t[$1, $2] = $3 } }
    END {
        na = split(allocs, a, " ")
        printf "| workload |"; for (i = 1; i <= na; i++) printf " %s |", a[i]
        printf " %s / best peer |\n|---|", base
        for (i = 1; i <= na; i++) printf "---:|"; printf "---:|\n"
        for (k = 1; k <= n; k++) {
            w = order[k]; printf "| %s |", w; best = 0
            for (i = 1; i <= na; i++) {
                if (state[w, a[i]] != "ok") { printf " %s |", state[w, a[i]]; continue }
                if (a[i] != base && a[i] !~ /^crtheap/ && (best == 0 || t[w, a[i]] < best)) best = t[w, a[i]]
                if ((w, base) in t) {
                    r = t[w, a[i]] / t[w, base]; printf " %.2f |", r
                    logsum[i] += log(r); count[i]++
                } else printf " %.3fs |", t[w, a[i]]
            }
            if (((w, base) in t) && best > 0) printf " %.2f |\n", t[w, base] / best
            else printf " – |\n"
        }
        printf "| **geometric mean** |"
        for (i = 1; i <= na; i++)
            if (count[i] > 0) printf " **%.3f** (%d) |", exp(logsum[i] / count[i]), count[i]
            else printf " – |"
        printf " |\n"
    }' "$SUMMARY"
    echo
    echo "Targets (SPEC §3): crtheap's geometric mean time at or below mimalloc's (its column ≥ 1"
    echo "above), no workload slower than 1.25× the best peer (last column ≤ 1.25), peak RSS at or"
    echo "below mimalloc's on each workload (tables below)."
    echo
    echo "## Per workload"
    echo
    awk -F'\t' -v base="$BASE" -v allocs="$ALLOCATORS" '
    { if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
      state[$1, $2] = $5; if ($5 == "ok") { t[$1, $2] = $3; r[$1, $2] = $4 } }
    END {
        na = split(allocs, a, " ")
        for (k = 1; k <= n; k++) {
            w = order[k]
            printf "### %s\n\n| allocator | time (s) | time / %s | peak RSS (MiB) | RSS / %s |\n", w, base, base
            printf "|---|---:|---:|---:|---:|\n"
            for (i = 1; i <= na; i++) {
                s = state[w, a[i]]
                if (s != "ok") { printf "| %s | %s | | | |\n", a[i], s; continue }
                printf "| %s | %.3f |", a[i], t[w, a[i]]
                if ((w, base) in t) printf " %.2f |", t[w, a[i]] / t[w, base]; else printf " – |"
                printf " %.1f |", r[w, a[i]] / 1024
                if ((w, base) in r) printf " %.2f |\n", r[w, a[i]] / r[w, base]; else printf " – |\n"
            }
            printf "\n"
        }
    }' "$SUMMARY"
    failures=$(awk -F'\t' 'NR > 1 && $6 != "0" && $6 != "missing" && $6 != "skipped"' "$RAW")
    if [ -n "$failures" ]; then
        echo "## Failures"
        echo
        echo "Status 124 is a timeout (${TIMEOUT}s), 128+n death by signal n. A workload that failed"
        echo "under an allocator is not run again under it. First lines of each log:"
        echo
        echo "$failures" | while IFS=$'\t' read -r name alloc run wall rss status; do
            echo "- $name under $alloc, run $run: status $status: \`$(head -c 300 "$LOGS/$name.$alloc.$run.log" | tr '\n`' ' \047')\`"
        done
        echo
    fi
} > "$LATEST.part"

if [ "${BENCH_SKIP_EXTRAS:-0}" != 1 ]; then
    {
        echo "## Instructions per malloc/free pair (callgrind)"
        echo
        bench/callgrind.sh 2>&1 | sed 's/^/    /'
        echo
        echo "## Memory traffic per malloc/free pair (cachegrind)"
        echo
        bench/cachegrind.sh 2>&1 | sed 's/^/    /'
        echo
    } >> "$LATEST.part"
    bench/trim-run.sh
    if [ -f "$RESULTS/trim.md" ]; then
        sed -e 's/^## /### /' -e '1s/^# /## /' "$RESULTS/trim.md" >> "$LATEST.part"
    fi
fi
mv "$LATEST.part" "$LATEST"
echo "run.sh: wrote $LATEST and $RESULTS/speed.svg"
