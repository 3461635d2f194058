/* thread_churn — many short-lived threads: `threads` run at a time, in waves, until a fixed
 * number have lived. Each allocates small blocks (16–512 B), frees half of them itself,
 * frees a batch a thread before it left behind, and leaves its other half for a later
 * thread to free — after it has exited. Allocators must reuse the memory of dead threads. */
#include "bench.h"

enum { BASE_THREADS = 1000, BLOCKS_PER_THREAD = 2000, MIN_SIZE = 16, MAX_SIZE = 512 };

typedef struct batch {
    struct batch *next;
    size_t count;
    void *blocks[BLOCKS_PER_THREAD / 2];
    size_t sizes[BLOCKS_PER_THREAD / 2];
    uint64_t tags[BLOCKS_PER_THREAD / 2];
} batch;

static pthread_mutex_t left_behind_lock = PTHREAD_MUTEX_INITIALIZER;
static batch *left_behind;  /* batches whose allocating thread has gone */

static void free_batch(batch *b)
{
    for (size_t i = 0; i < b->count; i++) {
        pattern_check(b->blocks[i], b->sizes[i], b->tags[i], "thread_churn");
        free(b->blocks[i]);
    }
    free(b);
}

static void *short_lived_thread(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    bench_rng rng = bench_rng_seeded(id + 41);
    void *mine[BLOCKS_PER_THREAD];
    size_t sizes[BLOCKS_PER_THREAD];
    for (size_t i = 0; i < BLOCKS_PER_THREAD; i++) {
        sizes[i] = bench_rng_range(&rng, MIN_SIZE, MAX_SIZE);
        mine[i] = bench_xmalloc(sizes[i]);
        pattern_fill(mine[i], sizes[i], id * BLOCKS_PER_THREAD + i);
    }
    batch *keep = bench_xmalloc(sizeof *keep);
    keep->count = 0;
    for (size_t i = 0; i < BLOCKS_PER_THREAD; i++) {
        uint64_t tag = id * BLOCKS_PER_THREAD + i;
        if (i % 2 == 0) {
            pattern_check(mine[i], sizes[i], tag, "thread_churn");
            free(mine[i]);
        } else {
            keep->blocks[keep->count] = mine[i];
            keep->sizes[keep->count] = sizes[i];
            keep->tags[keep->count++] = tag;
        }
    }
    pthread_mutex_lock(&left_behind_lock);
    batch *inherited = left_behind;
    if (inherited != NULL)
        left_behind = inherited->next;
    keep->next = left_behind;
    left_behind = keep;
    pthread_mutex_unlock(&left_behind_lock);
    if (inherited != NULL)
        free_batch(inherited);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_args args = bench_parse_args(argc, argv, 2);
    uint64_t total = bench_scaled(BASE_THREADS, args.scale);
    pthread_t *ids = bench_xmalloc(sizeof *ids * (size_t)args.threads);
    double start = bench_now();
    for (uint64_t started = 0; started < total;) {
        int wave = 0;
        for (; wave < args.threads && started < total; wave++, started++)
            if (pthread_create(&ids[wave], NULL, short_lived_thread, (void *)(uintptr_t)started))
                bench_fail("pthread_create failed");
        for (int i = 0; i < wave; i++)
            pthread_join(ids[i], NULL);
    }
    while (left_behind != NULL) {
        batch *b = left_behind;
        left_behind = b->next;
        free_batch(b);
    }
    bench_report(start);
    free(ids);
    return 0;
}
