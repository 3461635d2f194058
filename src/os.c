/* os.c — the OS seam: the only file that calls mmap, munmap, madvise, process_madvise and
 * membarrier.  Contract: pointer results are NULL on failure with errno set (ENOMEM);
 * int results are 0 on success, -1 with errno set. */
#define _GNU_SOURCE
#include "modules.h"
#include <errno.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void *os_map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

static void *map_fixed_noreplace(uintptr_t at, size_t size)
{
    void *p = mmap((void *)at, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if ((uintptr_t)p != at) {   /* a kernel that ignores the flag treats it as a hint */
        munmap(p, size);
        return NULL;
    }
    return p;
}

/* Under a tight address-space limit (RLIMIT_AS) there is no room to over-map: map just
 * `size` where the kernel likes, and if that is not aligned, try the aligned addresses
 * on either side of it, which are mostly free (the kernel found a hole there). */
static void *os_map_aligned_tight(size_t size, size_t alignment)
{
    uint8_t *p = os_map(size);
    if (!p)
        return NULL;
    uintptr_t a = (uintptr_t)p;
    if ((a & (alignment - 1)) == 0)
        return p;
    munmap(p, size);
    enum { TRIES = 8 };   /* aligned slots on either side of the hole the kernel chose */
    uintptr_t down = a & ~(uintptr_t)(alignment - 1);
    for (uintptr_t k = 0; k < TRIES; k++) {
        void *q = map_fixed_noreplace(down - k * alignment, size);
        if (!q)
            q = map_fixed_noreplace(down + (k + 1) * alignment, size);
        if (q)
            return q;
    }
    errno = ENOMEM;
    return NULL;
}

/* Over-map by `alignment`, then give back the unaligned head and the tail. */
void *os_map_aligned(size_t size, size_t alignment)
{
    static _Atomic uintptr_t hint;   /* next aligned address: mostly avoids the over-map */
    uintptr_t want = atomic_load_explicit(&hint, memory_order_relaxed);
    want = (want + alignment - 1) & ~(uintptr_t)(alignment - 1);   /* after a short mapping */
    if (want) {
        void *p = mmap((void *)want, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        if (p != MAP_FAILED) {
            if (((uintptr_t)p & (alignment - 1)) == 0) {
                atomic_store_explicit(&hint, (uintptr_t)p + size, memory_order_relaxed);
                return p;
            }
            munmap(p, size);
        }
    }
    if (size + alignment < size) {
        errno = ENOMEM;
        return NULL;
    }
    uint8_t *raw = os_map(size + alignment);
    if (!raw)
        return os_map_aligned_tight(size, alignment);
    uint8_t *aligned = (uint8_t *)(((uintptr_t)raw + alignment - 1) & ~(uintptr_t)(alignment - 1));
    if (aligned > raw)
        munmap(raw, (size_t)(aligned - raw));
    size_t tail = (size_t)(raw + size + alignment - (aligned + size));
    if (tail)
        munmap(aligned + size, tail);
    atomic_store_explicit(&hint, (uintptr_t)aligned + size, memory_order_relaxed);
    return aligned;
}

/* Grow or shrink the mapping [p, p + old_size) to new_size where it is (mremap without
 * MREMAP_MAYMOVE: the pages after it must be free).  0, or -1 with errno. */
int os_remap_in_place(void *p, size_t old_size, size_t new_size)
{
    return mremap(p, old_size, new_size, 0) == MAP_FAILED ? -1 : 0;
}

int os_unmap(void *p, size_t size)
{
    return munmap(p, size);
}

int os_release(void *p, size_t size)
{
    return madvise(p, size, MADV_DONTNEED);
}

/* Bytes of the mapped range [p, p + size) that are resident now (mincore(2)), counted
 * 16 MiB at a time; 0 for a range the kernel cannot report. */
size_t os_resident_bytes(const void *p, size_t size)
{
    enum { CHUNK_PAGES = 4096 };
    unsigned char vec[CHUNK_PAGES];
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)(OS_PAGE_SIZE - 1);
    uintptr_t end = (uintptr_t)p + size;
    size_t pages = 0;
    while (a < end) {
        size_t n = (end - a + OS_PAGE_SIZE - 1) / OS_PAGE_SIZE;
        if (n > CHUNK_PAGES)
            n = CHUNK_PAGES;
        if (mincore((void *)a, n * OS_PAGE_SIZE, vec) != 0)
            return pages * OS_PAGE_SIZE;
        for (size_t i = 0; i < n; i++)
            pages += vec[i] & 1;
        a += n * OS_PAGE_SIZE;
    }
    return pages * OS_PAGE_SIZE;
}

/* Release many ranges with one process_madvise(2): the kernel batches the TLB flushes
 * that one madvise per range would pay each (an IPI to every CPU running this process).
 * Falls back to one madvise per range where process_madvise cannot do MADV_DONTNEED.
 * Returns 0, or -1 with errno from the first range the kernel refused. */
int os_release_many(struct iovec *ranges, size_t count)
{
    static _Atomic int pidfd = -1;
    static _Atomic pid_t pidfd_owner;   /* a forked child must open its own */
    static _Atomic bool unsupported;
    size_t done = 0;
    if (!atomic_load_explicit(&unsupported, memory_order_relaxed) && count > 1) {
        pid_t self = getpid();
        int fd = atomic_load(&pidfd);
        if (fd < 0 || atomic_load(&pidfd_owner) != self) {
            fd = (int)syscall(SYS_pidfd_open, self, 0);
            atomic_store(&pidfd, fd);
            atomic_store(&pidfd_owner, self);
        }
        while (fd >= 0 && done < count) {
            size_t batch = count - done < 1024 ? count - done : 1024;   /* UIO_MAXIOV */
            long r = syscall(SYS_process_madvise, fd, ranges + done, batch, MADV_DONTNEED, 0);
            if (r < 0) {
                atomic_store(&unsupported, true);
                break;
            }
            /* a short count stops at a range it could not do: finish with madvise */
            size_t bytes = (size_t)r;
            while (done < count && bytes >= ranges[done].iov_len) {
                bytes -= ranges[done].iov_len;
                done++;
            }
            if (bytes != 0 || done < count)
                break;
        }
    }
    int result = 0;
    for (; done < count; done++) {
        if (madvise(ranges[done].iov_base, ranges[done].iov_len, MADV_DONTNEED) != 0 && result == 0)
            result = -1;
    }
    return result;
}

/* Fault in [p, p + size) writable and zero where nothing is mapped (MADV_POPULATE_WRITE,
 * Linux 5.14): -1 where the kernel cannot, and nothing happened then. */
int os_populate_write(void *p, size_t size)
{
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
    return madvise(p, size, MADV_POPULATE_WRITE);
}

/* Whether the kernel gives transparent huge pages to all anonymous memory ("[always]" in
 * /sys/kernel/mm/transparent_hugepage/enabled), read once. */
bool os_thp_always(void)
{
    static _Atomic int state;   /* 0 unknown, 1 no, 2 yes */
    int s = atomic_load_explicit(&state, memory_order_relaxed);
    if (s == 0) {
        char text[128] = "";
        int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = read(fd, text, sizeof text - 1);
            text[n > 0 ? n : 0] = '\0';
            close(fd);
        }
        s = strstr(text, "[always]") ? 2 : 1;
        atomic_store_explicit(&state, s, memory_order_relaxed);
    }
    return s == 2;
}

