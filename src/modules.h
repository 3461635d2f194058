/* modules.h — what each file of crtheap offers the others, one section per file, in
 * layer order: a file calls only the sections above its own (scripts/layers.py, run by
 * `make check`, verifies it).  The structures and the glossary are in internal.h.
 *
 *   os, osmesh, diag, sizeclass  →  release, registry, options, overflow, counters  →  segment  →  page
 *   →  claim  →  heap  →  decay  →  mesh  →  purger, thread  →  trim, walk, stats, control  →  alloc, crt, cxx */
#ifndef CRTHEAP_MODULES_H
#define CRTHEAP_MODULES_H

#include "internal.h"
#include <sys/uio.h>

/* ---- os.c: the only file that talks to the kernel about memory, time and futexes ---- */
void *os_map(size_t size) INTERNAL;                        /* NULL + ENOMEM on failure */
void *os_map_aligned(size_t size, size_t alignment) INTERNAL;
int os_unmap(void *p, size_t size) INTERNAL;
int os_remap_in_place(void *p, size_t old_size, size_t new_size) INTERNAL;
int os_release(void *p, size_t size) INTERNAL;           /* MADV_DONTNEED: RSS drops now */
int os_release_many(struct iovec *ranges, size_t count) INTERNAL;
size_t os_resident_bytes(const void *p, size_t size) INTERNAL;   /* mincore */
void os_advise_huge_pages(void *p, size_t size) INTERNAL;
int os_populate_write(void *p, size_t size) INTERNAL;
bool os_thp_always(void) INTERNAL;                       /* transparent huge pages for all memory */
int os_membarrier(void) INTERNAL;                         /* all threads pass a full fence */
uint64_t os_now_ms(void) INTERNAL;
void os_write_stderr(const char *s, size_t n) INTERNAL;
bool os_random_bytes(void *out, size_t n) INTERNAL;
size_t os_address_space_left(void) INTERNAL;   /* under RLIMIT_AS; SIZE_MAX without one */
/* An event a thread sleeps on: the sleeper calls prepare, checks for work, waits if
 * there is none (with a timeout or without), then done; a signaller publishes its work
 * first.  The fences after the sleeper's `waiting` store and before the signaller's load
 * make one of them see the other.  A sleeper may ask to be woken by urgent signals only
 * (the purger's timed sleep: thread exits and option changes, not new dirty memory). */
uint32_t os_event_prepare(event_t *e, bool urgent_only) INTERNAL;
void os_event_wait(event_t *e, uint32_t seq, long timeout_ms) INTERNAL;   /* < 0: no limit */
void os_event_done(event_t *e) INTERNAL;
void os_event_signal(event_t *e, bool urgent) INTERNAL;   /* cheap when nobody waits: a fence and a load */
extern event_t decay_work INTERNAL;            /* the decay has work, or what it depends on changed */

/* ---- osmesh.c: userfaultfd, the memfd and the remaps of the meshing trim ---- */
int os_uffd_open(bool kernel_faults, bool *unpopulated) INTERNAL;   /* fd, or -1 */
int os_uffd_register(int fd, void *p, size_t size, bool on) INTERNAL;   /* write-protect mode */
int os_uffd_protect(int fd, void *p, size_t size, bool on) INTERNAL;    /* off wakes the writers */
int os_uffd_wake(int fd, void *p, size_t size) INTERNAL;
int os_memfd(void) INTERNAL;
int os_file_resize(int fd, size_t size) INTERNAL;
int os_punch_mapped(void *p, size_t size) INTERNAL;   /* MADV_REMOVE: the file's memory goes */
bool os_file_id(int fd, uint64_t id[2]) INTERNAL;
void *os_map_file(void *at, size_t size, int fd, size_t offset) INTERNAL;   /* shared; at NULL: anywhere */
int os_map_zero_fixed(void *at, size_t size) INTERNAL;
bool os_mapped(const void *p, size_t size) INTERNAL;
int os_move_fixed(void *from, size_t size, void *to) INTERNAL;
size_t os_max_map_count(void) INTERNAL;
size_t os_map_count(void) INTERNAL;
int os_pipe(int fds[2]) INTERNAL;
void os_close(int fd) INTERNAL;
int os_write_byte(int fd) INTERNAL;
void os_read_byte(int fd) INTERNAL;

