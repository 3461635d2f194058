/* producer_consumer — cross-thread frees: in each pair one thread allocates blocks
 * (16 B–2 KiB), fills them and pushes them on a bounded queue; the other pops, checks
 * and frees them. `threads` is the number of threads, two per pair (odd counts round up). */
#include <sched.h>
#include <stdatomic.h>

#include "bench.h"

enum { QUEUE_SLOTS = 4096, BASE_MESSAGES = 6000000, MIN_SIZE = 16, MAX_SIZE = 2048 };

typedef struct message {
    size_t size;
    uint64_t tag;
} message;

/* single-producer single-consumer ring; head and tail on their own cache lines */
typedef struct queue {
    _Alignas(64) _Atomic uint64_t head;
    _Alignas(64) _Atomic uint64_t tail;
    _Alignas(64) message *slots[QUEUE_SLOTS];
} queue;

typedef struct pair {
    int id;
    uint64_t messages;
    queue *q;
} pair;

static void *producer(void *arg)
{
    pair *p = arg;
    bench_rng rng = bench_rng_seeded((uint64_t)p->id + 11);
    uint64_t tail = 0, head_seen = 0;  /* reread the consumer's head only when full */
    for (uint64_t i = 0; i < p->messages; i++) {
        size_t size = bench_rng_log_range(&rng, MIN_SIZE, MAX_SIZE);
        message *m = bench_xmalloc(size);
        m->size = size;
        m->tag = i;
        pattern_fill((char *)m + sizeof *m, size - sizeof *m, i);
        while (tail - head_seen == QUEUE_SLOTS) {
            head_seen = atomic_load_explicit(&p->q->head, memory_order_acquire);
            if (tail - head_seen == QUEUE_SLOTS)
                sched_yield();
        }
        p->q->slots[tail % QUEUE_SLOTS] = m;
        atomic_store_explicit(&p->q->tail, ++tail, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    pair *p = arg;
    uint64_t head = 0, tail_seen = 0;  /* reread the producer's tail only when empty */
    for (uint64_t i = 0; i < p->messages; i++) {
        while (tail_seen == head) {
            tail_seen = atomic_load_explicit(&p->q->tail, memory_order_acquire);
            if (tail_seen == head)
                sched_yield();
        }
        message *m = p->q->slots[head % QUEUE_SLOTS];
        atomic_store_explicit(&p->q->head, ++head, memory_order_release);
        if (m->tag != i)
            bench_fail("producer_consumer: message %llu arrived as %llu",
                       (unsigned long long)i, (unsigned long long)m->tag);
        pattern_check((char *)m + sizeof *m, m->size - sizeof *m, m->tag, "producer_consumer");
        free(m);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    bench_args args = bench_parse_args(argc, argv, 2);
    int pairs = (args.threads + 1) / 2;
    uint64_t total = bench_scaled(BASE_MESSAGES, args.scale);
    pair *work = bench_xmalloc(sizeof *work * (size_t)pairs);
    pthread_t *ids = bench_xmalloc(sizeof *ids * (size_t)pairs * 2);
    for (int i = 0; i < pairs; i++) {
        queue *q = aligned_alloc(64, sizeof *q);
        if (q == NULL)
            bench_fail("aligned_alloc of a queue failed");
        atomic_init(&q->head, 0);
        atomic_init(&q->tail, 0);
        work[i] = (pair){ i, total / (uint64_t)pairs, q };
    }
    double start = bench_now();
    for (int i = 0; i < pairs; i++)
        if (pthread_create(&ids[2 * i], NULL, producer, &work[i]) != 0 ||
            pthread_create(&ids[2 * i + 1], NULL, consumer, &work[i]) != 0)
            bench_fail("pthread_create failed");
    for (int i = 0; i < 2 * pairs; i++)
        pthread_join(ids[i], NULL);
    bench_report(start);
    for (int i = 0; i < pairs; i++)
        free(work[i].q);
    free(ids);
    free(work);
    return 0;
}
