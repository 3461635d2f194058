/* probe_options.c — run by test_dropin's options test: prints crtheap's options before
 * the first allocation and after one.  "set N" first sets the purge delay to N. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "crtheap.h"

static void show(const char *when)
{
    printf("%s %ld %ld %ld\n", when, crtheap_option_get(CRTHEAP_OPTION_PURGE_DELAY_MS),
           crtheap_option_get(CRTHEAP_OPTION_HUGE_CACHE_MB), crtheap_option_get(CRTHEAP_OPTION_PURGER));
}

int main(int argc, char **argv)
{
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