/* ---- diag.c: fatal diagnostics and the invalid-parameter protocol ---- */
__attribute__((noreturn)) void fatal_pointer(const char *call, const void *p, const char *problem) INTERNAL;
__attribute__((noreturn)) void fatal_message(const char *message) INTERNAL;
__attribute__((noreturn)) void fatal_size_mismatch(const char *call, const void *p, size_t given,
                                                   size_t requested) INTERNAL;
void crt_invalid_parameter(int err) INTERNAL;   /* the handler if installed, then errno */
__attribute__((noreturn)) void assertion_failed(const char *what, const char *file, int line) INTERNAL;

/* Invariant checks, compiled only into the debug build (make debug: -DCRTHEAP_DEBUG),
 * on the hot paths and the slow ones alike; a failed one prints the expression and
 * aborts.  The normal build compiles them away. */
#ifdef CRTHEAP_DEBUG
#define crt_assert(cond) (likely(cond) ? (void)0 : assertion_failed(#cond, __FILE__, __LINE__))
#define crt_debug_check(call) (call)
#else
#define crt_assert(cond) ((void)0)
#define crt_debug_check(call) ((void)0)
#endif

/* The heap is held by this thread: entered (busy) by its owner, or claimed. */
static inline bool heap_held(heap_t *h)
{
    return atomic_load_explicit(&h->busy, memory_order_relaxed) ||
           (atomic_load_explicit(&h->claim, memory_order_relaxed) & CLAIM_HELD);
}

/* ---- sizeclass.c ---- */
size_t bin_block_size(unsigned bin) INTERNAL;
unsigned bin_page_slices(unsigned bin) INTERNAL;
void sizeclass_check(void) INTERNAL;

/* ---- release.c: giving memory back, and counting only resident bytes ---- */
#define RELEASE_BATCH_RANGES 256
/* Ranges gathered while a heap is claimed, handed to the kernel in one call before the
 * claim ends.  NULL where a caller releases at once. */
typedef struct release_batch {
    size_t count;
    struct iovec ranges[RELEASE_BATCH_RANGES];
} release_batch_t;
size_t release_range(release_batch_t *batch, uintptr_t start, uintptr_t end) INTERNAL;  /* resident bytes */
void release_flush(release_batch_t *batch) INTERNAL;
void release_count(size_t bytes) INTERNAL;   /* resident bytes given back another way (meshing) */
size_t release_unmap(void *p, size_t size) INTERNAL;                                     /* resident bytes */
size_t release_total(void) INTERNAL;
int release_take_error(void) INTERNAL;

/* ---- registry.c: every segment, and "is this pointer crtheap's?" ---- */
extern uint64_t heap_secret INTERNAL;   /* cookies and _aligned_ headers are xored with it */
extern uint64_t segment_bitmap[1u << (ADDRESS_BITS - SEGMENT_SHIFT - 6)] INTERNAL;
#define DONATED_MAX 256
#define DONATED_CHUNK_MAX (SEGMENT_SIZE - SLICE_SIZE)   /* one donated segment's memory */
extern _Atomic size_t donated_count INTERNAL;
void registry_init_secret(void) INTERNAL;
segment_t *donated_segment_of(const void *p) INTERNAL;
void registry_add(segment_t *seg) INTERNAL;
void registry_remove(segment_t *seg) INTERNAL;
bool registry_has_room(void) INTERNAL;
size_t registry_segment_count(void) INTERNAL;
void registry_lock(void) INTERNAL;
void registry_unlock(void) INTERNAL;
segment_t *registry_first(void) INTERNAL;
void registry_fork_child(void) INTERNAL;

