/* stats.c — what the heap holds: crtheap_get_stats/crtheap_print_stats and glibc's
 * mallinfo2, mallinfo, malloc_stats, malloc_info and mallopt.  Figures come from a walk
 * of the registry (racy reads, no counters on the fast path). */
#define _GNU_SOURCE
#include "modules.h"
#include "crtheap.h"
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#define API __attribute__((visibility("default")))


static void count_page(const page_t *pg, crtheap_stats_t *st)
{
    size_t used = pg->used <= pg->capacity ? pg->used : pg->capacity;
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

API struct mallinfo2 mallinfo2(void)
{
    crtheap_stats_t st;
    crtheap_get_stats(&st);
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = st.mapped + st.donated;
    mi.uordblks = st.in_use;
    mi.fordblks = st.committed > st.in_use ? st.committed - st.in_use : 0;
    mi.ordblks = st.segments;
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

API int malloc_info(int options, FILE *out)
{
    if (options != 0 || !out) {
        errno = EINVAL;
        return -1;
    }
    crtheap_stats_t st;
    crtheap_get_stats(&st);
    fprintf(out, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n");
    for (int i = 0; i < CRTHEAP_SIZE_CLASSES; i++)
        if (st.classes[i].pages)
            fprintf(out, "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n",
                    st.classes[i].block_size, st.classes[i].block_size,
                    st.classes[i].block_size * st.classes[i].blocks_in_use, st.classes[i].blocks_in_use);
    fprintf(out, "</sizes>\n<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n", st.segments, st.mapped);
    fprintf(out, "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n", st.committed,
            st.mapped);
    fprintf(out, "<aspace type=\"total\" size=\"%zu\"/>\n</heap>\n</malloc>\n", st.mapped + st.donated);
    return 0;
}
