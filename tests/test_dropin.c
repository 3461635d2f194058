/* test_dropin.c — what a drop-in allocator must not change in a program (SPEC §4, §1.1):
 * realloc keeps every usable byte, fork never deadlocks (stdio, signal handlers,
 * posix_spawn, vfork, threads in the child), the purger thread is invisible, glibc's
 * contracts (errno, impossible sizes, malloc_stats, mallopt), the Universal CRT's
 * _aligned_* behaviour, honest trim figures, options, and sized frees with the right
 * size.  Each test runs in its own process (CK_FORK). */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crtheap.h"
#include "common.h"
#include "suite.h"

extern char **environ;

#ifndef PROBE_DIR
#define PROBE_DIR "build/tests"
#endif

/* Hide a value from the optimiser so that calls are made as written. */
static size_t opaque(size_t v)
{
    volatile size_t x = v;
    return x;
}

static void stamp(void *p, size_t n) { fill_all(p, n, block_key(p, n)); }
static void verify(const void *p, size_t n, const char *what)
{
    size_t at = check_all(p, n, block_key(p, n));
    expect(at == n, "%s: block %p of %zu bytes changed at %zu", what, p, n, at);
}

/* Threads of this process, from /proc/self/task. */
static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A field of /proc/self/task/TID/status, e.g. "SigBlk:" (its text after the name). */
static bool task_status_field(long tid, const char *field, char *out, size_t cap)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%ld/status", tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        if (strncmp(line, field, strlen(field)) == 0) {
            const char *v = line + strlen(field);
            while (*v == ' ' || *v == '\t')
                v++;
            snprintf(out, cap, "%s", v);
            out[strcspn(out, "\n")] = 0;
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* The tid of a thread other than the ones in `known`, or 0. */
static long other_thread(const long *known, int nknown)
{
    DIR *d = opendir("/proc/self/task");
    ck_assert_ptr_nonnull(d);
    long found = 0;
    for (struct dirent *e; (e = readdir(d));) {
        long tid = atol(e->d_name);
        bool is_known = tid <= 0;
        for (int i = 0; i < nknown; i++)
            is_known |= tid == known[i];
        if (!is_known)
            found = tid;
    }
    closedir(d);
    return found;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Allocate and free enough to have two segments, a huge block in the cache and dirty
 * slices waiting for the decay: everything that once started the purger. */
static void churn_some_memory(void)
{
    enum { N = 3000, SIZE = 5000 };
    static char *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc(SIZE);
        ck_assert_ptr_nonnull(blocks[i]);
        stamp(blocks[i], 64);
    }
    char *huge = malloc(8u << 20);
    ck_assert_ptr_nonnull(huge);
    stamp(huge, 4096);
    verify(huge, 4096, "huge");
    free(huge);
    for (int i = 0; i < N; i++) {
        verify(blocks[i], 64, "churn");
        free(blocks[i]);
    }
}

/* ------------------------------------------------------------- realloc keeps usable bytes */

/* Every byte malloc_usable_size reports is the program's: realloc keeps them all. */
START_TEST(t_realloc_keeps_usable_bytes)
{
    static const size_t sizes[] = {1, 5, 17, 100, 129, 1000, 5000, 70000, 200000, 1500000, 3u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (size_t grow = 0; grow < 3; grow++) {
            size_t n = sizes[i];
            unsigned char *p = malloc(n);
            ck_assert_ptr_nonnull(p);
            size_t usable = malloc_usable_size(p);
            ck_assert_uint_ge(usable, n);
            memset(p, 'x', usable);
            size_t to = grow == 0 ? usable + 1 : grow == 1 ? 2 * usable + 100 : 4 * usable;
            unsigned char *q = realloc(p, to);
            ck_assert_ptr_nonnull(q);
            for (size_t k = 0; k < usable; k++)
                expect(q[k] == 'x', "realloc(%zu -> %zu): usable byte %zu of %zu lost", n, to, k, usable);
            ck_assert_uint_eq(_msize(q), to);
            free(q);
        }
    }
    /* the issue's own case: 16 x's under every peer */
    char *p = malloc(5);
    memset(p, 'x', malloc_usable_size(p));
    size_t usable = malloc_usable_size(p);
    p = realloc(p, 200);
    for (size_t k = 0; k < usable; k++)
        expect(p[k] == 'x', "byte %zu of %zu lost", k, usable);
    free(p);
}
END_TEST

START_TEST(t_aligned_realloc_keeps_data)
{
    unsigned char *p = _aligned_malloc(100, 64);
    ck_assert_ptr_nonnull(p);
    memset(p, 'y', 100);
    unsigned char *q = _aligned_realloc(p, 5000, 64);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq((uintptr_t)q % 64, 0);
    for (size_t k = 0; k < 100; k++)
        expect(q[k] == 'y', "_aligned_realloc lost byte %zu", k);
    ck_assert_uint_eq(_aligned_msize(q, 64, 0), 5000);
    memset(q, 'w', 5000);
    unsigned char *r = _aligned_offset_realloc(q, 60, 256, 4);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq((uintptr_t)(r + 4) % 256, 0);
    for (size_t k = 0; k < 60; k++)
        expect(r[k] == 'w', "_aligned_offset_realloc lost byte %zu", k);
    _aligned_free(r);
}
END_TEST

