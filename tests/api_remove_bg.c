/* pm_remove_bg through the red-channel models: exact pixels for every output kind. */
#include <math.h>
#include <pthread.h>

#include "test_util.h"

static void test_alpha_equals_the_red_channel_exactly(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    uint8_t *rgb = make_rgb(32, 32);
    pm_image img = raw_image(PM_FORMAT_RGB, rgb, 32, 32, 0, 32 * 32 * 3);
    pm_output *out = remove_ok(ctx, &img, NULL);
    assert_int_equal(out->encoding, PM_ENCODING_RAW);
    assert_int_equal(out->format, PM_FORMAT_RGBA);
    assert_int_equal(out->width, 32);
    assert_int_equal(out->height, 32);
    assert_int_equal(out->stride, 32 * 4);
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
            const uint8_t *o = out->data + y * out->stride + x * 4;
            const uint8_t *i = rgb + (y * 32 + x) * 3;
            assert_memory_equal(o, i, 3);
            assert_int_equal(o[3], pattern_red(x, y));
        }
    pm_output_free(out);
    pm_status_info st = status_of(ctx);
    assert_int_equal(st.images_processed, 1);
    free(rgb);
    pm_close(ctx);
}

static void test_mask_and_composite_outputs(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    uint8_t *rgb = make_rgb(32, 32);
    pm_image img = raw_image(PM_FORMAT_RGB, rgb, 32, 32, 0, 32 * 32 * 3);
    pm_remove_options opt;
    pm_remove_options_init(&opt);
    opt.output = PM_OUTPUT_MASK;
    pm_output *mask = remove_ok(ctx, &img, &opt);
    assert_int_equal(mask->format, PM_FORMAT_GRAY);
    assert_int_equal(mask->size, 32 * 32);
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) assert_int_equal(mask->data[y * mask->stride + x], pattern_red(x, y));
    pm_output_free(mask);

    opt.output = PM_OUTPUT_COMPOSITE;
    opt.background_rgb = 0x10C0F0;
    pm_output *comp = remove_ok(ctx, &img, &opt);
    assert_int_equal(comp->format, PM_FORMAT_RGB);
    const uint8_t bg[3] = {0x10, 0xC0, 0xF0};
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
            int a = pattern_red(x, y);
            for (int c = 0; c < 3; c++) {
                double want = (a * rgb[(y * 32 + x) * 3 + c] + (255 - a) * bg[c]) / 255.0;
                int got = comp->data[y * comp->stride + x * 3 + c];
                assert_true(fabs(got - want) <= 0.51);
            }
        }
    pm_output_free(comp);
    free(rgb);
    pm_close(ctx);
}

static void test_png_output_is_a_png_of_the_right_size(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    uint8_t *rgb = make_rgb(32, 32);
    pm_image img = raw_image(PM_FORMAT_RGB, rgb, 32, 32, 0, 32 * 32 * 3);
    pm_remove_options opt;
    pm_remove_options_init(&opt);
    opt.encoding = PM_ENCODING_PNG;
    opt.output = PM_OUTPUT_MASK;
    pm_output *png = remove_ok(ctx, &img, &opt);
    assert_int_equal(png->encoding, PM_ENCODING_PNG);
    assert_memory_equal(png->data, "\x89PNG\r\n\x1a\n", 8);
    /* Feed the PNG back as encoded input: the mask decodes to gray, so red == the
     * first mask, and the red model must give the same mask again. */
    pm_image enc;
    pm_image_init(&enc);
    enc.data = png->data;
    enc.size = png->size;
    pm_output *again = remove_ok(ctx, &enc, &opt);
    assert_int_equal(again->width, 32);
    assert_int_equal(again->height, 32);
    assert_int_equal(again->size, png->size);
    assert_memory_equal(again->data, png->data, png->size);
    pm_output_free(again);
    pm_output_free(png);
    free(rgb);
    pm_close(ctx);
}

