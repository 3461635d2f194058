/* death.h — shared by the one-misuse programs in tests/death/.
 *
 * Each program prints the pointer it is about to misuse on stdout (with %p, as the
 * allocator's diagnostic does), then commits the misuse; test_death.c checks that the
 * process dies by SIGABRT with the exact diagnostic naming that pointer. */
#ifndef CRTHEAP_DEATH_H
#define CRTHEAP_DEATH_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hide where a pointer came from, so the compiler neither warns nor drops the misuse. */
static inline void *launder(void *p)
{
    void *volatile v = p;
    return v;
}

static inline void announce(const void *p)
{
    printf("%p\n", p);
    fflush(stdout);
}

/* A block of n bytes, written, for the misuse to come. */
static inline char *written_block(size_t n)
{
    char *p = malloc(n);
    memset(p, 1, n);
    return p;
}

/* Run fn(arg) on a thread of its own and wait for it. */
static inline void in_other_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    pthread_create(&t, NULL, fn, arg);
    pthread_join(t, NULL);
}

static inline void *free_it(void *p)
{
    free(p);
    return NULL;
}

/* free(p) on a thread of its own: p is queued on its owner's remote list. */
static inline void free_in_other_thread(void *p)
{
    in_other_thread(free_it, p);
}

/* Reaching this means the allocator absorbed the misuse silently. */
static inline int survived(void)
{
    fprintf(stderr, "misuse not detected\n");
    return 0;
}

#endif
