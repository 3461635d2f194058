/* tiny_lists — many tiny short-lived objects, as in bignum arithmetic or a logic minimiser:
 * numbers are linked lists of 16–48 B digit nodes; each step adds two random numbers from a
 * small pool into a new list, then replaces one of the pool's numbers with it. */
#include "bench.h"

enum { POOL = 64, MAX_DIGITS = 200, BASE_STEPS = 80000 };

/* three node sizes: plain (16 B), with a carry note (32 B), with a term mask (48 B) */
typedef struct digit {
    struct digit *next;
    uint32_t value;
    uint32_t check;  /* value ^ CHECK_KEY, catches a node the allocator overwrote */
    uint64_t extra[];
} digit;

enum { CHECK_KEY = 0x5EEDF00Du };

static digit *new_digit(uint32_t value, digit *next, bench_rng *rng)
{
    size_t extra_words = (size_t)(bench_rng_next(rng) % 3) * 2;
    digit *d = bench_xmalloc(sizeof *d + extra_words * sizeof(uint64_t));
    d->next = next;
    d->value = value;
    d->check = value ^ CHECK_KEY;
    for (size_t i = 0; i < extra_words; i++)
        d->extra[i] = (uint64_t)value * 0x100000001ull;
    return d;
}

static digit *random_number(bench_rng *rng)
{
    digit *head = NULL;
    size_t digits = bench_rng_range(rng, 1, MAX_DIGITS);
    for (size_t i = 0; i < digits; i++)
        head = new_digit((uint32_t)(bench_rng_next(rng) % 10), head, rng);
    return head;
}

static void free_number(digit *d)
{
    while (d != NULL) {
        digit *next = d->next;
        if ((d->value ^ CHECK_KEY) != d->check || d->value > 9)
            bench_fail("tiny_lists: digit node %p was overwritten", (void *)d);
        free(d);
        d = next;
    }
}

/* Least significant digit first; the sum comes out reversed, and is rebuilt in order. */
static digit *add_numbers(const digit *a, const digit *b, size_t *digits, bench_rng *rng)
{
    digit *reversed = NULL;
    *digits = 0;
    uint32_t carry = 0;
    while (a != NULL || b != NULL || carry != 0) {
        uint32_t sum = carry + (a ? a->value : 0) + (b ? b->value : 0);
        reversed = new_digit(sum % 10, reversed, rng);
        ++*digits;
        carry = sum / 10;
        a = a ? a->next : NULL;
        b = b ? b->next : NULL;
    }
    digit *ordered = NULL;
    for (digit *d = reversed; d != NULL; d = d->next)
        ordered = new_digit(d->value, ordered, rng);
    free_number(reversed);
    return ordered;
}

static void *tiny_lists_worker(void *arg)
{
    const bench_share *w = arg;
    bench_rng rng = bench_rng_seeded((uint64_t)w->id + 51);
    digit *pool[POOL];
    for (size_t i = 0; i < POOL; i++)
        pool[i] = random_number(&rng);
    for (uint64_t step = 0; step < w->steps; step++) {
        size_t a = (size_t)(bench_rng_next(&rng) % POOL);
        size_t b = (size_t)(bench_rng_next(&rng) % POOL);
        size_t out = (size_t)(bench_rng_next(&rng) % POOL);
        size_t digits;
        digit *sum = add_numbers(pool[a], pool[b], &digits, &rng);
        free_number(pool[out]);
        pool[out] = sum;
        /* sums grow by a digit per generation; long ones make way for fresh numbers */
        if (digits > MAX_DIGITS) {
            free_number(pool[out]);
            pool[out] = random_number(&rng);
        }
    }
    for (size_t i = 0; i < POOL; i++)
        free_number(pool[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    return bench_main_shared(argc, argv, BASE_STEPS, tiny_lists_worker);
}