/* _recalloc follows the runtime: the block keeps its bytes up to the old requested size
 * and reads zero from there to the new size, whatever the program wrote past _msize. */
START_TEST(t_recalloc_zeroes_from_requested_size)
{
    unsigned char *p = malloc(10);
    memset(p, 'z', malloc_usable_size(p));
    unsigned char *q = _recalloc(p, 1, 300);
    ck_assert_ptr_nonnull(q);
    for (size_t k = 0; k < 10; k++)
        ck_assert_int_eq(q[k], 'z');
    ck_assert(is_zero(q + 10, 290));
    ck_assert_uint_eq(_msize(q), 300);
    free(q);
}
END_TEST

/* --------------------------------------------------------------------------- fork */

static atomic_int stop_workers;

/* A thread that keeps opening, writing, flushing every stream and closing files, with
 * malloc and free in between: the locks of stdio and of the heap taken in every order a
 * program takes them. */
static void *stdio_worker(void *arg)
{
    long id = (long)arg;
    char path[64];
    snprintf(path, sizeof path, "/tmp/crtheap-dropin-%d-%ld", (int)getpid(), id);
    while (!atomic_load(&stop_workers)) {
        FILE *f = fopen(path, "w");
        if (!f)
            continue;
        size_t n = 100 + (size_t)id * 50;
        char *b = malloc(n);
        memset(b, 'a', n - 1);
        b[n - 1] = 0;
        fputs(b, f);
        free(b);
        fflush(NULL);
        fclose(f);
        void *q = malloc(3000);
        stamp(q, 3000);
        verify(q, 3000, "stdio worker");
        free(q);
    }
    unlink(path);
    return NULL;
}

/* Wait for a child; fail the test if it does not end within `seconds`. */
static int wait_child(pid_t pid, int seconds, const char *what)
{
    int status = 0;
    pid_t got = 0;
    for (int waited = 0; waited < seconds * 100 && got == 0; waited++) {
        got = waitpid(pid, &status, WNOHANG);
        if (got == 0)
            sleep_ms(10);
    }
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        ck_abort_msg("%s: child hung (deadlock?)", what);
    }
    return status;
}

START_TEST(t_fork_while_threads_use_stdio)
{
    enum { WORKERS = 4, FORKS = 400 };
    pthread_t t[WORKERS];
    atomic_store(&stop_workers, 0);
    for (long i = 0; i < WORKERS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, stdio_worker, (void *)i), 0);
    for (int r = 0; r < FORKS; r++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            alarm(10);
            char *p = malloc(100);
            stamp(p, 100);
            verify(p, 100, "child");
            free(p);
            FILE *f = fopen("/dev/null", "w");   /* stdio works in the child too */
            fprintf(f, "child %d\n", r);
            fclose(f);
            _exit(0);
        }
        int status = wait_child(pid, 20, "fork with stdio threads");
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork %d: child status %#x", r, status);
    }
    atomic_store(&stop_workers, 1);
    for (int i = 0; i < WORKERS; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
}
END_TEST

/* A thread that keeps switching the diversion's reasons (M_PERTURB, counting mode) while
 * it allocates: fork lands inside those calls too. */
static void *divert_worker(void *arg)
{
    (void)arg;
    for (unsigned i = 0; !atomic_load(&stop_workers); i++) {
        mallopt(M_PERTURB, (i & 1) ? 0x5a : 0);
        crtheap_option_set(CRTHEAP_OPTION_SHOW_STATS, (i & 2) ? 1 : 0);
        char *b = malloc(64 + i % 512);
        stamp(b, 64 + i % 512);
        verify(b, 64 + i % 512, "divert worker");
        free(b);
    }
    mallopt(M_PERTURB, 0);
    crtheap_option_set(CRTHEAP_OPTION_SHOW_STATS, 0);
    return NULL;
}

/* A child forked while another thread is in mallopt(M_PERTURB) or switches counting mode
 * can make those calls itself (the diversion's lock is one that fork takes), and its heap
 * works with perturbation on and off. */
START_TEST(t_fork_during_mallopt)
{
    enum { FORKS = 300 };
    pthread_t t;
    atomic_store(&stop_workers, 0);
    ck_assert_int_eq(pthread_create(&t, NULL, divert_worker, NULL), 0);
    for (int r = 0; r < FORKS; r++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            alarm(10);
            if (mallopt(M_PERTURB, 0x33) != 1)
                _exit(2);
            unsigned char *p = malloc(200);
            if (p[10] != (0x33 ^ 0xff))
                _exit(3);
            stamp(p, 200);
            verify(p, 200, "child");
            free(p);
            if (mallopt(M_PERTURB, 0) != 1 || crtheap_option_set(CRTHEAP_OPTION_SHOW_STATS, 0) != 0)
                _exit(4);
            _exit(0);
        }
        int status = wait_child(pid, 20, "fork during mallopt");
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork %d: child status %#x", r, status);
    }
    atomic_store(&stop_workers, 1);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
}
END_TEST

/* glibc's own test: a signal handler forks while the main thread is in malloc, free,
 * realloc or fork.  The process has one thread (the signals come from a child). */
static atomic_int handler_forks;

