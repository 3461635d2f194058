/* realloc_growth — many strings grow at once, one character at a time, in random order:
 * half of them realloc on every character (as naive code does), half double their capacity
 * when full. A string that reaches its target length (up to 64 KiB) is checked in full,
 * freed, and a new one starts in its place. */
#include "bench.h"

enum { STRINGS = 2000, BASE_APPENDS = 16000000, MAX_LENGTH = 64 * 1024 };

typedef struct growing_string {
    char *text;
    size_t length;
    size_t capacity;
    size_t target;
    uint64_t tag;
    int doubles;  /* grow by doubling rather than by one character */
} growing_string;

static char expected_char(uint64_t tag, size_t index)
{
    return (char)('a' + (tag + index * 7) % 26);
}

static void start_string(growing_string *s, uint64_t tag, bench_rng *rng)
{
    s->length = 0;
    s->capacity = 0;
    s->text = NULL;
    s->target = bench_rng_log_range(rng, 8, MAX_LENGTH);
    s->tag = tag;
    s->doubles = (int)(tag & 1);
}

static void check_and_free(growing_string *s)
{
    for (size_t i = 0; i < s->length; i++)
        if (s->text[i] != expected_char(s->tag, i))
            bench_fail("realloc_growth: string %p of %zu chars changed at %zu", (void *)s->text,
                       s->length, i);
    if (s->text[s->length] != '\0')
        bench_fail("realloc_growth: string %p lost its terminator", (void *)s->text);
    free(s->text);
}

static void append_char(growing_string *s)
{
    size_t needed = s->length + 2;
    if (needed > s->capacity) {
        size_t capacity = s->doubles ? (s->capacity < 16 ? 16 : s->capacity * 2) : needed;
        char *text = realloc(s->text, capacity);
        if (text == NULL)
            bench_fail("realloc(%zu) returned NULL", capacity);
        s->text = text;
        s->capacity = capacity;
    }
    s->text[s->length] = expected_char(s->tag, s->length);
    s->text[++s->length] = '\0';
}

static void *realloc_growth_worker(void *arg)
{
    const bench_share *w = arg;
    bench_rng rng = bench_rng_seeded((uint64_t)w->id + 21);
    growing_string *strings = bench_xmalloc(sizeof *strings * STRINGS);
    uint64_t next_tag = 0;
    for (size_t i = 0; i < STRINGS; i++)
        start_string(&strings[i], next_tag++, &rng);
    for (uint64_t step = 0; step < w->steps; step++) {
        growing_string *s = &strings[bench_rng_next(&rng) % STRINGS];
        append_char(s);
        if (s->length == s->target) {
            check_and_free(s);
            start_string(s, next_tag++, &rng);
        }
    }
    for (size_t i = 0; i < STRINGS; i++)
        if (strings[i].text != NULL)
            check_and_free(&strings[i]);
    free(strings);
    return NULL;
}

int main(int argc, char **argv)
{
    return bench_main_shared(argc, argv, BASE_APPENDS, realloc_growth_worker);
}
