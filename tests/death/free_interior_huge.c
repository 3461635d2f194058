/* free() of a pointer 3 MiB into an 8 MiB block (a huge block: a segment of its own). */
#include "death.h"

int main(void)
{
    size_t n = (size_t)8 << 20;
    char *p = malloc(n);
    memset(p, 1, n);
    announce(p + (3 << 20));
    free(launder(p + (3 << 20)));
    return survived();
}
