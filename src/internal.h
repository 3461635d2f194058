/* internal.h — crtheap's architecture in one header.  Read this first.
 *
 * Glossary
 *   OS page   4 KiB, the unit the kernel maps, faults and releases.
 *   segment   a 4 MiB region from mmap, aligned to 4 MiB, so `p & ~SEGMENT_MASK` finds the
 *             header of any pointer inside it in O(1).  Slice 0 holds the header.  A huge
 *             segment is bigger and holds one block; a donated segment is memory given with
 *             _heapadd, its header kept outside it and found through a small table that
 *             is scanned only when the bitmap says "not ours".
 *   slice     64 KiB, the unit segments are carved into.
 *   page      a run of slices that serves one size class (or one large block).  Its blocks
 *             start at the page start; its side table (one entry per block) sits after them.
 *   side      per-block byte/short: 0 = free and in no list, FREE = free in the page list,
 *             REMOTE = freed by another thread and queued, MESHED = free but withheld
 *             (it lies on an OS page that shares its memory with others: mesh.c),
 *             OVERFLOW = live, its requested size in overflow.c (rare: see there), else
 *             requested = size - (v - 1).
 *             It is the truth about every block: _msize, double-free detection, _heapwalk,
 *             _heapchk and _heapmin read it; the free lists are only a cache of it.
 *   heap      per-thread: size-class queues of pages, the segments it owns, and four
 *             lock-free stacks of blocks other threads freed into it (REMOTE_LISTS).  Heaps are never destroyed; a
 *             thread's exit abandons its heap and the next new thread adopts it.
 *   registry  every segment in address order plus a bitmap over the address space, so
 *             _heapwalk/_heapchk/_heapmin reach all memory and free() rejects foreign pointers.
 *   claim     how another thread (_heapmin, the purger, fork) gets exclusive use of a heap
 *             without a lock on the owner's path: the owner sets `busy` around each operation
 *             and checks `claim`; the claimer sets `claim`, issues membarrier(2) and waits for
 *             `busy == 0` (an asymmetric Dekker handshake; see claim.c).
 */
#ifndef CRTHEAP_INTERNAL_H
#define CRTHEAP_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#define INTERNAL __attribute__((visibility("hidden")))
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define compiler_barrier() atomic_signal_fence(memory_order_seq_cst)
/* A function the compiler must not look into from its callers (gcc: not even to learn
 * that it never returns, so that a fast path jumps to it instead of calling it). */
#ifdef __clang__
#define OPAQUE_FUNCTION __attribute__((noinline))
#else
#define OPAQUE_FUNCTION __attribute__((noipa))
#endif

/* ---- geometry ---- */
#define OS_PAGE_SHIFT   12
#define OS_PAGE_SIZE    ((size_t)1 << OS_PAGE_SHIFT)
#define SLICE_SHIFT     16
#define SLICE_SIZE      ((size_t)1 << SLICE_SHIFT)
#define SEGMENT_SHIFT   22
#define SEGMENT_SIZE    ((size_t)1 << SEGMENT_SHIFT)
#define SEGMENT_MASK    (SEGMENT_SIZE - 1)
#define SEGMENT_SLICES  (SEGMENT_SIZE / SLICE_SIZE)     /* 64: one bit each in a uint64_t */
#define HUGE_PAGE_SIZE  ((size_t)2 << 20)                 /* x86-64 transparent huge page */
#define ADDRESS_BITS    47                               /* user space on x86-64 / arm64 */

/* ---- size classes: 16-byte steps to 128, then four per doubling to 128 KiB ---- */
#define MIN_BLOCK       16
#define SMALL_MAX       1024          /* sizes the bin lookup table covers */
#define MEDIUM_MAX      ((size_t)128 * 1024)        /* largest size class */
#define LARGE_MAX       ((size_t)2 * 1024 * 1024) /* one block on a run of slices up to this */
#define BIN_COUNT       49            /* bins 1..48 are classes; 0 is "no class" */
#define BIN_LARGE       BIN_COUNT     /* a page holding one large or huge block */
#define WIDE_SIDE_MIN   1025          /* from here on, 16-bit side entries: a plain malloc's
                                         slack in a class up to 1 KiB (127 at most) fits in
                                         8 bits; larger slack goes to overflow.c */

