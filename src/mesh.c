/* mesh.c — the compacting trim: OS pages of small blocks whose live bytes do not
 * overlap share one physical page, so memory goes below what a heap that never moves a
 * block can reach, and no pointer changes (the idea of Mesh, Powers et al., PLDI 2019).
 *
 * A meshed OS page (a member) maps one page of a memfd (its slot) shared with the other
 * members of the slot; each member's live bytes sit at their own offsets there.  What
 * keeps them apart:
 *   - When an OS page is meshed, every free block on it (FREE or unlisted) becomes MESHED:
 *     withheld, in no list, never handed out, counted in the page's `used` (and in
 *     `withheld`), so the page cannot empty and be carved again while it is meshed.  Its
 *     bytes belong to another member.
 *   - The other blocks on it (live or queued remote frees: its reservation) are the
 *     member's own.  When one is freed it may be handed out again: its bytes are still
 *     only this member's.  A later trim withholds the free ones too, so a member's
 *     reservation only shrinks, and a slot can take members whose live bytes are
 *     disjoint from the union of the reservations of the members it has.
 *   - A member whose reservation is empty (nothing live on it) leaves: private zero
 *     pages replace it, and its MESHED blocks that lie on no other member become
 *     unlisted again.  A slot that loses its last member is punched out of the memfd.
 * Only the OS pages being meshed change their backing; every fast path is unchanged.
 *
 * No lost write.  An OS page is copied into its slot while userfaultfd write-protects
 * it: a thread that writes it waits in the kernel, and so does a system call (read(2)
 * into a block) where the userfaultfd object takes kernel faults; otherwise (only
 * user-mode faults: an unprivileged process) a system call would fail with EFAULT, and
 * meshing stays off unless CRTHEAP_MESH=2.  After the copy the page is mapped onto its
 * slot and the waiting writers are woken: they retry on the new mapping.  No signal
 * handler is involved.  While pages are protected crtheap itself writes none of them:
 * side tables, lists and descriptors are on other OS pages (side_at_end), and every
 * change to them is made before the protection.  Memory pinned by the kernel (in-flight
 * O_DIRECT or AIO reads, io_uring fixed buffers, RDMA) is written behind the page
 * tables' back: CRTHEAP_MESH=0 for such programs.
 *
 * Every heap is claimed for a pass (heap_claim_all, under `claimers`), so the mesh state
 * here is written only by the claimer (or by fork's handlers, which hold the same lock
 * or run in the one-threaded child).
 *
 * fork: a MAP_SHARED page would be shared with the child.  The prepare handler
 * write-protects every member (threaded parent), the child copies each into a private
 * page and tells the parent through a pipe, and only then does the parent lift the
 * protection: the child's snapshot is the fork's moment, at a cost that depends on the
 * meshed pages, not the heap.
 *
 * Mappings: a member is one mapping, and splits the mapping it was part of.  Meshing
 * keeps the process's mappings (counted in /proc/self/maps at each pass) below half of
 * vm.max_map_count, counting two per new member; past that it stops. */
#define _GNU_SOURCE
#include "modules.h"
#include <errno.h>
#include <string.h>

#define GRANULE         16                          /* every block start and size is a multiple */
#define GRANULES        (OS_PAGE_SIZE / GRANULE)    /* 256 */
#define MASK_WORDS      ((int)(GRANULES / 64))
#define MESH_BLOCK_MAX  1024                        /* classes whose OS pages mesh */
#define CANDIDATE_FILL_MAX (GRANULES * 3 / 4)       /* live granules an OS page may have to mesh */
#define GROUP_FULL      (GRANULES * 15 / 16)        /* a slot this full takes no more members */
#define OPEN_GROUPS     256                         /* groups a run's first page is tried against */
#define STRIPE          16                          /* new groups a run opens, one after another, at most */
#define MAP_MARGIN      8                           /* mappings kept for the view, the scratch */
#define MAPS_PER_MEMBER 2                           /* a run of members alone splits a mapping in three */
#define CANDIDATES_MAX  ((size_t)1 << 20)           /* OS pages a pass looks at (4 GiB of heap)*/
#define NO_SLOT         UINT32_MAX

/* The copy reads blocks the program writes, ordered by the write protection (the kernel
 * flushes every CPU's writable mapping before the copy, and later writes wait): an edge
 * ThreadSanitizer cannot see, so its build ignores the copying thread's accesses there. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MESH_UNDER_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(MESH_UNDER_TSAN)
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
#define COPY_UNSEEN_BEGIN() __tsan_ignore_thread_begin()
#define COPY_UNSEEN_END() __tsan_ignore_thread_end()
#else
#define COPY_UNSEEN_BEGIN() ((void)0)
#define COPY_UNSEEN_END() ((void)0)
#endif

typedef struct mask { uint64_t w[MASK_WORDS]; } mask_t;

typedef struct member {
    mask_t live;       /* its live bytes when the last pass looked (its reservation) */
    uintptr_t addr;    /* the meshed OS page */
    page_t *pg;        /* the class page it belongs to */
    uint32_t slot;     /* its memfd page */
    uint32_t gone;     /* left during this pass (removed at its end) */
} member_t;

enum { MESH_UNTRIED, MESH_READY, MESH_UNAVAILABLE };

static struct {
    int state;
    bool kernel_faults;            /* the userfaultfd object takes kernel faults too */
    bool wp_unpopulated;           /* it protects pages never faulted in (else: populate first) */
    bool reuse_slots;              /* this pass takes punched slots: runs will not merge */
    int uffd, memfd;
    uint64_t uffd_id[2], memfd_id[2];
    uint8_t *view;                 /* the whole memfd, mapped here for copying and punching */
    size_t view_pages;             /* the memfd's length in pages, all mapped by the view */
    size_t next_slot;              /* slots below it have been used */
    member_t *members;             /* sorted by address */
    size_t count, cap;
    uint32_t *refs;                /* members per slot */
    uint32_t *free_slots;          /* punched slots, for reuse */
    size_t free_count, refs_cap, free_cap;
    _Atomic size_t meshed_pages;   /* = count, for the statistics (read without the lock) */
    _Atomic size_t shared_pages;   /* slots in use */
    size_t max_maps;
    bool seen_all;                 /* the last trim's pass looked at every page it could mesh:
                                      this one looks only at pages freed into since */
    int fork_pipe[2];
    bool fork_protected;
    bool fork_fds_ours;            /* at the fork, uffd and memfd were still crtheap's */
} mesh = { .uffd = -1, .memfd = -1, .fork_pipe = { -1, -1 } };

/* ---- masks: one bit per 16 bytes of an OS page ---- */

