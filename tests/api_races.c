/* Races and resource hygiene: many threads mixing every call on one context, and
 * contexts opened and closed in a loop without leaking threads, descriptors or
 * memory. Run under TSan by scripts/sanitize.sh. */
#include <dirent.h>
#include <pthread.h>
#include <unistd.h>

#include "test_util.h"

static int count_dir(const char *path) {
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - (strcmp(path, "/proc/self/fd") == 0); /* the DIR's own descriptor */
}

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%ld %ld", &pages, &resident), 2);
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

struct mixer {
    pm_ctx *ctx;
    int id;
    int calls;
    int failures;
    char why[160];
};

static void *mix_calls(void *arg) {
    struct mixer *m = arg;
    enum { S = 8 };
    uint8_t rgb[S * S * 3];
    for (int i = 0; i < S * S; i++) {
        rgb[i * 3] = (uint8_t)(m->id * 15);
        rgb[i * 3 + 1] = rgb[i * 3 + 2] = 9;
    }
    pm_image img = raw_image(PM_FORMAT_RGB, rgb, S, S, 0, sizeof rgb);
    unsigned seed = (unsigned)m->id * 2654435761u;
    for (int i = 0; i < m->calls; i++) {
        seed = seed * 1103515245u + 12345u;
        pm_code rc = PM_OK;
        switch ((seed >> 16) % 4) {
        case 0: rc = pm_warmup(m->ctx); break;
        case 1: rc = pm_warmup_start(m->ctx); break;
        case 2: {
            pm_status_info st;
            pm_status_info_init(&st);
            rc = pm_status(m->ctx, &st);
            if (rc == PM_OK && (st.state < PM_STATE_COLD || st.state > PM_STATE_FAILED ||
                                st.progress < 0.0 || st.progress > 1.0)) {
                snprintf(m->why, sizeof m->why, "status: state %d progress %g", st.state, st.progress);
                m->failures++;
            }
            break;
        }
        default: {
            pm_output *out = NULL;
            rc = pm_remove_bg(m->ctx, &img, NULL, &out);
            if (rc == PM_OK && (out->width != S || abs(out->data[3] - m->id * 15) > 1)) {
                snprintf(m->why, sizeof m->why, "remove_bg: wrong output");
                m->failures++;
            }
            pm_output_free(out);
        }
        }
        if (rc != PM_OK) {
            snprintf(m->why, sizeof m->why, "call %d: code %d: %s", i, rc, pm_errmsg(m->ctx));
            m->failures++;
        }
    }
    return NULL;
}

static void test_sixteen_threads_mixing_warmup_status_and_remove_bg_then_close(void **state) {
    (void)state;
    enum { N = 16, CALLS = 200 };
    pm_ctx *ctx = open_model("red32.pt"); /* cold: the threads race to warm it */
    pthread_t t[N];
    struct mixer m[N];
    for (int i = 0; i < N; i++) {
        m[i] = (struct mixer){ctx, i, CALLS, 0, ""};
        assert_int_equal(pthread_create(&t[i], NULL, mix_calls, &m[i]), 0);
    }
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    int failures = 0;
    for (int i = 0; i < N; i++) {
        if (m[i].failures) fprintf(stderr, "thread %d: %d failures, last: %s\n", i, m[i].failures, m[i].why);
        failures += m[i].failures;
    }
    assert_int_equal(failures, 0);
    pm_status_info st = status_of(ctx);
    assert_int_equal(st.state, PM_STATE_READY);
    assert_int_equal(st.last_error_code, PM_OK);
    pm_close(ctx); /* may still have a finished background warm-up to join */
}

/* Opens a context, and by turns leaves it cold, closes it during a background
 * warm-up, or warms it and removes a background, then closes it. */
static void open_use_close(int i, const uint8_t *rgb) {
    pm_ctx *ctx = open_model("red32.pt");
    switch (i % 3) {
    case 0: break;
    case 1: assert_int_equal(pm_warmup_start(ctx), PM_OK); break;
    default: {
        pm_image img = raw_image(PM_FORMAT_RGB, rgb, 8, 8, 0, 8 * 8 * 3);
        pm_output *out = NULL;
        assert_int_equal(pm_remove_bg(ctx, &img, NULL, &out), PM_OK);
        pm_output_free(out);
    }
    }
    pm_close(ctx);
}

static void test_opening_and_closing_contexts_leaks_no_threads_fds_or_memory(void **state) {
    (void)state;
    uint8_t rgb[8 * 8 * 3] = {0};
    /* The first rounds start torch's own pools and caches, which stay: measure after. */
    for (int i = 0; i < 6; i++) open_use_close(i, rgb);
    int threads0 = count_dir("/proc/self/task"), fds0 = count_dir("/proc/self/fd");
    long rss0 = rss_kib();
    enum { ROUNDS = 60 };
    for (int i = 0; i < ROUNDS; i++) open_use_close(i, rgb);
    int threads1 = count_dir("/proc/self/task"), fds1 = count_dir("/proc/self/fd");
    long rss1 = rss_kib();
    fprintf(stderr, "after %d contexts: threads %d -> %d, fds %d -> %d, RSS %ld -> %ld KiB\n", ROUNDS,
            threads0, threads1, fds0, fds1, rss0, rss1);
    assert_int_equal(threads1, threads0);
    assert_int_equal(fds1, fds0);
#ifndef PM_TEST_SANITIZED
    /* 60 loads of a model: a leak of one model per round would be several MB.
     * (Not under ASan/TSan: their quarantine and shadow memory grow RSS by design.) */
    assert_true(rss1 - rss0 < 16 * 1024);
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sixteen_threads_mixing_warmup_status_and_remove_bg_then_close),
        cmocka_unit_test(test_opening_and_closing_contexts_leaks_no_threads_fds_or_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
