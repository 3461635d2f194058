/* free() of a small block twice, with other blocks of its class freed in between. */
#include "death.h"

int main(void)
{
    void *others[16];
    char *p = malloc(48);
    memset(p, 1, 48);
    for (int i = 0; i < 16; i++)
        others[i] = malloc(48);
    free(p);
    for (int i = 0; i < 16; i++)
        free(others[i]);
    announce(p);
    free(launder(p));
    return survived();
}
