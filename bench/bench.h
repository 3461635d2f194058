/* bench.h — what every benchmark program shares: arguments, a fast random generator,
 * content patterns that catch an allocator overwriting live blocks, timing, thread helpers.
 *
 * Each benchmark is one binary:  prog [threads] [scale]
 * It runs a fixed amount of work (scale 1.0 is the calibrated default; the work is split
 * between the threads), checks every block it wrote before freeing it, and prints
 * "elapsed_s: <seconds>" on stdout. A content mismatch aborts with a one-line message. */
#ifndef CRTHEAP_BENCH_H
#define CRTHEAP_BENCH_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- arguments ---- */

typedef struct bench_args {
    int threads;   /* worker threads (argv[1]) */
    double scale;  /* multiplies the fixed amount of work (argv[2]) */
} bench_args;

static inline bench_args bench_parse_args(int argc, char **argv, int default_threads)
{
    bench_args args = { default_threads, 1.0 };
    if (argc > 1)
        args.threads = atoi(argv[1]);
    if (argc > 2)
        args.scale = atof(argv[2]);
    if (args.threads < 1 || args.threads > 1024 || !(args.scale > 0)) {
        fprintf(stderr, "usage: %s [threads 1..1024] [scale > 0]\n", argv[0]);
        exit(2);
    }
    return args;
}

/* Total work units for `base` at the given scale, at least 1. */
static inline uint64_t bench_scaled(uint64_t base, double scale)
{
    double n = (double)base * scale;
    return n < 1 ? 1 : (uint64_t)n;
}

/* ---- fatal errors ---- */

#define bench_fail(...)                                                             \
    do {                                                                            \
        fprintf(stderr, "bench: " __VA_ARGS__);                                     \
        fputc('\n', stderr);                                                        \
        abort();                                                                    \
    } while (0)

static inline void *bench_xmalloc(size_t size)
{
    void *p = malloc(size);
    if (p == NULL)
        bench_fail("malloc(%zu) returned NULL", size);
    return p;
}

/* ---- random numbers: xorshift64*, one state per thread ---- */

typedef struct bench_rng {
    uint64_t state;
} bench_rng;

static inline bench_rng bench_rng_seeded(uint64_t seed)
{
    bench_rng rng = { seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull };
    if (rng.state == 0)
        rng.state = 1;
    return rng;
}

static inline uint64_t bench_rng_next(bench_rng *rng)
{
    uint64_t x = rng->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng->state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [lo, hi]. */
static inline size_t bench_rng_range(bench_rng *rng, size_t lo, size_t hi)
{
    return lo + (size_t)(bench_rng_next(rng) % (uint64_t)(hi - lo + 1));
}

/* Roughly log-uniform in [lo, hi]: small sizes are as likely per octave as large ones. */
static inline size_t bench_rng_log_range(bench_rng *rng, size_t lo, size_t hi)
{
    uint64_t r = bench_rng_next(rng);
    int octaves = 0;
    while ((lo << (octaves + 1)) <= hi && octaves < 62)
        octaves++;
    size_t base = lo << (r % (uint64_t)(octaves + 1));
    size_t top = base * 2 - 1 < hi ? base * 2 - 1 : hi;
    return bench_rng_range(rng, base, top);
}

/* ---- content patterns ----
 * A block is stamped with a byte derived from a per-block tag: every byte of the first and
 * last 64 bytes, and the first byte of each 4 KiB stride in between (which also makes every
 * page resident). Checking reads the same bytes back. Neighbouring blocks get different tags,
 * so an allocator that hands out overlapping blocks or writes into a live one is caught. */

enum { PATTERN_EDGE = 64, PATTERN_STRIDE = 4096 };

static inline unsigned char pattern_byte(uint64_t tag)
{
    uint64_t h = (tag + 1) * 0x9E3779B97F4A7C15ull;
    unsigned char b = (unsigned char)(h >> 56);
    return b == 0 ? 0xA5 : b;
}

/* Out of line: inlined, GCC mixes up the size ranges of the two paths and warns. */
static __attribute__((noinline)) void pattern_fill_sparse(unsigned char *p, size_t size,
                                                           unsigned char b)
{
    memset(p, b, PATTERN_EDGE);
    for (size_t off = PATTERN_STRIDE; off < size - PATTERN_EDGE; off += PATTERN_STRIDE)
        p[off] = b;
    memset(p + size - PATTERN_EDGE, b, PATTERN_EDGE);
}

static inline void pattern_fill(void *block, size_t size, uint64_t tag)
{
    unsigned char *p = block, b = pattern_byte(tag);
    if (size <= 2 * PATTERN_EDGE)
        memset(p, b, size);
    else
        pattern_fill_sparse(p, size, b);
}

static inline int pattern_range_ok(const unsigned char *p, size_t n, unsigned char b)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != b)
            return 0;
    return 1;
}

