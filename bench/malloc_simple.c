/* malloc_simple — on the model of glibc's benchtests bench-malloc-simple: allocate a batch
 * of equal-sized blocks, then free them all, over and over, for every combination of block
 * size {16, 256, 1024, 4096} and batch count {25, 100, 400, 1600}.  It measures the cost of
 * malloc and free in bulk with no other work, including what the allocator does when a
 * whole batch comes back at once (coalescing, returning memory to the system).
 *
 *   malloc_simple [threads] [scale]
 *
 * Each block gets a tag byte at its start and end, checked before it is freed: an allocator
 * that hands out overlapping blocks is caught.  Each thread does its share of the block
 * allocations, the same number for every (size, count) pair; the tags are deterministic. */
#include "bench.h"

enum { BASE_STEPS = 16000000, MAX_COUNT = 1600 };   /* about 0.2 s under crtheap, 3 s under glibc */

static const size_t block_sizes[] = { 16, 256, 1024, 4096 };
static const size_t batch_counts[] = { 25, 100, 400, MAX_COUNT };

enum {
    SIZES = sizeof block_sizes / sizeof block_sizes[0],
    COUNTS = sizeof batch_counts / sizeof batch_counts[0],
};

static unsigned char tag_of(uint64_t round, size_t i, int end)
{
    return (unsigned char)(round * 0x3Bu + i * 0x9Du + (unsigned)end * 0x55u + 1u);
}

static void *malloc_simple_worker(void *arg)
{
    const bench_share *w = arg;
    unsigned char **blocks = bench_xmalloc(sizeof *blocks * MAX_COUNT);
    uint64_t per_pair = w->steps / (SIZES * COUNTS);  /* allocations per (size, count) */
    uint64_t round = (uint64_t)w->id << 32;

    for (size_t s = 0; s < SIZES; s++) {
        size_t size = block_sizes[s];
        for (size_t c = 0; c < COUNTS; c++) {
            size_t count = batch_counts[c];
            uint64_t rounds = per_pair / count ? per_pair / count : 1;
            for (uint64_t r = 0; r < rounds; r++, round++) {
                for (size_t i = 0; i < count; i++) {
                    unsigned char *p = bench_xmalloc(size);
                    p[0] = tag_of(round, i, 0);
                    p[size - 1] = tag_of(round, i, 1);
                    blocks[i] = p;
                }
                for (size_t i = 0; i < count; i++) {
                    unsigned char *p = blocks[i];
                    if (p[0] != tag_of(round, i, 0) || p[size - 1] != tag_of(round, i, 1))
                        bench_fail("malloc_simple: block %p of %zu bytes changed", (void *)p, size);
                    free(p);
                }
            }
        }
    }
    free(blocks);
    return NULL;
}

int main(int argc, char **argv)
{
    return bench_main_shared(argc, argv, BASE_STEPS, malloc_simple_worker);
}
