#!/usr/bin/env bash
# real-programs.sh LIBCRTHEAP_SO — real programs under LD_PRELOAD (SPEC §5).
#
# Each session runs twice, in a fresh directory each time: on the system allocator, where
# it must succeed, and with the library preloaded (children inherit it: python's test
# workers, git's helpers, gcc's cc1 and as). The exit status and the output must be the
# same, and crtheap must print no diagnostic. Each comparison counts once; the last line
# is "N passed, N failed". CRTHEAP_TESTS_KEEP=1 keeps the outputs for a look.
set -u
lib=${1:?usage: real-programs.sh /abs/path/libcrtheap.so}
lib=$(readlink -f "$lib")
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
if [ -n "${CRTHEAP_TESTS_KEEP:-}" ]; then echo "outputs in $work"; else trap 'rm -rf "$work"' EXIT; fi
passed=0
failed=0
PYTHON=/usr/bin/python3

pass() { echo "PASS: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }

# compare NAME FUNCTION: run FUNCTION without and with the preload, compare the results.
compare() {
    local name=$1 fn=$2 base=$work/$1-base crt=$work/$1-crt
    mkdir -p "$base" "$crt"
    (cd "$base" && "$fn") >"$base.out" 2>"$base.err"
    local base_rc=$?
    (cd "$crt" && export LD_PRELOAD=$lib && "$fn") >"$crt.out" 2>"$crt.err"
    local crt_rc=$?
    if [ "$base_rc" -ne 0 ]; then
        fail "$name: the session fails on the system allocator too (exit $base_rc): fix the test"
        tail -n 5 "$base.err" | sed 's/^/    /'
    elif [ "$base_rc" -ne "$crt_rc" ]; then
        fail "$name: exit status $crt_rc under crtheap, $base_rc under the system allocator"
        tail -n 20 "$crt.err" | sed 's/^/    /'
    elif ! cmp -s "$base.out" "$crt.out"; then
        fail "$name: output differs from the system allocator's"
        diff "$base.out" "$crt.out" | head -n 20 | sed 's/^/    /'
    elif grep -q '^crtheap:' "$crt.err"; then
        fail "$name: crtheap reported an error"
        grep '^crtheap:' "$crt.err" | head -n 5 | sed 's/^/    /'
    else
        pass "$name"
    fi
}

# Part of Python's own regression suite (Debian's libpython3.11-testsuite), in parallel
# workers that inherit the preload. Timings vary, so only the verdict lines are compared.
python3_regrtest() {
    "$PYTHON" -m test -j0 test_list test_dict test_set test_string test_unicode test_json \
        test_re test_bisect test_heapq test_collections test_itertools test_bytes test_sort \
        test_functools test_math test_struct test_threading test_decimal test_pickle \
        test_array test_gc test_weakref test_zlib test_hashlib test_memoryview >log 2>&1
    local rc=$?
    grep -E '^(Tests result:|All [0-9]+ tests OK\.|[0-9]+ tests? (failed|skipped|OK))' log
    return $rc
}

# A small repository's life: commits, a branch and a merge, history, diffs, gc, fsck.
git_session() {
    export GIT_AUTHOR_NAME=Tester GIT_AUTHOR_EMAIL=tester@example.com
    export GIT_COMMITTER_NAME=Tester GIT_COMMITTER_EMAIL=tester@example.com
    export GIT_AUTHOR_DATE='2024-01-02T03:04:05Z' GIT_COMMITTER_DATE='2024-01-02T03:04:05Z'
    export HOME=$PWD GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null TZ=UTC
    set -e
    git -c init.defaultBranch=main init -q repo
    cd repo
    git config gc.auto 0
    git config pack.threads 1
    for i in $(seq 1 150); do seq "$i" $((i * 40)) >"f$i.txt"; done
    mkdir sub
    seq 1 100000 >sub/big.txt
    git add -A
    git commit -q -m "first: 151 files"
    sed -i 's/7/seven/g' f1*.txt sub/big.txt
    git rm -q f20.txt
    git add -A
    git commit -q -m "second: sevens"
    git checkout -q -b topic
    printf 'topic line %s\n' $(seq 1 500) >topic.txt
    git add topic.txt
    git commit -q -m "topic work"
    git checkout -q main
    echo "main change" >>f2.txt
    git commit -q -am "main work"
    git merge -q --no-edit topic
    git log --stat --format='%H %an %ad %s' --date=iso
    git diff HEAD~3 HEAD --stat
    git diff HEAD~3 HEAD | head -n 2000
    git blame -s f15.txt | head -n 50
    git grep -n seven -- 'f1*.txt' | head -n 200
    git gc -q
    git fsck --full --strict
    git count-objects -v | grep -E '^(count|in-pack|packs)'
    git cat-file --batch-all-objects --batch-check | sort
    git archive HEAD | sha256sum
    git status --porcelain
}

# A table of 100k rows made by a recursive CTE, then grouping, sorting, joins, windows,
# updates, VACUUM, in a file database and in memory.
SQL=$(
    cat <<'EOF'
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INT, name TEXT, val REAL);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000)
INSERT INTO t SELECT x, x % 97, printf('name-%06d', (x * 7919) % 100003), (x * 31 % 1000) / 7.0 FROM c;
CREATE INDEX t_name ON t(name);
CREATE INDEX t_grp_val ON t(grp, val);
SELECT grp, count(*), sum(val), min(name), max(name) FROM t GROUP BY grp ORDER BY grp;
SELECT name, val FROM t ORDER BY val DESC, name LIMIT 50;
SELECT count(DISTINCT name), count(DISTINCT val) FROM t;
SELECT group_concat(id, ',') FROM (SELECT id FROM t WHERE name LIKE 'name-0001%' ORDER BY id);
SELECT a.grp, count(*), sum(b.val) FROM t a JOIN t b ON b.id = a.id + 1 GROUP BY a.grp ORDER BY 3 DESC LIMIT 20;
SELECT id, sum(val) OVER (PARTITION BY grp ORDER BY id ROWS 3 PRECEDING) FROM t WHERE id < 400 ORDER BY id;
UPDATE t SET name = upper(name) || '-' || hex(zeroblob(id % 50)) WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
VACUUM;
PRAGMA integrity_check;
SELECT count(*), sum(length(name)), length(group_concat(name, ',')) FROM t;
SELECT grp, max(length(name)) FROM t GROUP BY grp HAVING count(*) > 800 ORDER BY 2, 1;
EOF
)
sqlite3_session() {
    sqlite3 test.db <<<"$SQL" || return
    sqlite3 :memory: <<<"$SQL"
}

