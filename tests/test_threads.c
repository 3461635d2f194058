/* test_threads.c — the heap under threads (SPEC §2.1, §4): cross-thread frees, threads
 * that come and go, fork() while other threads allocate, and bounded RSS under churn.
 *
 * Blocks passed between threads are at least HEADER bytes: they carry their size and a
 * key derived from their address and size, and a pattern derived from the key, checked
 * before every free and realloc. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crtheap.h"
#include "common.h"
#include "suite.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define HEADER 16
#define SLOTS 4096

/* Blocks handed between threads: any thread may take one out and free or realloc it. */
static _Atomic(unsigned char *) slots[SLOTS];
static atomic_int stop;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double stress_seconds(void)
{
    const char *env = getenv("CRTHEAP_STRESS_SECONDS");
    double s = env ? atof(env) : 5.0;
    return s > 0 ? s : 5.0;
}

/* ---- stamped blocks ---- */

static void stamp(unsigned char *p, size_t n)
{
    uint64_t key = block_key(p, n);
    memcpy(p, &n, sizeof n);
    memcpy(p + 8, &key, sizeof key);
    fill_sampled(p + HEADER, n - HEADER, key);
}

/* Check a stamped block; returns its size. */
static size_t verify(const unsigned char *p, const char *when)
{
    size_t n;
    uint64_t key;
    memcpy(&n, p, sizeof n);
    memcpy(&key, p + 8, sizeof key);
    expect(key == block_key(p, n), "%s: header of block %p damaged (size field %zu)", when,
           (const void *)p, n);
    size_t bad = check_sampled(p + HEADER, n - HEADER, key, n - HEADER);
    expect(bad == n - HEADER, "%s: block %p of %zu bytes damaged at offset %zu", when,
           (const void *)p, n, bad + HEADER);
    return n;
}

static void verify_free(unsigned char *p, const char *when)
{
    if (p) {
        verify(p, when);
        free(p);
    }
}

/* Mostly small, some medium, a few up to 1 MiB. */
static size_t random_size(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    unsigned bucket = (unsigned)(r % 1000);
    r >>= 10;
    if (bucket < 800)
        return HEADER + r % 240;
    if (bucket < 960)
        return 256 + r % (16 * KiB);
    if (bucket < 995)
        return 16 * KiB + r % (240 * KiB);
    return 256 * KiB + r % (768 * KiB);
}

static unsigned char *new_block(uint64_t *rng)
{
    size_t n = random_size(rng);
    uint64_t r = rng_next(rng);
    unsigned char *p;
    if (r % 10 == 0) {
        size_t align = (size_t)16 << ((r >> 8) % 9); /* 16 .. 4096 */
        void *q = NULL;
        int rc = posix_memalign(&q, align, n);
        expect(rc == 0, "posix_memalign(%zu, %zu) = %d", align, n, rc);
        expect((uintptr_t)q % align == 0, "posix_memalign(%zu) = %p misaligned", align, q);
        p = q;
    } else if (r % 10 == 1) {
        p = calloc(1, n);
        expect(p != NULL, "calloc(1, %zu) failed", n);
        size_t probe = n < 4096 ? n : 4096;
        for (size_t i = 0; i < probe; i++)
            expect(p[i] == 0, "calloc(1, %zu) = %p: byte %zu not zero", n, (void *)p, i);
        expect(p[n - 1] == 0, "calloc(1, %zu): last byte not zero", n);
    } else {
        p = malloc(n);
        expect(p != NULL, "malloc(%zu) failed", n);
    }
    stamp(p, n);
    return p;
}

