/* pm_build_output: the matte arithmetic (threshold, invert, input alpha), the three
 * output kinds, RAW layout, PNG round trips and option validation. No model: the
 * image and matte are made here and handed in directly. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#include "image.h"
#include "image_internal.h"
#include "pixel_alloc.h"

enum { W = 16, H = 16 }; /* 256 pixels: the matte takes every value 0..255 once */

static pm_rgba make_img(int alpha) {
    pm_rgba img = {.px = malloc(W * H * 4), .width = W, .height = H, .has_alpha = alpha};
    for (int i = 0; i < W * H; i++) {
        img.px[i * 4 + 0] = (uint8_t)(i * 7);
        img.px[i * 4 + 1] = (uint8_t)(255 - i);
        img.px[i * 4 + 2] = (uint8_t)(i * 13 + 1);
        img.px[i * 4 + 3] = alpha ? (uint8_t)(255 - (i * 3) % 256) : 255;
    }
    return img;
}

static uint8_t *make_matte(void) { /* pm_pixels_alloc'd: a raw mask output takes it over */
    uint8_t *m = pm_pixels_alloc(W * H);
    for (int i = 0; i < W * H; i++) m[i] = (uint8_t)i;
    return m;
}

static pm_remove_options opts(int output) {
    pm_remove_options o;
    pm_remove_options_init(&o);
    o.output = output;
    return o;
}

/* Builds from a copy of img: RGBA output is built in the image's own pixels, and
 * the tests compare the output against the original. */
static pm_output *build(const pm_rgba *img, const pm_remove_options *o) {
    uint8_t *m = make_matte();
    pm_rgba copy = *img;
    copy.px = malloc(W * H * 4);
    memcpy(copy.px, img->px, W * H * 4);
    pm_output *out = NULL;
    char err[256] = "";
    pm_code rc = pm_build_output(&copy, &m, o, NULL, &out, err, sizeof err);
    if (rc != PM_OK) fprintf(stderr, "pm_build_output: %s\n", err);
    assert_int_equal(rc, PM_OK);
    assert_non_null(out);
    pm_rgba_free(&copy);
    free(m);
    return out;
}

static void test_raw_rgba_output_takes_over_the_image_pixels_instead_of_copying(void **state) {
    (void)state;
    pm_rgba img = make_img(0);
    uint8_t *pixels = img.px;
    uint8_t *m = make_matte();
    pm_remove_options o = opts(PM_OUTPUT_RGBA);
    pm_output *out = NULL;
    char err[256] = "";
    assert_int_equal(pm_build_output(&img, &m, &o, NULL, &out, err, sizeof err), PM_OK);
    assert_ptr_equal(out->data, pixels);
    assert_null(img.px);
    for (int i = 0; i < W * H; i++) {
        assert_int_equal(out->data[i * 4], (uint8_t)(i * 7));
        assert_int_equal(out->data[i * 4 + 3], i);
    }
    pm_rgba_free(&img); /* a no-op now, as pm_remove_bg does it */
    pm_output_free(out);
    /* Other outputs leave the image to its owner. */
    img = make_img(0);
    pixels = img.px;
    for (int i = 0; i < W * H; i++) m[i] = (uint8_t)i;
    o = opts(PM_OUTPUT_MASK);
    assert_int_equal(pm_build_output(&img, &m, &o, NULL, &out, err, sizeof err), PM_OK);
    assert_ptr_equal(img.px, pixels);
    assert_ptr_not_equal(out->data, pixels);
    pm_output_free(out);
    pm_rgba_free(&img);
    free(m);
}

/* A raw mask is the matte buffer itself, handed over (no copy); a PNG mask, or any
 * other output, leaves the matte to the caller. */
