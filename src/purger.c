/* purger.c — the purger: crtheap's thread that applies the decay (decay.c) to the heaps
 * of threads that sleep, and, where CRTHEAP_MESH_DECAY_MS says so, meshes (mesh.c).
 *
 * It is a thread a program must not notice:
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

#define PURGER_STACK_SIZE   ((size_t)128 * 1024)  /* claims, madvise, a meshing pass (a few KiB of frames) */
#define PURGER_MIN_SLEEP_MS 10                    /* a purge delay of 0 still waits this long */
#define PURGER_MIN_SEGMENTS 2                     /* fewer segments and no dirty memory: no purger */


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

/* CRTHEAP_MESH_DECAY_MS >= 0: a meshing pass after the purger's decay pass, at most
 * that often (the purger wakes while memory waits for the decay, and at option
 * changes).  It claims every heap for its duration, which is why it is off by default.
 * It looks again at the pages freed into since the last trim (only trims mark pages
 * seen), so each pass costs what those pages cost. */
static void purger_mesh(void)
{
    static uint64_t last_ms;
    long period = option_mesh_decay_ms;
    uint64_t now = os_now_ms();
    if (period < 0 || !mesh_may_mesh() || !purger_allowed() || (last_ms && now - last_ms < (uint64_t)period))
        return;
    mesh_trim();
    last_ms = now;
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
        purger_mesh();
        uint32_t seq = os_event_prepare(&decay_work, sleep_ms >= 0);   /* a timed sleep: urgent wakes only */
        if (purger_allowed() && (sleep_ms >= 0 || !decay_has_work()))
            os_event_wait(&decay_work, seq, sleep_ms);
        os_event_done(&decay_work);
    }
    atomic_store(&purger_state, 0);
    /* a thread that started meanwhile may have seen it running: look once more */
    if (purger_allowed())
        purger_start();
    return NULL;
}

/* Start the purger if it is allowed and not running.  Only from an allocation slow path
 * while the caller's heap is not entered — never from free(): glibc frees a joined
 * thread's TLS while holding the stack-cache lock that pthread_create needs. */
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

/* Whether an allocation slow path of h should start the purger: it is allowed and not
 * running, and there is memory for the decay or a heap large enough to make some (a
 * large block, or two segments).  A few loads; false at once in a one-thread process. */
bool purger_wanted(heap_t *h, bool large_block)
{
    if (likely(atomic_load_explicit(&purger_state, memory_order_relaxed) || !purger_allowed()))
        return false;
    return large_block || atomic_load_explicit(&h->dirty_since_ms, memory_order_relaxed) ||
           registry_segment_count() >= PURGER_MIN_SEGMENTS;
}

void purger_fork_child(void)
{
    atomic_store(&purger_state, 0);
    os_event_done(&decay_work);
}
