/* heap.c — a thread's heap: making or adopting one, its segments and which of them a new
 * span comes from, the allocation slow path, cross-thread frees and their drain, large
 * blocks, and donated memory.  The decay is in decay.c, thread exit and fork in thread.c,
 * the list of every heap and the claims in claim.c. */
#define _GNU_SOURCE
#include "modules.h"
#include <errno.h>
#include <string.h>

/* A thread without a heap of its own points at heap_none: diverted, its queues empty, so
 * the fast paths need no NULL test and send such a thread to the slow path, which makes
 * its heap (thread_heap() reads NULL for it).  No page is ever owned by heap_none. */
heap_t heap_none = { .claim = CLAIM_DIVERT, .queues = { [0 ... BIN_COUNT] = { &empty_page } } };
__thread heap_t *tls_heap __attribute__((tls_model("initial-exec"))) = &heap_none;

/* ---- metadata: heaps and donated-segment headers, carved from 64 KiB chunks ---- */
static uint8_t *meta_cursor, *meta_end;

/* Every piece is aligned for the strictest of them: a segment header, whose page
 * descriptors are 128-byte aligned. */
#define META_ALIGN _Alignof(segment_t)
#define META_CHUNK SLICE_SIZE
_Static_assert(META_ALIGN >= _Alignof(heap_t) && (META_ALIGN & (META_ALIGN - 1)) == 0, "metadata alignment");

/* Caller holds heaps_mutex (claim.c). */
static void *meta_alloc_locked(size_t size)
{
    size = (size + META_ALIGN - 1) & ~(size_t)(META_ALIGN - 1);
    if ((size_t)(meta_end - meta_cursor) < size) {
        size_t chunk = size > META_CHUNK ? size : META_CHUNK;
        uint8_t *p = os_map(chunk);
        if (!p)
            return NULL;
        meta_cursor = p;
        meta_end = p + chunk;
    }
    void *r = meta_cursor;
    meta_cursor += size;
    return r;
}

/* Zeroed metadata that lives forever.  Takes heaps_mutex: never call it while busy. */
static void *meta_alloc(size_t size)
{
    heaps_lock();
    void *r = meta_alloc_locked(size);
    heaps_unlock();
    return r;
}

static void heap_reset_queues(heap_t *h)
{
    for (unsigned b = 0; b <= BIN_COUNT; b++) {
        h->queues[b].first = &empty_page;
    }
}

/* A heap for the calling thread: an abandoned one if any (its pages come along), else new. */
heap_t *heap_acquire(void)
{
    heaps_lock();
    heap_t *h = heap_pool_take();
    if (!h) {
        h = meta_alloc_locked(sizeof(heap_t));
        if (h) {
            heap_reset_queues(h);
            heap_list_add(h);
        }
    }
    if (h)
        heap_mark_live(h);
    heaps_unlock();
    return h;
}

/* ---- the heap's segments ---- */

static void heap_link_segment(heap_t *h, segment_t *seg)
{
    seg->heap = h;
    seg->heap_prev = NULL;
    seg->heap_next = h->segments;
    if (h->segments)
        h->segments->heap_prev = seg;
    h->segments = seg;
}

static void heap_unlink_segment(heap_t *h, segment_t *seg)
{
    if (seg->heap_prev)
        seg->heap_prev->heap_next = seg->heap_next;
    else
        h->segments = seg->heap_next;
    if (seg->heap_next)
        seg->heap_next->heap_prev = seg->heap_prev;
    seg->heap_next = seg->heap_prev = NULL;
}

/* Give an empty normal segment of h back to the OS: true if it was unmapped, with the
 * resident bytes that went added to *released (when not NULL). */
bool heap_release_segment_if_empty(heap_t *h, segment_t *seg, size_t *released)
{
    if (seg->kind != SEGMENT_NORMAL || !segment_is_empty(seg))
        return false;
    heap_unlink_segment(h, seg);
    size_t resident = segment_unmap(seg);
    if (released)
        *released += resident;
    return true;
}

/* Pages were retired (segment_free_span's SPAN_* flags): the decay learns of new dirty
 * memory, and of the heap's empty segments one stays for its next pages while another
 * that empties goes back to the OS now, as a shrinking heap's memory should. */
void heap_spans_freed(heap_t *h, unsigned flags)
{
    if ((flags & SPAN_FIRST_DIRTY) && atomic_load_explicit(&h->dirty_since_ms, memory_order_relaxed) == 0) {
        atomic_store_explicit(&h->dirty_since_ms, os_now_ms(), memory_order_relaxed);
        os_event_signal(&decay_work, false);
    }
    if (!(flags & SPAN_SEGMENT_EMPTY))
        return;
    bool kept = false;
    for (segment_t *seg = h->segments, *next; seg; seg = next) {
        next = seg->heap_next;
        if (seg->kind != SEGMENT_NORMAL || !segment_is_empty(seg))
            continue;
        if (kept)
            heap_release_segment_if_empty(h, seg, NULL);
        kept = true;
    }
}

