/* segment.c — 4 MiB segments carved into 64 KiB slices, huge segments holding one block,
 * and donated segments (_heapadd).  Only the owning heap's thread (or a claimer, see
 * claim.c) changes a segment's masks and page descriptors.  Which segment a span comes
 * from, and what happens to an empty segment, is the heap's policy (heap.c): this file
 * maps, carves and frees. */
#include "modules.h"
#include <errno.h>
#include <string.h>

static const uint64_t ALL_SLICES = ~0ull;

static uint64_t run_mask(size_t start, size_t count)
{
    uint64_t m = count >= 64 ? ALL_SLICES : ((1ull << count) - 1);
    return m << start;
}

/* Bit i set in the result: slices i .. i+count-1 are all set in `mask`. */
static uint64_t runs_of(uint64_t mask, size_t count)
{
    size_t have = 1;
    while (have < count && mask) {
        size_t shift = have < count - have ? have : count - have;
        mask &= mask >> shift;
        have += shift;
    }
    return mask;
}

static uint64_t usable_mask(const segment_t *seg)
{
    return run_mask(seg->first_slice, (size_t)seg->slice_count - seg->first_slice);
}

bool segment_is_empty(const segment_t *seg)
{
    return seg->free_mask == usable_mask(seg);
}

static void segment_header_init(segment_t *seg, uint8_t *base, size_t size, enum segment_kind kind,
                                size_t slices, size_t first_slice)
{
    seg->cookie = (uintptr_t)seg ^ heap_secret;
    seg->base = base;
    seg->map_size = size;
    seg->kind = (uint8_t)kind;
    seg->slice_count = (uint8_t)slices;
    seg->first_slice = (uint8_t)first_slice;
    seg->free_mask = usable_mask(seg);
    seg->dirty_mask = 0;
    seg->dirty_since_ms = 0;
}

/* A new segment for a span of `slices`: 4 MiB, or — when the address space is short
 * (RLIMIT_AS) — a shorter one, still 4 MiB aligned, down to the header and the span, so
 * that a heap under a tight limit grows in small steps as glibc's does.  A short
 * segment's missing slices are never free, and their descriptors stay zero. */
segment_t *segment_new(bool large, size_t slices)
{
    /* with less than a few segments' worth of address space left, take a quarter of it */
    size_t count = SEGMENT_SLICES, left = os_address_space_left();
    if (left < 4 * SEGMENT_SIZE) {
        count = left / 4 / SLICE_SIZE;
        count = count < slices + 1 ? slices + 1 : count > SEGMENT_SLICES ? SEGMENT_SLICES : count;
    }
    segment_t *seg = os_map_aligned(count * SLICE_SIZE, SEGMENT_SIZE);
    while (!seg && count > slices + 1) {
        count = count / 2 > slices + 1 ? count / 2 : slices + 1;
        seg = os_map_aligned(count * SLICE_SIZE, SEGMENT_SIZE);
    }
    if (!seg)
        return NULL;
    segment_header_init(seg, (uint8_t *)seg, count * SLICE_SIZE, SEGMENT_NORMAL, count, 1);
    seg->holds_large = large;
    registry_lock();
    registry_add(seg);
    registry_unlock();
    return seg;
}

/* Donated memory [start, start + size), size <= DONATED_CHUNK_MAX, becomes slices 1.. of a
 * segment whose slice 0 (never touched) lies just before it, as a normal segment's
 * header does: every segment then has the same slice numbering. */
void segment_init_donated(segment_t *seg, uint8_t *start, size_t size)
{
    size_t slices = 1 + (size + SLICE_SIZE - 1) / SLICE_SIZE;
    segment_header_init(seg, start - SLICE_SIZE, size + SLICE_SIZE, SEGMENT_DONATED, slices, 1);
    seg->dirty_mask = seg->free_mask;   /* donated memory is never known to be zero */
    registry_lock();
    registry_add(seg);
    registry_unlock();
}

/* Bytes of slice i that exist (a donated segment's last slice may be short). */
static size_t slice_bytes(const segment_t *seg, size_t i, size_t count)
{
    size_t end = (i + count) * SLICE_SIZE;
    if (seg->kind == SEGMENT_DONATED && end > seg->map_size)
        end = seg->map_size;
    return end - i * SLICE_SIZE;
}