static void test_raw_mask_output_takes_over_the_matte_and_other_outputs_leave_it(void **state) {
    (void)state;
    char err[256] = "";
    const int outputs[] = {PM_OUTPUT_MASK, PM_OUTPUT_RGBA, PM_OUTPUT_COMPOSITE};
    for (int encoding = PM_ENCODING_RAW; encoding <= PM_ENCODING_PNG; encoding++) {
        for (size_t k = 0; k < sizeof outputs / sizeof outputs[0]; k++) {
            pm_rgba img = make_img(0);
            uint8_t *m = make_matte();
            uint8_t *const given = m;
            pm_remove_options o = opts(outputs[k]);
            o.encoding = encoding;
            o.invert = 1; /* the matte is changed in place first, taken over or not */
            pm_output *out = NULL;
            assert_int_equal(pm_build_output(&img, &m, &o, NULL, &out, err, sizeof err), PM_OK);
            const int taken = outputs[k] == PM_OUTPUT_MASK && encoding == PM_ENCODING_RAW;
            if (taken) {
                assert_null(m);
                assert_ptr_equal(out->data, given);
                assert_int_equal(out->size, W * H);
                for (int i = 0; i < W * H; i++) assert_int_equal(out->data[i], 255 - i);
            } else {
                assert_ptr_equal(m, given);
                assert_ptr_not_equal(out->data, given);
                for (int i = 0; i < W * H; i++) assert_int_equal(m[i], 255 - i);
            }
            free(m); /* NULL when taken: as pm_remove_bg does it */
            pm_output_free(out);
            pm_rgba_free(&img);
        }
    }
    pm_remove_options o = opts(PM_OUTPUT_MASK);
    pm_rgba img = make_img(0);
    pm_output *out = (pm_output *)&o; /* must come back NULL */
    assert_int_equal(pm_build_output(&img, NULL, &o, NULL, &out, err, sizeof err), PM_ERR_INVALID_ARGUMENT);
    assert_null(out);
    pm_rgba_free(&img);
}

static int div255(int x) { return (int)lround(x / 255.0); }

/* Raw RGB/RGBA input is read in place (borrowed, any stride); every output built
 * from it must equal the output built from the library's own RGBA copy. */
static void test_borrowed_rgb_and_rgba_input_with_padding_gives_the_same_outputs(void **state) {
    (void)state;
    enum { PAD = 5 };
    const int outputs[] = {PM_OUTPUT_RGBA, PM_OUTPUT_MASK, PM_OUTPUT_COMPOSITE};
    for (int alpha = 0; alpha <= 1; alpha++) {
        pm_rgba owned = make_img(alpha);
        const int ch = alpha ? 4 : 3;
        const size_t stride = (size_t)W * ch + PAD;
        uint8_t *raw = malloc(stride * H);
        memset(raw, 0xCD, stride * H);
        for (int i = 0; i < W * H; i++)
            memcpy(raw + (size_t)(i / W) * stride + (size_t)(i % W) * ch, owned.px + i * 4, (size_t)ch);
        for (int k = 0; k < 3; k++)
            for (int clean = 0; clean <= 1; clean++) {
                pm_remove_options o = opts(outputs[k]);
                o.keep_input_alpha = 1;
                o.clean_edges = clean;
                o.background_rgb = 0x3366CC;
                pm_output *want = build(&owned, &o);
                pm_rgba borrowed = {.width = W, .height = H, .has_alpha = alpha, .borrowed = raw,
                                    .borrowed_stride = stride, .borrowed_channels = ch};
                uint8_t *m = make_matte();
                pm_output *got = NULL;
                char err[256] = "";
                assert_int_equal(pm_build_output(&borrowed, &m, &o, NULL, &got, err, sizeof err), PM_OK);
                assert_int_equal(got->size, want->size);
                assert_int_equal(got->stride, want->stride);
                assert_memory_equal(got->data, want->data, want->size);
                assert_ptr_not_equal(got->data, raw);
                pm_output_free(got);
                pm_output_free(want);
                pm_rgba_free(&borrowed); /* frees only the copy clean edges made */
                free(m);
            }
        /* The caller's bytes, padding included, are untouched. */
        for (int i = 0; i < W * H; i++)
            assert_memory_equal(raw + (size_t)(i / W) * stride + (size_t)(i % W) * ch, owned.px + i * 4, (size_t)ch);
        assert_int_equal(raw[(size_t)W * ch], 0xCD);
        free(raw);
        pm_rgba_free(&owned);
    }
}

