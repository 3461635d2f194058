#!/usr/bin/env bash
# crtheap-command.sh BUILD_DIR — the crtheap command (crtheap(1)) on real programs:
#   run:     the program's exit status passes through; summary.txt has the peaks, the
#            final figures and each trim; memory.svg is valid SVG with one series per
#            figure (in use, committed, resident, released, process RSS) and the trims;
#            a program the sampled one starts does not overwrite its samples
#   stats:   a running process started by `crtheap run` reports its figures; another
#            one is refused with a message
#   compare: both columns, with the exit status
#   --help:  usage on stdout, status 0; a wrong command: usage on stderr, status 2
# The last line is "N passed, N failed".
set -u
build=$(cd "${1:?usage: crtheap-command.sh BUILD_DIR}" && pwd)
crtheap=$build/crtheap
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
pass() { echo "PASS: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }
PYTHON=/usr/bin/python3

# A program that builds 60 MiB of blocks, frees half, calls _heapmin twice, starts a
# child (which must not sample), and exits with status 3.
cat > "$work/prog.py" <<'PY'
import ctypes, subprocess, sys, time
libc = ctypes.CDLL(None)
blocks = [bytearray(2000) for _ in range(30000)]
time.sleep(0.15)
del blocks[::2]
libc._heapmin()
time.sleep(0.15)
blocks = None
libc._heapmin()
subprocess.run(["/bin/true"])
time.sleep(0.15)
sys.exit(3)
PY

"$crtheap" run -o "$work/run" -i 20 -- "$PYTHON" "$work/prog.py" 2> "$work/run.err"
status=$?
if [ "$status" -eq 3 ]; then pass "run: the exit status passes through"; else fail "run: exit status $status, want 3"; fi
if grep -q "peak" "$work/run/summary.txt" && grep -q "process RSS" "$work/run/summary.txt" &&
   grep -q "_heapmin and trims: 2 call(s)" "$work/run/summary.txt"; then
    pass "run: summary.txt has the peaks, the final figures and both trims"
else
    fail "run: summary.txt"; sed 's/^/    /' "$work/run/summary.txt"
fi
samples=$(wc -l < "$work/run/samples.tsv")
if [ "$samples" -ge 10 ] && awk 'NF != 8 { bad = 1 } END { exit bad }' "$work/run/samples.tsv"; then
    pass "run: $samples samples of 8 fields (the child did not overwrite them)"
else
    fail "run: samples.tsv has $samples lines or a malformed one"
fi
if command -v gnuplot > /dev/null; then
    series=$("$PYTHON" - "$work/run/memory.svg" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
titles = [g.find(ns + "title").text for g in root.iter(ns + "g")
          if (g.get("id") or "").startswith("gnuplot_plot_") and g.find(ns + "title") is not None]
print("|".join(titles))
PY
)
    want="in use|committed|resident|released (total)|process RSS|_heapmin / trim (MiB given back)"
    if [ "$series" = "$want" ]; then
        pass "run: memory.svg is valid SVG with one series per figure and the trims"
    else
        fail "run: memory.svg series: '$series'"
    fi
else
    fail "run: gnuplot is not installed (scripts/install-deps.sh installs gnuplot-nox)"
fi

# a sampled program that forks children which exit through exit(): they inherit the
# samples' file and the exit handler, and must write nothing (with a 60 s interval the
# parent writes exactly two lines: at its start and at its exit)
"$crtheap" run -o "$work/forks" -i 60000 -- "$PYTHON" -c "
import os
for i in range(5):
    pid = os.fork()
    if pid == 0:
        x = [bytearray(100) for _ in range(1000)]
        raise SystemExit(0)
    os.waitpid(pid, 0)
" 2> /dev/null
lines=$(wc -l < "$work/forks/samples.tsv")
if [ "$lines" -eq 2 ]; then
    pass "run: forked children add nothing to the samples"
else
    fail "run: $lines sample lines from a parent and 5 forked children, want 2"
fi

# stats: a process started by crtheap run, while it runs
"$crtheap" run -o "$work/sleeper" -i 20 -- "$PYTHON" -c "import time; x = [bytearray(5000) for _ in range(2000)]; time.sleep(2)" 2> /dev/null &
runner=$!
pid=
for _ in $(seq 50); do
    pid=$(pgrep -f -n "x = \[bytearray\(5000\)" || true)
    [ -n "$pid" ] && [ -s "$work/sleeper/samples.tsv" ] && break
    sleep 0.1
done
sleep 0.3
if [ -n "$pid" ] && "$crtheap" stats "$pid" > "$work/stats.out" 2>&1 && grep -q "in use" "$work/stats.out"; then
    pass "stats: a running process's figures"
else
    fail "stats: pid '$pid'"; sed 's/^/    /' "$work/stats.out" 2> /dev/null
fi
wait "$runner"
sleep 5 &
other=$!
if ! "$crtheap" stats "$other" 2> "$work/stats.err" && grep -q "not started by 'crtheap run'" "$work/stats.err"; then
    pass "stats: a process not started by crtheap run is refused with a message"
else
    fail "stats: $(cat "$work/stats.err")"
fi
kill "$other" 2> /dev/null

# compare
"$crtheap" compare -- "$PYTHON" -c "x = [bytearray(1000) for _ in range(20000)]; raise SystemExit(4)" > "$work/compare.out"
status=$?
if [ "$status" -eq 4 ] && grep -q "crtheap  *system malloc" "$work/compare.out" && grep -q "peak RSS" "$work/compare.out" &&
   grep -q "RSS at exit" "$work/compare.out" && grep -Eq "exit status +4 +4" "$work/compare.out"; then
    pass "compare: both columns and the exit status"
else
    fail "compare (status $status)"; sed 's/^/    /' "$work/compare.out"
fi

if "$crtheap" --help | grep -q "^usage: crtheap run" && ! "$crtheap" frobnicate 2> /dev/null; then
    pass "--help and a wrong command"
else
    fail "--help or a wrong command"
fi
echo "$passed passed, $failed failed"
