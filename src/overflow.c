/* overflow.c — requested sizes that do not fit in a block's side entry.
 *
 * A side entry records a live block's requested size as its slack (block size minus the
 * request) in one byte for classes up to 1 KiB, two above.  A plain malloc's slack
 * always fits: the widest gap between classes is a fifth of the block.  A few requests
 * leave more slack than an entry holds: a small aligned block in a class that the
 * alignment forces, or a block that _expand or realloc shrank in place.  Their entry
 * reads SIDE*_OVERFLOW and the requested size lives here, keyed by the block's address.
 *
 * An open-addressing table (linear probing, deletion by backward shift: no tombstones)
 * under one mutex, doubled on the OS when half full.  It is a leaf lock: nothing else is
 * taken while it is held.  The fast paths never come here: an OVERFLOW entry fails
 * free's fast test and takes the generic path, which drops the entry first.
 *
 * Above os.c and diag.c only. */
#define _GNU_SOURCE
#include "modules.h"
#include <pthread.h>

typedef struct overflow_slot {
    uintptr_t block;   /* 0: empty */
    size_t requested;
} overflow_slot_t;

static pthread_mutex_t overflow_mutex = PTHREAD_MUTEX_INITIALIZER;
static overflow_slot_t *slots;
static size_t slot_count;   /* a power of two, or 0 before the first entry */
static size_t used_count;

static size_t home_of(uintptr_t block, size_t count)
{
    return (size_t)((block >> 4) * 0x9E3779B97F4A7C15ull >> 20) & (count - 1);
}

/* Where `block` is, or the empty slot where it would go (caller holds the mutex). */
static size_t find_slot(uintptr_t block)
{
    size_t i = home_of(block, slot_count);
    while (slots[i].block != 0 && slots[i].block != block)
        i = (i + 1) & (slot_count - 1);
    return i;
}

static bool grow_locked(void)
{
    size_t count = slot_count ? 2 * slot_count : 256;
    overflow_slot_t *fresh = os_map(count * sizeof *fresh);
    if (!fresh)
        return false;
    overflow_slot_t *old = slots;
    size_t old_count = slot_count;
    slots = fresh;
    slot_count = count;
    for (size_t k = 0; k < old_count; k++)
        if (old[k].block)
            slots[find_slot(old[k].block)] = old[k];
    if (old)
        os_unmap(old, old_count * sizeof *old);
    return true;
}

/* Record the requested size of live block p; false when no memory is left for it. */
bool overflow_put(const void *p, size_t requested)
{
    uintptr_t block = (uintptr_t)p;
    pthread_mutex_lock(&overflow_mutex);
    bool ok = true;
    if (2 * (used_count + 1) > slot_count)
        ok = grow_locked();
    if (ok) {
        size_t i = find_slot(block);
        used_count += slots[i].block == 0;
        slots[i].block = block;
        slots[i].requested = requested;
    }
    pthread_mutex_unlock(&overflow_mutex);
    return ok;
}

/* The requested size recorded for p, or 0 when none is (a damaged side entry). */
size_t overflow_get(const void *p)
{
    pthread_mutex_lock(&overflow_mutex);
    size_t n = 0;
    if (slot_count) {
        size_t i = find_slot((uintptr_t)p);
        n = slots[i].block ? slots[i].requested : 0;
    }
    pthread_mutex_unlock(&overflow_mutex);
    return n;
}

/* Drop p's entry, if it has one. */
void overflow_drop(const void *p)
{
    pthread_mutex_lock(&overflow_mutex);
    if (slot_count) {
        size_t i = find_slot((uintptr_t)p);
        if (slots[i].block) {
            /* backward shift: pull later entries of the run into the hole when their
             * home does not lie cyclically after it */
            size_t hole = i, j = i;
            for (;;) {
                j = (j + 1) & (slot_count - 1);
                if (slots[j].block == 0)
                    break;
                size_t home = home_of(slots[j].block, slot_count);
                bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
                if (!stays) {
                    slots[hole] = slots[j];
                    hole = j;
                }
            }
            slots[hole].block = 0;
            used_count--;
        }
    }
    pthread_mutex_unlock(&overflow_mutex);
}

void overflow_fork_prepare(void) { pthread_mutex_lock(&overflow_mutex); }
void overflow_fork_parent(void) { pthread_mutex_unlock(&overflow_mutex); }
void overflow_fork_child(void) { pthread_mutex_init(&overflow_mutex, NULL); }