/* The side-table slot of the page at slice i of a normal segment: a fixed share of the
 * header slice past the header (SIDE_SLOT_BYTES each), or NULL for a donated or huge
 * segment (a donated segment's slice 0 is not crtheap's).  Slots sit side by side, so
 * the side tables of a segment's pages lie densely in one place instead of at the same
 * offset of every 64 KiB slice, where they would compete for the same cache sets. */
uint8_t *segment_side_slot(const page_t *pg)
{
    segment_t *seg = segment_of(pg->start);
    if (seg->kind != SEGMENT_NORMAL)
        return NULL;
    size_t i = (size_t)(pg->start - seg->base) >> SLICE_SHIFT;
    return (uint8_t *)seg + sizeof(segment_t) + i * SIDE_SLOT_BYTES;
}

/* The bytes of the span a page covers: its slices (a donated segment's last one may be
 * short), or a huge block's whole mapping from the block on. */
size_t segment_span_bytes(const page_t *pg)
{
    segment_t *seg = segment_of(pg->start);
    if (seg->kind == SEGMENT_HUGE)
        return seg->map_size - (size_t)(pg->start - (uint8_t *)seg);
    return slice_bytes(seg, (size_t)(pg->start - seg->base) >> SLICE_SHIFT, pg->slice_count);
}

static void huge_cache_cool(void);

page_t *segment_take_slices(segment_t *seg, size_t i, size_t count)
{
    uint64_t run = run_mask(i, count);
    crt_assert((seg->free_mask & run) == run && i >= seg->first_slice && i + count <= seg->slice_count);
    bool fresh = (seg->dirty_mask & run) == 0;
    if ((seg->dirty_mask & run) != run)
        huge_cache_cool();   /* slices that fault in: no hot huge block may stay resident */
    seg->free_mask &= ~run;
    seg->dirty_mask &= ~run;
    page_t *pg = &seg->pages[i];
    uint8_t last_bin = pg->last_bin;
    memset(pg, 0, sizeof *pg);
    pg->start = seg->base + i * SLICE_SIZE;
    pg->slice_count = (uint8_t)count;
    pg->fresh = fresh;
    pg->last_bin = last_bin;
    for (size_t k = 1; k < count; k++) {
        seg->pages[i + k].slice_offset = (uint8_t)k;
        seg->pages[i + k].bin = 0;
    }
    return pg;
}

/* The shortest run of set bits in `usable` that holds `slices` (best fit keeps the long
 * runs for the pages that need them); its length, or 0 when none does.  *start is where
 * the span goes inside it: at its bottom, or at its top (`top`). */
static size_t best_fit_run(uint64_t usable, size_t slices, bool top, size_t *start)
{
    size_t best = 0;
    while (usable) {
        size_t i = (size_t)__builtin_ctzll(usable);
        uint64_t from_i = usable >> i;
        size_t n = ~from_i ? (size_t)__builtin_ctzll(~from_i) : 64 - i;
        if (n >= slices && (best == 0 || n < best || (n == best && top))) {
            best = n;
            *start = top ? i + n - slices : i;
            if (n == slices && !top)
                break;
        }
        usable &= ~run_mask(i, n);
    }
    return best;
}

/* Where a span of `slices` fits in seg: the length of the run it would take (0: none)
 * and its start in *start.  dirty_only: among the free slices that are still resident.
 * align_slices 0: anywhere; n >= 1: starting at a multiple of n slices.  The span takes
 * the bottom of the shortest run that fits (the slices after a large block stay free for
 * it to grow into), or its top (`top`: the caller puts it apart from what the segment
 * held).  Aligned spans take the first (or, at the top, the last) aligned start,
 * reported as a run of `slices`. */
size_t segment_fit(const segment_t *seg, size_t slices, size_t align_slices, bool top, bool dirty_only,
                   size_t *start)
{
    uint64_t usable = seg->free_mask & (dirty_only ? seg->dirty_mask : ALL_SLICES);
    if (align_slices > 1) {
        uint64_t aligned = 0;
        for (size_t i = 0; i < SEGMENT_SLICES; i += align_slices)
            aligned |= 1ull << i;
        uint64_t starts = runs_of(usable, slices) & aligned;   /* zeros shift in: runs end inside */
        if (!starts)
            return 0;
        *start = top ? 63u - (size_t)__builtin_clzll(starts) : (size_t)__builtin_ctzll(starts);
        return slices;
    }
    return best_fit_run(usable, slices, top, start);
}

