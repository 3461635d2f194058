/* stats.c — what the heap holds and what was counted: crtheap_get_stats,
 * crtheap_get_counters, their printers (crtheap_print_stats, CRTHEAP_SHOW_STATS at exit,
 * crtheap_stats_json) and glibc's mallinfo2, mallinfo, malloc_stats and malloc_info.
 * Figures come from a walk of the registry (racy reads, no counters on the fast path);
 * the counts from counters.c and every heap's own. */
#define _GNU_SOURCE
#include "modules.h"
#include "crtheap.h"
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define API __attribute__((visibility("default")))


static void count_page(const page_t *pg, crtheap_stats_t *st)
{
    size_t used = pg->used <= pg->capacity ? pg->used : pg->capacity;
    used -= pg->withheld <= used ? pg->withheld : used;   /* free blocks withheld by meshing */
    st->in_use += used * pg->block_size;
    if (pg->bin == BIN_LARGE)
        return;
    crtheap_class_stats_t *c = &st->classes[pg->bin];
    c->blocks_in_use += used;
    c->pages++;
    /* unlisted blocks were never touched or were released by a trim: not committed */
    size_t unlisted = (size_t)pg->unlisted * pg->block_size;
    st->committed -= unlisted < st->committed ? unlisted : st->committed;
}

API int crtheap_get_stats(crtheap_stats_t *st)
{
    if (!st) {
        errno = EINVAL;
        return -1;
    }
    memset(st, 0, sizeof *st);
    for (unsigned bin = 1; bin < BIN_COUNT && bin < CRTHEAP_SIZE_CLASSES; bin++)
        st->classes[bin].block_size = bin_block_size(bin);
    for (heap_t *h = heap_all_first(); h; h = h->all_next)
        st->heaps++;
    registry_lock();
    for (segment_t *seg = registry_first(); seg; seg = seg->reg_next) {
        st->segments++;
        size_t bytes = seg->map_size;
        if (seg->kind == SEGMENT_DONATED) {
            bytes -= SLICE_SIZE;   /* its slice 0 is not crtheap's */
            st->donated += bytes;
        } else {
            st->mapped += bytes;
        }
        uint64_t clean = seg->free_mask & ~seg->dirty_mask;   /* free and released */
        size_t clean_bytes = (size_t)__builtin_popcountll(clean) * SLICE_SIZE;
        if (seg->kind == SEGMENT_HUGE && seg->pages[1].bin == 0) {
            st->huge_cached += seg->map_size;
            clean_bytes = clean ? seg->pages[1].block_size : 0;   /* slice 1 is the whole block */
        }
        st->committed += bytes - clean_bytes;
        st->resident += os_resident_bytes(seg->kind == SEGMENT_DONATED ? segment_first_byte(seg) : seg->base, bytes);
        for (size_t i = seg->first_slice; i < seg->slice_count; i++) {
            const page_t *pg = &seg->pages[i];
            if (pg->bin != 0 && pg->slice_offset == 0)
                count_page(pg, st);
        }
    }
    registry_unlock();
    size_t meshed, shared;
    mesh_figures(&meshed, &shared);   /* count each shared physical page once */
    size_t twice = (meshed > shared ? meshed - shared : 0) * OS_PAGE_SIZE;
    st->resident -= twice < st->resident ? twice : st->resident;
    st->released = release_total();
    return 0;
}

API void crtheap_print_stats(FILE *out)
{
    crtheap_stats_t st;
    crtheap_get_stats(&st);
    fprintf(out, "crtheap: %zu heaps, %zu segments\n", st.heaps, st.segments);
    fprintf(out, "  in use     %12zu bytes\n  committed  %12zu bytes\n  resident   %12zu bytes\n"
                 "  mapped     %12zu bytes\n", st.in_use, st.committed, st.resident, st.mapped);
    fprintf(out, "  released   %12zu bytes (total)\n  donated    %12zu bytes\n  huge cache %12zu bytes\n",
            st.released, st.donated, st.huge_cached);
    fprintf(out, "  %10s %12s %8s\n", "block", "in use", "pages");
    for (int i = 0; i < CRTHEAP_SIZE_CLASSES; i++)
        if (st.classes[i].pages)
            fprintf(out, "  %10zu %12zu %8zu\n", st.classes[i].block_size, st.classes[i].blocks_in_use,
                    st.classes[i].pages);
}

