#!/bin/bash
# trim-run.sh — the trim benchmark (SPEC §3.1): build/bench/trim, every workload a–j under
# every allocator, each in a fresh process, TRIM_RUNS times (default 3, medians reported).
# Writes bench/results/trim.md, trim.svg and trim-raw.tsv.
#   TRIM_RUNS=n  TRIM_HEAP_MIB=MiB (default 300)  TRIM_WORKLOADS="a b c d e f g h i j"
#   BENCH_ALLOCATORS="crtheap glibc ..."  BENCH_TIMEOUT=s (per run, default 60)
set -u
cd "$(dirname "$0")/.." || exit 1
export BENCH_ROOT; BENCH_ROOT=$(pwd)
# shellcheck source=bench/allocators.sh
. bench/allocators.sh

RUNS=${TRIM_RUNS:-3}
WORKLOADS=${TRIM_WORKLOADS:-"a b c d e f g h i j"}
TIMEOUT=${BENCH_TIMEOUT:-60}
declare -A FAILED  # allocator.workload -> status: a failure is not run again
export TRIM_HEAP_MIB=${TRIM_HEAP_MIB:-300}
BIN=build/bench
RESULTS=bench/results
LOGS=build/bench/logs
mkdir -p "$RESULTS" "$LOGS"
for program in trim measure; do
    if [ ! -x "$BIN/$program" ]; then
        echo "trim-run.sh: $BIN/$program is missing; run 'make bench-build'" >&2
        exit 1
    fi
done

describe() {
    case "$1" in
    a) echo "a: oldest 90% freed" ;;
    b) echo "b: random 90% freed" ;;
    c) echo "c: 2 threads, cross frees, idle" ;;
    d) echo "d: 2 threads, cross frees, exited" ;;
    e) echo "e: large blocks 1-8 MiB" ;;
    f) echo "f: small 16-256 B, random 90% freed" ;;
    g) echo "g: small 16-256 B, random 95% freed" ;;
    h) echo "h: small 16-256 B, random 99% freed" ;;
    i) echo "i: mixed sizes, random 95% freed" ;;
    j) echo "j: small, 2 threads, 95% freed, idle" ;;
    esac
}

