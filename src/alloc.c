/* alloc.c — malloc and free fast paths and the standard allocation API (C, POSIX, glibc).
 *
 * Fast path of malloc: pop the first block of the class's first page, note the requested
 * size in the page's side table.  Fast path of free: find the page from the address
 * (segment alignment), check the block is a live block start; a block of the calling
 * thread's heap is pushed on its page (between heap_enter and heap_leave: plain stores,
 * no atomic read-modify-write), another thread's is pushed on its owner's remote list
 * (one CAS, no enter). */
#define _GNU_SOURCE
#include "modules.h"
#include "crtheap.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define API __attribute__((visibility("default")))

/* A free list that leads outside its page or to a live block: reported from here, so
 * that the fast path calls nothing and needs no stack frame (OPAQUE_FUNCTION: were the
 * compiler to learn that it never returns, the fast path would call it with a frame
 * instead of jumping to it). */
static OPAQUE_FUNCTION __attribute__((cold)) void *corrupted_free_list(block_t *b)
{
    fatal_pointer("malloc", b, "corrupted free list");
}

/* Take the first free block b of `pg` for a request of n (>= 1) bytes; NULL when the free
 * list is corrupted (the caller reports it with corrupted_free_list).  `narrow`: the
 * caller knows the page has one-byte side entries (a class up to SMALL_MAX). */
static inline __attribute__((always_inline)) block_t *page_pop_as(page_t *pg, block_t *b, size_t n, bool narrow)
{
    /* never follow a free list off its page's block starts; never hand out a live block */
    uintptr_t i = page_block_index(pg, b);
    if (unlikely(i >= pg->capacity))
        return NULL;
    crt_assert(pg->used < pg->capacity && pg->start + (size_t)i * pg->block_size == (uint8_t *)b);
    if (narrow || likely(!pg->side_wide)) {
        uint8_t *side = (uint8_t *)pg->side + i;
        if (unlikely(*side != SIDE8_FREE))
            return NULL;
        *side = (uint8_t)(pg->side8_base - n);   /* block_size - n + 1, mod 256 */
    } else {
        uint16_t *side = (uint16_t *)pg->side + i;
        if (unlikely(*side != SIDE16_FREE))
            return NULL;
        *side = (uint16_t)(pg->block_size - n + 1);
    }
    block_t *next = b->next;
    __builtin_prefetch(next, 1);   /* the next malloc of this class writes it */
    pg->free = next;
    pg->used++;
    return b;
}

_Static_assert(SMALL_MAX < WIDE_SIDE_MIN, "classes up to SMALL_MAX have one-byte side entries");

/* The class ran dry (heap entered): the purger's start and the decay's turn on this
 * thread, then a page with a free block from the heap. */
static page_t *alloc_refill(heap_t *h, unsigned bin)
{
    if (unlikely(purger_wanted(h, false))) {
        heap_leave(h);   /* nothing changed yet: creating a thread may allocate */
        purger_start();
        heap_enter(h);
    }
    heap_drain_remote(h);
    decay_if_due(h);
    return heap_find_page(h, bin);
}

/* A block of class `bin` (heap entered by the caller). */
static inline __attribute__((always_inline)) void *heap_alloc_bin(heap_t *h, unsigned bin, size_t n)
{
    page_t *pg = h->queues[bin].first;
    block_t *b = pg->free;
    if (unlikely(!b)) {
        pg = alloc_refill(h, bin);
        if (unlikely(!pg))
            return NULL;
        b = pg->free;
    }
    void *p = page_pop_as(pg, b, n, false);
    return likely(p != NULL) ? p : corrupted_free_list(b);
}

static void *malloc_generic(size_t n, size_t alignment);

/* mallopt(M_PERTURB): as glibc, a new block reads as ~byte over its requested size and a
 * freed one as byte over its usable size (a block mapped on its own is not filled when
 * freed: it goes back to the OS).  Only slow paths fill: M_PERTURB diverts every heap
 * off the fast paths (CLAIM_DIVERT). */
static __attribute__((noinline, cold)) void perturb_new(void *p, size_t n, int byte)
{
    memset(p, byte ^ 0xff, n);
}

static __attribute__((noinline, cold)) void perturb_freed(page_t *pg, void *p, int byte)
{
    if (pg->bin != BIN_LARGE || segment_of(p)->kind != SEGMENT_HUGE)
        memset(p, byte, pg->block_size);
}

