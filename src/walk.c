/* walk.c — the heap seen whole: _heapwalk, _heapchk, _heapset, _heapadd.
 *
 * Entries, in registry (address) order, address order inside a segment: every block
 * slot of a class page (used or free), a large or huge block, and each maximal run of
 * free slices as one free entry.  The segment header is not an entry. */
#include "modules.h"
#include "crtheap.h"
#include <errno.h>
#include <string.h>

#define API __attribute__((visibility("default")))

typedef struct entry {
    uint8_t *address;
    size_t size;
    int used;
} entry_t;

static bool segment_header_ok(const segment_t *seg)
{
    return seg->cookie == ((uintptr_t)seg ^ heap_secret) && seg->page_guard[0] == 0 && seg->page_guard[1] == 0 &&
           (seg->kind == SEGMENT_NORMAL || seg->kind == SEGMENT_HUGE || seg->kind == SEGMENT_DONATED) &&
           seg->slice_count >= 1 && seg->slice_count <= SEGMENT_SLICES && seg->first_slice < seg->slice_count;
}

static size_t segment_bytes(const segment_t *seg)
{
    return seg->map_size;   /* a normal segment maps 4 MiB, or less under a tight RLIMIT_AS */
}

/* A head page descriptor whose geometry lies inside its segment (racy reads allowed). */
static bool page_geometry_ok(const segment_t *seg, const page_t *pg)
{
    uintptr_t lo = (uintptr_t)seg->base, hi = lo + segment_bytes(seg);
    uintptr_t start = (uintptr_t)pg->start, side = (uintptr_t)pg->side;
    size_t bs = pg->block_size;
    if (start < lo || start >= hi || bs == 0 || pg->capacity == 0)
        return false;
    if (pg->bin == BIN_LARGE)   /* its size changes while it lives (grown in place): no index check */
        return pg->capacity == 1 && bs <= hi - start && pg->side == &pg->large_side;
    size_t width = pg->side_wide ? 2 : 1;
    size_t blocks_bytes = page_blocks_bytes(pg);
    /* the exact-division constants of page_block_index belong to the class's block size */
    unsigned rot = pg->index_rot;
    if (rot >= 64 || ((bs >> rot) & 1) == 0 || (bs >> rot) * pg->index_mul != 1)
        return false;
    if (pg->bin >= BIN_COUNT || bs != bin_block_size(pg->bin) ||
        blocks_bytes > (size_t)pg->slice_count * SLICE_SIZE || blocks_bytes > hi - start)
        return false;
    if (pg->side == pg->inline_side)
        return pg->capacity <= INLINE_SIDE_MAX && width == 2;
    if (seg->kind == SEGMENT_NORMAL && side == (uintptr_t)seg + sizeof(segment_t) +
                                                  (size_t)((start - lo) >> SLICE_SHIFT) * SIDE_SLOT_BYTES)
        return (size_t)pg->capacity * width <= SIDE_SLOT_BYTES;
    return side >= start + blocks_bytes && (side % OS_PAGE_SIZE == 0 || seg->kind == SEGMENT_DONATED) &&
           side + (size_t)pg->capacity * width <= start + (size_t)pg->slice_count * SLICE_SIZE &&
           side + (size_t)pg->capacity * width <= hi;
}

/* The entry that starts at block k of class page pg: the block if it is live, else the
 * run of free blocks from k to the next live one (or the page's end), as one free entry,
 * as Windows reports a free region. */
static void block_entry(const page_t *pg, size_t k, entry_t *e)
{
    unsigned v = side_get(pg, (uint32_t)k);
    e->address = pg->start + k * pg->block_size;
    e->used = side_is_allocated(pg, v) ? _USEDENTRY : _FREEENTRY;
    if (e->used) {
        e->size = side_requested(pg, v, e->address);
        return;
    }
    size_t end = k + 1;
    while (end < pg->capacity && !side_is_allocated(pg, side_get(pg, (uint32_t)end)))
        end++;
    e->size = (end - k) * pg->block_size;
}