static void fork_in_handler(int sig)
{
    (void)sig;
    int saved = errno;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid > 0) {
        waitpid(pid, NULL, 0);
        atomic_fetch_add(&handler_forks, 1);
    }
    errno = saved;
}

START_TEST(t_fork_from_signal_handler)
{
    struct sigaction sa = {0};
    sa.sa_handler = fork_in_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    pid_t self = getpid();
    pid_t sender = fork();
    ck_assert_int_ge(sender, 0);
    if (sender == 0) {   /* a separate process sends the signals */
        for (int i = 0; i < 2000 && kill(self, SIGUSR1) == 0; i++)
            usleep(500);
        _exit(0);
    }
    uint64_t rng = 7;
    void *keep[32] = {0};
    time_t until = time(NULL) + 3;
    int loops = 0;
    while (waitpid(sender, NULL, WNOHANG) == 0 && time(NULL) < until + 10) {
        for (int i = 0; i < 200; i++) {
            int k = (int)(rng_next(&rng) % 32);
            free(keep[k]);
            size_t n = rng_next(&rng) % 3000 + 1;
            keep[k] = rng_next(&rng) % 4 ? malloc(n) : realloc(keep[k] = malloc(8), n);
            ck_assert_ptr_nonnull(keep[k]);
            memset(keep[k], 1, n < 8 ? n : 8);
        }
        if (++loops % 16 == 0) {   /* fork from the main line too: a signal may hit it */
            pid_t pid = fork();
            if (pid == 0)
                _exit(0);
            ck_assert_int_gt(pid, 0);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
    }
    for (int k = 0; k < 32; k++)
        free(keep[k]);
    signal(SIGUSR1, SIG_IGN);
    waitpid(sender, NULL, 0);
    ck_assert_int_gt(atomic_load(&handler_forks), 0);
}
END_TEST

static void *allocating_worker(void *arg)
{
    uint64_t rng = (uintptr_t)arg;
    void *keep[64] = {0};
    while (!atomic_load(&stop_workers)) {
        int k = (int)(rng_next(&rng) % 64);
        free(keep[k]);
        size_t n = rng_next(&rng) % 20000 + 1;
        keep[k] = malloc(n);
        memset(keep[k], 2, n < 64 ? n : 64);
    }
    for (int k = 0; k < 64; k++)
        free(keep[k]);
    return NULL;
}

static void *child_worker(void *arg)
{
    uint64_t rng = (uintptr_t)arg;
    for (int i = 0; i < 2000; i++) {
        size_t n = rng_next(&rng) % 5000 + 1;
        char *p = malloc(n);
        if (!p)
            return arg;
        stamp(p, n);
        verify(p, n, "child thread");
        free(p);
    }
    return NULL;
}

/* posix_spawn and vfork+exec while threads allocate, and a forked child that allocates
 * from many threads of its own. */
START_TEST(t_spawn_vfork_and_threads_in_child)
{
    enum { WORKERS = 3 };
    pthread_t t[WORKERS];
    atomic_store(&stop_workers, 0);
    for (long i = 0; i < WORKERS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, allocating_worker, (void *)(i + 1)), 0);
    for (int r = 0; r < 30; r++) {
        pid_t pid;
        char *argv[] = {"true", NULL};
        ck_assert_int_eq(posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ), 0);
        int status = wait_child(pid, 20, "posix_spawn");
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        pid = vfork();
        if (pid == 0) {
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
        ck_assert_int_gt(pid, 0);
        status = wait_child(pid, 20, "vfork");
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    for (int r = 0; r < 5; r++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            alarm(20);
            enum { KIDS = 8 };
            pthread_t kid[KIDS];
            for (long i = 0; i < KIDS; i++)
                if (pthread_create(&kid[i], NULL, child_worker, (void *)(i + 100)) != 0)
                    _exit(3);
            for (int i = 0; i < KIDS; i++) {
                void *res;
                pthread_join(kid[i], &res);
                if (res)
                    _exit(4);
            }
            _exit(_heapchk() == _HEAPOK ? 0 : 5);
        }
        int status = wait_child(pid, 30, "fork with threads in the child");
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    }
    atomic_store(&stop_workers, 1);
    for (int i = 0; i < WORKERS; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
}
END_TEST

/* ------------------------------------------------------------------ the purger */

/* A process with one thread keeps one thread, whatever it allocates, and can do what
 * only a one-thread process can. */
START_TEST(t_no_purger_in_single_thread)
{
    churn_some_memory();
    sleep_ms(300);
    churn_some_memory();
    ck_assert_int_eq(thread_count(), 1);
    if (unshare(CLONE_NEWUSER) != 0)   /* EINVAL: more than one thread */
        ck_assert_msg(errno != EINVAL, "unshare(CLONE_NEWUSER) failed with EINVAL: crtheap added a thread");
}
END_TEST

/* The purger of a two-thread process: every signal blocked, asleep when idle (no
 * context switch over a second), and gone when the second thread leaves. */
START_TEST(t_purger_invisible)
{
    ck_assert_int_eq(crtheap_option_set(CRTHEAP_OPTION_PURGE_DELAY_MS, 20), 0);
    pthread_t t = park_start();
    churn_some_memory();   /* a slow path with memory for the decay: the purger starts */
    long known[2] = {(long)syscall(SYS_gettid), atomic_load(&parked_tid)};
    long purger = 0;
    for (int i = 0; i < 200 && !(purger = other_thread(known, 2)); i++)
        sleep_ms(5);
    ck_assert_msg(purger != 0, "no purger thread in a two-thread process with memory to decay");
    char blocked[64], before[64], after[64];
    ck_assert(task_status_field(purger, "SigBlk:", blocked, sizeof blocked));
    /* every catchable signal (the kernel never blocks SIGKILL and SIGSTOP) */
    ck_assert_msg(strcmp(blocked, "fffffffe7ffbfeff") == 0 || strcmp(blocked, "fffffffffffbfeff") == 0,
                  "purger's blocked signals: %s", blocked);
    sleep_ms(500);   /* the decay is done: the purger goes to sleep for good */
    ck_assert(task_status_field(purger, "voluntary_ctxt_switches:", before, sizeof before));
    sleep_ms(1500);
    ck_assert(task_status_field(purger, "voluntary_ctxt_switches:", after, sizeof after));
    ck_assert_msg(strcmp(before, after) == 0, "idle purger woke up: %s -> %s context switches", before, after);
    /* memory for the decay wakes it */
    churn_some_memory();
    sleep_ms(300);
    char woken[64];
    ck_assert(task_status_field(purger, "voluntary_ctxt_switches:", woken, sizeof woken));
    ck_assert_msg(atol(woken) > atol(after), "the purger did not wake for new work");
    park_end(t);
    for (int i = 0; i < 200 && thread_count() > 1; i++)
        sleep_ms(5);
    ck_assert_int_eq(thread_count(), 1);
}
END_TEST

static void *exit_soon(void *arg)
{
    enum { N = 500, SIZE = 20000 };   /* memory for the decay, waiting the whole (long) delay */
    unsigned char *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc(SIZE);
        if (!blocks[i])
            _exit(4);
        memset(blocks[i], i & 0xff, SIZE);
    }
    for (int i = 0; i < N; i++) {
        if (blocks[i][SIZE - 1] != (i & 0xff))
            _exit(5);
        free(blocks[i]);
    }
    sleep_ms(100);
    pthread_exit(arg);
}