/* side-table values (uint8 classes; the 16-bit ones use 0xFFFF/0xFFFE/0xFFFD) */
#define SIDE_UNLISTED   0u
#define SIDE8_FREE      0xFFu
#define SIDE8_REMOTE    0xFEu
#define SIDE16_FREE     0xFFFFu
#define SIDE16_REMOTE   0xFFFEu
#define SIDE8_MESHED    0xFDu         /* free, withheld from reuse while its OS page is meshed */
#define SIDE16_MESHED   0xFFFDu
#define SIDE8_OVERFLOW  0xFCu         /* live, its requested size in overflow.c */
#define SIDE16_OVERFLOW 0xFFFCu
#define INLINE_SIDE_MAX 16            /* pages of at most this many blocks keep their side
                                         table in their descriptor (blocks of 4 KiB and up) */
/* The rest of a normal segment's header slice holds one side-table slot per slice; a
 * class page whose table fits (blocks of 80 bytes and up) keeps it there, the others at
 * the end of their page, on OS pages of their own (side_at_end).  56 KiB / 64 slices. */
#define SIDE_SLOT_BYTES ((SLICE_SIZE - 2 * OS_PAGE_SIZE) / SEGMENT_SLICES)

/* The most blocks that fit in a page's `area` bytes with their side table after them,
 * the table rounded up to `granule` bytes; *side_bytes gets the table's share.  Normal
 * segments use OS_PAGE_SIZE: no OS page then holds both blocks and metadata, so an OS
 * page of blocks can be given back or remapped on its own.  Donated memory, which is
 * never given back, packs the table (16). */
static inline size_t side_at_end(size_t area, size_t block_size, size_t width, size_t granule, size_t *side_bytes)
{
    for (size_t cap = area / (block_size + width);; cap--) {   /* from a packed table's count */
        size_t table = (cap * width + granule - 1) / granule * granule;
        if (cap * block_size + table <= area) {
            *side_bytes = table;
            return cap;
        }
    }
}


typedef struct block { struct block *next; } block_t;

struct heap;

/* A page descriptor lives in its segment's header, one per slice; the tail slices of a
 * multi-slice page point back to the head with slice_offset. */
