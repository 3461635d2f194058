/* A block freed by another thread waits on its owner's remote list; a write after free
 * turns its link into a pointer to a live block.  The drain finds a block that was not
 * freed and reports it as a double free instead of freeing it. */
#include "death.h"

int main(void)
{
    announce("start");   /* stdout's buffer is allocated now, not after the corruption */
    char *live = written_block(48);
    char *p = written_block(48);
    free_in_other_thread(p);
    *(void **)launder(p) = live;
    announce(live);
    char *q = malloc(70000);           /* the refill drains the queue */
    (void)q;
    return survived();
}
