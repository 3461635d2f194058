/* small_churn — single-thread churn of small blocks (8–128 B) over a working set.
 * Each thread owns a working set of slots; every step frees a random slot's block (after
 * checking it) and puts a new block of a random small size there. */
#include "bench.h"

enum { WORKING_SET = 20000, BASE_STEPS = 10000000 };

static void *small_churn_worker(void *arg)
{
    const bench_share *w = arg;
    bench_rng rng = bench_rng_seeded((uint64_t)w->id + 1);
    void **blocks = bench_xmalloc(sizeof *blocks * WORKING_SET);
    size_t *sizes = bench_xmalloc(sizeof *sizes * WORKING_SET);
    uint64_t *tags = bench_xmalloc(sizeof *tags * WORKING_SET);
    for (size_t i = 0; i < WORKING_SET; i++) {
        sizes[i] = bench_rng_range(&rng, 8, 128);
        tags[i] = i;
        blocks[i] = bench_xmalloc(sizes[i]);
        pattern_fill(blocks[i], sizes[i], tags[i]);
    }
    for (uint64_t step = 0; step < w->steps; step++) {
        size_t slot = (size_t)(bench_rng_next(&rng) % WORKING_SET);
        pattern_check(blocks[slot], sizes[slot], tags[slot], "small_churn");
        free(blocks[slot]);
        sizes[slot] = bench_rng_range(&rng, 8, 128);
        tags[slot] = step + WORKING_SET;
        blocks[slot] = bench_xmalloc(sizes[slot]);
        pattern_fill(blocks[slot], sizes[slot], tags[slot]);
    }
    for (size_t i = 0; i < WORKING_SET; i++) {
        pattern_check(blocks[i], sizes[i], tags[i], "small_churn");
        free(blocks[i]);
    }
    free(blocks);
    free(sizes);
    free(tags);
    return NULL;
}

int main(int argc, char **argv)
{
    return bench_main_shared(argc, argv, BASE_STEPS, small_churn_worker);
}
