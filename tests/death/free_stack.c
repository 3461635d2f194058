/* free() of a pointer to the stack. */
#include "death.h"

int main(void)
{
    char buf[64];
    memset(buf, 1, sizeof buf);
    free(malloc(16)); /* the heap exists */
    announce(buf);
    free(launder(buf));
    return survived();
}