/* A process whose threads all call pthread_exit ends when the last one does, even while
 * the purger sleeps a long purge delay with memory waiting: a thread's exit wakes it. */
START_TEST(t_purger_never_holds_exit)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(20);
        crtheap_option_set(CRTHEAP_OPTION_PURGE_DELAY_MS, 600000);   /* ten minutes */
        pthread_t t;
        if (pthread_create(&t, NULL, exit_soon, NULL) != 0)
            _exit(3);
        churn_some_memory();
        pthread_exit(NULL);   /* the main thread first; the other follows */
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int status = wait_child(pid, 15, "all threads pthread_exit with a long purge delay");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    ck_assert_msg(took < 10, "the process took %.1f s to end after its last thread", took);
}
END_TEST

/* A program that blocks SIGTERM in its threads and reads it from a signalfd keeps it:
 * the purger, started before the mask was set, does not take it. */
START_TEST(t_purger_leaves_signals_alone)
{
    pthread_t t = park_start();
    churn_some_memory();
    sleep_ms(50);
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &term, NULL), 0);
    /* the parked thread inherited no block: park it again with SIGTERM blocked */
    park_end(t);
    t = park_start();   /* created with SIGTERM blocked */
    churn_some_memory();
    int fd = signalfd(-1, &term, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(kill(getpid(), SIGTERM), 0);
    struct signalfd_siginfo si;
    ck_assert_int_eq(read(fd, &si, sizeof si), (ssize_t)sizeof si);
    ck_assert_int_eq(si.ssi_signo, SIGTERM);
    close(fd);
    park_end(t);
}
END_TEST

