/* fastpath — the small-size malloc/free fast path, for instruction counting under callgrind.
 *   fastpath <pairs> [size]
 * Warms up (so the size class's page exists and caches are primed), then does <pairs>
 * malloc(size)/free pairs. Running it for N and 2N pairs and subtracting cancels the cost
 * of start-up and warm-up: (Ir(2N) - Ir(N)) / N is the instructions per pair. */
#include "bench.h"

enum { WARM_UP_PAIRS = 10000, WARM_UP_LIVE = 64 };

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s <pairs> [size]\n", argv[0]);
        return 2;
    }
    uint64_t pairs = strtoull(argv[1], NULL, 10);
    size_t size = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 32;
    void *volatile sink;

    void *live[WARM_UP_LIVE];
    for (size_t i = 0; i < WARM_UP_LIVE; i++)
        live[i] = bench_xmalloc(size);
    for (uint64_t i = 0; i < WARM_UP_PAIRS; i++) {
        sink = bench_xmalloc(size);
        free(sink);
    }
    for (size_t i = 0; i < WARM_UP_LIVE; i++)
        free(live[i]);

    for (uint64_t i = 0; i < pairs; i++) {
        char *p = malloc(size);
        sink = p;
        free(sink);
    }
    printf("pairs: %llu size: %zu\n", (unsigned long long)pairs, size);
    return 0;
}
