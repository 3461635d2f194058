/* A thread that has a heap of its own frees another thread's block twice: the first free
 * queues it for its owner, and the second must be caught before the owner drains it. */
#include "death.h"

static void *free_twice(void *p)
{
    char *own = malloc(32);   /* this thread gets a heap (unlike double_free_cross_thread) */
    memset(own, 2, 32);
    free(own);
    free(p);
    announce(p);
    free(launder(p));
    return NULL;
}

int main(void)
{
    in_other_thread(free_twice, written_block(64));
    return survived();
}
