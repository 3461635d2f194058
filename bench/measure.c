/* measure — run a program and report its wall time and peak resident set size.
 *
 *   measure [-p preload.so] [-t timeout_s] [-o report_file] -- program [args...]
 *
 * The child gets LD_PRELOAD=preload.so (the launcher itself never loads it, so an allocator
 * that crashes at start-up cannot take the measurement down with it). The report is one line:
 *   wall_s=<seconds> maxrss_kib=<KiB> status=<exit code, or 128+signal, or 124 on timeout>
 * written to report_file (or stderr). measure exits with the same status. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t timed_out;
static volatile pid_t child_pid;

static void on_alarm(int sig)
{
    (void)sig;
    timed_out = 1;
    if (child_pid > 0)
        kill(child_pid, SIGKILL);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(void)
{
    fprintf(stderr, "usage: measure [-p preload.so] [-t timeout_s] [-o report] -- program [args]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *preload = NULL, *report_path = NULL;
    unsigned timeout_s = 0;
    int opt;
    while ((opt = getopt(argc, argv, "+p:t:o:")) != -1) {
        switch (opt) {
        case 'p': preload = optarg; break;
        case 't': timeout_s = (unsigned)atoi(optarg); break;
        case 'o': report_path = optarg; break;
        default: usage();
        }
    }
    if (optind >= argc)
        usage();

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);

    double start = now_seconds();
    pid_t pid = fork();
    if (pid < 0) {
        perror("measure: fork");
        return 2;
    }
    if (pid == 0) {
        if (preload != NULL && preload[0] != '\0')
            setenv("LD_PRELOAD", preload, 1);
        else
            unsetenv("LD_PRELOAD");
        execvp(argv[optind], &argv[optind]);
        fprintf(stderr, "measure: cannot run %s: %s\n", argv[optind], strerror(errno));
        _exit(127);
    }
    child_pid = pid;
    if (timeout_s > 0)
        alarm(timeout_s);

    int wstatus = 0;
    struct rusage usage_info;
    memset(&usage_info, 0, sizeof usage_info);
    while (wait4(pid, &wstatus, 0, &usage_info) < 0) {
        if (errno != EINTR) {
            perror("measure: wait4");
            return 2;
        }
    }
    double wall = now_seconds() - start;
    alarm(0);

    int status;
    if (timed_out)
        status = 124;
    else if (WIFSIGNALED(wstatus))
        status = 128 + WTERMSIG(wstatus);
    else
        status = WEXITSTATUS(wstatus);

    FILE *report = stderr;
    if (report_path != NULL && (report = fopen(report_path, "w")) == NULL) {
        perror("measure: report file");
        return 2;
    }
    fprintf(report, "wall_s=%.6f maxrss_kib=%ld status=%d\n", wall, usage_info.ru_maxrss, status);
    if (report != stderr)
        fclose(report);
    return status;
}
