/* page.c — a page's blocks: layout, lazy linking of free blocks, queues, retirement.
 *
 * Layout of a class page: blocks from `start`; the side table in the segment header's
 * slot of the page's slice, or at the end of the span on OS pages of its own (classes
 * below 80 B; in donated memory, every class, packed), or, for a page of at most
 * INLINE_SIDE_MAX blocks, in its descriptor.  Free
 * blocks are linked lazily: a fresh page has every side entry 0 (unlisted) and
 * page_extend() links a few OS pages' worth at a time, so untouched memory stays
 * untouched.  _heapmin turns free blocks back into unlisted ones when it releases the
 * OS pages under them. */
#include "modules.h"
#include <errno.h>
#include <string.h>

page_t empty_page;   /* queue sentinel: capacity 0, never a free block */

void page_init(page_t *pg, unsigned bin)
{
    size_t area = segment_span_bytes(pg);
    size_t bs = bin_block_size(bin);
    size_t width = bs >= WIDE_SIDE_MIN ? 2 : 1;
    size_t cap = area / bs;
    uint8_t *slot = segment_side_slot(pg);
    if (cap <= INLINE_SIDE_MAX && width == 2) {
        pg->side = pg->inline_side;   /* few blocks: the table lives in the descriptor */
    } else if (slot && cap * width <= SIDE_SLOT_BYTES) {
        pg->side = slot;              /* in the segment's header slice, dense with the others */
        memset(slot, 0, cap * width);
    } else {
        size_t side_bytes;
        bool donated = segment_of(pg->start)->kind == SEGMENT_DONATED;
        cap = side_at_end(area, bs, width, donated ? 16 : OS_PAGE_SIZE, &side_bytes);
        pg->side = pg->start + area - side_bytes;
    }
    pg->bin = (uint8_t)bin;
    page_set_block_size(pg, bs);
    pg->side_wide = width == 2;
    pg->capacity = (uint16_t)cap;
    pg->unlisted = (uint16_t)cap;
    pg->scan = 0;
    pg->used = 0;
    pg->free = NULL;
    pg->free_slow = 0;
    crt_assert(pg->side == slot || pg->side == (void *)pg->inline_side ||
               segment_of(pg->start)->kind == SEGMENT_DONATED ||
               ((uintptr_t)pg->side % OS_PAGE_SIZE == 0 && pg->start + cap * bs <= (uint8_t *)pg->side));
    if (!pg->fresh && pg->side != slot)   /* inline: cleared by segment_take_slices; slot: above */
        memset(pg->side, 0, cap * width);
}

/* A span (or a huge segment's one page) becomes the page of one block of n requested
 * bytes, as large as the span. */
void page_init_large(page_t *pg, size_t n)
{
    pg->bin = BIN_LARGE;
    page_set_block_size(pg, segment_span_bytes(pg));
    pg->capacity = 1;
    pg->used = 1;
    pg->side = &pg->large_side;
    pg->large_side = 1;
    pg->large_requested = n;
    pg->touch_probe = 0;
}

/* Link unlisted blocks (side entry 0) into the free list, in address order, about two
 * OS pages' worth at a time.  Returns false when there are none. */
bool page_extend(page_t *pg)
{
    if (pg->unlisted == 0)
        return false;
    size_t want = 2 * OS_PAGE_SIZE / pg->block_size;
    if (want == 0)
        want = 1;
    if (want > pg->unlisted)
        want = pg->unlisted;
    block_t *head = NULL, **tail = &head;
    uint32_t i = pg->scan, seen = 0;
    const unsigned free_value = side_free_value(pg);
    for (size_t linked = 0; linked < want && seen < pg->capacity; seen++) {
        if (i >= pg->capacity)
            i = 0;
        if (side_get(pg, i) == SIDE_UNLISTED) {
            block_t *b = (block_t *)(pg->start + (size_t)i * pg->block_size);
            side_set(pg, i, free_value);
            *tail = b;
            tail = &b->next;
            linked++;
            pg->unlisted--;
        }
        i++;
    }
    *tail = pg->free;
    pg->free = head;
    pg->scan = i;
    if (head)   /* linking wrote into free OS pages: the next trim looks again */
        page_set_free_slow(pg, PAGE_TRIMMED, false);
    return head != NULL;
}

