/* bignum — on the model of a bignum factoring program (cfrac): arbitrary-precision
 * arithmetic where every intermediate result is a freshly malloc'd limb array, so the
 * allocator sees a stream of short-lived blocks of 8 B to ~650 B in a LIFO-ish order.
 * It measures malloc/free of small, mostly short-lived blocks of varied sizes with a
 * modest amount of arithmetic between them.
 *
 *   bignum [threads] [scale]
 *
 * Each thread keeps a pool of 64 unsigned integers (arrays of 1..40 64-bit limbs).  A step
 * takes numbers a, b, c from the pool and computes a*b + c (or a + b, or a fresh random
 * number); the product is a block of its own, freed once the sum exists, and a result longer
 * than 40 limbs is folded (split into high and low halves, each a new block, then added) until
 * it fits.  The result replaces a pool slot, whose old number is freed.  A pair whose product
 * would take more than 64 limb multiplications is, except one time in 64, not multiplied: the
 * first number is split into two halves that replace it and c.  This keeps the arithmetic
 * cheap next to the allocator and the sizes spread out (most blocks are 8..300 B).
 *
 * Every number carries its value modulo the prime 6700417, computed when it is made from its
 * operands' residues (so the arithmetic is checked too) and checked against its limbs whenever
 * it is used or freed: an allocator that hands out overlapping blocks or writes into a live
 * one is caught.  The work is split between the threads; each has a fixed seed. */
#include "bench.h"

enum {
    POOL = 64,
    MAX_LIMBS = 40,
    BUF_LIMBS = 2 * MAX_LIMBS + 4,
    MUL_BUDGET = 64,          /* multiply when a.n * b.n is at most this ... */
    BIG_PRODUCT_ONE_IN = 64,  /* ... or, once in this many times, whatever the lengths */
    BASE_STEPS = 6000000,
};

typedef uint64_t limb;
typedef unsigned __int128 wide;

/* 6700417 divides 2^32 + 1, so 2^32 = -1 and 2^64 = 1 (mod PRIME): a number's residue is
 * the sum of its limbs' low halves less the sum of their high halves, which keeps the checks
 * cheap next to the allocator. */
static const uint64_t PRIME = 6700417;

typedef struct num {
    limb *d;      /* n limbs, least significant first, the top one nonzero unless n == 1 */
    size_t n;
    uint64_t res; /* value mod PRIME */
} num;

/* ---- arithmetic modulo PRIME ---- */

static uint64_t mod_add(uint64_t a, uint64_t b) { return (a + b) % PRIME; }
static uint64_t mod_mul(uint64_t a, uint64_t b) { return a * b % PRIME; }  /* a, b < PRIME */

static uint64_t residue_of(const limb *d, size_t n)
{
    uint64_t lo = 0, hi = 0;
    for (size_t i = 0; i < n; i++) {
        lo += (uint32_t)d[i];
        hi += d[i] >> 32;
    }
    return (lo + (PRIME << 20) - hi) % PRIME;  /* hi < 84 * 2^32 < PRIME * 2^20 */
}

/* ---- numbers ---- */

static void num_check(const num *x, const char *where)
{
    if (residue_of(x->d, x->n) != x->res)
        bench_fail("bignum: %s: number %p of %zu limbs changed", where, (void *)x->d, x->n);
}

static void num_free(num *x, const char *where)
{
    num_check(x, where);
    free(x->d);
    x->d = NULL;
}

/* A new number holding buf[0..n), whose residue should be `expected` (derived from the
 * operands': the first check of the new number also checks the arithmetic). */
static num num_make(const limb *buf, size_t n, uint64_t expected)
{
    while (n > 1 && buf[n - 1] == 0)
        n--;
    num x = { bench_xmalloc(n * sizeof(limb)), n, expected };
    memcpy(x.d, buf, n * sizeof(limb));
    return x;
}

static num num_random(bench_rng *rng)
{
    limb buf[MAX_LIMBS];
    size_t n = bench_rng_log_range(rng, 1, MAX_LIMBS);
    for (size_t i = 0; i < n; i++)
        buf[i] = bench_rng_next(rng);
    if (buf[n - 1] == 0)
        buf[n - 1] = 1;
    return num_make(buf, n, residue_of(buf, n));
}

