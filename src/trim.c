/* trim.c — giving memory back: _heapmin/malloc_trim/crtheap_trim over every heap, the
 * calling thread's crtheap_collect, and the purger thread that applies the decay to
 * heaps whose threads sleep.
 *
 * Releases and their accounting go through release.c.  Another thread's heap is only
 * touched under its claim (claim.c).  The work under one
 * claim is bounded (TRIM_BATCH segments), so an owner that needs its heap meanwhile
 * waits for one batch at most and then allocates while the trim goes on. */
#define _GNU_SOURCE
#include "internal.h"
#include "crtheap.h"
#include <errno.h>
#include <signal.h>
#include <time.h>

#define API __attribute__((visibility("default")))
#define TRIM_BATCH 32

/* Release everything reachable in up to TRIM_BATCH segments of h, starting at the
 * `*position`-th segment; returns false when the list is done. */
static bool trim_segments(heap_t *h, size_t *position, size_t *released)
{
    release_batch_t batch = { 0 };
    segment_t *seg = h->segments;
    for (size_t k = 0; seg && k < *position; k++)
        seg = seg->heap_next;
    for (int done = 0; seg && done < TRIM_BATCH; done++) {
        segment_t *next = seg->heap_next;
        for (size_t i = seg->first_slice; i < seg->slice_count; i++) {
            page_t *pg = &seg->pages[i];
            if (pg->bin != 0 && pg->slice_offset == 0)
                *released += page_release_free_os_pages(pg, &batch);
        }
        if (!segment_release_if_empty(seg, released)) {
            *released += segment_purge(seg, 0, &batch);
            ++*position;
        }
        seg = next;
    }
    release_flush(&batch);   /* before the claim ends: the owner may touch these pages next */
    return seg != NULL;
}

/* Everything free in heap h goes back to the OS. */
static size_t trim_heap(heap_t *h)
{
    size_t released = 0, position = 0;
    if (!heap_claim(h, true))
        return 0;
    heap_drain_remote(h);
    page_retire_empty(h, false);
    bool more = trim_segments(h, &position, &released);
    heap_unclaim(h);
    while (more) {
        heap_claim(h, true);
        more = trim_segments(h, &position, &released);
        heap_unclaim(h);
    }
    return released;
}

size_t heap_trim_all(void)
{
    size_t released = 0;
    for (heap_t *h = heap_all_first(); h; h = h->all_next)
        released += trim_heap(h);
    released += huge_cache_trim(true);
    return released;
}

API int _heapmin(void)
{
    release_take_error();
    heap_trim_all();
    int e = release_take_error();
    if (e) {
        errno = e;
        return -1;
    }
    return 0;
}

API size_t crtheap_trim(void)
{
    return heap_trim_all();
}

API int malloc_trim(size_t pad)
{
    (void)pad;   /* crtheap keeps no top-of-heap pad: all free memory goes back */
    return heap_trim_all() > 0;
}

API void crtheap_collect(void)
{
    heap_t *h = tls_heap;
    if (!h)
        return;
    heap_enter(h);
    heap_drain_remote(h);
    heap_maintain(h, true, os_now_ms());   /* forced: retires every empty page first */
    heap_leave(h);
}

/* ---- the purger: decay for heaps whose threads do not come back to allocate ----
 *
 * The purger is a thread of crtheap's that a program must not notice:
 *   - it exists only while two threads have heaps: a process with one thread keeps one
 *     thread (unshare(CLONE_NEWUSER), "am I single-threaded" checks), and its decay runs
 *     on that thread's own allocation paths; when the count falls to one it ends;
 *   - it blocks every signal, so signalfd and sigwait programs keep their signals;
 *   - it sleeps on a futex while no heap holds dirty memory and the huge cache is empty,
 *     and wakes only when one does (purger_wake), so an idle program has no wake-ups;
 *   - CRTHEAP_PURGER=0 (or the option) turns it off. */

