/* decay.c — memory goes back to the OS by itself, once it has been free for the purge
 * delay: the policy of what goes when (the mechanisms are page.c's retirement, segment.c's
 * purge and huge cache, release.c's release) and a decay pass over one heap, which runs
 * on a thread's own allocation slow paths and in the purger (purger.c). */
#include "modules.h"

#define DECAY_PERIOD_MS     50                    /* a thread's own decay pass, at most this often */

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
