/* Batching concurrent callers (pm_params.max_batch, PM_TUNE_BATCH_WAIT_US) on the CPU
 * with tiny models: callers started together share forward passes and each still gets
 * its own image's matte; a lone caller runs alone; a model that mixes the images of
 * a batch is refused; one bad image does not fail the others in its batch. Also the
 * other way to serve concurrent callers, PM_TUNE_FORWARD_STREAMS: its range at
 * pm_tune_set and one stream on the CPU (its clashes with batching at warm-up are
 * in api_tuning.c). */
#include <pthread.h>

#include "test_util.h"

enum { S = 32, CALLERS = 4 };

static pm_ctx *open_batching(const char *name, int max_batch, int wait_us) {
    pm_params p;
    cpu_params(&p, name);
    p.max_batch = max_batch;
    pm_ctx *ctx = open_with(&p, name);
    quick_warmup(ctx);
    tune(ctx, PM_TUNE_BATCH_WAIT_US, wait_us);
    return ctx;
}

struct caller {
    pm_ctx *ctx;
    pthread_barrier_t *start;
    uint8_t red; /* the whole image's red value: red32's matte is exactly this */
    pm_code rc;
    int wrong_pixels;
    char why[200];
};

static void *call_once(void *arg) {
    struct caller *c = arg;
    uint8_t rgb[S * S * 3];
    for (int i = 0; i < S * S; i++) {
        rgb[i * 3] = c->red;
        rgb[i * 3 + 1] = c->red ? 40 : 0; /* red 0: an all-black image */
        rgb[i * 3 + 2] = c->red ? 200 : 0;
    }
    pm_image img = raw_image(PM_FORMAT_RGB, rgb, S, S, 0, sizeof rgb);
    pm_remove_options o;
    pm_remove_options_init(&o);
    o.output = PM_OUTPUT_MASK;
    pm_output *out = NULL;
    pthread_barrier_wait(c->start);
    c->rc = pm_remove_bg(c->ctx, &img, &o, &out);
    if (c->rc != PM_OK) {
        snprintf(c->why, sizeof c->why, "%s", pm_errmsg(c->ctx));
        return NULL;
    }
    for (int i = 0; i < S * S; i++) c->wrong_pixels += out->data[i] != c->red;
    pm_output_free(out);
    return NULL;
}

