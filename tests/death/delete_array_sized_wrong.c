/* C++ sized delete[] with a size that is not the one given to operator new[]. */
#include "death.h"

void *_Znam(size_t n);
void _ZdaPvm(void *p, size_t n);

int main(void)
{
    char *p = _Znam(40000);
    memset(p, 1, 40000);
    announce(p);
    _ZdaPvm(launder(p), 4000);
    return survived();
}
