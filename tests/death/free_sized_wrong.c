/* free_sized() with a size that is not the one the block was allocated with. */
#include "death.h"

void free_sized(void *p, size_t size);

int main(void)
{
    char *p = written_block(64);
    announce(p);
    free_sized(launder(p), 100);
    return survived();
}
