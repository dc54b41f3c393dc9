/* api_freeze.c - PM_TUNE_FREEZE: freezing folds BatchNorm and keeps the matte,
 * auto leaves CPU models as loaded, a model that cannot be frozen is refused by
 * name only when freezing was asked for. */
#include "test_util.h"

#define S 32

/* The MASK of conv_bn.pt (or `name`) for make_rgb(S, S), with freeze = `freeze`;
 * *frozen gets pm_status_info.frozen. */
static uint8_t *mask_with_freeze(const char *name, int freeze, int *frozen) {
    pm_ctx *ctx = open_model(name);
    tune(ctx, PM_TUNE_FREEZE, freeze);
    if (pm_warmup(ctx) != PM_OK) fail_msg("pm_warmup(%s, freeze %d): %s", name, freeze, pm_errmsg(ctx));
    uint8_t *rgb = make_rgb(S, S);
    pm_image img = raw_image(PM_FORMAT_RGB, rgb, S, S, 0, (size_t)S * S * 3);
    pm_remove_options o;
    pm_remove_options_init(&o);
    o.output = PM_OUTPUT_MASK;
    pm_output *out = NULL;
    assert_int_equal(pm_remove_bg(ctx, &img, &o, &out), PM_OK);
    assert_int_equal(out->size, (size_t)S * S);
    uint8_t *mask = malloc(out->size);
    memcpy(mask, out->data, out->size);
    *frozen = status_of(ctx).frozen;
    pm_output_free(out);
    free(rgb);
    pm_close(ctx);
    return mask;
}

static void test_freezing_folds_batchnorm_and_keeps_the_matte(void **state) {
    (void)state;
    int frozen_off = -1, frozen_on = -1;
    uint8_t *as_loaded = mask_with_freeze("conv_bn.pt", 0, &frozen_off);
    uint8_t *frozen = mask_with_freeze("conv_bn.pt", 1, &frozen_on);
    assert_int_equal(frozen_off, 0);
    assert_int_equal(frozen_on, 1);
    /* Folding reorders float32 arithmetic: at most one step of 8-bit rounding. */
    int worst = 0, lo = 255, hi = 0;
    for (int i = 0; i < S * S; i++) {
        int d = abs((int)as_loaded[i] - (int)frozen[i]);
        if (d > worst) worst = d;
        if (as_loaded[i] < lo) lo = as_loaded[i];
        if (as_loaded[i] > hi) hi = as_loaded[i];
    }
    assert_true(worst <= 1);
    assert_true(hi - lo >= 20); /* the matte is not flat: the comparison means something */
    free(as_loaded);
    free(frozen);
}

static void test_auto_freeze_leaves_a_cpu_model_as_loaded(void **state) {
    (void)state;
    int frozen = -1;
    free(mask_with_freeze("conv_bn.pt", -1, &frozen));
    assert_int_equal(frozen, 0);
}

static void test_a_model_that_cannot_be_frozen_fails_warmup_only_when_freezing_was_asked_for(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("picks_by_name.pt");
    tune(ctx, PM_TUNE_FREEZE, 1);
    assert_int_equal(pm_warmup(ctx), PM_ERR_UNSUPPORTED);
    assert_non_null(strstr(pm_errmsg(ctx), "cannot freeze the model"));
    assert_non_null(strstr(pm_errmsg(ctx), "ModuleContainerIndex"));
    pm_status_info st = status_of(ctx);
    assert_int_equal(st.state, PM_STATE_FAILED);
    assert_int_equal(st.last_error_code, PM_ERR_UNSUPPORTED);
    pm_close(ctx);

    int frozen = -1;
    uint8_t *mask = mask_with_freeze("picks_by_name.pt", 0, &frozen);
    assert_int_equal(frozen, 0);
    assert_int_equal(mask[5 * S + 3], pattern_red(3, 5)); /* the model still works unfrozen */
    free(mask);
}

static void test_freeze_outside_minus_one_to_one_is_refused_by_tune_set(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    for (int v = -2; v <= 2; v += 4) {
        assert_int_equal(pm_tune_set(ctx, PM_TUNE_FREEZE, v), PM_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(pm_errmsg(ctx), "freeze"));
        assert_int_equal(tuned(ctx, PM_TUNE_FREEZE), -1);
    }
    pm_close(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_freezing_folds_batchnorm_and_keeps_the_matte),
        cmocka_unit_test(test_auto_freeze_leaves_a_cpu_model_as_loaded),
        cmocka_unit_test(test_a_model_that_cannot_be_frozen_fails_warmup_only_when_freezing_was_asked_for),
        cmocka_unit_test(test_freeze_outside_minus_one_to_one_is_refused_by_tune_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
