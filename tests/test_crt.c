/* test_crt.c — the CRT heap family (SPEC §1.2) and its bad-input behaviour (SPEC §4).
 *
 * Every block a test allocates is stamped and checked before it is freed.  Tests that
 * damage the heap on purpose rely on Check's CK_FORK (the default): each test runs in a
 * child process of its own. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "crtheap.h"
#include "common.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

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

static void stamp(void *p, size_t n)
{
    fill_all(p, n, block_key(p, n));
}

static void check_stamp(const void *p, size_t n)
{
    size_t bad = check_all(p, n, block_key(p, n));
    expect(bad == n, "block %p size %zu corrupted at offset %zu", p, n, bad);
}

static void check_bytes(const void *p, size_t from, size_t to, unsigned char v, const char *what)
{
    const unsigned char *b = p;
    for (size_t i = from; i < to; i++)
        expect(b[i] == v, "%s: byte %zu of %p is 0x%02x, expected 0x%02x", what, i, p, b[i], v);
}

/* Scratch arrays kept out of the heap under test. */
static void *scratch(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(p, MAP_FAILED);
    return p;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------------ _msize */

START_TEST(t_msize_exact_small_to_200000)
{
    for (size_t n = 0; n <= 200000; n++) {
        void *p = malloc(opaque(n));
        expect(p != NULL, "malloc(%zu) failed", n);
        size_t want = n ? n : 1;
        size_t got = _msize(p);
        expect(got == want, "_msize(malloc(%zu)) = %zu, expected %zu", n, got, want);
        uint64_t key = block_key(p, want);
        fill_sampled(p, want, key);
        size_t bad = check_sampled(p, want, key, want);
        expect(bad == want, "malloc(%zu) block corrupted at %zu", n, bad);
        free(p);
    }
}
END_TEST

START_TEST(t_msize_exact_calloc_realloc)
{
    for (size_t n = 0; n <= 5000; n += 7) {
        void *p = calloc(1, opaque(n));
        ck_assert_ptr_nonnull(p);
        size_t want = n ? n : 1;
        expect(_msize(p) == want, "_msize(calloc(1,%zu)) = %zu", n, _msize(p));
        stamp(p, want);
        void *q = realloc(p, n + 13);
        ck_assert_ptr_nonnull(q);
        expect(_msize(q) == n + 13, "_msize after realloc to %zu = %zu", n + 13, _msize(q));
        size_t bad = check_all(q, want, block_key(p, want));
        expect(bad == want, "realloc lost data at %zu", bad);
        stamp(q, n + 13);
        check_stamp(q, n + 13);
        free(q);
    }
}
END_TEST

START_TEST(t_msize_exact_huge)
{
    size_t sizes[] = {5 * MiB, 5 * MiB + 1, 5 * MiB + 4095, 3 * MiB + 17, 64 * MiB + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *p = malloc(opaque(n));
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(_msize(p), n);
        stamp(p, n);
        check_stamp(p, n);
        free(p);
    }
}
END_TEST

START_TEST(t_msize_null)
{
    errno = 0;
    size_t r = _msize(opaque_ptr(NULL));
    ck_assert_uint_eq(r, (size_t)-1);
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

/* ------------------------------------------------------------------ _expand */

START_TEST(t_expand_shrink_in_place)
{
    size_t sizes[] = {100, 1000, 5000, 70000, 300000, 5 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *p = malloc(n);
        ck_assert_ptr_nonnull(p);
        stamp(p, n);
        size_t half = n / 2;
        void *q = _expand(p, half);
        expect(q == p, "_expand(%p of %zu, %zu) = %p, expected the same pointer", (void *)p, n, half, q);
        expect(_msize(p) == half, "_msize after _expand to %zu is %zu", half, _msize(p));
        size_t bad = check_all(p, half, block_key(p, n));
        expect(bad == half, "_expand shrink lost data at %zu", bad);
        free(p);
    }
}
END_TEST

/* Requests far below their block: _expand shrinking a block of a class up to 1 KiB to a
 * few bytes, and small blocks at alignments that force a bigger class.  Their requested
 * size is more than a one-byte side entry holds; _msize, _heapwalk, _heapchk, realloc and
 * free still see it exactly, and a second free is still a double free (death tests). */
START_TEST(t_requested_size_far_below_block)
{
    enum { N = 600 };
    static unsigned char *blocks[N];
    static size_t sizes[N];
    for (size_t k = 0; k < N; k++) {
        size_t n = 200 + (k * 7) % 824;   /* classes of 224..1024 bytes */
        unsigned char *p = malloc(n);
        ck_assert_ptr_nonnull(p);
        fill_all(p, n, k + 1);
        size_t small = 1 + k % 9;
        expect(_expand(p, small) == p, "_expand(%zu -> %zu) moved or failed", n, small);
        expect(check_all(p, small, k + 1) == small, "_expand(%zu -> %zu) lost data", n, small);
        if (k % 2) {   /* half of them aligned instead: memalign(512, 1..300) */
            free(p);
            small = 1 + (k * 13) % 300;
            p = memalign(512, small);
            ck_assert_ptr_nonnull(p);
            expect(((uintptr_t)p & 511) == 0, "memalign(512, %zu) = %p", small, (void *)p);
            fill_all(p, small, k + 1);
        }
        blocks[k] = p;
        sizes[k] = small;
        expect(_msize(p) == small, "_msize %zu, requested %zu", _msize(p), small);
    }
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    size_t found = 0;
    _HEAPINFO e = {0};
    while (_heapwalk(&e) == _HEAPOK)
        for (size_t k = 0; k < N; k++)
            if (e._useflag == _USEDENTRY && e._pentry == (int *)blocks[k]) {
                expect(e._size == sizes[k], "_heapwalk: %p has _size %zu, requested %zu", (void *)blocks[k], e._size, sizes[k]);
                found++;
            }
    expect(found == N, "_heapwalk found %zu of %d blocks", found, N);
    for (size_t k = 0; k < N; k++) {
        expect(check_all(blocks[k], sizes[k], k + 1) == sizes[k], "block %zu corrupted", k);
        if (k % 3 == 0) {   /* grow in place or move: the size is recorded anew */
            unsigned char *q = realloc(blocks[k], sizes[k] + 40);
            ck_assert_ptr_nonnull(q);
            expect(check_all(q, sizes[k], k + 1) == sizes[k], "realloc of block %zu lost data", k);
            expect(_msize(q) == sizes[k] + 40, "_msize after realloc %zu", _msize(q));
            blocks[k] = q;
        }
        free(blocks[k]);
    }
    ck_assert_int_eq(_heapchk(), _HEAPOK);
}
END_TEST

START_TEST(t_expand_cannot_grow)
{
    unsigned char *p = malloc(48);
    ck_assert_ptr_nonnull(p);
    stamp(p, 48);
    errno = 0;
    void *q = _expand(p, opaque(1 * MiB));
    ck_assert_ptr_null(q);
    ck_assert_uint_eq(_msize(p), 48);
    check_stamp(p, 48);
    /* Either in place or NULL with the block unchanged. */
    for (size_t n = 49; n <= 4096; n += 37) {
        size_t before = _msize(p);
        void *r = _expand(p, n);
        if (r) {
            ck_assert_ptr_eq(r, p);
            ck_assert_uint_eq(_msize(p), n);
            size_t bad = check_all(p, 48, block_key(p, 48));
            expect(bad == 48, "_expand grow to %zu lost data at %zu", n, bad);
        } else {
            expect(_msize(p) == before, "failed _expand changed _msize %zu -> %zu", before, _msize(p));
            size_t bad = check_all(p, 48, block_key(p, 48));
            expect(bad == 48, "failed _expand to %zu changed data at %zu", n, bad);
        }
    }
    free(p);
}
END_TEST

/* _expand grows a large block into the free slices after it (200000 -> 400000 bytes, as a
 * Windows program may ask), keeping its address and contents, and fails, changing
 * nothing, where a live block lies after it; realloc grows in place the same way. */
START_TEST(t_expand_grows_large_block)
{
    size_t n = 200000, grown = 400000;
    unsigned char *p = malloc(n);
    ck_assert_ptr_nonnull(p);
    fill_all(p, n, 7);
    unsigned char *q = _expand(p, grown);
    expect(q == p, "_expand(%zu -> %zu) = %p, expected %p", n, grown, (void *)q, (void *)p);
    if (q == p) {
        expect(_msize(p) == grown, "_msize after growing: %zu", _msize(p));
        expect(check_all(p, n, 7) == n, "growing in place changed the block");
        memset(p + n, 0x11, grown - n);   /* the grown part is the program's */
        ck_assert_int_eq(_heapchk(), _HEAPOK);
    }
    /* a live block right after it: no room, the block stays as it is */
    unsigned char *after = malloc(grown);
    ck_assert_ptr_nonnull(after);
    memset(after, 0x22, grown);
    size_t before = _msize(p);
    unsigned char *r = _expand(p, 2 * 1024 * 1024);
    if (r == NULL) {
        expect(_msize(p) == before, "a failed _expand changed _msize: %zu -> %zu", before, _msize(p));
    } else {
        ck_assert_ptr_eq(r, p);   /* there was room after all: still in place */
        expect(_msize(p) == 2 * 1024 * 1024, "_msize %zu", _msize(p));
    }
    expect(check_all(p, n, 7) == n, "the block changed");
    for (size_t i = 0; i < grown; i++)
        if (after[i] != 0x22) {
            ck_abort_msg("the block after it changed at %zu", i);
            break;
        }
    /* realloc of a large block with free slices after it stays where it is */
    unsigned char *s = malloc(300000);
    ck_assert_ptr_nonnull(s);
    fill_all(s, 300000, 9);
    unsigned char *t = realloc(s, 600000);
    ck_assert_ptr_nonnull(t);
    expect(check_all(t, 300000, 9) == 300000, "realloc lost data");
    memset(t + 300000, 0x33, 300000);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    free(t);
    free(after);
    free(p);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
}
END_TEST

START_TEST(t_expand_null)
{
    errno = 0;
    ck_assert_ptr_null(_expand(opaque_ptr(NULL), 10));
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(t_expand_too_big)
{
    unsigned char *p = malloc(64);
    ck_assert_ptr_nonnull(p);
    stamp(p, 64);
    size_t sizes[] = {_HEAP_MAXREQ + 1, SIZE_MAX};
    for (int i = 0; i < 2; i++) {
        errno = 0;
        ck_assert_ptr_null(_expand(p, opaque(sizes[i])));
        ck_assert_int_eq(errno, ENOMEM);
        ck_assert_uint_eq(_msize(p), 64);
        check_stamp(p, 64);
    }
    free(p);
}
END_TEST

START_TEST(t_expand_zero_is_one)
{
    unsigned char *p = malloc(64);
    ck_assert_ptr_nonnull(p);
    stamp(p, 64);
    void *q = _expand(p, 0);
    ck_assert_ptr_eq(q, p);
    ck_assert_uint_eq(_msize(p), 1);
    ck_assert_uint_eq(p[0], pattern_byte(block_key(p, 64), 0));
    p[0] = 0x5A;
    ck_assert_uint_eq(p[0], 0x5A);
    free(p);
}
END_TEST

/* ------------------------------------------------------------------ _recalloc */

START_TEST(t_recalloc_zeroes_growth)
{
    size_t steps[][2] = {{10, 10}, {1, 1000}, {3, 50}, {300, 1}, {1, 200000}, {7, 9}, {1, 6 * MiB}, {5, 333}};
    unsigned char *p = _recalloc(NULL, 1, 4);
    ck_assert_ptr_nonnull(p);
    check_bytes(p, 0, 4, 0, "_recalloc(NULL, 1, 4)");
    size_t old = 4;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        size_t n = steps[i][0] * steps[i][1];
        if (old)
            memset(p, 0xAA, old);
        unsigned char *q = _recalloc(p, steps[i][0], steps[i][1]);
        expect(q != NULL, "_recalloc to %zu failed", n);
        expect(_msize(q) == n, "_msize after _recalloc to %zu is %zu", n, _msize(q));
        size_t keep = old < n ? old : n;
        check_bytes(q, 0, keep, 0xAA, "_recalloc kept data");
        if (n > old)
            check_bytes(q, old, n, 0, "_recalloc growth");
        p = q;
        old = n;
    }
    /* Shrink then grow: bytes beyond the smaller requested size come back zero. */
    memset(p, 0xAA, old);
    p = _recalloc(p, 1, 40);
    ck_assert_ptr_nonnull(p);
    p = _recalloc(p, 1, 300);
    ck_assert_ptr_nonnull(p);
    check_bytes(p, 0, 40, 0xAA, "_recalloc kept data");
    check_bytes(p, 40, 300, 0, "_recalloc regrowth after shrink");
    free(p);
}
END_TEST

START_TEST(t_recalloc_from_zero)
{
    /* _recalloc(NULL, 0, 0) is calloc(0, 0): a zeroed 1-byte block; growing it zeroes the rest. */
    unsigned char *p = _recalloc(NULL, 0, 0);
    ck_assert_ptr_nonnull(p);
    unsigned char *q = _recalloc(p, 10, 10);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq(_msize(q), 100);
    check_bytes(q, 1, 100, 0, "_recalloc growth from a 0-byte block");
    check_bytes(q, 0, 1, 0, "_recalloc(NULL,0,0)'s one byte");
    memset(q, 0x11, 100);
    check_bytes(q, 0, 100, 0x11, "written");
    free(q);
}
END_TEST

START_TEST(t_recalloc_overflow)
{
    unsigned char *p = _recalloc(NULL, 4, 16);
    ck_assert_ptr_nonnull(p);
    stamp(p, 64);
    errno = 0;
    ck_assert_ptr_null(_recalloc(p, opaque(SIZE_MAX / 2), 3));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(_recalloc(p, opaque((size_t)1 << 33), (size_t)1 << 33));
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert_uint_eq(_msize(p), 64);
    check_stamp(p, 64);
    free(p);
    errno = 0;
    ck_assert_ptr_null(_recalloc(NULL, opaque(SIZE_MAX / 2), 3));
    ck_assert_int_eq(errno, ENOMEM);
}
END_TEST

/* ------------------------------------------------------------------ _aligned_* */

START_TEST(t_aligned_malloc_all_alignments)
{
    size_t sizes[] = {1, 8, 100, 5000, 70000};
    for (size_t a = 1; a <= 65536; a <<= 1) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t n = sizes[s];
            unsigned char *p = _aligned_malloc(n, a);
            expect(p != NULL, "_aligned_malloc(%zu, %zu) failed", n, a);
            expect((uintptr_t)p % a == 0, "_aligned_malloc(%zu, %zu) = %p misaligned", n, a, (void *)p);
            expect(_aligned_msize(p, a, 0) == n, "_aligned_msize(%zu, %zu) = %zu", n, a, _aligned_msize(p, a, 0));
            stamp(p, n);
            check_stamp(p, n);
            _aligned_free(p);
        }
    }
}
END_TEST