static inline void *perturbed_if_asked(void *p, size_t n)
{
    int byte = atomic_load_explicit(&option_perturb_byte, memory_order_relaxed);
    if (unlikely(byte != 0) && p)
        perturb_new(p, n, byte);
    return p;
}

/* The class ran dry (or the heap is claimed or diverted): everything else, then leave. */
static __attribute__((noinline)) void *malloc_refill_and_leave(heap_t *h, unsigned bin, size_t n)
{
    if (h == &heap_none)   /* the thread's first allocation */
        return malloc_generic(n, 0);
    if (atomic_load_explicit(&h->claim, memory_order_acquire) & CLAIM_HELD)   /* acquire: see the */
        heap_wait_unclaimed(h);                                                /* claimer's changes */
    void *p = heap_alloc_bin(h, bin, n);
    heap_leave(h);
    if (!p)
        return malloc_generic(n, 0);
    if (counting())
        count_malloc(h, n);
    return perturbed_if_asked(p, n);
}

/* A block of class `bin` for n bytes from the thread's heap h; `narrow` as page_pop_as. */
static inline __attribute__((always_inline)) void *malloc_from(heap_t *h, size_t bin, size_t n, bool narrow)
{
    if (unlikely(!heap_try_enter(h)))   /* claimed, diverted, or no heap yet (heap_none) */
        return malloc_refill_and_leave(h, (unsigned)bin, n);
    page_t *pg = h->queues[bin].first;
    block_t *b = pg->free;
    if (unlikely(b == NULL))
        return malloc_refill_and_leave(h, (unsigned)bin, n);
    void *p = page_pop_as(pg, b, n, narrow);
    if (unlikely(p == NULL))
        return corrupted_free_list(b);
    heap_leave(h);
    return p;
}

static inline __attribute__((always_inline)) void *malloc_fast(size_t n)
{
    heap_t *h = tls_heap;
    size_t below = n - 1;
    if (likely(below < SMALL_MAX))   /* malloc(0) takes the slow path; (n + 15) / 16 below */
        return malloc_from(h, small_bin_of[(below >> 4) + 1], n, true);
    if (likely(n - 1 < MEDIUM_MAX))
        return malloc_from(h, bin_of(n), n, false);
    return malloc_generic(n, 0);
}

void *crt_malloc(size_t n) { return malloc_fast(n); }

/* Blocks of a class are aligned to the largest power of two dividing the block size
 * (pages start 64 KiB aligned), so small aligned requests pick a class that fits: the
 * first whose blocks are aligned (a slack too big for the side entry goes to overflow.c). */
static unsigned aligned_bin(size_t n, size_t alignment)
{
    unsigned bin = bin_of(n < alignment ? alignment : n);
    while (bin < BIN_COUNT && bin_block_size(bin) % alignment != 0)
        bin++;
    return bin;
}

/* Live block p of class page pg was asked with n bytes, which its side entry cannot hold
 * (it holds "the whole block" now): record n in overflow.c.  False when no memory. */
static bool record_overflow(page_t *pg, void *p, size_t n)
{
    if (!overflow_put(p, n))
        return false;
    side_set(pg, (uint32_t)page_block_index(pg, p), side_overflow_value(pg));
    return true;
}

/* No memory for n bytes: in new mode 1 the new handler may make room (then try again),
 * else NULL with ENOMEM. */
static void *malloc_failed(size_t n, size_t alignment)
{
    if (n <= _HEAP_MAXREQ && crt_retry_after_new_handler(n))
        return malloc_generic(n, alignment);
    errno = ENOMEM;
    return NULL;
}

/* A request above the user address space can never be met: it fails at once, without
 * the trim-and-retry that a real shortage of memory gets. */
#define REQUEST_IMPOSSIBLE ((size_t)1 << ADDRESS_BITS)