START_TEST(t_purger_option_off)
{
    ck_assert_int_eq(crtheap_option_set(CRTHEAP_OPTION_PURGER, 0), 0);
    ck_assert_int_eq(crtheap_option_get(CRTHEAP_OPTION_PURGER), 0);
    pthread_t t = park_start();
    churn_some_memory();
    sleep_ms(200);
    churn_some_memory();
    ck_assert_int_eq(thread_count(), 2);
    park_end(t);
    ck_assert_int_eq(crtheap_option_set(CRTHEAP_OPTION_PURGER, 2), -1);
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

/* ------------------------------------------------------------------ glibc's contracts */

START_TEST(t_enomem_in_errno)
{
    void *p = (void *)1;
    errno = 0;
    ck_assert_int_eq(posix_memalign(&p, 64, opaque(SIZE_MAX - 100)), ENOMEM);
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert_ptr_eq(p, (void *)1);   /* untouched on failure */
    static const size_t impossible[] = {SIZE_MAX, SIZE_MAX - 4096, (size_t)1 << 62, (size_t)1 << 48};
    for (size_t i = 0; i < sizeof impossible / sizeof impossible[0]; i++) {
        size_t n = opaque(impossible[i]);
        errno = 0;
        ck_assert_ptr_null(malloc(n));
        ck_assert_int_eq(errno, ENOMEM);
        errno = 0;
        ck_assert_ptr_null(aligned_alloc(4096, n & ~(size_t)4095));
        ck_assert_int_eq(errno, ENOMEM);
        errno = 0;
        ck_assert_ptr_null(calloc(1, n));
        ck_assert_int_eq(errno, ENOMEM);
        char *q = malloc(10);
        errno = 0;
        ck_assert_ptr_null(realloc(q, n));
        ck_assert_int_eq(errno, ENOMEM);
        free(q);
        errno = 0;
        ck_assert_ptr_null(memalign(64, n));
        ck_assert_int_eq(errno, ENOMEM);
    }
}
END_TEST

/* A request no machine can meet fails at once: it does not first give back the heap's
 * cached memory as a real shortage does (the cost glibc's tests noticed). */
START_TEST(t_impossible_size_fails_at_once)
{
    ck_assert_int_eq(crtheap_option_set(CRTHEAP_OPTION_PURGE_DELAY_MS, -1), 0);
    churn_some_memory();   /* free slices and a cached huge block, kept (no decay) */
    crtheap_stats_t before, after;
    crtheap_get_stats(&before);
    for (int i = 0; i < 1000; i++)
        ck_assert_ptr_null(malloc(opaque(SIZE_MAX - (size_t)i)));
    crtheap_get_stats(&after);
    ck_assert_uint_eq(after.released, before.released);
    ck_assert_uint_eq(after.huge_cached, before.huge_cached);
    ck_assert_uint_gt(after.huge_cached, 0);
}
END_TEST

/* malloc_stats is not a cancellation point: with a cancel pending it prints all. */
static char stats_path[64];

static void *stats_thread(void *arg)
{
    (void)arg;
    int fd = open(stats_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return NULL;
    int saved_stderr = dup(2);
    dup2(fd, 2);
    pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, NULL);
    pthread_cancel(pthread_self());
    malloc_stats();
    dup2(saved_stderr, 2);
    close(fd);
    close(saved_stderr);
    pthread_testcancel();   /* the pending cancel lands here */
    return (void *)1;
}

START_TEST(t_malloc_stats_not_a_cancellation_point)
{
    snprintf(stats_path, sizeof stats_path, "/tmp/crtheap-stats-%d", (int)getpid());
    char *p = malloc(1000);
    stamp(p, 1000);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, stats_thread, NULL), 0);
    void *res;
    ck_assert_int_eq(pthread_join(t, &res), 0);
    ck_assert_ptr_eq(res, PTHREAD_CANCELED);
    FILE *f = fopen(stats_path, "r");
    ck_assert_ptr_nonnull(f);
    char text[2048] = "";
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    unlink(stats_path);
    text[len] = 0;
    ck_assert_msg(strstr(text, "Arena 0:") && strstr(text, "max mmap bytes"), "malloc_stats printed: \"%s\"", text);
    verify(p, 1000, "stats");
    free(p);
}
END_TEST

START_TEST(t_mallopt_parameters)
{
    ck_assert_int_eq(mallopt(M_MXFAST, 64), 1);
    ck_assert_int_eq(mallopt(M_MXFAST, 100000), 0);   /* out of glibc's range */
    ck_assert_int_eq(mallopt(M_TOP_PAD, 1 << 20), 1);
    ck_assert_int_eq(mallopt(M_ARENA_MAX, 2), 1);
    ck_assert_int_eq(mallopt(M_ARENA_TEST, 2), 1);
    ck_assert_int_eq(mallopt(M_CHECK_ACTION, 3), 1);
    /* M_TRIM_THRESHOLD < 0 stops the decay; a threshold turns it back on */
    ck_assert_int_eq(mallopt(M_TRIM_THRESHOLD, -1), 1);
    ck_assert_int_eq(crtheap_option_get(CRTHEAP_OPTION_PURGE_DELAY_MS), -1);
    ck_assert_int_eq(mallopt(M_TRIM_THRESHOLD, 128 * 1024), 1);
    ck_assert_int_ge(crtheap_option_get(CRTHEAP_OPTION_PURGE_DELAY_MS), 0);
    ck_assert_int_eq(mallopt(12345, 1), 0);   /* unknown */
    /* M_MMAP_THRESHOLD: from there up a block gets a mapping of its own */
    ck_assert_int_eq(mallopt(M_MMAP_THRESHOLD, 256 * 1024), 1);
    ck_assert_int_eq(mallopt(M_MMAP_THRESHOLD, 64 << 20), 0);   /* above glibc's maximum */
    crtheap_stats_t before, after;
    crtheap_get_stats(&before);
    char *p = malloc(300000);
    ck_assert_ptr_nonnull(p);
    stamp(p, 300000);
    crtheap_get_stats(&after);
    ck_assert_uint_eq(after.segments, before.segments + 1);
    ck_assert_uint_lt(after.mapped - before.mapped, 1u << 20);   /* its own mapping, not a 4 MiB segment */
    verify(p, 300000, "mmapped");
    free(p);
}
END_TEST