API int crtheap_get_counters(crtheap_counters_t *out)
{
    if (!out) {
        errno = EINVAL;
        return -1;
    }
    memset(out, 0, sizeof *out);
    counters_global_t g;
    counters_global(&g);
    uint64_t calls[COUNT_KINDS];
    memcpy(calls, g.heapless, sizeof calls);
    for (heap_t *h = heap_all_first(); h; h = h->all_next)   /* racy reads of owners' counts */
        for (unsigned k = 0; k < COUNT_KINDS; k++)
            calls[k] += __atomic_load_n(&h->counts.calls[k], __ATOMIC_RELAXED);
    out->counting = counting();
    out->mallocs = calls[COUNT_MALLOC];
    out->frees = calls[COUNT_FREE];
    out->reallocs = calls[COUNT_REALLOC];
    out->requested = g.requested_now;
    out->requested_peak = g.requested_peak;
    out->heapmin_calls = g.heapmin_calls;
    out->trim_calls = g.trim_calls;
    out->trim_released = g.trim_released;
    out->threads = g.threads_seen;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        out->peak_rss = (size_t)ru.ru_maxrss * 1024;
    return 0;
}

/* n bytes in the largest unit that keeps it above 1 ("12.3 MiB"). */
static const char *human(char buf[24], size_t n)
{
    static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
    if (n < 1024) {
        snprintf(buf, 24, "%zu B", n);
        return buf;
    }
    double v = (double)n / 1024;
    unsigned u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    snprintf(buf, 24, "%.1f %s", v, units[u]);
    return buf;
}

/* Resident bytes of each class's pages (mincore), for the exit report. */
static void class_resident(size_t resident[CRTHEAP_SIZE_CLASSES])
{
    memset(resident, 0, CRTHEAP_SIZE_CLASSES * sizeof *resident);
    registry_lock();
    for (segment_t *seg = registry_first(); seg; seg = seg->reg_next)
        for (size_t i = seg->first_slice; i < seg->slice_count; i++) {
            const page_t *pg = &seg->pages[i];
            if (pg->bin != 0 && pg->bin != BIN_LARGE && pg->slice_offset == 0 && pg->bin < CRTHEAP_SIZE_CLASSES)
                resident[pg->bin] += os_resident_bytes(pg->start, segment_span_bytes(pg));
        }
    registry_unlock();
}

/* The report CRTHEAP_SHOW_STATS=1 prints at exit, in human units. */
static void print_report(FILE *out)
{
    crtheap_stats_t st;
    crtheap_counters_t c;
    crtheap_get_stats(&st);
    crtheap_get_counters(&c);
    char a[24], b[24];
    size_t in_use_peak = st.in_use, committed_peak = st.committed, resident_peak = st.resident;
    bool sampled = sample_peaks(&in_use_peak, &committed_peak, &resident_peak);
    fprintf(out, "crtheap: statistics of process %ld\n", (long)getpid());
    fprintf(out, "  %-28s %12s %12s\n", "", "now", "peak");
    fprintf(out, "  %-28s %12s %12s  (counted)\n", "requested by live blocks", human(a, c.requested),
            human(b, c.requested_peak));
    if (sampled) {
        fprintf(out, "  %-28s %12s %12s  (peaks sampled every 100 ms)\n", "in use (usable bytes)", human(a, st.in_use),
                human(b, in_use_peak));
        fprintf(out, "  %-28s %12s %12s\n", "committed", human(a, st.committed), human(b, committed_peak));
        fprintf(out, "  %-28s %12s %12s\n", "resident", human(a, st.resident), human(b, resident_peak));
    } else {
        fprintf(out, "  %-28s %12s\n  %-28s %12s\n  %-28s %12s\n", "in use (usable bytes)", human(a, st.in_use),
                "committed", human(b, st.committed), "resident", human(a, st.resident));
    }
    fprintf(out, "  %-28s %12s %12s  (the whole process: getrusage)\n", "process RSS", "", human(b, c.peak_rss));
    fprintf(out, "  %-28s %12s\n", "mapped", human(a, st.mapped));
    fprintf(out, "  %-28s %12s  (in all, since start)\n", "released to the OS", human(a, st.released));
    fprintf(out, "  %-28s %12s\n", "huge blocks cached", human(a, st.huge_cached));
    fprintf(out, "  calls: malloc %llu, free %llu, realloc %llu%s\n", (unsigned long long)c.mallocs,
            (unsigned long long)c.frees, (unsigned long long)c.reallocs,
            c.counting ? "" : " (not counted: counting mode was off)");
    fprintf(out, "  _heapmin %llu, trims %llu: gave back %s\n", (unsigned long long)c.heapmin_calls,
            (unsigned long long)c.trim_calls, human(a, c.trim_released));
    fprintf(out, "  threads that allocated %llu, heaps %zu, segments %zu\n", (unsigned long long)c.threads, st.heaps,
            st.segments);
    size_t resident[CRTHEAP_SIZE_CLASSES];
    class_resident(resident);
    fprintf(out, "  %10s %14s %8s %12s\n", "class", "blocks in use", "pages", "resident");
    for (int i = 0; i < CRTHEAP_SIZE_CLASSES; i++)
        if (st.classes[i].pages)
            fprintf(out, "  %10s %14zu %8zu %12s\n", human(a, st.classes[i].block_size), st.classes[i].blocks_in_use,
                    st.classes[i].pages, human(b, resident[i]));
}

