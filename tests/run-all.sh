#!/usr/bin/env bash
# run-all.sh BIN_DIR [LIBCRTHEAP_SO [UBSAN_LIB_DIR [DEBUG_LIB_DIR]]] — run every test part and
# print the total.
#
# Parts: the Check suites in BIN_DIR (each test in its own process, CK_FORK=yes), the
# same suites against the library built with UBSan and against the debug build (its
# invariant assertions on) when their directories are given (found before the normal
# one through LD_LIBRARY_PATH), the race under ThreadSanitizer and under AddressSanitizer
# (tests/run-tsan.sh) and, when the library is given, the real programs under
# LD_PRELOAD (tests/real-programs.sh).
# The last line is "N passed, N failed"; the exit status is non-zero if anything failed.
set -u
bin=${1:?usage: run-all.sh BIN_DIR [LIBCRTHEAP_SO]}
lib=${2:-}
ubsan_dir=${3:-}
debug_dir=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
passed=0
failed=0
export CK_FORK=yes

# Add a part's "N passed, N failed" to the total; a part that printed no tally counts as
# one failure.
tally() { # name pass fail
    echo "== $1: $2 passed, $3 failed"
    passed=$((passed + $2))
    failed=$((failed + $3))
}

run_check() { # name program...
    local name=$1 log
    shift
    log=$(mktemp)
    "$@" 2>&1 | tee "$log"
    # Check's summary: "91%: Checks: 34, Failures: 3, Errors: 0"
    local line
    line=$(grep -E '^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$log" | tail -n 1)
    rm -f "$log"
    if [ -z "$line" ]; then
        echo "$name: no Check summary (the runner itself crashed?)"
        tally "$name" 0 1
        return
    fi
    local checks fails errors
    checks=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
    fails=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
    errors=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
    tally "$name" $((checks - fails - errors)) $((fails + errors))
}

for part in test_api test_api_static test_threads test_crt test_trim test_mesh test_dropin test_death; do
    [ -x "$bin/$part" ] || continue
    echo "== $part"
    run_check "$part" "$bin/$part"
done

# The suites that link the shared library, against another build of it found first
# through LD_LIBRARY_PATH: the UBSan build (any undefined behaviour aborts the test it
# happens in) and the debug build (a broken invariant does).
run_against() { # label dir
    local label=$1 dir=$2 part
    [ -n "$dir" ] || return 0
    for part in test_api test_threads test_crt test_trim test_mesh test_dropin; do
        [ -x "$bin/$part" ] || continue
        echo "== $part against the $label build"
        run_check "$label $part" env LD_LIBRARY_PATH="$dir" "$bin/$part"
    done
}
run_against ubsan "$ubsan_dir"
run_against debug "$debug_dir"

# A part run by a script that ends with "N passed, N failed".
run_script() { # name script args...
    local name=$1 log line
    shift
    log=$(mktemp)
    "$@" 2>&1 | tee "$log"
    line=$(tail -n 1 "$log")
    rm -f "$log"
    if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        tally "$name" "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
    else
        tally "$name" 0 1
    fi
}

# Windows code that includes <malloc.h> and calls the CRT heap functions, compiled as is.
if [ -x "$bin/ported_windows" ]; then
    echo "== a Windows source file compiled unchanged (<malloc.h> from include/crtheap/msvc)"
    if "$bin/ported_windows"; then tally ported-windows 1 0; else tally ported-windows 0 1; fi
fi

# The crtheap command: run (samples, summary, plot), stats, compare.
if [ -n "$lib" ] && [ -x "$(dirname "$lib")/crtheap" ]; then
    echo "== the crtheap command (crtheap run, stats, compare)"
    run_script crtheap-command "$here/crtheap-command.sh" "$(dirname "$lib")"
fi

if [ -x "$bin/tsan_trim" ]; then
    echo "== _heapmin racing malloc/free under ThreadSanitizer"
    run_script tsan "$here/run-tsan.sh" "$bin/tsan_trim"
fi
if [ -x "$bin/asan_trim" ]; then
    echo "== _heapmin racing malloc/free under AddressSanitizer"
    run_script asan "$here/run-tsan.sh" "$bin/asan_trim"
fi

if [ -n "$lib" ]; then
    echo "== real programs under LD_PRELOAD=$lib"
    run_script real-programs "$here/real-programs.sh" "$lib"
fi
# ... and under the debug build: a real program that breaks an invariant aborts.
if [ -n "$lib" ] && [ -n "$debug_dir" ] && [ -e "$debug_dir/libcrtheap.so.0" ]; then
    echo "== real programs under LD_PRELOAD=$debug_dir/libcrtheap.so.0 (assertions on)"
    run_script real-programs-debug "$here/real-programs.sh" "$debug_dir/libcrtheap.so.0"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