static void test_pixel_buffers_from_4_mib_are_2_mib_aligned_and_released_by_free(void **state) {
    (void)state;
    /* pm_output_free releases output buffers with free(), whichever allocator made them. */
    const size_t sizes[] = {1, 4096, ((size_t)4 << 20) - 1, (size_t)4 << 20, (size_t)48000000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint8_t *p = pm_pixels_alloc(sizes[k]);
        assert_non_null(p);
        if (sizes[k] >= ((size_t)4 << 20)) assert_int_equal((uintptr_t)p % ((uintptr_t)2 << 20), 0);
        memset(p, 0x5A, sizes[k]); /* the whole requested size is usable */
        assert_int_equal(p[sizes[k] - 1], 0x5A);
        free(p);
    }
}

static void test_rgba_output_is_the_image_with_alpha_equal_to_the_matte(void **state) {
    (void)state;
    pm_rgba img = make_img(0);
    pm_remove_options o = opts(PM_OUTPUT_RGBA);
    pm_output *out = build(&img, &o);
    assert_int_equal(out->encoding, PM_ENCODING_RAW);
    assert_int_equal(out->format, PM_FORMAT_RGBA);
    assert_int_equal(out->width, W);
    assert_int_equal(out->height, H);
    assert_int_equal(out->stride, W * 4);
    assert_int_equal(out->size, W * H * 4);
    for (int i = 0; i < W * H; i++) {
        assert_memory_equal(out->data + i * 4, img.px + i * 4, 3);
        assert_int_equal(out->data[i * 4 + 3], i);
    }
    pm_output_free(out);
    pm_rgba_free(&img);
}

static void test_mask_is_one_gray_byte_a_pixel(void **state) {
    (void)state;
    pm_rgba img = make_img(0);
    pm_remove_options o = opts(PM_OUTPUT_MASK);
    pm_output *out = build(&img, &o);
    assert_int_equal(out->format, PM_FORMAT_GRAY);
    assert_int_equal(out->stride, W);
    assert_int_equal(out->size, W * H);
    for (int i = 0; i < W * H; i++) assert_int_equal(out->data[i], i);
    pm_output_free(out);
    pm_rgba_free(&img);
}

static void test_threshold_cuts_at_the_nearest_level_and_invert_follows_it(void **state) {
    (void)state;
    pm_rgba img = make_img(0);
    const float ts[] = {0.0f, 0.5f, 100.0f / 255.0f, 0.3f, 1.0f};
    const int cuts[] = {0, 128, 100, 77, 255};
    for (int k = 0; k < 5; k++)
        for (int inv = 0; inv <= 1; inv++) {
            pm_remove_options o = opts(PM_OUTPUT_MASK);
            o.threshold = ts[k];
            o.invert = inv;
            pm_output *out = build(&img, &o);
            for (int m = 0; m < 256; m++) {
                int hard = m >= cuts[k] ? 255 : 0;
                assert_int_equal(out->data[m], inv ? 255 - hard : hard);
            }
            pm_output_free(out);
        }
    /* Soft matte, inverted. */
    pm_remove_options o = opts(PM_OUTPUT_MASK);
    o.invert = 1;
    pm_output *out = build(&img, &o);
    for (int m = 0; m < 256; m++) assert_int_equal(out->data[m], 255 - m);
    pm_output_free(out);
    pm_rgba_free(&img);
}