/* realloc keeps the old header and pattern up to the smaller size; then restamp. */
static unsigned char *realloc_block(unsigned char *p, uint64_t *rng)
{
    size_t old = verify(p, "before realloc");
    uint64_t key;
    memcpy(&key, p + 8, sizeof key);
    size_t n = random_size(rng);
    unsigned char *q = realloc(p, n);
    expect(q != NULL, "realloc(%zu -> %zu) failed", old, n);
    size_t was;
    uint64_t was_key;
    memcpy(&was, q, sizeof was);
    memcpy(&was_key, q + 8, sizeof was_key);
    expect(was == old && was_key == key, "realloc %zu -> %zu lost the header", old, n);
    size_t keep = (old < n ? old : n) - HEADER;
    size_t bad = check_sampled(q + HEADER, old - HEADER, key, keep);
    expect(bad == old - HEADER, "realloc %zu -> %zu lost byte %zu", old, n, bad + HEADER);
    stamp(q, n);
    return q;
}

/* Tiny blocks (below HEADER) stay with the thread that made them. */
static void tiny_batch(uint64_t *rng)
{
    unsigned char *p[32];
    size_t n[32];
    for (int i = 0; i < 32; i++) {
        n[i] = rng_next(rng) % HEADER;
        p[i] = malloc(n[i]);
        expect(p[i] != NULL, "malloc(%zu) failed", n[i]);
        fill_all(p[i], n[i], block_key(p[i], n[i]));
    }
    for (int i = 31; i >= 0; i--) {
        expect(check_all(p[i], n[i], block_key(p[i], n[i])) == n[i], "tiny block %p damaged",
               (void *)p[i]);
        free(p[i]);
    }
}

/* Blocks that live and die in one thread, freed in a scrambled order. */
static void local_batch(uint64_t *rng)
{
    unsigned char *p[24];
    for (int i = 0; i < 24; i++)
        p[i] = new_block(rng);
    for (int i = 0; i < 24; i++) {
        int j = (i * 7) % 24;
        verify_free(p[j], "local free");
    }
}

/* One step of the shared-slot workload. */
static void step(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    size_t slot = (size_t)(r >> 16) % SLOTS;
    unsigned op = (unsigned)(r % 100);
    if (op < 45) {
        unsigned char *old = atomic_exchange(&slots[slot], new_block(rng));
        verify_free(old, "free of a block swapped out");
    } else if (op < 60) {
        unsigned char *p = atomic_exchange(&slots[slot], NULL);
        if (p) {
            p = realloc_block(p, rng);
            verify_free(atomic_exchange(&slots[slot], p), "free of a block swapped out");
        }
    } else if (op < 80) {
        verify_free(atomic_exchange(&slots[slot], NULL), "free of a taken block");
    } else if (op < 90) {
        tiny_batch(rng);
    } else {
        local_batch(rng);
    }
}

static void drain_slots(void)
{
    for (size_t i = 0; i < SLOTS; i++)
        verify_free(atomic_exchange(&slots[i], NULL), "drain");
}

struct worker_arg {
    uint64_t seed;
    long steps; /* 0: until stop */
    long done;  /* steps taken, set when the worker ends */
};

static void *worker(void *argp)
{
    struct worker_arg *arg = argp;
    uint64_t rng = arg->seed * 0x9e3779b97f4a7c15ull + 1;
    long i = 0;
    for (; arg->steps == 0 || i < arg->steps; i++) {
        if (arg->steps == 0 && atomic_load_explicit(&stop, memory_order_relaxed))
            break;
        step(&rng);
    }
    arg->done = i;
    return NULL;
}

/* ---- stress: 8 long-lived threads plus short-lived ones, for a few seconds ---- */

