#!/bin/sh
# crtheap — run an unmodified program under crtheap and see what its heap does
# (crtheap(1)).  The library samples the heap from inside the process (no ptrace):
#   crtheap run [-o DIR] [-i MS] -- PROGRAM [ARGS...]
#   crtheap compare -- PROGRAM [ARGS...]
#   crtheap stats PID
set -u

here=$(cd "$(dirname "$0")" && pwd)

# A file of crtheap's next to this script (the build tree) or where `make install` puts it.
find_file() {
    for f in "$here/$1" "$here/../lib/$1" "$here/../lib/crtheap/$1"; do
        if [ -e "$f" ]; then
            echo "$f"
            return 0
        fi
    done
    echo "crtheap: cannot find $1 next to $0 or in $here/../lib" >&2
    return 1
}

usage() {
    cat <<'EOF'
usage: crtheap run [-o DIR] [-i MS] -- PROGRAM [ARGS...]
       crtheap compare -- PROGRAM [ARGS...]
       crtheap stats PID
       crtheap --help

run      run PROGRAM with crtheap preloaded; every MS milliseconds (default 100) the
         library records the heap's bytes in use, committed, resident and released and
         the process's RSS.  At exit DIR (default crtheap-run) holds samples.tsv,
         summary.txt (peaks, final figures, each trim and what it gave back) and
         memory.svg (those figures over time, trims marked; needs gnuplot).  The exit
         status is PROGRAM's.
compare  run PROGRAM under crtheap, then under the system allocator, and print wall
         time, peak RSS and RSS at exit side by side; the exit status is the crtheap run's.
stats    print the latest figures of a running process started by `crtheap run`.
EOF
}

# Bytes as "12.3 MiB" (awk, for the tables).
HUMAN='function human(n,  u, i) { split("B KiB MiB GiB TiB", u, " "); i = 1;
                                 while (n >= 1024 && i < 5) { n /= 1024; i++ }
                                 return i == 1 ? sprintf("%d B", n) : sprintf("%.1f %s", n, u[i]) }'

# Start "$@" so that its process id is in $1=NAME_PID of its own environment: the
# library acts in that process only, not in the programs it starts.
exec_marked() {
    var=$1
    shift
    sh -c "$var=\$\$; export $var; exec \"\$@\"" crtheap "$@"
}

cmd_run() {
    dir=crtheap-run
    ms=100
    while [ $# -gt 0 ]; do
        case "$1" in
        -o) dir=${2:?crtheap run: -o needs a directory}; shift 2 ;;
        -i) ms=${2:?crtheap run: -i needs milliseconds}; shift 2 ;;
        --) shift; break ;;
        -h|--help) usage; exit 0 ;;
        *) break ;;
        esac
    done
    [ $# -gt 0 ] || { usage >&2; exit 2; }
    case "$ms" in ''|*[!0-9]*) echo "crtheap run: -i $ms: not a number of milliseconds" >&2; exit 2 ;; esac
    lib=$(find_file libcrtheap.so) || exit 2
    mkdir -p "$dir" || exit 2
    samples="$dir/samples.tsv"
    : > "$samples"
    CRTHEAP_SAMPLE_FILE="$samples" CRTHEAP_SAMPLE_MS="$ms" LD_PRELOAD="$lib${LD_PRELOAD:+ $LD_PRELOAD}" \
        exec_marked CRTHEAP_SAMPLE_PID "$@"
    status=$?
    command=$(printf '%s' "$*" | tr '\n\t' '  ' | cut -c1-200)   # one line, for the titles
    summarize "$samples" "$status" "$ms" "$command" > "$dir/summary.txt"
    plot "$samples" "$dir" "$command"
    echo "crtheap run: exit status $status; wrote $dir/summary.txt${plotted:+ and $dir/memory.svg}" >&2
    return "$status"
}

# summary.txt from the samples: ms in_use committed resident released rss trims trim_released
summarize() {
    awk -v status="$2" -v ms="$3" -v cmd="$4" "$HUMAN"'
        NF >= 8 {
            n++; t = $1
            for (i = 2; i <= 6; i++) { last[i] = $i; if ($i > peak[i]) peak[i] = $i }
            if ($7 > trims) { events = events sprintf("  at %.2f s: %d call(s), gave back %s\n", $1 / 1000, $7 - trims, human($8 - given)); trims = $7; given = $8 }
        }
        END {
            printf "crtheap run: %s\nexit status %d after %.2f s; %d samples, one every %d ms\n\n", cmd, status, t / 1000, n, ms
            printf "  %-18s %12s %12s\n", "", "peak", "at exit"
            name[2] = "in use"; name[3] = "committed"; name[4] = "resident"; name[5] = "released (total)"; name[6] = "process RSS"
            for (i = 2; i <= 6; i++) printf "  %-18s %12s %12s\n", name[i], human(peak[i]), human(last[i])
            printf "\n_heapmin and trims: %d call(s), gave back %s\n%s", trims, human(given), events
        }' "$1"
}

