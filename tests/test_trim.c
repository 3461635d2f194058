/* test_trim.c — giving memory back (SPEC §2.2): _heapmin, malloc_trim, crtheap_trim and the
 * time-based purge.  RSS is the Anonymous: line of /proc/self/smaps_rollup, as SPEC §3.1.
 *
 * Bounds are relative (to the live bytes and to the peak), never absolute times.  Each test
 * runs in its own forked child (CK_FORK), so RSS left by one test does not count in another. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crtheap.h"
#include "common.h"
#include "race.h"
#include "suite.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* Anonymous resident bytes of this process, 0 if unknown. */
static size_t anon_bytes(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f)
        return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Anonymous: %zu kB", &kb) == 1)
            break;
    fclose(f);
    return kb * KiB;
}

static void *scratch(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    ck_assert_ptr_ne(p, MAP_FAILED);
    return p;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A set of blocks: pointers and sizes kept outside the heap (mmap), so they do not count. */
typedef struct blockset {
    unsigned char **p;
    uint32_t *n;
    size_t count, cap, bytes;
} blockset_t;

static void set_init(blockset_t *s, size_t cap)
{
    s->p = scratch(cap * sizeof *s->p);
    s->n = scratch(cap * sizeof *s->n);
    s->count = 0;
    s->cap = cap;
    s->bytes = 0;
}

/* Mostly small sizes (16..1024), some medium (up to 16 KiB), few up to 256 KiB. */
/* Allocate mixed blocks until `total` bytes; each is written in full (pattern). */
static int set_fill(blockset_t *s, size_t total, uint64_t seed)
{
    uint64_t rng = seed | 1;
    while (s->bytes < total && s->count < s->cap) {
        size_t n = mixed_block_size(&rng);
        unsigned char *p = malloc(n);
        if (!p)
            return -1;
        fill_all(p, n, block_key(p, n));
        s->p[s->count] = p;
        s->n[s->count] = (uint32_t)n;
        s->count++;
        s->bytes += n;
    }
    return 0;
}

/* Check and free blocks [from, to); returns the number found corrupted. */
static size_t set_free(blockset_t *s, size_t from, size_t to)
{
    size_t bad = 0;
    for (size_t i = from; i < to; i++) {
        if (!s->p[i])
            continue;
        if (check_all(s->p[i], s->n[i], block_key(s->p[i], s->n[i])) != s->n[i])
            bad++;
        free(s->p[i]);
        s->p[i] = NULL;
    }
    return bad;
}

/* Bytes of the blocks still live in s. */
static size_t set_live(const blockset_t *s)
{
    size_t live = 0;
    for (size_t i = 0; i < s->count; i++)
        if (s->p[i])
            live += s->n[i];
    return live;
}

static size_t set_check(const blockset_t *s)
{
    size_t bad = 0;
    for (size_t i = 0; i < s->count; i++)
        if (s->p[i] && check_all(s->p[i], s->n[i], block_key(s->p[i], s->n[i])) != s->n[i])
            bad++;
    return bad;
}

#define SET_CAP (1u << 20)

static void report(const char *what, size_t base, size_t peak, size_t after, size_t live)
{
    fprintf(stderr, "%s: baseline %zu MiB, peak %+zd MiB, after %+zd MiB, live %zu MiB (%.2fx live)\n", what,
            base / MiB, (ssize_t)(peak - base) / (ssize_t)MiB, (ssize_t)(after - base) / (ssize_t)MiB, live / MiB,
            live ? (double)(after > base ? after - base : 0) / (double)live : 0.0);
}

/* After a trim: RSS over the baseline within 3x live, and under a third of the peak's. */
static void expect_trimmed(const char *what, size_t base, size_t peak, size_t after, size_t live)
{
    report(what, base, peak, after, live);
    size_t grown = after > base ? after - base : 0, peak_grown = peak - base;
    expect(grown <= 3 * live + 4 * MiB, "%s: RSS %zu MiB over baseline after trim, live %zu MiB (> 3x)", what,
           grown / MiB, live / MiB);
    expect(grown < peak_grown / 3, "%s: RSS %zu MiB over baseline after trim, peak was %zu MiB", what, grown / MiB,
           peak_grown / MiB);
}

/* ------------------------------------------------------------------ _heapmin */

START_TEST(t_heapmin_returns_zero)
{
    ck_assert_int_eq(_heapmin(), 0);
    unsigned char *p = malloc(1000);
    ck_assert_ptr_nonnull(p);
    fill_all(p, 1000, 1);
    ck_assert_int_eq(_heapmin(), 0);
    ck_assert_uint_eq(check_all(p, 1000, 1), 1000);
    free(p);
    ck_assert_int_eq(_heapmin(), 0);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
}
END_TEST

START_TEST(t_heapmin_single_thread)
{
    crtheap_option_set(CRTHEAP_OPTION_PURGE_DELAY_MS, -1); /* only _heapmin gives back */
    blockset_t s;
    set_init(&s, SET_CAP);
    size_t base = anon_bytes();
    ck_assert_int_eq(set_fill(&s, 200 * MiB, 42), 0);
    size_t peak = anon_bytes();
    size_t n90 = s.count * 9 / 10;
    ck_assert_uint_eq(set_free(&s, 0, n90), 0); /* the oldest 90% */
    size_t live = set_live(&s);
    ck_assert_int_eq(_heapmin(), 0);
    size_t after = anon_bytes();
    expect_trimmed("oldest 90%", base, peak, after, live);
    ck_assert_uint_eq(set_check(&s), 0);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    ck_assert_uint_eq(set_free(&s, n90, s.count), 0);
}
END_TEST

/* ------------------------------------------------------------------ with threads */

typedef struct worker {
    blockset_t set;
    pthread_barrier_t *barrier;
    int exit_early;  /* free own share and exit instead of waiting */
    size_t own_bad;
} worker_t;

/* Each worker: allocate 100 MiB, wait; main frees the oldest 45% cross-thread while the
 * worker frees the next 45% itself; then either exit (exit_early) or wait on the barrier
 * while main trims, and free the rest afterwards. */
static void *worker_main(void *arg)
{
    worker_t *w = arg;
    set_fill(&w->set, 100 * MiB, (uint64_t)(uintptr_t)w);
    size_t n45 = w->set.count * 45 / 100, n90 = w->set.count * 9 / 10;
    pthread_barrier_wait(w->barrier); /* 1: filled */
    w->own_bad += set_free(&w->set, n45, n90);
    if (w->exit_early)
        return NULL;
    pthread_barrier_wait(w->barrier); /* 2: own share freed */
    pthread_barrier_wait(w->barrier); /* 3: main trimmed and measured */
    w->own_bad += set_free(&w->set, n90, w->set.count);
    return NULL;
}

static void threads_case(int exit_early)
{
    crtheap_option_set(CRTHEAP_OPTION_PURGE_DELAY_MS, -1);
    enum { T = 2 };
    worker_t w[T];
    pthread_t th[T];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, T + 1);
    for (int i = 0; i < T; i++) {
        memset(&w[i], 0, sizeof w[i]);
        set_init(&w[i].set, SET_CAP);
        w[i].barrier = &bar;
        w[i].exit_early = exit_early;
    }
    size_t base = anon_bytes();
    for (int i = 0; i < T; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    pthread_barrier_wait(&bar); /* 1 */
    size_t peak = anon_bytes();
    size_t bad = 0;
    for (int i = 0; i < T; i++)
        bad += set_free(&w[i].set, 0, w[i].set.count * 45 / 100); /* cross-thread frees */
    if (exit_early) {
        for (int i = 0; i < T; i++)
            pthread_join(th[i], NULL);
    } else {
        pthread_barrier_wait(&bar); /* 2 */
    }
    ck_assert_uint_eq(bad, 0);
    size_t live = 0;
    for (int i = 0; i < T; i++)
        live += set_live(&w[i].set);
    ck_assert_int_eq(_heapmin(), 0);
    size_t after = anon_bytes();
    expect_trimmed(exit_early ? "threads exited" : "idle live threads", base, peak, after, live);
    for (int i = 0; i < T; i++)
        ck_assert_uint_eq(set_check(&w[i].set), 0);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    if (exit_early) {
        for (int i = 0; i < T; i++)
            ck_assert_uint_eq(set_free(&w[i].set, 0, w[i].set.count), 0);
    } else {
        pthread_barrier_wait(&bar); /* 3 */
        for (int i = 0; i < T; i++)
            pthread_join(th[i], NULL);
    }
    for (int i = 0; i < T; i++)
        ck_assert_uint_eq(w[i].own_bad, 0);
    pthread_barrier_destroy(&bar);
}

START_TEST(t_heapmin_idle_threads)
{
    threads_case(0);
}
END_TEST

START_TEST(t_heapmin_exited_threads)
{
    threads_case(1);
}
END_TEST

/* ------------------------------------------------------------------ remote frees */

/* Blocks of this thread's heap that another live thread freed wait on this heap's remote
 * list until it drains them; this thread never allocates again, yet _heapmin must give
 * back the OS pages they cover. */
enum { REMOTE_BLOCKS = 48, REMOTE_SIZE = 1024 };

struct remote_share {
    unsigned char **blocks;
    pthread_barrier_t *barrier;
};

static void *free_from_other_thread(void *arg)
{
    struct remote_share *c = arg;
    void *own = malloc(16);   /* a heap of its own */
    ck_assert_ptr_nonnull(own);
    memset(own, 7, 16);
    for (int i = 0; i < REMOTE_BLOCKS; i++) {
        ck_assert_uint_eq(check_all(c->blocks[i], REMOTE_SIZE, block_key(c->blocks[i], REMOTE_SIZE)), REMOTE_SIZE);
        free(c->blocks[i]);
    }
    pthread_barrier_wait(c->barrier);   /* 1: freed, queued for main's heap */
    pthread_barrier_wait(c->barrier);   /* 2: main trimmed and measured */
    free(own);
    return NULL;
}

/* OS pages wholly inside [p, p + n) that are resident. */
static size_t resident_pages_in(const void *p, size_t n)
{
    size_t pages;
    return resident_inner_pages(p, n, &pages);
}

START_TEST(t_heapmin_drains_remote_frees)
{
    crtheap_option_set(CRTHEAP_OPTION_PURGE_DELAY_MS, -1);   /* only _heapmin gives back */
    unsigned char *blocks[REMOTE_BLOCKS];
    for (int i = 0; i < REMOTE_BLOCKS; i++) {
        blocks[i] = malloc(REMOTE_SIZE);
        ck_assert_ptr_nonnull(blocks[i]);
        fill_all(blocks[i], REMOTE_SIZE, block_key(blocks[i], REMOTE_SIZE));
    }
    /* the longest run of blocks that lie one after the other (a fresh page hands them out
     * in address order; the heap this test inherits may hold a partly used one) */
    int run_at = 0, run_len = 1;
    for (int i = 0, len = 1; i + 1 < REMOTE_BLOCKS; i++) {
        len = blocks[i + 1] == blocks[i] + REMOTE_SIZE ? len + 1 : 1;
        if (len > run_len) {
            run_len = len;
            run_at = i + 2 - len;
        }
    }
    ck_assert_int_ge(run_len, 16);
    unsigned char *first = blocks[run_at];
    size_t span = (size_t)run_len * REMOTE_SIZE;
    ck_assert_uint_ge(resident_pages_in(first, span), span / 4096 - 1);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    struct remote_share share = { blocks, &bar };
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, free_from_other_thread, &share), 0);
    pthread_barrier_wait(&bar);   /* 1 */
    ck_assert_int_eq(_heapmin(), 0);
    size_t left = resident_pages_in(first, span);
    pthread_barrier_wait(&bar);   /* 2 */
    pthread_join(t, NULL);
    pthread_barrier_destroy(&bar);
    expect(left == 0, "%zu OS pages of blocks another thread freed still resident", left);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
}
END_TEST