/* A page of many small blocks fills lazily, and such a page is often the only one of a
 * light class; carved on dirty slices it would keep all the memory the previous page
 * there touched.  Release the OS pages between its linked blocks and its side table
 * (every block there is unlisted, so nothing reads them) so that it holds what it uses.
 * Not on slices its own class just gave up: a class that fills and empties pages in
 * waves (a batch allocated, then freed) would release and fault them in again on every
 * wave (256 B x 1600: 55 ns a malloc+free pair against 7).  Larger blocks fill their
 * page quickly; theirs is kept. */
void page_release_unlinked(page_t *pg)
{
    enum { LAZY_PAGE_MIN_BLOCKS = 256 };   /* one-slice pages of blocks up to 256 bytes */
    if (pg->fresh || pg->capacity < LAZY_PAGE_MIN_BLOCKS || pg->last_bin == pg->bin ||
        segment_of(pg->start)->kind == SEGMENT_DONATED)   /* donated memory is never given back */
        return;
    uintptr_t lo = ((uintptr_t)pg->start + (size_t)pg->scan * pg->block_size + OS_PAGE_SIZE - 1) &
                   ~(uintptr_t)(OS_PAGE_SIZE - 1);
    uintptr_t side = (uintptr_t)pg->side, end = (uintptr_t)pg->start + segment_span_bytes(pg);
    uintptr_t hi = (side >= lo && side < end ? side : end) & ~(uintptr_t)(OS_PAGE_SIZE - 1);
    release_range(NULL, lo, hi);
}

/* A class queue is `first` (empty_page when empty) and the pages linked by next (NULL
 * after the last) and prev, where the first page's prev is the last page: the queue needs
 * no `last` field, so a heap's queue heads are one pointer each (malloc indexes them by
 * the bin).  A page in no queue has prev NULL; the only page of a queue is its own prev. */
void page_queue_push_front(page_queue_t *q, page_t *pg)
{
    page_t *first = q->first;
    if (first == &empty_page) {
        pg->next = NULL;
        pg->prev = pg;
    } else {
        pg->next = first;
        pg->prev = first->prev;
        first->prev = pg;
    }
    q->first = pg;
}

static void page_queue_push_back(page_queue_t *q, page_t *pg)
{
    page_t *first = q->first;
    if (first == &empty_page) {
        page_queue_push_front(q, pg);
        return;
    }
    page_t *last = first->prev;
    last->next = pg;
    pg->prev = last;
    pg->next = NULL;
    first->prev = pg;
}

/* Put pg (in no queue) right behind `at`, a page of q. */
static void page_queue_insert_after(page_queue_t *q, page_t *at, page_t *pg)
{
    pg->prev = at;
    pg->next = at->next;
    if (at->next)
        at->next->prev = pg;
    else
        q->first->prev = pg;   /* pg is the new last */
    at->next = pg;
}

void page_queue_remove(page_queue_t *q, page_t *pg)
{
    page_t *first = q->first;
    crt_assert(pg->prev != NULL && (pg == first || pg->prev->next == pg));
    crt_assert(pg->next ? pg->next->prev == pg : first->prev == pg);
    if (pg == first) {
        q->first = pg->next ? pg->next : &empty_page;
        if (pg->next)
            pg->next->prev = pg->prev;   /* the new first's prev: the last page */
    } else {
        pg->prev->next = pg->next;
        if (pg->next)
            pg->next->prev = pg->prev;
        else
            first->prev = pg->prev;      /* pg was the last */
    }
    pg->next = pg->prev = NULL;
}

/* Give an empty page's slices back to its segment (or a huge block to the cache/OS);
 * returns segment_free_span's SPAN_* flags for the heap (heap_spans_freed). */
