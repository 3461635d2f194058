/* cxx.c — C++'s operator new and delete, all the replaceable forms, under their Itanium
 * ABI names (x86-64 and arm64: size_t is `unsigned long`, "m").
 *
 * Exported so that sized delete reaches crtheap with its size: the C++ standard passes
 * the size given to new, and crtheap knows every block's requested size, so a wrong one
 * is a misuse it reports (crtheap: operator delete(0x…): size 24 given, the block was
 * allocated with 16).  new follows the standard: on failure it calls the installed
 * std::new_handler and tries again, and throws std::bad_alloc when there is none; the
 * nothrow forms return NULL.  Built with -fexceptions: a handler's or bad_alloc's throw
 * unwinds through these frames.  libstdc++ is reached through weak references, so
 * crtheap needs it only in a program that already has it (one that calls new). */
#include "modules.h"
#include <stdbool.h>

#define API __attribute__((visibility("default")))

typedef void (*new_handler_t)(void);
extern new_handler_t _ZSt15get_new_handlerv(void) __attribute__((weak));   /* std::get_new_handler() */
extern void _ZSt17__throw_bad_allocv(void) __attribute__((weak, noreturn)); /* std::__throw_bad_alloc() */

/* A failed allocation: run the new handler and retry (true), or give up (false). */
static bool new_handler_made_room(void)
{
    new_handler_t handler = _ZSt15get_new_handlerv ? _ZSt15get_new_handlerv() : NULL;
    if (!handler)
        return false;
    handler();   /* it makes room, installs another handler, or throws */
    return true;
}

static void *cxx_new(size_t n, size_t alignment)
{
    for (;;) {
        void *p = alignment ? crt_malloc_aligned(n, alignment) : crt_malloc(n);
        if (p)
            return p;
        if (!new_handler_made_room()) {
            if (_ZSt17__throw_bad_allocv)
                _ZSt17__throw_bad_allocv();
            fatal_message("operator new: out of memory, and no C++ runtime to throw std::bad_alloc");
        }
    }
}

/* The nothrow forms return NULL and do not run the new handler: C cannot catch what a
 * handler throws, and letting it escape a noexcept function would end the program. */
static void *cxx_new_nothrow(size_t n, size_t alignment)
{
    return alignment ? crt_malloc_aligned(n, alignment) : crt_malloc(n);
}

API void *_Znwm(size_t n) { return cxx_new(n, 0); }
API void *_Znam(size_t n) { return cxx_new(n, 0); }
API void *_ZnwmRKSt9nothrow_t(size_t n, const void *tag) { (void)tag; return cxx_new_nothrow(n, 0); }
API void *_ZnamRKSt9nothrow_t(size_t n, const void *tag) { (void)tag; return cxx_new_nothrow(n, 0); }
API void *_ZnwmSt11align_val_t(size_t n, size_t a) { return cxx_new(n, a); }
API void *_ZnamSt11align_val_t(size_t n, size_t a) { return cxx_new(n, a); }
API void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t a, const void *tag) { (void)tag; return cxx_new_nothrow(n, a); }
API void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t a, const void *tag) { (void)tag; return cxx_new_nothrow(n, a); }

API void _ZdlPv(void *p) { crt_free(p, "operator delete"); }
API void _ZdaPv(void *p) { crt_free(p, "operator delete[]"); }
API void _ZdlPvm(void *p, size_t n) { crt_free_sized(p, n, "operator delete"); }
API void _ZdaPvm(void *p, size_t n) { crt_free_sized(p, n, "operator delete[]"); }
API void _ZdlPvRKSt9nothrow_t(void *p, const void *tag) { (void)tag; crt_free(p, "operator delete"); }
API void _ZdaPvRKSt9nothrow_t(void *p, const void *tag) { (void)tag; crt_free(p, "operator delete[]"); }
API void _ZdlPvSt11align_val_t(void *p, size_t a) { (void)a; crt_free(p, "operator delete"); }
API void _ZdaPvSt11align_val_t(void *p, size_t a) { (void)a; crt_free(p, "operator delete[]"); }
API void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t a) { (void)a; crt_free_sized(p, n, "operator delete"); }
API void _ZdaPvmSt11align_val_t(void *p, size_t n, size_t a) { (void)a; crt_free_sized(p, n, "operator delete[]"); }
API void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, const void *tag) { (void)a; (void)tag; crt_free(p, "operator delete"); }
API void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, const void *tag) { (void)a; (void)tag; crt_free(p, "operator delete[]"); }
