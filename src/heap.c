/* heap.c — thread heaps: creation and adoption, the allocation slow path, cross-thread
 * frees, thread exit, decay, and fork. */
#define _GNU_SOURCE
#include "internal.h"
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

__thread heap_t *tls_heap __attribute__((tls_model("initial-exec")));
page_t empty_page;
uint64_t heap_secret;

static pthread_mutex_t heaps_mutex = PTHREAD_MUTEX_INITIALIZER;  /* pool, list, metadata */
static _Atomic(heap_t *) all_heaps;
static heap_t *abandoned_pool;
static pthread_key_t exit_key;
static _Atomic int init_state;   /* 0 none, 1 in progress, 2 done */

static _Atomic int live_heaps;   /* heaps whose threads are alive (changed under heaps_mutex) */
static bool heaps_diverted;      /* new heaps start with CLAIM_DIVERT (under heaps_mutex) */

heap_t *heap_all_first(void) { return atomic_load_explicit(&all_heaps, memory_order_acquire); }
int heap_live_count(void) { return atomic_load_explicit(&live_heaps, memory_order_relaxed); }

/* Send every heap's operations to the slow paths, or let them back on the fast ones: the
 * owners see CLAIM_DIVERT at their next heap_try_enter, at no cost while it is off. */
void heap_set_diverted(bool on)
{
    pthread_mutex_lock(&heaps_mutex);
    heaps_diverted = on;
    for (heap_t *h = heap_all_first(); h; h = h->all_next) {
        if (on)
            atomic_fetch_or(&h->claim, CLAIM_DIVERT);
        else
            atomic_fetch_and(&h->claim, ~CLAIM_DIVERT);
    }
    pthread_mutex_unlock(&heaps_mutex);
}

/* ---- metadata: heaps and donated-segment headers, carved from 64 KiB chunks ---- */
static uint8_t *meta_cursor, *meta_end;

/* Every piece is aligned for the strictest of them: a segment header, whose page
 * descriptors are 128-byte aligned. */
#define META_ALIGN _Alignof(segment_t)
_Static_assert(META_ALIGN >= _Alignof(heap_t) && (META_ALIGN & (META_ALIGN - 1)) == 0, "metadata alignment");

/* Caller holds heaps_mutex. */
static void *meta_alloc_locked(size_t size)
{
    size = (size + META_ALIGN - 1) & ~(size_t)(META_ALIGN - 1);
    if ((size_t)(meta_end - meta_cursor) < size) {
        size_t chunk = size > SLICE_SIZE ? size : SLICE_SIZE;
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

void *meta_alloc(size_t size)
{
    pthread_mutex_lock(&heaps_mutex);
    void *r = meta_alloc_locked(size);
    pthread_mutex_unlock(&heaps_mutex);
    return r;
}

static void heap_thread_exit(void *arg);
static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

static void heap_reset_queues(heap_t *h)
{
    for (unsigned b = 0; b <= BIN_COUNT; b++) {
        h->queues[b].first = &empty_page;
        h->queues[b].last = NULL;
    }
}

/* A heap for the calling thread: an abandoned one if any (its pages come along), else new. */
static heap_t *heap_acquire(void)
{
    pthread_mutex_lock(&heaps_mutex);
    heap_t *h = abandoned_pool;
    if (h) {
        abandoned_pool = h->pool_next;
        h->pool_next = NULL;
    } else {
        h = meta_alloc_locked(sizeof(heap_t));
        if (h) {
            heap_reset_queues(h);
            h->all_next = atomic_load_explicit(&all_heaps, memory_order_relaxed);
            atomic_store_explicit(&all_heaps, h, memory_order_release);
        }
    }
    if (h) {
        h->state = HEAP_LIVE;
        if (heaps_diverted)
            atomic_fetch_or(&h->claim, CLAIM_DIVERT);
        atomic_fetch_add_explicit(&live_heaps, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&heaps_mutex);
    return h;
}

static void global_init(void)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&init_state, &expected, 1)) {
        while (atomic_load(&init_state) != 2)
            sched_yield();
        return;
    }
    if (!os_random_bytes(&heap_secret, sizeof heap_secret))
        heap_secret = (uint64_t)(uintptr_t)&heap_secret * 0x9E3779B97F4A7C15ull;
    heap_secret |= 1;
    options_init();
    empty_page.bin = 0;
    for (size_t n = 0; n <= SMALL_MAX; n += 16) {   /* the table must agree with the formula */
        size_t w = n ? n : 1;
        unsigned b = w <= 128 ? (unsigned)((w + 15) >> 4) : 0;
        if (w > 128) {
            unsigned lg = 63u - (unsigned)__builtin_clzl(w - 1);
            b = 9 + (lg - 7) * 4 + (unsigned)(((w - 1) >> (lg - 2)) & 3);
        }
        if (small_bin_of[n >> 4] != b || bin_block_size(b) < w)
            fatal_message("size class table is inconsistent");
    }
    atomic_store(&init_state, 2);
}