/* Give a page's slices back to its segment as dirty (still resident).  Returns
 * SPAN_FIRST_DIRTY when the segment had no dirty slice before (the decay has work) and
 * SPAN_SEGMENT_EMPTY when the segment is now empty: the heap decides what follows. */
/* Grow the span of page pg (a large block's, head descriptor) to hold n bytes where it
 * is, if the slices after it are free: the block keeps its address and its contents.
 * False when they are not, or hold less than n (a donated segment's short last slice),
 * or the segment is huge.  Caller holds the owner's heap. */
bool segment_grow_span(page_t *pg, size_t n)
{
    segment_t *seg = segment_of(pg->start);
    size_t i = (size_t)(pg->start - seg->base) >> SLICE_SHIFT, count = pg->slice_count;
    size_t slices = (n + SLICE_SIZE - 1) / SLICE_SIZE;
    if (seg->kind == SEGMENT_HUGE || slices <= count || i + slices > seg->slice_count ||
        slice_bytes(seg, i, slices) < n)
        return false;
    uint64_t run = run_mask(i + count, slices - count);
    if ((seg->free_mask & run) != run)
        return false;
    if ((seg->dirty_mask & run) != run)
        huge_cache_cool();   /* slices that fault in: no hot huge block may stay resident */
    if (seg->dirty_mask & run)
        pg->fresh = 0;       /* what the grown part held is not known to be zero */
    seg->free_mask &= ~run;
    seg->dirty_mask &= ~run;
    for (size_t k = count; k < slices; k++) {
        page_t *tail = &seg->pages[i + k];
        memset(tail, 0, sizeof *tail);
        tail->slice_offset = (uint8_t)k;
    }
    pg->slice_count = (uint8_t)slices;
    page_set_block_size(pg, segment_span_bytes(pg));
    return true;
}

unsigned segment_free_span(page_t *pg)
{
    segment_t *seg = segment_of(pg->start);
    size_t i = (size_t)(pg->start - seg->base) >> SLICE_SHIFT, count = pg->slice_count;
    uint8_t bin = pg->bin;
    if (bin == BIN_LARGE)
        segment_large_freed(pg);   /* the block's end, as segment_free_huge's for huge ones */
    for (size_t k = 0; k < count; k++) {
        page_t *d = &seg->pages[i + k];
        d->last_bin = bin;
        atomic_store_explicit(&d->heap, NULL, memory_order_relaxed);
        d->bin = 0;
        d->capacity = 0;
        d->slice_offset = 0;
        d->slice_count = 0;
        d->free = NULL;
    }
    uint64_t run = run_mask(i, count);
    crt_assert((seg->free_mask & run) == 0);
    unsigned result = 0;
    if (seg->dirty_mask == 0) {
        seg->dirty_since_ms = os_now_ms();
        result |= SPAN_FIRST_DIRTY;
    }
    seg->free_mask |= run;
    seg->dirty_mask |= run;
    if (seg->kind == SEGMENT_NORMAL && segment_is_empty(seg))
        result |= SPAN_SEGMENT_EMPTY;
    return result;
}

/* Release free slices that have been dirty since before `older_than_ms` (0: all). */
size_t segment_purge(segment_t *seg, uint64_t older_than_ms, release_batch_t *batch)
{
    if (seg->kind == SEGMENT_DONATED || seg->dirty_mask == 0)
        return 0;
    if (older_than_ms && seg->dirty_since_ms > older_than_ms)
        return 0;
    size_t released = 0;
    uint64_t dirty = seg->dirty_mask;
    while (dirty) {
        size_t i = (size_t)__builtin_ctzll(dirty), n = 0;
        while (i + n < 64 && (dirty >> (i + n) & 1))
            n++;
        released += release_range(batch, (uintptr_t)seg->base + i * SLICE_SIZE, (uintptr_t)seg->base + (i + n) * SLICE_SIZE);
        seg->dirty_mask &= ~run_mask(i, n);
        dirty &= ~run_mask(i, n);
    }
    return released;
}

