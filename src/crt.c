/* crt.c — the Microsoft C runtime heap family: _msize, _expand, _recalloc, the
 * _aligned_* functions, new mode and new handler, and the invalid-parameter protocol.
 * Thin wrappers, each checking its arguments as the Universal CRT does. */
#include "modules.h"
#include "crtheap.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define API __attribute__((visibility("default")))

static _Atomic(_PNH) new_handler;
static _Atomic int new_mode;

API int _set_new_mode(int mode)
{
    if (mode != 0 && mode != 1) {
        crt_invalid_parameter(EINVAL);
        return -1;
    }
    return atomic_exchange(&new_mode, mode);
}

API int _query_new_mode(void) { return atomic_load(&new_mode); }
API _PNH _set_new_handler(_PNH handler) { return atomic_exchange(&new_handler, handler); }
API _PNH _query_new_handler(void) { return atomic_load(&new_handler); }

API int _callnewh(size_t size)
{
    _PNH handler = atomic_load(&new_handler);
    return handler ? handler(size) : 0;
}

/* A malloc-family call failed for `size`: in new mode 1, true when the new handler
 * made room and the call should be retried. */
bool crt_retry_after_new_handler(size_t size)
{
    return atomic_load_explicit(&new_mode, memory_order_relaxed) == 1 && _callnewh(size) != 0;
}

API size_t _msize(void *block)
{
    if (!block) {
        crt_invalid_parameter(EINVAL);
        return (size_t)-1;
    }
    return crt_requested_size(block, "_msize");
}

API void *_expand(void *block, size_t size)
{
    if (!block) {
        crt_invalid_parameter(EINVAL);
        return NULL;
    }
    if (size > _HEAP_MAXREQ) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = crt_realloc(block, size, "_expand", true);
    if (!p)
        errno = ENOMEM;
    return p;
}

API void *_recalloc(void *block, size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n) || n > _HEAP_MAXREQ) {
        errno = ENOMEM;
        return NULL;
    }
    size_t old = block ? crt_requested_size(block, "_recalloc") : 0;
    void *p = realloc(block, n);
    size_t now = p ? crt_requested_size(p, "_recalloc") : 0;   /* malloc(0) holds one byte */
    if (now > old)
        memset((char *)p + old, 0, now - old);
    return p;
}

/* ---- _aligned_*: a header before the aligned pointer leads back to the block ---- */

typedef struct aligned_header {
    void *block;          /* what malloc returned */
    size_t requested;     /* the size asked for */
    size_t runtime_total; /* what the Universal CRT's underlying block would hold: requested
                             plus runtime_room() of the allocation's alignment and offset */
    uintptr_t check;      /* live: block ^ user pointer ^ secret; freed: user pointer ^
                             secret ^ ALIGNED_FREED (the block's first bytes may be reused
                             by the free list, so the freed mark depends on p only) */
} aligned_header_t;

#define ALIGNED_FREED ((uintptr_t)0xa11f7eedull)

/* The Universal CRT adds a pointer, the gap that keeps it aligned below p + offset, and
 * alignment - 1 (alignments below a pointer's rounded up) to the size it asks for, and
 * _aligned_msize subtracts the same room computed from the arguments it is given. */
static size_t runtime_room(size_t alignment, size_t offset)
{
    size_t gap = (0 - offset) & (sizeof(void *) - 1);
    return sizeof(void *) + gap + (alignment > sizeof(void *) ? alignment : sizeof(void *)) - 1;
}

static aligned_header_t *aligned_header_of(void *p)
{
    return (aligned_header_t *)(((uintptr_t)p - sizeof(aligned_header_t)) & ~(uintptr_t)7);
}

static aligned_header_t *aligned_checked_header(void *p, const char *call)
{
    aligned_header_t *hdr = aligned_header_of(p);
    if (!segment_of(hdr))
        fatal_pointer(call, p, "invalid pointer");
    if (hdr->check != ((uintptr_t)hdr->block ^ (uintptr_t)p ^ heap_secret))
        fatal_pointer(call, p, hdr->check == ((uintptr_t)p ^ heap_secret ^ ALIGNED_FREED) ? "double free"
                                                                                         : "invalid pointer");
    return hdr;
}

/* The Universal CRT's checks: alignment a power of two, where 0 counts as one (it is
 * rounded up to a pointer's, as every alignment below it is); a non-zero offset below
 * the size. */
