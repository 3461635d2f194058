/* trim — how much memory an allocator's "give it back now" call returns (SPEC §3.1).
 *
 *   trim <workload>      workload: a b c d e (below); TRIM_HEAP_MIB sets the heap (300)
 *
 * Builds a heap of mixed sizes (mostly 16–512 B, some up to 1 MiB), frees most of it, then
 * measures the process's memory (/proc/self/smaps_rollup) before and after the allocator's
 * trim call, the bytes still live, and the call's time.  The ratios count the anonymous
 * and shared-memory PSS (Pss_Anon + Pss_Shmem), so a page that two mappings share counts
 * once and a memfd page counts at all (a heap that remaps pages must not look smaller
 * than it is); anonymous RSS is reported beside it:
 *   a  free the oldest 90%
 *   b  free a random 90%
 *   c  two threads allocate and free 90% — half of it each other's blocks — and stay alive
 *      and idle while the main thread trims
 *   d  as c, but the threads exit before the trim
 *   e  large blocks (1–8 MiB), a random 90% freed
 * and the fragmentation workloads, whose free space is scattered over pages that still
 * hold a live block (what only a heap that compacts can give back):
 *   f  small objects (16–256 B), a random 90% freed
 *   g  small objects, a random 95% freed
 *   h  small objects, a random 99% freed
 *   i  the mixed sizes of b, a random 95% freed
 *   j  small objects on two threads, a random 95% freed with cross frees as in c (idle)
 * The trim call is found at run time, so one binary serves every allocator under LD_PRELOAD:
 * crtheap _heapmin, mimalloc mi_collect(true), jemalloc tcache flush + arena purge,
 * tcmalloc MallocExtension_ReleaseFreeMemory, glibc malloc_trim(0).
 * The call is then made a second time at once, when nothing is left to give (again_ms).
 * Every live block is checked after the trim. Output is one line of key=value pairs. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

/* ---- the allocator's trim call ---- */

typedef struct trim_call {
    const char *allocator;
    const char *call;
    void *function;
} trim_call;

typedef int (*heapmin_fn)(void);
typedef void (*mi_collect_fn)(bool force);
typedef int (*mallctl_fn)(const char *name, void *oldp, size_t *oldlenp, void *newp,
                          size_t newlen);
typedef void (*release_free_memory_fn)(void);
typedef int (*malloc_trim_fn)(size_t pad);

static trim_call find_trim_call(void)
{
    /* most specific first: glibc's malloc_trim is always there */
    if (dlsym(RTLD_DEFAULT, "crtheap_trim") != NULL)
        return (trim_call){ "crtheap", "_heapmin()", dlsym(RTLD_DEFAULT, "_heapmin") };
    if (dlsym(RTLD_DEFAULT, "mi_collect") != NULL)
        return (trim_call){ "mimalloc", "mi_collect(true)", dlsym(RTLD_DEFAULT, "mi_collect") };
    if (dlsym(RTLD_DEFAULT, "mallctl") != NULL)
        return (trim_call){ "jemalloc", "arena.4096.purge", dlsym(RTLD_DEFAULT, "mallctl") };
    if (dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory") != NULL)
        return (trim_call){ "tcmalloc", "ReleaseFreeMemory()",
                            dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory") };
    return (trim_call){ "glibc", "malloc_trim(0)", dlsym(RTLD_DEFAULT, "malloc_trim") };
}

static void run_trim_call(const trim_call *t)
{
    if (t->function == NULL)
        bench_fail("trim: %s has no %s", t->allocator, t->call);
    if (strcmp(t->allocator, "crtheap") == 0) {
        if (((heapmin_fn)t->function)() != 0)
            bench_fail("trim: _heapmin failed");
    } else if (strcmp(t->allocator, "mimalloc") == 0) {
        ((mi_collect_fn)t->function)(true);
    } else if (strcmp(t->allocator, "jemalloc") == 0) {
        mallctl_fn mallctl = (mallctl_fn)t->function;
        /* "arena.<MALLCTL_ARENAS_ALL>.purge": every arena, after this thread's cache */
        if (mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) != 0 ||
            mallctl("arena.4096.purge", NULL, NULL, NULL, 0) != 0)
            bench_fail("trim: mallctl purge failed");
    } else if (strcmp(t->allocator, "tcmalloc") == 0) {
        ((release_free_memory_fn)t->function)();
    } else {
        ((malloc_trim_fn)t->function)(0);
    }
}

/* ---- measurements ---- */

typedef struct memory_kib {
    long anonymous;   /* Anonymous: private anonymous pages resident */
    long pss;         /* Pss_Anon + Pss_Shmem: the heap's kinds of memory, a page shared by
                         two mappings counted once (library files left out) */
} memory_kib;

static long rollup_field(const char *text, const char *name)
{
    const char *field = strstr(text, name);
    if (field == NULL)
        bench_fail("trim: no %s line in smaps_rollup", name + 1);
    return strtol(field + strlen(name), NULL, 10);
}

/* The process's memory in KiB. Read with plain syscalls: stdio would allocate. */
static memory_kib memory_now(void)
{
    char text[4096];
    int fd = open("/proc/self/smaps_rollup", O_RDONLY);
    if (fd < 0)
        bench_fail("trim: cannot open /proc/self/smaps_rollup");
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        bench_fail("trim: cannot read /proc/self/smaps_rollup");
    text[n] = '\0';
    return (memory_kib){ rollup_field(text, "\nAnonymous:"),
                         rollup_field(text, "\nPss_Anon:") + rollup_field(text, "\nPss_Shmem:") };
}

/* ---- the heap: a table of blocks, kept outside the allocator (mmap) ---- */

typedef struct block {
    void *memory;  /* NULL once freed */
    size_t size;
} block;

typedef struct heap_table {
    block *blocks;
    size_t count;     /* slots in use: [0, count) */
    size_t used;      /* blocks allocated (two-thread tables leave a gap between halves) */
    size_t capacity;
} heap_table;

static void *map_table(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                   -1, 0);
    if (p == MAP_FAILED)
        bench_fail("trim: mmap of %zu bytes for the block table failed", bytes);
    return p;
}