/* Unmap an empty normal segment its heap has unlinked; returns the resident bytes. */
size_t segment_unmap(segment_t *seg)
{
    registry_lock();
    registry_remove(seg);
    registry_unlock();
    return release_unmap(seg, seg->map_size);
}

/* ---- huge blocks: a segment each, freed ones cached for reuse ----
 *
 * A freed huge block stays mapped and resident ("hot", dirty_mask set) for the purge
 * delay, up to the huge cache limit: reusing it costs a memset, not a page fault per
 * page.  Invariant: RSS does not grow while a hot block exists.  Before crtheap maps a
 * huge block or hands out slices that are not resident, it releases the pages of every
 * hot block (they stay cached, cold and zero), so freed blocks never add to a peak.  The
 * purger unmaps blocks cached longer than the purge delay, _heapmin all of them. */

static pthread_mutex_t huge_mutex = PTHREAD_MUTEX_INITIALIZER;
static segment_t *huge_cache;          /* linked through heap_next */
static _Atomic size_t huge_cached_bytes;   /* changed under huge_mutex, read without */
static _Atomic bool huge_cache_hot;        /* some cached block is resident; set under huge_mutex */

/* No mapping gets this large (64 TiB, beyond the user address space's half): a request
 * above it fails before the sums below can overflow. */
#define HUGE_MAP_MAX ((size_t)1 << 46)

static size_t huge_block_offset(size_t alignment)
{
    return alignment > SLICE_SIZE ? alignment : SLICE_SIZE;
}

static void huge_page_init(segment_t *seg, size_t offset)
{
    page_t *pg = &seg->pages[1];
    memset(pg, 0, sizeof *pg);
    pg->start = (uint8_t *)seg + offset;
    page_set_block_size(pg, seg->map_size - offset);
}

/* Release the pages of every hot cached block; called with huge_mutex held. */
static void huge_cache_cool_locked(void)
{
    bool hot = false;
    for (segment_t *s = huge_cache; s; s = s->heap_next)
        if (s->dirty_mask) {
            if (os_release(s->pages[1].start, s->pages[1].block_size) == 0)
                s->dirty_mask = 0;
            else
                hot = true;   /* the kernel refused; the purger unmaps it in time */
        }
    atomic_store_explicit(&huge_cache_hot, hot, memory_order_relaxed);
}

/* Called before RSS grows (see the invariant above); costs one load when nothing is hot. */
static void huge_cache_cool(void)
{
    if (!atomic_load_explicit(&huge_cache_hot, memory_order_relaxed))
        return;
    pthread_mutex_lock(&huge_mutex);
    huge_cache_cool_locked();
    pthread_mutex_unlock(&huge_mutex);
}

/* The smallest cached block that fits a mapping of map_size (its tail goes), or NULL.
 * (Growing a smaller hot block with mremap instead was tried: MADV_HUGEPAGE on part of a
 * block splits its mapping, and mremap across the pieces fails with EFAULT.) */
static segment_t *huge_cache_take(size_t map_size, size_t alignment, size_t offset)
{
    segment_t *best = NULL, **best_link = NULL;
    pthread_mutex_lock(&huge_mutex);
    for (segment_t **link = &huge_cache; *link; link = &(*link)->heap_next) {
        segment_t *s = *link;
        if (s->map_size >= map_size && ((uintptr_t)s & (alignment - 1)) == 0 &&
            s->pages[1].start == (uint8_t *)s + offset &&
            (!best || s->map_size < best->map_size)) {
            best = s;
            best_link = link;
        }
    }
    if (best) {
        *best_link = best->heap_next;
        huge_cached_bytes -= best->map_size;
    } else {
        huge_cache_cool_locked();   /* a new mapping follows */
    }
    pthread_mutex_unlock(&huge_mutex);
    if (best && best->map_size > map_size) {
        os_unmap((uint8_t *)best + map_size, best->map_size - map_size);
        best->map_size = map_size;
    }
    return best;
}