/* M_PERTURB as glibc: new blocks read ~byte, freed ones byte (past the free-list link). */
START_TEST(t_mallopt_perturb)
{
    ck_assert_int_eq(mallopt(M_PERTURB, 0xa5), 1);
    static const size_t sizes[] = {24, 200, 3000, 40000, 300000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *p = malloc(n);
        ck_assert_ptr_nonnull(p);
        for (size_t k = 0; k < n; k++)
            expect(p[k] == (0xa5 ^ 0xff), "malloc(%zu) byte %zu is %#x, not ~0xa5", n, k, p[k]);
        unsigned char *z = calloc(1, n);
        ck_assert(is_zero(z, n));
        free(z);
        memset(p, 0, n);
        free(p);
        if (n <= 40000)   /* a class block stays mapped: what free left in it */
            for (size_t k = 16; k < n; k++)
                expect(p[k] == 0xa5, "freed %zu-byte block: byte %zu is %#x, not 0xa5", n, k, p[k]);
    }
    /* a free from another thread's block is filled too */
    ck_assert_int_eq(mallopt(M_PERTURB, 0), 1);
    unsigned char *q = malloc(100);
    memset(q, 0, 100);
    ck_assert_int_eq(q[50], 0);   /* off again: nothing filled */
    free(q);
}
END_TEST

/* ----------------------------------------------------- the Universal CRT's _aligned_* */

/* Wine's tests of the runtime (msvcr90): alignment 0 is taken, and _aligned_msize
 * derives its answer from the alignment and offset it is given. */
START_TEST(t_aligned_runtime_behaviour)
{
    void *p = _aligned_malloc(100, opaque(0));
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % sizeof(void *), 0);
    memset(p, 1, 100);
    _aligned_free(p);
    p = _aligned_offset_malloc(100, opaque(0), 7);
    ck_assert_ptr_nonnull(p);
    memset(p, 1, 100);
    _aligned_free(p);

    unsigned char *mem = _aligned_offset_malloc(23, 16, 7);
    ck_assert_ptr_nonnull(mem);
    ck_assert_uint_eq((uintptr_t)(mem + 7) % 16, 0);
    memset(mem, 2, 23);
    ck_assert_uint_eq(_aligned_msize(mem, 16, 7), 23);
    ck_assert_uint_eq(_aligned_msize(mem, 15, 7), 24);
    ck_assert_uint_eq(_aligned_msize(mem, 11, 7), 28);
    ck_assert_uint_eq(_aligned_msize(mem, 1, 7), 39 - sizeof(void *));
    ck_assert_uint_eq(_aligned_msize(mem, 8, 0), 32);
    _aligned_free(mem);
    mem = _aligned_offset_malloc(3, 16, 0);
    memset(mem, 3, 3);
    ck_assert_uint_eq(_aligned_msize(mem, 16, 0), 3);
    ck_assert_uint_eq(_aligned_msize(mem, 11, 0), 8);
    _aligned_free(mem);
    errno = 0;
    ck_assert_uint_eq(_aligned_msize(NULL, 16, 0), (size_t)-1);
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

/* ------------------------------------------------------------------ honest figures */

START_TEST(t_trim_figures_are_honest)
{
    enum { N = 20000 };
    static char *blocks[N];
    uint64_t rng = 99;
    for (int i = 0; i < N; i++) {
        size_t n = rng_next(&rng) % 4000 + 16;
        blocks[i] = malloc(n);
        memset(blocks[i], 1, n);
    }
    for (int i = 0; i < N; i++)
        if (i % 10) {
            free(blocks[i]);
            blocks[i] = NULL;
        }
    crtheap_stats_t before, mid, after;
    crtheap_get_stats(&before);
    size_t first = crtheap_trim();
    crtheap_get_stats(&mid);
    /* nothing changed since: nothing goes back, and nothing is counted (no Check call in
     * between: one may allocate, and a refill that links blocks in released OS pages
     * makes them resident again) */
    size_t second = crtheap_trim();
    int trimmed = malloc_trim(0), heapmin = _heapmin();
    crtheap_get_stats(&after);
    ck_assert_uint_gt(first, 0);
    ck_assert_uint_eq(mid.released - before.released, first);
    ck_assert_msg(mid.committed < before.committed, "committed %zu -> %zu: did not fall", before.committed,
                  mid.committed);
    ck_assert_uint_eq(second, 0);
    ck_assert_int_eq(trimmed, 0);
    ck_assert_int_eq(heapmin, 0);
    ck_assert_uint_eq(after.released, mid.released);
    /* a real release is still reported */
    for (int i = 0; i < N; i++)
        free(blocks[i]);
    ck_assert_int_eq(malloc_trim(0), 1);
}
END_TEST

/* ------------------------------------------------------------------ options */

/* The probe prints crtheap_option_get before any allocation, then after one. */
static void run_probe(const char *env, const char *args, char *out, size_t cap, char *err, size_t errcap)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "env %s %s/probe_options %s 2>/tmp/crtheap-probe-%d.err", env, PROBE_DIR, args,
             (int)getpid());
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    ck_assert_int_eq(pclose(p), 0);
    char path[64];
    snprintf(path, sizeof path, "/tmp/crtheap-probe-%d.err", (int)getpid());
    FILE *e = fopen(path, "r");
    ck_assert_ptr_nonnull(e);
    n = fread(err, 1, errcap - 1, e);
    err[n] = 0;
    fclose(e);
    unlink(path);
}