static unsigned page_retire(heap_t *h, page_t *pg)
{
    crt_assert(pg->used == 0 && heap_held(h));
    crt_assert(pg->meshed == 0);   /* a meshed OS page keeps a MESHED block (mesh.c): never empty */
    if (pg->bin != BIN_LARGE && !page_in_full(pg))
        page_queue_remove(&h->queues[pg->bin], pg);
    segment_t *seg = segment_of(pg->start);
    if (seg->kind == SEGMENT_HUGE) {
        segment_free_huge(seg);
        return 0;
    }
    return segment_free_span(pg);
}

/* After a free left the page empty or took it out of the full state (page_free_block's
 * slow half).  Which empty pages stay:
 *   - the only page of its class, whatever its size (page_free_block's inline case);
 *   - the class's head page, and one spare right behind it, for blocks up to 8 KiB
 *     (pages of one slice, and the 2- and 4-slice pages of 32-64 B), so a malloc/free
 *     or producer/consumer cycle reuses them instead of carving a new page each time.
 * Other empty pages are retired; the decay retires the ones that stay once idle.
 * Returns the SPAN_* flags of a retirement, 0 if none. */
unsigned page_free_block_slow(heap_t *h, page_t *pg)
{
    crt_debug_check(page_check_counts(pg));
    page_set_free_slow(pg, PAGE_TRIMMED, false);   /* a free: the next trim looks again */
    if (page_in_full(pg) && pg->bin != BIN_LARGE) {
        page_set_free_slow(pg, PAGE_IN_FULL, false);
        page_queue_push_back(&h->queues[pg->bin], pg);
    }
    if (pg->used != 0)
        return 0;
    pg->emptied = 1;
    if (pg->bin == BIN_LARGE)
        return page_retire(h, pg);
    page_queue_t *q = &h->queues[pg->bin];
    if (q->first == pg && pg->next == NULL)
        return 0;   /* the class's only page */
    if (pg->block_size > SLICE_SIZE / 8)   /* big blocks: pages of several slices */
        return page_retire(h, pg);
    if (q->first == pg)
        return 0;
    page_t *spare = q->first->next;
    if (spare == pg)
        return 0;
    if (spare && spare->used == 0)
        return page_retire(h, pg);
    page_queue_remove(q, pg);
    page_queue_insert_after(q, q->first, pg);
    return 0;
}

/* Retire the empty pages of the heap, the last of each class included.  idle_only (decay)
 * keeps a page that emptied again since the last pass, clearing the mark: a class in use
 * keeps its page instead of carving a new one on each pass, an idle one loses it on the
 * next pass. */
unsigned page_retire_empty(heap_t *h, bool idle_only)
{
    unsigned flags = 0;
    for (unsigned bin = 1; bin < BIN_COUNT; bin++) {
        page_t *pg = h->queues[bin].first;
        while (pg && pg != &empty_page) {
            page_t *next = pg->next;
            if (pg->used == 0 && !(idle_only && pg->emptied))
                flags |= page_retire(h, pg);
            else
                pg->emptied = 0;
            pg = next;
        }
    }
    return flags;
}

/* The debug build's audit of a page (owner or claimer): its side table agrees with
 * `used` (live and remote entries) and `unlisted` (0 entries), and its free list stays
 * inside the page, on block starts marked FREE, without a cycle. */
void page_check_counts(const page_t *pg)
{
#ifndef CRTHEAP_DEBUG
    (void)pg;
#else
    if (pg->bin == 0 || pg->bin == BIN_LARGE)
        return;
    uint32_t used = 0, unlisted = 0, listed = 0;
    const unsigned free_value = side_free_value(pg);
    for (uint32_t i = 0; i < pg->capacity; i++) {
        unsigned v = side_get(pg, i);
        used += v != SIDE_UNLISTED && v != free_value;
        unlisted += v == SIDE_UNLISTED;
        listed += v == free_value;
    }
    crt_assert(used == pg->used);
    crt_assert(unlisted == pg->unlisted);
    uint32_t walked = 0;
    for (const block_t *b = pg->free; b; b = b->next) {
        uintptr_t i = page_block_index(pg, b);
        crt_assert(i < pg->capacity && pg->start + (size_t)i * pg->block_size == (const uint8_t *)b);
        crt_assert(side_get(pg, (uint32_t)i) == free_value);
        crt_assert(++walked <= listed);
    }
    crt_assert(walked == listed);
#endif
}

