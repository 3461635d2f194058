/* A thread that has a heap of its own frees another thread's block twice: the first free
 * queues it for its owner, and the second must be caught before the owner drains it. */
#include <pthread.h>
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
    char *p = malloc(64);
    memset(p, 1, 64);
    pthread_t t;
    pthread_create(&t, NULL, free_twice, p);
    pthread_join(t, NULL);
    return survived();
}
