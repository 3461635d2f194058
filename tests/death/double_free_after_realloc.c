/* free() of the old pointer after realloc moved the block. */
#include "death.h"

int main(void)
{
    char *p = malloc(16);
    memset(p, 1, 16);
    char *q = realloc(launder(p), 100000); /* too big to grow in place */
    if (q == p)
        return 2;
    announce(p);
    free(launder(p));
    free(q);
    return survived();
}
