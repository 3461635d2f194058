/* free() of a 1 MiB block twice. */
#include "death.h"

int main(void)
{
    size_t n = (size_t)1 << 20;
    char *p = malloc(n);
    memset(p, 1, n);
    free(p);
    announce(p);
    free(launder(p));
    return survived();
}
