/* test_api.c — the standard allocation API (SPEC §1.1) and its error paths (SPEC §4).
 *
 * Only standard C, POSIX and glibc names are used, so the same file runs against the
 * system allocator (build it without -lcrtheap) as a check of the tests themselves. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/* C23 names that glibc 2.36 lacks: weak, so the glibc build links and reports them missing. */
void free_sized(void *block, size_t size) __attribute__((weak));
void free_aligned_sized(void *block, size_t alignment, size_t size) __attribute__((weak));

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define MAX_POW2_SHIFT 26 /* sizes up to 64 MiB */

/* Hide a constant from the compiler so it neither folds nor warns about huge requests. */
static size_t opaque(size_t n)
{
    volatile size_t v = n;
    return v;
}

static void *opaque_ptr(void *p)
{
    void *volatile v = p;
    return v;
}

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* Stamp n bytes at p with a key derived from p and n; check them; free. */
static void fill_check_free(void *p, size_t n)
{
    expect(p != NULL, "allocation of %zu bytes failed", n);
    uint64_t key = block_key(p, n);
    fill_all(p, n, key);
    size_t bad = check_all(p, n, key);
    expect(bad == n, "block %p size %zu corrupted at offset %zu", p, n, bad);
    free(p);
}

static void check_block(const void *p, size_t n)
{
    size_t bad = check_all(p, n, block_key(p, n));
    expect(bad == n, "block %p size %zu corrupted at offset %zu", p, n, bad);
}

/* Sizes 2^k - 1, 2^k, 2^k + 1 for k = 0..MAX_POW2_SHIFT, ascending, duplicates removed. */
static size_t pow2_sizes(size_t *out)
{
    size_t count = 0;
    for (int k = 0; k <= MAX_POW2_SHIFT; k++) {
        size_t p = (size_t)1 << k;
        size_t cand[3] = {p - 1, p, p + 1};
        for (int i = 0; i < 3; i++)
            if (cand[i] > 0 && (count == 0 || cand[i] > out[count - 1]))
                out[count++] = cand[i];
    }
    return count;
}

/* ---- malloc ---- */

START_TEST(t_malloc_zero_unique)
{
    enum { N = 2000 };
    static void *ptrs[N];
    for (int i = 0; i < N; i++) {
        ptrs[i] = malloc(opaque(0));
        expect(ptrs[i] != NULL, "malloc(0) returned NULL");
    }
    /* Sort-free uniqueness check: every pointer must differ from every other. */
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            expect(ptrs[i] != ptrs[j], "malloc(0) returned %p twice", ptrs[i]);
    for (int i = 0; i < N; i++)
        free(ptrs[i]);
}
END_TEST

START_TEST(t_malloc_too_big)
{
    const size_t sizes[] = {
        SIZE_MAX,
        SIZE_MAX - 1,
        SIZE_MAX - 4095,
        SIZE_MAX - (1u << 20),
        SIZE_MAX / 2 + 1,
        (size_t)PTRDIFF_MAX + 1,
        (size_t)PTRDIFF_MAX,
        (size_t)1 << 62,
        (size_t)1 << 50,
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        errno = 0;
        void *p = malloc(opaque(sizes[i]));
        expect(p == NULL, "malloc(%#zx) returned %p", sizes[i], p);
        expect(errno == ENOMEM, "malloc(%#zx): errno %d, want ENOMEM", sizes[i], errno);
    }
    /* The heap is still usable afterwards. */
    fill_check_free(malloc(100), 100);
}
END_TEST

/* Every size 0..4096, all live at once (overlapping blocks would clobber each other). */
START_TEST(t_malloc_every_small_size)
{
    enum { MAXN = 4096 };
    static void *ptrs[MAXN + 1];
    for (size_t n = 0; n <= MAXN; n++) {
        ptrs[n] = malloc(n);
        expect(ptrs[n] != NULL, "malloc(%zu) failed", n);
        expect((uintptr_t)ptrs[n] % _Alignof(max_align_t) == 0 || n < _Alignof(max_align_t),
               "malloc(%zu) = %p not aligned for max_align_t", n, ptrs[n]);
        fill_all(ptrs[n], n, block_key(ptrs[n], n));
    }
    for (size_t n = 0; n <= MAXN; n++)
        check_block(ptrs[n], n);
    /* Free odd sizes first, then reallocate them, to exercise reuse next to live blocks. */
    for (size_t n = 1; n <= MAXN; n += 2)
        free(ptrs[n]);
    for (size_t n = 1; n <= MAXN; n += 2) {
        ptrs[n] = malloc(n);
        expect(ptrs[n] != NULL, "malloc(%zu) failed", n);
        fill_all(ptrs[n], n, block_key(ptrs[n], n));
    }
    for (size_t n = 0; n <= MAXN; n++) {
        check_block(ptrs[n], n);
        free(ptrs[n]);
    }
}
END_TEST

START_TEST(t_malloc_pow2_sizes)
{
    size_t sizes[3 * (MAX_POW2_SHIFT + 1)];
    size_t count = pow2_sizes(sizes);
    /* Three neighbouring sizes live together, written in full, checked, then freed. */
    for (size_t i = 0; i + 2 < count; i += 3) {
        void *p[3];
        for (int j = 0; j < 3; j++) {
            p[j] = malloc(sizes[i + j]);
            expect(p[j] != NULL, "malloc(%zu) failed", sizes[i + j]);
            fill_all(p[j], sizes[i + j], block_key(p[j], sizes[i + j]));
        }
        for (int j = 0; j < 3; j++) {
            check_block(p[j], sizes[i + j]);
            free(p[j]);
        }
    }
}
END_TEST

/* Many blocks of mixed sizes live at once, freed in an interleaved order. */
START_TEST(t_malloc_mixed_live)
{
    enum { N = 20000 };
    static void *ptrs[N];
    static size_t lens[N];
    uint64_t rng = 0x12345;
    for (int i = 0; i < N; i++) {
        uint64_t r = rng_next(&rng);
        lens[i] = (r & 7) == 0 ? r % (256 * KiB) : r % 512;
        ptrs[i] = malloc(lens[i]);
        expect(ptrs[i] != NULL, "malloc(%zu) failed", lens[i]);
        fill_sampled(ptrs[i], lens[i], block_key(ptrs[i], lens[i]));
    }
    for (int pass = 0; pass < 3; pass++)
        for (int i = pass; i < N; i += 3) {
            size_t bad = check_sampled(ptrs[i], lens[i], block_key(ptrs[i], lens[i]), lens[i]);
            expect(bad == lens[i], "block %p size %zu corrupted at %zu", ptrs[i], lens[i], bad);
            free(ptrs[i]);
        }
}
END_TEST