/* First allocation of a thread (or of the process). */
heap_t *heap_get_or_init(void)
{
    heap_t *h = tls_heap;
    if (h)
        return h;
    if (atomic_load_explicit(&init_state, memory_order_acquire) != 2)
        global_init();
    h = heap_acquire();
    if (!h)
        return NULL;
    tls_heap = h;
    /* Registered after tls_heap is set: these may allocate and must find a heap. */
    static _Atomic int hooks_done;
    int expected = 0;
    if (atomic_compare_exchange_strong(&hooks_done, &expected, 1)) {
        pthread_key_create(&exit_key, heap_thread_exit);
        pthread_atfork(fork_prepare, fork_parent, fork_child);
        atomic_store(&hooks_done, 2);
    }
    while (atomic_load(&hooks_done) != 2)
        sched_yield();
    pthread_setspecific(exit_key, h);
    return h;
}

/* ---- freeing into a heap ---- */

/* Free of a block in a page this heap owns (the block is already validated). */
void heap_free_owned(heap_t *h, page_t *pg, void *p)
{
    block_t *b = p;
    b->next = pg->free;
    pg->free = b;
    if (unlikely(--pg->used == 0 || pg->in_full))
        page_free_block_slow(h, pg);
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
    uint32_t i = page_block_index(pg, b);
    if (pg->bin == 0 || i >= pg->capacity || side_get(pg, i) != side_remote_value(pg))
        fatal_pointer("free", b, "double free");
    side_set(pg, i, side_free_value(pg));
    heap_free_owned(h, pg, b);
}

void heap_drain_remote(heap_t *h)
{
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

/* ---- allocation slow path ---- */

static page_t *heap_new_page(heap_t *h, unsigned bin)
{
    page_t *pg = segment_alloc_span(h, bin_page_slices(bin), 0, false);
    if (!pg)
        return NULL;
    page_init(pg, bin);
    page_extend(pg);
    page_release_unlinked(pg);
    atomic_store_explicit(&pg->heap, h, memory_order_release);
    page_queue_push_front(&h->queues[bin], pg);
    return pg;
}

/* A page of class `bin` with a free block at the front of its queue, or NULL. */
static page_t *heap_find_page(heap_t *h, unsigned bin)
{
    page_queue_t *q = &h->queues[bin];
    page_t *pg = q->first;
    while (pg != &empty_page && pg) {
        page_t *next = pg->next;
        if (pg->free || page_extend(pg)) {
            if (q->first != pg) {
                page_queue_remove(q, pg);
                page_queue_push_front(q, pg);
            }
            return pg;
        }
        page_queue_remove(q, pg);   /* full: back in the queue when a block comes free */
        pg->in_full = 1;
        pg = next;
    }
    return heap_new_page(h, bin);
}

/* The class queue ran dry: take in remote frees, age out old free memory, then find or
 * make a page with a free block.  NULL (ENOMEM) when the OS has no memory left. */
page_t *heap_refill(heap_t *h, unsigned bin)
{
    if (unlikely(purger_wanted() && (atomic_load_explicit(&h->dirty_since_ms, memory_order_relaxed) ||
                                       registry_segment_count() >= PURGER_MIN_SEGMENTS))) {
        heap_leave(h);   /* nothing changed yet: creating a thread may allocate */
        purger_start();
        heap_enter(h);
    }
    heap_drain_remote(h);
    heap_maintain_if_due(h);
    return heap_find_page(h, bin);
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
        pg = segment_alloc_span(h, slices, align_slices, true);
    if (!pg)
        pg = segment_alloc_huge(h, n, alignment);
    if (!pg)
        return NULL;
    pg->bin = BIN_LARGE;
    pg->inv_block_size = ((uint64_t)1 << 40) / pg->block_size + 1;
    pg->capacity = 1;
    pg->used = 1;
    pg->side = &pg->large_side;
    pg->large_side = 1;
    pg->large_requested = n;
    atomic_store_explicit(&pg->heap, segment_of(pg->start)->kind == SEGMENT_HUGE ? NULL : h,
                          memory_order_release);
    return pg->start;
}

/* The decay on an allocation slow path, at most once per MAINTAIN_PERIOD_MS: in a
 * process with one thread (no purger) this is where freed memory goes back. */
#define MAINTAIN_PERIOD_MS 50
void heap_maintain_if_due(heap_t *h)
{
    uint64_t now = os_now_ms();
    if (now - h->maintained_ms >= MAINTAIN_PERIOD_MS)
        heap_maintain(h, false, now);
}

/* Decay: give back memory that has been free longer than the purge delay. */
void heap_maintain(heap_t *h, bool force, uint64_t now)
{
    h->maintained_ms = now;
    long delay = option_purge_delay_ms;
    if (delay < 0 && !force)
        return;
    uint64_t older_than = force ? 0 : (now > (uint64_t)delay ? now - (uint64_t)delay : 1);
    uint64_t oldest_left = 0;
    page_retire_empty(h, !force);   /* empty pages become dirty slices, purged in turn */
    for (segment_t *seg = h->segments, *next; seg; seg = next) {
        next = seg->heap_next;
        if (seg->dirty_mask && (force || seg->dirty_since_ms <= older_than)) {
            if (segment_release_if_empty(seg, NULL))
                continue;
            segment_purge(seg, older_than, NULL);
        }
        if (seg->dirty_mask && seg->kind != SEGMENT_DONATED &&
            (oldest_left == 0 || seg->dirty_since_ms < oldest_left))
            oldest_left = seg->dirty_since_ms;
    }
    atomic_store_explicit(&h->dirty_since_ms, oldest_left, memory_order_relaxed);
    huge_cache_trim(force);
}

/* ---- thread exit ---- */

static void heap_thread_exit(void *arg)
{
    heap_t *h = arg;
    if (!h || tls_heap != h)
        return;
    heap_enter(h);
    heap_drain_remote(h);
    page_retire_empty(h, false);
    heap_maintain(h, false, os_now_ms());
    heap_leave(h);
    tls_heap = NULL;
    pthread_mutex_lock(&heaps_mutex);
    h->state = HEAP_ABANDONED;
    h->pool_next = abandoned_pool;
    abandoned_pool = h;
    atomic_fetch_sub_explicit(&live_heaps, 1, memory_order_relaxed);
    pthread_mutex_unlock(&heaps_mutex);
    purger_wake();   /* with one thread left the purger ends */
}

/* Claim an abandoned heap without a membarrier: adoption pops it under heaps_mutex, so
 * the adopter's first heap_enter sees this claim.  False if the heap is live. */
bool heap_claim_if_abandoned(heap_t *h)
{
    pthread_mutex_lock(&heaps_mutex);
    bool abandoned = h->state == HEAP_ABANDONED;
    if (abandoned)
        atomic_fetch_or_explicit(&h->claim, CLAIM_HELD, memory_order_relaxed);
    pthread_mutex_unlock(&heaps_mutex);
    return abandoned;
}

/* ---- fork: claim every other heap so none is mid-operation, as glibc locks arenas ----
 *
 * Lock order inside fork: glibc's stdio list lock, then crtheap's (claimers, heaps mutex,
 * every other heap's claim, huge mutex, registry mutex).  glibc runs the atfork prepare
 * handlers before it takes the stdio list lock itself, so a prepare handler holding
 * crtheap's locks while fork waits for that lock deadlocks against a thread that holds it
 * in fflush(NULL) and waits for a FILE lock whose owner waits in malloc.  The prepare
 * handler therefore takes the list lock first (it is recursive: fork takes it again and
 * releases it once in the parent; the child resets it), which is the order glibc's own
 * malloc follows.  A process with one thread has nobody to wait for: fork takes no lock
 * then, so fork from a signal handler that interrupted malloc, free or fork works. */

extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));
extern char __libc_single_threaded __attribute__((weak));

