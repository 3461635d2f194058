/* options.c — crtheap's options: defaults, CRTHEAP_* environment variables, and the
 * crtheap_option_get/set API. */
#include "internal.h"
#include "crtheap.h"
#include <errno.h>
#include <stdlib.h>

long option_purge_delay_ms = 100;
long option_huge_cache_mb = 64;

static long *option_slot(crtheap_option_t option)
{
    switch (option) {
    case CRTHEAP_OPTION_PURGE_DELAY_MS: return &option_purge_delay_ms;
    case CRTHEAP_OPTION_HUGE_CACHE_MB:  return &option_huge_cache_mb;
    default:                            return NULL;
    }
}

static void option_from_env(const char *name, long *slot, long min)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end == 0 && v >= min)
        *slot = v;
}

void options_init(void)
{
    option_from_env("CRTHEAP_PURGE_DELAY_MS", &option_purge_delay_ms, -1);
    option_from_env("CRTHEAP_HUGE_CACHE_MB", &option_huge_cache_mb, 0);
}

__attribute__((visibility("default"))) long crtheap_option_get(crtheap_option_t option)
{
    long *slot = option_slot(option);
    if (!slot) {
        errno = EINVAL;
        return -1;
    }
    return *slot;
}

__attribute__((visibility("default"))) int crtheap_option_set(crtheap_option_t option, long value)
{
    long *slot = option_slot(option);
    if (!slot || value < (option == CRTHEAP_OPTION_PURGE_DELAY_MS ? -1 : 0)) {
        errno = EINVAL;
        return -1;
    }
    *slot = value;
    return 0;
}