/* Slow path: first call of a thread, large and huge blocks, aligned blocks, no memory. */
static void *malloc_generic(size_t n, size_t alignment)
{
    n += n == 0;
    if (unlikely(n >= REQUEST_IMPOSSIBLE))
        return malloc_failed(n, alignment);
    heap_t *h = heap_get_or_init();
    if (!h)
        return malloc_failed(n, alignment);
    if (unlikely(n > MEDIUM_MAX && purger_wanted(h, true)))
        purger_start();   /* big blocks: the decay will have work (never from free: decay.c) */
    void *p = NULL;
    heap_enter(h);
    if (n <= MEDIUM_MAX && alignment <= SLICE_SIZE) {
        unsigned bin = alignment > MIN_BLOCK ? aligned_bin(n, alignment) : bin_of(n);
        size_t bs = bin < BIN_COUNT ? bin_block_size(bin) : 0;
        if (bin < BIN_COUNT) {
            bool fits = side_can_record(bs, n);
            p = heap_alloc_bin(h, bin, fits ? n : bs);
            bool misplaced = p && alignment > MIN_BLOCK && ((uintptr_t)p & (alignment - 1)) != 0;   /* donated page */
            if (p && (misplaced || (!fits && !record_overflow(segment_page_of(segment_of(p), p), p, n)))) {
                heap_leave(h);
                crt_free(p, "malloc");
                heap_enter(h);
                p = NULL;
            } else if (p) {
                goto out;
            }   /* no room for a page of the class: a block of its own still may fit */
        }
    }
    decay_if_due(h);   /* large blocks: the decay's other chance on this thread */
    p = heap_malloc_large(h, n, alignment > MIN_BLOCK ? alignment : 0);
    if (!p) {   /* out of address space: give back what is cached, then try once more */
        huge_cache_trim(true);
        decay_heap(h, true, os_now_ms());
        p = heap_malloc_large(h, n, alignment > MIN_BLOCK ? alignment : 0);
    }
out:
    heap_leave(h);
    if (!p)
        return malloc_failed(n, alignment);
    if (counting())
        count_malloc(h, n);
    return perturbed_if_asked(p, n);
}

void *crt_malloc_aligned(size_t n, size_t alignment)
{
    n += n == 0;
    if (alignment <= MIN_BLOCK)
        return crt_malloc(n);
    return malloc_generic(n, alignment);
}

/* What a freed block passed to `call` is: freeing it again, or using it after its free
 * (realloc, _msize, _expand, ...).  The calls that free, by the names the callers pass. */
static const char *freed_block_problem(const char *call)
{
    static const char *const frees[] = { "free", "free_sized", "free_aligned_sized", "_aligned_free",
                                         "operator delete", "operator delete[]" };
    for (size_t k = 0; k < sizeof frees / sizeof frees[0]; k++)
        if (strcmp(call, frees[k]) == 0)
            return "double free";
    return "use after free";
}

/* The reports of checked_page, out of its callers' way. */
static __attribute__((noinline, cold, noreturn)) void checked_page_fatal(const void *p, const char *call,
                                                                        segment_t *seg, page_t *pg, uintptr_t i)
{
    if (pg->bin == 0) {
        /* a freed large block leaves its slices free: its start is a double free */
        bool slice_start = ((uintptr_t)p - (uintptr_t)seg->base) % SLICE_SIZE == 0;
        fatal_pointer(call, p, slice_start && p != seg->base ? freed_block_problem(call) : "invalid pointer");
    }
    if (i >= pg->capacity)   /* not a block start */
        fatal_pointer(call, p, (const uint8_t *)p < pg->start + page_blocks_bytes(pg) || pg->bin == BIN_LARGE ? "interior pointer" : "invalid pointer");
    fatal_pointer(call, p, freed_block_problem(call));
}

/* The page of a live block p, its index and side entry, or a fatal diagnostic naming
 * `call`.  Inlined into realloc, whose in-place path is mostly this. */
static inline __attribute__((always_inline)) page_t *checked_page(const void *p, const char *call,
                                                                  uint32_t *index, unsigned *side)
{
    segment_t *seg = segment_of(p);
    if (unlikely(!seg))
        fatal_pointer(call, p, "invalid pointer");
    page_t *pg = segment_page_of(seg, p);
    uintptr_t i = page_block_index(pg, p);   /* >= capacity: not a block start */
    if (unlikely(pg->bin == 0 || i >= pg->capacity))
        checked_page_fatal(p, call, seg, pg, i);
    unsigned v = side_get(pg, (uint32_t)i);
    if (unlikely(!side_is_allocated(pg, v)))
        checked_page_fatal(p, call, seg, pg, i);
    *index = (uint32_t)i;
    *side = v;
    return pg;
}

/* The page of a live block p, or a fatal diagnostic naming `call`. */
static page_t *crt_checked_page(const void *p, const char *call, uint32_t *index)
{
    unsigned side;
    return checked_page(p, call, index, &side);
}

