/* <malloc.h> for code ported from Windows: the system's <malloc.h>, then what the
 * Microsoft C runtime's <malloc.h> adds — _HEAPINFO, _heapwalk and the CRT heap family
 * (from <crtheap.h>), and _malloca/_freea.  Reach it with
 *     cc file.c $(pkg-config --cflags --libs crtheap-msvc)
 * so that an unchanged `#include <malloc.h>` finds it first. */
#ifndef CRTHEAP_MSVC_MALLOC_H
#define CRTHEAP_MSVC_MALLOC_H

#include_next <malloc.h>
#include <stdlib.h>
#include <crtheap.h>

/* _malloca: a block on the stack when it is small (the runtime's threshold, 1 KiB with
 * its marker), else from the heap; _freea frees it in either case.  A marker before the
 * block says which, as in the runtime.  Like alloca, the stack block lives until the
 * calling function returns. */
#define _ALLOCA_S_THRESHOLD    1024
#define _ALLOCA_S_STACK_MARKER 0xCCCC
#define _ALLOCA_S_HEAP_MARKER  0xDDDD
#define _ALLOCA_S_MARKER_SIZE  16

static inline void *_MarkAllocaS(void *block, unsigned int marker)
{
    if (block) {
        *(unsigned int *)block = marker;
        block = (char *)block + _ALLOCA_S_MARKER_SIZE;
    }
    return block;
}

/* The heap half, with the overflow check the size plus its marker needs. */
static inline void *_crtheap_malloca_heap(size_t size)
{
    if (size > _HEAP_MAXREQ - _ALLOCA_S_MARKER_SIZE)
        return NULL;
    return _MarkAllocaS(malloc(size + _ALLOCA_S_MARKER_SIZE), _ALLOCA_S_HEAP_MARKER);
}

#define _malloca(size)                                                                        \
    ((size_t)(size) <= _ALLOCA_S_THRESHOLD - _ALLOCA_S_MARKER_SIZE                            \
         ? _MarkAllocaS(__builtin_alloca((size_t)(size) + _ALLOCA_S_MARKER_SIZE), _ALLOCA_S_STACK_MARKER) \
         : _crtheap_malloca_heap((size_t)(size)))

static inline void _freea(void *block)
{
    if (block) {
        char *marked = (char *)block - _ALLOCA_S_MARKER_SIZE;
        if (*(unsigned int *)marked == _ALLOCA_S_HEAP_MARKER)
            free(marked);
    }
}

#endif
