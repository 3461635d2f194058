/* crtheap.h — the Microsoft C runtime heap API on Linux, and crtheap's own controls.
 *
 * Link with -lcrtheap (or LD_PRELOAD=libcrtheap.so) and the standard malloc family is
 * crtheap's as well; this header adds what <stdlib.h> and <malloc.h> do not declare. */
#ifndef CRTHEAP_H
#define CRTHEAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <wchar.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- The CRT heap family, with Microsoft's names, constants and types ---- */
#define _HEAPEMPTY    (-1)
#define _HEAPOK       (-2)
#define _HEAPBADBEGIN (-3)
#define _HEAPBADNODE  (-4)
#define _HEAPEND      (-5)
#define _HEAPBADPTR   (-6)
#define _FREEENTRY    0
#define _USEDENTRY    1
#define _HEAP_MAXREQ  ((size_t)0xFFFFFFFFFFFFFFE0ull)

typedef struct _heapinfo {
    int *_pentry;   /* the entry: NULL to start a walk */
    size_t _size;   /* requested size of a used block, byte size of a free one */
    int _useflag;   /* _USEDENTRY or _FREEENTRY */
} _HEAPINFO;

typedef int (*_PNH)(size_t);
typedef void (*_invalid_parameter_handler)(const wchar_t *expression, const wchar_t *function,
                                           const wchar_t *file, unsigned int line,
                                           uintptr_t reserved);

int _heapmin(void);
int _heapwalk(_HEAPINFO *entry);
int _heapchk(void);
int _heapset(unsigned int fill);
int _heapadd(void *memory, size_t size);
size_t _msize(void *block);
void *_expand(void *block, size_t size);
void *_recalloc(void *block, size_t count, size_t size);

void *_aligned_malloc(size_t size, size_t alignment);
void *_aligned_offset_malloc(size_t size, size_t alignment, size_t offset);
void *_aligned_realloc(void *block, size_t size, size_t alignment);
void *_aligned_offset_realloc(void *block, size_t size, size_t alignment, size_t offset);
void *_aligned_recalloc(void *block, size_t count, size_t size, size_t alignment);
void *_aligned_offset_recalloc(void *block, size_t count, size_t size, size_t alignment,
                               size_t offset);
void _aligned_free(void *block);
size_t _aligned_msize(void *block, size_t alignment, size_t offset);

int _set_new_mode(int mode);
int _query_new_mode(void);
_PNH _set_new_handler(_PNH handler);
_PNH _query_new_handler(void);
int _callnewh(size_t size);

_invalid_parameter_handler _set_invalid_parameter_handler(_invalid_parameter_handler handler);
_invalid_parameter_handler _get_invalid_parameter_handler(void);

/* ---- C23 and glibc entry points that older headers may lack ---- */
void free_sized(void *block, size_t size);
void free_aligned_sized(void *block, size_t alignment, size_t size);

/* ---- crtheap's own API ---- */

/* Release every free page of every thread's heap; returns the bytes given back. */
size_t crtheap_trim(void);

/* Hand the calling thread's queued cross-thread frees and empty pages back to its heap
 * and the OS; cheap enough to call at the end of a request. */
void crtheap_collect(void);

typedef enum crtheap_option {
    CRTHEAP_OPTION_PURGE_DELAY_MS,  /* free memory older than this goes back to the OS;
                                       0 = at once, -1 = only on _heapmin (env CRTHEAP_PURGE_DELAY_MS) */
    CRTHEAP_OPTION_HUGE_CACHE_MB,   /* bytes of freed huge blocks kept for reuse (env CRTHEAP_HUGE_CACHE_MB) */
    CRTHEAP_OPTION_PURGER,          /* 1: a background thread applies the decay to heaps whose threads
                                       sleep (only while two threads have heaps); 0: only the threads'
                                       own allocations do (env CRTHEAP_PURGER) */
    CRTHEAP_OPTION_SHOW_STATS,      /* 1: count every malloc, free and realloc (every call then takes the
                                       slow path) and print statistics on stderr at exit if
                                       still 1 then (env CRTHEAP_SHOW_STATS) */
    CRTHEAP_OPTION_MESH,            /* 1 (default): _heapmin, crtheap_trim and malloc_trim let OS pages
                                       of small blocks whose live bytes do not overlap share one
                                       physical page, where writes from system calls wait while a
                                       page is copied; 2: also where only the program's own writes
                                       wait and a system call writing there fails with EFAULT;
                                       0: never (env CRTHEAP_MESH; see crtheap_mesh(3)) */
    CRTHEAP_OPTION_MESH_DECAY_MS,   /* -1 (default): only the trims mesh; n >= 0: the background thread
                                       also meshes after its decay passes, at most every n ms (every
                                       heap waits while it does; env CRTHEAP_MESH_DECAY_MS) */
    CRTHEAP_OPTION_COUNT
} crtheap_option_t;

long crtheap_option_get(crtheap_option_t option);
int crtheap_option_set(crtheap_option_t option, long value); /* 0, or -1 with EINVAL */

#define CRTHEAP_SIZE_CLASSES 64

typedef struct crtheap_class_stats {
    size_t block_size;     /* bytes per block of this class (0: unused slot) */
    size_t blocks_in_use;  /* blocks handed out */
    size_t pages;          /* pages that serve this class */
} crtheap_class_stats_t;

typedef struct crtheap_stats {
    size_t in_use;         /* usable bytes of live blocks */
    size_t committed;      /* bytes mapped and not known to be released (upper bound on RSS) */
    size_t resident;       /* bytes of the heap's regions resident in memory now (mincore) */
    size_t mapped;         /* bytes of address space mapped from the OS */
    size_t released;       /* bytes given back to the OS since start (madvise/munmap) */
    size_t donated;        /* bytes added with _heapadd */
    size_t segments;       /* regions in the registry */
    size_t heaps;          /* thread heaps, live and abandoned */
    size_t huge_cached;    /* bytes of freed huge blocks cached for reuse */
    crtheap_class_stats_t classes[CRTHEAP_SIZE_CLASSES];
} crtheap_stats_t;

/* Fill *out with a snapshot of the whole heap (every thread's). 0 on success. */
int crtheap_get_stats(crtheap_stats_t *out);
/* Print the statistics in a human-readable table. */
void crtheap_print_stats(FILE *out);

typedef struct crtheap_counters {
    int counting;            /* 1: calls are counted (CRTHEAP_OPTION_SHOW_STATS); else the call
                                counts and requested bytes below stay 0 */
    uint64_t mallocs;        /* every allocation (malloc, calloc, aligned, new, a moving realloc) */
    uint64_t frees;          /* every release of a block (free, delete, a moving realloc) */
    uint64_t reallocs;       /* realloc, _recalloc, _expand and their aligned forms */
    size_t requested;        /* bytes requested by the counted blocks still live */
    size_t requested_peak;   /* the most that ever were */
    uint64_t heapmin_calls;  /* _heapmin */
    uint64_t trim_calls;     /* crtheap_trim and malloc_trim */
    size_t trim_released;    /* bytes those calls gave back to the OS */
    uint64_t threads;        /* threads that have allocated */
    size_t peak_rss;         /* the process's peak resident set (getrusage), bytes */
} crtheap_counters_t;

/* Fill *out with the counters. 0 on success. */
int crtheap_get_counters(crtheap_counters_t *out);
/* The statistics and counters as one JSON object, written into buf (at most len bytes,
 * NUL included) as snprintf does; returns the length the whole object needs. */
size_t crtheap_stats_json(char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* CRTHEAP_H */