/* ------------------------------------------------------------------ page reuse */

enum { BIG_BLOCK = 2000, BIG_BLOCKS = 4 * 31, TINY_BLOCKS = 8 };   /* 31 per 64 KiB page */

/* A thread with a fresh heap empties four pages of 2 KiB blocks (two stay as its spares,
 * two go back to the segment as dirty, fully resident slices), then allocates its first
 * 16-byte blocks: their page is carved on one of those slices and must keep only the OS
 * pages it uses, not the 64 KiB the 2 KiB blocks touched. */
static void *tiny_page_on_dirty_slice(void *arg)
{
    size_t *resident = arg;
    unsigned char *big[BIG_BLOCKS];
    for (int i = 0; i < BIG_BLOCKS; i++) {
        big[i] = malloc(BIG_BLOCK);
        ck_assert_ptr_nonnull(big[i]);
        fill_all(big[i], BIG_BLOCK, block_key(big[i], BIG_BLOCK));
    }
    for (int i = 0; i < BIG_BLOCKS; i++) {
        ck_assert_uint_eq(check_all(big[i], BIG_BLOCK, block_key(big[i], BIG_BLOCK)), BIG_BLOCK);
        free(big[i]);
    }
    unsigned char *tiny[TINY_BLOCKS];
    for (int i = 0; i < TINY_BLOCKS; i++) {
        tiny[i] = malloc(16);
        ck_assert_ptr_nonnull(tiny[i]);
        fill_all(tiny[i], 16, block_key(tiny[i], 16));
    }
    uintptr_t slice = (uintptr_t)tiny[0] & ~(uintptr_t)0xFFFF;
    bool on_big_slice = false;
    for (int i = 0; i < BIG_BLOCKS; i++)
        on_big_slice |= ((uintptr_t)big[i] & ~(uintptr_t)0xFFFF) == slice;
    expect(on_big_slice, "the 16-byte page at %#lx is not on a slice the 2 KiB blocks used",
           (unsigned long)slice);
    *resident = resident_pages_in((const void *)slice, 0x10000);
    for (int i = 0; i < TINY_BLOCKS; i++) {
        ck_assert_uint_eq(check_all(tiny[i], 16, block_key(tiny[i], 16)), 16);
        free(tiny[i]);
    }
    return NULL;
}

