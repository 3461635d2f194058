/* common.h — helpers shared by the crtheap tests: content patterns and memory probes.
 *
 * Every block a test allocates is stamped with a pattern derived from a key (usually its
 * address and size) and checked before it is freed: the allocator must never write into
 * memory it handed out (SPEC §4). */
#ifndef CRTHEAP_TESTS_COMMON_H
#define CRTHEAP_TESTS_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Check's ck_assert records a checkpoint through a pipe on every call, far too slow for
 * inner loops; these only call into Check when the condition fails. */
#define expect(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)
#define require(cond) expect(cond, "Assertion '%s' failed", #cond)

/* Large blocks are stamped densely for their first bytes, then at this stride (prime,
 * below the page size, so every page is touched and the positions drift across pages). */
#define DENSE_BYTES 512
#define SAMPLE_STRIDE 4093

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static inline uint64_t block_key(const void *p, size_t n)
{
    return mix64((uint64_t)(uintptr_t)p ^ ((uint64_t)n * 0x9e3779b97f4a7c15ull));
}

static inline unsigned char pattern_byte(uint64_t key, size_t i)
{
    return (unsigned char)((key >> ((i & 7) * 8)) ^ i ^ (i >> 8) ^ (i >> 16));
}

/* Write the pattern over every byte of [p, p+n). */
static inline void fill_all(void *p, size_t n, uint64_t key)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = pattern_byte(key, i);
}

/* Offset of the first byte of [p, p+n) that differs from the pattern, or n if none. */
static inline size_t check_all(const void *p, size_t n, uint64_t key)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != pattern_byte(key, i))
            return i;
    return n;
}

/* Whether every byte of [p, p+n) is zero. */
static inline int is_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

/* Sampled stamping for blocks too big to write in full in a stress loop: the first
 * DENSE_BYTES, every SAMPLE_STRIDE-th byte after that, and the last byte. */
static inline void fill_sampled(void *p, size_t n, uint64_t key)
{
    unsigned char *b = p;
    size_t i;
    for (i = 0; i < n && i < DENSE_BYTES; i++)
        b[i] = pattern_byte(key, i);
    for (; i < n; i += SAMPLE_STRIDE)
        b[i] = pattern_byte(key, i);
    if (n)
        b[n - 1] = pattern_byte(key, n - 1);
}

/* Check the positions fill_sampled(p, n, key) wrote that lie below limit (a realloc keeps
 * only the smaller size). Returns the first bad offset, or n if all match. */
static inline size_t check_sampled(const void *p, size_t n, uint64_t key, size_t limit)
{
    const unsigned char *b = p;
    size_t i;
    for (i = 0; i < n && i < DENSE_BYTES && i < limit; i++)
        if (b[i] != pattern_byte(key, i))
            return i;
    for (i = DENSE_BYTES; i < n && i < limit; i += SAMPLE_STRIDE)
        if (b[i] != pattern_byte(key, i))
            return i;
    if (n && n - 1 < limit && b[n - 1] != pattern_byte(key, n - 1))
        return n - 1;
    return n;
}

/* Resident set size of this process in bytes (from /proc/self/statm), 0 if unknown. */
static inline size_t rss_bytes(void)
{
    unsigned long total = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &total, &resident) != 2)
        resident = 0;
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* The OS pages wholly inside [p, p + n) that are resident (mincore), and in *pages how
 * many lie there; aborts where mincore refuses the range (the test's own error). */
static inline size_t resident_inner_pages(const void *p, size_t n, size_t *pages)
{
    uintptr_t lo = ((uintptr_t)p + 4095) & ~(uintptr_t)4095, hi = ((uintptr_t)p + n) & ~(uintptr_t)4095;
    size_t resident = 0;
    *pages = hi > lo ? (hi - lo) / 4096 : 0;
    for (uintptr_t a = lo; a < hi;) {
        unsigned char vec[256];
        size_t chunk = (hi - a) / 4096 < sizeof vec ? (hi - a) / 4096 : sizeof vec;
        if (mincore((void *)a, chunk * 4096, vec) != 0) {
            perror("mincore");
            abort();
        }
        for (size_t i = 0; i < chunk; i++)
            resident += vec[i] & 1;
        a += chunk * 4096;
    }
    return resident;
}

/* Virtual size of this process in bytes (from /proc/self/statm), 0 if unknown. */
static inline size_t vm_bytes(void)
{
    unsigned long total = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%lu", &total) != 1)
        total = 0;
    fclose(f);
    return (size_t)total * (size_t)sysconf(_SC_PAGESIZE);
}

/* xorshift64*: a cheap per-thread random source. */
static inline uint64_t rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

#endif /* CRTHEAP_TESTS_COMMON_H */
