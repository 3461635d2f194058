/* thread.c — the process around the heaps: the first allocation of the process and of
 * each thread, thread exit, and fork.
 *
 * fork's lock order: glibc's stdio list lock, then crtheap's (claimers, heaps mutex,
 * every other heap's claim, huge mutex, registry mutex).  glibc runs the atfork prepare
 * handlers before it takes the stdio list lock itself, so a prepare handler holding
 * crtheap's locks while fork waits for that lock deadlocks against a thread that holds it
 * in fflush(NULL) and waits for a FILE lock whose owner waits in malloc.  The prepare
 * handler therefore takes the list lock first (it is recursive: fork takes it again and
 * releases it once in the parent; the child resets it), which is the order glibc's own
 * malloc follows.  A process with one thread has nobody to wait for: fork takes no lock
 * then, so fork from a signal handler that interrupted malloc, free or fork works. */
#define _GNU_SOURCE
#include "modules.h"
#include <sched.h>

static pthread_key_t exit_key;
static _Atomic int init_state;   /* 0 none, 1 in progress, 2 done */

static void heap_thread_exit(void *arg);
static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

static void global_init(void)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&init_state, &expected, 1)) {
        while (atomic_load(&init_state) != 2)
            sched_yield();
        return;
    }
    registry_init_secret();
    options_init();
    sizeclass_check();
    heaps_lock();   /* as control.c: a crtheap_option_set meanwhile is not undone */
    if (option_show_stats) {   /* counting mode from the start: every heap is diverted */
        atomic_store(&counting_mode, 1);
        heap_set_diverted_locked(true);
    }
    heaps_unlock();
    atomic_store(&init_state, 2);
}

/* The calling thread's heap, made (or adopted) at its first allocation.  Not while
 * busy: it takes heaps_mutex. */
heap_t *heap_get_or_init(void)
{
    heap_t *h = thread_heap();
    if (h)
        return h;
    if (atomic_load_explicit(&init_state, memory_order_acquire) != 2)
        global_init();
    h = heap_acquire();
    if (!h)
        return NULL;
    tls_heap = h;
    count_thread();
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

/* ---- thread exit: nothing stranded, the heap waits whole for the next thread ---- */

static void heap_thread_exit(void *arg)
{
    heap_t *h = arg;
    if (!h || thread_heap() != h)
        return;
    heap_enter(h);
    heap_drain_remote(h);
    heap_retire_empty_pages(h, false);
    decay_heap(h, false, os_now_ms());
    heap_leave(h);
    tls_heap = &heap_none;
    heap_abandon_to_pool(h);
}

/* ---- fork ---- */

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
    if (!fork_locked) {
        mesh_fork_prepare(false);
        return;
    }
    heap_get_or_init();   /* later prepare handlers may allocate on this thread */
    if (_IO_list_lock)
        _IO_list_lock();
    claim_fork_prepare(thread_heap());
    mesh_fork_prepare(true);   /* under the claims: no meshing pass is half-way */
    segment_fork_prepare();
    registry_lock();
    overflow_fork_prepare();   /* a leaf lock: last */
}

static void fork_parent(void)
{
    mesh_fork_parent();   /* after the child's copy of the meshed pages */
    if (!fork_locked)
        return;
    overflow_fork_parent();
    registry_unlock();
    segment_fork_parent();
    claim_fork_parent(thread_heap());
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
    mesh_fork_child();   /* first: its meshed pages are still the parent's */
    if (!fork_locked)
        return;
    purger_fork_child();
    overflow_fork_child();
    registry_fork_child();
    segment_fork_child();
    claim_fork_child(thread_heap());
}
