/* test_mesh.c — the compacting trim (issue #15): _heapmin lets OS pages of small blocks
 * whose live bytes do not overlap share one physical page.
 *
 * Every test builds the fragmentation meshing is for (small blocks, a random 95% freed),
 * stamps every live block and checks every byte of it after each step.  Where this
 * process may not take kernel faults through userfaultfd (no CAP_SYS_PTRACE and
 * vm.unprivileged_userfaultfd=0), meshing is off by default, and the tests check that
 * it stays off instead. */
#define _GNU_SOURCE
#include <check.h>
#include <crtheap.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include "common.h"
#include "suite.h"

/* ---- probes ---- */

/* Can this process have a userfaultfd object that takes kernel faults (what meshing by
 * default needs)? */
static bool kernel_faults_allowed(void)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return false;
    /* and write protection of shared memory (Linux 5.19), which a meshed page is */
    struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_HUGETLBFS_SHMEM };
    bool ok = ioctl(fd, UFFDIO_API, &api) == 0 && (api.features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
    close(fd);
    return ok;
}

/* A number from crtheap_stats_json. */
static size_t stats_field(const char *name)
{
    static char json[16384];
    crtheap_stats_json(json, sizeof json);
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *at = strstr(json, key);
    ck_assert_msg(at != NULL, "no %s in the statistics", name);
    return (size_t)strtoull(at + strlen(key), NULL, 10);
}

/* What the process really holds, each physical page once: Pss_Anon + Pss_Shmem. */
static size_t pss_kib(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    ck_assert_ptr_nonnull(f);
    char line[256];
    size_t kib = 0, v;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Pss_Anon: %zu kB", &v) == 1 || sscanf(line, "Pss_Shmem: %zu kB", &v) == 1)
            kib += v;
    fclose(f);
    return kib;
}

static size_t map_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    ck_assert_ptr_nonnull(f);
    size_t n = 0;
    for (int c; (c = fgetc(f)) != EOF;)
        n += c == '\n';
    fclose(f);
    return n;
}

static size_t max_map_count(void)
{
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    size_t n = 0;
    if (f) {
        if (fscanf(f, "%zu", &n) != 1)
            n = 0;
        fclose(f);
    }
    return n;
}

/* ---- the fragmented heap ---- */

typedef struct live {
    unsigned char **p;
    size_t *n;
    size_t count;
    uint64_t salt;   /* the pattern's generation: rewriting with another salt changes every byte */
} live_t;

static uint64_t live_key(const live_t *l, size_t i)
{
    return block_key(l->p[i], l->n[i]) ^ l->salt;
}