START_TEST(t_options_environment_and_api)
{
    char out[512], err[512];
    run_probe("CRTHEAP_PURGE_DELAY_MS=777 CRTHEAP_HUGE_CACHE_MB=5", "", out, sizeof out, err, sizeof err);
    ck_assert_str_eq(out, "before 777 5 1\nafter 777 5 1\n");
    ck_assert_str_eq(err, "");
    /* a value set before the first allocation wins over the environment */
    run_probe("CRTHEAP_PURGE_DELAY_MS=777", "set 555", out, sizeof out, err, sizeof err);
    ck_assert_str_eq(out, "before 555 64 1\nafter 555 64 1\n");
    /* malformed and out-of-range values: a one-line warning each, the default kept */
    run_probe("CRTHEAP_PURGE_DELAY_MS=abc CRTHEAP_HUGE_CACHE_MB=-5 CRTHEAP_PURGER=12abc", "", out, sizeof out, err,
              sizeof err);
    ck_assert_str_eq(out, "before 100 64 1\nafter 100 64 1\n");
    ck_assert_msg(strstr(err, "crtheap: CRTHEAP_PURGE_DELAY_MS=abc: not a whole number; using 100\n") &&
                      strstr(err, "crtheap: CRTHEAP_HUGE_CACHE_MB=-5: out of range [0, 1048576]; using 64\n") &&
                      strstr(err, "crtheap: CRTHEAP_PURGER=12abc: not a whole number; using 1\n"),
                  "warnings: \"%s\"", err);
    /* CRTHEAP_VERBOSE=1: each option, its value and where it came from, when the
     * environment is read (a sanitizer runtime may allocate before main, so the probe
     * sets nothing here) */
    run_probe("CRTHEAP_VERBOSE=1 CRTHEAP_PURGE_DELAY_MS=777 CRTHEAP_HUGE_CACHE_MB=5", "", out, sizeof out, err,
              sizeof err);
    ck_assert_str_eq(err, "crtheap: option CRTHEAP_PURGE_DELAY_MS = 777 (environment)\n"
                          "crtheap: option CRTHEAP_HUGE_CACHE_MB = 5 (environment)\n"
                          "crtheap: option CRTHEAP_PURGER = 1 (default)\n"
                          "crtheap: option CRTHEAP_SHOW_STATS = 0 (default)\n"
                          "crtheap: option CRTHEAP_MESH = 1 (default)\n"
                          "crtheap: option CRTHEAP_MESH_DECAY_MS = -1 (default)\n");
    run_probe("CRTHEAP_VERBOSE=yes", "", out, sizeof out, err, sizeof err);
    ck_assert_str_eq(err, "crtheap: CRTHEAP_VERBOSE=yes: not 0 or 1; using 0\n");
    run_probe("CRTHEAP_PURGE_DELAY_MS=99999999999999999999", "", out, sizeof out, err, sizeof err);
    ck_assert_str_eq(out, "before 100 64 1\nafter 100 64 1\n");
    ck_assert_ptr_nonnull(strstr(err, "out of range"));
    /* the API rejects what the environment would */
    errno = 0;
    ck_assert_int_eq(crtheap_option_set(CRTHEAP_OPTION_PURGE_DELAY_MS, -2), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(crtheap_option_set(CRTHEAP_OPTION_HUGE_CACHE_MB, (long)1 << 40), -1);
    ck_assert_int_eq(crtheap_option_set(CRTHEAP_OPTION_COUNT, 1), -1);
    ck_assert_int_eq(crtheap_option_get(CRTHEAP_OPTION_COUNT), -1);
}
END_TEST

/* CRTHEAP_SHOW_STATS=1: every malloc, free and realloc counted exactly (the probe makes
 * 1000, 400 and 10 of them), the requested bytes followed, a JSON object with the same
 * figures, and the report at exit on stderr.  Off, nothing is counted. */
START_TEST(t_show_stats_counts_and_report)
{
    char out[16384], err[16384];
    run_probe("CRTHEAP_SHOW_STATS=1", "count", out, sizeof out, err, sizeof err);
    unsigned long long m = 0, f = 0, r = 0;
    long long q = 0;
    int fits = 0;
    int used = 0;
    ck_assert_int_eq(sscanf(out, "count %llu %llu %llu %lld %d %n", &m, &f, &r, &q, &fits, &used), 5);
    expect(m == 1000 && f == 400 && r == 10, "counted %llu mallocs, %llu frees, %llu reallocs", m, f, r);
    expect(q == 1000 * 100 - 400 * 100 - 10 * 10, "requested bytes moved by %lld", q);
    const char *json = out + used;
    expect(fits && json[0] == '{' && strstr(json, "\"counting\":true") && strstr(json, "\"mallocs\":") &&
               strstr(json, "\"classes\":[{\"block_size\":") && strstr(json, "]}\n"),
           "JSON: %.300s", json);
    expect(strstr(err, "crtheap: statistics of process") && strstr(err, "calls: malloc ") &&
               strstr(err, "requested by live blocks") && strstr(err, "blocks in use"),
           "report at exit: \"%.400s\"", err);
    run_probe("", "count", out, sizeof out, err, sizeof err);
    ck_assert_int_eq(sscanf(out, "count %llu %llu %llu %lld %d %n", &m, &f, &r, &q, &fits, &used), 5);
    expect(m == 0 && f == 0 && r == 0 && q == 0 && strstr(out, "\"counting\":false") && err[0] == 0,
           "counting off: %llu %llu %llu %lld, stderr \"%s\"", m, f, r, q, err);
}
END_TEST

/* ------------------------------------------------------------ a tight address space */

static size_t address_space_now(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(f);
    unsigned long pages = 0;
    ck_assert_int_eq(fscanf(f, "%lu", &pages), 1);
    fclose(f);
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* Under RLIMIT_AS a few MiB above the program's use, an array grown by realloc gets
 * about as far as glibc gets it: segments shrink to what is left, a class with no room
 * for its page gives a block of its own, and huge blocks grow in place.  glibc reaches
 * the limit less a page (4095 KiB of 4); crtheap reaches 4032 KiB in a fresh process and
 * about 2 MiB here, where the test framework's heap is already there, because the move
 * from a large block (up to 2 MiB, in a segment) to a huge one copies.  Before, it
 * stopped at 32 elements.  Then the heap still works. */
START_TEST(t_tight_address_space)
{
    enum { EXTRA_MIB = 4 };
    free(malloc(100));
    size_t now = address_space_now();
    struct rlimit lim = {now + ((size_t)EXTRA_MIB << 20), now + ((size_t)EXTRA_MIB << 20)};
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &lim), 0);
    long *a = NULL;
    size_t n = 0;
    for (;;) {
        long *b = realloc(a, (n + 1) * sizeof *a);
        if (!b) {
            ck_assert_int_eq(errno, ENOMEM);
            break;
        }
        a = b;
        a[n] = (long)n;
        n++;
    }
    for (size_t i = 0; i < n; i++)
        expect(a[i] == (long)i, "element %zu changed", i);
    fprintf(stderr, "tight address space: %zu KiB of %d MiB reached\n", n * sizeof *a / 1024, EXTRA_MIB);
    ck_assert_msg(n * sizeof *a >= ((size_t)EXTRA_MIB << 20) / 2, "the array stopped at %zu elements", n);
    free(a);
    for (int i = 0; i < 1000; i++) {   /* the heap works again once memory is free */
        char *p = malloc(1000);
        ck_assert_ptr_nonnull(p);
        stamp(p, 1000);
        verify(p, 1000, "after the limit");
        free(p);
    }
    ck_assert_int_eq(_heapchk(), _HEAPOK);
}
END_TEST

