/* registry.c — every segment crtheap owns: a bitmap over the address space (one bit per
 * 4 MiB, answering "is this crtheap memory?" in one load) and an address-ordered list
 * that _heapwalk, _heapchk, _heapmin and the statistics traverse. */
#include "modules.h"
#include <errno.h>

/* 2^25 bits for a 47-bit address space: 4 MiB of .bss that only becomes resident
 * where segments exist. */
uint64_t segment_bitmap[1u << (ADDRESS_BITS - SEGMENT_SHIFT - 6)];

/* The secret that segment cookies and _aligned_ headers are xored with, so that stray
 * data does not pass for them.  Odd, never 0. */
uint64_t heap_secret;

void registry_init_secret(void)
{
    if (!os_random_bytes(&heap_secret, sizeof heap_secret))
        heap_secret = (uint64_t)(uintptr_t)&heap_secret * 0x9E3779B97F4A7C15ull;
    heap_secret |= 1;
}

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static segment_t *registry_head;
static _Atomic size_t segment_count;

size_t registry_segment_count(void) { return atomic_load_explicit(&segment_count, memory_order_relaxed); }

/* Segments whose blocks lie outside their header's 4 MiB slot — donated memory
 * (_heapadd) and huge blocks aligned to 4 MiB or more — are found by a scan of this
 * table, which only runs when the bitmap says "not ours". */
static segment_t *donated[DONATED_MAX];
_Atomic size_t donated_count;

void registry_lock(void)   { pthread_mutex_lock(&registry_mutex); }
void registry_unlock(void) { pthread_mutex_unlock(&registry_mutex); }
segment_t *registry_first(void) { return registry_head; }

void registry_fork_child(void)
{
    pthread_mutex_init(&registry_mutex, NULL);
}

static void bitmap_set(uintptr_t a, bool on)
{
    uintptr_t i = a >> SEGMENT_SHIFT;
    if (on)
        __atomic_fetch_or(&segment_bitmap[i >> 6], 1ull << (i & 63), __ATOMIC_RELEASE);
    else
        __atomic_fetch_and(&segment_bitmap[i >> 6], ~(1ull << (i & 63)), __ATOMIC_RELEASE);
}

segment_t *donated_segment_of(const void *p)
{
    size_t n = atomic_load_explicit(&donated_count, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        segment_t *seg = donated[i];
        if ((const uint8_t *)p >= segment_first_byte(seg) && (const uint8_t *)p < seg->base + seg->map_size)
            return seg;
    }
    return NULL;
}

/* Caller holds the registry lock. */
void registry_add(segment_t *seg)
{
    segment_t **link = &registry_head, *prev = NULL;
    while (*link && segment_first_byte(*link) < segment_first_byte(seg)) {
        prev = *link;
        link = &(*link)->reg_next;
    }
    atomic_fetch_add_explicit(&segment_count, 1, memory_order_relaxed);
    seg->reg_next = *link;
    seg->reg_prev = prev;
    if (*link)
        (*link)->reg_prev = seg;
    *link = seg;
    if (segment_outside_slot(seg)) {
        size_t n = atomic_load_explicit(&donated_count, memory_order_relaxed);
        if (n < DONATED_MAX) {
            donated[n] = seg;
            atomic_store_explicit(&donated_count, n + 1, memory_order_release);
        }
    }
    if (seg->kind != SEGMENT_DONATED)
        bitmap_set((uintptr_t)seg, true);
}

bool registry_has_room(void)
{
    return atomic_load_explicit(&donated_count, memory_order_relaxed) < DONATED_MAX;
}

/* Caller holds the registry lock.  Donated segments are never removed. */
void registry_remove(segment_t *seg)
{
    atomic_fetch_sub_explicit(&segment_count, 1, memory_order_relaxed);
    bitmap_set((uintptr_t)seg, false);
    size_t n = atomic_load_explicit(&donated_count, memory_order_relaxed);
    for (size_t i = 0; i < n; i++) {
        if (donated[i] == seg) {
            donated[i] = donated[n - 1];
            atomic_store_explicit(&donated_count, n - 1, memory_order_release);
            break;
        }
    }
    if (seg->reg_prev)
        seg->reg_prev->reg_next = seg->reg_next;
    else
        registry_head = seg->reg_next;
    if (seg->reg_next)
        seg->reg_next->reg_prev = seg->reg_prev;
    seg->reg_next = seg->reg_prev = NULL;
}
