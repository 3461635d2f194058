/* free() of a pointer into the middle of a small block. */
#include "death.h"

int main(void)
{
    char *p = malloc(1000);
    memset(p, 1, 1000);
    announce(p + 64);
    free(launder(p + 64));
    return survived();
}