/* ---- calloc ---- */

START_TEST(t_calloc_overflow)
{
    const size_t pairs[][2] = {
        {SIZE_MAX, SIZE_MAX},
        {SIZE_MAX / 2 + 1, 2},
        {2, SIZE_MAX / 2 + 1},
        {(size_t)1 << 32, (size_t)1 << 32},
        {SIZE_MAX, 2},
        {3, SIZE_MAX / 3 + 1},
        {(size_t)PTRDIFF_MAX, 2},
        {(size_t)1 << 40, (size_t)1 << 30},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        errno = 0;
        void *p = calloc(opaque(pairs[i][0]), opaque(pairs[i][1]));
        expect(p == NULL, "calloc(%#zx, %#zx) returned %p", pairs[i][0], pairs[i][1], p);
        expect(errno == ENOMEM, "calloc(%#zx, %#zx): errno %d, want ENOMEM", pairs[i][0],
               pairs[i][1], errno);
    }
    /* Too big without overflowing. */
    errno = 0;
    require(calloc(opaque(1), opaque(SIZE_MAX)) == NULL);
    ck_assert_int_eq(errno, ENOMEM);
}
END_TEST

START_TEST(t_calloc_zero_counts)
{
    void *a = calloc(0, 16), *b = calloc(16, 0), *c = calloc(0, 0);
    require(a != NULL && b != NULL && c != NULL);
    require(a != b && b != c && a != c);
    free(a);
    free(b);
    free(c);
}
END_TEST

/* calloc must hand back zeros even when it reuses memory the program dirtied. */
START_TEST(t_calloc_zeroes_reused)
{
    const size_t sizes[] = {1,    8,     16,     24,        100, 512,          1000,    4096,
                            5000, 65536, 100000, 256 * KiB, MiB, 4 * MiB + 17, 32 * MiB};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        int rounds = n >= MiB ? 8 : 50;
        for (int r = 0; r < rounds; r++) {
            unsigned char *p = malloc(n);
            require(p != NULL);
            memset(p, 0xAA, n);
            free(p);
            unsigned char *q = calloc(1, n);
            expect(q != NULL, "calloc(1, %zu) failed", n);
            expect(is_zero(q, n), "calloc(1, %zu) returned dirty memory", n);
            size_t u = malloc_usable_size(q);
            memset(q, 0xAA, u);
            free(q);
        }
    }
}
END_TEST

static int all_bytes(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

/* calloc of a reused large or huge block whose last user touched only a few pages (it is
 * zeroed by giving those pages back) or all of them (cleared in place), and of a huge
 * block bigger than the cached one (a new mapping after it cooled): zero each time,
 * the partial OS pages at the ends included. */
START_TEST(t_calloc_zeroes_sparse_and_bigger)
{
    const size_t sizes[] = {200 * KiB + 5, 256 * KiB, MiB + 3, 3 * MiB, 6 * MiB + 100, 9 * MiB, 17 * MiB + 1};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        for (int sparse = 0; sparse < 2; sparse++) {
            unsigned char *p = malloc(n);
            require(p != NULL);
            if (sparse) {   /* first and last bytes, and one page in the middle */
                memset(p, 0xAA, 64);
                memset(p + n / 2, 0xAA, 4096);
                memset(p + n - 64, 0xAA, 64);
            } else {
                memset(p, 0xAA, n);
            }
            free(p);
            unsigned char *q = calloc(1, n);
            expect(q != NULL, "calloc(1, %zu) failed", n);
            expect(is_zero(q, n), "calloc(1, %zu) after a %s use returned dirty memory", n, sparse ? "sparse" : "full");
            memset(q, 0x55, n);
            free(q);
            /* a bigger huge block next: a new mapping after the cached one cooled */
            size_t bigger = n + 2 * MiB;
            q = calloc(1, bigger);
            require(q != NULL);
            expect(is_zero(q, bigger), "calloc(1, %zu) after a smaller cached block returned dirty memory", bigger);
            memset(q, 0x66, bigger);
            size_t beside = opaque(n);
            unsigned char *r = malloc(beside);   /* and a live block beside it stays intact */
            require(r != NULL);
            memset(r, 0x77, beside);
            expect(all_bytes(q, bigger, 0x66) && all_bytes(r, beside, 0x77), "blocks of %zu bytes changed", n);
            free(r);
            free(q);
        }
    }
}
END_TEST

/* Dirty a whole batch of blocks, free them all, calloc the batch back. */
START_TEST(t_calloc_zeroes_batch)
{
    enum { N = 3000 };
    static unsigned char *p[N];
    const size_t sizes[] = {16, 48, 128, 1024, 3000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        for (int i = 0; i < N; i++) {
            p[i] = malloc(n);
            require(p[i] != NULL);
            memset(p[i], 0xAA, malloc_usable_size(p[i]));
        }
        for (int i = 0; i < N; i++)
            free(p[i]);
        for (int i = 0; i < N; i++) {
            p[i] = calloc(n / 8, 8);
            require(p[i] != NULL);
            expect(is_zero(p[i], n), "calloc(%zu, 8) #%d returned dirty memory", n / 8, i);
            memset(p[i], 0x55, n);
        }
        for (int i = 0; i < N; i++)
            free(p[i]);
    }
}
END_TEST

/* ---- realloc, reallocarray ---- */

static void fill_range(unsigned char *p, size_t from, size_t to, uint64_t key)
{
    for (size_t i = from; i < to; i++)
        p[i] = pattern_byte(key, i);
}

START_TEST(t_realloc_null_is_malloc)
{
    const size_t sizes[] = {0, 1, 100, 4096, MiB, 16 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = realloc(NULL, sizes[i]);
        expect(p != NULL, "realloc(NULL, %zu) failed", sizes[i]);
        require(malloc_usable_size(p) >= sizes[i]);
        fill_check_free(p, sizes[i]);
    }
}
END_TEST

START_TEST(t_realloc_zero_frees)
{
    const size_t sizes[] = {1, 100, 4096, MiB, 16 * MiB};
    for (int round = 0; round < 100; round++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *p = malloc(sizes[i]);
            require(p != NULL);
            memset(p, 7, sizes[i]);
            require(realloc(p, 0) == NULL);
        }
    fill_check_free(malloc(64), 64);
}
END_TEST