/* A run of `slices` free slices from the heap's segments or a new one.  Class pages and
 * large blocks live in separate segments: small long-lived blocks do not pin segments
 * full of big freed ones, and a freed large block's slices are never reused by a class
 * page (a second free of it still finds free slices and is reported).  Dirty slices
 * come first: they are still resident, so reusing them costs no page fault and no new
 * RSS.  Among those, the shortest run that fits.  When no segment can be mapped (a
 * tight address space), a last round takes free slices of the other side. */
static page_t *heap_alloc_span(heap_t *h, size_t slices, size_t align_slices, bool large)
{
    bool other_side = false;
    /* rounds: dirty slices, any free slice, a new segment */
    for (int round = 0; round < 3; round++) {
        if (round == 2) {
            segment_t *seg = segment_new(large, slices);
            if (seg) {
                heap_link_segment(h, seg);
            } else {
                if (other_side)
                    return NULL;
                other_side = true;
                round = 0;   /* becomes 1: any free slice, any side */
            }
        }
        segment_t *best_seg = NULL;
        size_t best_len = 0, best_start = 0;
        for (segment_t *seg = h->segments; seg; seg = seg->heap_next) {
            if (align_slices && seg->kind == SEGMENT_DONATED)
                continue;   /* donated slices are only OS-page aligned */
            /* an empty segment changes side, as a whole run; a span of the other side
             * (that, or a tight address space mixing them) goes to the top, away from the
             * bottom where the segment's own spans start: a block freed there and freed
             * again is still reported, not taken for a block of the new side */
            bool changes_side = seg->holds_large != large && seg->kind != SEGMENT_DONATED;
            if (changes_side && !other_side && (round == 0 || !segment_is_empty(seg)))
                continue;
            size_t start = 0, len = segment_fit(seg, slices, align_slices, changes_side, round == 0, &start);
            if (len && (best_len == 0 || len < best_len)) {
                best_seg = seg;
                best_len = len;
                best_start = start;
                if (len == slices)
                    break;
            }
        }
        if (best_seg) {
            if (!other_side)
                best_seg->holds_large = large;
            return segment_take_slices(best_seg, best_start, slices);
        }
    }
    return NULL;
}

/* Donated memory [start, end) (page aligned) becomes segments of h, one per
 * DONATED_CHUNK_MAX.  Called outside enter/leave: meta_alloc takes heaps_mutex, which
 * fork's prepare handler holds while it waits for busy heaps. */
bool heap_add_donated(heap_t *h, uintptr_t start, uintptr_t end)
{
    while (start < end) {
        size_t chunk = end - start < DONATED_CHUNK_MAX ? end - start : DONATED_CHUNK_MAX;
        segment_t *seg = meta_alloc(sizeof(segment_t));
        if (!seg || !registry_has_room())
            return false;
        heap_enter(h);
        segment_init_donated(seg, (uint8_t *)start, chunk);
        heap_link_segment(h, seg);
        heap_leave(h);
        start += chunk;
    }
    return true;
}

/* ---- freeing into a heap ---- */

/* Free of a block in a page this heap owns (the block is already validated and its side
 * entry marked free): the one free-into-own-page, shared with free's fast path. */
void heap_free_owned(heap_t *h, page_t *pg, void *p)
{
    if (unlikely(page_free_block(h, pg, p)))
        heap_page_freed_slow(h, pg);
}

/* The slow half of a free into one's own page: the page's queue, its retirement, and
 * the heap's segment policy for what that freed. */
void heap_page_freed_slow(heap_t *h, page_t *pg)
{
    unsigned flags = page_free_block_slow(h, pg);
    if (flags)
        heap_spans_freed(h, flags);
}

static __thread unsigned remote_turn;   /* which of the owner's lists this thread pushes to */

/* One atomic push onto one of the owner's lists; the owner (or a claimer) drains them. */
void heap_free_remote(page_t *pg, void *p)
{
    heap_t *owner = atomic_load_explicit(&pg->heap, memory_order_acquire);
    _Atomic(block_t *) *list = &owner->remote[remote_turn++ % REMOTE_LISTS].head;
    block_t *b = p;
    block_t *head = atomic_load_explicit(list, memory_order_relaxed);
    do {
        b->next = head;
    } while (!atomic_compare_exchange_weak_explicit(list, &head, b, memory_order_release, memory_order_relaxed));
}

/* A block taken off a remote list goes back to its page's free list. */
static inline void heap_take_back(heap_t *h, block_t *b)
{
    segment_t *seg = segment_of(b);
    if (!seg)
        fatal_pointer("free", b, "corrupted remote free list");
    page_t *pg = segment_page_of(seg, b);
    uintptr_t i = page_block_index(pg, b);
    if (pg->bin == 0 || i >= pg->capacity || side_get(pg, (uint32_t)i) != side_remote_value(pg))
        fatal_pointer("free", b, "double free");
    side_set(pg, (uint32_t)i, side_free_value(pg));
    heap_free_owned(h, pg, b);
}