RAW=$RESULTS/trim-raw.tsv
MACHINE=$(machine_description)
printf 'workload\tallocator\trun\tstatus\tlive_bytes\tanon_before_kib\tanon_after_kib\tbefore_per_live\tafter_per_live\ttrim_ms\tcall\ttouched_per_live\tpss_baseline_kib\tpss_before_kib\tpss_after_kib\n' > "$RAW"
echo "trim-run.sh: workloads [$WORKLOADS] x [$ALLOCATORS] x $RUNS runs, heap $TRIM_HEAP_MIB MiB"
for run in $(seq 1 "$RUNS"); do
    for w in $WORKLOADS; do
        line="[run $run] $w:"
        for alloc in $ALLOCATORS; do
            log=$LOGS/trim-$w.$alloc.$run.log
            report=$LOGS/trim-$w.$alloc.$run.measure
            measure_run "$w" "$alloc" "$log" "$report" "$BIN/trim" "$w"
            if [ "$RUN_STATE" != ran ]; then
                printf '%s\t%s\t%s\t%s\t\t\t\t\t\t\t\t\t\t\t\n' "$w" "$alloc" "$run" "$RUN_STATE" >> "$RAW"
                line="$line $alloc=$RUN_STATE"
                continue
            fi
            status=$(sed -n 's/.*status=\([0-9]*\).*/\1/p' "$report" 2>/dev/null)
            status=${status:-255}
            result=$(grep '^workload=' "$log" | tail -1)
            if [ "$status" != 0 ] || [ -z "$result" ]; then
                [ "$status" = 0 ] && status=255
                printf '%s\t%s\t%s\t%s\t\t\t\t\t\t\t\t\t\t\t\n' "$w" "$alloc" "$run" "$status" >> "$RAW"
                line="$line $alloc=FAILED($status)"
                FAILED[$w.$alloc]=$status
                continue
            fi
            echo "$result" | awk -v w="$w" -v a="$alloc" -v r="$run" '{
                for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                printf "%s\t%s\t%s\t0\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", w, a, r, v["live_bytes"],
                    v["anon_before_kib"], v["anon_after_kib"], v["before_per_live"],
                    v["after_per_live"], v["trim_ms"], v["call"], v["touched_per_live"],
                    v["pss_baseline_kib"], v["pss_before_kib"], v["pss_after_kib"]
            }' >> "$RAW"
            after=${result##*after_per_live=}
            line="$line $alloc=${after%% *}x"
        done
        echo "$line"
    done
done

# summary: workload allocator state median_after_per_live median_before_per_live median_ms call live
#          median_touched_per_live
SUMMARY=$RESULTS/trim-summary.tsv
awk -F'\t' "$AWK_RUN_SUMMARY"'
NR == 1 { next }
run_ok($1 "\t" $2, $4) {
    key = $1 "\t" $2
    after[key] = after[key] " " $9; before[key] = before[key] " " $8
    ms[key] = ms[key] " " $10; call[key] = $11; live[key] = $5
    touched[key] = touched[key] " " $12
}
END {
    for (k = 1; k <= keys; k++) {
        key = order[k]
        if (state[key] == "ok")
            printf "%s\tok\t%.3f\t%.3f\t%.3f\t%s\t%s\t%.3f\n", key, median(after[key]),
                   median(before[key]), median(ms[key]), call[key], live[key], median(touched[key])
        else
            printf "%s\t%s\t\t\t\t\t\t\n", key, state[key]
    }
}' "$RAW" > "$SUMMARY"

# ---- trim.svg: RSS after the call / live bytes (top), the call's time (bottom) ----
DAT=$RESULTS/trim.dat
awk -F'\t' -v allocs="$ALLOCATORS" -v descr="$(for w in $WORKLOADS; do describe "$w"; done | tr '\n' '|')" '
{ if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
  if ($3 == "ok") { after[$1, $2] = $4; ms[$1, $2] = $6 } }
END {
    na = split(allocs, a, " "); split(descr, d, "|")
    printf "workload"; for (i = 1; i <= na; i++) printf "\t%s", a[i]
    for (i = 1; i <= na; i++) printf "\t%s", a[i]; printf "\n"
    for (k = 1; k <= n; k++) {
        w = order[k]; printf "%s", d[k]
        for (i = 1; i <= na; i++) printf "\t%s", ((w, a[i]) in after) ? after[w, a[i]] : "?"
        for (i = 1; i <= na; i++) printf "\t%s", ((w, a[i]) in ms) ? ms[w, a[i]] : "?"
        printf "\n"
    }
}' "$SUMMARY" > "$DAT"

if command -v gnuplot >/dev/null; then
    na=$(echo "$ALLOCATORS" | wc -w)
    # shellcheck disable=SC2086 # one word per allocator
    colors=$(alloc_colors $ALLOCATORS)
    gnuplot <<GP 2> "$LOGS/gnuplot-trim.log" || echo "trim-run.sh: gnuplot failed, see $LOGS/gnuplot-trim.log"
set terminal svg size 1400,820 dynamic font "sans,11" background rgb "white"
set output "$RESULTS/trim.svg"
set datafile separator "\t"
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set xtics scale 0 nomirror
set key top left
set multiplot layout 2,1 title "Trim call, heap of $TRIM_HEAP_MIB MiB, median of $RUNS runs"
set title "memory (PSS) after the call / live bytes (1 is perfect)"
set yrange [0:*]
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 lw 1.5 lc rgb "black" front
colors = "$colors"
plot for [i=2:$((na + 1))] "$DAT" using i:xtic(1) title columnheader(i) lc rgb word(colors, i - 1)
unset arrow 1
set title "time of the call (ms)"
plot for [i=$((na + 2)):$((2 * na + 1))] "$DAT" using i:xtic(1) title columnheader(i) lc rgb word(colors, i - $na - 1)
unset multiplot
GP
fi

# ---- trim.md ----
{
    echo "# Trim benchmark"
    echo
    echo "Generated by bench/trim-run.sh (\`make bench-trim\`). build/bench/trim builds a heap of"
    echo "$TRIM_HEAP_MIB MiB (95% of blocks 16–512 B, the rest 513 B–1 MiB spread evenly per octave;"
    echo "large blocks 1–8 MiB in e), frees 90% of it, and calls the allocator's trim call."
    echo "f–j are the fragmentation workloads: small objects of 16–256 B (i: the mix of b), a random"
    echo "90, 95 or 99% freed, so most free space lies on OS pages that still hold a live block."
    echo "Memory is \`Pss_Anon:\` + \`Pss_Shmem:\` of /proc/self/smaps_rollup (a page two mappings share counts once)"
    echo "above the level before the heap was built, divided by the bytes still live (1.00 is"
    echo "perfect). Medians of $RUNS runs, each run a fresh process. All live blocks are checked"
    echo "after the call."
    echo
    echo "Calls: crtheap \`_heapmin()\`, mimalloc \`mi_collect(true)\`, jemalloc"
    echo "\`thread.tcache.flush\` + \`arena.4096.purge\`, tcmalloc \`MallocExtension_ReleaseFreeMemory()\`,"
    echo "glibc \`malloc_trim(0)\`."
    echo
    echo "![trim](trim.svg)"
    echo
    echo "## Machine"
    echo
    echo "$MACHINE"
    echo
    awk -F'\t' -v allocs="$ALLOCATORS" -v descr="$(for w in $WORKLOADS; do describe "$w"; done | tr '\n' '|')" '
    { if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
      state[$1, $2] = $3
      if ($3 == "ok") { after[$1, $2] = $4; before[$1, $2] = $5; ms[$1, $2] = $6; live[$1] = $8
                        touched[$1, $2] = $9 } }
    function header(title,    i) {
        printf "## %s\n\n| workload | live MiB |", title
        for (i = 1; i <= na; i++) printf " %s |", a[i]
        printf "\n|---|---:|"; for (i = 1; i <= na; i++) printf "---:|"; printf "\n"
    }
    function row(k, what,    w, i) {
        w = order[k]; printf "| %s | %.1f |", d[k], live[w] / 1048576
        for (i = 1; i <= na; i++) {
            if (state[w, a[i]] != "ok") { printf " %s |", state[w, a[i]]; continue }
            if (what == "after") printf " %.2f |", after[w, a[i]]
            else if (what == "before") printf " %.2f |", before[w, a[i]]
            else if (what == "touched") printf " %.3f |", touched[w, a[i]]
            else printf " %.1f |", ms[w, a[i]]
        }
        printf "\n"
    }
    END {
        na = split(allocs, a, " "); split(descr, d, "|")
        header("Memory (PSS) after the trim call / live bytes")
        for (k = 1; k <= n; k++) row(k, "after")
        printf "\n"
        header("Memory (PSS) before the call (after the frees) / live bytes")
        for (k = 1; k <= n; k++) row(k, "before")
        printf "\n"
        header("Floor: the OS pages live blocks touch / live bytes")
        for (k = 1; k <= n; k++) row(k, "touched")
        printf "\nNo trim that leaves live blocks where they are can keep less than this: every 4 KiB\n"
        printf "page that holds a byte of a live block stays resident.  It depends on where the\n"
        printf "allocator placed the blocks, so it differs between allocators.\n\n"
        header("Time of the trim call (ms)")
        for (k = 1; k <= n; k++) row(k, "ms")
        printf "\n"
        # SPEC 3: at or below every peer on each workload, 10% below a peer that stays > 1.05
        printf "## Target check (SPEC §3)\n\nAt or below every peer after the call, and 10%% below a peer that stays more than 5%% above\n"
        printf "live (that margin floored at 1.02x live, since nothing can go below live); the call no\n"
        printf "slower than glibc malloc_trim + 1 ms.  Other builds of crtheap (crtheap-*) are not peers.\n\n"
        printf "| workload | crtheap | crtheap floor | best peer | verdict |\n|---|---:|---:|---:|---|\n"
        for (k = 1; k <= n; k++) {
            w = order[k]; best = ""; bestname = ""; verdict = "pass"
            for (i = 1; i <= na; i++) if (a[i] !~ /^crtheap/ && state[w, a[i]] == "ok")
                if (best == "" || after[w, a[i]] < best) { best = after[w, a[i]]; bestname = a[i] }
            if (state[w, "crtheap"] != "ok") { printf "| %s | %s | | %s | no result |\n", d[k], state[w, "crtheap"], best; continue }
            c = after[w, "crtheap"]; target = ""
            for (i = 1; i <= na; i++) if (a[i] !~ /^crtheap/ && state[w, a[i]] == "ok") {
                p = after[w, a[i]]
                # nothing goes below live: the 10% margin is floored at 1.02x live
                limit = p > 1.05 ? (0.9 * p > 1.02 ? 0.9 * p : 1.02) : p
                if (c > limit) {
                    verdict = "FAIL vs " a[i]
                    if (touched[w, "crtheap"] > limit) target = sprintf(" (target %.2f is below the floor)", limit)
                }
            }
            if (state[w, "glibc"] == "ok" && ms[w, "crtheap"] > ms[w, "glibc"] + 1)
                verdict = verdict "; slower than malloc_trim + 1 ms"
            printf "| %s | %.2f | %.3f | %.2f (%s) | %s%s |\n", d[k], c, touched[w, "crtheap"], best, bestname, verdict, target
        }
        printf "\n"
    }' "$SUMMARY"
    failures=$(awk -F'\t' 'NR > 1 && $4 != "0" && $4 != "missing" && $4 != "skipped"' "$RAW")
    if [ -n "$failures" ]; then
        echo "## Failures"
        echo
        echo "$failures" | while IFS=$'\t' read -r w alloc run status rest; do
            echo "- $w under $alloc, run $run: status $status: \`$(head -c 300 "$LOGS/trim-$w.$alloc.$run.log" | tr '\n`' ' \047')\`"
        done
        echo
    fi
} > "$RESULTS/trim.md"
echo "trim-run.sh: wrote $RESULTS/trim.md and $RESULTS/trim.svg"
