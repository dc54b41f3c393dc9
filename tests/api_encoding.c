/* pm_remove_bg's encodings through the public API on the red-channel model: PNG and
 * WebP outputs, png_level and webp_quality accepted and refused, and callers built
 * against 0.2.0 (whose pm_remove_options ends at clean_edges) getting the defaults. */
#include <stddef.h>

#include <webp/decode.h>

#include "test_util.h"

/* 0.2.0's sizeof(pm_remove_options): everything up to clean_edges. */
#define OPTIONS_SIZE_0_2_0 (offsetof(pm_remove_options, clean_edges) + sizeof(int))

/* Decodes an encoded output with the library itself: RAW RGBA whose alpha is the
 * file's own (threshold 0 makes the matte 255 everywhere, and the input alpha is
 * kept). */
static pm_output *decode(pm_ctx *ctx, const pm_output *enc) {
    pm_image img = encoded_image(enc->data, enc->size);
    pm_remove_options o;
    pm_remove_options_init(&o);
    o.threshold = 0.0f;
    return remove_ok(ctx, &img, &o);
}

static void test_the_0_2_0_options_size_gets_the_encoding_defaults(void **state) {
    (void)state;
    assert_int_equal(OPTIONS_SIZE_0_2_0, 40);
    assert_int_equal(offsetof(pm_remove_options, background), OPTIONS_SIZE_0_2_0 + 2 * sizeof(int));
    /* init_sized with the old size writes nothing past it. */
    pm_remove_options o;
    memset(&o, 0xA5, sizeof o);
    pm_remove_options_init_sized(&o, OPTIONS_SIZE_0_2_0);
    assert_int_equal(o.struct_size, OPTIONS_SIZE_0_2_0);
    assert_int_equal(o.encoding, PM_ENCODING_RAW);
    assert_int_equal(o.png_level, (int)0xA5A5A5A5);
    assert_int_equal(o.webp_quality, (int)0xA5A5A5A5);
    pm_remove_options now;
    pm_remove_options_init(&now);
    assert_int_equal(now.png_level, -1);
    assert_int_equal(now.webp_quality, 90);

    /* pm_remove_bg reads no field past the caller's size: values there that would be
     * refused are never seen, and the defaults apply. */
    pm_ctx *ctx = open_model("red32.pt");
    uint8_t *rgb = make_rgb(32, 32);
    pm_image img = raw_image(PM_FORMAT_RGB, rgb, 32, 32, 0, 32 * 32 * 3);
    o.encoding = PM_ENCODING_PNG;
    pm_output *png = remove_ok(ctx, &img, &o);
    assert_int_equal(png->encoding, PM_ENCODING_PNG);
    pm_output *back = decode(ctx, png);
    for (int i = 0; i < 32 * 32; i++) {
        assert_memory_equal(back->data + i * 4, rgb + i * 3, 3);
        assert_int_equal(back->data[i * 4 + 3], pattern_red(i % 32, i / 32));
    }
    /* The same bytes with today's size are refused for those values. */
    o.struct_size = sizeof o;
    pm_output *out = (pm_output *)&o;
    assert_int_equal(pm_remove_bg(ctx, &img, &o, &out), PM_ERR_INVALID_ARGUMENT);
    assert_null(out);
    assert_non_null(strstr(pm_errmsg(ctx), "options.png_level"));
    pm_output_free(back);
    pm_output_free(png);
    free(rgb);
    pm_close(ctx);
}

