#!/usr/bin/env bash
# run-tsan.sh PROGRAM — run the ThreadSanitizer test (tests/tsan_trim.c) and print
# "N passed, N failed" (one test).  It passes when the program exits 0: TSan found no
# race (it exits 66 when it reports one), every block kept its contents, and _heapchk
# was _HEAPOK.  Address-space randomisation is turned off for the run (setarch -R): with
# the large mmap randomisation of recent kernels, TSan's fixed shadow layout may not fit.
set -u
program=${1:?usage: run-tsan.sh PROGRAM}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0 exitcode=66}
export TSAN_TRIM_SECONDS=${TSAN_TRIM_SECONDS:-3}
if setarch "$(uname -m)" -R true 2>/dev/null; then
    setarch "$(uname -m)" -R "$program"
else
    "$program"
fi
status=$?
if [ "$status" -eq 0 ]; then
    echo "PASS: tsan_trim: no race reported, contents intact, _heapchk ok"
    echo "1 passed, 0 failed"
else
    echo "FAIL: tsan_trim: exit status $status (66: ThreadSanitizer reported a race)"
    echo "0 passed, 1 failed"
fi
[ "$status" -eq 0 ]
