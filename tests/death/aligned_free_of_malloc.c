/* _aligned_free() of a block that malloc, not _aligned_malloc, returned. */
#include "death.h"

void _aligned_free(void *p);

int main(void)
{
    char *p = written_block(100);
    announce(p);
    _aligned_free(launder(p));
    return survived();
}