/* The index of the first block after the entry that starts at block k (see block_entry). */
static size_t block_entry_end(const page_t *pg, size_t k)
{
    if (side_is_allocated(pg, side_get(pg, (uint32_t)k)))
        return k + 1;
    size_t end = k + 1;
    while (end < pg->capacity && !side_is_allocated(pg, side_get(pg, (uint32_t)end)))
        end++;
    return end;
}

/* The entry that starts at slice `i` of seg, or false past the end. */
static bool entry_at_slice(const segment_t *seg, size_t i, entry_t *e)
{
    for (; i < seg->slice_count; i++) {
        const page_t *pg = &seg->pages[i];
        if (seg->free_mask >> i & 1) {
            size_t n = 1;
            while (i + n < seg->slice_count && (seg->free_mask >> (i + n) & 1))
                n++;
            e->address = seg->base + i * SLICE_SIZE;
            e->size = n * SLICE_SIZE;
            if (seg->kind == SEGMENT_DONATED && (i + n) * SLICE_SIZE > seg->map_size)
                e->size = seg->map_size - i * SLICE_SIZE;
            if (seg->kind == SEGMENT_HUGE)
                e->size = seg->map_size - i * SLICE_SIZE;
            e->used = _FREEENTRY;
            return true;
        }
        if (pg->slice_offset != 0 || pg->bin == 0 || !page_geometry_ok(seg, pg))
            continue;
        if (pg->bin == BIN_LARGE) {
            e->address = pg->start;
            e->used = pg->large_side != SIDE8_FREE;
            e->size = e->used ? pg->large_requested : pg->block_size;
        } else {
            block_entry(pg, 0, e);
        }
        return true;
    }
    return false;
}

/* The entry after the one at address p, which must be an entry of seg. */
static int entry_after(const segment_t *seg, const uint8_t *p, entry_t *e)
{
    size_t i = (size_t)(p - seg->base) >> SLICE_SHIFT;
    if (p < seg->base || p >= seg->base + segment_bytes(seg))
        return _HEAPBADNODE;
    if (i >= seg->slice_count)
        i = seg->slice_count - 1u;
    /* An entry at a slice boundary may have changed under a concurrent free or malloc
     * (a page retired, a free run merged): the walk resumes at the next address. */
    bool slice_aligned = (size_t)(p - seg->base) % SLICE_SIZE == 0;
    if (seg->free_mask >> i & 1) {   /* a free run: p must be a slice start inside it */
        if (!slice_aligned)
            return _HEAPBADNODE;
        while (i < seg->slice_count && (seg->free_mask >> i & 1))
            i++;
        return entry_at_slice(seg, i, e) ? _HEAPOK : _HEAPEND;
    }
    const page_t *pg = &seg->pages[i];
    pg -= pg->slice_offset <= i ? pg->slice_offset : 0;
    if (pg->bin == 0 || !page_geometry_ok(seg, pg))
        return _HEAPBADNODE;
    size_t off = (size_t)(p - pg->start), k = off / pg->block_size;
    if (p < pg->start || (off % pg->block_size != 0 && !slice_aligned) || k >= pg->capacity)
        return _HEAPBADNODE;
    size_t next = block_entry_end(pg, k);
    if (next < pg->capacity) {
        block_entry(pg, next, e);
        return _HEAPOK;
    }
    size_t next_slice = (size_t)(pg - seg->pages) + (pg->slice_count ? pg->slice_count : 1);
    return entry_at_slice(seg, next_slice, e) ? _HEAPOK : _HEAPEND;
}

/* The first entry of seg that starts above p, or false: how a walk resumes from an entry
 * it returned when the heap changed under it (a page retired or re-carved, a run merged). */
