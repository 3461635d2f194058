/* claim.c — exclusive use of another thread's heap without slowing its owner, and the
 * list of every heap: the pool of abandoned heaps, the count of live ones, diversion.
 *
 * Owner (heap_enter/heap_leave, inlined in every malloc and free):
 *     busy = 1;  compiler barrier;  if (claim) wait;   ...work...;   busy = 0 (release)
 * Claimer:
 *     claim |= CLAIM_HELD (CAS, one claimer at a time);  membarrier();  wait until busy == 0
 * membarrier(2) puts a full fence on every running thread, so either the owner's
 * busy = 1 is visible to the claimer, or the owner's later load of `claim` sees the bit:
 * the owner pays two plain stores and a load, no atomic read-modify-write.
 *
 * An abandoned heap (its thread exited) is claimed under heaps_mutex instead: adoption
 * pops it from the pool under the same mutex, so the adopter's first heap_enter sees the
 * claim, and no membarrier is needed. */
#include "modules.h"
#include <sched.h>

/* x86's pause instruction while the wait is short (other architectures spin plainly),
 * then the scheduler. */
#define SPINS_BEFORE_YIELD 64
#define CLAIM_GIVE_UP_SPINS 1000   /* a claim that need not wait stops after this many */

static void pause_briefly(unsigned spins)
{
    if (spins < SPINS_BEFORE_YIELD) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        sched_yield();
    }
}

/* One claimer at a time (_heapmin, _heapchk, _heapset, the purger); fork's prepare
 * handler takes this lock so that no claimer is half-way through a heap, the forking
 * thread's own included, when the child is made. */
static pthread_mutex_t claimers = PTHREAD_MUTEX_INITIALIZER;

/* ---- every heap: the list, the pool of abandoned heaps, the live count ---- */

static pthread_mutex_t heaps_mutex = PTHREAD_MUTEX_INITIALIZER;  /* pool, list, metadata */
static _Atomic(heap_t *) all_heaps;
static heap_t *abandoned_pool;
static _Atomic int live_heaps;   /* heaps whose threads are alive (changed under heaps_mutex) */
_Atomic bool heaps_diverted;     /* new heaps start with CLAIM_DIVERT (written under heaps_mutex) */

void heaps_lock(void)   { pthread_mutex_lock(&heaps_mutex); }
void heaps_unlock(void) { pthread_mutex_unlock(&heaps_mutex); }

heap_t *heap_all_first(void) { return atomic_load_explicit(&all_heaps, memory_order_acquire); }
int heap_live_count(void) { return atomic_load_explicit(&live_heaps, memory_order_relaxed); }

/* A heap for a new thread: an abandoned one, or NULL (the caller makes one and lists
 * it with heap_list_add).  Caller holds heaps_mutex. */
heap_t *heap_pool_take(void)
{
    heap_t *h = abandoned_pool;
    if (h) {
        abandoned_pool = h->pool_next;
        h->pool_next = NULL;
    }
    return h;
}

/* A new heap joins the list of every heap (it is never removed).  Caller holds heaps_mutex. */
void heap_list_add(heap_t *h)
{
    h->all_next = atomic_load_explicit(&all_heaps, memory_order_relaxed);
    atomic_store_explicit(&all_heaps, h, memory_order_release);
}

/* The calling thread now owns h.  Caller holds heaps_mutex. */
void heap_mark_live(heap_t *h)
{
    h->state = HEAP_LIVE;
    if (heaps_diverted)
        atomic_fetch_or(&h->claim, CLAIM_DIVERT);
    atomic_fetch_add_explicit(&live_heaps, 1, memory_order_relaxed);
}

/* h's thread is gone: the next new thread adopts it whole. */
void heap_abandon_to_pool(heap_t *h)
{
    heaps_lock();
    h->state = HEAP_ABANDONED;
    h->pool_next = abandoned_pool;
    abandoned_pool = h;
    atomic_fetch_sub_explicit(&live_heaps, 1, memory_order_relaxed);
    heaps_unlock();
    os_event_signal(&decay_work, true);   /* with one thread left the purger ends */
}

/* Send every heap's operations to the slow paths, or let them back on the fast ones: the
 * owners see CLAIM_DIVERT at their next heap_try_enter, at no cost while it is off. */
void heap_set_diverted_locked(bool on)
{
    heaps_diverted = on;
    for (heap_t *h = heap_all_first(); h; h = h->all_next) {
        if (on)
            atomic_fetch_or(&h->claim, CLAIM_DIVERT);
        else
            atomic_fetch_and(&h->claim, ~CLAIM_DIVERT);
    }
}

void heap_set_diverted(bool on)
{
    heaps_lock();
    heap_set_diverted_locked(on);
    heaps_unlock();
}

/* ---- claims ---- */

static void heap_unclaim_locked(heap_t *h);

