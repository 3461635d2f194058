/* free() of a small block twice. */
#include "death.h"

int main(void)
{
    char *p = malloc(32);
    memset(p, 1, 32);
    free(p);
    announce(p);
    free(launder(p));
    return survived();
}