enum { MIN_SMALL = 16, MAX_SMALL = 512 };
#define KIB ((size_t)1024)
#define MIB (KIB * 1024)

static unsigned small_percent = 95;     /* TRIM_SMALL_PERCENT; 100 in the small-object workloads */
static size_t small_max = MAX_SMALL;    /* 256 in the small-object workloads */
static unsigned free_permille = 900;    /* of the blocks, how many die (random choice) */

/* small_percent of the blocks are 16 B–small_max, the rest spread evenly per octave from
 * 513 B to 1 MiB (by default a few percent of the bytes are small blocks, as in the spec's
 * figures); with large_only, 1–8 MiB. */
static size_t heap_block_size(bench_rng *rng, bool large_only)
{
    if (large_only)
        return bench_rng_range(rng, 1 * MIB, 8 * MIB);
    if (bench_rng_next(rng) % 100 < small_percent)
        return bench_rng_range(rng, MIN_SMALL, small_max);
    return bench_rng_log_range(rng, MAX_SMALL + 1, 1 * MIB);
}

/* Allocate blocks into table slots [first, first+count) until `bytes` are requested. */
static size_t fill_heap(heap_table *t, size_t first, size_t max_count, size_t bytes,
                        bool large_only, uint64_t seed)
{
    bench_rng rng = bench_rng_seeded(seed);
    size_t total = 0, i = first;
    while (total < bytes && i < first + max_count) {
        size_t size = heap_block_size(&rng, large_only);
        block *b = &t->blocks[i];
        b->size = size;
        b->memory = bench_xmalloc(size);
        pattern_fill(b->memory, size, i);
        total += size;
        i++;
    }
    return i - first;
}

static void free_block(heap_table *t, size_t i)
{
    block *b = &t->blocks[i];
    pattern_check(b->memory, b->size, i, "trim before free");
    free(b->memory);
    b->memory = NULL;
}

static size_t live_bytes_checked(const heap_table *t)
{
    size_t live = 0;
    for (size_t i = 0; i < t->count; i++)
        if (t->blocks[i].memory != NULL) {
            pattern_check(t->blocks[i].memory, t->blocks[i].size, i, "trim after trim");
            live += t->blocks[i].size;
        }
    return live;
}

/* The least any allocator could keep resident with this layout: the 4 KiB pages that
 * live blocks touch (without moving them), counted once each. */
static int compare_addresses(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return (x > y) - (x < y);
}

static size_t live_touched_bytes(const heap_table *t)
{
    size_t n = 0;
    uintptr_t *spans = map_table(2 * sizeof *spans * (t->count + 1));
    for (size_t i = 0; i < t->count; i++)
        if (t->blocks[i].memory != NULL) {
            spans[2 * n] = (uintptr_t)t->blocks[i].memory;
            spans[2 * n + 1] = (uintptr_t)t->blocks[i].memory + t->blocks[i].size;
            n++;
        }
    qsort(spans, n, 2 * sizeof *spans, compare_addresses);
    const uintptr_t page = 4096;
    size_t pages = 0;
    uintptr_t counted_to = 0;  /* pages below this are counted */
    for (size_t k = 0; k < n; k++) {
        uintptr_t first = spans[2 * k] & ~(page - 1);
        uintptr_t end = (spans[2 * k + 1] + page - 1) & ~(page - 1);
        if (first < counted_to)
            first = counted_to;
        if (end > first) {
            pages += (end - first) / page;
            counted_to = end;
        }
    }
    munmap(spans, 2 * sizeof *spans * (t->count + 1));
    return pages * page;
}