/* Grow from 1 byte to 64 MiB and shrink back, with neighbours allocated in between so the
 * block has to move sometimes; the contents up to the smaller size must survive. */
START_TEST(t_realloc_grow_shrink)
{
    enum { KEEP = 64 };
    size_t sizes[3 * (MAX_POW2_SHIFT + 1)];
    size_t count = pow2_sizes(sizes);
    void *others[KEEP] = {0};
    const uint64_t key = 0xfeedface;
    size_t cur = sizes[0];
    unsigned char *p = malloc(cur);
    require(p != NULL);
    fill_range(p, 0, cur, key);
    for (size_t step = 1; step < 2 * count - 1; step++) {
        size_t i = step < count ? step : 2 * count - 2 - step;
        size_t next = sizes[i];
        p = realloc(p, next);
        expect(p != NULL, "realloc to %zu failed", next);
        size_t keep = cur < next ? cur : next;
        size_t bad = check_all(p, keep, key);
        expect(bad == keep, "realloc %zu -> %zu lost byte %zu", cur, next, bad);
        fill_range(p, keep, next, key);
        cur = next;
        /* A small neighbour, sometimes freed, makes in-place growth fail now and then. */
        size_t slot = step % KEEP;
        free(others[slot]);
        others[slot] = malloc(step % 200 + 1);
        require(others[slot] != NULL);
    }
    require(check_all(p, cur, key) == cur);
    free(p);
    for (int i = 0; i < KEEP; i++)
        free(others[i]);
}
END_TEST

/* Byte-by-byte growth through the small classes, the common string-builder pattern. */
START_TEST(t_realloc_by_one)
{
    const uint64_t key = 42;
    unsigned char *p = NULL;
    for (size_t n = 1; n <= 20000; n++) {
        p = realloc(p, n);
        expect(p != NULL, "realloc to %zu failed", n);
        expect(n == 1 || check_all(p, n - 1, key) == n - 1, "realloc to %zu lost data", n);
        p[n - 1] = pattern_byte(key, n - 1);
    }
    for (size_t n = 20000; n >= 1; n -= 7) {
        p = realloc(p, n);
        require(p != NULL);
        expect(check_all(p, n, key) == n, "shrink to %zu lost data", n);
        if (n < 8)
            break;
    }
    free(p);
}
END_TEST

/* Shrink one byte at a time, then grow back: every in-place resize across the size
 * classes must keep the block and its bookkeeping right. */
START_TEST(t_realloc_shrink_grow)
{
    const size_t starts[] = {600, 2100, 5000, 70000};
    const uint64_t key = 77;
    for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
        size_t top = starts[s], step = top > 10000 ? 97 : 1;
        unsigned char *p = malloc(top);
        require(p != NULL);
        fill_range(p, 0, top, key);
        size_t n = top;
        for (; n > step; n -= step) {
            p = realloc(p, n - step);
            expect(p != NULL, "realloc down to %zu failed", n - step);
            expect(check_all(p, n - step, key) == n - step, "shrink %zu -> %zu lost data", n,
                   n - step);
        }
        for (; n + step <= top; n += step) {
            p = realloc(p, n + step);
            expect(p != NULL, "realloc up to %zu failed", n + step);
            expect(check_all(p, n, key) == n, "grow %zu -> %zu lost data", n, n + step);
            fill_range(p, n, n + step, key);
        }
        free(p);
    }
}
END_TEST

/* realloc of blocks from the aligned allocators keeps their contents. */
START_TEST(t_realloc_aligned)
{
    for (size_t a = 16; a <= 4 * MiB; a *= 4) {
        const size_t sizes[] = {1, 100, 5000, 300000};
        for (size_t i = 0; i < 4; i++)
            for (size_t j = 0; j < 4; j++) {
                size_t n = sizes[i], m = sizes[j], keep = n < m ? n : m;
                unsigned char *p = aligned_alloc(a, n);
                expect(p != NULL && (uintptr_t)p % a == 0, "aligned_alloc(%zu, %zu) = %p", a, n,
                       (void *)p);
                fill_all(p, n, 5);
                p = realloc(p, m);
                expect(p != NULL, "realloc of an aligned block to %zu failed", m);
                expect(check_all(p, keep, 5) == keep,
                       "realloc(aligned_alloc(%zu, %zu), %zu) lost data", a, n, m);
                fill_check_free(p, m);
            }
    }
}
END_TEST

START_TEST(t_realloc_failure_keeps_block)
{
    const size_t sizes[] = {10, 1000, MiB, 8 * MiB};
    const size_t huge[] = {SIZE_MAX, SIZE_MAX - 4096, (size_t)PTRDIFF_MAX + 1, (size_t)1 << 50};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (size_t j = 0; j < sizeof huge / sizeof huge[0]; j++) {
            void *p = malloc(sizes[i]);
            require(p != NULL);
            fill_all(p, sizes[i], block_key(p, sizes[i]));
            errno = 0;
            void *q = realloc(p, opaque(huge[j]));
            expect(q == NULL, "realloc(%zu -> %#zx) returned %p", sizes[i], huge[j], q);
            ck_assert_int_eq(errno, ENOMEM);
            check_block(p, sizes[i]);
            free(p);
        }
}
END_TEST

START_TEST(t_reallocarray)
{
    unsigned char *p = reallocarray(NULL, 10, 10);
    require(p != NULL);
    fill_all(p, 100, 9);
    p = reallocarray(p, 1000, 8);
    require(p != NULL);
    require(check_all(p, 100, 9) == 100);
    fill_all(p, 8000, 9);
    const size_t pairs[][2] = {
        {SIZE_MAX, 2},
        {SIZE_MAX / 2 + 1, 2},
        {(size_t)1 << 33, (size_t)1 << 33},
        {3, SIZE_MAX / 2},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        errno = 0;
        void *q = reallocarray(p, opaque(pairs[i][0]), opaque(pairs[i][1]));
        expect(q == NULL, "reallocarray(p, %#zx, %#zx) returned %p", pairs[i][0], pairs[i][1], q);
        ck_assert_int_eq(errno, ENOMEM);
        expect(check_all(p, 8000, 9) == 8000, "failed reallocarray damaged the block");
    }
    errno = 0;
    require(reallocarray(NULL, opaque(SIZE_MAX), opaque(SIZE_MAX)) == NULL);
    ck_assert_int_eq(errno, ENOMEM);
    free(p);
}
END_TEST

