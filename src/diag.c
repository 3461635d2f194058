/* diag.c — fatal diagnostics.  One fixed line on stderr, then abort(), as glibc does.
 * Formatting is done by hand: printf may allocate, and the heap is suspect here. */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

static size_t append(char *buf, size_t at, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (at + n > cap)
        n = cap - at;
    memcpy(buf + at, s, n);
    return at + n;
}

static size_t append_pointer(char *buf, size_t at, size_t cap, const void *p)
{
    char hex[2 + 16 + 1];
    uintptr_t v = (uintptr_t)p;
    size_t n = 0;
    char digits[16];
    do {
        digits[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    hex[0] = '0';
    hex[1] = 'x';
    for (size_t i = 0; i < n; i++)
        hex[2 + i] = digits[n - 1 - i];
    hex[2 + n] = 0;
    return append(buf, at, cap, hex);
}

/* "crtheap: free(0x7f...): double free" — the tests match these lines exactly. */
void fatal_pointer(const char *call, const void *p, const char *problem)
{
    char line[256];
    size_t n = append(line, 0, sizeof line - 1, "crtheap: ");
    n = append(line, n, sizeof line - 1, call);
    n = append(line, n, sizeof line - 1, "(");
    n = append_pointer(line, n, sizeof line - 1, p);
    n = append(line, n, sizeof line - 1, "): ");
    n = append(line, n, sizeof line - 1, problem);
    line[n++] = '\n';
    os_write_stderr(line, n);
    abort();
}

void fatal_message(const char *message)
{
    char line[256];
    size_t n = append(line, 0, sizeof line - 1, "crtheap: ");
    n = append(line, n, sizeof line - 1, message);
    line[n++] = '\n';
    os_write_stderr(line, n);
    abort();
}