START_TEST(t_small_page_on_dirty_slice_releases_the_rest)
{
    crtheap_option_set(CRTHEAP_OPTION_PURGE_DELAY_MS, -1);   /* dirty slices stay resident */
    size_t resident = 0;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, tiny_page_on_dirty_slice, &resident), 0);
    pthread_join(t, NULL);
    /* the OS pages its first blocks were linked in, and its side table at the end */
    expect(resident <= 4, "a page of 16-byte blocks holds %zu resident OS pages of 16", resident);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
}
END_TEST

/* ------------------------------------------------------------------ huge blocks */

START_TEST(t_heapmin_huge_unmapped)
{
    enum { N = 20 };
    size_t sz = 8 * MiB;
    unsigned char *p[N];
    size_t base_rss = anon_bytes(), base_vm = vm_bytes();
    for (int i = 0; i < N; i++) {
        p[i] = malloc(sz);
        ck_assert_ptr_nonnull(p[i]);
        fill_sampled(p[i], sz, block_key(p[i], sz));
        memset(p[i] + DENSE_BYTES, i, 4096); /* and a few whole pages */
        for (size_t o = 0; o < sz; o += 4096)
            p[i][o + 1] = (unsigned char)o;
    }
    size_t peak_rss = anon_bytes();
    for (int i = 0; i < N; i++) {
        expect(p[i][DENSE_BYTES + 10] == (unsigned char)i, "huge block %d corrupted", i);
        for (size_t o = 4096 * 2; o < sz; o += 4096)
            expect(p[i][o + 1] == (unsigned char)o, "huge block %d corrupted at %zu", i, o + 1);
        free(p[i]);
    }
    ck_assert_int_eq(_heapmin(), 0);
    size_t after_rss = anon_bytes(), after_vm = vm_bytes();
    report("huge 20 x 8 MiB", base_rss, peak_rss, after_rss, 0);
    fprintf(stderr, "huge: VmSize %+zd MiB after _heapmin\n", ((ssize_t)after_vm - (ssize_t)base_vm) / (ssize_t)MiB);
    expect(peak_rss - base_rss >= 150 * MiB, "peak only %zu MiB above baseline", (peak_rss - base_rss) / MiB);
    expect(after_rss < base_rss + 8 * MiB, "RSS still %zu MiB above baseline after _heapmin",
           (after_rss - base_rss) / MiB);
    expect(after_vm < base_vm + 16 * MiB, "address space still %zd MiB above baseline: huge blocks not unmapped",
           ((ssize_t)after_vm - (ssize_t)base_vm) / (ssize_t)MiB);
    crtheap_stats_t st;
    ck_assert_int_eq(crtheap_get_stats(&st), 0);
    ck_assert_uint_eq(st.huge_cached, 0);
}
END_TEST