# gcc (and the cc1/as/collect2 it starts) compiling the test sources, and a C++ program
# using the standard containers; the objects must be identical, the program's output too.
gcc_session() {
    local out=$PWD cflags
    read -ra cflags <<<"-O2 -g -Iinclude -Itests $(pkg-config --cflags check)"
    cd "$root" || return 1 # one working directory for both runs: it is in the debug info
    set -e
    gcc "${cflags[@]}" -c tests/test_api.c -o "$out/api.o"
    gcc "${cflags[@]}" -c tests/test_threads.c -o "$out/threads.o"
    gcc "${cflags[@]}" -g0 -c tests/test_death.c -o "$out/death.o"
    cat >"$out/prog.cc" <<'EOF'
#include <cstdio>
#include <map>
#include <string>
#include <vector>
int main()
{
    std::map<std::string, std::vector<int>> m;
    for (int i = 0; i < 200000; i++)
        m["key" + std::to_string(i % 5000)].push_back(i);
    unsigned long sum = 0;
    for (auto &kv : m)
        for (int v : kv.second)
            sum += (unsigned long)v * kv.first.size();
    std::printf("%zu %lu\n", m.size(), sum);
}
EOF
    g++ -O2 -g0 "$out/prog.cc" -o "$out/prog"
    "$out/prog"
    sha256sum <"$out/api.o"
    sha256sum <"$out/threads.o"
    sha256sum <"$out/death.o"
    objdump -d "$out/api.o" | tail -n +3 | sha256sum
}