typedef struct __attribute__((aligned(128))) page {   /* 128: indexing is a shift */
    /* first cache line: the page's shape, read by every malloc and free (other threads'
     * included) and written when the page is made (and the large fields on slow paths),
     * never by malloc's and free's fast paths: a thread freeing into this page does not
     * take the line the owner writes on each operation (with free and used here too,
     * producer-consumer-2t ran 25% slower, for no gain on one thread's wall time) */
    uint8_t *start;           /* first block; 64 KiB aligned for segment pages */
    void *side;               /* side table: uint8_t or uint16_t per block (inline_side for
                                 pages of at most INLINE_SIDE_MAX blocks) */
    uint64_t index_mul;       /* block index by exact division (page_block_index): the */
                              /* inverse mod 2^64 of block_size's odd part */
    size_t block_size;
    _Atomic(struct heap *) heap;  /* owner; read by other threads to route their frees */
    size_t large_requested;   /* requested size of a BIN_LARGE block */
    uint16_t capacity;        /* blocks the page holds (at most 4032: 64 B blocks, 4 slices) */
    uint8_t bin;              /* size class, BIN_LARGE, or 0 for a free slice (capacity 0 too) */
    uint8_t side_wide;        /* side entries are uint16_t */
    uint8_t index_rot;        /* block_size's power of two: the rotation of page_block_index */
    uint8_t side8_base;       /* (uint8_t)(block_size + 1): a one-byte side entry is this - n */
    uint8_t touch_probe;      /* BIN_LARGE: calloc left it lazy; its free samples the touch */
    uint8_t meshed;           /* class page: its OS pages that share memory (mesh.c) */
    uint8_t slice_offset;     /* tail descriptor: distance back to the head */
    uint8_t slice_count;      /* slices spanned (head descriptor) */
    uint8_t large_side;       /* the side entry of a BIN_LARGE page's one block */
    uint8_t fresh;            /* memory known to be zero (new or released) */
    uint16_t unlisted;        /* free blocks in no list (side entry 0): fresh or released */
    uint16_t scan;            /* where to look next for unlisted blocks */
    /* second cache line: the owner's (malloc's and free's writes, the queue) */
    block_t *free;            /* owner's list of free blocks (inside page_blocks_bytes) */
    /* free's fast path decrements used_state as one signed word: it reads <= 0 exactly
     * when the page emptied (used 0) or has a reason in free_slow (its top bit), the
     * cases for the slow half, so one test covers them all */
    union {
        struct {
            uint16_t used;    /* blocks handed out, including ones queued as remote frees */
            uint8_t zero;     /* always 0: keeps a decrement of used inside its 16 bits */
            uint8_t free_slow;   /* PAGE_IN_FULL | PAGE_TRIMMED, and PAGE_SLOW with either */
        };
        int32_t used_state;
    };
    uint8_t emptied;          /* became empty since the last decay pass: in use, not idle */
    uint8_t last_bin;         /* the class this slice served before it was last freed (0:
                                 none): kept through the free, read when it is carved again */
    uint16_t withheld;        /* blocks marked MESHED, counted in `used` so that the page
                                 cannot empty and be reused while its OS pages are meshed */
    struct page *next, *prev; /* class queue */
    /* the side table of a page of few (large) blocks: in the header, no OS page of its own */
    uint16_t inline_side[INLINE_SIDE_MAX];
} page_t;
_Static_assert(offsetof(page_t, free) == 64, "the owner's fields start the second cache line");
/* page_t.free_slow: why the page's next free takes the slow half (owner or claimer writes) */
#define PAGE_SLOW    0x80u    /* set with any reason below: the sign bit of used_state */
#define PAGE_IN_FULL 0x40u    /* taken out of its queue: it had no free block */
#define PAGE_TRIMMED 0x20u    /* a trim found no OS page to give back since its last free */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && offsetof(page_t, free_slow) == offsetof(page_t, used_state) + 3,
               "free_slow is the top byte of used_state");
static inline bool page_in_full(const page_t *pg) { return pg->free_slow & PAGE_IN_FULL; }
static inline bool page_trimmed(const page_t *pg) { return pg->free_slow & PAGE_TRIMMED; }
static inline void page_set_free_slow(page_t *pg, unsigned reason, bool on)
{
    unsigned f = (on ? pg->free_slow | reason : pg->free_slow & ~reason) & ~PAGE_SLOW;
    pg->free_slow = (uint8_t)(f ? f | PAGE_SLOW : 0);
}
_Static_assert(sizeof(page_t) == 128, "page descriptors index by shift");

enum segment_kind { SEGMENT_NORMAL = 1, SEGMENT_HUGE = 2, SEGMENT_DONATED = 3 };

typedef struct segment {
    union {
        /* Slice 0 holds the header, so its descriptor pages[0] is never a page: the
         * segment's own fields live in its place and the header is 8 KiB, two OS pages. */
        struct {
            uint64_t cookie;          /* address ^ secret: _heapchk spots a damaged header */
            uint8_t *base;            /* slice 0 (a donated segment's lies before its memory) */
            size_t map_size;          /* bytes from base: mapped (huge) or donated + slice 0 */
            struct segment *reg_next, *reg_prev;    /* registry, address order */
            struct segment *heap_next;              /* owner's segments */
            uint64_t page_guard[2];   /* always 0: lies under pages[0].capacity, .bin and
                                         .slice_offset, so a pointer into the header reads as
                                         a free slice */
            struct segment *heap_prev;
            struct heap *heap;        /* owner */
            uint64_t free_mask;       /* bit i: slice i is free */
            uint64_t dirty_mask;      /* free slices that may still be resident */
            uint64_t dirty_since_ms;  /* when dirty_mask last became non-empty */
            uint8_t kind;
            uint8_t slice_count;      /* slices that exist (64, 2 for huge, fewer when donated) */
            uint8_t first_slice;      /* slices before it hold the header (always 1) */
            bool holds_large;         /* large blocks, or class pages (not both; donated: any) */
        };
        page_t pages[SEGMENT_SLICES];
    };
} segment_t;