/* Whether the RSS went down by at least a quarter of `cached` since `before`. */
static void expect_cooled(size_t before, size_t cached, const char *after_what)
{
    size_t after = anon_bytes();
    expect(after + cached / 4 <= before, "cached huge block still resident after %s: RSS %zu -> %zu KiB",
           after_what, before / KiB, after / KiB);
}

/* A freed huge block stays resident in the huge cache for reuse, and gives its pages back
 * as soon as crtheap needs memory that is not resident: cached blocks never add to a peak. */
START_TEST(t_huge_cache_cooled_before_growth)
{
    crtheap_option_set(CRTHEAP_OPTION_PURGE_DELAY_MS, -1);   /* no purger: only the policy acts */
    size_t sz = 16 * MiB, half = sz / 2;
    unsigned char *p = malloc(sz);
    ck_assert_ptr_nonnull(p);
    memset(p, 0x5A, sz);
    size_t base_rss = anon_bytes();
    free(p);
    crtheap_stats_t st;
    ck_assert_int_eq(crtheap_get_stats(&st), 0);
    expect(st.huge_cached >= sz, "freed block not cached: %zu bytes cached", st.huge_cached);
    expect(anon_bytes() + 2 * MiB >= base_rss, "cached block already released: RSS %zu -> %zu MiB",
           base_rss / MiB, anon_bytes() / MiB);

    /* reuse of the resident block: calloc must clear what the program wrote */
    unsigned char *q = calloc(1, half);
    ck_assert_ptr_eq(q, p);
    expect(is_zero(q, half), "calloc reused a cached huge block without clearing it");
    fill_all(q, half, block_key(q, half));
    ck_assert_uint_eq(check_all(q, half, block_key(q, half)), half);
    free(q);

    /* new slices for a large block: the cached block gives its pages back first */
    size_t before = anon_bytes();
    unsigned char *m = malloc(MiB);
    ck_assert_ptr_nonnull(m);
    expect_cooled(before, half, "a large block on new slices");
    fill_all(m, MiB, block_key(m, MiB));

    /* the cooled block is handed out again, zero without a memset */
    unsigned char *z = calloc(1, half);
    ck_assert_ptr_eq(z, p);
    expect(is_zero(z, half), "calloc returned a dirty block from the huge cache");
    memset(z, 0xC3, half);
    free(z);

    /* a request the cache cannot serve: a new mapping, after the cached block cooled */
    before = anon_bytes();
    unsigned char *r = malloc(2 * sz);
    ck_assert_ptr_nonnull(r);
    expect_cooled(before, half, "a new huge mapping");
    ck_assert_int_eq(crtheap_get_stats(&st), 0);
    expect(st.huge_cached >= half, "cooled block left the cache: %zu bytes cached", st.huge_cached);
    fill_sampled(r, 2 * sz, block_key(r, 2 * sz));
    ck_assert_uint_eq(check_sampled(r, 2 * sz, block_key(r, 2 * sz), 2 * sz), 2 * sz);
    free(r);
    ck_assert_uint_eq(check_all(m, MiB, block_key(m, MiB)), MiB);
    free(m);
    ck_assert_int_eq(_heapmin(), 0);
    ck_assert_int_eq(crtheap_get_stats(&st), 0);
    ck_assert_uint_eq(st.huge_cached, 0);
}
END_TEST