/* ------------------------------------------------------------------ sized frees */

void *_Znwm(size_t n);
void *_ZnwmSt11align_val_t(size_t n, size_t alignment);
void _ZdlPvm(void *p, size_t n);
void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t alignment);

/* The right size is accepted everywhere: small, large, huge, 0, calloc, realloc,
 * aligned, and C++'s sized delete. */
START_TEST(t_sized_frees_with_the_right_size)
{
    static const size_t sizes[] = {0, 1, 16, 100, 1000, 5000, 100000, 1u << 20, 5u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *p = malloc(n);
        stamp(p, n);
        verify(p, n, "free_sized");
        free_sized(p, n);
        p = calloc(1, n);
        ck_assert(is_zero(p, n));
        free_sized(p, n);
        p = realloc(malloc(7), n ? n : 1);
        free_sized(p, n ? n : 1);
        p = aligned_alloc(4096, n);
        stamp(p, n);
        free_aligned_sized(p, 4096, n);
        p = _Znwm(n);
        stamp(p, n);
        _ZdlPvm(p, n);
        p = _ZnwmSt11align_val_t(n, 64);
        ck_assert_uint_eq((uintptr_t)p % 64, 0);
        stamp(p, n);
        _ZdlPvmSt11align_val_t(p, n, 64);
    }
    free_sized(NULL, 10);
    ck_assert_int_eq(_heapchk(), _HEAPOK);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dropin");
    add_case(s, "realloc", t_realloc_keeps_usable_bytes, 30);
    add_case(s, "aligned_realloc", t_aligned_realloc_keeps_data, 30);
    add_case(s, "recalloc", t_recalloc_zeroes_from_requested_size, 30);
    add_case(s, "fork_stdio", t_fork_while_threads_use_stdio, 120);
    add_case(s, "fork_mallopt", t_fork_during_mallopt, 120);
    add_case(s, "fork_signal", t_fork_from_signal_handler, 60);
    add_case(s, "spawn", t_spawn_vfork_and_threads_in_child, 120);
    add_case(s, "purger_single", t_no_purger_in_single_thread, 30);
    add_case(s, "purger_invisible", t_purger_invisible, 30);
    add_case(s, "purger_signals", t_purger_leaves_signals_alone, 30);
    add_case(s, "purger_exit", t_purger_never_holds_exit, 30);
    add_case(s, "purger_off", t_purger_option_off, 30);
    add_case(s, "enomem", t_enomem_in_errno, 30);
    add_case(s, "impossible", t_impossible_size_fails_at_once, 30);
    add_case(s, "malloc_stats", t_malloc_stats_not_a_cancellation_point, 30);
    add_case(s, "mallopt", t_mallopt_parameters, 30);
    add_case(s, "perturb", t_mallopt_perturb, 30);
    add_case(s, "aligned_runtime", t_aligned_runtime_behaviour, 30);
    add_case(s, "trim_figures", t_trim_figures_are_honest, 60);
    add_case(s, "options", t_options_environment_and_api, 30);
    add_case(s, "show_stats", t_show_stats_counts_and_report, 30);
    add_case(s, "sized", t_sized_frees_with_the_right_size, 30);
    add_case(s, "rlimit_as", t_tight_address_space, 60);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
