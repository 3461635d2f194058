/* diag.c — what crtheap says about bad input: fatal diagnostics (one fixed line on
 * stderr, then abort(), as glibc does; formatted by hand, since printf may allocate and
 * the heap is suspect here), and the Microsoft runtime's invalid-parameter protocol. */
#include "modules.h"
#include "crtheap.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define API __attribute__((visibility("default")))

static _Atomic(_invalid_parameter_handler) invalid_parameter_handler;

/* An invalid argument: the installed handler first, then errno; the caller returns its
 * error value. */
void crt_invalid_parameter(int err)
{
    _invalid_parameter_handler handler = atomic_load(&invalid_parameter_handler);
    if (handler)
        handler(NULL, NULL, NULL, 0, 0);
    errno = err;
}

API _invalid_parameter_handler _set_invalid_parameter_handler(_invalid_parameter_handler handler)
{
    return atomic_exchange(&invalid_parameter_handler, handler);
}

API _invalid_parameter_handler _get_invalid_parameter_handler(void)
{
    return atomic_load(&invalid_parameter_handler);
}

static size_t append(char *buf, size_t at, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (at + n > cap)
        n = cap - at;
    memcpy(buf + at, s, n);   /* NOLINT(bugprone-not-null-terminated-result): a counted line, not a string */
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

static size_t append_decimal(char *buf, size_t at, size_t cap, size_t v)
{
    char digits[21];
    size_t n = sizeof digits - 1;
    digits[n] = 0;
    do {
        digits[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return append(buf, at, cap, digits + n);
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

/* "crtheap: assertion failed: pg->used > 0 (src/page.c:123)" — debug builds only. */
void assertion_failed(const char *what, const char *file, int line)
{
    char problem[200];
    size_t n = append(problem, 0, sizeof problem - 1, "assertion failed: ");
    n = append(problem, n, sizeof problem - 1, what);
    n = append(problem, n, sizeof problem - 1, " (");
    n = append(problem, n, sizeof problem - 1, file);
    n = append(problem, n, sizeof problem - 1, ":");
    n = append_decimal(problem, n, sizeof problem - 1, (size_t)line);
    n = append(problem, n, sizeof problem - 1, ")");
    problem[n] = 0;
    fatal_message(problem);
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

/* "crtheap: free_sized(0x7f...): size 100 given, the block was allocated with 64" */
void fatal_size_mismatch(const char *call, const void *p, size_t given, size_t requested)
{
    char problem[96];
    size_t n = append(problem, 0, sizeof problem - 1, "size ");
    n = append_decimal(problem, n, sizeof problem - 1, given);
    n = append(problem, n, sizeof problem - 1, " given, the block was allocated with ");
    n = append_decimal(problem, n, sizeof problem - 1, requested);
    problem[n] = 0;
    fatal_pointer(call, p, problem);
}
