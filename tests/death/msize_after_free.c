/* _msize() of a block already freed. */
#include "death.h"

size_t _msize(void *p);

int main(void)
{
    char *keep = written_block(100);
    char *p = written_block(100);
    free(p);
    announce(p);
    size_t n = _msize(launder(p));
    (void)keep;
    (void)n;
    return survived();
}
