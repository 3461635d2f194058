/* free() of a pointer to a global. */
#include "death.h"

static char global_buf[256];

int main(void)
{
    free(malloc(16));
    announce(global_buf + 16);
    free(launder(global_buf + 16));
    return survived();
}