/* The size a live block was requested with, from its side entry v. */
static inline size_t block_requested(const page_t *pg, unsigned v, const void *p)
{
    return pg->bin == BIN_LARGE ? pg->large_requested : side_requested(pg, v, p);
}

/* free_sized, free_aligned_sized and sized delete pass the size the block was asked
 * with; FREE_UNSIZED where the caller does not know it.  crtheap knows every block's
 * requested size, so a wrong one is a misuse it reports (a size of 0 reads as 1, as
 * malloc(0) records it). */
#define FREE_UNSIZED SIZE_MAX

/* Free of a block that is not the calling thread's (or fails the fast checks). */
static __attribute__((noinline)) void free_generic(void *p, const char *call, size_t sized)
{
    uint32_t i;
    unsigned side;
    page_t *pg = checked_page(p, call, &i, &side);
    if (sized != FREE_UNSIZED && sized != block_requested(pg, side, p))
        fatal_size_mismatch(call, p, sized, block_requested(pg, side, p));
    if (counting())
        count_free(thread_heap(), block_requested(pg, side, p));
    /* its overflow entry goes once the side entry no longer says OVERFLOW (a walker that
     * reads OVERFLOW finds the size) and before the block can be handed out again */
    bool overflowed = side == side_overflow_value(pg) && pg->bin != BIN_LARGE;
    int byte = atomic_load_explicit(&option_perturb_byte, memory_order_relaxed);
    if (unlikely(byte != 0))
        perturb_freed(pg, p, byte);
    heap_t *h = tls_heap;   /* heap_none owns no page */
    heap_t *owner = atomic_load_explicit(&pg->heap, memory_order_relaxed);
    if (owner == h) {
        heap_enter(h);
        side_set(pg, i, side_free_value(pg));
        if (overflowed)
            overflow_drop(p);
        heap_free_owned(h, pg, p);   /* the same free-into-own-page as the fast path's */
        heap_leave(h);
    } else if (pg->bin == BIN_LARGE && owner == NULL) {
        side_set(pg, i, side_free_value(pg));   /* huge: no owner, straight to cache/OS */
        segment_free_huge(segment_of(p));
    } else {
        side_set(pg, i, side_remote_value(pg));
        if (overflowed)
            overflow_drop(p);
        heap_free_remote(pg, p);
    }
}

/* The page emptied or left the full state: the slow half of the free, then leave. */
static __attribute__((noinline)) void free_page_slow_and_leave(heap_t *h, page_t *pg)
{
    heap_page_freed_slow(h, pg);
    heap_leave(h);
}

/* The heap was claimed under us: step back out and take the general path. */
static __attribute__((noinline)) void free_claimed(heap_t *h, void *p, const char *call)
{
    heap_leave(h);
    free_generic(p, call, FREE_UNSIZED);   /* a sized free checked the size already */
}

/* The rest of free's fast path for a page whose side entries are `wide` (a constant in
 * each of the two copies, so neither tests the width again): check the side entry, then
 * free into the caller's own page or queue the block for its owner. */
static inline __attribute__((always_inline)) void free_fast_on(heap_t *h, page_t *pg, void *p, uint32_t i, bool wide,
                                                               const char *call, size_t sized)
{
    uint8_t *side8 = (uint8_t *)pg->side + i;
    uint16_t *side16 = (uint16_t *)pg->side + i;
    unsigned v = wide ? *side16 : *side8;
    /* a live block whose size the entry holds: not 0 (unlisted), FREE, REMOTE, MESHED or
     * OVERFLOW (the lowest of the special values) */
    if (unlikely(wide ? (uint16_t)(v - 1) >= SIDE16_OVERFLOW - 1 : (uint8_t)(v - 1) >= SIDE8_OVERFLOW - 1))
        return free_generic(p, call, sized);   /* reports the double free, or drops the overflow */
    if (sized != FREE_UNSIZED) {   /* constant-folded away in plain free */
        size_t requested = block_requested(pg, v, p);
        if (unlikely(sized != requested))
            fatal_size_mismatch(call, p, sized, requested);
    }
    heap_t *owner = atomic_load_explicit(&pg->heap, memory_order_relaxed);
    if (owner != h) {   /* another thread's (heap_none, a thread without a heap, owns none) */
        if (unlikely(owner == NULL || atomic_load_explicit(&heaps_diverted, memory_order_relaxed)))
            return free_generic(p, call, FREE_UNSIZED);   /* a huge block (no owner), or diverted (M_PERTURB, counting) */
        if (wide)   /* another thread's block: mark it queued, one push onto its heap */
            __atomic_store_n(side16, (uint16_t)SIDE16_REMOTE, __ATOMIC_RELAXED);
        else
            __atomic_store_n(side8, (uint8_t)SIDE8_REMOTE, __ATOMIC_RELAXED);
        return heap_free_remote(pg, p);
    }
    if (unlikely(!heap_try_enter(h)))
        return free_claimed(h, p, call);
    if (wide)
        *side16 = SIDE16_FREE;
    else
        *side8 = SIDE8_FREE;
    if (unlikely(page_free_block(h, pg, p)))
        return free_page_slow_and_leave(h, pg);
    heap_leave(h);
}