START_TEST(t_aligned_offset_malloc)
{
    size_t sizes[] = {1, 40, 100, 5000, 70000};
    for (size_t a = 1; a <= 65536; a <<= 1) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t n = sizes[s];
            size_t offs[] = {0, 1, 7, 8, 16, 33, a - 1, n - 1};
            for (size_t o = 0; o < sizeof offs / sizeof offs[0]; o++) {
                size_t off = offs[o];
                if (off >= n)
                    continue;
                unsigned char *p = _aligned_offset_malloc(n, a, off);
                expect(p != NULL, "_aligned_offset_malloc(%zu, %zu, %zu) failed", n, a, off);
                expect((uintptr_t)(p + off) % a == 0, "_aligned_offset_malloc(%zu, %zu, %zu) = %p: p+off misaligned",
                       n, a, off, (void *)p);
                expect(_aligned_msize(p, a, off) == n, "_aligned_msize(%zu,%zu,%zu) = %zu", n, a, off,
                       _aligned_msize(p, a, off));
                stamp(p, n);
                check_stamp(p, n);
                _aligned_free(p);
            }
        }
    }
}
END_TEST

START_TEST(t_aligned_bad_args)
{
    size_t bad[] = {3, 6, 24, 100, 65537};   /* 0 is taken, as the runtime takes it (t_aligned_runtime) */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        expect(_aligned_malloc(64, opaque(bad[i])) == NULL, "_aligned_malloc(64, %zu) succeeded", bad[i]);
        expect(errno == EINVAL, "_aligned_malloc(64, %zu): errno %d", bad[i], errno);
        errno = 0;
        expect(_aligned_offset_malloc(64, opaque(bad[i]), 8) == NULL, "_aligned_offset_malloc(64, %zu, 8) succeeded",
               bad[i]);
        expect(errno == EINVAL, "_aligned_offset_malloc(64, %zu, 8): errno %d", bad[i], errno);
    }
    errno = 0;
    ck_assert_ptr_null(_aligned_offset_malloc(16, 64, opaque(16)));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(_aligned_offset_malloc(16, 64, opaque(1000)));
    ck_assert_int_eq(errno, EINVAL);
    _aligned_free(NULL); /* no-op */
}
END_TEST