/* ---- aligned allocation ---- */

typedef void *(*align_fn)(size_t alignment, size_t size);

static void *via_posix_memalign(size_t alignment, size_t size)
{
    void *p = NULL;
    int rc = posix_memalign(&p, alignment, size);
    expect(rc == 0, "posix_memalign(%zu, %zu) = %d", alignment, size, rc);
    return p;
}

static void check_aligned_family(align_fn fn, const char *name)
{
    for (size_t a = 8; a <= 4 * MiB; a *= 2) {
        const size_t sizes[] = {1, 24, a, a + 1, 3 * a, 100000};
        void *p[6];
        for (int i = 0; i < 6; i++) {
            p[i] = fn(a, sizes[i]);
            expect(p[i] != NULL, "%s(%zu, %zu) failed", name, a, sizes[i]);
            expect((uintptr_t)p[i] % a == 0, "%s(%zu, %zu) = %p misaligned", name, a, sizes[i],
                   p[i]);
            require(malloc_usable_size(p[i]) >= sizes[i]);
            fill_all(p[i], sizes[i], block_key(p[i], sizes[i]));
        }
        for (int i = 0; i < 6; i++) {
            check_block(p[i], sizes[i]);
            free(p[i]);
        }
    }
}

START_TEST(t_aligned_alloc)
{
    check_aligned_family(aligned_alloc, "aligned_alloc");
}
END_TEST

START_TEST(t_posix_memalign)
{
    check_aligned_family(via_posix_memalign, "posix_memalign");
}
END_TEST

START_TEST(t_memalign)
{
    check_aligned_family(memalign, "memalign");
}
END_TEST

/* Alignments that are not powers of two. */
static const size_t bad_alignments[] = {0, 3, 5, 6, 12, 24, 48, 100, 4097, 3 * 4096, SIZE_MAX};

START_TEST(t_aligned_alloc_bad_alignment)
{
    for (size_t i = 0; i < sizeof bad_alignments / sizeof bad_alignments[0]; i++) {
        errno = 0;
        void *p = aligned_alloc(opaque(bad_alignments[i]), 64);
        expect(p == NULL, "aligned_alloc(%zu, 64) returned %p", bad_alignments[i], p);
        expect(errno == EINVAL, "aligned_alloc(%zu, 64): errno %d, want EINVAL", bad_alignments[i],
               errno);
    }
}
END_TEST

START_TEST(t_posix_memalign_bad_alignment)
{
    /* Besides non-powers of two: powers of two below sizeof(void *). */
    const size_t extra[] = {1, 2, 4};
    void *const sentinel = (void *)(uintptr_t)0x5a5a5a5a;
    for (size_t i = 0; i < sizeof bad_alignments / sizeof bad_alignments[0] + 3; i++) {
        size_t a = i < 3 ? extra[i] : bad_alignments[i - 3];
        if (a >= sizeof(void *) && (a & (a - 1)) == 0)
            continue;
        void *p = sentinel;
        int rc = posix_memalign(&p, opaque(a), 64);
        expect(rc == EINVAL, "posix_memalign(%zu) = %d, want EINVAL", a, rc);
        expect(p == sentinel, "posix_memalign(%zu) changed *p on failure", a);
    }
}
END_TEST

/* glibc's memalign rounds a bad alignment up to a power of two; EINVAL is also allowed. */
START_TEST(t_memalign_bad_alignment)
{
    for (size_t i = 0; i < sizeof bad_alignments / sizeof bad_alignments[0]; i++) {
        size_t a = bad_alignments[i];
        if (a > 4 * MiB)
            continue;
        errno = 0;
        void *p = memalign(opaque(a), 64);
        if (p == NULL) {
            expect(errno == EINVAL, "memalign(%zu): NULL with errno %d", a, errno);
            continue;
        }
        size_t want = 1;
        while (want < a)
            want *= 2;
        expect((uintptr_t)p % want == 0, "memalign(%zu) = %p not aligned to %zu", a, p, want);
        fill_check_free(p, 64);
    }
}
END_TEST

START_TEST(t_aligned_too_big)
{
    const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 4096, SIZE_MAX - 5 * MiB, (size_t)PTRDIFF_MAX + 1};
    const size_t aligns[] = {16, 4096, 4 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (size_t j = 0; j < sizeof aligns / sizeof aligns[0]; j++) {
            size_t n = opaque(sizes[i]), a = aligns[j];
            errno = 0;
            expect(aligned_alloc(a, n) == NULL, "aligned_alloc(%zu, %#zx) succeeded", a, n);
            ck_assert_int_eq(errno, ENOMEM);
            errno = 0;
            expect(memalign(a, n) == NULL, "memalign(%zu, %#zx) succeeded", a, n);
            ck_assert_int_eq(errno, ENOMEM);
            void *p = &p;
            ck_assert_int_eq(posix_memalign(&p, a, n), ENOMEM);
            expect(p == (void *)&p, "posix_memalign changed *p on failure");
        }
    /* An alignment no address space can satisfy. */
    errno = 0;
    void *p = aligned_alloc(opaque((size_t)1 << 62), 64);
    require(p == NULL);
    require(errno == ENOMEM || errno == EINVAL);
}
END_TEST

START_TEST(t_valloc)
{
    size_t page = page_size();
    const size_t sizes[] = {0, 1, 100, page - 1, page, page + 1, 10 * page + 3, MiB, 8 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = valloc(sizes[i]);
        expect(p != NULL, "valloc(%zu) failed", sizes[i]);
        expect((uintptr_t)p % page == 0, "valloc(%zu) = %p not page aligned", sizes[i], p);
        fill_check_free(p, sizes[i]);
    }
}
END_TEST

START_TEST(t_pvalloc)
{
    size_t page = page_size();
    const size_t sizes[] = {0, 1, 100, page - 1, page, page + 1, 3 * page + 5, MiB + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        size_t rounded = (n + page - 1) / page * page; /* glibc: pvalloc(0) may be 0 bytes */
        void *p = pvalloc(n);
        expect(p != NULL, "pvalloc(%zu) failed", n);
        expect((uintptr_t)p % page == 0, "pvalloc(%zu) = %p not page aligned", n, p);
        expect(malloc_usable_size(p) >= rounded, "pvalloc(%zu): usable %zu < %zu", n,
               malloc_usable_size(p), rounded);
        fill_check_free(p, rounded); /* the whole rounded size is the caller's */
    }
    errno = 0;
    require(pvalloc(opaque(SIZE_MAX - 10)) == NULL);
    ck_assert_int_eq(errno, ENOMEM);
}
END_TEST