static void test_threshold_then_invert(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    uint8_t *rgb = make_rgb(32, 32);
    pm_image img = raw_image(PM_FORMAT_RGB, rgb, 32, 32, 0, 32 * 32 * 3);
    pm_remove_options opt;
    pm_remove_options_init(&opt);
    opt.output = PM_OUTPUT_MASK;
    opt.threshold = 0.5f;
    opt.invert = 1;
    pm_output *m = remove_ok(ctx, &img, &opt);
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
            int hard = pattern_red(x, y) / 255.0 >= 0.5 ? 255 : 0;
            assert_int_equal(m->data[y * m->stride + x], 255 - hard);
        }
    pm_output_free(m);
    opt.threshold = 1.5f;
    pm_output *none = NULL;
    assert_int_equal(pm_remove_bg(ctx, &img, &opt, &none), PM_ERR_INVALID_ARGUMENT);
    assert_null(none);
    free(rgb);
    pm_close(ctx);
}

static void test_input_alpha_is_multiplied_and_bgra_is_swapped(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    enum { W = 32, H = 32, STRIDE = W * 4 + 12 }; /* padded rows */
    uint8_t *bgra = calloc(H, STRIDE);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = bgra + y * STRIDE + x * 4;
            p[0] = 40;                 /* blue */
            p[1] = 90;                 /* green */
            p[2] = pattern_red(x, y);  /* red */
            p[3] = (uint8_t)(x * 8);   /* alpha */
        }
    pm_image img = raw_image(PM_FORMAT_BGRA, bgra, W, H, STRIDE, (size_t)STRIDE * H);
    pm_output *out = remove_ok(ctx, &img, NULL);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const uint8_t *o = out->data + y * out->stride + x * 4;
            assert_int_equal(o[0], pattern_red(x, y));
            assert_int_equal(o[1], 90);
            assert_int_equal(o[2], 40);
            int want = (int)lround(pattern_red(x, y) * (x * 8) / 255.0);
            assert_in_range(o[3], want > 0 ? want - 1 : 0, want + 1);
        }
    pm_output_free(out);
    pm_remove_options opt;
    pm_remove_options_init(&opt);
    opt.keep_input_alpha = 0;
    out = remove_ok(ctx, &img, &opt);
    assert_int_equal(out->data[5 * out->stride + 7 * 4 + 3], pattern_red(7, 5));
    pm_output_free(out);
    free(bgra);
    pm_close(ctx);
}

/* A w x h step (red 0 on the left half, 255 on the right) through red32 as a mask:
 * the mask keeps the image's size, and each half stays flat away from the step. */
static void check_step_keeps_its_halves(int w, int h) {
    pm_ctx *ctx = open_model("red32.pt");
    uint8_t *rgb = calloc((size_t)w * h, 3);
    assert_non_null(rgb);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) rgb[((size_t)y * w + x) * 3] = x < w / 2 ? 0 : 255;
    pm_image img = raw_image(PM_FORMAT_RGB, rgb, w, h, 0, (size_t)w * h * 3);
    pm_remove_options opt;
    pm_remove_options_init(&opt);
    opt.output = PM_OUTPUT_MASK;
    pm_output *m = remove_ok(ctx, &img, &opt);
    assert_int_equal(m->width, w);
    assert_int_equal(m->height, h);
    for (int y = 0; y < h; y++) {
        const uint8_t *row = m->data + (size_t)y * m->stride;
        assert_int_equal(row[5], 0);
        assert_int_equal(row[w / 4], 0);
        assert_int_equal(row[3 * w / 4], 255);
        assert_int_equal(row[w - 6], 255);
    }
    pm_output_free(m);
    free(rgb);
    pm_close(ctx);
}

static void test_larger_images_keep_their_size_and_flat_regions(void **state) {
    (void)state;
    check_step_keeps_its_halves(200, 120);
}

/* 12000x40 into the 32x32 input: a 375-fold shrink, beyond what one antialiased
 * resampling takes on a GPU, still keeps both halves of a step apart. */
static void test_a_very_wide_strip_shrinks_to_the_input_without_mixing_its_halves(void **state) {
    (void)state;
    check_step_keeps_its_halves(12000, 40);
}

