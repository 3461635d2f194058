/* larson — a Larson-style server: every thread replaces random blocks (16–1000 B) in a slot
 * array, and after each round the arrays pass to the next thread, so most blocks are freed
 * by a thread other than the one that allocated them (as when a server hands a request's
 * objects to another worker). The work is fixed in total and split between the threads. */
#include "bench.h"

enum { SLOTS = 4000, ROUNDS = 40, BASE_STEPS = 8000000, MIN_SIZE = 16, MAX_SIZE = 1000 };

typedef struct slot_array {
    void *blocks[SLOTS];
    size_t sizes[SLOTS];
    uint64_t tags[SLOTS];
    uint64_t next_tag;
} slot_array;

typedef struct worker {
    int id;
    int threads;
    uint64_t steps_per_round;
    slot_array **arrays;
    pthread_barrier_t *round_end;
} worker;

static void replace_block(slot_array *a, size_t slot, bench_rng *rng)
{
    pattern_check(a->blocks[slot], a->sizes[slot], a->tags[slot], "larson");
    free(a->blocks[slot]);
    a->sizes[slot] = bench_rng_range(rng, MIN_SIZE, MAX_SIZE);
    a->tags[slot] = a->next_tag++;
    a->blocks[slot] = bench_xmalloc(a->sizes[slot]);
    pattern_fill(a->blocks[slot], a->sizes[slot], a->tags[slot]);
}

static void *larson_worker(void *arg)
{
    worker *w = arg;
    bench_rng rng = bench_rng_seeded((uint64_t)w->id + 7);
    for (int round = 0; round < ROUNDS; round++) {
        /* in round r, thread i works on the array thread i-r allocated into last */
        slot_array *a = w->arrays[(w->id + round) % w->threads];
        for (uint64_t step = 0; step < w->steps_per_round; step++)
            replace_block(a, (size_t)(bench_rng_next(&rng) % SLOTS), &rng);
        pthread_barrier_wait(w->round_end);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    bench_args args = bench_parse_args(argc, argv, 1);
    uint64_t total = bench_scaled(BASE_STEPS, args.scale);
    slot_array **arrays = bench_xmalloc(sizeof *arrays * (size_t)args.threads);
    worker *workers = bench_xmalloc(sizeof *workers * (size_t)args.threads);
    pthread_barrier_t round_end;
    pthread_barrier_init(&round_end, NULL, (unsigned)args.threads);
    bench_rng rng = bench_rng_seeded(3);

    double start = bench_now();
    for (int t = 0; t < args.threads; t++) {
        slot_array *a = bench_xmalloc(sizeof *a);
        a->next_tag = (uint64_t)t << 40;
        for (size_t i = 0; i < SLOTS; i++) {
            a->sizes[i] = bench_rng_range(&rng, MIN_SIZE, MAX_SIZE);
            a->tags[i] = a->next_tag++;
            a->blocks[i] = bench_xmalloc(a->sizes[i]);
            pattern_fill(a->blocks[i], a->sizes[i], a->tags[i]);
        }
        arrays[t] = a;
        workers[t] = (worker){ t, args.threads, total / ((uint64_t)args.threads * ROUNDS),
                               arrays, &round_end };
    }
    bench_run_threads(args.threads, larson_worker, workers, sizeof *workers);
    for (int t = 0; t < args.threads; t++) {
        slot_array *a = arrays[t];
        for (size_t i = 0; i < SLOTS; i++) {
            pattern_check(a->blocks[i], a->sizes[i], a->tags[i], "larson");
            free(a->blocks[i]);
        }
        free(a);
    }
    bench_report(start);
    pthread_barrier_destroy(&round_end);
    free(workers);
    free(arrays);
    return 0;
}
