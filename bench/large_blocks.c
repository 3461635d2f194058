/* large_blocks — large allocations, 256 KiB to 32 MiB: calloc a block, check that it is
 * zero, touch every page, keep a few alive, check and free. This is the path where an
 * allocator maps, caches and unmaps memory; the kernel's page faulting is part of the cost.
 *
 *   large_blocks [threads] [scale] [sparse]
 *
 * With `sparse` the program touches only the first and the last page of each block (a
 * buffer sized for the worst case, a hash table's first use): the check reads those
 * two pages, and what the allocator does to the pages nobody uses is what is measured. */
#include <stdbool.h>
#include "bench.h"

enum { LIVE_BLOCKS = 4, BASE_BLOCKS = 60, PAGE = 4096 };
#define MIN_SIZE ((size_t)256 * 1024)
#define MAX_SIZE ((size_t)32 * 1024 * 1024)

static bool sparse;

static void check_zero(const unsigned char *p, size_t size)
{
    if (sparse) {   /* the two pages the program will use */
        for (size_t off = 0; off < PAGE; off += sizeof(uint64_t))
            if (p[off] != 0 || p[size - 1 - off] != 0)
                bench_fail("large_blocks: calloc(%zu) block %p not zero near %zu", size, (void *)p, off);
        return;
    }
    /* one word per page and the whole last word: enough to see stale contents */
    for (size_t off = 0; off + sizeof(uint64_t) <= size; off += PAGE) {
        uint64_t word;
        memcpy(&word, p + off, sizeof word);
        if (word != 0)
            bench_fail("large_blocks: calloc(%zu) block %p not zero at %zu", size, (void *)p, off);
    }
    if (p[size - 1] != 0)
        bench_fail("large_blocks: calloc(%zu) block %p not zero at its end", size, (void *)p);
}

/* Every page, or in sparse mode the first and the last page only. */
static void fill_touched(unsigned char *p, size_t size, uint64_t tag)
{
    if (!sparse) {
        pattern_fill(p, size, tag);
        return;
    }
    pattern_fill(p, PAGE, tag);
    pattern_fill(p + size - PAGE, PAGE, tag + 1);
}

static void check_touched(const unsigned char *p, size_t size, uint64_t tag)
{
    if (!sparse) {
        pattern_check(p, size, tag, "large_blocks");
        return;
    }
    pattern_check(p, PAGE, tag, "large_blocks");
    pattern_check(p + size - PAGE, PAGE, tag + 1, "large_blocks");
}

static void *large_blocks_worker(void *arg)
{
    const bench_share *w = arg;
    bench_rng rng = bench_rng_seeded((uint64_t)w->id + 31);
    void *blocks[LIVE_BLOCKS] = { 0 };
    size_t sizes[LIVE_BLOCKS] = { 0 };
    uint64_t tags[LIVE_BLOCKS] = { 0 };
    for (uint64_t i = 0; i < w->steps; i++) {
        size_t slot = (size_t)(i % LIVE_BLOCKS);
        if (blocks[slot] != NULL) {
            check_touched(blocks[slot], sizes[slot], tags[slot]);
            free(blocks[slot]);
        }
        /* log-uniform: as many 256-512 KiB blocks as 16-32 MiB ones */
        sizes[slot] = bench_rng_log_range(&rng, MIN_SIZE, MAX_SIZE);
        tags[slot] = i;
        blocks[slot] = calloc(1, sizes[slot]);
        if (blocks[slot] == NULL)
            bench_fail("calloc(1, %zu) returned NULL", sizes[slot]);
        check_zero(blocks[slot], sizes[slot]);
        fill_touched(blocks[slot], sizes[slot], tags[slot]);
    }
    for (size_t slot = 0; slot < LIVE_BLOCKS; slot++)
        if (blocks[slot] != NULL) {
            check_touched(blocks[slot], sizes[slot], tags[slot]);
            free(blocks[slot]);
        }
    return NULL;
}

int main(int argc, char **argv)
{
    sparse = argc > 3 && strcmp(argv[3], "sparse") == 0;
    if (argc > 3 && !sparse) {
        fprintf(stderr, "usage: %s [threads] [scale] [sparse]\n", argv[0]);
        return 2;
    }
    /* sparse blocks cost far less each: more of them, so the run is long enough to time */
    return bench_main_shared(argc < 3 ? argc : 3, argv, sparse ? 40 * BASE_BLOCKS : BASE_BLOCKS, large_blocks_worker);
}