static void test_png_levels_and_webp_qualities_are_accepted_in_range_and_refused_outside(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    uint8_t *rgb = make_rgb(32, 32);
    pm_image img = raw_image(PM_FORMAT_RGB, rgb, 32, 32, 0, 32 * 32 * 3);
    const int levels[] = {-1, 0, 1, 6, 12};
    for (size_t k = 0; k < sizeof levels / sizeof levels[0]; k++) {
        pm_remove_options o;
        pm_remove_options_init(&o);
        o.encoding = PM_ENCODING_PNG;
        o.png_level = levels[k];
        pm_output *png = remove_ok(ctx, &img, &o);
        pm_output *back = decode(ctx, png);
        for (int i = 0; i < 32 * 32; i++) assert_int_equal(back->data[i * 4 + 3], pattern_red(i % 32, i / 32));
        pm_output_free(back);
        pm_output_free(png);
    }
    const int qualities[] = {0, 50, 100};
    for (size_t k = 0; k < sizeof qualities / sizeof qualities[0]; k++) {
        pm_remove_options o;
        pm_remove_options_init(&o);
        o.encoding = PM_ENCODING_WEBP;
        o.webp_quality = qualities[k];
        pm_output *webp = remove_ok(ctx, &img, &o);
        assert_int_equal(webp->encoding, PM_ENCODING_WEBP);
        assert_memory_equal(webp->data + 8, "WEBP", 4);
        pm_output_free(webp);
    }
    struct { int level, quality; const char *needle; } bad[] = {
        {-2, 90, "options.png_level -2"}, {13, 90, "options.png_level 13"},
        {-1, -1, "options.webp_quality -1"}, {-1, 101, "options.webp_quality 101"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        pm_remove_options o;
        pm_remove_options_init(&o);
        o.encoding = PM_ENCODING_WEBP;
        o.png_level = bad[k].level;
        o.webp_quality = bad[k].quality;
        pm_output *out = NULL;
        assert_int_equal(pm_remove_bg(ctx, &img, &o, &out), PM_ERR_INVALID_ARGUMENT);
        assert_null(out);
        if (!strstr(pm_errmsg(ctx), bad[k].needle)) fprintf(stderr, "message: %s\n", pm_errmsg(ctx));
        assert_non_null(strstr(pm_errmsg(ctx), bad[k].needle));
    }
    free(rgb);
    pm_close(ctx);
}

/* Lossless WebP of every output kind decodes (libwebp) to the RAW output's pixels. */
static void test_lossless_webp_of_every_kind_decodes_to_the_raw_pixels(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    uint8_t *rgb = make_rgb(32, 32);
    pm_image img = raw_image(PM_FORMAT_RGB, rgb, 32, 32, 0, 32 * 32 * 3);
    const int kinds[] = {PM_OUTPUT_RGBA, PM_OUTPUT_MASK, PM_OUTPUT_COMPOSITE};
    const int channels[] = {4, 1, 3};
    for (int k = 0; k < 3; k++) {
        pm_remove_options o;
        pm_remove_options_init(&o);
        o.output = kinds[k];
        pm_output *raw = remove_ok(ctx, &img, &o);
        o.encoding = PM_ENCODING_WEBP_LOSSLESS;
        pm_output *webp = remove_ok(ctx, &img, &o);
        assert_int_equal(webp->format, raw->format);
        int w = 0, h = 0;
        uint8_t *back = WebPDecodeRGBA(webp->data, webp->size, &w, &h);
        assert_non_null(back);
        assert_int_equal(w, 32);
        assert_int_equal(h, 32);
        for (int i = 0; i < 32 * 32; i++) {
            const uint8_t *r = raw->data + i * channels[k], *b = back + i * 4;
            if (channels[k] == 4) {
                assert_int_equal(b[3], r[3]);
                if (r[3] > 0) assert_memory_equal(b, r, 3);
            } else {
                for (int c = 0; c < 3; c++) assert_int_equal(b[c], r[channels[k] == 1 ? 0 : c]);
                assert_int_equal(b[3], 255);
            }
        }
        WebPFree(back);
        pm_output_free(webp);
        pm_output_free(raw);
    }
    free(rgb);
    pm_close(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_0_2_0_options_size_gets_the_encoding_defaults),
        cmocka_unit_test(test_png_levels_and_webp_qualities_are_accepted_in_range_and_refused_outside),
        cmocka_unit_test(test_lossless_webp_of_every_kind_decodes_to_the_raw_pixels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
