/* test_death.c — runs each misuse program of tests/death/ (SPEC §4) and asserts that it
 * dies by SIGABRT and that the last line of its stderr is exactly the allocator's
 * diagnostic naming the pointer the program printed. */
#define _GNU_SOURCE
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef DEATH_DIR
#define DEATH_DIR "build/tests/death"
#endif

/* The diagnostics, exactly as crtheap prints them; %s is the pointer as %p prints it.
 * They never change casually: scripts and people match on them. */
enum message {
    DOUBLE_FREE = 1 << 0,
    INVALID_FREE = 1 << 1,
    INTERIOR_FREE = 1 << 2,
    INVALID_REALLOC = 1 << 3,
    REALLOC_AFTER_FREE = 1 << 4,
    FREE_SIZED_WRONG = 1 << 5,
    FREE_ALIGNED_SIZED_WRONG = 1 << 6,
    DELETE_SIZED_WRONG = 1 << 7,
    DELETE_ARRAY_SIZED_WRONG = 1 << 8,
    ALIGNED_FREE_INVALID = 1 << 9,
    ALIGNED_FREE_DOUBLE = 1 << 10,
    MALLOC_CORRUPTED_LIST = 1 << 11,
    REMOTE_CORRUPTED_LIST = 1 << 12,
    MSIZE_AFTER_FREE = 1 << 13,
    EXPAND_AFTER_FREE = 1 << 14,
    MESSAGE_COUNT = 15
};
static const char *const formats[MESSAGE_COUNT] = {
    "crtheap: free(%s): double free",
    "crtheap: free(%s): invalid pointer",
    "crtheap: free(%s): interior pointer",
    "crtheap: realloc(%s): invalid pointer",
    "crtheap: realloc(%s): use after free",
    "crtheap: free_sized(%s): size 100 given, the block was allocated with 64",
    "crtheap: free_aligned_sized(%s): size 999 given, the block was allocated with 1000",
    "crtheap: operator delete(%s): size 24 given, the block was allocated with 16",
    "crtheap: operator delete[](%s): size 4000 given, the block was allocated with 40000",
    "crtheap: _aligned_free(%s): invalid pointer",
    "crtheap: _aligned_free(%s): double free",
    "crtheap: malloc(%s): corrupted free list",
    "crtheap: free(%s): corrupted remote free list",
    "crtheap: _msize(%s): use after free",
    "crtheap: _expand(%s): use after free",
};

struct death_case {
    const char *program;
    unsigned accepted; /* messages that are right for it */
};

/* Once a block mapped on its own is unmapped, its address belongs to nobody, so "invalid
 * pointer" is a correct report of a second free too. */
static const struct death_case cases[] = {
    {"double_free_small", DOUBLE_FREE},
    {"double_free_small_later", DOUBLE_FREE},
    {"double_free_large", DOUBLE_FREE | INVALID_FREE},
    {"double_free_huge", DOUBLE_FREE | INVALID_FREE},
    {"double_free_cross_thread", DOUBLE_FREE},
    {"double_free_foreign", DOUBLE_FREE},
    {"double_free_after_realloc", DOUBLE_FREE},
    {"free_stack", INVALID_FREE},
    {"free_global", INVALID_FREE},
    {"free_interior", INTERIOR_FREE},
    {"free_interior_large", INTERIOR_FREE | INVALID_FREE},
    {"free_interior_huge", INTERIOR_FREE},
    {"realloc_invalid", INVALID_REALLOC},
    {"realloc_after_free", REALLOC_AFTER_FREE},
    {"free_mmap", INVALID_FREE},
    {"free_mmap_aligned", INVALID_FREE},
    {"free_sized_wrong", FREE_SIZED_WRONG},
    {"free_aligned_sized_wrong", FREE_ALIGNED_SIZED_WRONG},
    {"delete_sized_wrong", DELETE_SIZED_WRONG},
    {"delete_array_sized_wrong", DELETE_ARRAY_SIZED_WRONG},
    {"aligned_free_of_malloc", ALIGNED_FREE_INVALID},
    {"aligned_free_double", ALIGNED_FREE_DOUBLE},
    {"malloc_corrupted_free_list", MALLOC_CORRUPTED_LIST},
    {"drain_corrupted_remote_list", REMOTE_CORRUPTED_LIST},
    {"drain_double_free", DOUBLE_FREE},
    {"double_free_meshed", DOUBLE_FREE},
    {"msize_after_free", MSIZE_AFTER_FREE},
    {"expand_after_free", EXPAND_AFTER_FREE},
};
#define CASE_COUNT ((int)(sizeof cases / sizeof cases[0]))

static char *slurp(FILE *f)
{
    size_t len = (size_t)ftell(f);
    char *text = calloc(1, len + 1);
    ck_assert(text != NULL);
    rewind(f);
    ck_assert(fread(text, 1, len, f) == len);
    return text;
}

/* The last non-empty line of text, without its newline (modifies text). */
static char *last_line(char *text)
{
    size_t len = strlen(text);
    while (len && text[len - 1] == '\n')
        text[--len] = '\0';
    char *nl = strrchr(text, '\n');
    return nl ? nl + 1 : text;
}

START_TEST(t_death)
{
    const struct death_case *c = &cases[_i];
    char path[512];
    snprintf(path, sizeof path, "%s/%s", DEATH_DIR, c->program);
    FILE *out = tmpfile(), *err = tmpfile();
    ck_assert(out && err);

    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        struct rlimit nocore = {0, 0};
        setrlimit(RLIMIT_CORE, &nocore); /* abort() is expected: no core files */
        dup2(fileno(out), 1);
        dup2(fileno(err), 2);
        alarm(20); /* a hang shows up as SIGALRM */
        execl(path, c->program, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    ck_assert(waitpid(pid, &status, 0) == pid);
    fseek(out, 0, SEEK_END);
    fseek(err, 0, SEEK_END);
    char *out_text = slurp(out);
    char *pointer = last_line(out_text);
    char *err_text = slurp(err);
    char *line = last_line(err_text);

    ck_assert_msg(!(WIFEXITED(status) && WEXITSTATUS(status) == 127), "cannot run %s", path);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "%s: want death by SIGABRT, got %s %d; stderr ends \"%s\"", c->program,
                  WIFSIGNALED(status) ? "signal" : "exit status",
                  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), line);
    ck_assert_msg(strncmp(pointer, "0x", 2) == 0, "%s printed no pointer", c->program);

    int matched = 0;
    char want[256], wants[1024] = "";
    for (int m = 0; m < MESSAGE_COUNT; m++) {
        if (!(c->accepted & (1u << m)))
            continue;
        snprintf(want, sizeof want, formats[m], pointer);
        matched |= strcmp(line, want) == 0;
        strncat(wants, "\n  ", sizeof wants - strlen(wants) - 1);
        strncat(wants, want, sizeof wants - strlen(wants) - 1);
    }
    ck_assert_msg(matched, "%s: last stderr line \"%s\", want one of:%s", c->program, line, wants);
    free(out_text);
    free(err_text);
    fclose(out);
    fclose(err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("death");
    TCase *tc = tcase_create("death");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, t_death, 0, CASE_COUNT);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
