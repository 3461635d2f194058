/* C++ sized delete (operator delete(void *, size_t), called by its ABI name) with a size
 * that is not the one given to operator new. */
#include "death.h"

void *_Znwm(size_t n);
void _ZdlPvm(void *p, size_t n);

int main(void)
{
    char *p = _Znwm(16);
    memset(p, 1, 16);
    announce(p);
    _ZdlPvm(launder(p), 24);
    return survived();
}