/* crtheap_get_stats's `resident` follows what the heap's memory really holds: it grows as
 * a block is touched, stays within `committed` and the process's anonymous RSS, and drops
 * when _heapmin gives the block back. */
START_TEST(t_stats_resident)
{
    crtheap_option_set(CRTHEAP_OPTION_PURGE_DELAY_MS, -1);
    ck_assert_int_eq(_heapmin(), 0);
    crtheap_stats_t st0, st1, st2, st3;
    ck_assert_int_eq(crtheap_get_stats(&st0), 0);
    size_t sz = 16 * MiB;
    unsigned char *p = malloc(sz);
    ck_assert_ptr_nonnull(p);
    memset(p, 0x3C, sz / 2);
    ck_assert_int_eq(crtheap_get_stats(&st1), 0);
    /* transparent huge pages fault 2 MiB at a time: bounds allow one huge page of slack */
    expect(st1.resident >= st0.resident + sz / 2 - 2 * MiB, "resident %zu -> %zu KiB after touching %zu KiB",
           st0.resident / KiB, st1.resident / KiB, sz / 2 / KiB);
    expect(st1.resident <= st1.committed, "resident %zu KiB above committed %zu KiB", st1.resident / KiB,
           st1.committed / KiB);
    expect(st1.resident <= anon_bytes(), "resident %zu KiB above the process's anonymous RSS %zu KiB",
           st1.resident / KiB, anon_bytes() / KiB);
    memset(p + sz / 2, 0xC3, sz / 2);
    ck_assert_int_eq(crtheap_get_stats(&st2), 0);
    expect(st2.resident >= st0.resident + sz - 2 * MiB, "resident %zu -> %zu KiB after touching all %zu KiB",
           st0.resident / KiB, st2.resident / KiB, sz / KiB);
    expect(p[0] == 0x3C && p[sz - 1] == 0xC3, "block contents lost");
    free(p);
    ck_assert_int_eq(_heapmin(), 0);
    ck_assert_int_eq(crtheap_get_stats(&st3), 0);
    expect(st3.resident + sz - 2 * MiB <= st2.resident, "resident %zu -> %zu KiB after free and _heapmin",
           st2.resident / KiB, st3.resident / KiB);
}
END_TEST