/* Only while the option is on at exit: a program that turned it off asked for no report. */
static void print_report_at_exit(void)
{
    if (option_show_stats)
        print_report(stderr);
}

void stats_show_at_exit(void)
{
    static _Atomic int registered;
    int expected = 0;
    if (atomic_compare_exchange_strong(&registered, &expected, 1))
        atexit(print_report_at_exit);
}

API size_t crtheap_stats_json(char *buf, size_t len)
{
    crtheap_stats_t st;
    crtheap_counters_t c;
    crtheap_get_stats(&st);
    crtheap_get_counters(&c);
    size_t n = 0;
#define JSON(...)                                                                                     \
    do {                                                                                              \
        int k = snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0, __VA_ARGS__);   /* size 0: counts only */ \
        n += k > 0 ? (size_t)k : 0;                                                                   \
    } while (0)
    JSON("{\"in_use\":%zu,\"committed\":%zu,\"resident\":%zu,\"mapped\":%zu,\"released\":%zu,"
         "\"donated\":%zu,\"huge_cached\":%zu,\"segments\":%zu,\"heaps\":%zu,",
         st.in_use, st.committed, st.resident, st.mapped, st.released, st.donated, st.huge_cached, st.segments,
         st.heaps);
    size_t meshed, shared;
    mesh_figures(&meshed, &shared);   /* "resident" above counts each shared page once */
    JSON("\"meshed_pages\":%zu,\"mesh_shared_pages\":%zu,", meshed, shared);
    JSON("\"counting\":%s,\"mallocs\":%llu,\"frees\":%llu,\"reallocs\":%llu,\"requested\":%zu,"
         "\"requested_peak\":%zu,\"heapmin_calls\":%llu,\"trim_calls\":%llu,\"trim_released\":%zu,"
         "\"threads\":%llu,\"peak_rss\":%zu,\"classes\":[",
         c.counting ? "true" : "false", (unsigned long long)c.mallocs, (unsigned long long)c.frees,
         (unsigned long long)c.reallocs, c.requested, c.requested_peak, (unsigned long long)c.heapmin_calls,
         (unsigned long long)c.trim_calls, c.trim_released, (unsigned long long)c.threads, c.peak_rss);
    const char *sep = "";
    for (int i = 0; i < CRTHEAP_SIZE_CLASSES; i++)
        if (st.classes[i].pages) {
            JSON("%s{\"block_size\":%zu,\"blocks_in_use\":%zu,\"pages\":%zu}", sep, st.classes[i].block_size,
                 st.classes[i].blocks_in_use, st.classes[i].pages);
            sep = ",";
        }
    JSON("]}");
#undef JSON
    return n;
}

/* What glibc's mallinfo2 and malloc_info describe: free blocks by class, free runs of
 * slices, and the blocks mapped on their own (huge) that are in use. */
typedef struct heap_shape {
    size_t free_blocks[CRTHEAP_SIZE_CLASSES];   /* free blocks of each class, in its pages */
    size_t free_block_bytes;
    size_t free_runs, free_run_bytes;           /* runs of free slices (and cached huge blocks) */
    size_t huge_live, huge_live_bytes;          /* huge blocks in use: glibc's mmapped chunks */
    size_t huge_mapped;                         /* bytes of every huge segment, cached ones too */
    size_t dirty_free_bytes;                    /* free slices still resident: what a trim frees first */
} heap_shape_t;

static void heap_shape(heap_shape_t *hs)
{
    memset(hs, 0, sizeof *hs);
    registry_lock();
    for (segment_t *seg = registry_first(); seg; seg = seg->reg_next) {
        if (seg->kind == SEGMENT_HUGE) {
            hs->huge_mapped += seg->map_size;
            if (seg->pages[1].bin != 0) {
                hs->huge_live++;
                hs->huge_live_bytes += seg->pages[1].block_size;
            } else {
                hs->free_runs++;
                hs->free_run_bytes += seg->pages[1].block_size;
            }
            continue;
        }
        hs->dirty_free_bytes += (size_t)__builtin_popcountll(seg->free_mask & seg->dirty_mask) * SLICE_SIZE;
        for (size_t i = seg->first_slice; i < seg->slice_count; i++) {
            const page_t *pg = &seg->pages[i];
            if (seg->free_mask >> i & 1) {
                if (i == seg->first_slice || !(seg->free_mask >> (i - 1) & 1))
                    hs->free_runs++;
                hs->free_run_bytes += SLICE_SIZE;
            } else if (pg->bin != 0 && pg->bin != BIN_LARGE && pg->slice_offset == 0 && pg->bin < CRTHEAP_SIZE_CLASSES) {
                size_t free = pg->used <= pg->capacity ? (size_t)pg->capacity - pg->used : 0;
                hs->free_blocks[pg->bin] += free;
                hs->free_block_bytes += free * pg->block_size;
            }
        }
    }
    registry_unlock();
}