# memory.svg: one series per figure, in MiB over seconds, and the trims as impulses.
plot() {
    plotted=
    if ! command -v gnuplot > /dev/null 2>&1; then
        echo "crtheap run: gnuplot is not installed (Debian: gnuplot-nox); no memory.svg" >&2
        return 0
    fi
    awk 'NF >= 8 { if ($7 > trims) print $1 / 1000, $8 / 1048576 - given; trims = $7; given = $8 / 1048576 }' \
        "$1" > "$2/trims.dat"
    trims=
    if [ -s "$2/trims.dat" ]; then
        trims=", '$2/trims.dat' using 1:2 with impulses linewidth 3 title '_heapmin / trim (MiB given back)' noenhanced"
    fi
    title=$(printf '%s' "$3" | tr -d "'\"\\\\" | cut -c1-80)
    gnuplot 2> "$2/gnuplot.log" <<EOF && plotted=1
set terminal svg size 960,540 dynamic background rgb 'white'
set output '$2/memory.svg'
set title 'crtheap run: $title' noenhanced
set xlabel 'seconds'
set ylabel 'MiB'
set key outside right top
set grid
plot '$1' using (\$1/1000):(\$2/1048576) with lines linewidth 2 title 'in use', \
     '' using (\$1/1000):(\$3/1048576) with lines linewidth 2 title 'committed', \
     '' using (\$1/1000):(\$4/1048576) with lines linewidth 2 title 'resident', \
     '' using (\$1/1000):(\$5/1048576) with lines linewidth 2 title 'released (total)', \
     '' using (\$1/1000):(\$6/1048576) with lines linewidth 2 title 'process RSS'$trims
EOF
    if [ -z "$plotted" ]; then
        echo "crtheap run: gnuplot failed (see $2/gnuplot.log); no memory.svg" >&2
    fi
}

cmd_compare() {
    [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || { usage >&2; exit 2; }
    lib=$(find_file libcrtheap.so) || exit 2
    probe=$(find_file libcrtheap-probe.so) || exit 2
    out=$(mktemp) || exit 2
    # one run: wall time, then "peak rss" from the probe, then the status
    measure() {
        preload=$1
        shift
        rm -f "$out"
        start=$(date +%s%N)
        CRTHEAP_PROBE_FILE="$out" LD_PRELOAD="$preload" exec_marked CRTHEAP_PROBE_PID "$@" > /dev/null
        st=$?
        end=$(date +%s%N)
        figures=$(cat "$out" 2> /dev/null || echo "0 0")
        echo "$(( (end - start) / 1000000 )) $figures $st"
    }
    a=$(measure "$lib $probe" "$@")
    b=$(measure "$probe" "$@")
    rm -f "$out"
    echo "$a $b" | awk "$HUMAN"'{
        printf "  %-14s %14s %14s\n", "", "crtheap", "system malloc"
        printf "  %-14s %12.2f s %12.2f s\n", "wall time", $1 / 1000, $5 / 1000
        printf "  %-14s %14s %14s\n", "peak RSS", human($2), human($6)
        printf "  %-14s %14s %14s\n", "RSS at exit", human($3), human($7)
        printf "  %-14s %14d %14d\n", "exit status", $4, $8 }'
    return "$(echo "$a" | awk '{ print $4 }')"
}

cmd_stats() {
    pid=${1:-}
    case "$pid" in ''|*[!0-9]*) usage >&2; exit 2 ;; esac
    [ -r "/proc/$pid/environ" ] || { echo "crtheap stats: no process $pid (or not yours)" >&2; exit 1; }
    file=$(tr '\0' '\n' < "/proc/$pid/environ" | sed -n 's/^CRTHEAP_SAMPLE_FILE=//p')
    if [ -z "$file" ] || [ ! -s "$file" ]; then
        echo "crtheap stats: process $pid was not started by 'crtheap run' (it records no samples)" >&2
        exit 1
    fi
    tail -n 1 "$file" | awk -v pid="$pid" "$HUMAN"'NF >= 8 {
        printf "process %s, %.2f s after its start:\n", pid, $1 / 1000
        printf "  in use       %12s\n  committed    %12s\n  resident     %12s\n", human($2), human($3), human($4)
        printf "  released     %12s (total)\n  process RSS  %12s\n", human($5), human($6)
        printf "  trims        %12d (gave back %s)\n", $7, human($8) }'
}

case "${1:-}" in
run) shift; cmd_run "$@" ;;
compare) shift; cmd_compare "$@" ;;
stats) shift; cmd_stats "$@" ;;
-h|--help|help) usage ;;
*) usage >&2; exit 2 ;;
esac
