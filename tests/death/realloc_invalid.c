/* realloc() of a pointer crtheap never handed out. */
#include "death.h"

int main(void)
{
    char buf[64];
    memset(buf, 1, sizeof buf);
    free(malloc(16));
    announce(buf);
    void *q = realloc(launder(buf), 100);
    (void)q;
    return survived();
}
