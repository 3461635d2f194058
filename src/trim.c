/* trim.c — giving everything back at once: _heapmin, malloc_trim and crtheap_trim over
 * every heap (live, idle or abandoned), and the calling thread's crtheap_collect.
 *
 * Releases and their accounting go through release.c.  Another thread's heap is only
 * touched under its claim (claim.c).  The work under one claim is bounded (TRIM_BATCH
 * segments), so an owner that needs its heap meanwhile waits for one batch at most and
 * then allocates while the trim goes on. */
#define _GNU_SOURCE
#include "modules.h"
#include "crtheap.h"
#include <errno.h>

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
            if (pg->bin != 0 && pg->bin != BIN_LARGE && pg->slice_offset == 0 && !page_trimmed(pg)) {
                uint64_t meshed[PAGE_OS_PAGES_MAX / 64] = { 0 };   /* those stay */
                if (pg->meshed)
                    mesh_page_members(pg, meshed);
                *released += page_release_free_os_pages(pg, &batch, pg->meshed ? meshed : NULL);
                page_set_free_slow(pg, PAGE_TRIMMED, true);   /* until its next free (page.c) */
            }
        }
        if (!heap_release_segment_if_empty(h, seg, released)) {
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
    heap_retire_empty_pages(h, false);
    bool more = trim_segments(h, &position, &released);
    heap_unclaim(h);
    while (more) {
        heap_claim(h, true);
        more = trim_segments(h, &position, &released);
        heap_unclaim(h);
    }
    return released;
}

static size_t heap_trim_all(void)
{
    /* meshing first: it looks again only at pages freed into since the last trim (which
     * marks every page it visits PAGE_TRIMMED) */
    size_t released = mesh_trim();
    for (heap_t *h = heap_all_first(); h; h = h->all_next)
        released += trim_heap(h);
    released += huge_cache_trim(true);
    return released;
}

API int _heapmin(void)
{
    release_take_error();
    count_trim(true, heap_trim_all());
    int e = release_take_error();
    if (e) {
        errno = e;
        return -1;
    }
    return 0;
}

API size_t crtheap_trim(void)
{
    size_t released = heap_trim_all();
    count_trim(false, released);
    return released;
}

API int malloc_trim(size_t pad)
{
    (void)pad;   /* crtheap keeps no top-of-heap pad: all free memory goes back */
    size_t released = heap_trim_all();
    count_trim(false, released);
    return released > 0;
}

API void crtheap_collect(void)
{
    heap_t *h = thread_heap();
    if (!h)
        return;
    heap_enter(h);
    heap_drain_remote(h);
    decay_heap(h, true, os_now_ms());   /* forced: retires every empty page first */
    heap_leave(h);
}
