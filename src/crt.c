/* crt.c — the Microsoft C runtime heap family (placeholder: _msize only, until issue 5) */
#include "internal.h"
#include "crtheap.h"
#include <errno.h>
__attribute__((visibility("default"))) size_t _msize(void *p)
{
    if (!p) { errno = EINVAL; return (size_t)-1; }
    return crt_requested_size(p, "_msize");
}