static inline bool segment_outside_slot(const segment_t *seg)
{
    return seg->kind == SEGMENT_DONATED || (seg->kind == SEGMENT_HUGE && seg->pages[1].start >= (uint8_t *)seg + SEGMENT_SIZE);
}
/* Is address a in a normal or huge segment (its 4 MiB unit's bit set)?  Any value of a:
 * one above the user address space is not. */
static inline bool segment_bit_test(uintptr_t a)
{
    uintptr_t i = a >> SEGMENT_SHIFT;
    if (i >= (uintptr_t)1 << (ADDRESS_BITS - SEGMENT_SHIFT))
        return false;
    return __atomic_load_n(&segment_bitmap[i >> 6], __ATOMIC_RELAXED) >> (i & 63) & 1;
}
/* The segment holding p, or NULL when p is not crtheap memory. */
static inline segment_t *segment_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (likely(segment_bit_test(a)))
        return (segment_t *)(a & ~SEGMENT_MASK);
    if (unlikely(atomic_load_explicit(&donated_count, memory_order_relaxed) != 0))
        return donated_segment_of(p);
    return NULL;
}
/* The head page descriptor for p inside seg. */
static inline page_t *segment_page_of(segment_t *seg, const void *p)
{
    size_t i = ((uintptr_t)p - (uintptr_t)seg->base) >> SLICE_SHIFT;
    if (unlikely(i >= seg->slice_count))
        i = seg->slice_count - 1u;   /* far inside a huge block */
    page_t *pg = &seg->pages[i];
    return pg - pg->slice_offset;
}

/* ---- overflow.c: requested sizes too far below their block for a side entry ---- */
bool overflow_put(const void *p, size_t requested) INTERNAL;   /* false: no memory */
size_t overflow_get(const void *p) INTERNAL;
void overflow_drop(const void *p) INTERNAL;
void overflow_fork_prepare(void) INTERNAL;
void overflow_fork_parent(void) INTERNAL;
void overflow_fork_child(void) INTERNAL;
/* The requested size of live block p of class page pg, from its side entry v. */
static inline size_t side_requested(const page_t *pg, unsigned v, const void *p)
{
    return v == side_overflow_value(pg) ? overflow_get(p) : pg->block_size - (v - 1);
}

/* ---- counters.c: calls and bytes counted in counting mode; trims, threads ---- */
extern _Atomic int counting_mode INTERNAL;   /* CRTHEAP_SHOW_STATS=1: heaps diverted, slow paths count */
typedef struct counters_global {
    uint64_t heapless[COUNT_KINDS];   /* calls of threads without a heap */
    size_t requested_now, requested_peak;
    uint64_t heapmin_calls, trim_calls, trim_released, threads_seen;
} counters_global_t;
void count_malloc(heap_t *h, size_t requested) INTERNAL;   /* h NULL: a thread without a heap */
void count_free(heap_t *h, size_t requested) INTERNAL;
void count_realloc(heap_t *h) INTERNAL;
void count_resize(size_t old_requested, size_t new_requested) INTERNAL;
void count_trim(bool heapmin, size_t released) INTERNAL;
void count_thread(void) INTERNAL;
void counters_global(counters_global_t *out) INTERNAL;
static inline bool counting(void) { return atomic_load_explicit(&counting_mode, memory_order_relaxed); }

/* ---- options.c: the values every layer reads (changed through control.c) ---- */
extern long option_purge_delay_ms INTERNAL;
extern long option_huge_cache_mb INTERNAL;
extern long option_purger INTERNAL;              /* 0: no background purger thread */
extern long option_show_stats INTERNAL;          /* 1: counting mode, statistics at exit */
extern long option_mesh INTERNAL;                /* MESH_*: may _heapmin mesh OS pages (mesh.c) */
extern long option_mesh_decay_ms INTERNAL;       /* >= 0: the purger meshes, at most this often */
extern size_t option_mmap_threshold INTERNAL;    /* mallopt(M_MMAP_THRESHOLD): own mapping from here */
extern _Atomic int option_perturb_byte INTERNAL; /* mallopt(M_PERTURB); 0: off */
void options_init(void) INTERNAL;                /* the environment, once */
int option_store(unsigned option, long value) INTERNAL;   /* 0, or -1 with EINVAL */
long option_value(unsigned option) INTERNAL;
long option_default(unsigned option) INTERNAL;

