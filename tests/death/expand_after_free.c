/* _expand() of a block already freed. */
#include "death.h"

void *_expand(void *p, size_t n);

int main(void)
{
    char *keep = written_block(100);
    char *p = written_block(100);
    free(p);
    announce(p);
    void *q = _expand(launder(p), 50);
    (void)keep;
    (void)q;
    return survived();
}