/* `blocks` blocks of 16-256 bytes; a random 95% freed (each checked first). */
static void fragment(live_t *l, size_t blocks, uint64_t seed)
{
    unsigned char **p = mmap(NULL, blocks * sizeof *p, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    size_t *n = mmap(NULL, blocks * sizeof *n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(p != MAP_FAILED && n != MAP_FAILED);
    uint64_t rng = seed;
    for (size_t i = 0; i < blocks; i++) {
        n[i] = 16 + rng_next(&rng) % 241;
        p[i] = malloc(n[i]);
        ck_assert_ptr_nonnull(p[i]);
        fill_all(p[i], n[i], block_key(p[i], n[i]));
    }
    size_t kept = 0;
    for (size_t i = 0; i < blocks; i++) {
        if (rng_next(&rng) % 100 < 5) {
            p[kept] = p[i];
            n[kept++] = n[i];
            continue;
        }
        expect(check_all(p[i], n[i], block_key(p[i], n[i])) == n[i], "block %zu damaged before its free", i);
        free(p[i]);
    }
    l->p = p;
    l->n = n;
    l->count = kept;
    l->salt = 0;
}

static void check_live(const live_t *l, const char *when)
{
    for (size_t i = 0; i < l->count; i++)
        expect(check_all(l->p[i], l->n[i], live_key(l, i)) == l->n[i], "live block %zu (%p, %zu B) damaged %s", i,
               (void *)l->p[i], l->n[i], when);
}

static void rewrite_live(live_t *l, uint64_t salt)
{
    l->salt = salt;
    for (size_t i = 0; i < l->count; i++)
        fill_all(l->p[i], l->n[i], live_key(l, i));
}

static void free_live(live_t *l)
{
    check_live(l, "before its free");
    for (size_t i = 0; i < l->count; i++)
        free(l->p[i]);
    l->count = 0;
}

#define BLOCKS 300000   /* about 40 MiB of 16-256 B blocks */

/* ---- tests ---- */

/* The heap meshing is for: after the trim without meshing, most OS pages still hold a
 * live block; with it, the memory left is a fraction. */
START_TEST(t_mesh_gives_back_scattered_pages)
{
    live_t l;
    fragment(&l, BLOCKS, 11);
    ck_assert_int_eq(crtheap_option_set(CRTHEAP_OPTION_MESH, 0), 0);
    ck_assert_int_eq(_heapmin(), 0);
    size_t plain = pss_kib();
    ck_assert_uint_eq(stats_field("meshed_pages"), 0);
    check_live(&l, "after a trim without meshing");
    size_t plain_resident = stats_field("resident");
    ck_assert_int_eq(crtheap_option_set(CRTHEAP_OPTION_MESH, 1), 0);
    size_t released_before = stats_field("released");
    ck_assert_int_eq(_heapmin(), 0);
    check_live(&l, "after meshing");   /* first: a remapped page is in PSS once it is mapped again */
    size_t meshed = pss_kib();
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    fprintf(stderr, "mesh: PSS %zu KiB after the plain trim, %zu KiB after meshing; %zu pages meshed onto %zu\n",
            plain, meshed, stats_field("meshed_pages"), stats_field("mesh_shared_pages"));
    if (!kernel_faults_allowed()) {
        ck_assert_uint_eq(stats_field("meshed_pages"), 0);   /* off by default without kernel faults */
        free_live(&l);
        return;
    }
    size_t pages = stats_field("meshed_pages"), shared = stats_field("mesh_shared_pages");
    expect(meshed * 2 < plain, "meshing left %zu KiB of %zu", meshed, plain);
    expect(pages > 4 * shared && shared > 0, "%zu pages on %zu", pages, shared);
    /* the statistics count each shared page once: resident fell as PSS did */
    size_t resident = stats_field("resident");
    expect(resident * 2 < plain_resident, "resident %zu bytes after meshing, %zu before", resident, plain_resident);
    /* what left RSS is counted as released */
    expect(stats_field("released") - released_before >= (plain - meshed) * 1024 / 2, "released %zu bytes",
           stats_field("released") - released_before);
    /* the live blocks still work as blocks: rewritten, _msize exact, freed */
    rewrite_live(&l, 0x5a5a);
    for (size_t i = 0; i < l.count; i += 97)
        ck_assert_uint_eq(_msize(l.p[i]), l.n[i]);
    check_live(&l, "after rewriting meshed blocks");
    /* half of them freed: a trim keeps what is live, members with nothing live leave */
    size_t kept = 0;
    for (size_t i = 0; i < l.count; i++) {
        if (i % 2) {
            l.p[kept] = l.p[i];
            l.n[kept++] = l.n[i];
        } else {
            expect(check_all(l.p[i], l.n[i], live_key(&l, i)) == l.n[i], "block %zu damaged", i);
            free(l.p[i]);
        }
    }
    l.count = kept;
    ck_assert_int_eq(_heapmin(), 0);
    check_live(&l, "after freeing half and trimming again");
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    /* the freed space is reused once it is no meshed page's */
    free_live(&l);
    ck_assert_int_eq(_heapmin(), 0);
    /* what stays meshed holds other live blocks of this process (the test framework's) */
    expect(stats_field("meshed_pages") * 100 < pages, "%zu of %zu pages still meshed", stats_field("meshed_pages"),
           pages);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    live_t again;
    fragment(&again, BLOCKS / 4, 12);
    free_live(&again);
}
END_TEST

/* CRTHEAP_OPTION_MESH 0: _heapmin leaves the backing of every page as it is. */
START_TEST(t_mesh_off_by_the_option)
{
    ck_assert_int_eq(crtheap_option_set(CRTHEAP_OPTION_MESH, 3), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(crtheap_option_set(CRTHEAP_OPTION_MESH, 0), 0);
    ck_assert_int_eq(crtheap_option_get(CRTHEAP_OPTION_MESH), 0);
    live_t l;
    fragment(&l, BLOCKS / 2, 21);
    size_t maps = map_count();
    ck_assert_int_eq(_heapmin(), 0);
    ck_assert_uint_eq(stats_field("meshed_pages"), 0);
    expect(map_count() <= maps, "the trim added mappings: %zu -> %zu", maps, map_count());
    check_live(&l, "after a trim with meshing off");
    ck_assert_int_eq(crtheap_option_set(CRTHEAP_OPTION_MESH, 1), 0);
    ck_assert_int_eq(_heapmin(), 0);
    check_live(&l, "after the trim with meshing on");
    if (kernel_faults_allowed())
        expect(stats_field("meshed_pages") > 0, "meshing on and nothing meshed");
    free_live(&l);
    ck_assert_int_eq(_heapmin(), 0);
}
END_TEST

/* ---- writers while the trim meshes ---- */

typedef struct writer {
    live_t *l;
    size_t from, to;   /* its blocks */
    _Atomic bool *stop;
    size_t rounds, failures, reads;
    char what[160];
} writer_t;

/* Write every byte of each of its blocks, read it back at once: a write lost to a copy
 * shows as the old bytes.  Odd writers also read(2) into their blocks from a pipe, so
 * the kernel writes them too. */
static void *writer_main(void *arg)
{
    writer_t *w = arg;
    int pfd[2] = { -1, -1 };
    bool by_read = (w->from / (w->to - w->from)) % 2 == 1;
    if (by_read && pipe(pfd) != 0)
        by_read = false;
    unsigned char src[256];
    for (uint64_t round = 1; !atomic_load(w->stop) && w->failures == 0; round++) {
        for (size_t i = w->from; i < w->to && w->failures == 0; i++) {
            unsigned char *b = w->l->p[i];
            size_t n = w->l->n[i];
            uint64_t key = block_key(b, n) ^ (round * 0x9e3779b97f4a7c15ull);
            if (by_read && i % 4 == 0) {
                fill_all(src, n, key);
                ssize_t put = write(pfd[1], src, n), got = read(pfd[0], b, n);
                w->reads++;
                if (put != (ssize_t)n || got != (ssize_t)n) {
                    snprintf(w->what, sizeof w->what, "read(2) into block %zu: %zd of %zu bytes (%s)", i, got, n,
                             got < 0 ? strerror(errno) : "short");
                    w->failures++;
                }
            } else {
                fill_all(b, n, key);
            }
            if (w->failures == 0 && check_all(b, n, key) != n) {
                snprintf(w->what, sizeof w->what, "block %zu (%p): a write was lost in round %llu", i, (void *)b,
                         (unsigned long long)round);
                w->failures++;
            }
        }
        w->rounds++;
    }
    if (pfd[0] >= 0) {
        close(pfd[0]);
        close(pfd[1]);
    }
    return NULL;
}

/* Threads that start, allocate (their first segment: made while a pass may walk the
 * segments), check and exit, over and over. */
static void *short_lived(void *arg)
{
    (void)arg;
    enum { N = 2000 };
    unsigned char *p[N];
    for (int i = 0; i < N; i++) {
        size_t n = 16 + (size_t)(i * 37) % 241;
        p[i] = malloc(n);
        if (!p[i])
            return arg;
        fill_all(p[i], n, block_key(p[i], n));
    }
    for (int i = 0; i < N; i++) {
        size_t n = 16 + (size_t)(i * 37) % 241;
        if (check_all(p[i], n, block_key(p[i], n)) != n)
            return p[i];
        free(p[i]);
    }
    return NULL;
}

static _Atomic size_t spawn_failures, spawned;

static void *spawner_main(void *arg)
{
    _Atomic bool *stop = arg;
    while (!atomic_load(stop)) {
        pthread_t t;
        void *r = NULL;
        if (pthread_create(&t, NULL, short_lived, NULL) != 0)
            continue;
        pthread_join(t, &r);
        spawned++;
        spawn_failures += r != NULL;
    }
    return NULL;
}

START_TEST(t_mesh_keeps_every_write)
{
    enum { WRITERS = 4, TRIMS = 12 };
    live_t l;
    fragment(&l, BLOCKS / 2, 31);
    _Atomic bool stop = false;
    writer_t w[WRITERS];
    pthread_t th[WRITERS];
    size_t share = l.count / WRITERS;
    for (int k = 0; k < WRITERS; k++) {
        w[k] = (writer_t){ &l, (size_t)k * share, (size_t)(k + 1) * share, &stop, 0, 0, 0, "" };
        ck_assert_int_eq(pthread_create(&th[k], NULL, writer_main, &w[k]), 0);
    }
    pthread_t spawner;
    ck_assert_int_eq(pthread_create(&spawner, NULL, spawner_main, &stop), 0);
    size_t most_meshed = 0;
    for (int t = 0; t < TRIMS; t++) {
        live_t more;   /* new fragmentation each time, so every trim has pages to mesh */
        fragment(&more, BLOCKS / 8, 100 + (uint64_t)t);
        ck_assert_int_eq(_heapmin(), 0);
        size_t m = stats_field("meshed_pages");
        most_meshed = m > most_meshed ? m : most_meshed;
        check_live(&more, "after a trim with writers running");
        if (t % 2)   /* and members that die, so some leave */
            free_live(&more);
        ck_assert_int_eq(_heapchk(), _HEAPOK);
    }
    atomic_store(&stop, true);
    pthread_join(spawner, NULL);
    expect(spawn_failures == 0, "%zu short-lived threads found a block damaged", (size_t)spawn_failures);
    size_t reads = 0;
    for (int k = 0; k < WRITERS; k++) {
        pthread_join(th[k], NULL);
        expect(w[k].failures == 0, "writer %d: %s", k, w[k].what);
        expect(w[k].rounds > 0, "writer %d never finished a round", k);
        reads += w[k].reads;
    }
    fprintf(stderr, "mesh: %d trims with %d writers and %zu threads started, %zu reads into blocks; at most %zu pages meshed\n",
            TRIMS, WRITERS, (size_t)spawned, reads, most_meshed);
    if (kernel_faults_allowed())
        expect(most_meshed > 0, "nothing meshed");
    for (size_t i = 0; i < l.count; i++)   /* each block holds its writer's last round: free them */
        free(l.p[i]);
    ck_assert_int_eq(_heapmin(), 0);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
}
END_TEST

/* ---- fork ---- */

static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cond = PTHREAD_COND_INITIALIZER;
static bool idle_over;

static void *idle_main(void *arg)
{
    (void)arg;
    void *p = malloc(40);   /* a heap of its own */
    pthread_mutex_lock(&idle_lock);
    while (!idle_over)
        pthread_cond_wait(&idle_cond, &idle_lock);
    pthread_mutex_unlock(&idle_lock);
    free(p);
    return NULL;
}

/* The child sees the meshed blocks as they were at the fork, whatever the parent writes
 * after it, and the parent never sees the child's writes. */
static void fork_and_compare(live_t *l, uint64_t salt)
{
    rewrite_live(l, salt);                      /* A: what the child must see */
    int go[2];
    ck_assert_int_eq(pipe(go), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char c;
        close(go[1]);
        if (read(go[0], &c, 1) != 1)            /* the parent wrote B */
            _exit(2);
        for (size_t i = 0; i < l->count; i++)
            if (check_all(l->p[i], l->n[i], live_key(l, i)) != l->n[i])
                _exit(3);
        rewrite_live(l, salt + 1000);           /* C: the parent must not see it */
        for (size_t i = 0; i < l->count; i++)
            if (check_all(l->p[i], l->n[i], live_key(l, i)) != l->n[i])
                _exit(4);
        if (_heapchk() != _HEAPOK || _heapmin() != 0 || _heapchk() != _HEAPOK)
            _exit(5);
        for (size_t i = 0; i < l->count; i++)
            if (check_all(l->p[i], l->n[i], live_key(l, i)) != l->n[i])
                _exit(6);
        for (size_t i = 0; i < l->count; i++)
            free(l->p[i]);
        _exit(_heapchk() == _HEAPOK ? 0 : 7);
    }
    close(go[0]);
    rewrite_live(l, salt + 1);                  /* B */
    ck_assert_int_eq(write(go[1], "", 1), 1);
    close(go[1]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: status %#x", status);
    check_live(l, "in the parent after the child wrote its copy");
}

START_TEST(t_mesh_fork_gives_the_child_its_own_pages)
{
    live_t l;
    fragment(&l, BLOCKS / 2, 41);
    ck_assert_int_eq(_heapmin(), 0);
    size_t meshed = stats_field("meshed_pages");
    if (kernel_faults_allowed())
        ck_assert_uint_gt(meshed, 0);
    pthread_t idle;   /* a threaded parent: the prepare handler protects the meshed pages */
    idle_over = false;
    ck_assert_int_eq(pthread_create(&idle, NULL, idle_main, NULL), 0);
    fork_and_compare(&l, 1);
    pthread_mutex_lock(&idle_lock);
    idle_over = true;
    pthread_cond_broadcast(&idle_cond);
    pthread_mutex_unlock(&idle_lock);
    pthread_join(idle, NULL);
    fork_and_compare(&l, 2);   /* and alone */
    ck_assert_uint_eq(stats_field("meshed_pages"), meshed);   /* the parent keeps its meshes */
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    free_live(&l);
    ck_assert_int_eq(_heapmin(), 0);
}
END_TEST

/* ---- in the decay ---- */

static void sleep_ms(long ms)
{
    struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&t, NULL);
}

/* CRTHEAP_OPTION_MESH_DECAY_MS: off by default, the purger meshes nothing; at 0 it
 * meshes at its next pass (the option change wakes it), without any trim call. */
START_TEST(t_mesh_in_the_decay)
{
    ck_assert_int_eq(crtheap_option_get(CRTHEAP_OPTION_MESH_DECAY_MS), -1);
    ck_assert_int_eq(crtheap_option_set(CRTHEAP_OPTION_PURGE_DELAY_MS, 10), 0);
    pthread_t idle;   /* a second thread with a heap: the purger runs */
    idle_over = false;
    ck_assert_int_eq(pthread_create(&idle, NULL, idle_main, NULL), 0);
    live_t l;
    fragment(&l, BLOCKS / 2, 71);
    sleep_ms(300);
    ck_assert_uint_eq(stats_field("meshed_pages"), 0);   /* the decay ran, and did not mesh */
    ck_assert_int_eq(crtheap_option_set(CRTHEAP_OPTION_MESH_DECAY_MS, 0), 0);
    size_t meshed = 0;
    for (int i = 0; i < 300 && meshed == 0; i++) {   /* up to 3 s */
        sleep_ms(10);
        meshed = stats_field("meshed_pages");
    }
    fprintf(stderr, "mesh: the purger meshed %zu pages\n", meshed);
    if (kernel_faults_allowed())
        expect(meshed > 0, "the purger meshed nothing in 3 s");
    check_live(&l, "after the purger meshed");
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    pthread_mutex_lock(&idle_lock);
    idle_over = true;
    pthread_cond_broadcast(&idle_cond);
    pthread_mutex_unlock(&idle_lock);
    pthread_join(idle, NULL);
    free_live(&l);
}
END_TEST

/* ---- the mapping limit ---- */

/* With the process's mappings near half of vm.max_map_count, the trim meshes only what
 * keeps it below; run in a child, whose mappings the test fills. */
START_TEST(t_mesh_stays_below_the_mapping_limit)
{
    size_t max = max_map_count();
    if (max < 1000) {
        fprintf(stderr, "mesh: vm.max_map_count unreadable or tiny (%zu): limit not tested\n", max);
        return;
    }
    live_t l;
    fragment(&l, BLOCKS / 2, 51);
    size_t limit = max / 2, target = limit - 200;
    size_t fillers = 0, len = 4096;
    void **filler = mmap(NULL, max * sizeof *filler, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(filler != MAP_FAILED);
    for (size_t now = map_count(); now < target; now += 1) {   /* alternate protections never merge */
        filler[fillers] = mmap(NULL, len, fillers % 2 ? PROT_READ : PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert(filler[fillers] != MAP_FAILED);
        fillers++;
    }
    size_t before = map_count();
    ck_assert_int_eq(_heapmin(), 0);
    size_t after = map_count(), meshed = stats_field("meshed_pages");
    fprintf(stderr, "mesh: mappings %zu -> %zu (limit %zu of %zu), %zu pages meshed\n", before, after, limit, max,
            meshed);
    expect(after <= limit, "meshing took the mappings to %zu, past %zu", after, limit);
    check_live(&l, "after a trim at the mapping limit");
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    for (size_t i = 0; i < fillers; i++)
        munmap(filler[i], len);
    ck_assert_int_eq(_heapmin(), 0);   /* room again: the trim meshes more */
    if (kernel_faults_allowed())
        expect(stats_field("meshed_pages") > meshed, "no more meshing with room: %zu", stats_field("meshed_pages"));
    expect(map_count() <= limit, "%zu mappings", map_count());
    check_live(&l, "after the trim with room");
    free_live(&l);
    ck_assert_int_eq(_heapmin(), 0);
    munmap(filler, max * sizeof *filler);
}
END_TEST

/* ---- the CRT family on meshed pages ---- */

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

START_TEST(t_mesh_walk_set_and_check)
{
    live_t l;
    fragment(&l, BLOCKS / 2, 61);
    ck_assert_int_eq(_heapmin(), 0);
    if (kernel_faults_allowed())
        ck_assert_uint_gt(stats_field("meshed_pages"), 0);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    /* _heapset fills free blocks only: withheld ones are another page's live bytes */
    ck_assert_int_eq(_heapset(0xA5), _HEAPOK);
    check_live(&l, "after _heapset");
    ck_assert_int_eq(_heapchk(), _HEAPOK);
    /* _heapwalk reports every live block as used, none inside a free entry */
    uintptr_t *sorted = mmap(NULL, l.count * sizeof *sorted, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(sorted != MAP_FAILED);
    for (size_t i = 0; i < l.count; i++)
        sorted[i] = (uintptr_t)l.p[i];
    qsort(sorted, l.count, sizeof *sorted, cmp_ptr);
    _HEAPINFO info = { 0 };
    size_t found = 0, walked = 0;
    int r;
    while ((r = _heapwalk(&info)) == _HEAPOK) {
        walked++;
        uintptr_t a = (uintptr_t)info._pentry, e = a + info._size;
        size_t lo = 0, hi = l.count;   /* the first live block at or above a */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (sorted[mid] < a)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (info._useflag == _USEDENTRY)
            found += lo < l.count && sorted[lo] == a;
        else
            expect(lo == l.count || sorted[lo] >= e, "live block %#lx inside a free entry [%#lx, %#lx)",
                   (unsigned long)(lo < l.count ? sorted[lo] : 0), (unsigned long)a, (unsigned long)e);
    }
    ck_assert_int_eq(r, _HEAPEND);
    ck_assert_uint_eq(found, l.count);
    fprintf(stderr, "mesh: _heapwalk: %zu entries, all %zu live blocks used\n", walked, l.count);
    munmap(sorted, l.count * sizeof *sorted);
    free_live(&l);
}
END_TEST

static Suite *mesh_suite(void)
{
    Suite *s = suite_create("mesh");
    add_case(s, "gives_back", t_mesh_gives_back_scattered_pages, 120);
    add_case(s, "off", t_mesh_off_by_the_option, 60);
    add_case(s, "writers", t_mesh_keeps_every_write, 180);
    add_case(s, "fork", t_mesh_fork_gives_the_child_its_own_pages, 120);
    add_case(s, "limit", t_mesh_stays_below_the_mapping_limit, 120);
    add_case(s, "decay", t_mesh_in_the_decay, 60);
    add_case(s, "crt", t_mesh_walk_set_and_check, 120);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(mesh_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