static bool fork_locked;   /* what the prepare handler took, for the parent and child */

static bool process_single_threaded(void)
{
    return &__libc_single_threaded != NULL && __libc_single_threaded;
}

static void fork_prepare(void)
{
    fork_locked = !process_single_threaded();
    if (!fork_locked)
        return;
    heap_get_or_init();   /* later prepare handlers may allocate on this thread */
    if (_IO_list_lock)
        _IO_list_lock();
    claim_fork_prepare();
    pthread_mutex_lock(&heaps_mutex);
    for (heap_t *h = heap_all_first(); h; h = h->all_next)
        if (h != tls_heap)
            heap_claim_raw(h, true);
    segment_fork_prepare();
    registry_lock();
}

static void fork_parent(void)
{
    if (!fork_locked)
        return;
    registry_unlock();
    segment_fork_parent();
    for (heap_t *h = heap_all_first(); h; h = h->all_next)
        if (h != tls_heap)
            heap_unclaim_locked(h);
    pthread_mutex_unlock(&heaps_mutex);
    claim_fork_parent();
    if (_IO_list_unlock)
        _IO_list_unlock();
}

/* The child has one thread: every other heap is abandoned, consistent (claimed by the
 * prepare handler), and adoptable.  glibc resets the stdio list lock itself.  After the
 * fork of a single-threaded process nothing was taken and every other heap is in the
 * pool already, so the child changes nothing (this thread may be in the middle of a
 * crtheap call that a signal handler's fork interrupted). */
static void fork_child(void)
{
    if (!fork_locked)
        return;
    purger_fork_child();
    claim_fork_child();
    registry_fork_child();
    segment_fork_child();
    pthread_mutex_init(&heaps_mutex, NULL);
    abandoned_pool = NULL;
    atomic_store(&live_heaps, tls_heap != NULL);
    for (heap_t *h = heap_all_first(); h; h = h->all_next) {
        if (h == tls_heap)
            continue;
        atomic_store(&h->busy, 0);
        atomic_store(&h->claim, heaps_diverted ? CLAIM_DIVERT : 0);
        h->state = HEAP_ABANDONED;
        h->pool_next = abandoned_pool;
        abandoned_pool = h;
    }
}
