/* A block freed by another thread waits on its owner's remote list; a write after free
 * turns its link into a pointer outside the heap.  The owner's drain must report it. */
#include "death.h"

static char outside[64];

int main(void)
{
    announce("start");   /* stdout's buffer is allocated now, not after the corruption */
    char *p = written_block(48);
    free_in_other_thread(p);       /* p is queued on this thread's heap */
    *(void **)launder(p) = outside;    /* its link now leads outside the heap */
    announce(outside);
    char *q = malloc(70000);           /* a class never used here: the refill drains the queue */
    (void)q;
    return survived();
}
