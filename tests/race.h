/* race.h — _heapmin racing with threads that allocate and free: the workload shared by
 * test_trim.c (the real library) and tsan_trim.c (the library under ThreadSanitizer).
 *
 * `threads` workers keep up to RACE_SLOTS blocks of mixed sizes each, checking every
 * block before they free it; a quarter of the frees pass the block through a mailbox to
 * whichever thread takes it out next, so those are cross-thread frees.  Meanwhile the
 * calling thread calls _heapmin over and over for `seconds`. */
#ifndef CRTHEAP_TESTS_RACE_H
#define CRTHEAP_TESTS_RACE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "common.h"
#include "crtheap.h"

enum { RACE_SLOTS = 2048, RACE_MAILBOXES = 256, RACE_MAX_THREADS = 16 };

typedef struct race_result {
    size_t trims, trim_failures;   /* _heapmin calls, and those that returned -1 */
    size_t ops;                    /* mallocs and frees done by the workers */
    size_t bad;                    /* blocks found damaged, or allocations that failed */
} race_result_t;

static atomic_int race_stop;
static atomic_size_t race_bad, race_ops;
static void *_Atomic race_mailbox[RACE_MAILBOXES];

/* Mostly small, some up to 16 KiB, a few up to 256 KiB (large pages and their release). */
static inline size_t mixed_block_size(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    if (r % 100 < 90)
        return 16 + (r >> 8) % 1009;
    if ((r >> 40) % 100 >= 5)
        return 1025 + (r >> 8) % (15 * 1024);
    return 16 * 1024 + (r >> 8) % (240 * 1024);
}

/* Wrong bytes in a block whose size the worker does not know: _msize gives it exactly. */
static inline size_t race_check_unknown(const void *p)
{
    size_t n = _msize((void *)p);
    return n - check_all(p, n, block_key(p, n));
}

static void *race_worker(void *arg)
{
    uint64_t rng = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 5;
    unsigned char **slot = calloc(RACE_SLOTS, sizeof *slot);
    size_t *size = calloc(RACE_SLOTS, sizeof *size);
    size_t ops = 0, bad = 0;
    if (!slot || !size) {
        atomic_fetch_add(&race_bad, 1);
        return NULL;
    }
    while (!atomic_load_explicit(&race_stop, memory_order_relaxed)) {
        size_t i = rng_next(&rng) % RACE_SLOTS;
        if (slot[i]) {
            bad += check_all(slot[i], size[i], block_key(slot[i], size[i])) != size[i];
            void *gone = slot[i];
            if (rng_next(&rng) % 4 == 0) {   /* swap it for another thread's block */
                gone = atomic_exchange(&race_mailbox[rng_next(&rng) % RACE_MAILBOXES], gone);
                bad += gone && race_check_unknown(gone) != 0;
            }
            free(gone);
            slot[i] = NULL;
        } else {
            size[i] = mixed_block_size(&rng);
            slot[i] = malloc(size[i]);
            if (!slot[i]) {
                bad++;
                continue;
            }
            fill_all(slot[i], size[i], block_key(slot[i], size[i]));
        }
        ops++;
    }
    for (size_t i = 0; i < RACE_SLOTS; i++)
        if (slot[i]) {
            bad += check_all(slot[i], size[i], block_key(slot[i], size[i])) != size[i];
            free(slot[i]);
        }
    free(slot);
    free(size);
    atomic_fetch_add(&race_ops, ops);
    atomic_fetch_add(&race_bad, bad);
    return NULL;
}

static inline race_result_t race_heapmin(int threads, double seconds)
{
    race_result_t r = { 0 };
    pthread_t th[RACE_MAX_THREADS];
    if (threads > RACE_MAX_THREADS)
        threads = RACE_MAX_THREADS;
    atomic_store(&race_stop, 0);
    atomic_store(&race_bad, 0);
    atomic_store(&race_ops, 0);
    int started = 0;
    for (; started < threads; started++)
        if (pthread_create(&th[started], NULL, race_worker, (void *)(uintptr_t)(started + 1)) != 0) {
            r.bad++;
            break;
        }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        r.trim_failures += _heapmin() != 0;
        r.trims++;
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
    atomic_store(&race_stop, 1);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    for (size_t i = 0; i < RACE_MAILBOXES; i++) {
        void *p = atomic_exchange(&race_mailbox[i], NULL);
        r.bad += p && race_check_unknown(p) != 0;
        free(p);
    }
    r.ops = atomic_load(&race_ops);
    r.bad += atomic_load(&race_bad);
    return r;
}

#endif /* CRTHEAP_TESTS_RACE_H */