/* ---- malloc_usable_size, free, free_sized ---- */

START_TEST(t_usable_size)
{
    ck_assert_uint_eq(malloc_usable_size(NULL), 0);
    size_t sizes[3 * (MAX_POW2_SHIFT + 1)];
    size_t count = pow2_sizes(sizes);
    for (size_t n = 0; n <= 4096 + count; n++) {
        size_t want = n <= 4096 ? n : sizes[n - 4097];
        void *p = malloc(want);
        require(p != NULL);
        size_t u = malloc_usable_size(p);
        expect(u >= want, "malloc_usable_size(malloc(%zu)) = %zu", want, u);
        fill_check_free(p, u); /* writable all the way up to the usable size */
    }
    void *q = aligned_alloc(4096, 100);
    require(q != NULL);
    require(malloc_usable_size(q) >= 100);
    fill_check_free(q, malloc_usable_size(q));
}
END_TEST

START_TEST(t_free_null)
{
    for (int i = 0; i < 1000; i++)
        free(opaque_ptr(NULL));
    fill_check_free(malloc(32), 32);
}
END_TEST

START_TEST(t_free_sized)
{
    expect(free_sized != NULL, "free_sized is not exported");
    expect(free_aligned_sized != NULL, "free_aligned_sized is not exported");
    const size_t sizes[] = {0, 1, 17, 100, 4096, 70000, MiB, 20 * MiB};
    for (int round = 0; round < 20; round++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            void *p = malloc(n);
            require(p != NULL);
            fill_all(p, n, block_key(p, n));
            check_block(p, n);
            free_sized(p, n);

            size_t a = (size_t)16 << (round % 10);
            size_t an = (n + a - 1) / a * a; /* C23 wants a multiple of the alignment */
            void *q = aligned_alloc(a, an);
            require(q != NULL && (uintptr_t)q % a == 0);
            fill_all(q, an, block_key(q, an));
            check_block(q, an);
            free_aligned_sized(q, a, an);
        }
    free_sized(NULL, 0);
    free_aligned_sized(NULL, 64, 0);
    fill_check_free(malloc(64), 64);
}
END_TEST

/* ---- glibc extensions ---- */

START_TEST(t_malloc_trim)
{
    enum { N = 16384 };
    static void *p[N];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            p[i] = malloc(4000);
            require(p[i] != NULL);
            memset(p[i], 0x11, 4000);
        }
        void *big = malloc(48 * MiB);
        require(big != NULL);
        memset(big, 0x22, 48 * MiB);
        for (int i = 0; i < N; i += 1 + round)
            free(p[i]);
        free(big);
        int rc = malloc_trim(round == 1 ? MiB : 0);
        expect(rc == 0 || rc == 1, "malloc_trim returned %d", rc);
        for (int i = 1; i < N; i++)
            if (i % (1 + round)) {
                const unsigned char *b = p[i];
                expect(b[0] == 0x11 && b[3999] == 0x11, "malloc_trim damaged a live block");
                free(p[i]);
            }
    }
    int rc = malloc_trim(0);
    require(rc == 0 || rc == 1);
    fill_check_free(malloc(1000), 1000);
}
END_TEST

/* malloc_trim does _heapmin's work: after everything small is freed, RSS comes back down. */
START_TEST(t_malloc_trim_releases)
{
    enum { N = 65536 };
    static void *p[N];
    size_t before = rss_bytes();
    uint64_t rng = 3;
    for (int i = 0; i < N; i++) {
        size_t n = 512 + rng_next(&rng) % 3584; /* ~150 MiB in all */
        p[i] = malloc(n);
        require(p[i] != NULL);
        memset(p[i], 0x33, n);
    }
    size_t peak = rss_bytes();
    for (int i = 0; i < N; i++)
        free(p[i]);
    int rc = malloc_trim(0);
    expect(rc == 0 || rc == 1, "malloc_trim returned %d", rc);
    size_t after = rss_bytes();
    expect(after < before + 24 * MiB,
           "RSS %zu MiB before, %zu MiB at the peak, %zu MiB after free and malloc_trim",
           before / MiB, peak / MiB, after / MiB);
}
END_TEST

START_TEST(t_mallinfo2)
{
    enum { N = 4096 };
    static void *p[N];
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < N; i++) {
        p[i] = malloc(KiB);
        require(p[i] != NULL);
        memset(p[i], 1, KiB);
    }
    void *big = malloc(32 * MiB);
    require(big != NULL);
    memset(big, 2, 32 * MiB);
    struct mallinfo2 mid = mallinfo2();
    /* glibc counts a block mapped on its own in hblkhd, not uordblks: accept either. */
    expect(mid.uordblks >= before.uordblks + 4 * MiB - 64 * KiB,
           "uordblks %zu -> %zu after 4 MiB of 1 KiB blocks", before.uordblks, mid.uordblks);
    expect(mid.uordblks + mid.hblkhd >= before.uordblks + before.hblkhd + 36 * MiB - 64 * KiB,
           "uordblks+hblkhd %zu -> %zu after 36 MiB", before.uordblks + before.hblkhd,
           mid.uordblks + mid.hblkhd);
    expect(mid.uordblks <= mid.arena + mid.hblkhd, "uordblks %zu > arena %zu + hblkhd %zu",
           mid.uordblks, mid.arena, mid.hblkhd);
    for (int i = 0; i < N; i++)
        free(p[i]);
    free(big);
    struct mallinfo2 after = mallinfo2();
    /* hblkhd counts blocks *in use* that are mapped on their own (glibc's meaning). */
    expect(after.uordblks + after.hblkhd + 30 * MiB <= mid.uordblks + mid.hblkhd,
           "in-use bytes did not drop after freeing 36 MiB: uordblks %zu -> %zu, "
           "hblkhd %zu -> %zu",
           mid.uordblks, after.uordblks, mid.hblkhd, after.hblkhd);
}
END_TEST