static inline __attribute__((always_inline)) void free_fast(void *p, const char *call, size_t sized)
{
    uintptr_t a = (uintptr_t)p;
    heap_t *h = tls_heap;
    if (unlikely(!segment_bit_test(a))) {
        if (p)
            free_generic(p, call, sized);
        return;
    }
    /* the slice's descriptor in the header at the segment's base (a normal or huge
     * segment: its bit is set), then the page's head descriptor */
    _Static_assert(sizeof(page_t) == 1u << 7, "descriptor offsets by shift");
    uint8_t *header = (uint8_t *)(a & ~SEGMENT_MASK);
    if (header == NULL)
        __builtin_unreachable();   /* segment 0 is never in the bitmap (tells the analyzer) */
    page_t *pg = (page_t *)(header + ((a >> (SLICE_SHIFT - 7)) & ((SEGMENT_SLICES - 1) << 7)));
    pg -= pg->slice_offset;
    uintptr_t i = page_block_index(pg, p);
    /* a page in use (a free slice has capacity 0), a block start, a live block */
    if (unlikely(i >= pg->capacity))
        return free_generic(p, call, sized);
    if (likely(!pg->side_wide))
        free_fast_on(h, pg, p, (uint32_t)i, false, call, sized);
    else
        free_fast_on(h, pg, p, (uint32_t)i, true, call, sized);
}

void crt_free(void *p, const char *call) { free_fast(p, call, FREE_UNSIZED); }

/* A free that names the block's size (0 reads as 1); a wrong size is reported. */
void crt_free_sized(void *p, size_t size, const char *call)
{
    free_fast(p, call, size ? size : 1);
}

size_t crt_usable_size(const void *p, const char *call)
{
    uint32_t i;
    page_t *pg = crt_checked_page(p, call, &i);
    return pg->block_size;
}

size_t crt_requested_size(const void *p, const char *call)
{
    uint32_t i;
    unsigned side;
    page_t *pg = checked_page(p, call, &i, &side);
    return block_requested(pg, side, p);
}

/* Grow large block p of page pg (not huge) to n bytes into the free slices after it.  Only
 * the block's owner thread may: the segment's slice masks are its heap's. */
static bool large_grow_in_place(page_t *pg, size_t n)
{
    heap_t *h = tls_heap;
    if (n > LARGE_MAX || atomic_load_explicit(&pg->heap, memory_order_relaxed) != h)
        return false;
    heap_enter(h);
    bool grown = segment_grow_span(pg, n);
    heap_leave(h);
    return grown;
}

static inline __attribute__((always_inline)) void *realloc_body(void *p, size_t n, const char *call,
                                                                bool in_place_only, page_t *pg, uint32_t i,
                                                                unsigned side);

/* Resize p; in_place_only (for _expand) never moves it and returns NULL instead. */
void *crt_realloc(void *p, size_t n, const char *call, bool in_place_only)
{
    uint32_t i;
    unsigned side;
    page_t *pg = checked_page(p, call, &i, &side);
    n += n == 0;
    if (likely(!counting()))
        return realloc_body(p, n, call, in_place_only, pg, i, side);
    /* counting mode: a block resized where it is changes the bytes requested (one that
     * moves is counted as a malloc and a free) */
    size_t old_requested = block_requested(pg, side, p);
    void *q = realloc_body(p, n, call, in_place_only, pg, i, side);
    count_realloc(thread_heap());
    if (q == p)
        count_resize(old_requested, n);
    return q;
}

/* The work of crt_realloc on the live block p (page pg, index i, side entry side); inline:
 * a call here cost realloc-growth 11% more instructions. */