START_TEST(t_stress)
{
    enum { WORKERS = 8, SHORT = 2 };
    pthread_t tid[WORKERS], brief[SHORT];
    struct worker_arg args[WORKERS], brief_args[SHORT];
    atomic_store(&stop, 0);
    for (int i = 0; i < WORKERS; i++) {
        args[i] = (struct worker_arg){.seed = (uint64_t)i + 1, .steps = 0};
        ck_assert_int_eq(pthread_create(&tid[i], NULL, worker, &args[i]), 0);
    }
    double end = now_s() + stress_seconds();
    uint64_t seed = 1000;
    long rounds = 0;
    /* Threads that exit while the blocks they made are still in the slots. */
    while (now_s() < end) {
        for (int i = 0; i < SHORT; i++) {
            brief_args[i] = (struct worker_arg){.seed = seed++, .steps = 3000};
            ck_assert_int_eq(pthread_create(&brief[i], NULL, worker, &brief_args[i]), 0);
        }
        for (int i = 0; i < SHORT; i++)
            pthread_join(brief[i], NULL);
        rounds++;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(tid[i], NULL);
        expect(args[i].done > 1000, "worker %d took only %ld steps in the stress run", i, args[i].done);
    }
    drain_slots();   /* every block left in the slots is checked as it is freed */
    expect(rounds >= 1 && brief_args[0].done == 3000, "short-lived threads: %ld rounds, last took %ld steps", rounds,
           brief_args[0].done);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
}
END_TEST

/* ---- fork() while other threads allocate ---- */

static void *child_thread(void *arg)
{
    uint64_t rng = (uintptr_t)arg;
    for (int i = 0; i < 500; i++)
        step(&rng);
    return NULL;
}

static void fork_child_work(int round)
{
    alarm(20); /* a deadlock in the child shows up as SIGALRM */
    /* Blocks the parent's threads made, some owned by heaps of threads that do not exist
     * here. */
    drain_slots();
    uint64_t rng = (uint64_t)round * 7919 + 3;
    unsigned char *keep[64] = {0};
    for (int i = 0; i < 2000; i++) {
        int k = (int)(rng_next(&rng) % 64);
        verify_free(keep[k], "child free");
        keep[k] = new_block(&rng);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)(round + 17)) != 0)
        _exit(3);
    pthread_join(t, NULL);
    for (int k = 0; k < 64; k++)
        verify_free(keep[k], "child free");
    drain_slots();
    _exit(0);
}