START_TEST(t_aligned_realloc_keeps_data)
{
    size_t chain[] = {10, 100, 3000, 50, 70000, 1, 200000, 500, 5 * MiB, 64};
    for (size_t a = 8; a <= 65536; a <<= 2) {
        size_t n = chain[0];
        unsigned char *p = _aligned_malloc(n, a);
        ck_assert_ptr_nonnull(p);
        uint64_t key = block_key(p, n);
        fill_all(p, n, key);
        for (size_t i = 1; i < sizeof chain / sizeof chain[0]; i++) {
            size_t m = chain[i];
            unsigned char *q = _aligned_realloc(p, m, a);
            expect(q != NULL, "_aligned_realloc to %zu (a=%zu) failed", m, a);
            expect((uintptr_t)q % a == 0, "_aligned_realloc to %zu misaligned %p (a=%zu)", m, (void *)q, a);
            size_t keep = n < m ? n : m;
            size_t bad = check_all(q, keep, key);
            expect(bad == keep, "_aligned_realloc %zu->%zu (a=%zu) lost data at %zu", n, m, a, bad);
            expect(_aligned_msize(q, a, 0) == m, "_aligned_msize after realloc = %zu, want %zu",
                   _aligned_msize(q, a, 0), m);
            key = block_key(q, m);
            fill_all(q, m, key);
            p = q;
            n = m;
        }
        expect(check_all(p, n, key) == n, "_aligned_realloc chain: final block corrupted");
        errno = 0;
        ck_assert_ptr_null(_aligned_realloc(p, 0, a)); /* frees */
    }
    /* NULL block: acts as _aligned_malloc. */
    unsigned char *p = _aligned_realloc(NULL, 100, 256);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % 256, 0);
    stamp(p, 100);
    check_stamp(p, 100);
    _aligned_free(p);
}
END_TEST

START_TEST(t_aligned_offset_realloc)
{
    size_t a = 4096, off = 24;
    unsigned char *p = _aligned_offset_malloc(100, a, off);
    ck_assert_ptr_nonnull(p);
    uint64_t key = block_key(p, 100);
    fill_all(p, 100, key);
    size_t sizes[] = {5000, 30, 200000, 100};
    size_t n = 100;
    for (size_t i = 0; i < 4; i++) {
        unsigned char *q = _aligned_offset_realloc(p, sizes[i], a, off);
        ck_assert_ptr_nonnull(q);
        expect((uintptr_t)(q + off) % a == 0, "_aligned_offset_realloc: %p + %zu misaligned", (void *)q, off);
        size_t keep = n < sizes[i] ? n : sizes[i];
        size_t bad = check_all(q, keep, key);
        expect(bad == keep, "_aligned_offset_realloc lost data at %zu", bad);
        ck_assert_uint_eq(_aligned_msize(q, a, off), sizes[i]);
        n = sizes[i];
        key = block_key(q, n);
        fill_all(q, n, key);
        p = q;
    }
    check_stamp(p, n);
    _aligned_free(p);
}
END_TEST

START_TEST(t_aligned_recalloc_zeroes_growth)
{
    unsigned char *p = _aligned_recalloc(NULL, 10, 10, 64);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % 64, 0);
    check_bytes(p, 0, 100, 0, "_aligned_recalloc fresh");
    memset(p, 0xAA, 100);
    p = _aligned_recalloc(p, 20, 10, 64);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % 64, 0);
    check_bytes(p, 0, 100, 0xAA, "_aligned_recalloc kept");
    check_bytes(p, 100, 200, 0, "_aligned_recalloc growth");
    ck_assert_uint_eq(_aligned_msize(p, 64, 0), 200);
    memset(p, 0xAA, 200);
    p = _aligned_recalloc(p, 1, 50000, 64);
    ck_assert_ptr_nonnull(p);
    check_bytes(p, 0, 200, 0xAA, "_aligned_recalloc kept");
    check_bytes(p, 200, 50000, 0, "_aligned_recalloc growth");
    _aligned_free(p);

    unsigned char *q = _aligned_offset_recalloc(NULL, 3, 10, 128, 8);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq((uintptr_t)(q + 8) % 128, 0);
    check_bytes(q, 0, 30, 0, "_aligned_offset_recalloc fresh");
    memset(q, 0xAA, 30);
    q = _aligned_offset_recalloc(q, 30, 10, 128, 8);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq((uintptr_t)(q + 8) % 128, 0);
    check_bytes(q, 0, 30, 0xAA, "_aligned_offset_recalloc kept");
    check_bytes(q, 30, 300, 0, "_aligned_offset_recalloc growth");
    _aligned_free(q);

    errno = 0;
    unsigned char *r = _aligned_malloc(32, 64);
    ck_assert_ptr_nonnull(r);
    stamp(r, 32);
    ck_assert_ptr_null(_aligned_recalloc(r, opaque(SIZE_MAX / 2), 3, 64));
    ck_assert_int_eq(errno, ENOMEM);
    check_stamp(r, 32);
    _aligned_free(r);
}
END_TEST

/* ------------------------------------------------------------------ new handler */

static int new_calls;
static void *reserve;