typedef struct page_queue { page_t *first; } page_queue_t;   /* page.c: the last is first->prev */

#define REMOTE_LISTS 4

/* Calls counted in counting mode (counters.c), per heap, written by its owner only. */
enum { COUNT_MALLOC, COUNT_FREE, COUNT_REALLOC, COUNT_KINDS };
typedef struct heap_counts { uint64_t calls[COUNT_KINDS]; } heap_counts_t;

enum heap_state { HEAP_LIVE = 1, HEAP_ABANDONED = 2 };

/* heap_t.claim bits: any bit set sends the owner's malloc and free off the fast path */
#define CLAIM_HELD   1        /* another thread holds the heap: the owner waits */
#define CLAIM_DIVERT 2        /* the owner takes the slow paths (mallopt M_PERTURB fills there) */

typedef struct heap {
    _Atomic int busy;         /* owner is inside malloc/free (claim.c) */
    _Atomic int claim;        /* CLAIM_* bits */
    page_queue_t queues[BIN_COUNT + 1];
    segment_t *segments;      /* normal and donated segments this heap carves pages from */
    uint64_t maintained_ms;   /* last decay check */
    _Atomic uint64_t dirty_since_ms;  /* oldest dirty free memory, 0: none (read by the purger) */
    int state;
    struct heap *all_next;    /* every heap ever made */
    struct heap *pool_next;   /* abandoned heaps waiting for a thread */
    /* blocks other threads freed into this heap, on REMOTE_LISTS stacks (each on its own
     * cache line) that a freeing thread takes in turn: the owner drains them side by side,
     * so the cache misses on their links overlap instead of following one chain */
    struct { _Alignas(64) _Atomic(block_t *) head; } remote[REMOTE_LISTS];
    _Alignas(64) heap_counts_t counts;   /* counting mode only (slow paths) */
} heap_t;

_Static_assert(SEGMENT_SLICES == 64, "slice masks are uint64_t");
_Static_assert(sizeof(segment_t) == 2 * OS_PAGE_SIZE, "segment header: two OS pages");
_Static_assert(sizeof(segment_t) + SEGMENT_SLICES * SIDE_SLOT_BYTES <= SLICE_SIZE, "side slots fit in slice 0");
_Static_assert(SIDE_SLOT_BYTES % 64 == 0, "side slots start on cache lines");
_Static_assert(offsetof(segment_t, page_guard) <= offsetof(page_t, capacity) &&
               offsetof(page_t, slice_offset) < offsetof(segment_t, page_guard) + 2 * sizeof(uint64_t) &&
               offsetof(segment_t, first_slice) < sizeof(page_t), "header fields fill pages[0] only");
/* The first byte of the segment's own slices (a donated segment's slice 0 is not its). */
static inline uint8_t *segment_first_byte(const struct segment *seg)
{
    return seg->base + (size_t)seg->first_slice * SLICE_SIZE;
}
_Static_assert(LARGE_MAX < SEGMENT_SIZE - SLICE_SIZE, "large blocks fit in one segment");

/* ---- size classes: the lookup inline for the fast paths (table in sizeclass.c) ---- */
extern const uint8_t small_bin_of[SMALL_MAX / 16 + 1] INTERNAL;
static inline unsigned bin_of(size_t n)
{
    if (n <= SMALL_MAX)
        return small_bin_of[(n + 15) >> 4];
    size_t w = n - 1;
    unsigned b = 63u - (unsigned)__builtin_clzl(w);
    return 9 + (b - 7) * 4 + (unsigned)((w >> (b - 2)) & 3);
}

