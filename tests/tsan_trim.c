/* tsan_trim.c — _heapmin racing with threads that allocate and free, for ThreadSanitizer.
 *
 * Four threads allocate, check and free (a quarter of the frees cross-thread, through a
 * mailbox) while the main thread calls _heapmin over and over.  `make tsan` builds it
 * with the library sources under -fsanitize=thread, crtheap's standard names renamed so
 * that TSan's own malloc stays the process allocator, and runs it: it exits 0 when TSan
 * reports nothing, every block kept its contents and _heapchk is _HEAPOK.
 * TSAN_TRIM_SECONDS sets the length (default 2). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "crtheap.h"
#include "common.h"

enum { THREADS = 4, SLOTS = 2048, MAILBOXES = 256 };

static atomic_int stop;
/* Blocks passed between threads: a worker leaves one here and frees what it takes out,
 * so a quarter of the frees are cross-thread (remote) frees. */
static void *_Atomic mailbox[MAILBOXES];
static atomic_size_t bad;
static atomic_size_t total_ops;

static size_t pick_size(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    if (r % 100 < 90)
        return 16 + (r >> 8) % 1009;
    if ((r >> 40) % 100 >= 5)
        return 1025 + (r >> 8) % (15 * 1024);
    return 16 * 1024 + (r >> 8) % (240 * 1024);
}

/* A block from the mailbox: _msize gives its exact size, so its pattern can be checked.
 * Returns the number of wrong bytes. */
static size_t check_mailed(const void *p)
{
    size_t n = _msize((void *)p);
    return n - check_all(p, n, block_key(p, n));
}

static void *worker(void *arg)
{
    uint64_t rng = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 5;
    unsigned char **slot = calloc(SLOTS, sizeof *slot);
    size_t *size = calloc(SLOTS, sizeof *size);
    if (!slot || !size) {
        atomic_fetch_add(&bad, 1);
        return NULL;
    }
    size_t ops = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        size_t i = rng_next(&rng) % SLOTS;
        if (slot[i]) {
            if (check_all(slot[i], size[i], block_key(slot[i], size[i])) != size[i])
                atomic_fetch_add(&bad, 1);
            void *mine = slot[i];
            if (rng_next(&rng) % 4 == 0) {   /* swap it for another thread's block */
                mine = atomic_exchange(&mailbox[rng_next(&rng) % MAILBOXES], mine);
                if (mine && check_mailed(mine) != 0)
                    atomic_fetch_add(&bad, 1);
            }
            free(mine);
            slot[i] = NULL;
        } else {
            size[i] = pick_size(&rng);
            slot[i] = malloc(size[i]);
            if (!slot[i]) {
                atomic_fetch_add(&bad, 1);
                continue;
            }
            fill_all(slot[i], size[i], block_key(slot[i], size[i]));
        }
        ops++;
    }
    for (size_t i = 0; i < SLOTS; i++)
        if (slot[i]) {
            if (check_all(slot[i], size[i], block_key(slot[i], size[i])) != size[i])
                atomic_fetch_add(&bad, 1);
            free(slot[i]);
        }
    free(slot);
    free(size);
    atomic_fetch_add(&total_ops, ops);
    return NULL;
}

int main(void)
{
    double seconds = 2;
    const char *env = getenv("TSAN_TRIM_SECONDS");
    if (env)
        seconds = atof(env);
    pthread_t th[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)(i + 1)) != 0) {
            perror("pthread_create");
            return 2;
        }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t trims = 0, trim_failures = 0;
    do {
        if (_heapmin() != 0)
            trim_failures++;
        trims++;
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    for (size_t i = 0; i < MAILBOXES; i++) {
        void *p = atomic_load(&mailbox[i]);
        if (p && check_mailed(p) != 0)
            atomic_fetch_add(&bad, 1);
        free(p);
    }
    int chk = _heapchk();
    printf("tsan_trim: %zu _heapmin calls (%zu failed), %zu malloc/free ops, %zu corrupted, _heapchk %d\n", trims,
           trim_failures, (size_t)atomic_load(&total_ops), (size_t)atomic_load(&bad), chk);
    return (trim_failures || atomic_load(&bad) || chk != _HEAPOK) ? 1 : 0;
}