static int reserve_handler(size_t size)
{
    (void)size;
    new_calls++;
    if (reserve) {
        check_stamp(reserve, MiB);
        free(reserve);
        reserve = NULL;
        return 1;
    }
    return 0;
}

START_TEST(t_new_mode_bad)
{
    errno = 0;
    ck_assert_int_eq(_set_new_mode(2), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(_set_new_mode(-1), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(_query_new_mode(), 0);
}
END_TEST

START_TEST(t_new_handler_protocol)
{
    ck_assert_int_eq(_query_new_mode(), 0);
    ck_assert_ptr_null((void *)_query_new_handler());
    ck_assert_int_eq(_callnewh(100), 0); /* no handler */

    reserve = malloc(MiB);
    ck_assert_ptr_nonnull(reserve);
    stamp(reserve, MiB);

    ck_assert_ptr_null((void *)_set_new_handler(reserve_handler));
    ck_assert((void *)_query_new_handler() == (void *)reserve_handler);

    /* Mode 0: malloc does not call the handler. */
    errno = 0;
    ck_assert_ptr_null(malloc(opaque(SIZE_MAX / 2)));
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert_int_eq(new_calls, 0);

    ck_assert_int_eq(_set_new_mode(1), 0); /* previous mode */
    ck_assert_int_eq(_query_new_mode(), 1);

    errno = 0;
    void *p = malloc(opaque(SIZE_MAX / 2));
    ck_assert_ptr_null(p);
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert_int_eq(new_calls, 2); /* returned 1 (retry), then 0 (give up) */
    ck_assert_ptr_null(reserve);

    /* _callnewh calls the handler and passes on its answer. */
    new_calls = 0;
    ck_assert_int_eq(_callnewh(100), 0);
    ck_assert_int_eq(new_calls, 1);

    /* calloc, realloc and _recalloc take part too. */
    new_calls = 0;
    errno = 0;
    ck_assert_ptr_null(calloc(opaque(SIZE_MAX / 4), 1));
    ck_assert_int_eq(new_calls, 1);
    unsigned char *q = malloc(32);
    ck_assert_ptr_nonnull(q);
    stamp(q, 32);
    new_calls = 0;
    ck_assert_ptr_null(realloc(q, opaque(SIZE_MAX / 4)));
    ck_assert_int_eq(new_calls, 1);
    new_calls = 0;
    ck_assert_ptr_null(_recalloc(q, opaque(SIZE_MAX / 4), 1));
    ck_assert_int_eq(new_calls, 1);
    check_stamp(q, 32);
    free(q);

    ck_assert_int_eq(_set_new_mode(0), 1);
    ck_assert((void *)_set_new_handler(NULL) == (void *)reserve_handler);
    ck_assert_ptr_null((void *)_query_new_handler());
}
END_TEST

static int yes_handler(size_t size)
{
    (void)size;
    new_calls++;
    return 1;
}

START_TEST(t_callnewh_success)
{
    _set_new_handler(yes_handler);
    new_calls = 0;
    ck_assert_int_ne(_callnewh(64), 0);
    ck_assert_int_eq(new_calls, 1);
    _set_new_handler(NULL);
}
END_TEST

/* ------------------------------------------------------------------ invalid parameter */

static int ip_calls;
static void counting_ip_handler(const wchar_t *expression, const wchar_t *function, const wchar_t *file,
                                unsigned int line, uintptr_t reserved)
{
    (void)expression, (void)function, (void)file, (void)line, (void)reserved;
    ip_calls++;
}

START_TEST(t_invalid_parameter_handler)
{
    ck_assert_ptr_null((void *)_get_invalid_parameter_handler());
    ck_assert_ptr_null((void *)_set_invalid_parameter_handler(counting_ip_handler));
    ck_assert((void *)_get_invalid_parameter_handler() == (void *)counting_ip_handler);
    ip_calls = 0;
    errno = 0;
    size_t r = _msize(opaque_ptr(NULL));
    ck_assert_int_eq(ip_calls, 1);
    ck_assert_uint_eq(r, (size_t)-1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert((void *)_set_invalid_parameter_handler(NULL) == (void *)counting_ip_handler);
    ck_assert_ptr_null((void *)_get_invalid_parameter_handler());
}
END_TEST

START_TEST(t_invalid_parameter_other_calls)
{
    _set_invalid_parameter_handler(counting_ip_handler);
    ip_calls = 0;
    errno = 0;
    ck_assert_ptr_null(_expand(opaque_ptr(NULL), 8));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(ip_calls, 1);
    errno = 0;
    ck_assert_ptr_null(_aligned_malloc(8, opaque(3)));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(ip_calls, 2);
    errno = 0;
    ck_assert_int_eq(_set_new_mode(5), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(ip_calls, 3);
    errno = 0;
    ck_assert_int_eq(_heapwalk(opaque_ptr(NULL)), _HEAPBADPTR);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(ip_calls, 4);
    _set_invalid_parameter_handler(NULL);
}
END_TEST

/* ------------------------------------------------------------------ _heapwalk */

START_TEST(t_heapwalk_null)
{
    errno = 0;
    ck_assert_int_eq(_heapwalk(opaque_ptr(NULL)), _HEAPBADPTR);
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

#define WALK_N 2000

static size_t walk_size(size_t i)
{
    if (i == 7)
        return 5 * MiB + 11;
    if (i % 97 == 3)
        return 150000 + i;
    if (i % 13 == 1)
        return 2000 + i * 3;
    return 1 + (i * 37) % 700;
}

/* A run of adjacent free blocks is one free entry, as Windows reports a free region:
 * 50 neighbours freed between two live blocks read as one entry of 50 blocks' bytes,
 * reported once, and a heap with most of its blocks freed has far fewer entries than
 * blocks. */
START_TEST(t_heapwalk_coalesces_free_runs)
{
    enum { N = 4000, RUN = 50, BS = 96 };
    uintptr_t *a = scratch(N * sizeof *a);
    for (size_t i = 0; i < N; i++) {
        unsigned char *p = malloc(BS);
        ck_assert_ptr_nonnull(p);
        memset(p, 0x3c, BS);
        a[i] = (uintptr_t)p;
    }
    qsort(a, N, sizeof *a, cmp_ptr);
    size_t first = 0;   /* RUN + 2 blocks in a row in address order: live, RUN to free, live */
    while (first + RUN + 1 < N && a[first + RUN + 1] - a[first] != (RUN + 1) * (uintptr_t)BS)
        first++;
    ck_assert_uint_lt(first + RUN + 1, N);
    for (size_t i = first + 1; i <= first + RUN; i++) {
        free((void *)a[i]);
        a[i] = 0;
    }
    size_t hits = 0, inside = 0;
    _HEAPINFO e = {0};
    while (_heapwalk(&e) == _HEAPOK) {
        uintptr_t at = (uintptr_t)e._pentry;
        if (at == a[first] + BS) {
            hits++;
            expect(e._useflag == _FREEENTRY && e._size == RUN * BS, "the freed run reads as %s of %zu bytes",
                   e._useflag == _FREEENTRY ? "free" : "used", e._size);
        } else if (at > a[first] + BS && at < a[first + RUN + 1]) {
            inside++;
        }
    }
    expect(hits == 1 && inside == 0, "the run was reported %zu times, %zu entries inside it", hits, inside);
    /* most blocks freed, one in ten kept: entries come near the live count, not N */
    for (size_t i = 0; i < N; i++)
        if (a[i] && i % 10 != 0) {
            free((void *)a[i]);
            a[i] = 0;
        }
    size_t entries = 0, live = 0;
    memset(&e, 0, sizeof e);
    while (_heapwalk(&e) == _HEAPOK) {
        entries++;
        live += e._useflag == _USEDENTRY;
    }
    expect(entries <= 2 * live + 64, "%zu entries for %zu live blocks", entries, live);
    for (size_t i = 0; i < N; i++)
        if (a[i]) {
            const unsigned char *p = (const unsigned char *)a[i];
            expect(p[0] == 0x3c && p[BS - 1] == 0x3c, "block %p changed", (const void *)p);
            free((void *)a[i]);
        }
}
END_TEST

START_TEST(t_heapwalk_full)
{
    uintptr_t *mine = scratch(WALK_N * sizeof *mine);
    unsigned char **blocks = scratch(WALK_N * sizeof *blocks);
    size_t *sizes = scratch(WALK_N * sizeof *sizes);
    int *seen = scratch(WALK_N * sizeof *seen);
    for (size_t i = 0; i < WALK_N; i++) {
        sizes[i] = walk_size(i);
        blocks[i] = malloc(sizes[i]);
        ck_assert_ptr_nonnull(blocks[i]);
        stamp(blocks[i], sizes[i]);
        mine[i] = (uintptr_t)blocks[i];
    }
    /* Free every third one, so the walk crosses free entries too. */
    for (size_t i = 0; i < WALK_N; i += 3) {
        check_stamp(blocks[i], sizes[i]);
        free(blocks[i]);
        blocks[i] = NULL;
    }
    /* Sort the live ones with their indices: a sorted (address, index) scheme. */
    size_t live = 0;
    for (size_t i = 0; i < WALK_N; i++)
        if (blocks[i])
            mine[live++] = (uintptr_t)blocks[i];
    qsort(mine, live, sizeof *mine, cmp_ptr);

    size_t cap = 4 * 1024 * 1024;
    uintptr_t *all = scratch(cap * sizeof *all);
    size_t count = 0, descents = 0;
    uintptr_t prev = 0;
    _HEAPINFO e = {0};
    int r;
    while ((r = _heapwalk(&e)) == _HEAPOK) {
        ck_assert_uint_lt(count, cap);
        uintptr_t a = (uintptr_t)e._pentry;
        all[count++] = a;
        if (count > 1 && a <= prev)
            descents++;
        prev = a;
        expect(e._useflag == _USEDENTRY || e._useflag == _FREEENTRY, "bad _useflag %d", e._useflag);
        expect(e._size > 0, "entry %p with size 0", (void *)e._pentry);
        if (e._useflag != _USEDENTRY)
            continue;
        uintptr_t *hit = bsearch(&a, mine, live, sizeof *mine, cmp_ptr);
        if (!hit)
            continue;
        size_t idx = (size_t)(hit - mine);
        seen[idx]++;
        size_t want = _msize((void *)a);
        for (size_t i = 0; i < WALK_N; i++)
            if ((uintptr_t)blocks[i] == a)
                want = sizes[i];
        expect(e._size == want, "walk: block %p has _size %zu, requested %zu", (void *)a, e._size, want);
    }
    ck_assert_int_eq(r, _HEAPEND);
    /* Nothing allocated since: a fresh walk from NULL gives the same number of entries. */
    memset(&e, 0, sizeof e);
    size_t again = 0;
    while (_heapwalk(&e) == _HEAPOK)
        again++;
    ck_assert_uint_eq(again, count);
    for (size_t i = 0; i < live; i++)
        expect(seen[i] == 1, "live block %p seen %d times by the walk", (void *)mine[i], seen[i]);
    /* No entry twice. */
    qsort(all, count, sizeof *all, cmp_ptr);
    for (size_t i = 1; i < count; i++)
        expect(all[i] != all[i - 1], "entry %p returned twice", (void *)all[i]);
    /* Address order inside a segment: the walk only goes back at segment changes. */
    crtheap_stats_t st;
    ck_assert_int_eq(crtheap_get_stats(&st), 0);
    expect(descents < st.segments, "walk went back in address %zu times with %zu segments", descents, st.segments);
    for (size_t i = 0; i < WALK_N; i++)
        if (blocks[i]) {
            check_stamp(blocks[i], sizes[i]);
            free(blocks[i]);
        }
}
END_TEST

START_TEST(t_heapwalk_bad_node)
{
    unsigned char *p = malloc(64);
    unsigned char *big = malloc(300000);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(big);
    stamp(p, 64);
    stamp(big, 300000);
    int local = 0;
    void *bad[] = {p + 8, p + 1, big + 4096, big + 17, &local, (void *)0x10, (void *)(uintptr_t)0x7f0000001000ull,
                   (void *)t_heapwalk_bad_node};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        _HEAPINFO e = {._pentry = bad[i], ._size = 0, ._useflag = _USEDENTRY};
        int r = _heapwalk(&e);
        expect(r == _HEAPBADNODE, "_heapwalk from non-entry %p returned %d, expected _HEAPBADNODE", bad[i], r);
    }
    /* A huge block that was freed and unmapped. */
    unsigned char *h = malloc(8 * MiB);
    ck_assert_ptr_nonnull(h);
    stamp(h, 8 * MiB);
    check_stamp(h, 8 * MiB);
    free(h);
    _heapmin();
    _HEAPINFO e = {._pentry = (int *)(h + 100), ._size = 0, ._useflag = _USEDENTRY};
    int r = _heapwalk(&e);
    expect(r == _HEAPBADNODE, "_heapwalk from unmapped %p returned %d", (void *)(h + 100), r);
    check_stamp(p, 64);
    check_stamp(big, 300000);
    free(p);
    free(big);
}
END_TEST

/* A walk goes on from the entry it returned even after that entry's page went away: it
 * resumes at the next address instead of failing. */
START_TEST(t_heapwalk_resumes_after_page_retired)
{
    enum { N = 64, SIZE = 1024 };
    unsigned char *keep = malloc(100);   /* the heap keeps one entry */
    ck_assert_ptr_nonnull(keep);
    stamp(keep, 100);
    unsigned char *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = malloc(SIZE);
        ck_assert_ptr_nonnull(b[i]);
        stamp(b[i], SIZE);
    }
    unsigned char *target = b[N / 2];
    _HEAPINFO e = {0};
    int r;
    while ((r = _heapwalk(&e)) == _HEAPOK && (unsigned char *)e._pentry != target)
        ;
    ck_assert_int_eq(r, _HEAPOK);
    for (int i = 0; i < N; i++) {
        check_stamp(b[i], SIZE);
        free(b[i]);
    }
    ck_assert_int_eq(_heapmin(), 0);   /* retires the emptied page: its slices are free now */
    /* the resumed walk must give exactly the entries above target that a fresh walk of
     * the same heap gives (nothing allocates in between: the lists are static) */
    enum { MAX_ENTRIES = 1 << 16 };
    static void *resumed[MAX_ENTRIES], *fresh[MAX_ENTRIES];
    size_t n_resumed = 0, n_fresh = 0;
    while ((r = _heapwalk(&e)) == _HEAPOK) {
        expect((unsigned char *)e._pentry > target, "walk went back from %p to %p", (void *)target, (void *)e._pentry);
        ck_assert_uint_lt(n_resumed, MAX_ENTRIES);
        resumed[n_resumed++] = e._pentry;
    }
    ck_assert_int_eq(r, _HEAPEND);
    _HEAPINFO f = {0};
    while ((r = _heapwalk(&f)) == _HEAPOK)
        if ((unsigned char *)f._pentry > target) {
            ck_assert_uint_lt(n_fresh, MAX_ENTRIES);
            fresh[n_fresh++] = f._pentry;
        }
    ck_assert_int_eq(r, _HEAPEND);
    ck_assert_uint_eq(n_resumed, n_fresh);
    for (size_t k = 0; k < n_fresh; k++)
        expect(resumed[k] == fresh[k], "entry %zu: resumed walk %p, fresh walk %p", k, resumed[k], fresh[k]);
    /* a pointer the walk never returned is still checked strictly */
    _HEAPINFO bad = {._pentry = (int *)(void *)(target + 8)};
    ck_assert_int_eq(_heapwalk(&bad), _HEAPBADNODE);
    check_stamp(keep, 100);
    free(keep);
}
END_TEST

static atomic_int walk_stop;
static atomic_int walk_thread_error;

static void *churn_thread(void *arg)
{
    uint64_t rng = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    enum { SLOTS = 512 };
    unsigned char *slot[SLOTS] = {0};
    size_t size[SLOTS] = {0};
    while (!atomic_load(&walk_stop)) {
        size_t i = rng_next(&rng) % SLOTS;
        if (slot[i]) {
            if (check_all(slot[i], size[i], block_key(slot[i], size[i])) != size[i])
                atomic_store(&walk_thread_error, 1);
            free(slot[i]);
            slot[i] = NULL;
        } else {
            uint64_t r = rng_next(&rng);
            size[i] = (r % 16 == 0) ? 1 + r % 200000 : 1 + r % 2000;
            slot[i] = malloc(size[i]);
            if (!slot[i]) {
                atomic_store(&walk_thread_error, 2);
                continue;
            }
            fill_all(slot[i], size[i], block_key(slot[i], size[i]));
        }
    }
    for (size_t i = 0; i < SLOTS; i++)
        if (slot[i]) {
            if (check_all(slot[i], size[i], block_key(slot[i], size[i])) != size[i])
                atomic_store(&walk_thread_error, 1);
            free(slot[i]);
        }
    return NULL;
}

START_TEST(t_heapwalk_concurrent)
{
    pthread_t th[2];
    atomic_store(&walk_stop, 0);
    for (uintptr_t i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, churn_thread, (void *)(i + 1)), 0);
    size_t cap = 4 * 1024 * 1024;
    uintptr_t *all = scratch(cap * sizeof *all);
    int ends[8] = {0};
    size_t dups = 0, walks = 0, backwards = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        _HEAPINFO e = {0};
        size_t count = 0;
        int r;
        while ((r = _heapwalk(&e)) == _HEAPOK && count < cap) {
            backwards += count && (uintptr_t)e._pentry <= all[count - 1];   /* address order */
            all[count++] = (uintptr_t)e._pentry;
        }
        if (r < 0 && r >= -6)
            ends[-r]++;
        else
            ends[0]++;
        qsort(all, count, sizeof *all, cmp_ptr);
        for (size_t i = 1; i < count; i++)
            if (all[i] == all[i - 1])
                dups++;
        walks++;
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 1500000000L);
    atomic_store(&walk_stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(atomic_load(&walk_thread_error), 0);
    expect(dups == 0, "%zu entries returned twice within a walk (over %zu walks)", dups, walks);
    expect(backwards == 0, "%zu entries out of address order (over %zu walks)", backwards, walks);
    /* A walk goes on from the entry it returned even when that entry went away meanwhile:
     * every walk reaches _HEAPEND. */
    expect(ends[-_HEAPEND] == (int)walks,
           "of %zu concurrent walks: %d ended _HEAPEND, %d _HEAPBADNODE, %d _HEAPBADBEGIN, %d other", walks,
           ends[-_HEAPEND], ends[-_HEAPBADNODE], ends[-_HEAPBADBEGIN], ends[0]);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
}
END_TEST

/* ------------------------------------------------------------------ _heapchk */

START_TEST(t_heapchk_ok)
{
    unsigned char *p[100];
    for (size_t i = 0; i < 100; i++) {
        p[i] = malloc(walk_size(i));
        ck_assert_ptr_nonnull(p[i]);
        stamp(p[i], walk_size(i));
    }
    for (size_t i = 0; i < 100; i += 2) {
        check_stamp(p[i], walk_size(i));
        free(p[i]);
    }
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    for (size_t i = 1; i < 100; i += 2) {
        check_stamp(p[i], walk_size(i));
        free(p[i]);
    }
    ck_assert_int_eq(_heapchk(), _HEAPOK);
}
END_TEST

#define DMG_N 64
static unsigned char *dmg[DMG_N];

static void damage_setup(void)
{
    for (size_t i = 0; i < DMG_N; i++) {
        dmg[i] = malloc(48);
        ck_assert_ptr_nonnull(dmg[i]);
        stamp(dmg[i], 48);
    }
    ck_assert_int_eq(_heapchk(), _HEAPOK);
}

static void expect_damage_found(const char *what)
{
    int r = _heapchk();
    expect(r == _HEAPBADNODE || r == _HEAPBADBEGIN, "%s: _heapchk returned %d, expected _HEAPBADNODE/_HEAPBADBEGIN",
           what, r);
}

START_TEST(t_heapchk_wild_link)
{
    damage_setup();
    unsigned char *v = dmg[20];
    check_stamp(v, 48);
    free(v);
    uint64_t wild = 0x4141414141414141ull;
    memcpy(opaque_ptr(v), &wild, 8);
    expect_damage_found("wild free-list link");
}
END_TEST

START_TEST(t_heapchk_wild_link_canonical)
{
    damage_setup();
    unsigned char *v = dmg[20];
    check_stamp(v, 48);
    free(v);
    uintptr_t wild = (uintptr_t)dmg[20] + 123 * 4096 * 1024ull; /* canonical, elsewhere */
    memcpy(opaque_ptr(v), &wild, 8);
    expect_damage_found("free-list link to another region");
}
END_TEST

START_TEST(t_heapchk_write_after_free_interior)
{
    damage_setup();
    unsigned char *v = dmg[30];
    check_stamp(v, 48);
    free(v);
    /* Point the link at the middle of another block of the same page. */
    size_t j = 0;
    for (size_t i = 0; i < DMG_N; i++)
        if (i != 30 && (uintptr_t)dmg[i] >> 16 == (uintptr_t)v >> 16)
            j = i;
    ck_assert_uint_ne(j, 0);
    uintptr_t mid = (uintptr_t)dmg[j] + 8;
    memcpy(opaque_ptr(v), &mid, 8);
    expect_damage_found("free-list link into a block's middle");
}
END_TEST

START_TEST(t_heapchk_overrun_into_free)
{
    damage_setup();
    /* Find two neighbours a, b = a + 48 (or the block stride). */
    size_t ia = DMG_N, ib = DMG_N;
    for (size_t i = 10; i < DMG_N && ia == DMG_N; i++)
        for (size_t k = 0; k < DMG_N; k++)
            if (dmg[k] > dmg[i] && (size_t)(dmg[k] - dmg[i]) == malloc_usable_size(dmg[i])) {
                ia = i, ib = k;
                break;
            }
    ck_assert_uint_ne(ia, DMG_N);
    size_t stride = (size_t)(dmg[ib] - dmg[ia]);
    check_stamp(dmg[ib], 48);
    free(dmg[ib]);
    /* The bug: a's writer runs 8 bytes past its block. */
    unsigned char *a = opaque_ptr(dmg[ia]);
    memset(a, 'X', stride + 8);
    expect_damage_found("buffer overrun into the next free block");
}
END_TEST

static void *free_in_thread(void *p)
{
    free(p);
    return NULL;
}

START_TEST(t_heapchk_remote_link)
{
    /* A block freed by another thread: its link is on the page's remote queue. */
    damage_setup();
    unsigned char *v = dmg[40];
    check_stamp(v, 48);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, free_in_thread, v), 0);
    pthread_join(t, NULL);
    uint64_t wild = 0x4242424242424242ull;
    memcpy(opaque_ptr(v), &wild, 8);
    expect_damage_found("wild link on the cross-thread free queue");
}
END_TEST