START_TEST(t_mallinfo)
{
    enum { N = 4096 };
    static void *p[N];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo before = mallinfo();
    for (int i = 0; i < N; i++) {
        p[i] = malloc(KiB);
        require(p[i] != NULL);
        memset(p[i], 1, KiB);
    }
    struct mallinfo mid = mallinfo();
#pragma GCC diagnostic pop
    require(mid.arena >= 0 && mid.uordblks >= 0 && mid.fordblks >= 0 && mid.hblkhd >= 0);
    expect(mid.uordblks >= before.uordblks + (int)(4 * MiB - 64 * KiB),
           "uordblks %d -> %d after 4 MiB of 1 KiB blocks", before.uordblks, mid.uordblks);
    for (int i = 0; i < N; i++)
        free(p[i]);
}
END_TEST

/* Run fn with stderr redirected to a temporary file; return what it wrote (malloc'd). */
static char *capture_stderr(void (*fn)(void))
{
    FILE *tmp = tmpfile();
    require(tmp != NULL);
    fflush(stderr);
    int saved = dup(2);
    require(saved >= 0);
    dup2(fileno(tmp), 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t len = lseek(fileno(tmp), 0, SEEK_END); /* written through fd 2, not the FILE */
    char *text = calloc(1, (size_t)(len > 0 ? len : 0) + 1);
    require(text != NULL);
    if (len > 0) {
        require(pread(fileno(tmp), text, (size_t)len, 0) == (ssize_t)len);
    }
    fclose(tmp);
    return text;
}

START_TEST(t_malloc_stats)
{
    void *p = malloc(12345);
    require(p != NULL);
    char *text = capture_stderr(malloc_stats);
    /* glibc's shape: "system bytes" and "in use bytes" for the arena and in total */
    const char *arena = strstr(text, "Arena 0:");
    const char *total = strstr(text, "Total (incl. mmap):");
    expect(arena && total && strstr(text, "max mmap regions"), "malloc_stats printed: \"%s\"", text);
    unsigned long system_bytes = 0, in_use = 0;
    expect(sscanf(total, "Total (incl. mmap):\nsystem bytes = %lu\nin use bytes = %lu", &system_bytes, &in_use) == 2,
           "no figures after the total line: \"%s\"", total);
    expect(in_use >= 12345 && system_bytes >= in_use, "malloc_stats: system %lu, in use %lu with 12345 bytes live",
           system_bytes, in_use);
    free(text);
    fill_check_free(p, 12345);
}
END_TEST

START_TEST(t_malloc_info)
{
    void *p = malloc(5000);
    require(p != NULL);
    static void *q[400];   /* free blocks to report: every other one of 400 */
    for (int i = 0; i < 400; i++) {
        q[i] = malloc(100);
        require(q[i] != NULL);
        memset(q[i], 7, 100);
    }
    for (int i = 0; i < 400; i += 2)
        free(q[i]);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    require(f != NULL);
    ck_assert_int_eq(malloc_info(0, f), 0);
    fclose(f);
    expect(len >= 7 && strncmp(buf, "<malloc", 7) == 0, "malloc_info wrote \"%.40s\"",
           buf ? buf : "");
    expect(strstr(buf, "</malloc>") != NULL, "malloc_info XML not closed");
    /* glibc's shape: free chunks by size, the totals, the system's bytes */
    expect(strstr(buf, "<size from=\"") && strstr(buf, "<total type=\"rest\" count=\"") &&
               strstr(buf, "<total type=\"mmap\"") && strstr(buf, "<system type=\"current\""),
           "malloc_info is not in glibc's shape: %.400s", buf);
    free(buf);
    for (int i = 1; i < 400; i += 2)
        fill_check_free(q[i], 100);
    /* glibc: options must be 0, else it returns EINVAL. */
    f = tmpfile();
    require(f != NULL);
    errno = 0;
    int rc = malloc_info(1, f);
    expect(rc == EINVAL || (rc == -1 && errno == EINVAL), "malloc_info(1) = %d", rc);
    fclose(f);
    fill_check_free(p, 5000);
}
END_TEST

START_TEST(t_mallopt)
{
    const int params[][2] = {
        {M_ARENA_MAX, 4},
        {M_ARENA_TEST, 8},
        {M_TRIM_THRESHOLD, 1 << 20},
        {M_MMAP_THRESHOLD, 256 << 10},
        {M_TOP_PAD, 64 << 10},
        {M_MMAP_MAX, 65536},
        {M_MXFAST, 64},
        {M_PERTURB, 0},
        {M_CHECK_ACTION, 3},
        {M_TRIM_THRESHOLD, -1},
        {M_MMAP_THRESHOLD, 64 << 20},
    };
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        int rc = mallopt(params[i][0], params[i][1]);
        expect(rc == 0 || rc == 1, "mallopt(%d, %d) = %d", params[i][0], params[i][1], rc);
        const size_t sizes[] = {1, 100, 5000, 300000, 5 * MiB};
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            fill_check_free(malloc(sizes[s]), sizes[s]);
    }
    /* SPEC §1.1: parameters without a meaning here return 0. */
    ck_assert_int_eq(mallopt(12345, 1), 0);
    ck_assert_int_eq(mallopt(-12345, 1), 0);
    fill_check_free(malloc(100), 100);
    /* leave the process as it was: the decay on, blocks mapped where they were */
    ck_assert_int_eq(mallopt(M_TRIM_THRESHOLD, 128 << 10), 1);
    ck_assert_int_eq(mallopt(M_MMAP_THRESHOLD, 32 << 20), 1);
}
END_TEST

/* ---- out of memory (SPEC §4) ---- */

enum { OOM_SLOTS = 1 << 20 };

/* Allocate blocks of n bytes until malloc fails; stamp their head and tail. */
static size_t alloc_until_null(void **slots, size_t *used, size_t n, size_t limit)
{
    size_t got = 0;
    while (*used < OOM_SLOTS && got < limit) {
        errno = 0;
        void *p = malloc(n);
        if (!p) {
            expect(errno == ENOMEM, "malloc(%zu) failed with errno %d, want ENOMEM", n, errno);
            break;
        }
        fill_sampled(p, n < 64 ? n : 64, block_key(p, n));
        ((unsigned char *)p)[n - 1] = 0x5c;
        slots[(*used)++] = p;
        got += n;
    }
    return got;
}

static void check_and_free(void **slots, size_t used, size_t n)
{
    for (size_t i = 0; i < used; i++) {
        unsigned char *p = slots[i];
        size_t head = n < 64 ? n : 64;
        expect(check_sampled(p, head, block_key(p, n), head) == head && p[n - 1] == 0x5c,
               "block %p of %zu bytes corrupted under memory pressure", (void *)p, n);
        free(p);
    }
}