static bool entry_above(const segment_t *seg, const uint8_t *p, entry_t *e)
{
    if (p < seg->base + (size_t)seg->first_slice * SLICE_SIZE)
        return entry_at_slice(seg, seg->first_slice, e);
    size_t i = (size_t)(p - seg->base) >> SLICE_SHIFT;
    if (i >= seg->slice_count)
        return false;   /* inside a huge block: nothing above it in its segment */
    if (seg->free_mask >> i & 1) {
        while (i < seg->slice_count && (seg->free_mask >> i & 1))
            i++;
        return entry_at_slice(seg, i, e);
    }
    const page_t *pg = &seg->pages[i];
    size_t head = pg->slice_offset <= i ? i - pg->slice_offset : i;
    pg = &seg->pages[head];
    size_t bs = pg->block_size;
    if (pg->bin == 0 || pg->bin == BIN_LARGE || bs == 0 || !page_geometry_ok(seg, pg) || p < pg->start)
        return entry_at_slice(seg, i + 1, e);   /* nothing of this page lies above p */
    size_t k = (size_t)(p - pg->start) / bs + 1;
    if (k < pg->capacity) {
        block_entry(pg, k, e);
        return true;
    }
    return entry_at_slice(seg, head + (pg->slice_count ? pg->slice_count : 1), e);
}

/* The entries this thread's walks returned last, with their last byte.  A walk that goes
 * on from one of them resumes at the first entry past that byte whatever changed
 * meanwhile (a free run that grew or shrank is not reported twice); any other _pentry
 * must still be an entry now, or the walk reports _HEAPBADNODE. */
#define WALK_REMEMBERED 4
static __thread struct { const void *address, *last; } walk_returned[WALK_REMEMBERED];
static __thread unsigned walk_returned_next;

/* The last byte of the remembered entry at p, or NULL when p is not one. */
static const void *walk_returned_last(const void *p)
{
    for (unsigned i = 0; i < WALK_REMEMBERED; i++)
        if (walk_returned[i].address == p)
            return walk_returned[i].last;
    return NULL;
}

/* The first segment that ends above p.  Registry order is address order and segments'
 * own bytes never overlap, so ends increase too. */
static segment_t *registry_find_above(const void *p)
{
    for (segment_t *seg = registry_first(); seg; seg = seg->reg_next)
        if ((const uint8_t *)p < seg->base + segment_bytes(seg))
            return seg;
    return NULL;
}

/* The segment whose own bytes hold p, or NULL. */
static segment_t *registry_find(const void *p)
{
    segment_t *seg = registry_find_above(p);
    return seg && (const uint8_t *)p >= segment_first_byte(seg) ? seg : NULL;
}

API int _heapwalk(_HEAPINFO *info)
{
    if (!info) {
        crt_invalid_parameter(EINVAL);
        return _HEAPBADPTR;
    }
    entry_t e;
    int result = _HEAPEND;
    const void *last;
    registry_lock();
    segment_t *seg = registry_first();
    if (!info->_pentry) {
        if (!seg)
            result = _HEAPEMPTY;
        else if (!segment_header_ok(seg))
            result = _HEAPBADBEGIN;
    } else if ((last = walk_returned_last(info->_pentry)) != NULL) {
        seg = registry_find_above(last);
        if (seg && !segment_header_ok(seg)) {
            result = _HEAPBADNODE;
            seg = NULL;
        } else if (seg && entry_above(seg, (const uint8_t *)last, &e)) {
            result = _HEAPOK;
            seg = NULL;
        } else if (seg) {
            seg = seg->reg_next;
        }
    } else {
        seg = registry_find(info->_pentry);
        if (!seg || !segment_header_ok(seg)) {
            result = _HEAPBADNODE;
            seg = NULL;
        } else {
            result = entry_after(seg, (const uint8_t *)info->_pentry, &e);
            if (result == _HEAPEND)
                seg = seg->reg_next;
            else
                seg = NULL;
        }
    }
    for (; seg; seg = seg->reg_next) {
        if (!segment_header_ok(seg)) {
            result = _HEAPBADNODE;
            break;
        }
        if (entry_at_slice(seg, seg->first_slice, &e)) {
            result = _HEAPOK;
            break;
        }
    }
    registry_unlock();
    if (result == _HEAPOK) {
        unsigned slot = walk_returned_next++ % WALK_REMEMBERED;
        walk_returned[slot].address = e.address;
        walk_returned[slot].last = e.address + e.size - 1;
        info->_pentry = (int *)(void *)e.address;
        info->_size = e.size;
        info->_useflag = e.used;
    }
    return result;
}