/* ------------------------------------------------------------------ malloc_trim, crtheap_trim */

START_TEST(t_malloc_trim_releases)
{
    crtheap_option_set(CRTHEAP_OPTION_PURGE_DELAY_MS, -1);
    blockset_t s;
    set_init(&s, SET_CAP);
    size_t base = anon_bytes();
    ck_assert_int_eq(set_fill(&s, 200 * MiB, 7), 0);
    size_t peak = anon_bytes();
    size_t n90 = s.count * 9 / 10;
    ck_assert_uint_eq(set_free(&s, 0, n90), 0);
    size_t live = set_live(&s);
    ck_assert_int_eq(malloc_trim(0), 1);
    size_t after = anon_bytes();
    expect_trimmed("malloc_trim(0)", base, peak, after, live);
    ck_assert_uint_eq(set_check(&s), 0);
    ck_assert_uint_eq(set_free(&s, n90, s.count), 0);
}
END_TEST

START_TEST(t_crtheap_trim_bytes)
{
    crtheap_option_set(CRTHEAP_OPTION_PURGE_DELAY_MS, -1);
    blockset_t s;
    set_init(&s, SET_CAP);
    ck_assert_int_eq(set_fill(&s, 64 * MiB, 9), 0);
    size_t n90 = s.count * 9 / 10;
    ck_assert_uint_eq(set_free(&s, 0, n90), 0);
    size_t first = crtheap_trim();
    size_t second = crtheap_trim();
    fprintf(stderr, "crtheap_trim: first %zu KiB, second %zu KiB\n", first / KiB, second / KiB);
    expect(first >= 32 * MiB, "crtheap_trim() gave back only %zu bytes after freeing ~58 MiB", first);
    expect(second < MiB, "second crtheap_trim() gave back %zu bytes", second);
    ck_assert_uint_eq(set_check(&s), 0);
    ck_assert_uint_eq(set_free(&s, n90, s.count), 0);
}
END_TEST