/* ---- segment.c: mapping, carving and freeing segments; the huge blocks ---- */
#define SPAN_FIRST_DIRTY   1u   /* segment_free_span: the segment had no dirty slice before */
#define SPAN_SEGMENT_EMPTY 2u   /* segment_free_span: the segment is now empty */
segment_t *segment_new(bool large, size_t slices) INTERNAL;
void segment_init_donated(segment_t *seg, uint8_t *start, size_t size) INTERNAL;
size_t segment_fit(const segment_t *seg, size_t slices, size_t align_slices, bool top, bool dirty_only,
                   size_t *start) INTERNAL;
page_t *segment_take_slices(segment_t *seg, size_t i, size_t count) INTERNAL;
size_t segment_span_bytes(const page_t *pg) INTERNAL;
uint8_t *segment_side_slot(const page_t *pg) INTERNAL;   /* NULL: none (donated, huge) */
unsigned segment_free_span(page_t *pg) INTERNAL;
bool segment_grow_span(page_t *pg, size_t n) INTERNAL;   /* a large block to n bytes, in place */
bool segment_is_empty(const segment_t *seg) INTERNAL;
size_t segment_purge(segment_t *seg, uint64_t older_than_ms, release_batch_t *batch) INTERNAL;
size_t segment_unmap(segment_t *seg) INTERNAL;
page_t *segment_alloc_huge(heap_t *h, size_t size, size_t alignment) INTERNAL;
void segment_free_huge(segment_t *seg) INTERNAL;
#define LARGE_PROBE_BYTES ((size_t)256 * 1024)   /* what a touch probe's free measures */
bool segment_large_prefault_turn(size_t n) INTERNAL;   /* calloc may prefault this large block */
void segment_large_freed(page_t *pg) INTERNAL;          /* a large or huge block's free: its sample */
bool segment_grow_huge(segment_t *seg, size_t size) INTERNAL;   /* in place, or false */
size_t huge_cache_trim(bool all) INTERNAL;
bool huge_cache_pending(void) INTERNAL;
void segment_fork_prepare(void) INTERNAL;
void segment_fork_parent(void) INTERNAL;
void segment_fork_child(void) INTERNAL;

/* ---- page.c: a page's blocks, its queue, its retirement ---- */
extern page_t empty_page INTERNAL;   /* queue sentinel: never has a free block */
void page_init(page_t *pg, unsigned bin) INTERNAL;
void page_init_large(page_t *pg, size_t n) INTERNAL;
bool page_extend(page_t *pg) INTERNAL;           /* link unlisted blocks; false if none */
void page_release_unlinked(page_t *pg) INTERNAL; /* new page on dirty slices: drop what it inherited */
void page_queue_push_front(page_queue_t *q, page_t *pg) INTERNAL;
void page_queue_remove(page_queue_t *q, page_t *pg) INTERNAL;
unsigned page_free_block_slow(heap_t *h, page_t *pg) INTERNAL;   /* SPAN_* flags */
unsigned page_retire_empty(heap_t *h, bool idle_only) INTERNAL;  /* SPAN_* flags */
#define PAGE_OS_PAGES_MAX (16 * SLICE_SIZE / OS_PAGE_SIZE)   /* OS pages of the largest class page */
size_t page_release_free_os_pages(page_t *pg, release_batch_t *batch, const uint64_t *meshed) INTERNAL;
void page_check_counts(const page_t *pg) INTERNAL;   /* debug build: side table against the counts */
void page_rebuild_free_list(page_t *pg) INTERNAL;   /* every FREE entry, in address order */