START_TEST(t_fork_with_threads)
{
    enum { WORKERS = 4, FORKS = 20 };
    pthread_t tid[WORKERS];
    struct worker_arg args[WORKERS];
    atomic_store(&stop, 0);
    for (int i = 0; i < WORKERS; i++) {
        args[i] = (struct worker_arg){.seed = (uint64_t)i + 77, .steps = 0};
        ck_assert_int_eq(pthread_create(&tid[i], NULL, worker, &args[i]), 0);
    }
    for (int round = 0; round < FORKS; round++) {
        usleep(20000);
        pid_t pid = fork();
        ck_assert(pid >= 0);
        if (pid == 0)
            fork_child_work(round);
        int status = 0;
        pid_t got = 0;
        for (int waited = 0; waited < 3000 && got == 0; waited++) { /* up to 30 s */
            got = waitpid(pid, &status, WNOHANG);
            if (got == 0)
                usleep(10000);
        }
        if (got == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            ck_abort_msg("fork %d: child hung (deadlock in the heap after fork?)", round);
        }
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork %d: child %s %d", round,
                      WIFSIGNALED(status) ? "killed by signal" : "exited with",
                      WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(tid[i], NULL);
    drain_slots();
}
END_TEST

/* ---- thread churn: memory of exited threads is reused ---- */

#define HANDOFF 8
static _Atomic(unsigned char *) handoff[HANDOFF];

static void *churn_thread(void *arg)
{
    uint64_t rng = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 5;
    unsigned char *mine[512];
    size_t count = 0, total = 0;
    /* About 1 MiB in mixed sizes, every page touched. */
    while (total < MiB && count < 512) {
        uint64_t r = rng_next(&rng);
        size_t n = r % 4 == 0 ? 4 * KiB + r % (60 * KiB) : HEADER + r % 2000;
        unsigned char *p = malloc(n);
        expect(p != NULL, "malloc(%zu) failed", n);
        stamp(p, n);
        mine[count++] = p;
        total += n;
    }
    /* Hand a few blocks to a later thread, free the ones an earlier thread left. */
    for (int i = 0; i < HANDOFF && (size_t)i < count; i++) {
        unsigned char *p = mine[(size_t)i * count / HANDOFF];
        mine[(size_t)i * count / HANDOFF] = NULL;
        verify_free(atomic_exchange(&handoff[i], p), "free of a handed-off block");
    }
    for (size_t i = 0; i < count; i++)
        verify_free(mine[i], "churn free");
    return NULL;
}

static void run_churn(size_t first, size_t last, pthread_t *ring, size_t ring_size)
{
    for (size_t i = first; i < last; i++) {
        if (i >= ring_size)
            pthread_join(ring[i % ring_size], NULL);
        ck_assert_int_eq(
            pthread_create(&ring[i % ring_size], NULL, churn_thread, (void *)(uintptr_t)i), 0);
    }
}

START_TEST(t_thread_churn)
{
    enum { THREADS = 3000, WARMUP = 100, ALIVE = 4 };
    pthread_t ring[ALIVE];
    run_churn(0, WARMUP, ring, ALIVE);
    size_t start = rss_bytes();
    run_churn(WARMUP, THREADS, ring, ALIVE);
    for (size_t i = THREADS - ALIVE; i < THREADS; i++)
        pthread_join(ring[i % ALIVE], NULL);
    for (int i = 0; i < HANDOFF; i++)
        verify_free(atomic_exchange(&handoff[i], NULL), "drain handoff");
    size_t end = rss_bytes();
    ck_assert_msg(start > 0 && end > 0, "cannot read /proc/self/statm");
    ck_assert_msg(end < start + 64 * MiB,
                  "RSS grew from %zu MiB to %zu MiB over %d threads of ~1 MiB each", start / MiB,
                  end / MiB, THREADS);
}
END_TEST

/* Many threads alive at once: each fills its own row, then frees a neighbour's row. */
enum { CROWD = 256, ROW = 200 };
static unsigned char *crowd_rows[CROWD][ROW];
static pthread_barrier_t crowd_barrier;

static void *crowd_thread(void *arg)
{
    size_t me = (size_t)(uintptr_t)arg;
    uint64_t rng = me + 1;
    for (int i = 0; i < ROW; i++)
        crowd_rows[me][i] = new_block(&rng);
    pthread_barrier_wait(&crowd_barrier);
    for (int i = 0; i < ROW; i++)
        verify_free(crowd_rows[(me + 1) % CROWD][i], "free of a neighbour's block");
    return NULL;
}

START_TEST(t_many_threads_alive)
{
    pthread_t tid[CROWD];
    ck_assert_int_eq(pthread_barrier_init(&crowd_barrier, NULL, CROWD), 0);
    for (size_t i = 0; i < CROWD; i++)
        ck_assert_int_eq(pthread_create(&tid[i], NULL, crowd_thread, (void *)(uintptr_t)i), 0);
    for (size_t i = 0; i < CROWD; i++)
        pthread_join(tid[i], NULL);
    pthread_barrier_destroy(&crowd_barrier);
}
END_TEST

/* Producer/consumer: one thread allocates, another frees everything it is sent. */
#define RING 1024
static _Atomic(unsigned char *) ring_buf[RING];

static void *producer(void *arg)
{
    uint64_t rng = 99;
    long count = (long)(intptr_t)arg;
    for (long i = 0; i < count; i++) {
        unsigned char *p = new_block(&rng);
        size_t at = (size_t)i % RING;
        while (atomic_load(&ring_buf[at]) != NULL)
            sched_yield();
        atomic_store(&ring_buf[at], p);
    }
    return NULL;
}

START_TEST(t_producer_consumer)
{
    const long count = 300000;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, producer, (void *)(intptr_t)count), 0);
    for (long i = 0; i < count; i++) {
        size_t at = (size_t)i % RING;
        unsigned char *p;
        while ((p = atomic_exchange(&ring_buf[at], NULL)) == NULL)
            sched_yield();
        verify_free(p, "consumer free");
    }
    pthread_join(t, NULL);
}
END_TEST

