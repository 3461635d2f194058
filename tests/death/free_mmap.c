/* free() of the start of a region mapped with mmap, not by the allocator. */
#include <sys/mman.h>
#include "death.h"

int main(void)
{
    size_t n = (size_t)1 << 20;
    char *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return 2;
    memset(m, 1, n);
    free(malloc(16));
    announce(m);
    free(launder(m));
    return survived();
}