static void oom_child(void)
{
    static void *big[4096];
    void **small = malloc(OOM_SLOTS * sizeof *small); /* before the limit is set */
    require(small != NULL);
    memset(small, 0, OOM_SLOTS * sizeof *small);

    struct rlimit lim;
    lim.rlim_cur = lim.rlim_max = vm_bytes() + 256 * MiB;
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &lim), 0);

    for (int round = 0; round < 3; round++) {
        /* Big blocks until the limit, then small ones to fill what is left. */
        size_t nbig = 0, nsmall = 0;
        size_t got_big = 0;
        while (nbig < 4096) {
            size_t before = nbig;
            got_big += alloc_until_null(big, &nbig, 8 * MiB, SIZE_MAX);
            if (nbig == before || nbig >= 4096)
                break;
        }
        size_t got_small = alloc_until_null(small, &nsmall, 512, SIZE_MAX);
        expect(got_big >= 64 * MiB,
               "round %d: only %zu MiB of 8 MiB blocks under a 256 MiB"
               " limit",
               round, got_big / MiB);
        expect(nsmall < OOM_SLOTS, "small allocations never failed");
        errno = 0;
        require(malloc(64 * MiB) == NULL && errno == ENOMEM);
        check_and_free(small, nsmall, 512);
        check_and_free(big, nbig, 8 * MiB);

        /* Everything is free again: small and big allocations must work again. */
        size_t again = 0;
        size_t got = alloc_until_null(small, &again, 1024, (got_big + got_small) / 2);
        expect(got >= (got_big + got_small) / 2,
               "round %d: after freeing, only %zu of %zu MiB in 1 KiB blocks", round, got / MiB,
               (got_big + got_small) / 2 / MiB);
        check_and_free(small, again, 1024);
        again = 0;
        got = alloc_until_null(big, &again, 8 * MiB, got_big / 2);
        expect(got >= got_big / 2,
               "round %d: after freeing, only %zu of %zu MiB in 8 MiB"
               " blocks",
               round, got / MiB, got_big / 2 / MiB);
        check_and_free(big, again, 8 * MiB);
    }
    void *p = malloc(32 * MiB);
    require(p != NULL);
    fill_check_free(p, 32 * MiB);
    free(small);
}

START_TEST(t_out_of_memory)
{
    /* The limit is set in a child, so it cannot leak into other tests even with CK_FORK=no. */
    pid_t pid = fork();
    require(pid >= 0);
    if (pid == 0) {
        oom_child();
        _exit(0);
    }
    int status = 0;
    require(waitpid(pid, &status, 0) == pid);
    expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "out-of-memory child failed (status %#x; see its message above)", status);
}
END_TEST

/* free(p + off) in a child for a block of size n: does the child die by SIGABRT with
 * "free(<p + off>): interior pointer" as the last line of its stderr? */
static bool interior_free_dies(char *p, size_t off)
{
    int err[2];
    require(pipe(err) == 0);
    pid_t pid = fork();
    require(pid >= 0);
    if (pid == 0) {
        struct rlimit nocore = {0, 0};
        setrlimit(RLIMIT_CORE, &nocore);
        dup2(err[1], 2);
        free(p + off);
        _exit(0);   /* survived: the test fails */
    }
    close(err[1]);
    char text[4096];
    size_t len = 0;
    ssize_t r;
    while (len < sizeof text - 1 && (r = read(err[0], text + len, sizeof text - 1 - len)) > 0)
        len += (size_t)r;
    text[len] = '\0';
    close(err[0]);
    int status = 0;
    require(waitpid(pid, &status, 0) == pid);
    char want[128];
    snprintf(want, sizeof want, "free(%p): interior pointer", (void *)(p + off));
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && strstr(text, want) != NULL;
}

/* Every size class tells a block start from any other address of its blocks (free's
 * fast path decides it with one exact-division multiply and one compare): a pointer 1, 8,
 * half way, 16 and 1 bytes before the end into a block in the middle of three is refused
 * in a child; the blocks are intact and free normally. */
START_TEST(t_every_class_refuses_interior_pointers)
{
    size_t last_usable = 0;
    int classes = 0;
    for (size_t n = 16; n <= 64 * 1024; n += n < 1024 ? 16 : n / 8) {
        char *b[3];
        for (int k = 0; k < 3; k++) {
            b[k] = malloc(n);
            require(b[k] != NULL);
            fill_all(b[k], n, block_key(b[k], n));
        }
        size_t usable = malloc_usable_size(b[1]);
        if (usable != last_usable) {   /* a new class: probe it */
            last_usable = usable;
            classes++;
            size_t offs[5] = { 1, 8, (usable / 2) & ~(size_t)15, usable - 16, usable - 1 };
            for (int k = 0; k < 5; k++)
                if (offs[k] != 0 && offs[k] < usable)
                    expect(interior_free_dies(b[1], offs[k]), "free(p + %zu) of a %zu-byte block (class %zu) was not refused",
                           offs[k], n, usable);
        }
        for (int k = 0; k < 3; k++) {
            expect(check_all(b[k], n, block_key(b[k], n)) == n, "block %d of %zu bytes changed", k, n);
            free(b[k]);
        }
    }
    expect(classes >= 30, "only %d classes probed", classes);
}
END_TEST

/* A thread's 16-byte blocks: 3840 to a 64 KiB page, none in its last OS page, which holds
 * the page's side table alone (an OS page of blocks can be given back or remapped on its
 * own).  Each block is written and checked. */
static void *small_blocks_thread(void *arg)
{
    enum { N = 3 * 3840 };
    char **b = malloc(N * sizeof *b);
    size_t *in_last_os_page = arg;
    for (size_t k = 0; k < N; k++) {
        b[k] = malloc(16);
        fill_all(b[k], 16, block_key(b[k], 16));
        if (((uintptr_t)b[k] & 0xffff) + 16 > 0xffff - 4095)
            (*in_last_os_page)++;
    }
    for (size_t k = 0; k < N; k++) {
        if (check_all(b[k], 16, block_key(b[k], 16)) != 16)
            (*in_last_os_page) += 1000000;
        free(b[k]);
    }
    free(b);
    return NULL;
}

START_TEST(t_small_blocks_keep_off_the_side_table_page)
{
    size_t in_last_os_page = 0;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, small_blocks_thread, &in_last_os_page), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    expect(in_last_os_page < 1000000, "a 16-byte block changed");
    expect(in_last_os_page == 0, "%zu blocks of 16 B in the last OS page of their slice", in_last_os_page);
}
END_TEST

