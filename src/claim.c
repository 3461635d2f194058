/* claim.c — exclusive use of another thread's heap without slowing its owner.
 *
 * Owner (heap_enter/heap_leave, inlined in every malloc and free):
 *     busy = 1;  compiler barrier;  if (claim) wait;   ...work...;   busy = 0 (release)
 * Claimer:
 *     claim = 1 (CAS, one claimer at a time);  membarrier();  wait until busy == 0
 * membarrier(2) puts a full fence on every running thread, so either the owner's
 * busy = 1 is visible to the claimer, or the owner's later load of `claim` sees 1:
 * the owner pays two plain stores and a load, no atomic read-modify-write. */
#include "internal.h"
#include <sched.h>

static void pause_briefly(unsigned spins)
{
    if (spins < 64)
        __builtin_ia32_pause();
    else
        sched_yield();
}

/* One claimer at a time (_heapmin, _heapchk, _heapset, the purger); fork's prepare
 * handler takes this lock so that no claimer is half-way through a heap, the forking
 * thread's own included, when the child is made. */
static pthread_mutex_t claimers = PTHREAD_MUTEX_INITIALIZER;

void claim_fork_prepare(void) { pthread_mutex_lock(&claimers); }
void claim_fork_parent(void)  { pthread_mutex_unlock(&claimers); }
void claim_fork_child(void)   { pthread_mutex_init(&claimers, NULL); }

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

/* The claim itself; the caller holds `claimers` (or is fork's prepare handler). */
bool heap_claim_locked(heap_t *h, bool wait)
{
    if (heap_claim_if_abandoned(h))
        return true;   /* no owner: busy is 0 and stays 0 until an adopter waits on us */
    return heap_claim_raw(h, wait);
}

/* The handshake itself, for any heap (fork's prepare handler calls it directly).  The
 * claimer sets CLAIM_HELD and keeps CLAIM_DIVERT as it is. */
bool heap_claim_raw(heap_t *h, bool wait)
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
        if (!wait && spins > 1000) {
            heap_unclaim_locked(h);
            return false;
        }
        pause_briefly(spins);
    }
    return true;
}

void heap_unclaim_locked(heap_t *h)
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