struct free_many { unsigned char **blocks; size_t count; };

static void *free_many_in_thread(void *arg)
{
    struct free_many *m = arg;
    for (size_t i = 0; i < m->count; i++) {
        check_stamp(m->blocks[i], 48);
        free(m->blocks[i]);
    }
    return NULL;
}

START_TEST(t_heapchk_remote_link_every_list)
{
    /* Another thread's frees spread over the owner's remote lists (it takes them in
     * turn): a wild link is found whichever list holds it. */
    enum { FREED = 8 };
    for (size_t damaged = 0; damaged < FREED; damaged++) {
        damage_setup();
        struct free_many m = { &dmg[40], FREED };
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, free_many_in_thread, &m), 0);
        pthread_join(t, NULL);
        ck_assert_int_eq(_heapchk(), _HEAPOK);
        unsigned char *v = dmg[40 + damaged];
        uint64_t saved, wild = 0x4343434343434343ull;
        memcpy(&saved, opaque_ptr(v), 8);
        memcpy(opaque_ptr(v), &wild, 8);
        expect_damage_found("wild link on one of the cross-thread free queues");
        memcpy(opaque_ptr(v), &saved, 8);   /* repaired: the next malloc drains the lists */
        ck_assert_int_eq(_heapchk(), _HEAPOK);
        for (size_t i = 0; i < DMG_N; i++)
            if (i < 40 || i >= 40 + FREED) {
                check_stamp(dmg[i], 48);
                free(dmg[i]);
            }
    }
}
END_TEST