void heap_drain_remote(heap_t *h)
{
    crt_assert(heap_held(h));
    _Static_assert(REMOTE_LISTS == 4, "the quick test below reads every list");
    if (!(atomic_load_explicit(&h->remote[0].head, memory_order_relaxed) ||
          atomic_load_explicit(&h->remote[1].head, memory_order_relaxed) ||
          atomic_load_explicit(&h->remote[2].head, memory_order_relaxed) ||
          atomic_load_explicit(&h->remote[3].head, memory_order_relaxed)))
        return;   /* the common case on every refill: nothing came back */
    block_t *b[REMOTE_LISTS];
    bool any = false;
    for (unsigned k = 0; k < REMOTE_LISTS; k++) {
        b[k] = NULL;
        if (atomic_load_explicit(&h->remote[k].head, memory_order_relaxed) != NULL) {
            b[k] = atomic_exchange_explicit(&h->remote[k].head, NULL, memory_order_acquire);
            any = true;
        }
    }
    while (any) {   /* one block of each list per turn: their link loads are independent */
        any = false;
        for (unsigned k = 0; k < REMOTE_LISTS; k++) {
            if (b[k]) {
                block_t *next = b[k]->next;
                heap_take_back(h, b[k]);
                b[k] = next;
                any |= next != NULL;
            }
        }
    }
}

/* Retire every empty page of h (idle_only: keep those that emptied since the last pass)
 * and apply the heap's segment policy to what that freed. */
void heap_retire_empty_pages(heap_t *h, bool idle_only)
{
    unsigned flags = page_retire_empty(h, idle_only);
    if (flags)
        heap_spans_freed(h, flags);
}

/* ---- allocation slow path ---- */

static page_t *heap_new_page(heap_t *h, unsigned bin)
{
    size_t slices = bin_page_slices(bin);
    page_t *pg = heap_alloc_span(h, slices, 0, false);
    if (!pg)
        return NULL;
    page_init(pg, bin);
    if (pg->capacity == 0) {   /* a donated segment's short last slice holds no block of it */
        heap_spans_freed(h, segment_free_span(pg));
        pg = heap_alloc_span(h, slices, 1, false);   /* slice-aligned: never donated memory */
        if (!pg)
            return NULL;
        page_init(pg, bin);
    }
    page_extend(pg);
    page_release_unlinked(pg);
    atomic_store_explicit(&pg->heap, h, memory_order_release);
    page_queue_push_front(&h->queues[bin], pg);
    return pg;
}

/* A page of class `bin` with a free block at the front of its queue, made if none has
 * one; NULL (ENOMEM) when the OS has no memory left.  The caller (alloc.c's refill)
 * drains the remote frees and takes the decay's turn first. */
page_t *heap_find_page(heap_t *h, unsigned bin)
{
    page_queue_t *q = &h->queues[bin];
    page_t *pg = q->first;
    while (pg != &empty_page && pg) {
        page_t *next = pg->next;
        crt_assert(pg->bin == bin && atomic_load_explicit(&pg->heap, memory_order_relaxed) == h && !page_in_full(pg));
        crt_debug_check(page_check_counts(pg));
        if (pg->free || page_extend(pg)) {
            if (q->first != pg) {
                page_queue_remove(q, pg);
                page_queue_push_front(q, pg);
            }
            return pg;
        }
        page_queue_remove(q, pg);   /* full: back in the queue when a block comes free */
        page_set_free_slow(pg, PAGE_IN_FULL, true);
        pg = next;
    }
    return heap_new_page(h, bin);
}

void *heap_malloc_large(heap_t *h, size_t n, size_t alignment)
{
    if (n > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    size_t slices = (n + SLICE_SIZE - 1) / SLICE_SIZE;
    size_t align_slices = alignment > SLICE_SIZE ? alignment / SLICE_SIZE : alignment ? 1 : 0;
    page_t *pg = NULL;
    if (n <= LARGE_MAX && n < option_mmap_threshold && align_slices <= SEGMENT_SLICES / 4)
        pg = heap_alloc_span(h, slices, align_slices, true);
    if (pg && segment_span_bytes(pg) < n) {   /* a donated segment's short last slice */
        heap_spans_freed(h, segment_free_span(pg));
        pg = NULL;
    }
    if (!pg)
        pg = segment_alloc_huge(h, n, alignment);
    if (!pg)
        return NULL;
    page_init_large(pg, n);
    atomic_store_explicit(&pg->heap, segment_of(pg->start)->kind == SEGMENT_HUGE ? NULL : h,
                          memory_order_release);
    return pg->start;
}
