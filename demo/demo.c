/* crtheap-demo — a multi-threaded heap, mostly freed, then given back to the OS.
 *
 * Four threads build a heap of mixed sizes, hand half their blocks to a neighbour,
 * free 90% (half of it the neighbour's blocks) and stay alive, idle.  The main thread
 * then reports the heap and calls the allocator's trim: _heapmin under crtheap,
 * malloc_trim(0) under the system allocator.  `make demo` runs it both ways. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crtheap.h"

#define THREADS 4
#define BLOCKS_PER_THREAD 150000

typedef struct slot { uint8_t *p; size_t n; } slot_t;
static slot_t slots[THREADS][BLOCKS_PER_THREAD];
static pthread_barrier_t built, freed, done;
static size_t live_bytes[THREADS];

static long anonymous_kib(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "Anonymous:", 10) == 0)
            kib = atol(line + 10);
    if (f)
        fclose(f);
    return kib;
}

static size_t pick_size(unsigned *seed)
{
    unsigned r = rand_r(seed) % 1000;
    if (r < 900) return 16 + rand_r(seed) % 240;       /* mostly small */
    if (r < 995) return 256 + rand_r(seed) % 3840;     /* some medium */
    return 4096 + rand_r(seed) % (256 * 1024);         /* a few large */
}

static uint8_t pattern(const slot_t *s) { return (uint8_t)(((uintptr_t)s->p >> 4) ^ s->n); }

static void check_and_free(slot_t *s)
{
    uint8_t want = pattern(s);
    if (s->p[0] != want || s->p[s->n - 1] != want || s->p[s->n / 2] != want) {
        fprintf(stderr, "demo: block %p changed under us\n", (void *)s->p);
        abort();
    }
    free(s->p);
    s->p = NULL;
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg, next = (id + 1) % THREADS;
    unsigned seed = 12345u + (unsigned)id;
    for (int i = 0; i < BLOCKS_PER_THREAD; i++) {
        slot_t *s = &slots[id][i];
        s->n = pick_size(&seed);
        s->p = malloc(s->n);
        memset(s->p, pattern(s), s->n);
    }
    pthread_barrier_wait(&built);
    /* free 90%: the even slots of my own blocks, the odd ones of my neighbour's */
    for (int i = 0; i < BLOCKS_PER_THREAD; i++)
        if (i % 10 != 0)
            check_and_free(i % 2 ? &slots[next][i] : &slots[id][i]);
    pthread_barrier_wait(&freed);
    pthread_barrier_wait(&done);   /* idle while main trims */
    return NULL;
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
    int (*heapmin)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "_heapmin");
    int (*get_stats)(crtheap_stats_t *) = (int (*)(crtheap_stats_t *))dlsym(RTLD_DEFAULT, "crtheap_get_stats");
    const char *who = heapmin ? "crtheap" : "system malloc";
    pthread_t threads[THREADS];
    pthread_barrier_init(&built, NULL, THREADS + 1);
    pthread_barrier_init(&freed, NULL, THREADS + 1);
    pthread_barrier_init(&done, NULL, THREADS + 1);
    for (int t = 0; t < THREADS; t++)
        pthread_create(&threads[t], NULL, worker, (void *)(intptr_t)t);
    pthread_barrier_wait(&built);
    long built_kib = anonymous_kib();
    size_t allocated = 0;
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < BLOCKS_PER_THREAD; i++)
            allocated += slots[t][i].n;
    pthread_barrier_wait(&freed);
    size_t live = 0;
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < BLOCKS_PER_THREAD; i++)
            live += slots[t][i].p ? slots[t][i].n : 0;
    (void)live_bytes;
    long before = anonymous_kib();
    double t0 = seconds();
    int rc = heapmin ? heapmin() : malloc_trim(0);
    double took = seconds() - t0;
    long after = anonymous_kib();
    printf("== %s: %d threads allocated %.0f MiB in blocks of 16 B-260 KiB, freed 90%% (half of it\n"
           "   each other's blocks) and stay idle while the main thread trims ==\n", who, THREADS,
           allocated / 1048576.0);
    printf("  RSS when built        %8.1f MiB  (blocks plus the allocator's own memory)\n", built_kib / 1024.0);
    printf("  live bytes            %8.1f MiB  (what the program still holds)\n", live / 1048576.0);
    printf("  RSS before trim       %8.1f MiB  (%.2fx live)\n", before / 1024.0, before * 1024.0 / live);
    printf("  RSS after %-11s %8.1f MiB  (%.2fx live)  in %.1f ms, returned %d (%s)\n",
           heapmin ? "_heapmin" : "malloc_trim", after / 1024.0, after * 1024.0 / live, took * 1e3, rc,
           heapmin ? "_heapmin: 0 is success" : "malloc_trim: 1 if memory was released");
    if (heapmin)
        printf("  (crtheap keeps freed memory for reuse until the purge delay passes, 100 ms by default,\n"
               "   so RSS before the trim, made right after the frees, is still what was built; glibc\n"
               "   gives some back as blocks are freed)\n");
    crtheap_stats_t st;
    if (get_stats && get_stats(&st) == 0)
        printf("  crtheap_get_stats: %zu heaps, %zu segments, %.1f MiB in use, %.1f MiB committed,\n"
               "                     %.1f MiB resident, %.1f MiB given back to the OS so far\n",
               st.heaps, st.segments, st.in_use / 1048576.0, st.committed / 1048576.0,
               st.resident / 1048576.0, st.released / 1048576.0);
    pthread_barrier_wait(&done);
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < BLOCKS_PER_THREAD; i++)
            if (slots[t][i].p)
                check_and_free(&slots[t][i]);
    printf("  every live block checked intact after the trim\n");
    if (heapmin)
        printf("  to watch any program's heap over time: build/crtheap run -o DIR -- PROGRAM ARGS...\n"
               "  (DIR/summary.txt and DIR/memory.svg), or CRTHEAP_SHOW_STATS=1 for a report at exit\n");
    return 0;
}
