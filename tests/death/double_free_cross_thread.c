/* A block freed by another thread, then freed again by the thread that allocated it. */
#include "death.h"

int main(void)
{
    char *p = written_block(64);
    free_in_other_thread(p);
    announce(p);
    free(launder(p));
    /* A heap may find the second free only when it collects its cross-thread frees. */
    for (int i = 0; i < 100000; i++)
        free(malloc(64));
    return survived();
}
