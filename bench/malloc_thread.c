/* malloc_thread — on the model of glibc's benchtests bench-malloc-thread: every thread
 * churns its own working set of 1024 blocks whose sizes follow a heavily skewed
 * distribution (most requests tiny, a few up to 32 KiB), freeing a random block and
 * allocating a new one at each step.  It measures the malloc/free fast paths of a
 * thread-local workload, and how well they scale when threads run side by side.
 *
 *   malloc_thread [threads] [scale]
 *
 * Sizes run from 8 B to 32 KiB with the probability of a size >= s roughly proportional to
 * 1/s (half the requests are at most 16 B, one in 64 reaches 512 B).  Each block's first and
 * last byte hold a tag derived from the step that made it, checked before the free: an
 * allocator that overwrote a live block is caught.  The work is split between the threads;
 * each has a fixed seed. */
#include "bench.h"

enum { WORKING_SET = 1024, BASE_STEPS = 40000000, MIN_SIZE = 8, MAX_SIZE = 32 * 1024 };

typedef struct slot {
    unsigned char *block;
    size_t size;
    uint64_t born;  /* the step the block was made at */
} slot;

static unsigned char tag_of(uint64_t step) { return (unsigned char)(step * 0x9Du + 1u); }

/* size = MIN_SIZE * 2^32 / u for u uniform in [2^32 * MIN_SIZE / MAX_SIZE, 2^32): a
 * truncated 1/s tail, P(size >= s) ~ MIN_SIZE / s */
static size_t next_size(bench_rng *rng)
{
    const uint64_t lo = (1ull << 32) / (MAX_SIZE / MIN_SIZE);
    uint64_t u = lo + (bench_rng_next(rng) >> 32) % ((1ull << 32) - lo);
    size_t size = (size_t)(((uint64_t)MIN_SIZE << 32) / u);
    return size > MAX_SIZE ? MAX_SIZE : size;
}

static void make(slot *s, bench_rng *rng, uint64_t step)
{
    s->size = next_size(rng);
    s->block = bench_xmalloc(s->size);
    s->born = step;
    s->block[0] = tag_of(step);
    s->block[s->size - 1] = tag_of(step + 1);
}

static void release(slot *s)
{
    if (s->block[0] != tag_of(s->born) || s->block[s->size - 1] != tag_of(s->born + 1))
        bench_fail("malloc_thread: block %p of %zu bytes changed", (void *)s->block, s->size);
    free(s->block);
}

static void *malloc_thread_worker(void *arg)
{
    const bench_share *w = arg;
    bench_rng rng = bench_rng_seeded((uint64_t)w->id + 31);
    slot *slots = bench_xmalloc(sizeof *slots * WORKING_SET);
    for (size_t i = 0; i < WORKING_SET; i++)
        make(&slots[i], &rng, i);
    for (uint64_t step = 0; step < w->steps; step++) {
        slot *s = &slots[bench_rng_next(&rng) % WORKING_SET];
        release(s);
        make(s, &rng, step + WORKING_SET);
    }
    for (size_t i = 0; i < WORKING_SET; i++)
        release(&slots[i]);
    free(slots);
    return NULL;
}

int main(int argc, char **argv)
{
    return bench_main_shared(argc, argv, BASE_STEPS, malloc_thread_worker);
}