/* A trim that found nothing in a page skips it until its next free (or its next refill),
 * never longer: small blocks freed between trims come back each time, from pages that
 * the previous trim passed over and that stay in use, and a trim with nothing new gives
 * nothing. */
START_TEST(t_trim_after_each_free_wave)
{
    crtheap_option_set(CRTHEAP_OPTION_PURGE_DELAY_MS, -1);
    enum { N = 64 * 1024, WAVES = 4 };
    static unsigned char *b[N];
    for (size_t i = 0; i < N; i++) {   /* 64 B blocks, 4 MiB: many pages, all full */
        b[i] = malloc(64);
        require(b[i] != NULL);
        fill_all(b[i], 64, i + 1);
    }
    crtheap_trim();
    expect(crtheap_trim() == 0, "a trim after a trim gave something back");
    for (size_t w = 0; w < WAVES; w++) {
        /* the blocks of every WAVES-th OS page: each wave frees whole OS pages, while
         * every 64 KiB page keeps live blocks until the last wave */
        for (size_t i = 0; i < N; i++) {
            if (!b[i] || ((uintptr_t)b[i] / 4096) % WAVES != w)
                continue;
            ck_assert_uint_eq(check_all(b[i], 64, i + 1), 64);
            free(b[i]);
            b[i] = NULL;
        }
        size_t given = crtheap_trim();
        expect(given >= N / WAVES * 64 / 2, "wave %zu: freed %zu KiB, the trim gave %zu KiB", w,
               (size_t)N / WAVES * 64 / KiB, given / KiB);
        expect(crtheap_trim() == 0, "wave %zu: the second trim gave something back", w);
    }
}
END_TEST

/* ------------------------------------------------------------------ passive release */

/* The purger thread must not keep a process alive: when the main thread (the last of
 * the program's own) calls pthread_exit, the process ends with status 0, as under glibc. */
START_TEST(t_purger_lets_process_exit)
{
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        alarm(20);
        enum { N = 4000, SIZE = 5000 };   /* several segments: the purger starts */
        static char *blocks[N];
        for (int i = 0; i < N; i++) {
            blocks[i] = malloc(SIZE);
            memset(blocks[i], i & 0xff, SIZE);
        }
        for (int i = 0; i < N; i++) {
            if ((unsigned char)blocks[i][SIZE - 1] != (i & 0xff))
                _exit(3);
            free(blocks[i]);
        }
        char *p = malloc(100);   /* a slow path with free memory waiting: the purger runs */
        memset(p, 1, 100);
        pthread_exit(NULL);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x (0x0e00: killed by the alarm)",
                  status);
}
END_TEST

