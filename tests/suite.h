/* suite.h — helpers for the Check suites (include after check.h and common.h). */
#ifndef CRTHEAP_TESTS_SUITE_H
#define CRTHEAP_TESTS_SUITE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

/* One test in a case of its own, with its own timeout: a deadlock fails that case, not
 * the whole run. */
static inline void add_case(Suite *s, const char *name, const TTest *test, int timeout_s)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, timeout_s);
    tcase_add_test(tc, test);
    suite_add_tcase(s, tc);
}

/* A second thread with a heap (it allocated, and checks its block at the end), parked
 * until released: the purger runs only while two threads have heaps. */
static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;
static bool park_released;
static _Atomic long parked_tid;

static void *parked_thread(void *arg)
{
    unsigned char *p = malloc(64);
    if (!p)
        return arg;
    fill_all(p, 64, block_key(p, 64));
    atomic_store(&parked_tid, (long)gettid());
    pthread_mutex_lock(&park_lock);
    while (!park_released)
        pthread_cond_wait(&park_cond, &park_lock);
    pthread_mutex_unlock(&park_lock);
    if (check_all(p, 64, block_key(p, 64)) != 64)
        return arg;
    free(p);
    return NULL;
}

static inline pthread_t park_start(void)
{
    pthread_t t;
    park_released = false;
    atomic_store(&parked_tid, 0);
    ck_assert_int_eq(pthread_create(&t, NULL, parked_thread, (void *)1), 0);
    while (atomic_load(&parked_tid) == 0)
        usleep(1000);
    return t;
}

static inline void park_end(pthread_t t)
{
    pthread_mutex_lock(&park_lock);
    park_released = true;
    pthread_cond_broadcast(&park_cond);
    pthread_mutex_unlock(&park_lock);
    void *r;
    ck_assert_int_eq(pthread_join(t, &r), 0);
    ck_assert_ptr_null(r);   /* the parked thread's block kept its contents */
}

#endif