page_t *segment_alloc_huge(heap_t *h, size_t size, size_t alignment)
{
    size_t offset = huge_block_offset(alignment);
    size_t map_size = (size + OS_PAGE_SIZE - 1) & ~(OS_PAGE_SIZE - 1);
    if (map_size < size || map_size + offset < map_size || map_size + offset > HUGE_MAP_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    map_size += offset;
    size_t seg_align = alignment > SEGMENT_SIZE ? alignment : SEGMENT_SIZE;
    segment_t *seg = huge_cache_take(map_size, seg_align, offset);
    bool fresh = !seg || seg->dirty_mask == 0;   /* new, or cached with its pages released */
    if (!seg) {
        if (offset >= SEGMENT_SIZE && !registry_has_room()) {
            errno = ENOMEM;
            return NULL;
        }
        seg = os_map_aligned(map_size, seg_align);
        if (!seg)
            return NULL;
        segment_header_init(seg, (uint8_t *)seg, map_size, SEGMENT_HUGE, 2, 1);
        /* only pages[1] describes the block: free's fast path finds a zero descriptor
         * anywhere else and hands over to the generic path, whose segment_page_of maps
         * every address of a huge segment to pages[1] (and a huge block has no owner, so
         * its free takes the generic path anyway); the header's second OS page stays
         * untouched */
        huge_page_init(seg, offset);
        registry_lock();
        registry_add(seg);
        registry_unlock();
    }
    seg->free_mask = 0;
    seg->dirty_mask = 0;
    seg->heap = h;
    huge_page_init(seg, offset);
    seg->pages[1].fresh = fresh;
    /* transparent huge pages where the block fills whole 2 MiB ranges: one fault per
     * 2 MiB instead of 512, and no resident bytes beyond what the block asked for */
    uintptr_t lo = ((uintptr_t)seg + offset + HUGE_PAGE_SIZE - 1) & ~(uintptr_t)(HUGE_PAGE_SIZE - 1);
    uintptr_t hi = ((uintptr_t)seg + offset + size) & ~(uintptr_t)(HUGE_PAGE_SIZE - 1);
    if (hi > lo)
        os_advise_huge_pages((void *)lo, hi - lo);
    return &seg->pages[1];
}

/* Grow a live huge block to `size` bytes where it is, if the address space after its
 * mapping is free: no copy, and no second mapping beside it (which an address-space
 * limit may not allow).  Only its owner's realloc calls this: a live huge block's
 * segment is touched by nobody else. */
bool segment_grow_huge(segment_t *seg, size_t size)
{
    page_t *pg = &seg->pages[1];
    size_t offset = (size_t)(pg->start - (uint8_t *)seg);
    size_t map_size = (size + OS_PAGE_SIZE - 1) & ~(OS_PAGE_SIZE - 1);
    if (map_size < size || map_size + offset < map_size || map_size + offset <= seg->map_size)
        return false;
    map_size += offset;
    huge_cache_cool();   /* RSS may grow: no hot cached block stays resident */
    if (os_remap_in_place(seg, seg->map_size, map_size) != 0)
        return false;
    seg->map_size = map_size;
    page_set_block_size(pg, map_size - offset);
    return true;
}

/* How much of the large blocks it callocs a program touches, learned from the blocks
 * calloc left lazy (touch probes): the resident share of their first LARGE_PROBE_BYTES
 * when freed (one mincore of 64 pages), averaged (half weight per block: two tell).
 * While the program uses its blocks whole (3/4 or more on average), calloc prefaults
 * fresh blocks writable and clears reused ones in place, except one in eight, which it
 * leaves lazy as the next probe (a prefaulted block is resident whatever the program
 * did); a reused probe's first LARGE_PROBE_BYTES are given back first, so its sample
 * shows what the program touched, not what the block's last user left.  Prefaulting
 * saves the read fault on the kernel's zero page and the copy-on-write fault after it,
 * whose TLB flush interrupts every other CPU running the process; a program that touches
 * a few pages of each block keeps lazy blocks, which cost only what it touches.  Never
 * above LARGE_PREFAULT_MAX (a huge calloc used as lazy zeroed memory, a sparse table,
 * costs at most that much), nor where transparent huge pages are on for all memory (the
 * block's first huge page is resident with its header: every sample would read whole).
 * Mincore counts pages mapped to the zero page: a program that reads its whole block
 * and writes a few pages of it looks dense. */
static _Atomic unsigned large_touch_permille;
static _Atomic unsigned large_prefault_count;
enum { LARGE_DENSE_PERMILLE = 750, LARGE_PROBE_EVERY = 8 };
#define LARGE_PREFAULT_MAX ((size_t)32 << 20)

bool segment_large_prefault_turn(size_t n)
{
    if (n > LARGE_PREFAULT_MAX || os_thp_always() ||
        atomic_load_explicit(&large_touch_permille, memory_order_relaxed) < LARGE_DENSE_PERMILLE)
        return false;
    /* blocks too small to be measured take no probe turn */
    if (n >= LARGE_PROBE_BYTES &&
        atomic_fetch_add_explicit(&large_prefault_count, 1, memory_order_relaxed) % LARGE_PROBE_EVERY == 0)
        return false;
    huge_cache_cool();   /* RSS grows: no hot cached block stays resident (the invariant above) */
    return true;
}

void segment_large_freed(page_t *pg)
{
    if (!pg->touch_probe)
        return;
    pg->touch_probe = 0;
    if (pg->large_requested < LARGE_PROBE_BYTES)
        return;
    size_t resident = os_resident_bytes(pg->start, LARGE_PROBE_BYTES);
    unsigned sample = (unsigned)(resident / (LARGE_PROBE_BYTES / 1000));
    sample = sample > 1000 ? 1000 : sample;
    unsigned old = atomic_load_explicit(&large_touch_permille, memory_order_relaxed);
    atomic_store_explicit(&large_touch_permille, (old + sample) / 2, memory_order_relaxed);   /* racy: an average */
}

void segment_free_huge(segment_t *seg)
{
    page_t *pg = &seg->pages[1];
    segment_large_freed(pg);
    pg->bin = 0;
    pg->capacity = 0;
    atomic_store_explicit(&pg->heap, NULL, memory_order_relaxed);
    seg->free_mask = usable_mask(seg);
    seg->dirty_since_ms = os_now_ms();
    size_t limit = option_huge_cache_mb < 0 ? 0 : (size_t)option_huge_cache_mb << 20;
    pthread_mutex_lock(&huge_mutex);
    if (huge_cached_bytes + seg->map_size <= limit) {
        seg->dirty_mask = seg->free_mask;   /* hot: resident until reused, cooled or purged */
        atomic_store_explicit(&huge_cache_hot, true, memory_order_relaxed);
        seg->heap_next = huge_cache;
        huge_cache = seg;
        huge_cached_bytes += seg->map_size;
        seg = NULL;
    }
    pthread_mutex_unlock(&huge_mutex);
    if (!seg)
        os_event_signal(&decay_work, false);   /* a cached block waits for the decay */
    if (seg) {
        registry_lock();
        registry_remove(seg);
        registry_unlock();
        os_unmap(seg, seg->map_size);
    }
}

bool huge_cache_pending(void)
{
    return atomic_load_explicit(&huge_cached_bytes, memory_order_relaxed) != 0;
}

/* Unmap cached huge blocks: all of them, or those cached longer than the purge delay. */
size_t huge_cache_trim(bool all)
{
    uint64_t now = os_now_ms();
    segment_t *victims = NULL;
    pthread_mutex_lock(&huge_mutex);
    for (segment_t **link = &huge_cache; *link;) {
        segment_t *s = *link;
        if (all || now - s->dirty_since_ms >= (uint64_t)option_purge_delay_ms) {
            *link = s->heap_next;
            huge_cached_bytes -= s->map_size;
            s->heap_next = victims;
            victims = s;
        } else {
            link = &s->heap_next;
        }
    }
    pthread_mutex_unlock(&huge_mutex);
    size_t released = 0;
    while (victims) {
        segment_t *s = victims;
        victims = s->heap_next;
        registry_lock();
        registry_remove(s);
        registry_unlock();
        released += release_unmap(s, s->map_size);
    }
    return released;
}

void segment_fork_prepare(void) { pthread_mutex_lock(&huge_mutex); }
void segment_fork_parent(void)  { pthread_mutex_unlock(&huge_mutex); }
void segment_fork_child(void)   { pthread_mutex_init(&huge_mutex, NULL); }