/* A thread that never allocates (so it has no heap) frees blocks of every kind that
 * another thread allocated: small, medium, large, huge, aligned. */
enum { HEAPLESS_BLOCKS = 6 };

static void *free_without_heap(void *arg)
{
    unsigned char **blocks = arg;
    for (int i = 0; i < HEAPLESS_BLOCKS; i++)
        verify_free(blocks[i], "free from a thread without a heap");
    return NULL;
}

START_TEST(t_free_from_heapless_thread)
{
    static const size_t sizes[HEAPLESS_BLOCKS] = { 24, 3000, 40000, (size_t)1 << 20, (size_t)8 << 20, 5000 };
    unsigned char *blocks[HEAPLESS_BLOCKS];
    for (int i = 0; i < HEAPLESS_BLOCKS; i++) {
        blocks[i] = i == HEAPLESS_BLOCKS - 1 ? aligned_alloc(4096, sizes[i]) : malloc(sizes[i]);
        ck_assert_ptr_nonnull(blocks[i]);
        stamp(blocks[i], sizes[i]);
    }
    crtheap_stats_t before, after;
    crtheap_get_stats(&before);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, free_without_heap, blocks), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    /* the owner takes the queued ones back: every block is free, the heap consistent */
    crtheap_collect();
    crtheap_get_stats(&after);
    size_t freed = 0;
    for (int i = 0; i < HEAPLESS_BLOCKS; i++)
        freed += sizes[i];
    ck_assert_msg(after.in_use + freed <= before.in_use, "in use %zu -> %zu after freeing %zu bytes", before.in_use,
                  after.in_use, freed);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    unsigned char *again = malloc(40000);   /* and the memory is usable again */
    ck_assert_ptr_nonnull(again);
    stamp(again, 40000);
    verify_free(again, "after the heapless frees");
}
END_TEST

/* The number of pages of the size class whose blocks are `block` bytes. */
static size_t class_pages(size_t block)
{
    crtheap_stats_t st;
    crtheap_get_stats(&st);
    for (int c = 0; c < CRTHEAP_SIZE_CLASSES; c++)
        if (st.classes[c].block_size == block)
            return st.classes[c].pages;
    ck_abort_msg("no size class of %zu bytes", block);
    return 0;
}

static void *free_one(void *arg)
{
    verify_free(arg, "free by a thread without a heap");
    return NULL;
}

/* Free into one's own page is one function: a class's only page stays when it empties,
 * whether the owner frees the block itself or takes it back from a thread without a heap
 * (it used to be retired then, leaving the class with no page). */
START_TEST(t_only_page_stays_whoever_frees)
{
    unsigned char *p = malloc(20000);
    ck_assert_ptr_nonnull(p);
    size_t block = malloc_usable_size(p);
    stamp(p, 20000);
    verify_free(p, "own free");
    ck_assert_uint_eq(class_pages(block), 1);
    p = malloc(20000);
    stamp(p, 20000);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, free_one, p), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    unsigned char *other = malloc(70000);   /* another class's first page: a refill drains the queue */
    ck_assert_ptr_nonnull(other);
    stamp(other, 70000);
    ck_assert_uint_eq(class_pages(block), 1);
    verify_free(other, "other class");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("threads");
    add_case(s, "stress", t_stress, 60);
    add_case(s, "fork", t_fork_with_threads, 120);
    add_case(s, "churn", t_thread_churn, 60);
    add_case(s, "crowd", t_many_threads_alive, 30);
    add_case(s, "producer", t_producer_consumer, 30);
    add_case(s, "heapless", t_free_from_heapless_thread, 30);
    add_case(s, "only_page", t_only_page_stays_whoever_frees, 30);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
