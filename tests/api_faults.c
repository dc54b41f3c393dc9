/* Faults: host memory running out during warm-up and inference (RLIMIT_AS in a
 * forked child) is an error code, never an abort, and the same process works again
 * once memory is back; a model that throws in forward is covered in api_remove_bg.
 * Skipped under ASan/TSan (their shadow memory needs terabytes of address space)
 * and valgrind (which manages the guest's address space itself). */
#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

static int under_valgrind(void) {
    const char *p = getenv("LD_PRELOAD");
    return (p && strstr(p, "vgpreload")) || getenv("PM_TEST_UNDER_VALGRIND") != NULL;
}

static int set_soft_limit(rlim_t bytes) {
    struct rlimit r;
    if (getrlimit(RLIMIT_AS, &r) != 0) return -1;
    r.rlim_cur = bytes;
    return setrlimit(RLIMIT_AS, &r);
}

static int memory_code(pm_code rc) {
    /* Host allocations fail as NO_MEMORY; torch's CPU allocator reports "out of
     * memory" on the cpu device, DEVICE_OUT_OF_MEMORY. Nothing else is acceptable. */
    return rc == PM_ERR_NO_MEMORY || rc == PM_ERR_DEVICE_OUT_OF_MEMORY;
}

#define CHILD_CHECK(cond, code)                                                        \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "child: %s failed (line %d)\n", #cond, __LINE__);          \
            _exit(code);                                                               \
        }                                                                              \
    } while (0)

/* In the child: warm-up under a limit just above what is mapped now fails with a
 * memory code and state FAILED; with the limit lifted the same context warms.
 * Then inference of a large raw image under a limit that fits the input but not the
 * work: a memory code, and the next call (limit lifted) works. Exit 0 on success. */
static void child(void) {
    setvbuf(stderr, NULL, _IONBF, 0);
    pm_ctx *ctx = open_model("slow96.pt");
    /* Warm-up: loading torch's kernels and the model needs far more than 8 MiB. */
    CHILD_CHECK(set_soft_limit((rlim_t)(vm_size() + (8u << 20))) == 0, 10);
    pm_code rc = pm_warmup(ctx);
    CHILD_CHECK(set_soft_limit(RLIM_INFINITY) == 0, 11);
    fprintf(stderr, "child: warm-up under the limit: %d (%s)\n", rc, pm_errmsg(ctx));
    CHILD_CHECK(memory_code(rc), 12);
    pm_status_info st;
    pm_status_info_init(&st);
    CHILD_CHECK(pm_status(ctx, &st) == PM_OK && st.state == PM_STATE_FAILED, 13);
    CHILD_CHECK(st.last_error_code == (int)rc, 14);
    rc = pm_warmup(ctx);
    fprintf(stderr, "child: warm-up after: %d (%s)\n", rc, pm_errmsg(ctx));
    CHILD_CHECK(rc == PM_OK, 15);

    /* Inference: a 3000x3000 RGB input (27 MB) is allocated first; the limit then
     * leaves room for less than its 36 MB RGBA copy and the float tensors. */
    enum { W = 3000, H = 3000 };
    uint8_t *rgb = malloc((size_t)W * H * 3);
    CHILD_CHECK(rgb != NULL, 16);
    memset(rgb, 90, (size_t)W * H * 3);
    pm_image img = raw_image(PM_FORMAT_RGB, rgb, W, H, 0, (size_t)W * H * 3);
    int failed = 0;
    for (unsigned mib = 4; mib <= 256; mib *= 2) {
        pm_output *out = NULL;
        CHILD_CHECK(set_soft_limit((rlim_t)(vm_size() + ((uint64_t)mib << 20))) == 0, 17);
        rc = pm_remove_bg(ctx, &img, NULL, &out);
        CHILD_CHECK(set_soft_limit(RLIM_INFINITY) == 0, 18);
        fprintf(stderr, "child: remove_bg with %u MiB of headroom: %d (%s)\n", mib, rc,
                rc == PM_OK ? "ok" : pm_errmsg(ctx));
        if (rc == PM_OK) {
            CHILD_CHECK(out != NULL && out->width == W, 19);
            pm_output_free(out);
            continue;
        }
        CHILD_CHECK(memory_code(rc), 20);
        CHILD_CHECK(out == NULL, 21);
        failed++;
        /* Memory is back: the very next call works. */
        rc = pm_remove_bg(ctx, &img, NULL, &out);
        CHILD_CHECK(rc == PM_OK && out != NULL, 22);
        pm_output_free(out);
    }
    CHILD_CHECK(failed > 0, 23); /* the limit did provoke a failure */
    CHILD_CHECK(pm_status(ctx, &st) == PM_OK && st.state == PM_STATE_READY, 24);
    free(rgb);
    pm_close(ctx);
    _exit(0);
}

/* Runs body in a forked child (address-space limits must not touch this process)
 * and asserts it exited 0; a CHILD_CHECK's code names the check that failed.
 * Skipped under sanitizers and valgrind, whose shadow memory the limits would break. */
static void in_child(void (*body)(void)) {
#ifdef PM_TEST_SANITIZED
    skip();
#endif
    if (under_valgrind()) skip();
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) body();
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) fprintf(stderr, "child killed by signal %d\n", WTERMSIG(status));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_host_out_of_memory_in_warmup_and_inference_is_an_error_then_recovers(void **state) {
    (void)state;
    in_child(child);
}

static void *park(void *arg) {
    for (;;) pause(); /* until the child _exits */
    return arg;
}

static void thread_limit_child(void) {
    pm_ctx *ctx = open_model("red32.pt");
    /* glibc reuses the stacks of exited threads (torch starts and ends some):
     * park a few threads on them, so the next thread needs a fresh mapping. */
    for (int i = 0; i < 8; i++) {
        pthread_t t;
        CHILD_CHECK(pthread_create(&t, NULL, park, NULL) == 0, 9);
    }
    /* A new thread needs its stack mapped (8 MiB): leave less than that. */
    CHILD_CHECK(set_soft_limit((rlim_t)(vm_size() + (1u << 20))) == 0, 10);
    pm_code rc = pm_warmup_start(ctx);
    CHILD_CHECK(set_soft_limit(RLIM_INFINITY) == 0, 11);
    fprintf(stderr, "child: warmup_start under the limit: %d (%s)\n", rc, pm_errmsg(ctx));
    CHILD_CHECK(rc == PM_ERR_NO_MEMORY, 12);
    CHILD_CHECK(pm_warmup_start(ctx) == PM_OK, 13);
    CHILD_CHECK(pm_warmup(ctx) == PM_OK, 14);
    pm_close(ctx);
    _exit(0);
}

static void test_background_warmup_that_cannot_start_a_thread_is_an_error(void **state) {
    (void)state;
    in_child(thread_limit_child);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_out_of_memory_in_warmup_and_inference_is_an_error_then_recovers),
        cmocka_unit_test(test_background_warmup_that_cannot_start_a_thread_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