static void test_input_alpha_multiplies_the_matte_only_when_kept(void **state) {
    (void)state;
    pm_rgba img = make_img(1);
    for (int keep = 0; keep <= 1; keep++)
        for (int inv = 0; inv <= 1; inv++) {
            pm_remove_options o = opts(PM_OUTPUT_RGBA);
            o.keep_input_alpha = keep;
            o.invert = inv;
            pm_output *out = build(&img, &o);
            for (int i = 0; i < W * H; i++) {
                int m = inv ? 255 - i : i;
                int want = keep ? div255(m * img.px[i * 4 + 3]) : m;
                assert_int_equal(out->data[i * 4 + 3], want);
            }
            pm_output_free(out);
        }
    /* Invert never makes an input-transparent pixel visible. */
    img.px[3] = 0;
    pm_remove_options o = opts(PM_OUTPUT_MASK);
    o.invert = 1;
    pm_output *out = build(&img, &o);
    assert_int_equal(out->data[0], 0);
    pm_output_free(out);
    pm_rgba_free(&img);
    /* has_alpha 0: the alpha bytes are ignored even if not 255. */
    img = make_img(1);
    img.has_alpha = 0;
    o = opts(PM_OUTPUT_MASK);
    out = build(&img, &o);
    for (int i = 0; i < W * H; i++) assert_int_equal(out->data[i], i);
    pm_output_free(out);
    pm_rgba_free(&img);
}

static void test_composite_is_a_rounded_straight_alpha_blend_onto_the_background(void **state) {
    (void)state;
    pm_rgba img = make_img(0);
    pm_remove_options o = opts(PM_OUTPUT_COMPOSITE);
    o.background_rgb = 0x10C0F0;
    const int bg[3] = {0x10, 0xC0, 0xF0};
    pm_output *out = build(&img, &o);
    assert_int_equal(out->format, PM_FORMAT_RGB);
    assert_int_equal(out->stride, W * 3);
    assert_int_equal(out->size, W * H * 3);
    for (int i = 0; i < W * H; i++)
        for (int c = 0; c < 3; c++) {
            int want = div255(i * img.px[i * 4 + c] + (255 - i) * bg[c]);
            assert_int_equal(out->data[i * 3 + c], want);
        }
    /* Fully opaque shows the image, fully transparent the background. */
    assert_memory_equal(out->data + 255 * 3, img.px + 255 * 4, 3);
    const uint8_t bg8[3] = {0x10, 0xC0, 0xF0};
    assert_memory_equal(out->data, bg8, 3);
    pm_output_free(out);
    pm_rgba_free(&img);
}

static void test_png_encoding_round_trips_every_output_kind(void **state) {
    (void)state;
    pm_rgba img = make_img(1);
    const int kinds[] = {PM_OUTPUT_RGBA, PM_OUTPUT_MASK, PM_OUTPUT_COMPOSITE};
    for (int k = 0; k < 3; k++) {
        pm_remove_options o = opts(kinds[k]);
        pm_output *raw = build(&img, &o);
        o.encoding = PM_ENCODING_PNG;
        pm_output *png = build(&img, &o);
        assert_int_equal(png->encoding, PM_ENCODING_PNG);
        assert_int_equal(png->format, raw->format);
        assert_int_equal(png->stride, 0);
        assert_int_equal(png->width, W);
        assert_memory_equal(png->data, "\x89PNG\r\n\x1a\n", 8);
        pm_image in;
        pm_image_init(&in);
        in.data = png->data;
        in.size = png->size;
        pm_limits lim = {1 << 20, 1 << 20};
        pm_rgba back;
        char err[256];
        assert_int_equal(pm_image_load(&in, &lim, 1, &back, err, sizeof err), PM_OK);
        assert_int_equal(back.width, W);
        assert_int_equal(back.height, H);
        int ch = kinds[k] == PM_OUTPUT_RGBA ? 4 : kinds[k] == PM_OUTPUT_MASK ? 1 : 3;
        for (int i = 0; i < W * H; i++)
            for (int c = 0; c < 4; c++) {
                int want = ch == 1 ? (c == 3 ? 255 : raw->data[i]) : c < ch ? raw->data[i * ch + c] : 255;
                assert_int_equal(back.px[i * 4 + c], want);
            }
        pm_rgba_free(&back);
        pm_output_free(png);
        pm_output_free(raw);
    }
    pm_rgba_free(&img);
}

