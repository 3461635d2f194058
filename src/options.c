/* options.c — crtheap's options: defaults, CRTHEAP_* environment variables, the
 * crtheap_option_get/set API, and glibc's mallopt.
 *
 * Precedence: a value set with crtheap_option_set (or mallopt) wins over the
 * environment, which wins over the default.  The environment is read once, before the
 * first allocation or at the first crtheap_option_get/set, whichever comes first; a
 * malformed or out-of-range value is reported on stderr in one line and the default is
 * kept. */
#define _GNU_SOURCE
#include "internal.h"
#include "crtheap.h"
#include <errno.h>
#include <malloc.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#define PURGE_DELAY_DEFAULT_MS 100
#define PURGE_DELAY_MAX_MS     (24L * 3600 * 1000)   /* a day: longer is "never" (-1) */
#define HUGE_CACHE_MAX_MB      (1L << 20)            /* 1 TiB: keeps `mb << 20` in range */

long option_purge_delay_ms = PURGE_DELAY_DEFAULT_MS;
long option_huge_cache_mb = 64;
long option_purger = 1;
size_t option_mmap_threshold = LARGE_MAX + 1;
_Atomic int option_perturb_byte;

enum option_source { FROM_DEFAULT, FROM_ENVIRONMENT, FROM_API };

static struct option_desc {
    const char *env;
    long *slot;
    long min, max, fallback;
    enum option_source source;
} options[CRTHEAP_OPTION_COUNT] = {
    [CRTHEAP_OPTION_PURGE_DELAY_MS] = { "CRTHEAP_PURGE_DELAY_MS", &option_purge_delay_ms, -1, PURGE_DELAY_MAX_MS,
                                        PURGE_DELAY_DEFAULT_MS, FROM_DEFAULT },
    [CRTHEAP_OPTION_HUGE_CACHE_MB] = { "CRTHEAP_HUGE_CACHE_MB", &option_huge_cache_mb, 0, HUGE_CACHE_MAX_MB, 64,
                                       FROM_DEFAULT },
    [CRTHEAP_OPTION_PURGER] = { "CRTHEAP_PURGER", &option_purger, 0, 1, 1, FROM_DEFAULT },
};

static void warn_option(const char *name, const char *value, const char *problem, long used)
{
    char line[256];
    int n = snprintf(line, sizeof line, "crtheap: %s=%s: %s; using %ld\n", name, value, problem, used);
    if (n > 0)
        os_write_stderr(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void option_from_env(struct option_desc *o)
{
    const char *s = getenv(o->env);
    if (!s || o->source != FROM_DEFAULT)
        return;   /* unset, or crtheap_option_set came first: the program's word wins */
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0)
        warn_option(o->env, s, "not a whole number", *o->slot);
    else if (errno == ERANGE || v < o->min || v > o->max) {
        char range[64];
        snprintf(range, sizeof range, "out of range [%ld, %ld]", o->min, o->max);
        warn_option(o->env, s, range, *o->slot);
    } else {
        *o->slot = v;
        o->source = FROM_ENVIRONMENT;
    }
}

static _Atomic int options_state;   /* 0 not read, 1 reading, 2 read */

/* Read the environment once; every entry point that needs an option calls this. */
void options_init(void)
{
    if (atomic_load_explicit(&options_state, memory_order_acquire) == 2)
        return;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&options_state, &expected, 1)) {
        while (atomic_load(&options_state) != 2)
            sched_yield();
        return;
    }
    int saved = errno;
    for (int i = 0; i < CRTHEAP_OPTION_COUNT; i++)
        option_from_env(&options[i]);
    errno = saved;
    atomic_store(&options_state, 2);
}

__attribute__((visibility("default"))) long crtheap_option_get(crtheap_option_t option)
{
    if ((unsigned)option >= CRTHEAP_OPTION_COUNT) {
        errno = EINVAL;
        return -1;
    }
    options_init();
    return *options[option].slot;
}

__attribute__((visibility("default"))) int crtheap_option_set(crtheap_option_t option, long value)
{
    if ((unsigned)option >= CRTHEAP_OPTION_COUNT || value < options[option].min || value > options[option].max) {
        errno = EINVAL;
        return -1;
    }
    options_init();
    *options[option].slot = value;
    options[option].source = FROM_API;
    purger_wake();   /* the decay's timing or the purger's presence may have changed */
    return 0;
}

/* ---- glibc's mallopt: the parameters that have a meaning here return 1 ----
 *   M_TRIM_THRESHOLD  negative: no automatic release (as glibc stops trimming), else on
 *   M_MMAP_THRESHOLD  blocks from this size up (above the size classes) get a mapping
 *                     of their own; glibc's range, up to 32 MiB
 *   M_PERTURB         fill new blocks with ~byte and freed ones with byte, as glibc does
 *   M_TOP_PAD, M_MXFAST, M_ARENA_MAX, M_ARENA_TEST, M_CHECK_ACTION
 *                     accepted: there is no top chunk, no fastbins, one heap per thread,
 *                     and misuse is always diagnosed and aborts */
#define GLIBC_MMAP_THRESHOLD_MAX ((size_t)32 << 20)
#define GLIBC_MXFAST_MAX (80 * sizeof(size_t) / 4)

__attribute__((visibility("default"))) int mallopt(int param, int value)
{
    options_init();
    switch (param) {
    case M_TRIM_THRESHOLD:
        if (value < 0)
            option_purge_delay_ms = -1;
        else if (option_purge_delay_ms < 0)
            option_purge_delay_ms = options[CRTHEAP_OPTION_PURGE_DELAY_MS].fallback;
        options[CRTHEAP_OPTION_PURGE_DELAY_MS].source = FROM_API;
        purger_wake();
        return 1;
    case M_MMAP_THRESHOLD:
        if (value < 0 || (size_t)value > GLIBC_MMAP_THRESHOLD_MAX)
            return 0;
        option_mmap_threshold = (size_t)value;
        return 1;
    case M_PERTURB:
        atomic_store(&option_perturb_byte, value & 0xff);
        heap_set_diverted((value & 0xff) != 0);
        return 1;
    case M_MXFAST:
        return value >= 0 && (size_t)value <= GLIBC_MXFAST_MAX;
    case M_TOP_PAD:
    case M_ARENA_MAX:
    case M_ARENA_TEST:
    case M_CHECK_ACTION:
        return 1;
    default:
        return 0;
    }
}