static num num_add(const num *a, const num *b)
{
    limb buf[BUF_LIMBS];
    const num *lo = a->n < b->n ? a : b, *hi = a->n < b->n ? b : a;
    limb carry = 0;
    for (size_t i = 0; i < hi->n; i++) {
        wide s = (wide)hi->d[i] + (i < lo->n ? lo->d[i] : 0) + carry;
        buf[i] = (limb)s;
        carry = (limb)(s >> 64);
    }
    buf[hi->n] = carry;
    return num_make(buf, hi->n + 1, mod_add(a->res, b->res));
}

static num num_mul(const num *a, const num *b)
{
    limb buf[BUF_LIMBS];
    size_t n = a->n + b->n;
    memset(buf, 0, n * sizeof(limb));
    for (size_t i = 0; i < a->n; i++) {
        limb carry = 0;
        for (size_t j = 0; j < b->n; j++) {
            wide t = (wide)a->d[i] * b->d[j] + buf[i + j] + carry;
            buf[i + j] = (limb)t;
            carry = (limb)(t >> 64);
        }
        buf[i + b->n] = carry;
    }
    return num_make(buf, n, mod_mul(a->res, b->res));
}

/* x = hi * 2^(64h) + lo: two new numbers, checked against x's residue. */
static void num_split(const num *x, num *hi, num *lo)
{
    size_t h = (x->n + 1) / 2;
    *lo = num_make(x->d, h, residue_of(x->d, h));
    *hi = num_make(x->d + h, x->n - h, residue_of(x->d + h, x->n - h));
    if (mod_add(hi->res, lo->res) != x->res)  /* 2^(64h) = 1 */
        bench_fail("bignum: split of %p (%zu limbs) does not add up", (void *)x->d, x->n);
}

/* Replace x by hi + lo until it has at most MAX_LIMBS limbs (this changes its value). */
static num num_fold(num x)
{
    while (x.n > MAX_LIMBS) {
        num hi, lo;
        num_split(&x, &hi, &lo);
        num_free(&x, "fold");
        x = num_add(&hi, &lo);
        num_free(&hi, "fold");
        num_free(&lo, "fold");
    }
    return x;
}

static void *bignum_worker(void *arg)
{
    const bench_share *w = arg;
    bench_rng rng = bench_rng_seeded((uint64_t)w->id + 101);
    num pool[POOL];
    for (size_t i = 0; i < POOL; i++)
        pool[i] = num_random(&rng);

    for (uint64_t step = 0; step < w->steps; step++) {
        uint64_t r = bench_rng_next(&rng);
        size_t i = (size_t)(r % POOL), j = (size_t)(r >> 8) % POOL, k = (size_t)(r >> 16) % POOL;
        unsigned op = (unsigned)(r >> 24) % 16;
        num *a = &pool[i], *b = &pool[j], *c = &pool[k];
        num_check(a, "operand");
        num_check(b, "operand");
        num result;
        if (op == 0) {
            result = num_random(&rng);
        } else if (op < 6) {
            result = num_fold(num_add(a, b));
        } else if (a->n * b->n <= MUL_BUDGET || (r >> 32) % BIG_PRODUCT_ONE_IN == 0) {
            num product = num_mul(a, b);
            num_check(&product, "product");
            num_check(c, "operand");
            result = num_fold(num_add(&product, c));
            num_free(&product, "product");
        } else {
            /* too long to multiply cheaply: a's halves replace a and c */
            num hi, lo;
            num_split(a, &hi, &lo);
            num_free(a, "split operand");
            *a = hi;
            if (k == i) {
                num_free(&lo, "split");
                continue;
            }
            result = lo;
        }
        num_free(c, "replaced");
        *c = result;
    }

    for (size_t i = 0; i < POOL; i++)
        num_free(&pool[i], "final");
    return NULL;
}

int main(int argc, char **argv)
{
    return bench_main_shared(argc, argv, BASE_STEPS, bignum_worker);
}