/* Runs CALLERS threads released together, with the given red values. */
static void run_callers(pm_ctx *ctx, const uint8_t *reds, struct caller *c) {
    pthread_barrier_t start;
    pthread_t t[CALLERS];
    assert_int_equal(pthread_barrier_init(&start, NULL, CALLERS), 0);
    for (int i = 0; i < CALLERS; i++) {
        c[i] = (struct caller){.ctx = ctx, .start = &start, .red = reds[i]};
        assert_int_equal(pthread_create(&t[i], NULL, call_once, &c[i]), 0);
    }
    for (int i = 0; i < CALLERS; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
}

static void test_callers_started_together_share_passes_and_each_gets_its_own_matte(void **state) {
    (void)state;
    /* A 100 ms wait: the four released callers reach the model well inside it, even
     * on a loaded machine under a sanitizer, so at least two share a pass. */
    pm_ctx *ctx = open_batching("red32.pt", CALLERS, 100000);
    assert_int_equal(pm_warmup(ctx), PM_OK);
    pm_status_info st = status_of(ctx);
    assert_int_equal(st.max_batch, CALLERS);
    assert_int_equal(st.forward_passes, 0); /* warm-up passes are not counted */
    const uint8_t reds[CALLERS] = {10, 70, 130, 190};
    struct caller c[CALLERS];
    run_callers(ctx, reds, c);
    for (int i = 0; i < CALLERS; i++) {
        if (c[i].rc != PM_OK) fprintf(stderr, "caller %d: %s\n", i, c[i].why);
        assert_int_equal(c[i].rc, PM_OK);
        assert_int_equal(c[i].wrong_pixels, 0);
    }
    st = status_of(ctx);
    assert_int_equal(st.images_processed, CALLERS);
    assert_true(st.forward_passes >= 1);
    assert_true(st.forward_passes < CALLERS);
    pm_close(ctx);
}

static void test_sequential_calls_each_run_their_own_pass(void **state) {
    (void)state;
    pm_ctx *ctx = open_batching("red32.pt", 8, 0); /* no wait: nobody else is coming */
    uint8_t rgb[S * S * 3];
    memset(rgb, 99, sizeof rgb);
    pm_image img = raw_image(PM_FORMAT_RGB, rgb, S, S, 0, sizeof rgb);
    for (int i = 0; i < 3; i++) {
        pm_output *out = NULL;
        assert_int_equal(pm_remove_bg(ctx, &img, NULL, &out), PM_OK);
        assert_int_equal(out->data[3], 99); /* RGBA: alpha = red */
        pm_output_free(out);
    }
    pm_status_info st = status_of(ctx);
    assert_int_equal(st.max_batch, 8);
    assert_int_equal(st.forward_passes, 3);
    assert_int_equal(st.images_processed, 3);
    pm_close(ctx);
}

static void test_the_default_and_one_mean_no_batching_on_the_cpu(void **state) {
    (void)state;
    pm_params defaults;
    pm_params_init(&defaults);
    const int settings[2] = {defaults.max_batch, 1};
    for (int k = 0; k < 2; k++) {
        pm_ctx *ctx = open_batching("red32.pt", settings[k], 0);
        assert_int_equal(pm_warmup(ctx), PM_OK);
        assert_int_equal(status_of(ctx).max_batch, 1);
        pm_close(ctx);
    }
}

static void test_a_model_that_mixes_the_images_of_a_batch_is_refused_by_name(void **state) {
    (void)state;
    pm_ctx *ctx = open_batching("mixes_batch.pt", 2, 0);
    assert_int_equal(pm_warmup(ctx), PM_ERR_UNSUPPORTED);
    assert_non_null(strstr(pm_errmsg(ctx), "independently"));
    pm_status_info st = status_of(ctx);
    assert_int_equal(st.state, PM_STATE_FAILED);
    assert_int_equal(st.last_error_code, PM_ERR_UNSUPPORTED);
    pm_close(ctx);
    /* One image a pass, the same model is fine. */
    ctx = open_batching("mixes_batch.pt", 1, 0);
    uint8_t rgb[S * S * 3];
    memset(rgb, 150, sizeof rgb);
    pm_image img = raw_image(PM_FORMAT_RGB, rgb, S, S, 0, sizeof rgb);
    pm_output *out = NULL;
    assert_int_equal(pm_remove_bg(ctx, &img, NULL, &out), PM_OK);
    assert_int_equal(out->data[3], 150);
    pm_output_free(out);
    pm_close(ctx);
}

static void test_one_bad_image_fails_alone_not_its_whole_batch(void **state) {
    (void)state;
    pm_ctx *ctx = open_batching("throws_on_black.pt", CALLERS, 100000);
    assert_int_equal(pm_warmup(ctx), PM_OK);
    const uint8_t reds[CALLERS] = {50, 0, 120, 240}; /* caller 1: all black */
    struct caller c[CALLERS];
    run_callers(ctx, reds, c);
    for (int i = 0; i < CALLERS; i++) {
        if (i == 1) {
            assert_int_equal(c[i].rc, PM_ERR_INFERENCE);
            assert_non_null(strstr(c[i].why, "refuses a black image"));
            continue;
        }
        if (c[i].rc != PM_OK) fprintf(stderr, "caller %d: %s\n", i, c[i].why);
        assert_int_equal(c[i].rc, PM_OK);
        assert_int_equal(c[i].wrong_pixels, 0);
    }
    assert_int_equal(status_of(ctx).images_processed, CALLERS - 1);
    pm_close(ctx);
}

static void test_batch_parameters_out_of_range_are_refused(void **state) {
    (void)state;
    const int bad_batch[] = {-1, 0, -2, 65, 1000};
    for (size_t i = 0; i < sizeof bad_batch / sizeof bad_batch[0]; i++) {
        pm_params p;
        cpu_params(&p, "red32.pt");
        p.max_batch = bad_batch[i];
        pm_ctx *ctx = (pm_ctx *)0x1;
        assert_int_equal(pm_open(&p, &ctx), PM_ERR_INVALID_ARGUMENT);
        assert_null(ctx);
        assert_non_null(strstr(pm_errmsg(NULL), "max_batch"));
    }
    pm_ctx *ctx = open_model("red32.pt");
    const int bad_wait[] = {-1, 100001};
    for (size_t i = 0; i < sizeof bad_wait / sizeof bad_wait[0]; i++) {
        assert_int_equal(pm_tune_set(ctx, PM_TUNE_BATCH_WAIT_US, bad_wait[i]), PM_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(pm_errmsg(ctx), "batch_wait_us"));
    }
    assert_int_equal(tuned(ctx, PM_TUNE_BATCH_WAIT_US), 0);
    pm_close(ctx);
    pm_params p;
    pm_params_init(&p);
    assert_int_equal(p.max_batch, 1);
}

/* Opens red32 on the CPU with max_batch in pm_params and the other two by key. */
static pm_ctx *open_with_streams(int forward_streams, int max_batch, int cuda_graph) {
    pm_params p;
    cpu_params(&p, "red32.pt");
    p.max_batch = max_batch;
    pm_ctx *ctx = open_with(&p, "red32.pt");
    quick_warmup(ctx);
    tune(ctx, PM_TUNE_FORWARD_STREAMS, forward_streams);
    tune(ctx, PM_TUNE_CUDA_GRAPH, cuda_graph);
    return ctx;
}

static void test_forward_streams_out_of_range_are_refused_by_tune_set(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    const int bad[] = {0, -2, 9};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(pm_tune_set(ctx, PM_TUNE_FORWARD_STREAMS, bad[i]), PM_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(pm_errmsg(ctx), "forward_streams"));
    }
    assert_int_equal(tuned(ctx, PM_TUNE_FORWARD_STREAMS), -1);
    pm_close(ctx);
}

