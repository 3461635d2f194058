/* A write after free puts a wild link in a free list; malloc reaches it and must report
 * it, not hand it out. */
#include "death.h"

static char outside[64];

int main(void)
{
    char *keep = written_block(32);
    char *p = written_block(32);
    free(p);
    *(void **)launder(p) = outside;   /* the free block's link now points outside the heap */
    announce(outside);
    char *q = malloc(32);             /* takes p back; the wild link becomes the list head */
    char *r = malloc(32);             /* reaches it */
    (void)keep;
    (void)q;
    (void)r;
    return survived();
}