static inline __attribute__((always_inline)) void *realloc_body(void *p, size_t n, const char *call,
                                                                bool in_place_only, page_t *pg, uint32_t i,
                                                                unsigned side)
{
    size_t usable = pg->block_size;
    /* stay put when the block fits and is not more than twice too big */
    bool stay = n <= usable && (in_place_only || n > usable / 2 || usable <= MIN_BLOCK);
    if (pg->bin == BIN_LARGE) {
        segment_t *seg = segment_of(p);
        bool grown = n > usable && (seg->kind == SEGMENT_HUGE ? segment_grow_huge(seg, n) : large_grow_in_place(pg, n));
        if (stay || grown) {
            pg->large_requested = n;
            return p;
        }
    } else if (stay && side_can_record(usable, n)) {
        side_set(pg, i, (unsigned)(usable - n + 1));
        if (side == side_overflow_value(pg))
            overflow_drop(p);
        return p;
    } else if (stay && in_place_only && record_overflow(pg, p, n)) {
        return p;   /* _expand must shrink where it is: a slack the entry cannot hold */
    }
    if (in_place_only)
        return NULL;
    void *q = crt_malloc(n);
    if (!q)
        return NULL;
    /* every usable byte is the program's (malloc_usable_size says so, and programs such
     * as Redis write them): keep them all, as glibc and every peer do */
    memcpy(q, p, usable < n ? usable : n);
    crt_free(p, call);
    return q;
}

/* CRTHEAP_SHOW_STATS=1 from the environment: the report at exit (counting itself starts
 * at the first allocation, thread.c).  Here, so that a static link has it too. */
__attribute__((constructor)) static void show_stats_if_asked(void)
{
    options_init();
    if (option_show_stats)
        stats_show_at_exit();
}

/* ---- the standard names ---- */

API void *malloc(size_t n) { return malloc_fast(n); }
API void free(void *p) { free_fast(p, "free", FREE_UNSIZED); }

/* Zero a reused large block of n bytes for calloc, 2 MiB (a transparent huge page) at a
 * time.  Where most of a chunk's OS pages are not resident (the last user touched a
 * few, the decay gave them back, or it is the new tail of a grown block), clearing would
 * fault every page in: the chunk goes back to the kernel instead, which zeroes a page
 * only when the program touches it.  Where most are resident (the last user wrote it),
 * clearing in place is cheaper than a fault per page later, and keeps a huge page whole.
 * mincore(2) only estimates the cost: either way the chunk reads as zero (a swapped-out
 * page, which reads as not resident, is dropped too). */
static void zero_large_block(void *p, size_t n)
{
    enum { CHUNK = 2 * 1024 * 1024 };
    uintptr_t start = (uintptr_t)p, stop = start + n;
    uintptr_t lo = (start + OS_PAGE_SIZE - 1) & ~(uintptr_t)(OS_PAGE_SIZE - 1);
    uintptr_t hi = stop & ~(uintptr_t)(OS_PAGE_SIZE - 1);
    if (hi <= lo) {
        memset(p, 0, n);
        return;
    }
    memset(p, 0, lo - start);   /* the partial OS pages at each end */
    memset((void *)hi, 0, stop - hi);
    uintptr_t run = 0;   /* where the cold chunks given back together start (0: none yet) */
    for (uintptr_t a = lo; a < hi;) {
        uintptr_t end = (a & ~(uintptr_t)(CHUNK - 1)) + CHUNK;
        end = end < hi ? end : hi;
        bool cold = os_resident_bytes((void *)a, end - a) < (end - a) / 2;
        if (cold && run == 0)
            run = a;
        if (!cold)
            memset((void *)a, 0, end - a);
        if (run != 0 && (!cold || end == hi)) {
            uintptr_t to = cold ? end : a;
            if (os_release((void *)run, to - run) != 0)
                memset((void *)run, 0, to - run);
            run = 0;
        }
        a = end;
    }
}

/* The whole OS pages of a fresh large block, faulted in writable (see segment.c's touch
 * probes); -1 where the kernel cannot. */
static int prefault_block(void *p, size_t n)
{
    uintptr_t lo = ((uintptr_t)p + OS_PAGE_SIZE - 1) & ~(uintptr_t)(OS_PAGE_SIZE - 1);
    uintptr_t hi = ((uintptr_t)p + n) & ~(uintptr_t)(OS_PAGE_SIZE - 1);
    return hi > lo ? os_populate_write((void *)lo, hi - lo) : 0;
}