/* Ask for transparent huge pages on a range that will be touched whole (huge blocks):
 * one fault per 2 MiB instead of 512.  Advice only: failure changes nothing. */
void os_advise_huge_pages(void *p, size_t size)
{
    madvise(p, size, MADV_HUGEPAGE);
}

/* An asymmetric fence: every running thread of the process executes a full memory
 * barrier before this returns.  Falls back to mprotect, whose TLB shootdown IPIs
 * serialize the other CPUs as well, where membarrier is unavailable. */
static _Atomic int membarrier_mode;   /* 0 unknown, 1 membarrier, 2 mprotect */

static int membarrier_register(void)
{
    int m = atomic_load_explicit(&membarrier_mode, memory_order_acquire);
    if (m == 0) {
        long ok = syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0);
        m = ok == 0 ? 1 : 2;
        atomic_store_explicit(&membarrier_mode, m, memory_order_release);
    }
    return m;
}

/* Registered at load, while the process most likely has one thread: the kernel then has
 * nobody to synchronize with and the call costs a microsecond.  Registered at the first
 * _heapmin of a threaded process instead, it waits for an RCU grace period (5.4 ms
 * measured, all of it inside the trim).  A library that a threaded process dlopens pays
 * that wait in dlopen instead. */
__attribute__((constructor)) static void membarrier_register_early(void)
{
    membarrier_register();
}