static bool aligned_arguments_ok(size_t size, size_t *alignment, size_t offset)
{
    if ((*alignment & (*alignment - 1)) != 0 || (offset != 0 && offset >= size)) {
        crt_invalid_parameter(EINVAL);
        return false;
    }
    if (*alignment < sizeof(void *))
        *alignment = sizeof(void *);
    return true;
}

API void *_aligned_offset_malloc(size_t size, size_t alignment, size_t offset)
{
    size_t room = runtime_room(alignment, offset);
    if (!aligned_arguments_ok(size, &alignment, offset))
        return NULL;
    size_t extra = alignment + sizeof(aligned_header_t) + (offset & (alignment - 1)), total;
    if (__builtin_add_overflow(size, extra, &total) || total > _HEAP_MAXREQ) {
        errno = ENOMEM;
        return NULL;
    }
    uint8_t *block = malloc(total);
    if (!block)
        return NULL;
    uintptr_t lowest = (uintptr_t)block + sizeof(aligned_header_t) + offset;
    uint8_t *p = (uint8_t *)(((lowest + alignment - 1) & ~(uintptr_t)(alignment - 1)) - offset);
    aligned_header_t *hdr = aligned_header_of(p);
    hdr->block = block;
    hdr->requested = size;
    hdr->runtime_total = size + room;
    hdr->check = (uintptr_t)block ^ (uintptr_t)p ^ heap_secret;
    return p;
}

API void *_aligned_malloc(size_t size, size_t alignment)
{
    return _aligned_offset_malloc(size, alignment, 0);
}

API void _aligned_free(void *p)
{
    if (!p)
        return;
    aligned_header_t *hdr = aligned_checked_header(p, "_aligned_free");
    void *block = hdr->block;
    hdr->check = (uintptr_t)p ^ heap_secret ^ ALIGNED_FREED;   /* a second _aligned_free of p is caught */
    crt_free(block, "_aligned_free");
}

/* As the Universal CRT computes it: the underlying block's size less the room that this
 * alignment and offset would need, so it is the requested size when they are the ones
 * the block was allocated with (any alignment is taken here, as the runtime takes it). */
API size_t _aligned_msize(void *p, size_t alignment, size_t offset)
{
    if (!p) {
        crt_invalid_parameter(EINVAL);
        return (size_t)-1;
    }
    return aligned_checked_header(p, "_aligned_msize")->runtime_total - runtime_room(alignment, offset);
}

/* Move to a new aligned block, keep the data, zero what grew when asked to. */
static void *aligned_resize(void *p, size_t size, size_t alignment, size_t offset, bool zero_growth,
                            const char *call)
{
    if (p && size == 0) {
        aligned_checked_header(p, call);
        _aligned_free(p);
        return NULL;
    }
    if (!aligned_arguments_ok(size, &alignment, offset))
        return NULL;
    size_t old = 0, usable = 0;
    if (p) {
        aligned_header_t *hdr = aligned_checked_header(p, call);
        old = hdr->requested;
        /* the bytes from p to the end of its block are the program's: keep them all */
        usable = crt_usable_size(hdr->block, call) - (size_t)((uint8_t *)p - (uint8_t *)hdr->block);
    }
    uint8_t *q = _aligned_offset_malloc(size, alignment, offset);
    if (!q)
        return NULL;
    if (p)
        memcpy(q, p, usable < size ? usable : size);
    if (zero_growth && size > old)
        memset(q + old, 0, size - old);
    if (p)
        _aligned_free(p);
    return q;
}

API void *_aligned_offset_realloc(void *p, size_t size, size_t alignment, size_t offset)
{
    return aligned_resize(p, size, alignment, offset, false, "_aligned_offset_realloc");
}

API void *_aligned_realloc(void *p, size_t size, size_t alignment)
{
    return aligned_resize(p, size, alignment, 0, false, "_aligned_realloc");
}

static void *aligned_recalloc(void *p, size_t count, size_t size, size_t alignment, size_t offset,
                              const char *call)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return aligned_resize(p, n, alignment, offset, true, call);
}

API void *_aligned_offset_recalloc(void *p, size_t count, size_t size, size_t alignment, size_t offset)
{
    return aligned_recalloc(p, count, size, alignment, offset, "_aligned_offset_recalloc");
}

API void *_aligned_recalloc(void *p, size_t count, size_t size, size_t alignment)
{
    return aligned_recalloc(p, count, size, alignment, 0, "_aligned_recalloc");
}