API void *calloc(size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = crt_malloc(n);
    if (p) {
        uint32_t i;
        page_t *pg = crt_checked_page(p, "calloc", &i);
        if (pg->bin == BIN_LARGE && pg->fresh) {   /* a fresh mapping is already zero, once */
            pg->fresh = 0;
            if (atomic_load_explicit(&option_perturb_byte, memory_order_relaxed))
                memset(p, 0, n ? n : 1);
            else if (!segment_large_prefault_turn(n) || prefault_block(p, n) != 0)
                pg->touch_probe = 1;   /* left lazy: its free tells how much the program used */
        } else if (pg->bin == BIN_LARGE && segment_of(p)->kind != SEGMENT_DONATED) {
            /* (donated memory is cleared below: never given back, it may be a file's) */
            if (segment_large_prefault_turn(n)) {
                memset(p, 0, n);   /* used whole: writing faults in what is missing, without the zero page */
            } else if (n >= LARGE_PROBE_BYTES && os_release(p, LARGE_PROBE_BYTES) == 0) {
                zero_large_block((uint8_t *)p + LARGE_PROBE_BYTES, n - LARGE_PROBE_BYTES);
                pg->touch_probe = 1;   /* its first bytes are lazy: its free tells what the program used */
            } else {
                zero_large_block(p, n);
            }
        } else {
            memset(p, 0, n ? n : 1);
        }
    }
    return p;
}

API void *realloc(void *p, size_t n)
{
    if (!p)
        return crt_malloc(n);
    if (n == 0) {
        crt_free(p, "realloc");
        return NULL;
    }
    if (n > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    return crt_realloc(p, n, "realloc", false);
}

API void *reallocarray(void *p, size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, n);
}

static bool is_power_of_two(size_t a) { return a && (a & (a - 1)) == 0; }

API int posix_memalign(void **out, size_t alignment, size_t n)
{
    if (!is_power_of_two(alignment) || alignment % sizeof(void *) != 0)
        return EINVAL;
    void *p = crt_malloc_aligned(n, alignment);
    if (!p)
        return ENOMEM;   /* errno is ENOMEM too, as glibc leaves it */
    *out = p;
    return 0;
}

API void *aligned_alloc(size_t alignment, size_t n)
{
    if (!is_power_of_two(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return crt_malloc_aligned(n, alignment);
}

API void *memalign(size_t alignment, size_t n)
{
    if (!is_power_of_two(alignment)) {   /* glibc rounds up; a bad one is still an error here */
        errno = EINVAL;
        return NULL;
    }
    return crt_malloc_aligned(n, alignment);
}

API void *valloc(size_t n) { return crt_malloc_aligned(n, (size_t)sysconf(_SC_PAGESIZE)); }

API void *pvalloc(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t rounded = (n + page - 1) & ~(page - 1);
    if (rounded < n) {
        errno = ENOMEM;
        return NULL;
    }
    return crt_malloc_aligned(rounded ? rounded : page, page);
}

API size_t malloc_usable_size(void *p)
{
    return p ? crt_usable_size(p, "malloc_usable_size") : 0;
}

/* C23: size (and alignment) must be what the block was allocated with; crtheap knows
 * both, so a mismatch is diagnosed (no other allocator here catches it). */
API void free_sized(void *p, size_t size)
{
    crt_free_sized(p, size, "free_sized");
}

API void free_aligned_sized(void *p, size_t alignment, size_t size)
{
    if (p && (!is_power_of_two(alignment) || ((uintptr_t)p & (alignment - 1)) != 0))
        fatal_pointer("free_aligned_sized", p, "not allocated with this alignment");
    crt_free_sized(p, size, "free_aligned_sized");
}

/* glibc's internal names, reached by libc itself and by programs that interpose. */
API void *__libc_malloc(size_t n) { return crt_malloc(n); }
API void __libc_free(void *p) { crt_free(p, "free"); }
API void *__libc_calloc(size_t c, size_t n) { return calloc(c, n); }
API void *__libc_realloc(void *p, size_t n) { return realloc(p, n); }
API void *__libc_memalign(size_t a, size_t n) { return memalign(a, n); }
API void *__libc_valloc(size_t n) { return valloc(n); }
API void *__libc_pvalloc(size_t n) { return pvalloc(n); }