/* glibc's meanings: arena the bytes of the heap proper (not blocks mapped on their own),
 * ordblks its free chunks (free blocks and free runs of slices), hblks/hblkhd the blocks
 * mapped on their own that are in use, uordblks/fordblks the heap's bytes in use and
 * free, keepcost what a trim could give back at once (free slices still resident). */
API struct mallinfo2 mallinfo2(void)
{
    crtheap_stats_t st;
    crtheap_get_stats(&st);
    heap_shape_t hs;
    heap_shape(&hs);
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof mi);
    size_t heap_bytes = st.mapped + st.donated;
    mi.arena = heap_bytes > hs.huge_mapped ? heap_bytes - hs.huge_mapped : 0;
    mi.ordblks = hs.free_runs;
    for (int i = 0; i < CRTHEAP_SIZE_CLASSES; i++)
        mi.ordblks += hs.free_blocks[i];
    mi.hblks = hs.huge_live;
    mi.hblkhd = hs.huge_live_bytes;
    mi.uordblks = st.in_use > hs.huge_live_bytes ? st.in_use - hs.huge_live_bytes : 0;
    mi.fordblks = hs.free_block_bytes + hs.free_run_bytes;
    mi.keepcost = hs.dirty_free_bytes;
    return mi;
}

API struct mallinfo mallinfo(void)
{
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = (int)m2.arena;
    mi.ordblks = (int)m2.ordblks;
    mi.hblkhd = (int)m2.hblkhd;
    mi.uordblks = (int)m2.uordblks;
    mi.fordblks = (int)m2.fordblks;
    return mi;
}

/* Not a cancellation point, as glibc's is not: a thread with deferred cancellation
 * pending still prints every line. */
API void malloc_stats(void)
{
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    crtheap_stats_t st;
    crtheap_get_stats(&st);
    fprintf(stderr, "Arena 0:\nsystem bytes     = %10zu\nin use bytes     = %10zu\n", st.committed, st.in_use);
    fprintf(stderr, "Total (incl. mmap):\nsystem bytes     = %10zu\nin use bytes     = %10zu\n", st.committed,
            st.in_use);
    fprintf(stderr, "max mmap regions = %10zu\nmax mmap bytes   = %10zu\n", st.segments, st.mapped);
    pthread_setcancelstate(cancel_state, NULL);
}

/* glibc's shape: one heap, its free chunks by size (here: the free blocks of each class,
 * from the size above the class below to the class's size), the totals, the system's
 * bytes now and at most, then the same for the whole process with the mmapped blocks. */
API int malloc_info(int options, FILE *out)
{
    if (options != 0 || !out) {
        errno = EINVAL;
        return -1;
    }
    crtheap_stats_t st;
    crtheap_get_stats(&st);
    heap_shape_t hs;
    heap_shape(&hs);
    size_t rest_count = hs.free_runs, rest_bytes = hs.free_block_bytes + hs.free_run_bytes;
    fprintf(out, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n");
    size_t below = 0;
    for (int i = 1; i < CRTHEAP_SIZE_CLASSES && st.classes[i].block_size; i++) {
        size_t bs = st.classes[i].block_size;
        if (hs.free_blocks[i])
            fprintf(out, "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n", below + 1, bs,
                    hs.free_blocks[i] * bs, hs.free_blocks[i]);
        rest_count += hs.free_blocks[i];
        below = bs;
    }
    if (hs.free_runs)
        fprintf(out, "  <unsorted from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n", (size_t)SLICE_SIZE,
                hs.free_run_bytes, hs.free_run_bytes, hs.free_runs);
    size_t heap_bytes = st.mapped + st.donated;
    size_t arena = heap_bytes > hs.huge_mapped ? heap_bytes - hs.huge_mapped : 0;
    fprintf(out, "</sizes>\n<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
                 "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
                 "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n"
                 "<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n</heap>\n",
            rest_count, rest_bytes, st.committed, arena, arena, arena);
    fprintf(out, "<total type=\"fast\" count=\"0\" size=\"0\"/>\n<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
                 "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
                 "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n"
                 "<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n</malloc>\n",
            rest_count, rest_bytes, hs.huge_live, hs.huge_live_bytes, st.committed, heap_bytes, heap_bytes, heap_bytes);
    return 0;
}