START_TEST(t_passive_purge)
{
    pthread_t parked = park_start();
    ck_assert_int_eq(crtheap_option_set(CRTHEAP_OPTION_PURGE_DELAY_MS, 50), 0);
    ck_assert_int_eq(crtheap_option_get(CRTHEAP_OPTION_PURGE_DELAY_MS), 50);
    blockset_t s;
    set_init(&s, SET_CAP);
    size_t base = anon_bytes();
    ck_assert_int_eq(set_fill(&s, 100 * MiB, 11), 0);
    size_t peak = anon_bytes();
    ck_assert_uint_eq(set_free(&s, 0, s.count), 0);
    size_t just_after = anon_bytes();
    sleep_ms(1000); /* no allocator call meanwhile */
    size_t after = anon_bytes();
    fprintf(stderr, "passive purge: peak %+zd MiB, right after free %+zd MiB, 1 s later %+zd MiB\n",
            ((ssize_t)peak - (ssize_t)base) / (ssize_t)MiB, ((ssize_t)just_after - (ssize_t)base) / (ssize_t)MiB,
            ((ssize_t)after - (ssize_t)base) / (ssize_t)MiB);
    size_t grown = after > base ? after - base : 0;
    expect(grown < (peak - base) / 4, "1 s after freeing 100 MiB, RSS is still %zu MiB above baseline (peak %zu MiB)",
           grown / MiB, (peak - base) / MiB);
    park_end(parked);
}
END_TEST

/* In a one-thread process there is no purger: the thread's own allocation slow paths
 * apply the decay, so memory freed long enough ago goes back at its next large malloc. */
START_TEST(t_single_thread_decay)
{
    ck_assert_int_eq(crtheap_option_set(CRTHEAP_OPTION_PURGE_DELAY_MS, 50), 0);
    blockset_t s;
    set_init(&s, SET_CAP);
    size_t base = anon_bytes();
    ck_assert_int_eq(set_fill(&s, 100 * MiB, 12), 0);
    size_t peak = anon_bytes();
    ck_assert_uint_eq(set_free(&s, 0, s.count), 0);
    sleep_ms(300);
    char *p = malloc(300000);   /* a slow path: the decay runs here */
    ck_assert_ptr_nonnull(p);
    memset(p, 3, 300000);
    size_t after = anon_bytes();
    size_t grown = after > base ? after - base : 0;
    expect(grown < (peak - base) / 4, "after the delay and a malloc, RSS is still %zu MiB above baseline (peak %zu MiB)",
           grown / MiB, (peak - base) / MiB);
    for (size_t i = 0; i < 300000; i++)
        expect(p[i] == 3, "block changed at %zu", i);
    free(p);
}
END_TEST

/* ------------------------------------------------------------------ _heapmin racing */

START_TEST(t_heapmin_race)
{
    race_result_t r = race_heapmin(4, 2.0);
    fprintf(stderr, "race: %zu _heapmin calls, %zu malloc/free ops\n", r.trims, r.ops);
    ck_assert_uint_eq(r.trim_failures, 0);
    ck_assert_uint_eq(r.bad, 0);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    ck_assert_int_eq(_heapmin(), 0);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
}
END_TEST

static Suite *trim_suite(void)
{
    Suite *s = suite_create("trim");
    TCase *tc = tcase_create("trim");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_heapmin_returns_zero);
    tcase_add_test(tc, t_heapmin_single_thread);
    tcase_add_test(tc, t_heapmin_idle_threads);
    tcase_add_test(tc, t_heapmin_exited_threads);
    tcase_add_test(tc, t_heapmin_drains_remote_frees);
    tcase_add_test(tc, t_small_page_on_dirty_slice_releases_the_rest);
    tcase_add_test(tc, t_heapmin_huge_unmapped);
    tcase_add_test(tc, t_huge_cache_cooled_before_growth);
    tcase_add_test(tc, t_stats_resident);
    tcase_add_test(tc, t_malloc_trim_releases);
    tcase_add_test(tc, t_crtheap_trim_bytes);
    tcase_add_test(tc, t_trim_after_each_free_wave);
    tcase_add_test(tc, t_passive_purge);
    tcase_add_test(tc, t_single_thread_decay);
    tcase_add_test(tc, t_purger_lets_process_exit);
    tcase_add_test(tc, t_heapmin_race);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(trim_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