static void test_forward_streams_run_one_pass_at_a_time_on_the_cpu(void **state) {
    (void)state;
    /* Streams are a CUDA matter: the CPU context accepts the setting (a host may set it
     * for every device) and reports the one stream it runs, 0 before READY. On CUDA
     * each stream asked for replays its own graph (auto: the manifest's one), and every
     * caller still gets its own matte. */
    const int settings[] = {-1, 1, 4, 8};
    for (size_t k = 0; k < sizeof settings / sizeof settings[0]; k++) {
        pm_ctx *ctx = open_with_streams(settings[k], 1, -1);
        assert_int_equal(status_of(ctx).forward_streams, 0);
        assert_int_equal(pm_warmup(ctx), PM_OK);
        const int expected = test_on_cuda() && settings[k] > 1 ? settings[k] : 1;
        assert_int_equal(status_of(ctx).forward_streams, expected);
        const uint8_t reds[CALLERS] = {10, 90, 170, 250};
        struct caller c[CALLERS];
        run_callers(ctx, reds, c);
        for (int i = 0; i < CALLERS; i++) {
            assert_int_equal(c[i].rc, PM_OK);
            assert_int_equal(c[i].wrong_pixels, 0);
        }
        pm_close(ctx);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_streams_out_of_range_are_refused_by_tune_set),
        cmocka_unit_test(test_forward_streams_run_one_pass_at_a_time_on_the_cpu),
        cmocka_unit_test(test_callers_started_together_share_passes_and_each_gets_its_own_matte),
        cmocka_unit_test(test_sequential_calls_each_run_their_own_pass),
        cmocka_unit_test(test_the_default_and_one_mean_no_batching_on_the_cpu),
        cmocka_unit_test(test_a_model_that_mixes_the_images_of_a_batch_is_refused_by_name),
        cmocka_unit_test(test_one_bad_image_fails_alone_not_its_whole_batch),
        cmocka_unit_test(test_batch_parameters_out_of_range_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
