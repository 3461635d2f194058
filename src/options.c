/* options.c — crtheap's options: the values every layer reads, their defaults and
 * ranges, and the CRTHEAP_* environment variables.  The entry points that change them
 * at run time (crtheap_option_get/set, mallopt) are in control.c.
 *
 * Precedence: a value set with crtheap_option_set (or mallopt) wins over the
 * environment, which wins over the default.  The environment is read once, before the
 * first allocation or at the first crtheap_option_get/set, whichever comes first; a
 * malformed or out-of-range value is reported on stderr in one line and the default is
 * kept. */
#define _GNU_SOURCE
#include "modules.h"
#include "crtheap.h"
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PURGE_DELAY_DEFAULT_MS 100
#define PURGE_DELAY_MAX_MS     (24L * 3600 * 1000)   /* a day: longer is "never" (-1) */
#define HUGE_CACHE_MAX_MB      (1L << 20)            /* 1 TiB: keeps `mb << 20` in range */

long option_purge_delay_ms = PURGE_DELAY_DEFAULT_MS;
long option_huge_cache_mb = 64;
long option_purger = 1;
long option_show_stats = 0;
long option_mesh = MESH_ON;
long option_mesh_decay_ms = -1;
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
    [CRTHEAP_OPTION_SHOW_STATS] = { "CRTHEAP_SHOW_STATS", &option_show_stats, 0, 1, 0, FROM_DEFAULT },
    [CRTHEAP_OPTION_MESH] = { "CRTHEAP_MESH", &option_mesh, MESH_OFF, MESH_EVEN_USER_MODE_ONLY, MESH_ON, FROM_DEFAULT },
    [CRTHEAP_OPTION_MESH_DECAY_MS] = { "CRTHEAP_MESH_DECAY_MS", &option_mesh_decay_ms, -1, PURGE_DELAY_MAX_MS, -1,
                                       FROM_DEFAULT },
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

/* CRTHEAP_VERBOSE=1: every option, its value and where it came from, once, when the
 * environment is read ("crtheap: option CRTHEAP_PURGE_DELAY_MS = 100 (default)"). */
static void options_show(void)
{
    static const char *const from[] = { "default", "environment", "crtheap_option_set" };
    for (int i = 0; i < CRTHEAP_OPTION_COUNT; i++) {
        char line[160];
        int n = snprintf(line, sizeof line, "crtheap: option %s = %ld (%s)\n", options[i].env, *options[i].slot,
                         from[options[i].source]);
        if (n > 0)
            os_write_stderr(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
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
    const char *verbose = getenv("CRTHEAP_VERBOSE");
    if (verbose && strcmp(verbose, "1") == 0)
        options_show();
    else if (verbose && *verbose && strcmp(verbose, "0") != 0)
        warn_option("CRTHEAP_VERBOSE", verbose, "not 0 or 1", 0);
    errno = saved;
    atomic_store(&options_state, 2);
}


/* Validate and store a value for `option` (set by the program: it wins over the
 * environment).  -1 with EINVAL for an unknown option or a value out of range. */
int option_store(unsigned option, long value)
{
    if (option >= CRTHEAP_OPTION_COUNT || value < options[option].min || value > options[option].max) {
        errno = EINVAL;
        return -1;
    }
    *options[option].slot = value;
    options[option].source = FROM_API;   /* first: the environment then leaves it alone */
    options_init();
    return 0;
}

/* The value of `option`, or -1 with EINVAL for an unknown one. */
long option_value(unsigned option)
{
    if (option >= CRTHEAP_OPTION_COUNT) {
        errno = EINVAL;
        return -1;
    }
    options_init();
    return *options[option].slot;
}

long option_default(unsigned option)
{
    return options[option].fallback;
}