static void mask_set(mask_t *m, unsigned from, unsigned to)   /* granules [from, to) */
{
    for (unsigned g = from; g < to; g++)
        m->w[g / 64] |= 1ull << (g % 64);
}
static bool mask_disjoint(const mask_t *a, const mask_t *b)
{
    uint64_t x = 0;
    for (int i = 0; i < MASK_WORDS; i++)
        x |= a->w[i] & b->w[i];
    return x == 0;
}
static bool mask_empty(const mask_t *m)
{
    uint64_t x = 0;
    for (int i = 0; i < MASK_WORDS; i++)
        x |= m->w[i];
    return x == 0;
}
static void mask_or(mask_t *a, const mask_t *b)
{
    for (int i = 0; i < MASK_WORDS; i++)
        a->w[i] |= b->w[i];
}
static unsigned mask_count(const mask_t *m)
{
    unsigned n = 0;
    for (int i = 0; i < MASK_WORDS; i++)
        n += (unsigned)__builtin_popcountll(m->w[i]);
    return n;
}

/* ---- setup ---- */

/* The userfaultfd object and the memfd, at the first pass that has pages to mesh. */
static bool mesh_open(void)
{
    if (mesh.state != MESH_UNTRIED)
        return mesh.state == MESH_READY;
    mesh.state = MESH_UNAVAILABLE;
    bool kernel_faults = true, unpopulated = false;
    int uffd = os_uffd_open(true, &unpopulated);
    if (uffd < 0) {
        kernel_faults = false;
        uffd = os_uffd_open(false, &unpopulated);
    }
    int memfd = uffd >= 0 ? os_memfd() : -1;
    if (memfd < 0 || !os_file_id(uffd, mesh.uffd_id) || !os_file_id(memfd, mesh.memfd_id)) {
        os_close(uffd);
        os_close(memfd);
        return false;
    }
    mesh.kernel_faults = kernel_faults;
    mesh.wp_unpopulated = unpopulated;
    mesh.uffd = uffd;
    mesh.memfd = memfd;
    mesh.state = MESH_READY;
    return true;
}

/* *array (of *cap elements of `size` bytes) holds at least `need`: grown by doubling,
 * from the OS (a pass holds every heap's claim: crtheap's own heap is not to be used). */
static bool array_fits(void **array, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return true;
    size_t grown = *cap * 2 > need ? *cap * 2 : need;
    if (grown < 1024)
        grown = 1024;
    void *bigger = os_map(grown * size);
    if (!bigger)
        return false;
    if (*array) {
        memcpy(bigger, *array, *cap * size);
        os_unmap(*array, *cap * size);
    }
    *array = bigger;
    *cap = grown;
    return true;
}

/* The descriptors are still ours (a program that closes every descriptor it does not
 * know, and opens others, must not have crtheap write into its files). */
static bool mesh_descriptors_ours(void)
{
    uint64_t a[2], b[2];
    return os_file_id(mesh.uffd, a) && a[0] == mesh.uffd_id[0] && a[1] == mesh.uffd_id[1] &&
           os_file_id(mesh.memfd, b) && b[0] == mesh.memfd_id[0] && b[1] == mesh.memfd_id[1];
}

static bool mesh_allowed(void)
{
    long mode = option_mesh;
    return mode == MESH_EVEN_USER_MODE_ONLY || (mode == MESH_ON && mesh.kernel_faults);
}

/* ---- members ---- */

