/* A block freed by another thread, then freed again by the thread that allocated it. */
#include <pthread.h>
#include "death.h"

static void *free_it(void *p)
{
    free(p);
    return NULL;
}

int main(void)
{
    char *p = malloc(64);
    memset(p, 1, 64);
    pthread_t t;
    pthread_create(&t, NULL, free_it, p);
    pthread_join(t, NULL);
    announce(p);
    free(launder(p));
    /* A heap may find the second free only when it collects its cross-thread frees. */
    for (int i = 0; i < 100000; i++)
        free(malloc(64));
    return survived();
}
