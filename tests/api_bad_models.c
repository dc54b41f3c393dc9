/* Broken model files fail warm-up with PM_ERR_MODEL and a clear message, never a
 * crash; the context retries on the next call and stays usable. */
#include "test_util.h"

struct bad_model {
    const char *file;
    const char *message_part; /* must appear in the error message */
};

static const struct bad_model bad_models[] = {
    {"empty.pt", "empty.pt"},
    {"not_torchscript.pt", "not_torchscript.pt"},
    {"truncated.pt", "truncated.pt"},
    {"random_bytes.pt", "random_bytes.pt"},
    {"wrong_shape.pt", "shape"},
    {"nan_output.pt", "NaN"},
    {"bad_json.pt", "JSON"},
    {"absurd_size.pt", "input.width"},
    {"future_version.pt", "version"},
    {"future_op.pt", "an operator libtorch"}, /* ... lacks (a file from a newer torch?) */
};

static void test_each_broken_model_fails_warmup_with_a_model_error(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad_models / sizeof bad_models[0]; i++) {
        pm_ctx *ctx = open_model(bad_models[i].file);
        pm_code rc = pm_warmup(ctx);
        if (rc != PM_ERR_MODEL || !strstr(pm_errmsg(ctx), bad_models[i].message_part))
            fprintf(stderr, "%s: code %d, message \"%s\"\n", bad_models[i].file, rc, pm_errmsg(ctx));
        assert_int_equal(rc, PM_ERR_MODEL);
        assert_non_null(strstr(pm_errmsg(ctx), bad_models[i].message_part));
        pm_status_info st = status_of(ctx);
        assert_int_equal(st.state, PM_STATE_FAILED);
        assert_int_equal(st.last_error_code, PM_ERR_MODEL);
        assert_true(st.progress == 0.0);
        /* The next call tries again (and fails the same way), and so does remove_bg. */
        assert_int_equal(pm_warmup(ctx), PM_ERR_MODEL);
        uint8_t rgb[8 * 8 * 3] = {0};
        pm_image img = raw_image(PM_FORMAT_RGB, rgb, 8, 8, 0, sizeof rgb);
        pm_output *out = NULL;
        assert_int_equal(pm_remove_bg(ctx, &img, NULL, &out), PM_ERR_MODEL);
        assert_null(out);
        pm_close(ctx);
    }
}

static void test_fp16_on_cpu_is_unsupported_not_a_crash(void **state) {
    (void)state;
    pm_params p;
    pm_params_init(&p);
    p.model_path = model_path("red32.pt");
    p.device = "cpu";
    p.precision = PM_PRECISION_FP16;
    pm_ctx *ctx = NULL;
    assert_int_equal(pm_open(&p, &ctx), PM_OK);
    assert_int_equal(pm_warmup(ctx), PM_ERR_UNSUPPORTED);
    assert_non_null(strstr(pm_errmsg(ctx), "fp16"));
    pm_close(ctx);
}

static void test_error_messages_belong_to_the_thread_and_context_that_failed(void **state) {
    (void)state;
    pm_ctx *bad = open_model("wrong_shape.pt");
    pm_ctx *good = open_model("red32.pt");
    assert_int_equal(pm_warmup(bad), PM_ERR_MODEL);
    assert_int_equal(pm_warmup(good), PM_OK);
    assert_string_equal(pm_errmsg(good), "no error");
    assert_non_null(strstr(pm_errmsg(bad), "shape"));
    pm_close(bad);
    pm_close(good);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_broken_model_fails_warmup_with_a_model_error),
        cmocka_unit_test(test_fp16_on_cpu_is_unsupported_not_a_crash),
        cmocka_unit_test(test_error_messages_belong_to_the_thread_and_context_that_failed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