static void test_manifest_less_model_uses_the_inspyrenet_defaults(void **state) {
    (void)state;
    pm_params p;
    pm_params_init(&p);
    p.model_path = model_path("red_no_manifest.pt");
    p.device = "cpu";
    p.input_size = 32;
    pm_ctx *ctx = NULL;
    assert_int_equal(pm_open(&p, &ctx), PM_OK);
    /* ImageNet normalisation (undone by the model), then min-max: red 0..217 spans 0..255. */
    uint8_t *rgb = make_rgb(32, 32);
    pm_image img = raw_image(PM_FORMAT_RGB, rgb, 32, 32, 0, 32 * 32 * 3);
    pm_remove_options opt;
    pm_remove_options_init(&opt);
    opt.output = PM_OUTPUT_MASK;
    pm_output *m = remove_ok(ctx, &img, &opt);
    int lo = 255, hi = 0;
    for (int i = 0; i < 32 * 32; i++) {
        lo = rgb[i * 3] < lo ? rgb[i * 3] : lo;
        hi = rgb[i * 3] > hi ? rgb[i * 3] : hi;
    }
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
            double want = 255.0 * (pattern_red(x, y) - lo) / (double)(hi - lo);
            assert_true(fabs(m->data[y * m->stride + x] - want) <= 1.0);
        }
    pm_output_free(m);
    pm_status_info st = status_of(ctx);
    assert_string_equal(st.model_name, "red_no_manifest.pt");
    assert_int_equal(st.input_width, 32);
    free(rgb);
    pm_close(ctx);
}

static void test_logit_models_get_a_sigmoid_and_tuples_their_first_element(void **state) {
    (void)state;
    const char *models[] = {"red32_logit.pt", "red32_tuple.pt"};
    for (int k = 0; k < 2; k++) {
        pm_ctx *ctx = open_model(models[k]);
        uint8_t *rgb = make_rgb(32, 32);
        pm_image img = raw_image(PM_FORMAT_RGB, rgb, 32, 32, 0, 32 * 32 * 3);
        pm_remove_options opt;
        pm_remove_options_init(&opt);
        opt.output = PM_OUTPUT_MASK;
        pm_output *m = remove_ok(ctx, &img, &opt);
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
                double r = pattern_red(x, y) / 255.0;
                double want = k == 0 ? 255.0 / (1.0 + exp(-8.0 * (r - 0.5))) : 255.0 * r;
                assert_true(fabs(m->data[y * m->stride + x] - want) <= 1.0);
            }
        pm_output_free(m);
        free(rgb);
        pm_close(ctx);
    }
}

static void test_a_model_that_throws_is_an_inference_error_and_the_context_stays_usable(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("throws_on_flat.pt");
    uint8_t flat[16 * 16 * 3];
    memset(flat, 77, sizeof flat);
    pm_image img = raw_image(PM_FORMAT_RGB, flat, 16, 16, 0, sizeof flat);
    pm_output *out = NULL;
    assert_int_equal(pm_remove_bg(ctx, &img, NULL, &out), PM_ERR_INFERENCE);
    assert_null(out);
    assert_non_null(strstr(pm_errmsg(ctx), "flat image"));
    pm_status_info st = status_of(ctx);
    assert_int_equal(st.state, PM_STATE_READY);
    assert_int_equal(st.last_error_code, PM_ERR_INFERENCE);
    uint8_t *rgb = make_rgb(32, 32);
    pm_image good = raw_image(PM_FORMAT_RGB, rgb, 32, 32, 0, 32 * 32 * 3);
    out = remove_ok(ctx, &good, NULL);
    pm_output_free(out);
    free(rgb);
    pm_close(ctx);
}