/* ------------------------------------------------------------------ _heapset */

START_TEST(t_heapset)
{
    enum { N = 64 };
    unsigned char *p[N], *other[N];
    for (size_t i = 0; i < N; i++) {
        p[i] = malloc(256);
        other[i] = malloc(walk_size(i));
        ck_assert_ptr_nonnull(p[i]);
        ck_assert_ptr_nonnull(other[i]);
        stamp(p[i], 256);
        stamp(other[i], walk_size(i));
    }
    unsigned char *victim = p[N / 2];
    check_stamp(victim, 256);
    free(victim);
    p[N / 2] = NULL;
    ck_assert_int_eq(_heapset(0xAB), _HEAPOK);
    for (size_t i = 0; i < N; i++) {
        if (p[i])
            check_stamp(p[i], 256);
        check_stamp(other[i], walk_size(i));
    }
    check_bytes(victim, 8, 256, 0xAB, "freed block after _heapset(0xAB)");
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    for (size_t i = 0; i < N; i++) {
        if (p[i])
            free(p[i]);
        free(other[i]);
    }
    ck_assert_int_eq(_heapset(0x00), _HEAPOK);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
}
END_TEST

/* ------------------------------------------------------------------ _heapadd */

static unsigned char donate_big[1 << 20] __attribute__((aligned(4096)));
static unsigned char donate_odd[256 * 1024] __attribute__((aligned(65536)));
static unsigned char donate_tiny[100];

