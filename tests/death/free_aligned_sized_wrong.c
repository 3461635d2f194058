/* free_aligned_sized() with the right alignment and a wrong size. */
#include "death.h"

void free_aligned_sized(void *p, size_t alignment, size_t size);

int main(void)
{
    char *p = aligned_alloc(256, 1000);
    memset(p, 1, 1000);
    announce(p);
    free_aligned_sized(launder(p), 256, 999);
    return survived();
}