/* Which blocks die: a random free_permille, the same for every allocator. */
static bool chosen_to_free(size_t i)
{
    bench_rng rng = bench_rng_seeded(i * 2654435761u + 99);
    return bench_rng_next(&rng) % 1000 < free_permille;
}

/* ---- single-thread workloads a, b, e ---- */

static void free_oldest(heap_table *t)
{
    size_t oldest = t->count - t->count / 10;
    for (size_t i = 0; i < oldest; i++)
        free_block(t, i);
}

static void free_random(heap_table *t)
{
    /* a random order, so neighbours die at different times */
    size_t *order = map_table(sizeof *order * t->count);
    for (size_t i = 0; i < t->count; i++)
        order[i] = i;
    bench_rng rng = bench_rng_seeded(5);
    for (size_t i = t->count; i > 1; i--) {
        size_t j = (size_t)(bench_rng_next(&rng) % i);
        size_t tmp = order[i - 1];
        order[i - 1] = order[j];
        order[j] = tmp;
    }
    /* the newest block always survives, so a small heap still has live bytes */
    for (size_t k = 0; k < t->count; k++)
        if (chosen_to_free(order[k]) && order[k] != t->count - 1)
            free_block(t, order[k]);
    munmap(order, sizeof *order * t->count);
}

/* ---- two-thread workloads c, d ---- */

typedef struct heap_thread {
    heap_table *table;
    int id;                       /* 0 or 1: owns slot range [id*half, id*half + count) */
    size_t half;
    size_t count;
    size_t bytes;
    bool stay_alive;
    pthread_barrier_t *allocated;  /* both halves exist before anyone frees */
    pthread_barrier_t *freed;      /* both threads done freeing: main may measure */
} heap_thread;

static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_over = PTHREAD_COND_INITIALIZER;
static bool trim_done;

static void *heap_thread_main(void *arg)
{
    heap_thread *h = arg;
    size_t start = (size_t)h->id * h->half;
    h->count = fill_heap(h->table, start, h->half, h->bytes, false, (uint64_t)h->id + 1);
    pthread_barrier_wait(h->allocated);
    /* of the blocks chosen to die, each thread frees the even ones of its own half and the
     * odd ones of the other's: half of what it frees was allocated by the other thread */
    heap_thread *other = h - h->id + (1 - h->id);
    for (size_t i = start; i < start + h->count; i++)
        if (chosen_to_free(i) && i % 2 == 0)
            free_block(h->table, i);
    size_t other_start = (size_t)other->id * h->half;
    for (size_t i = other_start; i < other_start + other->count; i++)
        if (chosen_to_free(i) && i % 2 == 1)
            free_block(h->table, i);
    pthread_barrier_wait(h->freed);
    if (h->stay_alive) {
        pthread_mutex_lock(&idle_lock);
        while (!trim_done)
            pthread_cond_wait(&idle_over, &idle_lock);
        pthread_mutex_unlock(&idle_lock);
    }
    return NULL;
}

