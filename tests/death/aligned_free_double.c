/* _aligned_free() of the same block twice. */
#include "death.h"

void *_aligned_malloc(size_t size, size_t alignment);
void _aligned_free(void *p);

int main(void)
{
    char *p = _aligned_malloc(200, 64);
    memset(p, 1, 200);
    _aligned_free(p);
    announce(p);
    _aligned_free(launder(p));
    return survived();
}