/* ---- _heapchk: every check a damaged heap can fail ---- */

static int check_page(const segment_t *seg, page_t *pg)
{
    if (!page_geometry_ok(seg, pg))
        return _HEAPBADNODE;
    if (pg->bin == BIN_LARGE)
        return pg->used <= 1 ? _HEAPOK : _HEAPBADNODE;
    const unsigned free_value = side_free_value(pg);
    uint32_t allocated = 0, listed = 0, remote = 0, unlisted = 0, withheld = 0;
    for (uint32_t i = 0; i < pg->capacity; i++) {
        unsigned v = side_get(pg, i);
        uintptr_t b = (uintptr_t)pg->start + (size_t)i * pg->block_size;
        if (v == free_value)
            listed++;
        else if (v == side_meshed_value(pg)) {
            if (!mesh_covers(b, b + pg->block_size))
                return _HEAPBADNODE;   /* withheld only while a meshed OS page lies under it */
            withheld++;
        }
        else if (v == SIDE_UNLISTED)
            unlisted++;
        else if (v == side_remote_value(pg))
            remote++;
        else if (side_requested(pg, v, pg->start + (size_t)i * pg->block_size) - 1 >= pg->block_size)
            return _HEAPBADNODE;   /* a requested size that cannot be (0 or above the block) */
        else
            allocated++;
    }
    if (allocated + remote + withheld != pg->used || unlisted != pg->unlisted || withheld != pg->withheld)
        return _HEAPBADNODE;
    uint32_t count = 0;
    for (block_t *b = pg->free; b; b = b->next) {
        uintptr_t off = (uintptr_t)b - (uintptr_t)pg->start;
        if ((uintptr_t)b < (uintptr_t)pg->start || off % pg->block_size != 0 ||
            off / pg->block_size >= pg->capacity || ++count > listed ||
            side_get(pg, (uint32_t)(off / pg->block_size)) != free_value)
            return _HEAPBADNODE;   /* outside the page, mid-block, live, or a cycle */
    }
    return count == listed ? _HEAPOK : _HEAPBADNODE;
}

/* More queued blocks than any heap can have (every block of a 47-bit address space, 16
 * bytes each, is 2^43): a count past it means the list has a cycle. */
#define REMOTE_NODES_MAX ((size_t)1 << 43)

/* One of a heap's remote lists: each node a block start marked REMOTE.  Nodes are not
 * changed until drained, which needs the claim we hold; pushes only change the heads.
 * Nodes are counted into *count, so a cycle ends the check. */
static int check_remote_list(block_t *first, size_t *count)
{
    for (block_t *b = first; b; b = b->next) {
        segment_t *seg = segment_of(b);
        if (!seg || !segment_header_ok(seg) || ++*count > REMOTE_NODES_MAX)
            return _HEAPBADNODE;
        page_t *pg = segment_page_of(seg, b);
        if (pg->bin == 0 || !page_geometry_ok(seg, pg))
            return _HEAPBADNODE;
        uintptr_t off = (uintptr_t)b - (uintptr_t)pg->start;
        if ((uintptr_t)b < (uintptr_t)pg->start || off % pg->block_size != 0 || off / pg->block_size >= pg->capacity ||
            side_get(pg, (uint32_t)(off / pg->block_size)) != side_remote_value(pg))
            return _HEAPBADNODE;
    }
    return _HEAPOK;
}

/* The blocks other threads freed into h. */
static int check_remote_lists(heap_t *h)
{
    size_t count = 0;
    for (unsigned k = 0; k < REMOTE_LISTS; k++) {
        int result = check_remote_list(atomic_load(&h->remote[k].head), &count);
        if (result != _HEAPOK)
            return result;
    }
    return _HEAPOK;
}

