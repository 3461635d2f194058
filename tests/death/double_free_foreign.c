/* A thread that has a heap frees another thread's block twice: the first free keeps the
 * block in the freeing thread's foreign cache, and the second must still be caught. */
#include <pthread.h>
#include "death.h"

static void *free_twice(void *p)
{
    char *own = malloc(32);   /* this thread gets a heap, so its frees of others' blocks are cached */
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