START_TEST(t_heapadd_bad)
{
    errno = 0;
    ck_assert_int_eq(_heapadd(opaque_ptr(NULL), MiB), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(_heapadd(donate_tiny, sizeof donate_tiny), -1);
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(t_heapadd_unaligned)
{
    /* 64 KiB + 100 bytes starting 100 bytes past a 64 KiB boundary: 16 whole OS pages. */
    errno = 0;
    int r = _heapadd(donate_odd + 100, 64 * KiB + 100);
    expect(r == 0, "_heapadd(unaligned 64 KiB + 100) returned %d errno %d", r, errno);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    /* The heap still works. */
    for (size_t i = 1; i < 3000; i += 7) {
        unsigned char *p = malloc(i);
        ck_assert_ptr_nonnull(p);
        stamp(p, i);
        check_stamp(p, i);
        free(p);
    }
}
END_TEST

START_TEST(t_heapadd_used)
{
    unsigned char *lo = donate_big, *hi = donate_big + sizeof donate_big;
    ck_assert_int_eq(_heapadd(donate_big, sizeof donate_big), 0);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    size_t cap = 1 << 20, n = 0;
    unsigned char **blocks = scratch(cap * sizeof *blocks);
    unsigned char *inside = NULL;
    for (; n < cap && !inside; n++) {
        size_t sz = 16 + (n % 7) * 16;
        blocks[n] = malloc(sz);
        ck_assert_ptr_nonnull(blocks[n]);
        stamp(blocks[n], sz);
        if (blocks[n] >= lo && blocks[n] < hi)
            inside = blocks[n];
    }
    expect(inside != NULL, "none of %zu small blocks came from the donated region", n);
    size_t in_region = 0;
    _HEAPINFO e = {0};
    int r;
    while ((r = _heapwalk(&e)) == _HEAPOK)
        if ((unsigned char *)e._pentry >= lo && (unsigned char *)e._pentry < hi)
            in_region++;
    ck_assert_int_eq(r, _HEAPEND);
    expect(in_region > 0, "_heapwalk reports no entry inside the donated region");
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    crtheap_stats_t st;
    ck_assert_int_eq(crtheap_get_stats(&st), 0);
    expect(st.donated >= 512 * KiB, "stats.donated = %zu", st.donated);
    for (size_t i = 0; i < n; i++) {
        check_stamp(blocks[i], 16 + (i % 7) * 16);
        free(blocks[i]);
    }
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    ck_assert_int_eq(_heapmin(), 0); /* never unmaps donated memory: writing it must still work */
    ck_assert_int_eq(_heapchk(), _HEAPOK);
}
END_TEST

static int all_ones(const unsigned char *p, size_t n)   /* every byte 0x11 */
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0x11)
            return 0;
    return 1;
}

/* A donated region whose last slice is short (3 slices and 8 KiB): a large block, or
 * one grown by realloc, never ends past it, and calloc there reads zero. */
static unsigned char donate_short[3 * 65536 + 8192] __attribute__((aligned(65536)));
START_TEST(t_heapadd_short_slice_large_blocks)
{
    unsigned char *lo = donate_short, *hi = donate_short + sizeof donate_short;
    memset(donate_short, 0xEE, sizeof donate_short);   /* what calloc must not show */
    ck_assert_int_eq(_heapadd(donate_short, sizeof donate_short), 0);
    const size_t sizes[] = { 150000, 200000, 204800, 204900, 230000 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        unsigned char *p = calloc(1, n);
        ck_assert_ptr_nonnull(p);
        expect(p >= hi || p + n <= hi, "a block of %zu at %p ends past the donated region's end %p", n, (void *)p,
               (void *)hi);
        expect(is_zero(p, n), "calloc(1, %zu) in donated memory is not zero", n);
        memset(p, 0x11, n);
        unsigned char *q = realloc(p, n + 60000);   /* into the slice after, or the short one */
        ck_assert_ptr_nonnull(q);
        expect(q >= hi || q + n + 60000 <= hi || q < lo, "realloc to %zu at %p ends past the donated region",
               n + 60000, (void *)q);
        expect(all_ones(q, n), "realloc lost data");
        memset(q, 0x22, n + 60000);
        free(q);
    }
    ck_assert_int_eq(_heapchk(), _HEAPOK);
}
END_TEST

