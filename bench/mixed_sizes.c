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
    bench_churn(w, WORKING_SET, (uint64_t)w->id + 101, mixed_size, "mixed_sizes");
    return NULL;
}

int main(int argc, char **argv)
{
    return bench_main_shared(argc, argv, BASE_STEPS, mixed_sizes_worker);
}
