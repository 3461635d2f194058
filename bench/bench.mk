# Benchmarks (included by the top-level Makefile).
#   make bench            install the peers, build crtheap and the benchmarks, run everything:
#                         speed (bench/run.sh), callgrind fast path, trim; writes bench/results/
#   make bench-trim       only the trim benchmark (bench/trim-run.sh)
#   make bench-callgrind  only the instruction count and the cachegrind misses of the fast paths
#   make bench-build      only build the benchmark programs into build/bench/
# BENCH_RUNS=n sets the runs per allocator and workload (default 5).
BENCH_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra $(WERROR) -pthread \
                -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc
BENCH_PROGRAMS := small_churn mixed_sizes larson producer_consumer realloc_growth large_blocks \
                  thread_churn tiny_lists touch_churn bignum malloc_simple malloc_thread rptest \
                  fastpath trim measure
BENCH_BINS := $(addprefix build/bench/,$(BENCH_PROGRAMS))

.PHONY: bench bench-build bench-deps bench-crtheap bench-trim bench-callgrind

build/bench/%: bench/%.c bench/bench.h bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) $< -o $@ -ldl

bench-build: $(BENCH_BINS)

bench-deps:
	bench/install-deps.sh

# crtheap failing to build is recorded in the results, not fatal: the peers still run.
bench-crtheap:
	$(MAKE) build/libcrtheap.so || echo "bench: crtheap did not build; its rows will read 'failed'"

bench: bench-deps bench-build
	$(MAKE) bench-crtheap
	bench/run.sh

bench-trim: bench-deps bench-build
	$(MAKE) bench-crtheap
	bench/trim-run.sh

bench-callgrind: bench-deps bench-build
	$(MAKE) bench-crtheap
	bench/callgrind.sh
	bench/cachegrind.sh
