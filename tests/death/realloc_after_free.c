/* realloc() of a block that was already freed. */
#include "death.h"

int main(void)
{
    char *p = malloc(40);
    memset(p, 1, 40);
    free(p);
    announce(p);
    void *q = realloc(launder(p), 100);
    (void)q;
    return survived();
}