static _Atomic int purger_state;      /* 0 not started, 1 running */
static _Atomic uint32_t purger_seq;   /* futex word: bumped by every wake */
static _Atomic int purger_sleeping;   /* the purger waits on purger_seq with no timeout */

#define PURGER_STACK_SIZE ((size_t)64 * 1024)   /* it calls no deep code: claims and madvise */
#define PURGER_MIN_SLEEP_MS 10                    /* a purge delay of 0 still waits this long */

static bool purger_allowed(void)
{
    return option_purger && option_purge_delay_ms >= 0 && heap_live_count() >= 2;
}

/* One decay pass over every heap; true while some memory still waits for it. */
static bool purger_pass(long delay)
{
    uint64_t now = os_now_ms();
    bool pending = false;
    for (heap_t *h = heap_all_first(); h; h = h->all_next) {
        uint64_t since = atomic_load_explicit(&h->dirty_since_ms, memory_order_relaxed);
        if (since == 0)
            continue;
        pending = true;
        if (now - since >= (uint64_t)delay && heap_claim(h, false)) {   /* skip a busy owner */
            heap_drain_remote(h);
            heap_maintain(h, false, now);
            heap_unclaim(h);
        }
    }
    pending |= huge_cache_trim(false) != 0 || huge_cache_pending();
    return pending;
}

/* Whether any heap or the huge cache holds memory for the decay (racy reads). */
static bool decay_has_work(void)
{
    for (heap_t *h = heap_all_first(); h; h = h->all_next)
        if (atomic_load_explicit(&h->dirty_since_ms, memory_order_relaxed) != 0)
            return true;
    return huge_cache_pending();
}

static void *purger_main(void *arg)
{
    (void)arg;
    while (purger_allowed()) {
        long delay = option_purge_delay_ms;
        if (purger_pass(delay)) {
            long sleep_ms = delay < PURGER_MIN_SLEEP_MS ? PURGER_MIN_SLEEP_MS : delay;
            struct timespec ts = { sleep_ms / 1000, (sleep_ms % 1000) * 1000000L };
            nanosleep(&ts, NULL);
            continue;
        }
        /* nothing to do: sleep until a wake.  The seq_cst store of `sleeping` and the
         * waker's fence after it publishes work make one of the two see the other. */
        uint32_t seq = atomic_load(&purger_seq);
        atomic_store(&purger_sleeping, 1);
        if (!decay_has_work() && purger_allowed())
            os_futex_wait(&purger_seq, seq);
        atomic_store(&purger_sleeping, 0);
    }
    atomic_store(&purger_state, 0);
    /* a thread that started meanwhile may have seen it running: look once more */
    if (purger_allowed())
        purger_start();
    return NULL;
}

void purger_wake(void)
{
    atomic_thread_fence(memory_order_seq_cst);   /* the work published before this is seen */
    if (atomic_load_explicit(&purger_sleeping, memory_order_relaxed)) {
        atomic_fetch_add(&purger_seq, 1);
        os_futex_wake(&purger_seq);
    }
}

/* Called on an allocation slow path while the caller's heap is not entered — never from
 * free(): glibc frees a joined thread's TLS while holding the stack-cache lock that
 * pthread_create needs.  Does nothing unless purger_allowed(). */
void purger_start(void)
{
    int expected = 0;
    if (!purger_allowed() || !atomic_compare_exchange_strong(&purger_state, &expected, 1))
        return;
    pthread_attr_t attr;
    pthread_t thread;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   /* the new thread inherits the full mask */
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, PURGER_STACK_SIZE);
    if (pthread_create(&thread, &attr, purger_main, NULL) != 0)
        atomic_store(&purger_state, 0);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Whether a slow path should call purger_start: cheap, and false in a one-thread process. */
bool purger_wanted(void)
{
    return !atomic_load_explicit(&purger_state, memory_order_relaxed) && purger_allowed();
}

void purger_fork_child(void)
{
    atomic_store(&purger_state, 0);
    atomic_store(&purger_sleeping, 0);
}