/* The one free into one's own page (owner entered, or claimer; the block validated and
 * its side entry already FREE), used by free's fast path, the owner's slow path and the
 * remote drain alike.  True when its slow half must run next: page_free_block_slow, then
 * heap_spans_freed with what that returns (the caller does it, so that free's fast path
 * keeps a tail call and no saved register). */
static inline __attribute__((always_inline)) bool page_free_block(heap_t *h, page_t *pg, void *p)
{
    crt_assert(heap_held(h) && pg->used > 0);
    crt_assert(pg->bin == BIN_LARGE ? (uint8_t *)p == pg->start
                                    : (uint8_t *)p >= pg->start && (uint8_t *)p < pg->start + page_blocks_bytes(pg));
    block_t *b = p;
    b->next = pg->free;
    pg->free = b;
    (void)h;
    int32_t state = pg->used_state - 1;   /* --used; negative with a free_slow reason */
    pg->used_state = state;
    if (likely(state > 0))
        return false;
    if (state == 0 && pg->prev == pg) {   /* emptied, in its queue alone (a full or large page has prev NULL) */
        pg->emptied = 1;   /* the class's only page stays: page_free_block_slow's first rule */
        return false;
    }
    return true;
}

/* ---- claim.c: every heap, and exclusive use of another thread's ---- */
void heaps_lock(void) INTERNAL;      /* heaps_mutex: the pool, the list, the metadata */
void heaps_unlock(void) INTERNAL;
heap_t *heap_all_first(void) INTERNAL;
int heap_live_count(void) INTERNAL;             /* heaps of live threads */
heap_t *heap_pool_take(void) INTERNAL;          /* under heaps_lock */
void heap_list_add(heap_t *h) INTERNAL;         /* under heaps_lock */
void heap_mark_live(heap_t *h) INTERNAL;        /* under heaps_lock */
void heap_abandon_to_pool(heap_t *h) INTERNAL;
void heap_set_diverted(bool on) INTERNAL;       /* every heap's operations take the slow paths */
void heap_set_diverted_locked(bool on) INTERNAL;   /* the same, under heaps_lock */
extern _Atomic bool heaps_diverted INTERNAL;     /* what heap_set_diverted last said (M_PERTURB, counting) */
bool heap_claim(heap_t *h, bool wait) INTERNAL;
void heap_unclaim(heap_t *h) INTERNAL;
void heap_wait_unclaimed(heap_t *h) INTERNAL;
heap_t *heap_claim_all(void) INTERNAL;          /* every heap at once (the meshing trim): the */
void heap_unclaim_all(heap_t *first) INTERNAL;  /* first claimed, then the list after it */
void claim_fork_prepare(heap_t *self) INTERNAL;
void claim_fork_parent(heap_t *self) INTERNAL;
void claim_fork_child(heap_t *self) INTERNAL;

/* Mark the heap busy; false when a claimer holds it or it is diverted (busy stays set:
 * leave, or wait with heap_wait_unclaimed). */
static inline bool heap_try_enter(heap_t *h)
{
    atomic_store_explicit(&h->busy, 1, memory_order_relaxed);
    compiler_barrier();   /* membarrier on the claimer's side orders this store before the load */
    /* acquire: reading the 0 a claimer's unclaim stored, the owner sees what it changed
     * (free on x86; one ldar on arm64) */
    return likely(!atomic_load_explicit(&h->claim, memory_order_acquire));
}
static inline void heap_enter(heap_t *h)
{
    if (!heap_try_enter(h))
        heap_wait_unclaimed(h);
}
static inline void heap_leave(heap_t *h)
{
    atomic_store_explicit(&h->busy, 0, memory_order_release);
}