/* A donated region whose last slice is one OS page: no class's page there may be empty
 * (a page with no block once aborted malloc as a corrupted free list).  Blocks of every
 * class up to 8 KiB, written and checked; the heap stays consistent. */
static unsigned char donate_page_tail[2 * 65536 + 4096] __attribute__((aligned(65536)));
START_TEST(t_heapadd_one_page_last_slice)
{
    ck_assert_int_eq(_heapadd(donate_page_tail, sizeof donate_page_tail), 0);
    enum { PER_SIZE = 40 };
    static unsigned char *blocks[PER_SIZE * 80];
    static size_t sizes[PER_SIZE * 80];
    size_t count = 0;
    for (size_t n = 16; n <= 8192; n += n < 1024 ? 16 : n / 8)
        for (int k = 0; k < PER_SIZE && count < PER_SIZE * 80; k++) {
            unsigned char *p = malloc(n);
            ck_assert_ptr_nonnull(p);
            fill_all(p, n, block_key(p, n));
            blocks[count] = p;
            sizes[count++] = n;
        }
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    for (size_t i = 0; i < count; i++) {
        expect(check_all(blocks[i], sizes[i], block_key(blocks[i], sizes[i])) == sizes[i],
               "block of %zu at %p changed", sizes[i], (void *)blocks[i]);
        free(blocks[i]);
    }
    ck_assert_int_eq(_heapchk(), _HEAPOK);
}
END_TEST

/* Two donations that touch: each is its own segment, and every block and walk entry
 * belongs to the one it lies in (a donated segment's slice 0 lies in its neighbour). */
START_TEST(t_heapadd_adjacent)
{
    unsigned char *lo = donate_big, *mid = donate_big + sizeof donate_big / 2, *hi = donate_big + sizeof donate_big;
    ck_assert_int_eq(_heapadd(lo, (size_t)(mid - lo)), 0);
    ck_assert_int_eq(_heapadd(mid, (size_t)(hi - mid)), 0);
    enum { MAX_BLOCKS = 4096, SIZE = 8000 };
    unsigned char **blocks = scratch(MAX_BLOCKS * sizeof *blocks);
    size_t n = 0, in_low = 0, in_high = 0;
    for (; n < MAX_BLOCKS && (in_low == 0 || in_high == 0); n++) {
        blocks[n] = malloc(SIZE);
        ck_assert_ptr_nonnull(blocks[n]);
        stamp(blocks[n], SIZE);
        in_low += blocks[n] >= lo && blocks[n] < mid;
        in_high += blocks[n] >= mid && blocks[n] < hi;
        if (blocks[n] >= lo && blocks[n] < hi)
            expect(blocks[n] + SIZE <= (blocks[n] < mid ? mid : hi), "block %p crosses its donation's end", (void *)blocks[n]);
    }
    expect(in_low > 0 && in_high > 0, "after %zu blocks: %zu in the lower donation, %zu in the upper", n, in_low, in_high);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    /* the walk reports each of the test's blocks in the donations as in use (the test
     * framework's own blocks may lie there too) */
    qsort(blocks, n, sizeof *blocks, cmp_ptr);
    size_t ours_reported = 0;
    _HEAPINFO e = {0};
    int r;
    while ((r = _heapwalk(&e)) == _HEAPOK) {
        unsigned char *a = (unsigned char *)e._pentry;
        if (a >= lo && a < hi) {
            expect(a + e._size <= (a < mid ? mid : hi), "entry %p size %zu crosses its donation's end", (void *)a, e._size);
            if (e._useflag == _USEDENTRY && bsearch(&a, blocks, n, sizeof *blocks, cmp_ptr)) {
                ck_assert_uint_eq(e._size, SIZE);
                ours_reported++;
            }
        }
    }
    ck_assert_int_eq(r, _HEAPEND);
    ck_assert_uint_eq(ours_reported, in_low + in_high);
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(_msize(blocks[i]), SIZE);
        check_stamp(blocks[i], SIZE);
        free(blocks[i]);
    }
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    ck_assert_int_eq(_heapmin(), 0);
}
END_TEST

/* ------------------------------------------------------------------ suite */

static Suite *crt_suite(void)
{
    Suite *s = suite_create("crt");
    TCase *tc = tcase_create("crt");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_msize_exact_small_to_200000);
    tcase_add_test(tc, t_msize_exact_calloc_realloc);
    tcase_add_test(tc, t_msize_exact_huge);
    tcase_add_test(tc, t_msize_null);
    tcase_add_test(tc, t_expand_shrink_in_place);
    tcase_add_test(tc, t_requested_size_far_below_block);
    tcase_add_test(tc, t_expand_cannot_grow);
    tcase_add_test(tc, t_expand_grows_large_block);
    tcase_add_test(tc, t_expand_null);
    tcase_add_test(tc, t_expand_too_big);
    tcase_add_test(tc, t_expand_zero_is_one);
    tcase_add_test(tc, t_recalloc_zeroes_growth);
    tcase_add_test(tc, t_recalloc_from_zero);
    tcase_add_test(tc, t_recalloc_overflow);
    tcase_add_test(tc, t_aligned_malloc_all_alignments);
    tcase_add_test(tc, t_aligned_offset_malloc);
    tcase_add_test(tc, t_aligned_bad_args);
    tcase_add_test(tc, t_aligned_realloc_keeps_data);
    tcase_add_test(tc, t_aligned_offset_realloc);
    tcase_add_test(tc, t_aligned_recalloc_zeroes_growth);
    tcase_add_test(tc, t_new_mode_bad);
    tcase_add_test(tc, t_new_handler_protocol);
    tcase_add_test(tc, t_callnewh_success);
    tcase_add_test(tc, t_invalid_parameter_handler);
    tcase_add_test(tc, t_invalid_parameter_other_calls);
    tcase_add_test(tc, t_heapwalk_null);
    tcase_add_test(tc, t_heapwalk_full);
    tcase_add_test(tc, t_heapwalk_coalesces_free_runs);
    tcase_add_test(tc, t_heapwalk_bad_node);
    tcase_add_test(tc, t_heapwalk_resumes_after_page_retired);
    tcase_add_test(tc, t_heapwalk_concurrent);
    tcase_add_test(tc, t_heapchk_ok);
    tcase_add_test(tc, t_heapchk_wild_link);
    tcase_add_test(tc, t_heapchk_wild_link_canonical);
    tcase_add_test(tc, t_heapchk_write_after_free_interior);
    tcase_add_test(tc, t_heapchk_overrun_into_free);
    tcase_add_test(tc, t_heapchk_remote_link);
    tcase_add_test(tc, t_heapchk_remote_link_every_list);
    tcase_add_test(tc, t_heapset);
    tcase_add_test(tc, t_heapadd_bad);
    tcase_add_test(tc, t_heapadd_unaligned);
    tcase_add_test(tc, t_heapadd_used);
    tcase_add_test(tc, t_heapadd_short_slice_large_blocks);
    tcase_add_test(tc, t_heapadd_one_page_last_slice);
    tcase_add_test(tc, t_heapadd_adjacent);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(crt_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
