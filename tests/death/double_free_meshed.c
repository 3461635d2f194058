/* free() twice of a block that _heapmin withheld when it meshed the OS page under it:
 * a withheld block is a free one, so the second free is a double free. */
#include "death.h"
#include <crtheap.h>
#include <stdint.h>
#include <sys/mman.h>

enum { BLOCKS = 100000 };

/* Is p inside one of the meshed pages (a one-page mapping of crtheap's memfd)? */
static int in_meshed_page(const void *p)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int found = 0;
    unsigned long lo, hi;
    while (f && !found && fgets(line, sizeof line, f))
        if (strstr(line, "crtheap-mesh") && sscanf(line, "%lx-%lx", &lo, &hi) == 2 && hi - lo <= 64 * 4096)
            found = (uintptr_t)p >= lo && (uintptr_t)p < hi;
    if (f)
        fclose(f);
    return found;
}

int main(void)
{
    char **p = mmap(NULL, BLOCKS * sizeof *p, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *kept = mmap(NULL, BLOCKS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint64_t rng = 7;
    for (int i = 0; i < BLOCKS; i++) {
        p[i] = malloc(48);
        memset(p[i], 0x3c, 48);
    }
    for (int i = 0; i < BLOCKS; i++) {   /* about one block in twenty stays */
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        kept[i] = (rng >> 33) % 20 == 0;
        if (!kept[i])
            free(p[i]);
    }
    _heapmin();
    char *victim = NULL;   /* a freed block on a meshed page */
    for (int i = 0; i < BLOCKS && !victim; i++)
        if (!kept[i] && in_meshed_page(p[i]))
            victim = p[i];
    fprintf(stderr, victim ? "the block lies on a meshed page\n" : "nothing meshed: any freed block\n");
    for (int i = 0; i < BLOCKS && !victim; i++)   /* no meshing here (no userfaultfd): any */
        if (!kept[i])
            victim = p[i];
    announce(victim);
    free(launder(victim));
    return survived();
}