/* Returns after the frees; the threads are idle (stay_alive) or gone. */
static void two_threads_build_and_free(heap_table *t, size_t bytes, bool stay_alive,
                                       pthread_t ids[2], heap_thread threads[2],
                                       pthread_barrier_t *allocated, pthread_barrier_t *freed)
{
    size_t half = t->capacity / 2;
    pthread_barrier_init(allocated, NULL, 2);
    pthread_barrier_init(freed, NULL, 3);
    for (int i = 0; i < 2; i++) {
        threads[i] = (heap_thread){ t, i, half, 0, bytes / 2, stay_alive, allocated, freed };
        if (pthread_create(&ids[i], NULL, heap_thread_main, &threads[i]) != 0)
            bench_fail("trim: pthread_create failed");
    }
    pthread_barrier_wait(freed);
    if (!stay_alive)
        for (int i = 0; i < 2; i++)
            pthread_join(ids[i], NULL);
    /* slots between the halves stay empty: mark them so the live scan skips them */
    t->count = half + threads[1].count;
    t->used = threads[0].count + threads[1].count;
    for (size_t i = threads[0].count; i < half; i++)
        t->blocks[i].memory = NULL;
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    if (argc < 2 || strlen(argv[1]) != 1 || argv[1][0] < 'a' || argv[1][0] > 'j') {
        fprintf(stderr, "usage: %s a|b|c|d|e|f|g|h|i|j   (TRIM_HEAP_MIB=300)\n", argv[0]);
        return 2;
    }
    char workload = argv[1][0];
    const char *small_env = getenv("TRIM_SMALL_PERCENT");   /* a-e; f-j set their own */
    if (small_env != NULL)
        small_percent = (unsigned)atoi(small_env) > 100 ? 100 : (unsigned)atoi(small_env);
    /* the fragmentation workloads: b's and c's heaps with other sizes and death rates */
    static const struct { char name, as; unsigned small_percent, small_max, free_permille; } variants[] = {
        { 'f', 'b', 100, 256, 900 }, { 'g', 'b', 100, 256, 950 }, { 'h', 'b', 100, 256, 990 },
        { 'i', 'b', 95, MAX_SMALL, 950 }, { 'j', 'c', 100, 256, 950 },
    };
    char shape = workload;
    for (size_t k = 0; k < sizeof variants / sizeof variants[0]; k++)
        if (variants[k].name == workload) {
            shape = variants[k].as;
            small_percent = variants[k].small_percent;
            small_max = variants[k].small_max;
            free_permille = variants[k].free_permille;
        }
    const char *heap_mib_env = getenv("TRIM_HEAP_MIB");
    size_t heap_mib = heap_mib_env ? (size_t)atol(heap_mib_env) : 300;
    if (heap_mib < 1)
        heap_mib = 1;
    size_t heap_bytes = heap_mib * MIB;

    trim_call call = find_trim_call();
    heap_table table = { 0 };
    /* the mean block is far above 512 B unless nearly all are small */
    table.capacity = heap_bytes / (small_percent >= 99 ? (MIN_SMALL + small_max) / 2 * 4 / 5 : 1024) + 4096;
    table.blocks = map_table(sizeof *table.blocks * table.capacity);
    free(bench_xmalloc(1));  /* let the allocator initialise before the baseline */
    memory_kib baseline = memory_now();

    pthread_t ids[2];
    heap_thread threads[2];
    pthread_barrier_t allocated, freed;
    switch (shape) {
    case 'a':
        table.count = table.used = fill_heap(&table, 0, table.capacity, heap_bytes, false, 1);
        free_oldest(&table);
        break;
    case 'b':
        table.count = table.used = fill_heap(&table, 0, table.capacity, heap_bytes, false, 1);
        free_random(&table);
        break;
    case 'c':
    case 'd':
        two_threads_build_and_free(&table, heap_bytes, shape == 'c', ids, threads,
                                   &allocated, &freed);
        break;
    case 'e':
        table.count = table.used = fill_heap(&table, 0, table.capacity, heap_bytes, true, 1);
        free_random(&table);
        break;
    }

    memory_kib before = memory_now();
    double start = bench_now();
    run_trim_call(&call);
    double trim_s = bench_now() - start;
    /* every live byte read before the count: a page that the trim remapped onto shared
     * memory (crtheap's meshing) is in PSS only once a process maps it again */
    size_t live = live_bytes_checked(&table);
    memory_kib after = memory_now();
    start = bench_now();   /* again at once: nothing is left to give, the call should cost nothing */
    run_trim_call(&call);
    double again_s = bench_now() - start;
    size_t touched = live_touched_bytes(&table);

    if (shape == 'c') {
        pthread_mutex_lock(&idle_lock);
        trim_done = true;
        pthread_cond_broadcast(&idle_over);
        pthread_mutex_unlock(&idle_lock);
        for (int i = 0; i < 2; i++)
            pthread_join(ids[i], NULL);
    }
    if (shape == 'c' || shape == 'd') {
        pthread_barrier_destroy(&allocated);
        pthread_barrier_destroy(&freed);
    }

    /* heap = PSS above the baseline (block table, libraries, stacks) */
    double heap_after = (double)(after.pss - baseline.pss) * 1024.0;
    double heap_before = (double)(before.pss - baseline.pss) * 1024.0;
    printf("workload=%c allocator=%s call=%s heap_mib=%zu small_percent=%u small_max=%zu free_permille=%u "
           "blocks=%zu live_bytes=%zu anon_baseline_kib=%ld anon_before_kib=%ld anon_after_kib=%ld "
           "pss_baseline_kib=%ld pss_before_kib=%ld pss_after_kib=%ld trim_ms=%.3f again_ms=%.3f "
           "before_per_live=%.3f after_per_live=%.3f touched_per_live=%.3f\n",
           workload, call.allocator, call.call, heap_mib, small_percent, small_max, free_permille, table.used,
           live, baseline.anonymous, before.anonymous, after.anonymous, baseline.pss, before.pss, after.pss,
           trim_s * 1e3, again_s * 1e3, heap_before / (double)live, heap_after / (double)live,
           (double)touched / (double)live);
    return 0;
}
