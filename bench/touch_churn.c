/* touch_churn — allocator-bound churn: random sizes over a working set, touching only the
 * first and last byte of each block, so the allocator's own cost is what is measured
 * (the older workloads write and check every byte, which measures memset).
 *
 *   touch_churn [threads] [scale] [max_size] [working_set] [large_percent]
 *
 * Each thread owns `working_set` slots; every step checks and frees a random slot's block
 * and puts a new one there of a random size from 8 to max_size bytes (with
 * large_percent of the steps drawing up to 64 KiB instead).  Working sets above 200,000
 * blocks take proportionally fewer steps (each one misses the cache).  Both touched bytes hold a
 * tag derived from the step, checked before the free: an allocator that overwrote a live
 * block is caught.  The work is split between the threads. */
#include "bench.h"

enum { BASE_STEPS = 20000000, CACHE_MISS_SET = 200000, LARGE_SIZE_MAX = 64 * 1024 };

typedef struct churn_config {
    size_t max_size;
    size_t working_set;
    unsigned large_percent;
} churn_config;

static churn_config config = { 512, 10000, 0 };

typedef struct slot {
    unsigned char *block;
    size_t size;
} slot;

static unsigned char tag_of(uint64_t step) { return (unsigned char)(step * 0x9Du + 1u); }

static void touch(slot *s, uint64_t step)
{
    s->block[0] = tag_of(step);
    s->block[s->size - 1] = tag_of(step + 1);
}

static void check(const slot *s, uint64_t step)
{
    if (s->block[0] != tag_of(step) || s->block[s->size - 1] != tag_of(step + 1))
        bench_fail("touch_churn: block %p of %zu bytes changed", (void *)s->block, s->size);
}

static size_t next_size(bench_rng *rng)
{
    if (config.large_percent && bench_rng_range(rng, 1, 100) <= config.large_percent)
        return bench_rng_range(rng, 8, LARGE_SIZE_MAX);
    return bench_rng_range(rng, 8, config.max_size);
}

static void *touch_churn_worker(void *arg)
{
    const bench_share *w = arg;
    bench_rng rng = bench_rng_seeded((uint64_t)w->id + 1);
    size_t n = config.working_set;
    slot *slots = bench_xmalloc(sizeof *slots * n);
    uint64_t *born = bench_xmalloc(sizeof *born * n);   /* the step each block was made at */
    for (size_t i = 0; i < n; i++) {
        slots[i].size = next_size(&rng);
        slots[i].block = bench_xmalloc(slots[i].size);
        born[i] = i;
        touch(&slots[i], born[i]);
    }
    for (uint64_t step = 0; step < w->steps; step++) {
        size_t i = (size_t)(bench_rng_next(&rng) % n);
        check(&slots[i], born[i]);
        free(slots[i].block);
        slots[i].size = next_size(&rng);
        slots[i].block = bench_xmalloc(slots[i].size);
        born[i] = step + n;
        touch(&slots[i], born[i]);
    }
    for (size_t i = 0; i < n; i++) {
        check(&slots[i], born[i]);
        free(slots[i].block);
    }
    free(slots);
    free(born);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 3)
        config.max_size = (size_t)atol(argv[3]);
    if (argc > 4)
        config.working_set = (size_t)atol(argv[4]);
    if (argc > 5)
        config.large_percent = (unsigned)atoi(argv[5]);
    if (config.max_size < 8 || config.working_set < 1 || config.large_percent > 100) {
        fprintf(stderr, "usage: %s [threads] [scale] [max_size >= 8] [working_set >= 1] [large_percent]\n", argv[0]);
        return 2;
    }
    /* working sets past CACHE_MISS_SET miss the cache on every step: fewer steps there */
    uint64_t steps = BASE_STEPS;
    if (config.working_set > CACHE_MISS_SET)
        steps = steps * CACHE_MISS_SET / config.working_set;
    return bench_main_shared(argc < 3 ? argc : 3, argv, steps, touch_churn_worker);
}