int os_membarrier(void)
{
    int m = membarrier_register();
    if (m == 1 && syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
        return 0;
    static uint8_t *dummy;
    if (!dummy) {
        uint8_t *d = os_map(OS_PAGE_SIZE);
        if (!d)
            return -1;
        dummy = d;
    }
    /* Touch, then drop write permission: the kernel must flush every CPU's TLB entry. */
    __atomic_store_n(dummy, 1, __ATOMIC_SEQ_CST);
    if (mprotect(dummy, OS_PAGE_SIZE, PROT_READ) != 0)
        return -1;
    return mprotect(dummy, OS_PAGE_SIZE, PROT_READ | PROT_WRITE);
}

uint64_t os_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void os_write_stderr(const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

bool os_random_bytes(void *out, size_t n)
{
    return getrandom(out, n, GRND_NONBLOCK) == (ssize_t)n;
}

/* Bytes the process may still map under RLIMIT_AS (SIZE_MAX when there is no limit):
 * the limit less the size of the address space now (/proc/self/statm). */
size_t os_address_space_left(void)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_AS, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY)
        return SIZE_MAX;
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return SIZE_MAX;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return SIZE_MAX;
    buf[n] = 0;
    size_t used = (size_t)strtoull(buf, NULL, 10) * OS_PAGE_SIZE;
    return lim.rlim_cur > used ? (size_t)lim.rlim_cur - used : 0;
}

/* ---- an event to sleep on without a timeout (the purger's) ---- */

event_t decay_work;

uint32_t os_event_prepare(event_t *e, bool urgent_only)
{
    uint32_t seq = atomic_load(&e->seq);
    atomic_store(&e->waiting, urgent_only ? EVENT_WAITING_URGENT : EVENT_WAITING_ANY);
    atomic_thread_fence(memory_order_seq_cst);   /* the store before the caller's look for work
                                                    (a seq_cst store alone does not order later
                                                    relaxed loads on arm64) */
    return seq;
}

/* Sleep until a signal after os_event_prepare, for at most timeout_ms (negative: no
 * limit), or a spurious return. */
void os_event_wait(event_t *e, uint32_t seq, long timeout_ms)
{
    struct timespec ts = { timeout_ms / 1000, (timeout_ms % 1000) * 1000000L };
    syscall(SYS_futex, &e->seq, FUTEX_WAIT_PRIVATE, seq, timeout_ms < 0 ? NULL : &ts, NULL, 0);
}

void os_event_done(event_t *e)
{
    atomic_store(&e->waiting, 0);
}

void os_event_signal(event_t *e, bool urgent)
{
    atomic_thread_fence(memory_order_seq_cst);   /* the work published before this is seen */
    int waiting = atomic_load_explicit(&e->waiting, memory_order_relaxed);
    if (waiting == EVENT_WAITING_ANY || (urgent && waiting == EVENT_WAITING_URGENT)) {
        atomic_fetch_add(&e->seq, 1);
        syscall(SYS_futex, &e->seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
}
