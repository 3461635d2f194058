/* free() of a page-aligned pointer into the middle of a 1 MiB block. */
#include "death.h"

int main(void)
{
    size_t n = (size_t)1 << 20;
    char *p = malloc(n);
    memset(p, 1, n);
    announce(p + 8192);
    free(launder(p + 8192));
    return survived();
}
