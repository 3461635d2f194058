#!/usr/bin/env bash
# run-tsan.sh PROGRAM — run a sanitizer build of the race test (tests/tsan_trim.c, built
# as tsan_trim under ThreadSanitizer and as asan_trim under AddressSanitizer+UBSan) and
# print "N passed, N failed" (one test).  It passes when the program exits 0: the
# sanitizer reported nothing (it exits 66 when it does), every block kept its contents,
# and _heapchk was _HEAPOK.  Address-space randomisation is turned off for the run
# (setarch -R): with the large mmap randomisation of recent kernels, TSan's fixed shadow
# layout may not fit.
set -u
program=${1:?usage: run-tsan.sh PROGRAM}
name=$(basename "$program")
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0 exitcode=66}
export ASAN_OPTIONS=${ASAN_OPTIONS:-exitcode=66 detect_leaks=0}
export TSAN_TRIM_SECONDS=${TSAN_TRIM_SECONDS:-3}
if setarch "$(uname -m)" -R true 2>/dev/null; then
    setarch "$(uname -m)" -R "$program"
else
    "$program"
fi
status=$?
if [ "$status" -eq 0 ]; then
    echo "PASS: $name: no report from the sanitizer, contents intact, _heapchk ok"
    echo "1 passed, 0 failed"
else
    echo "FAIL: $name: exit status $status (66: the sanitizer reported a problem)"
    echo "0 passed, 1 failed"
fi
[ "$status" -eq 0 ]
