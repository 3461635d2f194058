/* statm.h — the process's resident set, read from /proc/self/statm with plain system
 * calls (no stdio: nothing is allocated).  A header of its own because two programs that
 * must not share code use it: the library's sampler (sample.c) and the standalone probe
 * that `crtheap compare` preloads under any allocator (tools/probe.c). */
#ifndef CRTHEAP_STATM_H
#define CRTHEAP_STATM_H

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Resident bytes now, 0 when /proc cannot tell. */
static inline size_t statm_resident_bytes(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    const char *p = strchr(buf, ' ');   /* the second field: resident pages */
    return p ? (size_t)strtoull(p + 1, NULL, 10) * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

#endif