/* The index of the first member at or above addr. */
static size_t member_lower_bound(uintptr_t addr)
{
    size_t lo = 0, hi = mesh.count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (mesh.members[mid].addr < addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool is_member(uintptr_t os)
{
    size_t i = member_lower_bound(os);
    return i < mesh.count && mesh.members[i].addr == os && !mesh.members[i].gone;
}

bool mesh_may_mesh(void)
{
    return option_mesh != MESH_OFF && (mesh.state == MESH_UNTRIED || (mesh.state == MESH_READY && mesh_allowed()));
}

bool mesh_covers(uintptr_t start, uintptr_t end)
{
    if (mesh.count == 0 || end <= start)
        return false;
    for (uintptr_t os = start & ~(uintptr_t)(OS_PAGE_SIZE - 1); os < end; os += OS_PAGE_SIZE)
        if (is_member(os))
            return true;
    return false;
}

void mesh_page_members(const page_t *pg, uint64_t *bits)
{
    uintptr_t start = (uintptr_t)pg->start, end = start + segment_span_bytes(pg);
    for (size_t j = member_lower_bound(start); j < mesh.count && mesh.members[j].addr < end; j++) {
        size_t k = (mesh.members[j].addr - start) / OS_PAGE_SIZE;
        bits[k / 64] |= 1ull << (k % 64);
    }
}

/* ---- the blocks on one OS page ---- */

/* The blocks of class page pg that overlap OS page os: [*lo, *hi). */
static void blocks_on(const page_t *pg, uintptr_t os, uint32_t *lo, uint32_t *hi)
{
    uintptr_t start = (uintptr_t)pg->start;
    size_t a = os - start, bs = pg->block_size;
    *lo = (uint32_t)(a / bs);
    size_t h = (a + OS_PAGE_SIZE + bs - 1) / bs;
    *hi = (uint32_t)(h < pg->capacity ? h : pg->capacity);
}

enum scan { SCAN_LIVE, SCAN_WITHHOLD, SCAN_RESERVED };

/* The live bytes on os (live blocks and queued remote frees, clipped to the OS page) as a
 * mask; SCAN_WITHHOLD makes its free blocks MESHED as well; SCAN_RESERVED counts them
 * as the page's (everything but MESHED).  Returns the granules set; *free_blocks (if
 * not NULL) gets the free blocks seen. */
static unsigned os_page_scan(page_t *pg, uintptr_t os, mask_t *m, enum scan mode, unsigned *free_blocks)
{
    unsigned frees = 0;
    bool withhold = mode == SCAN_WITHHOLD;
    unsigned granules = 0;
    uint32_t lo, hi;
    blocks_on(pg, os, &lo, &hi);
    memset(m, 0, sizeof *m);
    const unsigned free_value = side_free_value(pg);
    for (uint32_t i = lo; i < hi; i++) {
        unsigned v = side_get(pg, i);
        if ((v == free_value || v == SIDE_UNLISTED) && mode != SCAN_RESERVED) {
            frees++;
            if (withhold) {
                side_set(pg, i, side_meshed_value(pg));
                pg->unlisted -= v == SIDE_UNLISTED;
                pg->withheld++;
                pg->used++;
            }
            continue;
        }
        if (v == side_meshed_value(pg))
            continue;
        uintptr_t b0 = (uintptr_t)pg->start + (size_t)i * pg->block_size, b1 = b0 + pg->block_size;
        uintptr_t c0 = b0 > os ? b0 : os, c1 = b1 < os + OS_PAGE_SIZE ? b1 : os + OS_PAGE_SIZE;
        mask_set(m, (unsigned)((c0 - os) / GRANULE), (unsigned)((c1 - os) / GRANULE));
        granules += (unsigned)((c1 - c0) / GRANULE);   /* blocks do not overlap */
    }
    if (free_blocks)
        *free_blocks = frees;
    return granules;
}

/* The MESHED blocks that overlap os. */
static unsigned os_page_withheld(const page_t *pg, uintptr_t os)
{
    uint32_t lo, hi, n = 0;
    blocks_on(pg, os, &lo, &hi);
    for (uint32_t i = lo; i < hi; i++)
        n += side_get(pg, i) == side_meshed_value(pg);
    return n;
}

/* The MESHED blocks on os that no member overlaps any more become unlisted: free for
 * malloc again (page_extend links them).  Returns how many. */
static unsigned os_page_unwithhold(page_t *pg, uintptr_t os)
{
    uint32_t lo, hi, n = 0;
    blocks_on(pg, os, &lo, &hi);
    const unsigned meshed = side_meshed_value(pg);
    for (uint32_t i = lo; i < hi; i++) {
        uintptr_t b0 = (uintptr_t)pg->start + (size_t)i * pg->block_size;
        if (side_get(pg, i) != meshed || mesh_covers(b0, b0 + pg->block_size))
            continue;
        side_set(pg, i, SIDE_UNLISTED);
        pg->unlisted++;
        pg->withheld--;
        pg->used--;
        n++;
    }
    return n;
}

/* ---- slots ---- */

/* The memfd is at least `pages` long and the view maps all of it. */
static bool mesh_file_fits(size_t pages)
{
    if (pages <= mesh.view_pages)
        return true;
    size_t want = pages > mesh.view_pages * 2 ? pages : mesh.view_pages * 2;
    if (want < 64)
        want = 64;
    if (!array_fits((void **)&mesh.refs, &mesh.refs_cap, want, sizeof(uint32_t)) ||
        !array_fits((void **)&mesh.free_slots, &mesh.free_cap, want, sizeof(uint32_t)) ||
        os_file_resize(mesh.memfd, want * OS_PAGE_SIZE) != 0)
        return false;
    uint8_t *view = os_map_file(NULL, want * OS_PAGE_SIZE, mesh.memfd, 0);
    if (!view)
        return false;
    if (mesh.view)
        os_unmap(mesh.view, mesh.view_pages * OS_PAGE_SIZE);
    mesh.view = view;
    mesh.view_pages = want;
    return true;
}

/* Does this pass take punched slots (the file is mostly holes), or fresh ones? */
static bool pass_reuses_slots(void)
{
    size_t in_use = atomic_load_explicit(&mesh.shared_pages, memory_order_relaxed);
    return mesh.free_count > 0 && mesh.next_slot >= 2 * in_use + 4096;
}

/* A slot for a new group: the next never used (the file grows; new groups of one pass
 * get consecutive slots, which lets runs of their pages merge), or, in a pass that
 * reuses them, a punched one. */
static uint32_t slot_take(void)
{
    if (mesh.free_count && mesh.reuse_slots)
        return mesh.free_slots[--mesh.free_count];
    if (mesh.next_slot < UINT32_MAX - 1 && mesh_file_fits(mesh.next_slot + 1))
        return (uint32_t)mesh.next_slot++;
    if (mesh.free_count)
        return mesh.free_slots[--mesh.free_count];
    return NO_SLOT;
}

/* A slot with no member: its page is punched out of the memfd, the slot is kept for
 * reuse.  Returns the bytes that were resident. */
static size_t slot_release(uint32_t slot)
{
    uint8_t *page = mesh.view + (size_t)slot * OS_PAGE_SIZE;
    size_t resident = os_resident_bytes(page, OS_PAGE_SIZE);
    os_punch_mapped(page, OS_PAGE_SIZE);
    mesh.free_slots[mesh.free_count++] = slot;
    return resident;
}

/* A slot lost a member; returns the bytes given back (its page, when it was the last). */
static size_t slot_unref(uint32_t slot)
{
    if (--mesh.refs[slot] != 0)
        return 0;
    atomic_fetch_sub_explicit(&mesh.shared_pages, 1, memory_order_relaxed);
    return slot_release(slot);
}

/* ---- a pass ---- */

typedef struct candidate {
    uintptr_t os;
    page_t *pg;
    mask_t live;
    uint32_t group;
    uint16_t granules;
    uint8_t host;        /* the first of a new group: its whole page is copied */
    uint8_t failed;      /* the kernel refused a step: it stays as it was */
    uint8_t protected_;  /* write-protected: unprotect_pages lifts it if it kept its page */
    uint8_t in_registered;   /* in a segment protect_pages registered (or tried to) */
} candidate_t;

typedef struct group {
    mask_t reserved;     /* union of its members' reservations */
    uint32_t slot;       /* NO_SLOT: a new group, given one if it gets two members */
    uint32_t members;    /* new ones (of a slot in use: added to its refs) */
    uint32_t granules;
    uint8_t fresh;       /* opened by this pass */
} group_t;

typedef struct scratch {
    candidate_t *candidates;
    size_t ncandidates, max_candidates;
    group_t *groups;
    size_t ngroups, max_groups;
    page_t **touched;    /* pages whose free list must be rebuilt */
    size_t ntouched;
    uint32_t *slot_group;   /* slot in use -> its group this pass (NO_SLOT: none) */
    mask_t *unions;         /* slot -> the union of its members' reservations */
    void *base;
    size_t bytes;
} scratch_t;

static void touch(scratch_t *s, page_t *pg)
{
    if (s->ntouched == 0 || s->touched[s->ntouched - 1] != pg)
        s->touched[s->ntouched++] = pg;
}

static void rebuild_touched(scratch_t *s)
{
    for (size_t i = 0; i < s->ntouched; i++)
        page_rebuild_free_list(s->touched[i]);
    s->ntouched = 0;
}

/* Is member j + 1 in member j's mapping (the next page, on the next slot: the kernel
 * merged them)? */
static bool same_mapping(size_t j)
{
    return j + 1 < mesh.count && mesh.members[j + 1].addr == mesh.members[j].addr + OS_PAGE_SIZE &&
           mesh.members[j + 1].slot == mesh.members[j].slot + 1;
}

/* Members first: each withholds the free blocks on it, so its reservation shrinks to
 * what is live, and unions[slot] gets the reservations.  A mapping whose members have
 * nothing live left leaves whole: private zero pages replace it (nobody may write a
 * page without a live block), in one call, so the mappings around it can merge again;
 * a dead member inside a mapping that still has live ones stays (it holds no memory of
 * its own, and leaving would split the mapping).  Returns the bytes given back. */
static size_t mesh_maintain(scratch_t *s)
{
    mask_t *unions = s->unions;
    size_t released = 0;
    for (size_t j = 0; j < mesh.count; j++) {
        member_t *m = &mesh.members[j];
        if (!mesh.seen_all || !page_trimmed(m->pg)) {   /* freed into since the last pass: look again */
            unsigned withheld;
            os_page_scan(m->pg, m->addr, &m->live, SCAN_WITHHOLD, &withheld);
            if (withheld)
                touch(s, m->pg);
        }
        m->gone = mask_empty(&m->live);   /* dead, for now */
        mask_or(&unions[m->slot], &m->live);
    }
    for (size_t j = 0; j < mesh.count;) {
        size_t end = j, dead = 0;
        do
            dead += mesh.members[end].gone;
        while (same_mapping(end++));
        bool leave = dead == end - j &&
                     os_map_zero_fixed((void *)mesh.members[j].addr, (end - j) * OS_PAGE_SIZE) == 0;
        for (size_t k = j; k < end; k++)
            mesh.members[k].gone = leave;
        j = end;
    }
    for (size_t j = 0; j < mesh.count; j++) {
        member_t *m = &mesh.members[j];
        if (!m->gone)
            continue;
        m->pg->meshed--;
        os_page_unwithhold(m->pg, m->addr);
        released += slot_unref(m->slot);
    }
    size_t kept = 0;
    for (size_t j = 0; j < mesh.count; j++)
        if (!mesh.members[j].gone)
            mesh.members[kept++] = mesh.members[j];
    mesh.count = kept;
    rebuild_touched(s);
    return released;
}

/* May OS page os of pg mesh?  Whole inside the page's blocks (not on its side table). */
static bool meshable_page(const page_t *pg, uintptr_t os)
{
    uintptr_t blocks_end = (uintptr_t)pg->start + page_blocks_bytes(pg);
    uintptr_t side = (uintptr_t)pg->side, span_end = (uintptr_t)pg->start + segment_span_bytes(pg);
    uintptr_t limit = side >= (uintptr_t)pg->start && side < span_end ? side : span_end;
    return os < blocks_end && os + OS_PAGE_SIZE <= limit && !(pg->meshed && is_member(os));
}

/* Every OS page of small blocks that may mesh, in address order; with skip_unchanged,
 * not those of pages nobody freed into since the last trim (the last pass saw them). */
static void mesh_collect(scratch_t *s, bool skip_unchanged)
{
    registry_lock();
    for (segment_t *seg = registry_first(); seg && s->ncandidates < s->max_candidates; seg = seg->reg_next) {
        /* a segment a new thread is making has no heap yet, or one not claimed: its owner
         * works on it; only a claimed heap's segments hold still */
        heap_t *owner = __atomic_load_n(&seg->heap, __ATOMIC_ACQUIRE);
        if (seg->kind != SEGMENT_NORMAL || !owner ||
            !(atomic_load_explicit(&owner->claim, memory_order_relaxed) & CLAIM_HELD) || seg->holds_large)
            continue;
        for (size_t i = seg->first_slice; i < seg->slice_count && s->ncandidates < s->max_candidates; i++) {
            page_t *pg = &seg->pages[i];
            if (pg->bin == 0 || pg->bin == BIN_LARGE || pg->slice_offset != 0 || pg->block_size > MESH_BLOCK_MAX ||
                (skip_unchanged && page_trimmed(pg)))   /* no free since the last trim: seen as it is */
                continue;
            uintptr_t end = (uintptr_t)pg->start + segment_span_bytes(pg);
            for (uintptr_t os = (uintptr_t)pg->start; os < end && s->ncandidates < s->max_candidates; os += OS_PAGE_SIZE) {
                if (!meshable_page(pg, os))
                    continue;
                candidate_t *c = &s->candidates[s->ncandidates];
                unsigned frees, n = os_page_scan(pg, os, &c->live, SCAN_LIVE, &frees);
                /* a block to withhold keeps the page from emptying while it is meshed; a
                 * page with nothing live may bridge a run of others (mesh_plan) */
                if (n > CANDIDATE_FILL_MAX || frees == 0)
                    continue;
                c->os = os;
                c->pg = pg;
                c->granules = (uint16_t)n;
                c->group = NO_SLOT;
                c->host = c->failed = c->protected_ = c->in_registered = 0;
                s->ncandidates++;
            }
        }
    }
    registry_unlock();
}

static bool fits(const group_t *g, const candidate_t *c)
{
    return g->granules < GROUP_FULL && mask_disjoint(&g->reserved, &c->live);
}

/* The group after g in slot order: the next group this pass opened (ngroups: one still
 * to open), or the group of the next slot in use; SIZE_MAX if none. */
static size_t group_after(const scratch_t *s, size_t g)
{
    if (s->groups[g].fresh)
        return g + 1 == s->ngroups || s->groups[g + 1].fresh ? g + 1 : SIZE_MAX;
    uint32_t slot = s->groups[g].slot;
    return slot + 1 < mesh.next_slot && s->slot_group[slot + 1] != NO_SLOT ? s->slot_group[slot + 1] : SIZE_MAX;
}

/* Pages that follow each other map consecutive slots where they can: the kernel then
 * merges their mappings into one, so a run of them costs one mapping and one mmap, not
 * one each.  The group that continues c's predecessor's run: the group of the next slot
 * (a slot in use) or the next group this pass opened (ngroups: the one c would open). */
static size_t run_successor(const scratch_t *s, const candidate_t *c)
{
    if (c == s->candidates || c[-1].os + OS_PAGE_SIZE != c->os || c[-1].group == NO_SLOT)
        return SIZE_MAX;
    return group_after(s, c[-1].group);
}

/* The open group for candidate k that starts a run: the one (oldest first) along whose
 * following groups the most of the following pages fit, so that they share a mapping;
 * SIZE_MAX if it fits none. */
static size_t best_run_start(const scratch_t *s, const uint32_t *open, size_t nopen, size_t k)
{
    enum { LOOKAHEAD = 16 };
    size_t best = SIZE_MAX, best_length = 0;
    for (size_t o = 0; o < nopen && best_length < LOOKAHEAD; o++) {
        if (!fits(&s->groups[open[o]], &s->candidates[k]))
            continue;
        size_t length = 1, g = open[o];
        for (size_t i = k + 1; i < s->ncandidates && length < LOOKAHEAD; i++, length++) {
            if (s->candidates[i].os != s->candidates[i - 1].os + OS_PAGE_SIZE || (g = group_after(s, g)) == SIZE_MAX)
                break;
            if (g == s->ngroups) {   /* the rest opens groups of its own, on the next slots */
                length = LOOKAHEAD;
                break;
            }
            if (!fits(&s->groups[g], &s->candidates[i]))
                break;
        }
        if (length > best_length) {
            best = open[o];
            best_length = length;
        }
    }
    return best;
}

/* With candidate k (nothing live on it) in group g, would the run go on to a page with
 * something live, within a few pages?  Planning goes in address order, so the pages
 * after k meet the groups as they are now: a run of such pages that no live page ends
 * would be a mapping with nothing live, to leave at the next pass. */
static bool bridges_to_live(const scratch_t *s, size_t k, size_t g, size_t stripe)
{
    enum { BRIDGE = 4 };
    for (size_t i = k + 1; i < s->ncandidates && i <= k + BRIDGE; i++) {
        const candidate_t *c = &s->candidates[i];
        if (c->os != c[-1].os + OS_PAGE_SIZE || (g = group_after(s, g)) == SIZE_MAX)
            return false;
        if (g == s->ngroups)   /* it would open the next group: a live page may, if the stripe allows */
            return c->granules && stripe < STRIPE;
        if (!fits(&s->groups[g], c))
            return false;
        if (c->granules)
            return true;
    }
    return false;
}

static void open_push(uint32_t *open, size_t *nopen, uint32_t g)
{
    if (*nopen == OPEN_GROUPS) {
        memmove(open, open + 1, (OPEN_GROUPS - 1) * sizeof open[0]);
        --*nopen;
    }
    open[(*nopen)++] = g;
}

/* First fit, in address order: a page that follows a planned one takes the group of
 * the next slot (or opens it, when the page before opened the newest group and the
 * stripe of groups opened so is shorter than STRIPE), so runs of pages line up on runs
 * of slots; a page that starts a run, or whose run cannot go on, takes the open group
 * (the slots in use that have room, then the groups this pass opens) along which the
 * most of the following pages fit (best_run_start), else opens a group.  The mappings
 * this makes are counted once the slots are known (keep_to_budget). */
static void mesh_plan(scratch_t *s)
{
    const mask_t *unions = s->unions;
    uint32_t open[OPEN_GROUPS];
    size_t nopen = 0;
    size_t stripe = 0;   /* groups opened one after another by the run going on */
    for (uint32_t slot = 0; slot < mesh.next_slot; slot++) {
        s->slot_group[slot] = NO_SLOT;
        unsigned fill = mask_count(&unions[slot]);
        if (mesh.refs[slot] == 0 || fill >= GROUP_FULL || s->ngroups == s->max_groups)
            continue;
        s->groups[s->ngroups] = (group_t){ unions[slot], slot, 0, fill, 0 };
        s->slot_group[slot] = (uint32_t)s->ngroups;
        open_push(open, &nopen, (uint32_t)s->ngroups++);
    }
    for (size_t k = 0; k < s->ncandidates; k++) {
        candidate_t *c = &s->candidates[k];
        size_t next = run_successor(s, c), found = SIZE_MAX;
        bool continues = false;
        if (c->granules == 0 && (next >= s->ngroups || !fits(&s->groups[next], c) || !bridges_to_live(s, k, next, stripe)))
            continue;   /* a page with nothing live only bridges a run to a live page, never opens a group */
        if (next != SIZE_MAX && next < s->ngroups) {
            continues = fits(&s->groups[next], c);
            found = continues ? next : SIZE_MAX;
        } else if (next == s->ngroups && stripe < STRIPE) {
            continues = true;   /* the run goes on in a group of its own, next to the one before */
        }
        if (!continues) {
            if (c->granules == 0)
                continue;
            found = best_run_start(s, open, nopen, k);
        }
        if (found == SIZE_MAX) {   /* a new group, with c as its host */
            if (s->ngroups == s->max_groups)
                break;
            stripe = continues ? stripe + 1 : 1;
            s->groups[s->ngroups] = (group_t){ c->live, NO_SLOT, 1, c->granules, 1 };
            c->group = (uint32_t)s->ngroups++;
            c->host = 1;
            open_push(open, &nopen, c->group);
            continue;
        }
        group_t *g = &s->groups[found];
        c->group = (uint32_t)found;
        mask_or(&g->reserved, &c->live);
        g->granules += c->granules;
        g->members++;
        if (g->granules >= GROUP_FULL)
            for (size_t o = 0; o < nopen; o++)
                if (open[o] == found) {
                    memmove(open + o, open + o + 1, (nopen - o - 1) * sizeof open[0]);
                    nopen--;
                    break;
                }
    }
}

static bool meshes(const scratch_t *s, const candidate_t *c)
{
    if (c->group == NO_SLOT || c->failed)
        return false;
    const group_t *g = &s->groups[c->group];
    return !g->fresh || g->members >= 2;
}

static uint32_t candidate_slot(const scratch_t *s, const candidate_t *c)
{
    return s->groups[c->group].slot;
}

/* The segment's own slices: what a pass registers with userfaultfd at once. */
static void segment_range(uintptr_t os, uintptr_t *start, size_t *len)
{
    segment_t *seg = (segment_t *)(os & ~SEGMENT_MASK);
    *start = (uintptr_t)segment_first_byte(seg);
    *len = (size_t)(seg->slice_count - seg->first_slice) * SLICE_SIZE;
}

/* Register every segment that has pages to mesh, once, and write-protect each run of
 * consecutive such pages; a segment or run the kernel refuses is marked failed.  Where
 * the kernel cannot protect a page never faulted in (before Linux 6.4), each run is
 * faulted in writable first: a write to a page the copy read as the zero page would
 * otherwise land on a private page the remap then drops. */
static void protect_pages(scratch_t *s)
{
    uintptr_t registered = 0;
    bool segment_ok = false;
    for (size_t k = 0; k < s->ncandidates;) {
        candidate_t *c = &s->candidates[k];
        if (!meshes(s, c)) {
            k++;
            continue;
        }
        uintptr_t seg = c->os & ~SEGMENT_MASK, start;
        size_t len;
        if (seg != registered) {
            registered = seg;
            segment_range(c->os, &start, &len);
            segment_ok = os_uffd_register(mesh.uffd, (void *)start, len, true) == 0;
        }
        size_t end = k + 1;
        while (end < s->ncandidates && s->candidates[end].os == s->candidates[end - 1].os + OS_PAGE_SIZE &&
               meshes(s, &s->candidates[end]) && (s->candidates[end].os & ~SEGMENT_MASK) == seg)
            end++;
        size_t run = (end - k) * OS_PAGE_SIZE;
        bool ok = segment_ok && (mesh.wp_unpopulated || os_populate_write((void *)c->os, run) == 0) &&
                  os_uffd_protect(mesh.uffd, (void *)c->os, run, true) == 0;
        for (size_t i = k; i < end; i++) {
            s->candidates[i].in_registered = 1;   /* its segment ends its registration later */
            s->candidates[i].protected_ = ok;
            s->candidates[i].failed = !ok;
        }
        k = end;
    }
}

/* After the remap: lift the protection of pages that kept their old mapping, wake the
 * writers that wait in each segment (they retry on whatever is mapped now), end every
 * registration made, whatever failed. */
static void unprotect_pages(scratch_t *s)
{
    for (size_t k = 0; k < s->ncandidates; k++)
        if (s->candidates[k].protected_ && s->candidates[k].failed)
            os_uffd_protect(mesh.uffd, (void *)s->candidates[k].os, OS_PAGE_SIZE, false);
    uintptr_t done = 0;
    for (size_t k = 0; k < s->ncandidates; k++) {
        candidate_t *c = &s->candidates[k];
        if (!c->in_registered || (c->os & ~SEGMENT_MASK) == done)
            continue;
        done = c->os & ~SEGMENT_MASK;
        uintptr_t start;
        size_t len;
        segment_range(c->os, &start, &len);
        os_uffd_wake(mesh.uffd, (void *)start, len);
        os_uffd_register(mesh.uffd, (void *)start, len, false);
    }
}

/* Copy each page's live bytes into its slot (a host: the whole page, before the others
 * of its group, which come later in address order), then map each run of consecutive
 * pages with consecutive slots there in one call. */
static void copy_and_remap(scratch_t *s)
{
    COPY_UNSEEN_BEGIN();
    for (size_t k = 0; k < s->ncandidates; k++) {
        candidate_t *c = &s->candidates[k];
        if (!meshes(s, c))
            continue;
        uint8_t *dst = mesh.view + (size_t)candidate_slot(s, c) * OS_PAGE_SIZE;
        const uint8_t *src = (const uint8_t *)c->os;
        if (c->host) {
            memcpy(dst, src, OS_PAGE_SIZE);
            continue;
        }
        for (unsigned g = 0; g < GRANULES;) {
            if (!(c->live.w[g / 64] >> (g % 64) & 1)) {
                g++;
                continue;
            }
            unsigned e = g + 1;
            while (e < GRANULES && (c->live.w[e / 64] >> (e % 64) & 1))
                e++;
            memcpy(dst + (size_t)g * GRANULE, src + (size_t)g * GRANULE, (size_t)(e - g) * GRANULE);
            g = e;
        }
    }
    COPY_UNSEEN_END();
    for (size_t k = 0; k < s->ncandidates;) {
        candidate_t *c = &s->candidates[k];
        if (!meshes(s, c)) {
            k++;
            continue;
        }
        size_t end = k + 1;
        while (end < s->ncandidates && meshes(s, &s->candidates[end]) &&
               s->candidates[end].os == s->candidates[end - 1].os + OS_PAGE_SIZE &&
               candidate_slot(s, &s->candidates[end]) == candidate_slot(s, &s->candidates[end - 1]) + 1)
            end++;
        void *at = (void *)c->os;
        size_t len = (end - k) * OS_PAGE_SIZE, offset = (size_t)candidate_slot(s, c) * OS_PAGE_SIZE;
        if (!os_map_file(at, len, mesh.memfd, offset)) {
            /* A refused MAP_FIXED may have unmapped the old pages first (before Linux
             * 6.12): their live bytes are in the slots, so those must be mapped there. */
            if (os_mapped(at, len))
                for (size_t i = k; i < end; i++)
                    s->candidates[i].failed = 1;   /* still on their old pages */
            else if (!os_map_file(at, len, mesh.memfd, offset))
                fatal_message("crtheap: _heapmin: the kernel refused to map meshed pages back\n");
        }
        k = end;
    }
}

/* The meshed candidates join the members (sorted), withheld blocks of failed ones are
 * given back; returns the bytes given back. */
static size_t mesh_commit(scratch_t *s)
{
    size_t released = 0, added = 0;
    for (size_t k = 0; k < s->ncandidates; k++)
        added += meshes(s, &s->candidates[k]);
    /* merge from the top down, in place: both lists are in address order */
    size_t j = mesh.count, out = mesh.count + added;
    for (size_t k = s->ncandidates; k-- > 0;) {
        candidate_t *c = &s->candidates[k];
        if (!meshes(s, c))
            continue;
        while (j > 0 && mesh.members[j - 1].addr > c->os)
            mesh.members[--out] = mesh.members[--j];
        uint32_t slot = candidate_slot(s, c);
        mesh.members[--out] = (member_t){ c->live, c->os, c->pg, slot, 0 };
        c->pg->meshed++;
        if (mesh.refs[slot]++ != 0)
            released += OS_PAGE_SIZE;   /* its own page went; the slot's was there */
        else
            atomic_fetch_add_explicit(&mesh.shared_pages, 1, memory_order_relaxed);
    }
    mesh.count += added;
    for (size_t k = 0; k < s->ncandidates; k++) {
        candidate_t *c = &s->candidates[k];
        if (c->failed && c->group != NO_SLOT)
            os_page_unwithhold(c->pg, c->os);
    }
    for (size_t i = 0; i < s->ngroups; i++) {   /* a new group none of whose pages meshed */
        group_t *g = &s->groups[i];
        if (g->fresh && g->slot != NO_SLOT && mesh.refs[g->slot] == 0)
            slot_release(g->slot);   /* its page was this pass's own copy: nothing given back */
    }
    return released;
}

/* The mappings the meshing candidates will really make, now that their slots are known
 * (a group that found no second page does not mesh, a punched slot does not follow the
 * one before): a run of pages on consecutive slots is one mapping, and splits the one
 * it lands in unless it begins where a meshed page ends.  Past the budget, the rest
 * does not mesh this pass.  Returns whether it cut any. */
static bool keep_to_budget(scratch_t *s, size_t budget)
{
    size_t maps = 0;
    bool cut = false;
    const candidate_t *prev = NULL;
    for (size_t k = 0; k < s->ncandidates; k++) {
        candidate_t *c = &s->candidates[k];
        if (!meshes(s, c))
            continue;
        bool follows = prev && prev->os + OS_PAGE_SIZE == c->os;
        if (!(follows && candidate_slot(s, prev) + 1 == candidate_slot(s, c)))
            maps += follows || (mesh.count && is_member(c->os - OS_PAGE_SIZE)) ? 1 : MAPS_PER_MEMBER;
        if (maps > budget) {
            c->failed = 1;   /* before anything changed: it stays as it is */
            cut = true;
            continue;
        }
        prev = c;
    }
    return cut;
}

/* New meshes: collect, plan, withhold, protect, copy, remap, wake. */
static size_t mesh_new(scratch_t *s)
{
    bool skip_unchanged = mesh.seen_all;
    mesh.seen_all = false;
    if (mesh.state == MESH_READY && !mesh_allowed())
        return 0;
    mesh_collect(s, skip_unchanged);
    if (s->ncandidates == 0) {
        mesh.seen_all = true;
        return 0;
    }
    size_t maps = os_map_count(), limit = mesh.max_maps / 2 - MAP_MARGIN;
    if (maps >= limit)
        return 0;
    size_t budget = limit - maps;
    mesh_plan(s);
    /* the next pass skips the pages this one saw, unless it stopped short of some */
    mesh.seen_all = s->ncandidates < s->max_candidates && s->ngroups < s->max_groups;
    bool any = false;
    for (size_t k = 0; k < s->ncandidates && !any; k++)
        any = meshes(s, &s->candidates[k]);
    if (!any)
        return 0;
    if (!mesh_open() || !mesh_allowed() || !mesh_descriptors_ours()) {   /* the first time: opened here */
        mesh.seen_all = false;
        return 0;
    }
    size_t pages = 0;
    mesh.reuse_slots = pass_reuses_slots();   /* then runs do not merge: keep_to_budget sees it */
    for (size_t i = 0; i < s->ngroups; i++) {   /* slots for the new groups that mesh, in order */
        group_t *g = &s->groups[i];
        if (g->fresh && g->members >= 2 && (g->slot = slot_take()) == NO_SLOT) {
            g->members = 1;   /* no room in the file: it does not mesh */
            mesh.seen_all = false;
        }
    }
    if (keep_to_budget(s, budget))
        mesh.seen_all = false;   /* some pages it planned wait for the next pass */
    for (size_t k = 0; k < s->ncandidates; k++)
        pages += meshes(s, &s->candidates[k]);
    if (!array_fits((void **)&mesh.members, &mesh.cap, mesh.count + pages, sizeof(member_t))) {
        mesh.seen_all = false;
        return 0;   /* the slots taken stay unused: holes in the file */
    }
    for (size_t k = 0; k < s->ncandidates; k++) {   /* every change to crtheap's own memory first */
        candidate_t *c = &s->candidates[k];
        if (!meshes(s, c))
            continue;
        mask_t again;
        os_page_scan(c->pg, c->os, &again, SCAN_WITHHOLD, NULL);
        touch(s, c->pg);
    }
    rebuild_touched(s);
    protect_pages(s);
    copy_and_remap(s);
    unprotect_pages(s);
    os_release(mesh.view, mesh.view_pages * OS_PAGE_SIZE);   /* the view's own mappings only */
    for (size_t k = 0; k < s->ncandidates; k++)
        if (s->candidates[k].failed && s->candidates[k].in_registered)
            mesh.seen_all = false;   /* the kernel refused some: look again next time */
    return mesh_commit(s);
}

/* Scratch for a pass, from the OS: none of crtheap's heaps may be used while they are
 * all claimed. */
static bool scratch_map(scratch_t *s)
{
    memset(s, 0, sizeof *s);
    size_t pages = registry_segment_count() * (SEGMENT_SIZE / OS_PAGE_SIZE);
    s->max_candidates = pages < CANDIDATES_MAX ? pages : CANDIDATES_MAX;
    s->max_groups = s->max_candidates + mesh.next_slot;
    size_t touched = s->max_candidates + mesh.count + 1;
    s->bytes = s->max_candidates * sizeof(candidate_t) + s->max_groups * sizeof(group_t) +
               touched * sizeof(page_t *) + mesh.next_slot * sizeof(mask_t) + (mesh.next_slot + 1) * sizeof(uint64_t);
    s->base = os_map(s->bytes);
    if (!s->base)
        return false;
    uint8_t *p = s->base;   /* every part's size is a multiple of 8 */
    s->candidates = (candidate_t *)p;
    p += s->max_candidates * sizeof(candidate_t);
    s->groups = (group_t *)p;
    p += s->max_groups * sizeof(group_t);
    s->touched = (page_t **)p;
    p += touched * sizeof(page_t *);
    s->unions = (mask_t *)p;
    p += mesh.next_slot * sizeof(mask_t);
    s->slot_group = (uint32_t *)p;
    return true;
}

size_t mesh_trim(void)
{
    bool off = option_mesh == MESH_OFF;
    heap_t *claimed = heap_claim_all();   /* the mesh state is the claimers' */
    if (off)
        mesh.seen_all = false;   /* this trim marks pages the pass has not seen */
    size_t released = 0;
    if (!mesh.max_maps)
        mesh.max_maps = os_max_map_count();
    /* off: only the meshes there are still leave when they die */
    if ((!off || mesh.count) && mesh.state != MESH_UNAVAILABLE && mesh.max_maps >= 64) {
        for (heap_t *h = claimed; h; h = h->all_next)
            heap_drain_remote(h);
        scratch_t s;
        if (scratch_map(&s)) {
            released = mesh_maintain(&s);
            if (!off)
                released += mesh_new(&s);
            os_unmap(s.base, s.bytes);
        }
        atomic_store_explicit(&mesh.meshed_pages, mesh.count, memory_order_relaxed);
    }
    heap_unclaim_all(claimed);
    release_count(released);
    return released;
}

/* ---- _heapchk, statistics ---- */

/* The meshes agree with themselves and with the pages: members sorted, each on a
 * meshable OS page of a class page whose `meshed` counts them and under at least one
 * MESHED block, each slot's count of members right, and the reservations of a slot's
 * members disjoint. */
int mesh_check(void)
{
    heap_t *claimed = heap_claim_all();
    int result = 0;
    size_t slots = mesh.next_slot ? mesh.next_slot : 1;
    /* no meshes: nothing to map (a tight RLIMIT_AS may refuse it); no room for the
     * check: it cannot be made, which is no sign of damage */
    mask_t *unions = mesh.count ? os_map(slots * sizeof(mask_t)) : NULL;
    uint32_t *refs = unions ? os_map(slots * sizeof(uint32_t)) : NULL;
    if (mesh.count == 0 && atomic_load(&mesh.shared_pages) != 0)
        result = -1;
    size_t slots_in_use = 0;
    for (size_t j = 0; j < mesh.count && result == 0 && unions && refs; j++) {
        const member_t *m = &mesh.members[j];
        page_t *pg = m->pg;
        uintptr_t start = (uintptr_t)pg->start, end = start + segment_span_bytes(pg);
        if ((j && m->addr <= mesh.members[j - 1].addr) || m->addr % OS_PAGE_SIZE || m->slot >= mesh.next_slot ||
            pg->bin == 0 || pg->bin == BIN_LARGE || m->addr < start || m->addr >= end) {
            result = -1;
            break;
        }
        size_t first = member_lower_bound(start), last = member_lower_bound(end);
        if (last - first != pg->meshed) {
            result = -1;
            break;
        }
        mask_t reserved;
        os_page_scan(pg, m->addr, &reserved, SCAN_RESERVED, NULL);
        if (!mask_disjoint(&unions[m->slot], &reserved) || os_page_withheld(pg, m->addr) == 0)
            result = -1;   /* overlapping reservations, or nothing keeps the page from emptying */
        mask_or(&unions[m->slot], &reserved);
        refs[m->slot]++;
    }
    for (size_t slot = 0; slot < mesh.next_slot && result == 0 && refs; slot++) {
        if (refs[slot] != mesh.refs[slot])
            result = -1;
        slots_in_use += refs[slot] != 0;
    }
    if (result == 0 && refs && slots_in_use != atomic_load(&mesh.shared_pages))
        result = -1;
    if (unions)
        os_unmap(unions, slots * sizeof(mask_t));
    if (refs)
        os_unmap(refs, slots * sizeof(uint32_t));
    heap_unclaim_all(claimed);
    return result;
}

/* Meshed OS pages, and the physical pages they share (the figures the statistics need
 * to count memory once). */
void mesh_figures(size_t *meshed_pages, size_t *shared_pages)
{
    *meshed_pages = atomic_load_explicit(&mesh.meshed_pages, memory_order_relaxed);
    *shared_pages = atomic_load_explicit(&mesh.shared_pages, memory_order_relaxed);
}

/* ---- fork ---- */

/* Runs of consecutive members: [*start, *start + *len), from member *j on. */
static bool member_run(size_t *j, uintptr_t *start, size_t *len)
{
    if (*j >= mesh.count)
        return false;
    size_t end = *j + 1;
    while (end < mesh.count && mesh.members[end].addr == mesh.members[end - 1].addr + OS_PAGE_SIZE)
        end++;
    *start = mesh.members[*j].addr;
    *len = (end - *j) * OS_PAGE_SIZE;
    *j = end;
    return true;
}

/* Called with every heap claimed (threaded) or alone in the process: the child must get
 * the meshed pages as they are at the fork, so a threaded parent's writers wait on
 * them until the child has its copies. */
void mesh_fork_prepare(bool threaded)
{
    mesh.fork_protected = false;
    mesh.fork_pipe[0] = mesh.fork_pipe[1] = -1;
    mesh.fork_fds_ours = mesh.state == MESH_READY && mesh_descriptors_ours();
    if (mesh.count == 0)
        return;
    if (os_pipe(mesh.fork_pipe) != 0) {
        static const char msg[] = "crtheap: fork: no pipe to wait for the child's copy of the meshed pages\n";
        os_write_stderr(msg, sizeof msg - 1);
        mesh.fork_pipe[0] = mesh.fork_pipe[1] = -1;
        return;
    }
    if (!threaded)
        return;
    uintptr_t start;
    size_t len, j = 0;
    bool all = mesh.fork_fds_ours;
    while (all && member_run(&j, &start, &len))
        all = os_uffd_register(mesh.uffd, (void *)start, len, true) == 0 &&
              os_uffd_protect(mesh.uffd, (void *)start, len, true) == 0;
    mesh.fork_protected = mesh.fork_fds_ours;   /* the parent lifts what was set */
    if (!all) {
        static const char msg[] = "crtheap: fork: meshed pages not write-protected; the child may see "
                                  "what other threads write during the fork\n";
        os_write_stderr(msg, sizeof msg - 1);
    }
}

void mesh_fork_parent(void)
{
    if (mesh.fork_pipe[0] >= 0) {
        os_close(mesh.fork_pipe[1]);
        os_read_byte(mesh.fork_pipe[0]);   /* the child's byte, or its end */
        os_close(mesh.fork_pipe[0]);
    }
    if (mesh.fork_protected) {
        uintptr_t start;
        size_t len, j = 0;
        while (member_run(&j, &start, &len)) {
            os_uffd_protect(mesh.uffd, (void *)start, len, false);   /* wakes the writers */
            os_uffd_register(mesh.uffd, (void *)start, len, false);
        }
    }
    mesh.fork_protected = false;
}

/* The child's meshed pages become private copies, its MESHED blocks free again, and it
 * starts without meshes, userfaultfd object or memfd of its own (the parent's are not
 * its to use). */
void mesh_fork_child(void)
{
    os_close(mesh.fork_pipe[0]);
    uintptr_t start;
    size_t len, j = 0;
    while (member_run(&j, &start, &len)) {
        void *copy = os_map(len);
        if (!copy)
            fatal_message("crtheap: fork: no memory for the child's copy of the meshed pages\n");
        memcpy(copy, (void *)start, len);
        if (os_move_fixed(copy, len, (void *)start) != 0)
            fatal_message("crtheap: fork: could not map the child's copy of the meshed pages\n");
    }
    size_t n = mesh.count;
    mesh.count = 0;   /* no member covers anything now */
    for (j = 0; j < n; j++)
        mesh.members[j].pg->meshed = 0;
    for (j = 0; j < n; j++)
        os_page_unwithhold(mesh.members[j].pg, mesh.members[j].addr);
    if (mesh.refs)
        memset(mesh.refs, 0, mesh.next_slot * sizeof(uint32_t));
    mesh.next_slot = mesh.free_count = 0;
    atomic_store(&mesh.meshed_pages, 0);
    atomic_store(&mesh.shared_pages, 0);
    if (mesh.view)
        os_unmap(mesh.view, mesh.view_pages * OS_PAGE_SIZE);
    mesh.view = NULL;
    mesh.view_pages = 0;
    if (mesh.state == MESH_READY) {
        if (mesh.fork_fds_ours) {   /* else those numbers are the program's now */
            os_close(mesh.uffd);
            os_close(mesh.memfd);
        }
        mesh.uffd = mesh.memfd = -1;
        mesh.state = MESH_UNTRIED;   /* arrays kept for the child's own meshing */
    }
    if (mesh.fork_pipe[1] >= 0) {
        os_write_byte(mesh.fork_pipe[1]);
        os_close(mesh.fork_pipe[1]);
    }
    mesh.fork_pipe[0] = mesh.fork_pipe[1] = -1;
}
