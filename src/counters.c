/* counters.c — what crtheap counts: calls, bytes requested, trims and threads.
 *
 * The fast paths count nothing.  Counting mode (CRTHEAP_SHOW_STATS=1) diverts every
 * heap to the slow paths (CLAIM_DIVERT, as M_PERTURB does), which count each malloc,
 * free and realloc in the calling thread's heap (heap_t.counts: written by its owner
 * only, summed by readers) and the bytes requested in one process-wide figure with its
 * peak.  A program runs slower in counting mode (every call takes the slow path); off,
 * nothing of this costs an instruction on a malloc or free.  Trims, _heapmin calls and
 * threads are rare and always counted.
 *
 * Above os.c only. */
#define _GNU_SOURCE
#include "modules.h"

_Atomic int counting_mode;   /* 1: every malloc, free and realloc is counted */

static _Atomic long long requested_now;   /* bytes requested by live counted blocks */
static _Atomic long long requested_peak;
static heap_counts_t heapless;            /* calls of threads without a heap (atomic adds) */
static _Atomic uint64_t heapmin_calls, trim_calls, trim_released, threads_seen;

static void requested_add(long long delta)
{
    long long now = atomic_fetch_add_explicit(&requested_now, delta, memory_order_relaxed) + delta;
    long long peak = atomic_load_explicit(&requested_peak, memory_order_relaxed);
    while (now > peak && !atomic_compare_exchange_weak_explicit(&requested_peak, &peak, now, memory_order_relaxed,
                                                                memory_order_relaxed)) {
    }
}

/* The counts of heap h, or (NULL) the shared ones of a thread that has none. */
static void count_in(heap_t *h, unsigned which)
{
    if (h) {
        h->counts.calls[which]++;   /* the owner's own: plain */
        return;
    }
    __atomic_fetch_add(&heapless.calls[which], 1, __ATOMIC_RELAXED);
}

void count_malloc(heap_t *h, size_t requested)
{
    count_in(h, COUNT_MALLOC);
    requested_add((long long)requested);
}

void count_free(heap_t *h, size_t requested)
{
    count_in(h, COUNT_FREE);
    requested_add(-(long long)requested);
}

void count_realloc(heap_t *h)
{
    count_in(h, COUNT_REALLOC);
}

void count_resize(size_t old_requested, size_t new_requested)
{
    requested_add((long long)new_requested - (long long)old_requested);
}

void count_trim(bool heapmin, size_t released)
{
    atomic_fetch_add_explicit(heapmin ? &heapmin_calls : &trim_calls, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&trim_released, released, memory_order_relaxed);
}

void count_thread(void)
{
    atomic_fetch_add_explicit(&threads_seen, 1, memory_order_relaxed);
}

/* The process-wide figures; the per-heap calls are the caller's to add (stats.c). */
void counters_global(counters_global_t *out)
{
    for (unsigned k = 0; k < COUNT_KINDS; k++)
        out->heapless[k] = __atomic_load_n(&heapless.calls[k], __ATOMIC_RELAXED);
    long long now = atomic_load_explicit(&requested_now, memory_order_relaxed);
    out->requested_now = now > 0 ? (size_t)now : 0;
    out->requested_peak = (size_t)atomic_load_explicit(&requested_peak, memory_order_relaxed);
    out->heapmin_calls = atomic_load_explicit(&heapmin_calls, memory_order_relaxed);
    out->trim_calls = atomic_load_explicit(&trim_calls, memory_order_relaxed);
    out->trim_released = atomic_load_explicit(&trim_released, memory_order_relaxed);
    out->threads_seen = atomic_load_explicit(&threads_seen, memory_order_relaxed);
}