static inline void pattern_check(const void *block, size_t size, uint64_t tag, const char *where)
{
    const unsigned char *p = block;
    unsigned char b = pattern_byte(tag);
    int ok;
    if (size <= 2 * PATTERN_EDGE) {
        ok = pattern_range_ok(p, size, b);
    } else {
        ok = pattern_range_ok(p, PATTERN_EDGE, b) &&
             pattern_range_ok(p + size - PATTERN_EDGE, PATTERN_EDGE, b);
        for (size_t off = PATTERN_STRIDE; ok && off < size - PATTERN_EDGE; off += PATTERN_STRIDE)
            ok = p[off] == b;
    }
    if (!ok)
        bench_fail("%s: block %p of %zu bytes lost its contents (tag %llu)", where, block, size,
                   (unsigned long long)tag);
}

/* ---- timing ---- */

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void bench_report(double start)
{
    printf("elapsed_s: %.6f\n", bench_now() - start);
    fflush(stdout);
}

/* ---- threads ---- */

typedef void *(*bench_thread_fn)(void *);

/* Start `count` threads running fn(arg + i * arg_size) and wait for all of them. */
static inline void bench_run_threads(int count, bench_thread_fn fn, void *args, size_t arg_size)
{
    pthread_t *ids = bench_xmalloc(sizeof *ids * (size_t)count);
    for (int i = 0; i < count; i++)
        if (pthread_create(&ids[i], NULL, fn, (char *)args + (size_t)i * arg_size) != 0)
            bench_fail("pthread_create failed");
    for (int i = 0; i < count; i++)
        pthread_join(ids[i], NULL);
    free(ids);
}

/* One thread's share of a workload: `steps` units of work. */
typedef struct bench_share {
    int id;
    uint64_t steps;
} bench_share;

/* Churn over a working set: fill `working_set` slots with blocks of size_of() bytes, then
 * for each step free a random slot's block (after checking it) and put a new one there;
 * finally check and free them all.  `name` labels a damaged block. */
static inline void bench_churn(const bench_share *w, size_t working_set, uint64_t seed,
                               size_t (*size_of)(bench_rng *), const char *name)
{
    bench_rng rng = bench_rng_seeded(seed);
    void **blocks = bench_xmalloc(sizeof *blocks * working_set);
    size_t *sizes = bench_xmalloc(sizeof *sizes * working_set);
    uint64_t *tags = bench_xmalloc(sizeof *tags * working_set);
    for (size_t i = 0; i < working_set; i++) {
        sizes[i] = size_of(&rng);
        tags[i] = i;
        blocks[i] = bench_xmalloc(sizes[i]);
        pattern_fill(blocks[i], sizes[i], tags[i]);
    }
    for (uint64_t step = 0; step < w->steps; step++) {
        size_t slot = (size_t)(bench_rng_next(&rng) % working_set);
        pattern_check(blocks[slot], sizes[slot], tags[slot], name);
        free(blocks[slot]);
        sizes[slot] = size_of(&rng);
        tags[slot] = step + working_set;
        blocks[slot] = bench_xmalloc(sizes[slot]);
        pattern_fill(blocks[slot], sizes[slot], tags[slot]);
    }
    for (size_t i = 0; i < working_set; i++) {
        pattern_check(blocks[i], sizes[i], tags[i], name);
        free(blocks[i]);
    }
    free(blocks);
    free(sizes);
    free(tags);
}

/* The main() of a workload split evenly over threads: parse the arguments, give each
 * thread its share of base_steps (scaled), run them, report the elapsed time. */
static inline int bench_main_shared(int argc, char **argv, uint64_t base_steps, bench_thread_fn fn)
{
    bench_args args = bench_parse_args(argc, argv, 1);
    uint64_t total = bench_scaled(base_steps, args.scale);
    bench_share *shares = bench_xmalloc(sizeof *shares * (size_t)args.threads);
    for (int i = 0; i < args.threads; i++)
        shares[i] = (bench_share){ i, total / (uint64_t)args.threads };
    double start = bench_now();
    bench_run_threads(args.threads, fn, shares, sizeof *shares);
    bench_report(start);
    free(shares);
    return 0;
}

#endif
