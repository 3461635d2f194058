/* free() of a 64 MiB block twice. */
#include "death.h"

int main(void)
{
    size_t n = (size_t)64 << 20;
    char *p = malloc(n);
    memset(p, 1, 4096);
    free(p);
    announce(p);
    free(launder(p));
    return survived();
}