/* ---- heap.c: a thread's heap ---- */
extern __thread heap_t *tls_heap INTERNAL;   /* &heap_none until the thread's first allocation */
extern heap_t heap_none INTERNAL;
/* The calling thread's heap, or NULL when it has none yet (or any more). */
static inline heap_t *thread_heap(void)
{
    heap_t *h = tls_heap;
    return h == &heap_none ? NULL : h;
}
heap_t *heap_acquire(void) INTERNAL;
bool heap_add_donated(heap_t *h, uintptr_t start, uintptr_t end) INTERNAL;
bool heap_release_segment_if_empty(heap_t *h, segment_t *seg, size_t *released) INTERNAL;
void heap_spans_freed(heap_t *h, unsigned flags) INTERNAL;
void heap_retire_empty_pages(heap_t *h, bool idle_only) INTERNAL;
page_t *heap_find_page(heap_t *h, unsigned bin) INTERNAL;   /* a class page with a free block */
void *heap_malloc_large(heap_t *h, size_t n, size_t alignment) INTERNAL;
void heap_drain_remote(heap_t *h) INTERNAL;
void heap_free_owned(heap_t *h, page_t *pg, void *p) INTERNAL;
void heap_page_freed_slow(heap_t *h, page_t *pg) INTERNAL;   /* page_free_block said so */
void heap_free_remote(page_t *pg, void *p) INTERNAL;

/* ---- decay.c: memory goes back by itself ---- */
void decay_heap(heap_t *h, bool force, uint64_t now) INTERNAL;
void decay_if_due(heap_t *h) INTERNAL;          /* entered; a pass if the last one is old */

/* ---- mesh.c: OS pages whose live bytes do not overlap share one physical page ---- */
enum { MESH_OFF = 0, MESH_ON = 1, MESH_EVEN_USER_MODE_ONLY = 2 };   /* option_mesh */
size_t mesh_trim(void) INTERNAL;           /* _heapmin's meshing: resident bytes given back */
bool mesh_covers(uintptr_t start, uintptr_t end) INTERNAL;   /* a meshed OS page overlaps it */
bool mesh_may_mesh(void) INTERNAL;         /* a pass could mesh (racy read, for the purger) */
void mesh_page_members(const page_t *pg, uint64_t *bits) INTERNAL;   /* bit k: its OS page k is meshed */
int mesh_check(void) INTERNAL;             /* _heapchk of the meshes: 0, or -1 */
void mesh_figures(size_t *meshed_pages, size_t *shared_pages) INTERNAL;
void mesh_fork_prepare(bool threaded) INTERNAL;
void mesh_fork_parent(void) INTERNAL;
void mesh_fork_child(void) INTERNAL;

/* ---- purger.c: the thread that applies the decay to sleeping threads' heaps ---- */
bool purger_wanted(heap_t *h, bool large_block) INTERNAL;
void purger_start(void) INTERNAL;         /* not entered: creating a thread may allocate */
void purger_fork_child(void) INTERNAL;

/* ---- thread.c: the first allocation, thread exit, fork ---- */
heap_t *heap_get_or_init(void) INTERNAL;

/* ---- stats.c: statistics, counters, their printers ---- */
void stats_show_at_exit(void) INTERNAL;   /* CRTHEAP_SHOW_STATS: print them at exit (once) */
/* ---- sample.c: the sampler (crtheap run, and the peaks of CRTHEAP_SHOW_STATS) ---- */
bool sample_peaks(size_t *in_use, size_t *committed, size_t *resident) INTERNAL;   /* false: none */

/* ---- alloc.c: allocation entry points shared by the API files ---- */
void *crt_malloc(size_t n) INTERNAL;
void *crt_malloc_aligned(size_t n, size_t alignment) INTERNAL;
void crt_free(void *p, const char *call) INTERNAL;
void crt_free_sized(void *p, size_t size, const char *call) INTERNAL;   /* size 0 reads as 1 */
void *crt_realloc(void *p, size_t n, const char *call, bool in_place_only) INTERNAL;
size_t crt_usable_size(const void *p, const char *call) INTERNAL;
size_t crt_requested_size(const void *p, const char *call) INTERNAL;

/* ---- crt.c ---- */
bool crt_retry_after_new_handler(size_t size) INTERNAL;

#endif
