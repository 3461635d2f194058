/* free() of a pointer inside a foreign mapping aligned to 64 MiB, whose words all point
 * at its own start: an allocator that trusts a "segment header" found by masking the
 * address, without checking its registry, is fooled by it. */
#include <stdint.h>
#include <sys/mman.h>
#include "death.h"

int main(void)
{
    size_t align = (size_t)64 << 20, n = 2 * align;
    char *m =
        mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return 2;
    char *base = (char *)(((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1));
    uintptr_t *words = (uintptr_t *)base;
    for (size_t i = 0; i < ((size_t)1 << 20) / sizeof *words; i++)
        words[i] = (uintptr_t)base;
    free(malloc(16));
    announce(base + 65536);
    free(launder(base + 65536));
    return survived();
}