/* Rebuild the free list from the side table: every FREE entry, in address order. */
void page_rebuild_free_list(page_t *pg)
{
    const unsigned free_value = side_free_value(pg);
    block_t *head = NULL, *last = NULL;
    for (uint32_t i = 0; i < pg->capacity; i++) {
        if (side_get(pg, i) == free_value) {
            block_t *b = (block_t *)(pg->start + (size_t)i * pg->block_size);
            if (last)
                last->next = b;
            else
                head = b;
            last = b;
        }
    }
    if (last)
        last->next = NULL;
    pg->free = head;
}

/* Release the whole OS pages of a partly used page that hold only free blocks (a
 * withheld one is free: its bytes on an OS page that is not meshed hold nothing); the
 * blocks whose link word lay in them become unlisted.  `meshed` (NULL where the page
 * has no meshed OS page) marks the OS pages that share memory, which stay.  Caller owns
 * or claimed the heap and drained its remote frees.  Returns the bytes released. */
size_t page_release_free_os_pages(page_t *pg, release_batch_t *batch, const uint64_t *meshed)
{
    /* no block in the free list (every one live or already unlisted): nothing to give */
    if (pg->bin == BIN_LARGE || pg->used - pg->withheld + pg->unlisted == pg->capacity || pg->block_size < 16 ||
        segment_of(pg->start)->kind == SEGMENT_DONATED || (pg->meshed && !meshed))
        return 0;
    uint64_t gone[PAGE_OS_PAGES_MAX / 64] = { 0 };   /* OS pages released */
    const unsigned free_value = side_free_value(pg), withheld = side_meshed_value(pg);
    const uintptr_t start = (uintptr_t)pg->start, blocks_end = start + page_blocks_bytes(pg);
    size_t released = 0;
    uintptr_t run_start = 0, run_end = 0;
    for (uintptr_t os = start; os + OS_PAGE_SIZE <= blocks_end; os += OS_PAGE_SIZE) {
        size_t k = (os - start) / OS_PAGE_SIZE;
        if (meshed && (meshed[k / 64] >> (k % 64) & 1))
            continue;
        uint32_t lo = (uint32_t)((os - start) / pg->block_size);
        uint32_t hi = (uint32_t)((os + OS_PAGE_SIZE - 1 - start) / pg->block_size);
        bool all_free = true, any_listed = false;   /* all unlisted: never touched, or gone */
        for (uint32_t i = lo; i <= hi && i < pg->capacity && all_free; i++) {
            unsigned v = side_get(pg, i);
            all_free = v == free_value || v == SIDE_UNLISTED || v == withheld;
            any_listed |= v == free_value || v == withheld;
        }
        if (!all_free || !any_listed)
            continue;
        gone[k / 64] |= 1ull << (k % 64);
        if (run_end != os) {
            released += release_range(batch, run_start, run_end);
            run_start = os;
        }
        run_end = os + OS_PAGE_SIZE;
    }
    released += release_range(batch, run_start, run_end);
    if (run_end == 0)
        return 0;   /* nothing qualified (a range that was already gone still relinks below) */
    /* A free block whose link word now reads zero cannot stay linked: make it unlisted. */
    for (uint32_t i = 0; i < pg->capacity; i++) {
        size_t k = (size_t)i * pg->block_size / OS_PAGE_SIZE;
        if (side_get(pg, i) == free_value && (gone[k / 64] >> (k % 64) & 1)) {
            side_set(pg, i, SIDE_UNLISTED);
            pg->unlisted++;
        }
    }
    page_rebuild_free_list(pg);
    return released;
}