static void test_bad_arguments_and_limits_leave_the_context_usable(void **state) {
    (void)state;
    pm_params p;
    pm_params_init(&p);
    p.model_path = model_path("red32.pt");
    p.device = "cpu";
    p.max_pixels = 32 * 32;
    pm_ctx *ctx = NULL;
    assert_int_equal(pm_open(&p, &ctx), PM_OK);
    uint8_t *rgb = make_rgb(33, 32);
    pm_output *out = NULL;
    pm_image big = raw_image(PM_FORMAT_RGB, rgb, 33, 32, 0, 33 * 32 * 3);
    assert_int_equal(pm_remove_bg(ctx, &big, NULL, &out), PM_ERR_LIMIT);
    assert_null(out);
    pm_image zero = raw_image(PM_FORMAT_RGB, rgb, 0, 32, 0, 33 * 32 * 3);
    assert_int_equal(pm_remove_bg(ctx, &zero, NULL, &out), PM_ERR_INVALID_ARGUMENT);
    pm_image narrow = raw_image(PM_FORMAT_RGB, rgb, 32, 32, 40, 33 * 32 * 3);
    assert_int_equal(pm_remove_bg(ctx, &narrow, NULL, &out), PM_ERR_INVALID_ARGUMENT);
    pm_image shortbuf = raw_image(PM_FORMAT_RGB, rgb, 32, 32, 0, 100);
    assert_int_equal(pm_remove_bg(ctx, &shortbuf, NULL, &out), PM_ERR_INVALID_ARGUMENT);
    pm_image nodata = raw_image(PM_FORMAT_RGB, NULL, 32, 32, 0, 32 * 32 * 3);
    assert_int_equal(pm_remove_bg(ctx, &nodata, NULL, &out), PM_ERR_INVALID_ARGUMENT);
    pm_image garbage;
    pm_image_init(&garbage);
    garbage.data = rgb;
    garbage.size = 500;
    assert_int_equal(pm_remove_bg(ctx, &garbage, NULL, &out), PM_ERR_DECODE);
    pm_image empty;
    pm_image_init(&empty);
    empty.data = rgb;
    assert_int_equal(pm_remove_bg(ctx, &empty, NULL, &out), PM_ERR_INVALID_ARGUMENT);
    pm_image badfmt = raw_image(42, rgb, 32, 32, 0, 33 * 32 * 3);
    assert_int_equal(pm_remove_bg(ctx, &badfmt, NULL, &out), PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_remove_bg(NULL, &badfmt, NULL, &out), PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_remove_bg(ctx, NULL, NULL, &out), PM_ERR_INVALID_ARGUMENT);
    pm_image ok = raw_image(PM_FORMAT_RGB, rgb, 32, 32, 0, 33 * 32 * 3);
    assert_int_equal(pm_remove_bg(ctx, &ok, NULL, NULL), PM_ERR_INVALID_ARGUMENT);
    out = remove_ok(ctx, &ok, NULL);
    pm_output_free(out);
    pm_output_free(NULL);
    free(rgb);
    pm_close(ctx);
}

struct worker {
    pm_ctx *ctx;
    int id;
    int failures;
};

static void *remove_many(void *arg) {
    struct worker *w = arg;
    int size = 24 + w->id * 3;           /* every thread its own size... */
    uint8_t red = (uint8_t)(20 + w->id * 29); /* ...and its own flat colour */
    uint8_t *rgb = calloc((size_t)size * size, 3);
    for (int i = 0; i < size * size; i++) rgb[i * 3] = red;
    pm_image img = raw_image(PM_FORMAT_RGB, rgb, size, size, 0, (size_t)size * size * 3);
    for (int i = 0; i < 10; i++) {
        pm_output *out = NULL;
        if (pm_remove_bg(w->ctx, &img, NULL, &out) != PM_OK || out->width != size) {
            w->failures++;
        } else {
            /* A flat image resizes to itself: every alpha is this thread's red. */
            for (int k = 0; k < size * size; k++)
                if (abs(out->data[k * 4 + 3] - red) > 1) {
                    w->failures++;
                    break;
                }
        }
        pm_output_free(out);
    }
    free(rgb);
    return NULL;
}

static void test_eight_threads_remove_backgrounds_concurrently(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt"); /* cold: the first callers also warm it */
    enum { N = 8 };
    pthread_t t[N];
    struct worker w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (struct worker){ctx, i, 0};
        pthread_create(&t[i], NULL, remove_many, &w[i]);
    }
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++) assert_int_equal(w[i].failures, 0);
    pm_status_info st = status_of(ctx);
    assert_int_equal(st.images_processed, N * 10);
    pm_close(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alpha_equals_the_red_channel_exactly),
        cmocka_unit_test(test_mask_and_composite_outputs),
        cmocka_unit_test(test_png_output_is_a_png_of_the_right_size),
        cmocka_unit_test(test_threshold_then_invert),
        cmocka_unit_test(test_input_alpha_is_multiplied_and_bgra_is_swapped),
        cmocka_unit_test(test_larger_images_keep_their_size_and_flat_regions),
        cmocka_unit_test(test_a_very_wide_strip_shrinks_to_the_input_without_mixing_its_halves),
        cmocka_unit_test(test_manifest_less_model_uses_the_inspyrenet_defaults),
        cmocka_unit_test(test_logit_models_get_a_sigmoid_and_tuples_their_first_element),
        cmocka_unit_test(test_a_model_that_throws_is_an_inference_error_and_the_context_stays_usable),
        cmocka_unit_test(test_bad_arguments_and_limits_leave_the_context_usable),
        cmocka_unit_test(test_eight_threads_remove_backgrounds_concurrently),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
