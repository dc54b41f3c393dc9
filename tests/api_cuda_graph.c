/* api_cuda_graph.c - a CUDA graph never changes what a model computes: models whose
 * control flow depends on tensor values run eagerly, on every device the same way.
 * Runs on the tests' device: the CPU, or the GPU under scripts/test-cuda.sh. */
#include "test_util.h"

/* A flat (single-colour) raw RGB image. */
static pm_code remove_flat(pm_ctx *ctx, int w, int h) {
    uint8_t *px = malloc((size_t)w * h * 3);
    memset(px, 90, (size_t)w * h * 3);
    pm_image img = raw_image(PM_FORMAT_RGB, px, w, h, 0, (size_t)w * h * 3);
    pm_output *out = NULL;
    pm_code rc = pm_remove_bg(ctx, &img, NULL, &out);
    pm_output_free(out);
    free(px);
    return rc;
}

static pm_code remove_textured(pm_ctx *ctx, int w, int h) {
    uint8_t *px = make_rgb(w, h);
    pm_image img = raw_image(PM_FORMAT_RGB, px, w, h, 0, (size_t)w * h * 3);
    pm_output *out = NULL;
    pm_code rc = pm_remove_bg(ctx, &img, NULL, &out);
    if (rc == PM_OK) {
        /* The model's matte is the red channel: the graph or eager pass computed it. */
        assert_int_equal(out->data[3], pattern_red(0, 0));
        assert_int_equal(out->data[((size_t)5 * w + 7) * 4 + 3], pattern_red(7, 5));
    }
    pm_output_free(out);
    free(px);
    return rc;
}

static void a_model_branching_on_values_is_not_graph_safe_and_runs_eagerly(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("throws_on_flat.pt");
    assert_int_equal(status_of(ctx).graph_safe, -1); /* not loaded yet */
    assert_int_equal(pm_warmup(ctx), PM_OK);
    pm_status_info st = status_of(ctx);
    assert_int_equal(st.graph_safe, 0);
    assert_int_equal(st.cuda_graph, 0);
    assert_int_equal(tuned(ctx, PM_TUNE_CUDA_GRAPH), 0);
    pm_close(ctx);
}

static void a_value_dependent_raise_still_raises_after_warm_up(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("throws_on_flat.pt");
    assert_int_equal(pm_warmup(ctx), PM_OK);
    for (int i = 0; i < 3; i++) { /* replays would have frozen the warm-up's decision */
        assert_int_equal(remove_flat(ctx, 32, 32), PM_ERR_INFERENCE);
        assert_non_null(strstr(pm_errmsg(ctx), "refuses a flat image"));
        assert_int_equal(remove_textured(ctx, 32, 32), PM_OK);
    }
    pm_close(ctx);
}

static void requiring_a_graph_for_a_value_dependent_model_is_refused(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("throws_on_flat.pt");
    tune(ctx, PM_TUNE_CUDA_GRAPH, 1);
    pm_code rc = pm_warmup(ctx);
    if (test_on_cuda()) {
        assert_int_equal(rc, PM_ERR_UNSUPPORTED);
        assert_non_null(strstr(pm_errmsg(ctx), "depends on tensor values"));
        assert_int_equal(status_of(ctx).state, PM_STATE_FAILED);
        tune(ctx, PM_TUNE_CUDA_GRAPH, -1); /* the host decides, then tries again */
        assert_int_equal(pm_warmup(ctx), PM_OK);
        assert_int_equal(status_of(ctx).cuda_graph, 0);
    } else {
        assert_int_equal(rc, PM_OK); /* no graphs on the CPU: nothing to refuse */
    }
    pm_close(ctx);
}

static void a_shape_only_model_is_graph_safe_and_replays_a_graph_on_cuda(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    assert_int_equal(pm_warmup(ctx), PM_OK);
    pm_status_info st = status_of(ctx);
    assert_int_equal(st.graph_safe, 1);
    assert_int_equal(st.cuda_graph, test_on_cuda() ? 1 : 0);
    assert_int_equal(remove_textured(ctx, 32, 32), PM_OK);
    pm_close(ctx);
}

static void a_manifest_may_declare_a_model_graph_safe(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("throws_on_black_graph_safe.pt");
    assert_int_equal(pm_warmup(ctx), PM_OK);
    pm_status_info st = status_of(ctx);
    assert_int_equal(st.graph_safe, 1);
    /* Declared safe, so on CUDA capture is tried (whether this model's host read lets
     * it be recorded is the driver's matter); on the CPU there is no graph. */
    if (!test_on_cuda()) assert_int_equal(st.cuda_graph, 0);
    assert_int_equal(remove_textured(ctx, 32, 32), PM_OK);
    pm_close(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_model_branching_on_values_is_not_graph_safe_and_runs_eagerly),
        cmocka_unit_test(a_value_dependent_raise_still_raises_after_warm_up),
        cmocka_unit_test(requiring_a_graph_for_a_value_dependent_model_is_refused),
        cmocka_unit_test(a_shape_only_model_is_graph_safe_and_replays_a_graph_on_cuda),
        cmocka_unit_test(a_manifest_may_declare_a_model_graph_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
