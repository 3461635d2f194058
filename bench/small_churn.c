/* small_churn — single-thread churn of small blocks (8–128 B) over a working set.
 * Each thread owns a working set of slots; every step frees a random slot's block (after
 * checking it) and puts a new block of a random small size there. */
#include "bench.h"

enum { WORKING_SET = 20000, BASE_STEPS = 10000000 };

static size_t small_size(bench_rng *rng)
{
    return bench_rng_range(rng, 8, 128);
}

static void *small_churn_worker(void *arg)
{
    const bench_share *w = arg;
    bench_churn(w, WORKING_SET, (uint64_t)w->id + 1, small_size, "small_churn");
    return NULL;
}

int main(int argc, char **argv)
{
    return bench_main_shared(argc, argv, BASE_STEPS, small_churn_worker);
}
