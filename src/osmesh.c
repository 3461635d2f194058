/* osmesh.c — the kernel calls of the meshing trim (mesh.c): userfaultfd write
 * protection, the memfd that meshed OS pages share, remapping an OS page in place, and
 * the process's count of mappings.  Like os.c: int results are 0 or -1 with errno set. */
#define _GNU_SOURCE
#include "modules.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif

/* A userfaultfd object for write protection of anonymous and shared memory.  With
 * kernel_faults, a write from a system call into a protected page waits like a thread's
 * write does; that needs CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1.  Without, only
 * the program's own writes wait and the kernel's fail with EFAULT.  -1 when refused. */
int os_uffd_open(bool kernel_faults, bool *unpopulated)
{
    /* unpopulated entries protected too (Linux 6.4) where the kernel knows the feature */
    static const uint64_t wanted[] = { UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_WP_UNPOPULATED,
                                       UFFD_FEATURE_WP_HUGETLBFS_SHMEM };
    for (size_t k = 0; k < sizeof wanted / sizeof wanted[0]; k++) {
        int flags = O_CLOEXEC | O_NONBLOCK | (kernel_faults ? 0 : UFFD_USER_MODE_ONLY);
        int fd = (int)syscall(SYS_userfaultfd, flags);
        if (fd < 0)
            return -1;
        struct uffdio_api api = { .api = UFFD_API, .features = wanted[k] };
        if (ioctl(fd, UFFDIO_API, &api) == 0 && (api.features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM) &&
            (api.ioctls & (1ull << _UFFDIO_REGISTER))) {
            *unpopulated = (api.features & UFFD_FEATURE_WP_UNPOPULATED) != 0;
            return fd;
        }
        close(fd);
    }
    errno = ENOSYS;
    return -1;
}

int os_uffd_register(int fd, void *p, size_t size, bool on)
{
    struct uffdio_range range = { (uintptr_t)p, size };
    if (!on)
        return ioctl(fd, UFFDIO_UNREGISTER, &range) == 0 ? 0 : -1;
    struct uffdio_register reg = { .range = range, .mode = UFFDIO_REGISTER_MODE_WP };
    return ioctl(fd, UFFDIO_REGISTER, &reg) == 0 ? 0 : -1;
}

/* Write-protect [p, p + size) (registered), or lift the protection and wake the
 * writers that wait on it. */
int os_uffd_protect(int fd, void *p, size_t size, bool on)
{
    struct uffdio_writeprotect wp = { { (uintptr_t)p, size }, on ? UFFDIO_WRITEPROTECT_MODE_WP : 0 };
    return ioctl(fd, UFFDIO_WRITEPROTECT, &wp) == 0 ? 0 : -1;
}

/* Wake the writers that wait on [p, p + size): they retry, on whatever is mapped there now. */
int os_uffd_wake(int fd, void *p, size_t size)
{
    struct uffdio_range range = { (uintptr_t)p, size };
    return ioctl(fd, UFFDIO_WAKE, &range) == 0 ? 0 : -1;
}

int os_memfd(void)
{
    return memfd_create("crtheap-mesh", MFD_CLOEXEC);
}

int os_file_resize(int fd, size_t size)
{
    return ftruncate(fd, (off_t)size);
}

/* Give back the file memory under [p, p + size), a shared mapping of the file. */
int os_punch_mapped(void *p, size_t size)
{
    return madvise(p, size, MADV_REMOVE);
}

/* The identity of what fd refers to, so that a descriptor the program closed and
 * reopened as something else is not taken for crtheap's. */
bool os_file_id(int fd, uint64_t id[2])
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return false;
    id[0] = (uint64_t)st.st_dev;
    id[1] = (uint64_t)st.st_ino;
    return true;
}

/* Map size bytes of file fd from offset, shared, at `at` (replacing what is there), or
 * anywhere when at is NULL.  In place, through syscall(2) rather than libc's wrapper:
 * ThreadSanitizer's interceptor would take the remap of pages the program is writing
 * for a write by this thread (the write protection orders them; it cannot see that). */
void *os_map_file(void *at, size_t size, int fd, size_t offset)
{
    long flags = MAP_SHARED | (at ? MAP_FIXED : 0), prot = PROT_READ | PROT_WRITE;
    void *p = at ? (void *)syscall(SYS_mmap, at, size, prot, flags, fd, (off_t)offset)
                 : mmap(NULL, size, (int)prot, (int)flags, fd, (off_t)offset);
    return p == MAP_FAILED ? NULL : p;
}

/* Is every page of [p, p + size) mapped (whatever backs it)? */
bool os_mapped(const void *p, size_t size)
{
    unsigned char vec[1];
    for (uintptr_t a = (uintptr_t)p; a < (uintptr_t)p + size; a += OS_PAGE_SIZE)
        if (mincore((void *)a, OS_PAGE_SIZE, vec) != 0)
            return false;   /* ENOMEM: nothing mapped there */
    return true;
}

/* Private zero pages in place of whatever [at, at + size) maps. */
int os_map_zero_fixed(void *at, size_t size)
{
    void *p = mmap(at, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    return p == MAP_FAILED ? -1 : 0;
}

/* Move the pages of [from, from + size) to `to`, replacing what is mapped there, in one
 * step: no moment where `to` maps nothing. */
int os_move_fixed(void *from, size_t size, void *to)
{
    void *p = mremap(from, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
    return p == MAP_FAILED ? -1 : 0;
}

static size_t read_number(const char *path)
{
    char buf[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    size_t v = 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
        v = v * 10 + (size_t)(buf[i] - '0');
    return v;
}

/* vm.max_map_count (0 if unreadable). */
size_t os_max_map_count(void)
{
    return read_number("/proc/sys/vm/max_map_count");
}

/* The process's mappings now: the lines of /proc/self/maps (SIZE_MAX if unreadable). */
size_t os_map_count(void)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return SIZE_MAX;
    char buf[4096];   /* the purger's stack is small */
    size_t lines = 0;
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;)
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
    close(fd);
    return lines;
}

/* A pipe for fork's handshake, and its byte. */
int os_pipe(int fds[2])
{
    return pipe2(fds, O_CLOEXEC);
}

void os_close(int fd)
{
    if (fd >= 0)
        close(fd);
}

int os_write_byte(int fd)
{
    char c = 1;
    ssize_t n;
    do
        n = write(fd, &c, 1);
    while (n < 0 && errno == EINTR);
    return n == 1 ? 0 : -1;
}

/* Wait for a byte or end of file (the writer closed or died). */
void os_read_byte(int fd)
{
    char c;
    ssize_t n;
    do
        n = read(fd, &c, 1);
    while (n < 0 && errno == EINTR);
}