static int check_segment(segment_t *seg)
{
    if (!segment_header_ok(seg))
        return _HEAPBADBEGIN;
    for (size_t i = seg->first_slice; i < seg->slice_count; i++) {
        page_t *pg = &seg->pages[i];
        bool is_free = seg->free_mask >> i & 1;
        if (is_free != (pg->bin == 0 && pg->slice_offset == 0) || (is_free && pg->capacity != 0))
            return _HEAPBADNODE;   /* free's fast path takes capacity 0 for a free slice */
        if (is_free || pg->slice_offset != 0)
            continue;
        for (size_t k = 1; k < pg->slice_count; k++)
            if (i + k >= seg->slice_count || seg->pages[i + k].slice_offset != k)
                return _HEAPBADNODE;
        int r = check_page(seg, pg);
        if (r != _HEAPOK)
            return r;
    }
    return _HEAPOK;
}

API int _heapchk(void)
{
    heap_t *first = heap_all_first();
    if (!first)
        return _HEAPEMPTY;
    int result = _HEAPOK;
    for (heap_t *h = first; h && result == _HEAPOK; h = h->all_next) {
        heap_claim(h, true);
        result = check_remote_lists(h);
        for (segment_t *seg = h->segments; seg && result == _HEAPOK; seg = seg->heap_next)
            result = check_segment(seg);
        heap_unclaim(h);
    }
    registry_lock();
    for (segment_t *seg = registry_first(); seg && result == _HEAPOK; seg = seg->reg_next)
        if (!segment_header_ok(seg))
            result = _HEAPBADBEGIN;
    registry_unlock();
    if (result == _HEAPOK && mesh_check() != 0)
        result = _HEAPBADNODE;
    return result;
}

/* ---- _heapset ---- */

static void fill_page(page_t *pg, int fill)
{
    if (pg->bin == BIN_LARGE)
        return;
    const unsigned free_value = side_free_value(pg);
    for (uint32_t i = 0; i < pg->capacity; i++) {
        unsigned v = side_get(pg, i);
        uint8_t *b = pg->start + (size_t)i * pg->block_size;
        if (v == free_value)   /* the first word is the free-list link */
            memset(b + sizeof(block_t), fill, pg->block_size - sizeof(block_t));
        else if (v == SIDE_UNLISTED)
            memset(b, fill, pg->block_size);
    }
}

API int _heapset(unsigned int fill)
{
    int r = _heapchk();
    if (r != _HEAPOK)
        return r;
    for (heap_t *h = heap_all_first(); h; h = h->all_next) {
        heap_claim(h, true);
        for (segment_t *seg = h->segments; seg; seg = seg->heap_next) {
            for (size_t i = seg->first_slice; i < seg->slice_count; i++) {
                page_t *pg = &seg->pages[i];
                if (pg->bin != 0 && pg->slice_offset == 0)
                    fill_page(pg, (int)(fill & 0xFF));
                else if ((seg->free_mask & seg->dirty_mask) >> i & 1)   /* resident free slice */
                    memset(seg->base + i * SLICE_SIZE, (int)(fill & 0xFF),
                           seg->kind == SEGMENT_DONATED && (i + 1) * SLICE_SIZE > seg->map_size
                               ? seg->map_size - i * SLICE_SIZE : SLICE_SIZE);
            }
        }
        heap_unclaim(h);
    }
    return _HEAPOK;
}

/* ---- _heapadd: donated memory becomes slices of the caller's heap ---- */

API int _heapadd(void *memory, size_t size)
{
    if (!memory || size < OS_PAGE_SIZE) {
        crt_invalid_parameter(EINVAL);
        return -1;
    }
    uintptr_t start = ((uintptr_t)memory + OS_PAGE_SIZE - 1) & ~(uintptr_t)(OS_PAGE_SIZE - 1);
    uintptr_t end = ((uintptr_t)memory + size) & ~(uintptr_t)(OS_PAGE_SIZE - 1);
    if (end <= start || end - start < OS_PAGE_SIZE) {
        errno = EINVAL;
        return -1;
    }
    heap_t *h = heap_get_or_init();
    if (!h) {
        errno = ENOMEM;
        return -1;
    }
    if (!heap_add_donated(h, start, end)) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}