/* ---- page geometry, inline for the fast paths ---- */
/* Block size d = odd * 2^index_rot, index_mul = odd^-1 mod 2^64.  For an offset that is a
 * multiple k * d, offset * index_mul = k * 2^index_rot, and the rotation right gives k.
 * For any other offset (inside a block, before the page: negative) either a low bit
 * survives the odd multiply and rotates to the top, or the quotient is no k below
 * 2^(64 - index_rot) (the multiply is a bijection there): the result is then at least
 * 2^(64 - index_rot) > capacity.  So the index of p, or a value >= capacity when p is not
 * a block start of the page: one multiply, one rotation and one compare tell both. */
static inline uintptr_t page_block_index(const page_t *pg, const void *p)
{
    uint64_t q = ((uintptr_t)p - (uintptr_t)pg->start) * pg->index_mul;
    unsigned r = pg->index_rot;
    return (uintptr_t)((q >> r) | (q << ((64 - r) & 63)));
}
static inline void page_set_block_size(page_t *pg, size_t block_size)
{
    unsigned rot = (unsigned)__builtin_ctzll(block_size);
    uint64_t odd = block_size >> rot, inverse = odd;   /* right to 3 bits: odd * odd = 1 mod 8 */
    for (int step = 0; step < 5; step++)                /* Newton: 3, 6, 12, 24, 48, 96 bits */
        inverse *= 2 - odd * inverse;
    pg->block_size = block_size;
    pg->index_mul = inverse;
    pg->index_rot = (uint8_t)rot;
    pg->side8_base = (uint8_t)(block_size + 1);
}
/* capacity * block_size: where the blocks end */
static inline size_t page_blocks_bytes(const page_t *pg) { return (size_t)pg->capacity * pg->block_size; }
static inline unsigned side_get(const page_t *pg, uint32_t i)
{
    return pg->side_wide ? __atomic_load_n((uint16_t *)pg->side + i, __ATOMIC_RELAXED)
                         : __atomic_load_n((uint8_t *)pg->side + i, __ATOMIC_RELAXED);
}
static inline void side_set(page_t *pg, uint32_t i, unsigned v)
{
    if (pg->side_wide) __atomic_store_n((uint16_t *)pg->side + i, (uint16_t)v, __ATOMIC_RELAXED);
    else __atomic_store_n((uint8_t *)pg->side + i, (uint8_t)v, __ATOMIC_RELAXED);
}
static inline unsigned side_free_value(const page_t *pg)   { return pg->side_wide ? SIDE16_FREE : SIDE8_FREE; }
static inline unsigned side_remote_value(const page_t *pg) { return pg->side_wide ? SIDE16_REMOTE : SIDE8_REMOTE; }
static inline unsigned side_overflow_value(const page_t *pg) { return pg->side_wide ? SIDE16_OVERFLOW : SIDE8_OVERFLOW; }
static inline unsigned side_meshed_value(const page_t *pg) { return pg->side_wide ? SIDE16_MESHED : SIDE8_MESHED; }
/* Can a block of size bs record a requested size n (n <= bs) in its side entry (else the
 * entry says OVERFLOW and overflow.c keeps n)? */
static inline bool side_can_record(size_t bs, size_t n)
{
    return bs - n + 1 < (bs >= WIDE_SIDE_MIN ? SIDE16_OVERFLOW : SIDE8_OVERFLOW);
}
static inline bool side_is_allocated(const page_t *pg, unsigned v)
{
    return v != SIDE_UNLISTED && v < side_meshed_value(pg);   /* OVERFLOW is live */
}

/* ---- the event that wakes the purger (os.c) ---- */
enum { EVENT_NOT_WAITING = 0, EVENT_WAITING_ANY = 1, EVENT_WAITING_URGENT = 2 };
typedef struct event {
    _Atomic uint32_t seq;      /* futex word: bumped by every signal that finds a waiter */
    _Atomic int waiting;       /* EVENT_WAITING_*: a thread is between os_event_prepare and
                                  os_event_done, woken by any signal or by urgent ones only */
} event_t;

#endif
