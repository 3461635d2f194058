/* decay.c — memory goes back to the OS by itself, once it has been free for the purge
 * delay: the policy of what goes when (the mechanisms are page.c's retirement, segment.c's
 * purge and huge cache, release.c's release), where it runs (a thread's own allocation
 * slow paths, and the purger thread for heaps whose threads sleep), and the purger.
 *
 * The purger is a thread of crtheap's that a program must not notice:
 *   - it exists only while two threads have heaps: a process with one thread keeps one
 *     thread (unshare(CLONE_NEWUSER), "am I single-threaded" checks), and its decay runs
 *     on that thread's own allocation paths; when the count falls to one it ends;
 *   - it blocks every signal, so signalfd and sigwait programs keep their signals;
 *   - it sleeps on the decay_work event while no heap holds dirty memory and the huge
 *     cache is empty, and wakes only when one does, so an idle program has no wake-ups;
 *   - CRTHEAP_PURGER=0 (or the option) turns it off. */
#define _GNU_SOURCE
#include "modules.h"
#include <signal.h>

#define DECAY_PERIOD_MS     50                    /* a thread's own decay pass, at most this often */
#define PURGER_STACK_SIZE   ((size_t)64 * 1024)   /* it calls no deep code: claims and madvise */
#define PURGER_MIN_SLEEP_MS 10                    /* a purge delay of 0 still waits this long */
#define PURGER_MIN_SEGMENTS 2                     /* fewer segments and no dirty memory: no purger */

/* One decay pass over h (entered or claimed): memory free longer than the purge delay
 * goes back (force: all of it, and every empty page is retired first). */
void decay_heap(heap_t *h, bool force, uint64_t now)
{
    crt_assert(heap_held(h));
    h->maintained_ms = now;
    long delay = option_purge_delay_ms;
    if (delay < 0 && !force)
        return;
    uint64_t older_than = force ? 0 : (now > (uint64_t)delay ? now - (uint64_t)delay : 1);
    uint64_t oldest_left = 0;
    heap_retire_empty_pages(h, !force);   /* empty pages become dirty slices, purged in turn */
    for (segment_t *seg = h->segments, *next; seg; seg = next) {
        next = seg->heap_next;
        if (seg->dirty_mask && (force || seg->dirty_since_ms <= older_than)) {
            if (heap_release_segment_if_empty(h, seg, NULL))
                continue;
            segment_purge(seg, older_than, NULL);
        }
        if (seg->dirty_mask && seg->kind != SEGMENT_DONATED &&
            (oldest_left == 0 || seg->dirty_since_ms < oldest_left))
            oldest_left = seg->dirty_since_ms;
    }
    atomic_store_explicit(&h->dirty_since_ms, oldest_left, memory_order_relaxed);
    huge_cache_trim(false);   /* the process-wide cache ages by the delay; _heapmin empties it */
}

/* The decay on an allocation slow path of h's own thread (entered), at most once per
 * DECAY_PERIOD_MS: in a process with one thread (no purger) this is where freed memory
 * goes back. */
void decay_if_due(heap_t *h)
{
    uint64_t now = os_now_ms();
    if (now - h->maintained_ms >= DECAY_PERIOD_MS)
        decay_heap(h, false, now);
}

/* ---- the purger ---- */

static _Atomic int purger_state;   /* 0 not started, 1 running */

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
            decay_heap(h, false, now);
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
        /* with memory waiting, sleep the delay; with none, until there is some.  Either
         * sleep ends early at an urgent signal of the event: a thread's exit (the purger
         * may have to end, or the process would wait for it) or an option change. */
        long sleep_ms = -1;
        if (purger_pass(delay))
            sleep_ms = delay < PURGER_MIN_SLEEP_MS ? PURGER_MIN_SLEEP_MS : delay;
        uint32_t seq = os_event_prepare(&decay_work, sleep_ms >= 0);   /* a timed sleep: urgent wakes only */
        if (purger_allowed() && (sleep_ms >= 0 || !decay_has_work()))
            os_event_wait(&decay_work, seq, sleep_ms);
        os_event_done(&decay_work);
    }
    atomic_store(&purger_state, 0);
    /* a thread that started meanwhile may have seen it running: look once more */
    if (purger_allowed())
        decay_start_purger();
    return NULL;
}

/* Start the purger if it is allowed and not running.  Only from an allocation slow path
 * while the caller's heap is not entered — never from free(): glibc frees a joined
 * thread's TLS while holding the stack-cache lock that pthread_create needs. */
void decay_start_purger(void)
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

/* Whether an allocation slow path of h should start the purger: it is allowed and not
 * running, and there is memory for the decay or a heap large enough to make some (a
 * large block, or two segments).  A few loads; false at once in a one-thread process. */
bool decay_wants_purger(heap_t *h, bool large_block)
{
    if (likely(atomic_load_explicit(&purger_state, memory_order_relaxed) || !purger_allowed()))
        return false;
    return large_block || atomic_load_explicit(&h->dirty_since_ms, memory_order_relaxed) ||
           registry_segment_count() >= PURGER_MIN_SEGMENTS;
}

void decay_fork_child(void)
{
    atomic_store(&purger_state, 0);
    os_event_done(&decay_work);
}
