/* ported_windows.c — a file written for the Microsoft C runtime, compiled unchanged
 * against crtheap's <malloc.h> (-Iinclude/crtheap/msvc, as pkg-config crtheap-msvc
 * gives): it includes only <malloc.h>, <stdio.h> and <string.h> and uses _HEAPINFO,
 * _heapwalk, _heapchk, _msize, _expand, _malloca and _freea.  Exits 0 when they behave
 * as the runtime's do. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

static int walk_finds(const void *block, size_t size)
{
    _HEAPINFO entry;
    entry._pentry = NULL;
    int status, found = 0;
    while ((status = _heapwalk(&entry)) == _HEAPOK)
        if ((void *)entry._pentry == block && entry._useflag == _USEDENTRY && entry._size == size)
            found = 1;
    return status == _HEAPEND && found;
}

static int use_malloca(size_t size)
{
    unsigned char *p = _malloca(size);
    if (!p)
        return 0;
    memset(p, 0x5a, size);
    for (size_t i = 0; i < size; i++)
        if (p[i] != 0x5a)
            return 0;
    _freea(p);
    return 1;
}

int main(void)
{
    char *block = malloc(1000);
    if (!block)
        return 1;
    memset(block, 'w', 1000);
    if (_msize(block) != 1000 || !walk_finds(block, 1000))
        return 2;
    if (_expand(block, 900) != block || _msize(block) != 900)
        return 3;
    if (_heapchk() != _HEAPOK)
        return 4;
    if (!use_malloca(100) || !use_malloca(5000) || !use_malloca(0))
        return 5;
    for (int i = 0; i < 900; i++)
        if (block[i] != 'w')
            return 6;
    free(block);
    puts("ported: ok");
    return 0;
}
