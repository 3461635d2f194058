/* tsan_trim.c — _heapmin racing with threads that allocate and free, for ThreadSanitizer.
 *
 * The workload of tests/race.h: four threads allocate, check and free (a quarter of the
 * frees cross-thread) while the main thread calls _heapmin over and over.  `make tsan`
 * builds it with the library sources under -fsanitize=thread, crtheap's standard names
 * renamed so that TSan's own malloc stays the process allocator, and runs it: it exits 0
 * when TSan reports nothing, every block kept its contents and _heapchk is _HEAPOK.
 * TSAN_TRIM_SECONDS sets the length (default 2). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>

#include "race.h"

int main(void)
{
    const char *env = getenv("TSAN_TRIM_SECONDS");
    race_result_t r = race_heapmin(4, env ? atof(env) : 2);
    int chk = _heapchk();
    printf("tsan_trim: %zu _heapmin calls (%zu failed), %zu malloc/free ops, %zu corrupted, _heapchk %d\n",
           r.trims, r.trim_failures, r.ops, r.bad, chk);
    return (r.trim_failures || r.bad || chk != _HEAPOK) ? 1 : 0;
}