static void test_bad_options_are_invalid_arguments_and_leave_out_null(void **state) {
    (void)state;
    pm_rgba img = make_img(0);
    uint8_t *m = make_matte();
    char err[256];
    struct { int field; double value; const char *needle; } bad[] = {
        {0, 3, "options.output 3"},        {0, -1, "options.output -1"},
        {1, 2, "options.encoding 2"},       {2, 1.5, "options.threshold 1.5"},
        {2, NAN, "options.threshold"},      {3, 0x1000000, "background_rgb"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        pm_remove_options o = opts(PM_OUTPUT_RGBA);
        if (bad[k].field == 0) o.output = (int)bad[k].value;
        if (bad[k].field == 1) o.encoding = (int)bad[k].value;
        if (bad[k].field == 2) o.threshold = (float)bad[k].value;
        if (bad[k].field == 3) o.background_rgb = (uint32_t)bad[k].value;
        pm_output *out = (pm_output *)&img; /* must be overwritten with NULL */
        err[0] = 0;
        assert_int_equal(pm_build_output(&img, &m, &o, NULL, &out, err, sizeof err), PM_ERR_INVALID_ARGUMENT);
        assert_null(out);
        if (!strstr(err, bad[k].needle)) fprintf(stderr, "message: %s\n", err);
        assert_non_null(strstr(err, bad[k].needle));
    }
    pm_remove_options o = opts(PM_OUTPUT_RGBA);
    pm_output *out = NULL;
    assert_int_equal(pm_build_output(NULL, &m, &o, NULL, &out, err, sizeof err), PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_build_output(&img, NULL, &o, NULL, &out, err, sizeof err), PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_build_output(&img, &m, NULL, NULL, &out, err, sizeof err), PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_build_output(&img, &m, &o, NULL, NULL, err, sizeof err), PM_ERR_INVALID_ARGUMENT);
    pm_output_free(NULL);
    free(m);
    pm_rgba_free(&img);
}

static void test_clean_edges_keeps_opaque_colours_and_leaves_the_mask_alone(void **state) {
    (void)state;
    pm_rgba img = make_img(0);
    const int kinds[] = {PM_OUTPUT_RGBA, PM_OUTPUT_COMPOSITE, PM_OUTPUT_MASK};
    for (int k = 0; k < 3; k++) {
        pm_remove_options o = opts(kinds[k]);
        o.clean_edges = 1;
        pm_output *out = build(&img, &o);
        /* Pixel 255 has matte 255: its colour is the input's exactly. */
        if (kinds[k] == PM_OUTPUT_RGBA) {
            assert_memory_equal(out->data + 255 * 4, img.px + 255 * 4, 3);
            for (int i = 0; i < W * H; i++) assert_int_equal(out->data[i * 4 + 3], i);
        } else if (kinds[k] == PM_OUTPUT_COMPOSITE) {
            assert_memory_equal(out->data + 255 * 3, img.px + 255 * 4, 3);
        } else {
            for (int i = 0; i < W * H; i++) assert_int_equal(out->data[i], i);
        }
        pm_output_free(out);
    }
    pm_rgba_free(&img);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rgba_output_is_the_image_with_alpha_equal_to_the_matte),
        cmocka_unit_test(test_pixel_buffers_from_4_mib_are_2_mib_aligned_and_released_by_free),
        cmocka_unit_test(test_raw_rgba_output_takes_over_the_image_pixels_instead_of_copying),
        cmocka_unit_test(test_raw_mask_output_takes_over_the_matte_and_other_outputs_leave_it),
        cmocka_unit_test(test_borrowed_rgb_and_rgba_input_with_padding_gives_the_same_outputs),
        cmocka_unit_test(test_mask_is_one_gray_byte_a_pixel),
        cmocka_unit_test(test_threshold_cuts_at_the_nearest_level_and_invert_follows_it),
        cmocka_unit_test(test_input_alpha_multiplies_the_matte_only_when_kept),
        cmocka_unit_test(test_composite_is_a_rounded_straight_alpha_blend_onto_the_background),
        cmocka_unit_test(test_png_encoding_round_trips_every_output_kind),
        cmocka_unit_test(test_bad_options_are_invalid_arguments_and_leave_out_null),
        cmocka_unit_test(test_clean_edges_keeps_opaque_colours_and_leaves_the_mask_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
