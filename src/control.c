/* control.c — the entry points that read and change crtheap's options while the
 * program runs: crtheap_option_get/set and glibc's mallopt (the values and the
 * environment are options.c's).  A change that the purger must see wakes it. */
#define _GNU_SOURCE
#include "modules.h"
#include "crtheap.h"
#include <errno.h>
#include <malloc.h>
#include <pthread.h>

#define API __attribute__((visibility("default")))

API long crtheap_option_get(crtheap_option_t option)
{
    return option_value((unsigned)option);
}

/* The heaps take the slow paths while M_PERTURB fills or counting mode counts; the two
 * reasons and the diversion change under heaps_lock, or two calls could leave a reason on
 * with the heaps back on the fast paths.  (heaps_lock, not a lock of its own: fork takes
 * it, so a child forked during such a call does not inherit it held.) */
static void divert_update_locked(void)
{
    heap_set_diverted_locked(atomic_load(&option_perturb_byte) != 0 || counting());
}

API int crtheap_option_set(crtheap_option_t option, long value)
{
    if (option == CRTHEAP_OPTION_SHOW_STATS) {
        heaps_lock();
        int r = option_store((unsigned)option, value);
        if (r == 0) {
            atomic_store(&counting_mode, value != 0);
            divert_update_locked();
        }
        heaps_unlock();
        if (r == 0 && value)
            stats_show_at_exit();   /* atexit may allocate: outside heaps_lock */
        return r;
    }
    if (option_store((unsigned)option, value) != 0)
        return -1;
    os_event_signal(&decay_work, true);   /* the decay's timing or the purger's presence may have changed */
    return 0;
}

/* ---- glibc's mallopt: the parameters that have a meaning here return 1 ----
 *   M_TRIM_THRESHOLD  negative: no automatic release (as glibc stops trimming), else on
 *   M_MMAP_THRESHOLD  blocks from this size up (above the size classes) get a mapping
 *                     of their own; glibc's range, up to 32 MiB
 *   M_PERTURB         fill new blocks with ~byte and freed ones with byte, as glibc does
 *   M_TOP_PAD, M_MXFAST, M_ARENA_MAX, M_ARENA_TEST, M_CHECK_ACTION
 *                     accepted: there is no top chunk, no fastbins, one heap per thread,
 *                     and misuse is always diagnosed and aborts */
#define GLIBC_MMAP_THRESHOLD_MAX ((size_t)32 << 20)
#define GLIBC_MXFAST_MAX (80 * sizeof(size_t) / 4)

API int mallopt(int param, int value)
{
    options_init();
    switch (param) {
    case M_TRIM_THRESHOLD:
        if (value < 0)
            option_store(CRTHEAP_OPTION_PURGE_DELAY_MS, -1);
        else if (option_purge_delay_ms < 0)
            option_store(CRTHEAP_OPTION_PURGE_DELAY_MS, option_default(CRTHEAP_OPTION_PURGE_DELAY_MS));
        os_event_signal(&decay_work, true);
        return 1;
    case M_MMAP_THRESHOLD:
        if (value < 0 || (size_t)value > GLIBC_MMAP_THRESHOLD_MAX)
            return 0;
        option_mmap_threshold = (size_t)value;
        return 1;
    case M_PERTURB: {
        heaps_lock();
        atomic_store(&option_perturb_byte, value & 0xff);
        divert_update_locked();
        heaps_unlock();
        return 1;
    }
    case M_MXFAST:
        return value >= 0 && (size_t)value <= GLIBC_MXFAST_MAX;
    case M_TOP_PAD:
    case M_ARENA_MAX:
    case M_ARENA_TEST:
    case M_CHECK_ACTION:
        return 1;
    default:
        return 0;
    }
}
