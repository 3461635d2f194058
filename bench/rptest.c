/* rptest — on the model of rpmalloc's rptest: threads churn working sets of blocks with
 * sizes log-uniform over 16 B..16 KiB and random lifetimes, and pass some of the blocks they
 * are done with to a neighbour, which frees them.  It measures the allocator under a mixed
 * load of small and medium blocks where a steady fraction of frees are remote (made by a
 * thread other than the one that allocated the block).
 *
 *   rptest [threads] [scale]
 *
 * Each thread owns 4096 slots; every step checks the block in a random slot and either frees
 * it or (one time in 16) hands it to the next thread (thread i to i+1, the last to the
 * first) through that thread's small mutex-protected queue, then puts a new block in the
 * slot.  Every 32 steps a thread empties its own queue, checking and freeing what it finds
 * there; a full queue makes the giver free the block itself.  A thread that has finished
 * goes on emptying its queue until every thread has finished, then empties it one last time.  The first and last byte of every block
 * hold a tag derived from its thread and step, checked before it is freed or handed on: an
 * allocator that overwrote a live block is caught.  The work is split between the threads;
 * each has a fixed seed. */
#include "bench.h"

#include <sched.h>
#include <stdatomic.h>

enum {
    WORKING_SET = 4096,
    BASE_STEPS = 6000000,
    MIN_SIZE = 16,
    MAX_SIZE = 16 * 1024,
    HANDOFF_ONE_IN = 16,
    DRAIN_EVERY = 32,
    QUEUE_CAP = 16384,  /* a neighbour's worth of time slices on a loaded machine */
};

typedef struct block {
    unsigned char *p;
    size_t size;
    uint64_t born;  /* thread id << 40 | the step the block was made at */
} block;

typedef struct queue {
    char pad_before[64];  /* keep the lock off the previous queue's cache lines */
    pthread_mutex_t lock;
    size_t count;
    block items[QUEUE_CAP];
} queue;

static queue *queues;
static int thread_count;
static atomic_int finished;  /* threads past their last hand-off */

static unsigned char tag_of(uint64_t born) { return (unsigned char)((born ^ born >> 40) * 0x9Du + 1u); }

static void make(block *b, bench_rng *rng, uint64_t born)
{
    b->size = bench_rng_log_range(rng, MIN_SIZE, MAX_SIZE);
    b->p = bench_xmalloc(b->size);
    b->born = born;
    b->p[0] = tag_of(born);
    b->p[b->size - 1] = tag_of(born + 1);
}

static void check(const block *b, const char *where)
{
    if (b->p[0] != tag_of(b->born) || b->p[b->size - 1] != tag_of(b->born + 1))
        bench_fail("rptest: %s: block %p of %zu bytes changed", where, (void *)b->p, b->size);
}

/* Give b to queue q; 0 when the queue is full. */
static int hand_off(queue *q, const block *b)
{
    int given = 0;
    pthread_mutex_lock(&q->lock);
    if (q->count < QUEUE_CAP) {
        q->items[q->count++] = *b;
        given = 1;
    }
    pthread_mutex_unlock(&q->lock);
    return given;
}

/* Free everything in q, outside its lock (buf holds QUEUE_CAP blocks). */
static void drain(queue *q, block *buf)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->count;
    memcpy(buf, q->items, n * sizeof *buf);
    q->count = 0;
    pthread_mutex_unlock(&q->lock);
    for (size_t i = 0; i < n; i++) {
        check(&buf[i], "handed over");
        free(buf[i].p);
    }
}

static void *rptest_worker(void *arg)
{
    const bench_share *w = arg;
    bench_rng rng = bench_rng_seeded((uint64_t)w->id + 53);
    uint64_t id = (uint64_t)w->id << 40;
    queue *own = &queues[w->id], *next = &queues[(w->id + 1) % thread_count];
    block *slots = bench_xmalloc(sizeof *slots * WORKING_SET);
    block *buf = bench_xmalloc(sizeof *buf * QUEUE_CAP);
    for (size_t i = 0; i < WORKING_SET; i++)
        make(&slots[i], &rng, id | i);

    for (uint64_t step = 0; step < w->steps; step++) {
        uint64_t r = bench_rng_next(&rng);
        block *b = &slots[r % WORKING_SET];
        check(b, "working set");
        if ((r >> 32) % HANDOFF_ONE_IN != 0 || !hand_off(next, b))
            free(b->p);
        make(b, &rng, id | (step + WORKING_SET));
        if (step % DRAIN_EVERY == DRAIN_EVERY - 1)
            drain(own, buf);
    }

    for (size_t i = 0; i < WORKING_SET; i++) {
        check(&slots[i], "working set");
        free(slots[i].p);
    }
    /* keep taking what the previous thread hands over until nobody can hand anything on */
    atomic_fetch_add(&finished, 1);
    while (atomic_load(&finished) < thread_count) {
        drain(own, buf);
        sched_yield();
    }
    drain(own, buf);
    free(slots);
    free(buf);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_args args = bench_parse_args(argc, argv, 1);
    thread_count = args.threads;
    queues = bench_xmalloc(sizeof *queues * (size_t)thread_count);
    for (int i = 0; i < thread_count; i++) {
        pthread_mutex_init(&queues[i].lock, NULL);
        queues[i].count = 0;
    }
    int status = bench_main_shared(argc, argv, BASE_STEPS, rptest_worker);
    for (int i = 0; i < thread_count; i++)
        pthread_mutex_destroy(&queues[i].lock);
    free(queues);
    return status;
}
