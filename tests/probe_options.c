/* probe_options.c — run by test_dropin's options test: prints crtheap's options before
 * the first allocation and after one.  "set N" first sets the purge delay to N.
 * "count" instead makes 1000 mallocs of 100 bytes, frees 400 of them and shrinks 10 in
 * place, and prints what the counters say of that ("count DM DF DR DQ JSON"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "crtheap.h"

static void show(const char *when)
{
    printf("%s %ld %ld %ld\n", when, crtheap_option_get(CRTHEAP_OPTION_PURGE_DELAY_MS),
           crtheap_option_get(CRTHEAP_OPTION_HUGE_CACHE_MB), crtheap_option_get(CRTHEAP_OPTION_PURGER));
}

static int count_calls(void)
{
    static char *blocks[1000];
    crtheap_counters_t before, after;
    char *first = malloc(1);   /* the first allocation made, counting is on */
    if (!first || crtheap_get_counters(&before) != 0)
        return 4;
    for (int i = 0; i < 1000; i++) {
        blocks[i] = malloc(100);
        if (!blocks[i])
            return 5;
        memset(blocks[i], 0x5a, 100);
    }
    for (int i = 0; i < 400; i++)
        free(blocks[i]);
    for (int i = 400; i < 410; i++)
        if (realloc(blocks[i], 90) != blocks[i])   /* 90 of a 112-byte block: in place */
            return 6;
    if (crtheap_get_counters(&after) != 0)
        return 7;
    char json[8192];
    size_t need = crtheap_stats_json(json, sizeof json);
    printf("count %llu %llu %llu %lld %d %s\n", (unsigned long long)(after.mallocs - before.mallocs),
           (unsigned long long)(after.frees - before.frees), (unsigned long long)(after.reallocs - before.reallocs),
           (long long)after.requested - (long long)before.requested, need < sizeof json, json);
    for (int i = 400; i < 1000; i++)
        if (blocks[i][0] != 0x5a || blocks[i][89] != 0x5a)
            return 8;
        else
            free(blocks[i]);
    free(first);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "count") == 0)
        return count_calls();
    if (argc == 3 && strcmp(argv[1], "set") == 0 &&
        crtheap_option_set(CRTHEAP_OPTION_PURGE_DELAY_MS, atol(argv[2])) != 0)
        return 2;
    show("before");
    char *p = malloc(100);
    if (!p)
        return 3;
    memset(p, 1, 100);
    show("after");
    free(p);
    return 0;
}