# redis-server on a free loopback port, driven by redis-benchmark and redis-cli: lists,
# hashes, sorted sets and strings that grow by APPEND (Redis strings use every byte
# malloc_usable_size reports, so realloc must keep them); then the values and DBSIZE are
# read back, and the server is stopped by its pid.
redis_session() {
    local port pid i
    port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --daemonize no \
        --dir "$PWD" --logfile "$PWD/redis.log" &
    pid=$!
    local cli=(redis-cli -h 127.0.0.1 -p "$port")
    for i in $(seq 1 100); do
        "${cli[@]}" ping 2>/dev/null | grep -q PONG && break
        sleep 0.1
    done
    "${cli[@]}" ping || { kill "$pid"; return 1; }
    redis-benchmark -h 127.0.0.1 -p "$port" -q -n 20000 -c 8 -r 5000 -d 100 \
        -t set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,lrange_100 >bench.log 2>&1 ||
        { kill "$pid"; return 1; }
    "${cli[@]}" flushall
    for i in $(seq 1 300); do
        printf 'SET key:%d value-%d\n' "$i" "$((i * i))"
        printf 'LPUSH list:%d item-%d\n' "$((i % 7))" "$i"
        printf 'HSET hash:%d field%d %d\n' "$((i % 11))" "$i" "$((i * 3))"
        printf 'ZADD zset %d member-%d\n' "$((i * 7 % 101))" "$i"
        printf 'APPEND grow:%d %s\n' "$((i % 5))" "$(head -c "$((i % 97 + 1))" /dev/zero | tr '\0' "$((i % 10))")"
    done | "${cli[@]}" >/dev/null
    for i in 1 2 3 4; do "${cli[@]}" lpop "list:$i"; done
    "${cli[@]}" get key:17
    "${cli[@]}" get key:300
    "${cli[@]}" lrange list:3 0 -1 | sha256sum
    "${cli[@]}" hgetall hash:5 | sha256sum
    "${cli[@]}" zrange zset 0 -1 withscores | sha256sum
    for i in 0 1 2 3 4; do
        "${cli[@]}" strlen "grow:$i"
        "${cli[@]}" get "grow:$i" | sha256sum
    done
    "${cli[@]}" dbsize
    kill "$pid"
    wait "$pid"
    grep -q 'Ready to accept connections' redis.log
}

# python3 multiprocessing with fork and threads: pools of forked workers started while
# threads allocate, and threads inside the workers.
python3_multiprocessing() {
    "$PYTHON" - <<'PY'
import multiprocessing as mp, threading, hashlib

def work(n):
    out = []
    def t(k):
        out.append(hashlib.sha256(("x" * (k * 37 % 5000)).encode()).hexdigest())
    ts = [threading.Thread(target=t, args=(n * 10 + k,)) for k in range(4)]
    for x in ts: x.start()
    for x in ts: x.join()
    return sorted(out)

def put_len(q, i):
    q.put(len(work(i)))

def churn(stop):
    while not stop.is_set():
        d = {i: "v" * (i % 300) for i in range(2000)}
        del d

if __name__ == "__main__":
    mp.set_start_method("fork")
    stop = threading.Event()
    bg = [threading.Thread(target=churn, args=(stop,)) for _ in range(2)]
    for b in bg: b.start()
    for rnd in range(5):
        with mp.Pool(4) as pool:
            res = pool.map(work, range(40))
        print(rnd, hashlib.sha256(repr(res).encode()).hexdigest())
    q = mp.Queue()
    ps = [mp.Process(target=put_len, args=(q, i)) for i in range(8)]
    for p in ps: p.start()
    print(sorted(q.get() for _ in ps))
    for p in ps: p.join()
    stop.set()
    for b in bg: b.join()
PY
}

# The preload must really be in effect, or every comparison proves nothing.
if [ "$(LD_PRELOAD=$lib grep -c "$(basename "$lib")" /proc/self/maps 2>&1)" -ge 1 ] 2>/dev/null; then
    pass "preload: $(basename "$lib") is mapped in a preloaded process"
else
    fail "preload: $(basename "$lib") is not mapped under LD_PRELOAD"
    LD_PRELOAD=$lib /bin/true 2>&1 | head -n 5 | sed 's/^/    /'
fi

if "$PYTHON" -c 'import test.libregrtest' 2>/dev/null; then
    compare python3-regrtest python3_regrtest
else
    fail "python3-regrtest: $PYTHON or its test suite is missing (scripts/install-deps.sh)"
fi
compare python3-multiprocessing python3_multiprocessing
for tool in git sqlite3 gcc redis; do
    if command -v "${tool/redis/redis-server}" >/dev/null && { [ "$tool" != gcc ] || command -v g++ >/dev/null; } &&
        { [ "$tool" != redis ] || command -v redis-benchmark >/dev/null; }; then
        compare "$tool" "${tool}_session"
    else
        fail "$tool: not installed (scripts/install-deps.sh)"
    fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
