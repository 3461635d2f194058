/* release.c — giving memory back to the OS, and counting it honestly.
 *
 * Every byte crtheap returns to the kernel goes through here: ranges released while a
 * heap is claimed are gathered into one batch and handed over with one call before the
 * claim ends; single ranges and whole mappings go at once.  Only what was resident
 * counts as released (mincore(2) asks first), so a range that an earlier trim already
 * gave back is not counted again: `released` in the statistics, crtheap_trim's result
 * and malloc_trim's answer say what really left RSS.  Every range is released all the
 * same: a page the kernel swapped out reads as not resident, yet still holds data that
 * a slice marked clean (known zero) must not keep.
 *
 * Below page.c and segment.c, above os.c only. */
#define _GNU_SOURCE
#include "modules.h"
#include <errno.h>
#include <sys/uio.h>

static _Atomic size_t released_total;   /* resident bytes given back since start */
static _Atomic int release_errno;       /* last errno of a release the kernel refused */

static void release_note_error(int e)
{
    atomic_store(&release_errno, e);
}

static size_t release_counted(size_t resident)
{
    if (resident)
        atomic_fetch_add_explicit(&released_total, resident, memory_order_relaxed);
    return resident;
}

void release_flush(release_batch_t *batch)
{
    if (batch->count && os_release_many(batch->ranges, batch->count) != 0)
        release_note_error(errno);
    batch->count = 0;
}

/* Release [start, end) with the batch (NULL: at once); adjacent ranges merge.  Returns
 * the bytes of it that were resident. */
size_t release_range(release_batch_t *batch, uintptr_t start, uintptr_t end)
{
    if (end <= start)
        return 0;
    size_t resident = os_resident_bytes((void *)start, end - start);
    if (!batch) {
        if (os_release((void *)start, end - start) != 0) {
            release_note_error(errno);
            return 0;
        }
        return release_counted(resident);
    }
    struct iovec *last = batch->count ? &batch->ranges[batch->count - 1] : NULL;
    if (last && (uintptr_t)last->iov_base + last->iov_len == start) {
        last->iov_len += end - start;
        return release_counted(resident);
    }
    if (batch->count == RELEASE_BATCH_RANGES)
        release_flush(batch);
    batch->ranges[batch->count].iov_base = (void *)start;
    batch->ranges[batch->count].iov_len = end - start;
    batch->count++;
    return release_counted(resident);
}

/* Unmap [p, p + size); returns the bytes of it that were resident. */
size_t release_unmap(void *p, size_t size)
{
    size_t resident = os_resident_bytes(p, size);
    if (os_unmap(p, size) != 0) {
        release_note_error(errno);
        return 0;
    }
    return release_counted(resident);
}

void release_count(size_t bytes)
{
    release_counted(bytes);
}

size_t release_total(void)
{
    return atomic_load_explicit(&released_total, memory_order_relaxed);
}

/* The errno of the last refused release since the previous call, or 0. */
int release_take_error(void)
{
    return atomic_exchange(&release_errno, 0);
}
