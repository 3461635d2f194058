/* mixed_sizes — churn of mixed sizes up to 64 KiB over a working set: most blocks small,
 * sizes spread evenly per octave from 16 B to 64 KiB, so medium and page-sized classes
 * are exercised as well as the small ones. */
#include "bench.h"

enum { WORKING_SET = 4000, BASE_STEPS = 6000000, MAX_SIZE = 64 * 1024 };

static size_t mixed_size(bench_rng *rng)
{
    /* three in four requests are small (16-256 B); the rest spread up to 64 KiB */
    if (bench_rng_next(rng) % 4 != 0)
        return bench_rng_range(rng, 16, 256);
    return bench_rng_log_range(rng, 16, MAX_SIZE);
}

static void *mixed_sizes_worker(void *arg)
{
    const bench_share *w = arg;
    bench_rng rng = bench_rng_seeded((uint64_t)w->id + 101);
    void **blocks = bench_xmalloc(sizeof *blocks * WORKING_SET);
    size_t *sizes = bench_xmalloc(sizeof *sizes * WORKING_SET);
    uint64_t *tags = bench_xmalloc(sizeof *tags * WORKING_SET);
    for (size_t i = 0; i < WORKING_SET; i++) {
        sizes[i] = mixed_size(&rng);
        tags[i] = i;
        blocks[i] = bench_xmalloc(sizes[i]);
        pattern_fill(blocks[i], sizes[i], tags[i]);
    }
    for (uint64_t step = 0; step < w->steps; step++) {
        size_t slot = (size_t)(bench_rng_next(&rng) % WORKING_SET);
        pattern_check(blocks[slot], sizes[slot], tags[slot], "mixed_sizes");
        free(blocks[slot]);
        sizes[slot] = mixed_size(&rng);
        tags[slot] = step + WORKING_SET;
        blocks[slot] = bench_xmalloc(sizes[slot]);
        pattern_fill(blocks[slot], sizes[slot], tags[slot]);
    }
    for (size_t i = 0; i < WORKING_SET; i++) {
        pattern_check(blocks[i], sizes[i], tags[i], "mixed_sizes");
        free(blocks[i]);
    }
    free(blocks);
    free(sizes);
    free(tags);
    return NULL;
}

int main(int argc, char **argv)
{
    return bench_main_shared(argc, argv, BASE_STEPS, mixed_sizes_worker);
}