/* Claim an abandoned heap without a membarrier (see the top).  False if it is live. */
static bool heap_claim_if_abandoned(heap_t *h)
{
    heaps_lock();
    bool abandoned = h->state == HEAP_ABANDONED;
    if (abandoned)
        atomic_fetch_or_explicit(&h->claim, CLAIM_HELD, memory_order_relaxed);
    heaps_unlock();
    return abandoned;
}

/* The handshake itself, for any heap.  The claimer sets CLAIM_HELD and keeps
 * CLAIM_DIVERT as it is. */
static bool heap_claim_raw(heap_t *h, bool wait)
{
    unsigned spins = 0;
    int c = atomic_load_explicit(&h->claim, memory_order_relaxed);
    for (;;) {
        if (!(c & CLAIM_HELD) && atomic_compare_exchange_weak(&h->claim, &c, c | CLAIM_HELD))
            break;
        if (!wait)
            return false;
        pause_briefly(spins++);
        c = atomic_load_explicit(&h->claim, memory_order_relaxed);
    }
    os_membarrier();
    for (spins = 0; atomic_load_explicit(&h->busy, memory_order_acquire); spins++) {
        if (!wait && spins > CLAIM_GIVE_UP_SPINS) {
            heap_unclaim_locked(h);
            return false;
        }
        pause_briefly(spins);
    }
    return true;
}

/* The claim itself; the caller holds `claimers`. */
static bool heap_claim_locked(heap_t *h, bool wait)
{
    if (heap_claim_if_abandoned(h))
        return true;   /* no owner: busy is 0 and stays 0 until an adopter waits on us */
    return heap_claim_raw(h, wait);
}

bool heap_claim(heap_t *h, bool wait)
{
    if (wait)
        pthread_mutex_lock(&claimers);
    else if (pthread_mutex_trylock(&claimers) != 0)
        return false;
    if (!heap_claim_locked(h, wait)) {
        pthread_mutex_unlock(&claimers);
        return false;
    }
    return true;
}

void heap_unclaim(heap_t *h)
{
    heap_unclaim_locked(h);
    pthread_mutex_unlock(&claimers);
}

static void heap_unclaim_locked(heap_t *h)
{
    atomic_fetch_and_explicit(&h->claim, ~CLAIM_HELD, memory_order_release);
}

/* The owner found its heap claimed (or diverted): step out while it is held, step back
 * in.  A diverted heap that nobody holds returns at once, entered. */
void heap_wait_unclaimed(heap_t *h)
{
    do {
        atomic_store_explicit(&h->busy, 0, memory_order_release);
        for (unsigned spins = 0; atomic_load_explicit(&h->claim, memory_order_acquire) & CLAIM_HELD; spins++)
            pause_briefly(spins);
        atomic_store_explicit(&h->busy, 1, memory_order_relaxed);
        compiler_barrier();
    } while (atomic_load_explicit(&h->claim, memory_order_acquire) & CLAIM_HELD);
}

/* Every heap claimed at once, for work that spans heaps (mesh.c).  Owners never wait
 * for another heap while busy, so claiming one heap after another cannot deadlock.
 * Returns the first heap claimed: the list from there on is what is held (a thread that
 * starts meanwhile puts its new heap before it, unclaimed, and owns its segments). */
heap_t *heap_claim_all(void)
{
    pthread_mutex_lock(&claimers);
    heap_t *first = heap_all_first();
    for (heap_t *h = first; h; h = h->all_next)
        heap_claim_locked(h, true);
    return first;
}

void heap_unclaim_all(heap_t *first)
{
    for (heap_t *h = first; h; h = h->all_next)
        heap_unclaim_locked(h);
    pthread_mutex_unlock(&claimers);
}

/* ---- fork (thread.c's handlers call these in the lock order of docs/design.md) ---- */

/* No claimer half-way through a heap, the pool still, every heap but `self` claimed. */
void claim_fork_prepare(heap_t *self)
{
    pthread_mutex_lock(&claimers);
    heaps_lock();
    for (heap_t *h = heap_all_first(); h; h = h->all_next)
        if (h != self)
            heap_claim_raw(h, true);
}

void claim_fork_parent(heap_t *self)
{
    for (heap_t *h = heap_all_first(); h; h = h->all_next)
        if (h != self)
            heap_unclaim_locked(h);
    heaps_unlock();
    pthread_mutex_unlock(&claimers);
}

/* The child has one thread: every heap but `self` is abandoned, consistent (claimed by
 * the prepare handler), and adoptable. */
void claim_fork_child(heap_t *self)
{
    pthread_mutex_init(&claimers, NULL);
    pthread_mutex_init(&heaps_mutex, NULL);
    abandoned_pool = NULL;
    atomic_store(&live_heaps, self != NULL);
    for (heap_t *h = heap_all_first(); h; h = h->all_next) {
        if (h == self)
            continue;
        atomic_store(&h->busy, 0);
        atomic_store(&h->claim, heaps_diverted ? CLAIM_DIVERT : 0);
        h->state = HEAP_ABANDONED;
        h->pool_next = abandoned_pool;
        abandoned_pool = h;
    }
}
