/* probe.c — libcrtheap-probe.so, preloaded by `crtheap compare` into both runs of a
 * program (under crtheap and under the system allocator): at exit, when
 * CRTHEAP_PROBE_PID is this process's id, it writes "peak_rss_bytes rss_bytes" to
 * CRTHEAP_PROBE_FILE.  It allocates nothing and calls no allocator. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "statm.h"   /* header-only: the probe links nothing of crtheap */

__attribute__((destructor(101))) static void probe_at_exit(void)
{
    const char *file = getenv("CRTHEAP_PROBE_FILE"), *pid = getenv("CRTHEAP_PROBE_PID");
    if (!file || !pid || strtol(pid, NULL, 10) != (long)getpid())
        return;
    struct rusage ru;
    size_t peak = getrusage(RUSAGE_SELF, &ru) == 0 ? (size_t)ru.ru_maxrss * 1024 : 0;
    char line[64];
    int n = snprintf(line, sizeof line, "%zu %zu\n", peak, statm_resident_bytes());
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (n > 0 && write(fd, line, (size_t)n) != n)
            n = -1;
        close(fd);
    }
}