/* The share of [p, p + n) resident now (mincore), in thousandths. */
static unsigned resident_permille(const void *p, size_t n)
{
    size_t pages, in = resident_inner_pages(p, n, &pages);
    return pages ? (unsigned)(in * 1000 / pages) : 0;
}

/* calloc of large blocks learns how the program uses them: after blocks that were used
 * whole, most come prefaulted (no zero-page read fault and copy-on-write after it);
 * after blocks of which only the first and last byte were used, they stay lazy, new
 * mappings (growing sizes) and reused blocks (one size) alike.  A block counts as
 * prefaulted when its first 256 KiB are resident right after calloc.  Every block reads
 * zero where the program looks, and holds what it wrote. */
static size_t calloc_rounds(size_t *size, size_t grow, int rounds, bool whole)
{
    size_t prefaulted = 0;
    for (int r = 0; r < rounds; r++) {
        size_t n = *size += grow;
        unsigned char *p = calloc(1, n);
        require(p != NULL);
        if (resident_permille(p, 256 * 1024) > 900)
            prefaulted++;
        size_t step = whole ? 4096 : n - 1;
        for (size_t off = 0; off < n; off += step)
            expect(p[off] == 0, "calloc(%zu) byte %zu is %#x", n, off, p[off]);
        if (whole)
            memset(p, 0x5a, n);
        else
            p[0] = p[n - 1] = 0x5a;
        expect(p[0] == 0x5a && p[n - 1] == 0x5a && p[n / 2] == (whole ? 0x5a : 0), "calloc(%zu) block lost a write", n);
        free(p);
    }
    return prefaulted;
}

/* The policy is off where the kernel cannot prefault (before 5.14) or where every
 * anonymous page may be huge (the samples would all read whole). */
static bool prefault_possible(void)
{
    char text[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (!fgets(text, sizeof text, f))
            text[0] = '\0';
        fclose(f);
    }
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    require(m != MAP_FAILED);
    bool populate = madvise(m, 4096, 23 /* MADV_POPULATE_WRITE */) == 0;
    munmap(m, 4096);
    return populate && strstr(text, "[always]") == NULL;
}

START_TEST(t_calloc_learns_large_block_use)
{
    if (!prefault_possible())
        return;   /* nothing to learn: every block stays lazy */
    size_t n = 4 * MiB + 12345;   /* growing huge blocks: a new mapping each time */
    calloc_rounds(&n, MiB, 4, true);
    size_t dense = calloc_rounds(&n, MiB, 16, true);
    calloc_rounds(&n, MiB, 12, false);   /* a probe comes within eight */
    size_t sparse = calloc_rounds(&n, MiB, 16, false);
    expect(dense >= 10, "after new blocks used whole, only %zu of 16 were prefaulted", dense);
    expect(sparse <= 1, "after new blocks used at their ends, %zu of 16 were prefaulted", sparse);
    size_t same = 3 * MiB;   /* one size, reused: the same block again and again */
    calloc_rounds(&same, 0, 4, true);
    size_t dense_reused = calloc_rounds(&same, 0, 16, true);
    calloc_rounds(&same, 0, 12, false);
    size_t sparse_reused = calloc_rounds(&same, 0, 16, false);
    expect(dense_reused >= 10, "after a reused block used whole, only %zu of 16 calls cleared it in place", dense_reused);
    expect(sparse_reused <= 1, "after a reused block used at its ends, %zu of 16 calls still cleared it whole",
           sparse_reused);
}
END_TEST

static TCase *new_case(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return tc;
}

/* One case per area, so CK_RUN_CASE=realloc (say) runs just that area. */
static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = new_case(s, "malloc");
    tcase_add_test(tc, t_malloc_zero_unique);
    tcase_add_test(tc, t_malloc_too_big);
    tcase_add_test(tc, t_malloc_every_small_size);
    tcase_add_test(tc, t_malloc_pow2_sizes);
    tcase_add_test(tc, t_malloc_mixed_live);
    tcase_add_test(tc, t_usable_size);
    tcase_add_test(tc, t_every_class_refuses_interior_pointers);
    tcase_add_test(tc, t_small_blocks_keep_off_the_side_table_page);
    tcase_add_test(tc, t_calloc_learns_large_block_use);
    tcase_add_test(tc, t_free_null);
    tcase_add_test(tc, t_free_sized);

    tc = new_case(s, "calloc");
    tcase_add_test(tc, t_calloc_overflow);
    tcase_add_test(tc, t_calloc_zero_counts);
    tcase_add_test(tc, t_calloc_zeroes_reused);
    tcase_add_test(tc, t_calloc_zeroes_sparse_and_bigger);
    tcase_add_test(tc, t_calloc_zeroes_batch);

    tc = new_case(s, "realloc");
    tcase_add_test(tc, t_realloc_null_is_malloc);
    tcase_add_test(tc, t_realloc_zero_frees);
    tcase_add_test(tc, t_realloc_grow_shrink);
    tcase_add_test(tc, t_realloc_by_one);
    tcase_add_test(tc, t_realloc_shrink_grow);
    tcase_add_test(tc, t_realloc_aligned);
    tcase_add_test(tc, t_realloc_failure_keeps_block);
    tcase_add_test(tc, t_reallocarray);

    tc = new_case(s, "aligned");
    tcase_add_test(tc, t_aligned_alloc);
    tcase_add_test(tc, t_posix_memalign);
    tcase_add_test(tc, t_memalign);
    tcase_add_test(tc, t_aligned_alloc_bad_alignment);
    tcase_add_test(tc, t_posix_memalign_bad_alignment);
    tcase_add_test(tc, t_memalign_bad_alignment);
    tcase_add_test(tc, t_aligned_too_big);
    tcase_add_test(tc, t_valloc);
    tcase_add_test(tc, t_pvalloc);

    tc = new_case(s, "glibc");
    tcase_add_test(tc, t_malloc_trim);
    tcase_add_test(tc, t_malloc_trim_releases);
    tcase_add_test(tc, t_mallinfo2);
    tcase_add_test(tc, t_mallinfo);
    tcase_add_test(tc, t_malloc_stats);
    tcase_add_test(tc, t_malloc_info);
    tcase_add_test(tc, t_mallopt);

    tc = new_case(s, "oom");
    tcase_add_test(tc, t_out_of_memory);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(api_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
