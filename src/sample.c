/* sample.c — the heap's figures over time, for `crtheap run`.
 *
 * When CRTHEAP_SAMPLE_FILE names a file and CRTHEAP_SAMPLE_PID is this process's id
 * (the command sets both, so that the programs the sampled one starts do not sample),
 * a thread writes one line to the file every CRTHEAP_SAMPLE_MS milliseconds (100):
 *
 *   ms  in_use  committed  resident  released  rss  trims  trim_released
 *
 * (bytes; rss is the process's resident set; trims counts _heapmin, crtheap_trim and
 * malloc_trim calls so far, trim_released what they gave back), and a last line at exit.
 * The thread blocks every signal and never allocates (it has no heap: the purger and
 * the statistics do not see it).  CRTHEAP_SHOW_STATS=1 starts it too, without a file,
 * for the peaks of in use, committed and resident that the report at exit gives (sampled
 * every 100 ms: between two samples a peak may pass unseen).  Nothing of this exists
 * without those variables.
 *
 * Layer 8 (beside stats.c, whose figures it writes). */
#define _GNU_SOURCE
#include "modules.h"
#include "crtheap.h"
#include "statm.h"
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int sample_fd = -1;
static bool sampling;
/* The sampled process.  A child it forks inherits the file, the exit handler and perhaps
 * a sample_mutex the sampler held at the fork, but not the thread: it must touch none
 * of them (it would append to the parent's samples, or wait for that mutex forever). */
static pid_t sample_pid;
static size_t peak_in_use, peak_committed, peak_resident;   /* written by the sampler only */
static long sample_interval_ms = 100;
static uint64_t sample_start_ms;
static pthread_mutex_t sample_mutex = PTHREAD_MUTEX_INITIALIZER;   /* one line at a time */

static void sample_write(void)
{
    crtheap_stats_t st;
    crtheap_counters_t c;
    crtheap_get_stats(&st);
    crtheap_get_counters(&c);
    pthread_mutex_lock(&sample_mutex);
    if (st.in_use > peak_in_use)
        peak_in_use = st.in_use;
    if (st.committed > peak_committed)
        peak_committed = st.committed;
    if (st.resident > peak_resident)
        peak_resident = st.resident;
    pthread_mutex_unlock(&sample_mutex);
    if (sample_fd < 0)
        return;
    char line[256];
    int n = snprintf(line, sizeof line, "%llu\t%zu\t%zu\t%zu\t%zu\t%zu\t%llu\t%zu\n",
                     (unsigned long long)(os_now_ms() - sample_start_ms), st.in_use, st.committed, st.resident,
                     st.released, statm_resident_bytes(), (unsigned long long)(c.heapmin_calls + c.trim_calls),
                     c.trim_released);
    pthread_mutex_lock(&sample_mutex);
    if (n > 0 && sample_fd >= 0 && write(sample_fd, line, (size_t)n) != n) {
        close(sample_fd);   /* the disk is full or gone: stop rather than write half lines */
        sample_fd = -1;
    }
    pthread_mutex_unlock(&sample_mutex);
}

static void *sampler(void *arg)
{
    (void)arg;
    struct timespec pause = { sample_interval_ms / 1000, (sample_interval_ms % 1000) * 1000000L };
    for (;;) {
        sample_write();
        nanosleep(&pause, NULL);
    }
    return NULL;
}

static void sample_at_exit(void)
{
    if (getpid() == sample_pid)
        sample_write();
}

/* The sampled peaks, each at least `now`'s; false when nothing samples. */
bool sample_peaks(size_t *in_use, size_t *committed, size_t *resident)
{
    if (!sampling || getpid() != sample_pid)
        return false;
    pthread_mutex_lock(&sample_mutex);
    *in_use = *in_use > peak_in_use ? *in_use : peak_in_use;
    *committed = *committed > peak_committed ? *committed : peak_committed;
    *resident = *resident > peak_resident ? *resident : peak_resident;
    pthread_mutex_unlock(&sample_mutex);
    return true;
}

__attribute__((constructor)) static void sample_start(void)
{
    const char *file = getenv("CRTHEAP_SAMPLE_FILE"), *pid = getenv("CRTHEAP_SAMPLE_PID");
    bool to_file = file && *file && pid && strtol(pid, NULL, 10) == (long)getpid();
    options_init();
    if (!to_file && !option_show_stats)
        return;
    const char *ms = getenv("CRTHEAP_SAMPLE_MS");
    if (to_file && ms && strtol(ms, NULL, 10) >= 1 && strtol(ms, NULL, 10) <= 60000)
        sample_interval_ms = strtol(ms, NULL, 10);
    if (to_file) {
        sample_fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
        if (sample_fd < 0) {
            static const char msg[] = "crtheap: CRTHEAP_SAMPLE_FILE cannot be written; not sampling\n";
            os_write_stderr(msg, sizeof msg - 1);
            if (!option_show_stats)
                return;
        }
    }
    sample_start_ms = os_now_ms();
    sample_pid = getpid();
    sampling = true;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   /* the thread starts with every signal blocked */
    pthread_t t;
    if (pthread_create(&t, NULL, sampler, NULL) == 0) {
        pthread_setname_np(t, "crtheap-sample");
        pthread_detach(t);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    atexit(sample_at_exit);
}
