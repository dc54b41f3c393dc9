/* NULL in every pointer argument of every pm_* function: an error code (or the
 * documented no-op), never a crash, and *out cleared where there is one. */
#include "test_util.h"

static pm_ctx *cold_ctx(void) { return open_model("red32.pt"); }

static void test_init_functions_ignore_null_and_tiny_sizes(void **state) {
    (void)state;
    pm_params_init_sized(NULL, sizeof(pm_params));
    pm_status_info_init_sized(NULL, sizeof(pm_status_info));
    pm_image_init_sized(NULL, sizeof(pm_image));
    pm_remove_options_init_sized(NULL, sizeof(pm_remove_options));
    /* A size smaller than struct_size itself writes nothing. */
    size_t canary = 0xA5A5A5A5u;
    pm_params_init_sized((pm_params *)&canary, 1);
    pm_image_init_sized((pm_image *)&canary, 0);
    pm_remove_options_init_sized((pm_remove_options *)&canary, 3);
    pm_status_info_init_sized((pm_status_info *)&canary, 7);
    assert_int_equal(canary, 0xA5A5A5A5u);
}

static void test_open_with_null_params_out_or_strings(void **state) {
    (void)state;
    pm_ctx *ctx = (pm_ctx *)0x1;
    pm_params p;
    pm_params_init(&p);
    p.model_path = model_path("red32.pt");
    assert_int_equal(pm_open(NULL, &ctx), PM_ERR_INVALID_ARGUMENT);
    assert_null(ctx);
    assert_int_equal(pm_open(&p, NULL), PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_open(NULL, NULL), PM_ERR_INVALID_ARGUMENT);
    p.model_path = NULL;
    ctx = (pm_ctx *)0x1;
    assert_int_equal(pm_open(&p, &ctx), PM_ERR_INVALID_ARGUMENT);
    assert_null(ctx);
    /* device NULL is documented as "auto". */
    p.model_path = model_path("red32.pt");
    p.device = NULL;
    assert_int_equal(pm_open(&p, &ctx), PM_OK);
    pm_close(ctx);
}

static void test_context_functions_refuse_a_null_context(void **state) {
    (void)state;
    pm_status_info st;
    pm_status_info_init(&st);
    int value = 0;
    assert_int_equal(pm_warmup(NULL), PM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(pm_errmsg(NULL), "pm_warmup"));
    assert_int_equal(pm_warmup_start(NULL), PM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(pm_errmsg(NULL), "pm_warmup_start"));
    assert_int_equal(pm_status(NULL, &st), PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_status(NULL, NULL), PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_tune_set(NULL, PM_TUNE_CUDA_GRAPH, 0), PM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(pm_errmsg(NULL), "pm_tune_set"));
    assert_int_equal(pm_tune_get(NULL, PM_TUNE_CUDA_GRAPH, &value), PM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(pm_errmsg(NULL), "pm_tune_get"));
    assert_int_equal(pm_tune_get(NULL, PM_TUNE_CUDA_GRAPH, NULL), PM_ERR_INVALID_ARGUMENT);
    pm_close(NULL);
    assert_non_null(pm_errmsg(NULL));
    pm_output_free(NULL);
    assert_int_equal(pm_cuda_device_count(NULL), PM_ERR_INVALID_ARGUMENT);
}

static void test_status_with_null_info(void **state) {
    (void)state;
    pm_ctx *ctx = cold_ctx();
    assert_int_equal(pm_status(ctx, NULL), PM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(pm_errmsg(ctx), "info is NULL"));
    pm_close(ctx);
}

static void test_tune_get_with_null_value(void **state) {
    (void)state;
    pm_ctx *ctx = cold_ctx();
    assert_int_equal(pm_tune_get(ctx, PM_TUNE_WARMUP_MAX_RUNS, NULL), PM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(pm_errmsg(ctx), "value is NULL"));
    assert_int_equal(tuned(ctx, PM_TUNE_WARMUP_MAX_RUNS), 6); /* the context is unharmed */
    pm_close(ctx);
}

static void test_remove_bg_with_each_argument_null(void **state) {
    (void)state;
    pm_ctx *ctx = cold_ctx();
    uint8_t px[4 * 4 * 3] = {0};
    pm_image img = raw_image(PM_FORMAT_RGB, px, 4, 4, 0, sizeof px);
    pm_remove_options opt;
    pm_remove_options_init(&opt);
    pm_output *out = (pm_output *)0x1;

    assert_int_equal(pm_remove_bg(NULL, &img, &opt, &out), PM_ERR_INVALID_ARGUMENT);
    assert_null(out);
    out = (pm_output *)0x1;
    assert_int_equal(pm_remove_bg(ctx, NULL, &opt, &out), PM_ERR_INVALID_ARGUMENT);
    assert_null(out);
    assert_int_equal(pm_remove_bg(ctx, &img, &opt, NULL), PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_remove_bg(NULL, NULL, NULL, NULL), PM_ERR_INVALID_ARGUMENT);
    /* options NULL means the defaults. */
    assert_int_equal(pm_remove_bg(ctx, &img, NULL, &out), PM_OK);
    pm_output_free(out);
    /* NULL pixel data, raw and encoded. */
    pm_image nodata = raw_image(PM_FORMAT_RGBA, NULL, 4, 4, 0, 64);
    assert_int_equal(pm_remove_bg(ctx, &nodata, NULL, &out), PM_ERR_INVALID_ARGUMENT);
    assert_null(out);
    pm_image enc;
    pm_image_init(&enc);
    enc.size = 100;
    assert_int_equal(pm_remove_bg(ctx, &enc, NULL, &out), PM_ERR_INVALID_ARGUMENT);
    assert_null(out);
    /* The context is still usable. */
    assert_int_equal(pm_remove_bg(ctx, &img, &opt, &out), PM_OK);
    pm_output_free(out);
    pm_close(ctx);
}

static void test_string_functions_never_return_null(void **state) {
    (void)state;
    assert_non_null(pm_version());
    assert_non_null(pm_strerror((pm_code)-1));
    assert_non_null(pm_strerror((pm_code)1000));
    assert_string_equal(pm_state_name((pm_state)99), "unknown");
    assert_string_equal(pm_precision_name((pm_precision)-5), "unknown");
    assert_null(pm_tune_name((pm_tune)0)); /* the one name lookup that may answer NULL */
    assert_string_equal(pm_errmsg(NULL), pm_errmsg(NULL));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_functions_ignore_null_and_tiny_sizes),
        cmocka_unit_test(test_open_with_null_params_out_or_strings),
        cmocka_unit_test(test_context_functions_refuse_a_null_context),
        cmocka_unit_test(test_status_with_null_info),
        cmocka_unit_test(test_tune_get_with_null_value),
        cmocka_unit_test(test_remove_bg_with_each_argument_null),
        cmocka_unit_test(test_string_functions_never_return_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
