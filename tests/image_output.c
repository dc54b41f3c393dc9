/* pm_build_output: the matte arithmetic (threshold, invert, input alpha), the three
 * output kinds, RAW layout, PNG and WebP round trips and option validation; the PNG
 * encoder's levels and bands (pm_encode_png). No model: the image and matte are made
 * here and handed in directly. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <webp/decode.h>
#include <zlib.h>

#include "encode.h"
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
    pm_code rc = pm_build_output(&copy, &m, o, NULL, NULL, &out, err, sizeof err);
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
    assert_int_equal(pm_build_output(&img, &m, &o, NULL, NULL, &out, err, sizeof err), PM_OK);
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
    assert_int_equal(pm_build_output(&img, &m, &o, NULL, NULL, &out, err, sizeof err), PM_OK);
    assert_ptr_equal(img.px, pixels);
    assert_ptr_not_equal(out->data, pixels);
    pm_output_free(out);
    pm_rgba_free(&img);
    free(m);
}

/* A raw mask is the matte buffer itself, handed over (no copy); an encoded mask, or
 * any other output, leaves the matte to the caller. */
static void test_raw_mask_output_takes_over_the_matte_and_other_outputs_leave_it(void **state) {
    (void)state;
    char err[256] = "";
    const int outputs[] = {PM_OUTPUT_MASK, PM_OUTPUT_RGBA, PM_OUTPUT_COMPOSITE};
    for (int encoding = PM_ENCODING_RAW; encoding <= PM_ENCODING_WEBP; encoding++) {
        for (size_t k = 0; k < sizeof outputs / sizeof outputs[0]; k++) {
            pm_rgba img = make_img(0);
            uint8_t *m = make_matte();
            uint8_t *const given = m;
            pm_remove_options o = opts(outputs[k]);
            o.encoding = encoding;
            o.invert = 1; /* the matte is changed in place first, taken over or not */
            pm_output *out = NULL;
            assert_int_equal(pm_build_output(&img, &m, &o, NULL, NULL, &out, err, sizeof err), PM_OK);
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
    assert_int_equal(pm_build_output(&img, NULL, &o, NULL, NULL, &out, err, sizeof err), PM_ERR_INVALID_ARGUMENT);
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
                assert_int_equal(pm_build_output(&borrowed, &m, &o, NULL, NULL, &got, err, sizeof err), PM_OK);
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
        {0, 4, "options.output 4"},        {0, -1, "options.output -1"},
        {1, 4, "options.encoding 4"},       {2, 1.5, "options.threshold 1.5"},
        {2, NAN, "options.threshold"},      {3, 0x1000000, "background_rgb"},
        {4, -2, "options.png_level -2"},    {4, 13, "options.png_level 13"},
        {5, -1, "options.webp_quality -1"}, {5, 101, "options.webp_quality 101"},
        {6, 3, "options.background 3"},     {6, -1, "options.background -1"},
        {7, -1, "options.blur_radius -1"},  {7, 257, "options.blur_radius 257"},
        {7, NAN, "options.blur_radius"},    {8, 0x1000000, "options.overlay_rgb"},
        {9, -0.25, "options.overlay_opacity -0.25"}, {9, 1.5, "options.overlay_opacity 1.5"},
        {9, NAN, "options.overlay_opacity"}, {10, 0, "options.background_image is NULL"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        pm_remove_options o = opts(PM_OUTPUT_RGBA);
        if (bad[k].field == 0) o.output = (int)bad[k].value;
        if (bad[k].field == 1) o.encoding = (int)bad[k].value;
        if (bad[k].field == 2) o.threshold = (float)bad[k].value;
        if (bad[k].field == 3) o.background_rgb = (uint32_t)bad[k].value;
        if (bad[k].field == 4) o.png_level = (int)bad[k].value;
        if (bad[k].field == 5) o.webp_quality = (int)bad[k].value;
        if (bad[k].field == 6) o.background = (int)bad[k].value;
        if (bad[k].field == 7) o.blur_radius = (float)bad[k].value;
        if (bad[k].field == 8) o.overlay_rgb = (uint32_t)bad[k].value;
        if (bad[k].field == 9) o.overlay_opacity = (float)bad[k].value;
        if (bad[k].field == 10) {
            o.output = PM_OUTPUT_COMPOSITE;
            o.background = PM_BACKGROUND_IMAGE;
        }
        pm_output *out = (pm_output *)&img; /* must be overwritten with NULL */
        err[0] = 0;
        assert_int_equal(pm_build_output(&img, &m, &o, NULL, NULL, &out, err, sizeof err), PM_ERR_INVALID_ARGUMENT);
        assert_null(out);
        if (!strstr(err, bad[k].needle)) fprintf(stderr, "message: %s\n", err);
        assert_non_null(strstr(err, bad[k].needle));
    }
    pm_remove_options o = opts(PM_OUTPUT_RGBA);
    pm_output *out = NULL;
    assert_int_equal(pm_build_output(NULL, &m, &o, NULL, NULL, &out, err, sizeof err), PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_build_output(&img, NULL, &o, NULL, NULL, &out, err, sizeof err), PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_build_output(&img, &m, NULL, NULL, NULL, &out, err, sizeof err), PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_build_output(&img, &m, &o, NULL, NULL, NULL, err, sizeof err), PM_ERR_INVALID_ARGUMENT);
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

/* ------------------------------------------------------------ PNG and WebP */

/* A photo-like image: gradients, hashed noise and (4 channels) a soft-edged disc of
 * alpha with a fully transparent outside. */
static uint8_t *make_photo(int w, int h, int ch) {
    uint8_t *px = malloc((size_t)w * h * ch);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = px + ((size_t)y * w + x) * ch;
            unsigned noise = ((unsigned)x * 73856093u ^ (unsigned)y * 19349663u) % 9u;
            for (int c = 0; c < ch && c < 3; c++)
                p[c] = (uint8_t)((x * (c + 1) * 255 / w + y * (3 - c) * 255 / h) / 3 + noise);
            if (ch == 4) {
                double dx = (x - w / 2.0) / (w * 0.35), dy = (y - h / 2.0) / (h * 0.35);
                double a = (1.0 - sqrt(dx * dx + dy * dy)) * 8.0;
                p[3] = (uint8_t)(a <= 0 ? 0 : a >= 1 ? 255 : lround(a * 255));
            }
        }
    return px;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks a PNG without stb: the signature, IHDR, the CRC of every chunk, the zlib
 * stream inflated by zlib (which checks its Adler-32) to exactly the filtered size,
 * Up on every row, and the pixels. */
static void check_png_strictly(const uint8_t *png, size_t size, const uint8_t *px, int w, int h,
                               int ch) {
    assert_true(size > 8 + 25 + 12);
    assert_memory_equal(png, "\x89PNG\r\n\x1a\n", 8);
    const size_t row = (size_t)w * ch, filtered = (row + 1) * h;
    uint8_t *idat = malloc(size);
    size_t idat_len = 0, pos = 8;
    int chunks = 0, ended = 0;
    while (pos + 12 <= size && !ended) {
        uint32_t len = be32(png + pos);
        assert_true(pos + 12 + len <= size);
        const uint8_t *type = png + pos + 4;
        assert_int_equal(be32(png + pos + 8 + len), (uint32_t)crc32(0, type, len + 4));
        if (chunks == 0) {
            assert_memory_equal(type, "IHDR", 4);
            assert_int_equal(len, 13);
            assert_int_equal(be32(type + 4), (uint32_t)w);
            assert_int_equal(be32(type + 8), (uint32_t)h);
            assert_int_equal(type[12], 8);
            assert_int_equal(type[13], ch == 1 ? 0 : ch == 3 ? 2 : 6);
        } else if (!memcmp(type, "IDAT", 4)) {
            memcpy(idat + idat_len, type + 4, len);
            idat_len += len;
        } else {
            assert_memory_equal(type, "IEND", 4);
            assert_int_equal(len, 0);
            ended = 1;
        }
        pos += 12 + len;
        chunks++;
    }
    assert_true(ended);
    assert_int_equal(pos, size);
    uint8_t *raw = malloc(filtered + 1);
    uLongf raw_len = filtered + 1; /* one byte more: a longer stream shows */
    assert_int_equal(uncompress(raw, &raw_len, idat, idat_len), Z_OK);
    assert_int_equal(raw_len, filtered);
    for (int y = 0; y < h; y++) {
        const uint8_t *f = raw + (size_t)y * (row + 1);
        assert_int_equal(f[0], 2); /* Up */
        for (size_t i = 0; i < row; i++) {
            uint8_t above = y > 0 ? px[(size_t)(y - 1) * row + i] : 0;
            assert_int_equal((uint8_t)(f[1 + i] + above), px[(size_t)y * row + i]);
        }
    }
    free(raw);
    free(idat);
}

/* stb (the library's own decoder) reads the PNG back to exactly px. */
static void check_png_decodes_to(const uint8_t *png, size_t size, const uint8_t *px, int w, int h, int ch) {
    pm_image in;
    pm_image_init(&in);
    in.data = png;
    in.size = size;
    pm_limits lim = {1u << 26, 1u << 30};
    pm_rgba back;
    char err[256] = "";
    pm_code rc = pm_image_load(&in, &lim, 1, &back, err, sizeof err);
    if (rc != PM_OK) fprintf(stderr, "decode: %s\n", err);
    assert_int_equal(rc, PM_OK);
    assert_int_equal(back.width, w);
    assert_int_equal(back.height, h);
    for (size_t i = 0; i < (size_t)w * h; i++)
        for (int c = 0; c < 4; c++) {
            int want = ch == 1 ? (c == 3 ? 255 : px[i]) : c < ch ? px[i * ch + c] : 255;
            if (back.px[i * 4 + c] != want) fprintf(stderr, "pixel %zu channel %d\n", i, c);
            assert_int_equal(back.px[i * 4 + c], want);
        }
    pm_rgba_free(&back);
}

static uint8_t *encode_png(const uint8_t *px, int w, int h, int ch, int level, int threads, size_t *size) {
    uint8_t *png = NULL;
    char err[256] = "";
    pm_code rc = pm_encode_png(px, w, h, ch, level, threads, &png, size, err, sizeof err);
    if (rc != PM_OK) fprintf(stderr, "pm_encode_png: %s\n", err);
    assert_int_equal(rc, PM_OK);
    assert_non_null(png);
    return png;
}

static void test_png_levels_from_stored_to_smallest_give_the_same_pixels(void **state) {
    (void)state;
    enum { PW = 97, PH = 61 };
    const int channels[] = {1, 3, 4};
    for (int k = 0; k < 3; k++) {
        int ch = channels[k];
        uint8_t *px = make_photo(PW, PH, ch);
        size_t sizes[PM_PNG_LEVEL_MAX + 1];
        for (int level = PM_PNG_LEVEL_MIN; level <= PM_PNG_LEVEL_MAX; level++) {
            uint8_t *png = encode_png(px, PW, PH, ch, level, 1, &sizes[level]);
            check_png_strictly(png, sizes[level], px, PW, PH, ch);
            check_png_decodes_to(png, sizes[level], px, PW, PH, ch);
            free(png);
        }
        /* Level 0 stores (a little more than the filtered rows); the others compress. */
        assert_true(sizes[0] > (size_t)(PW * ch + 1) * PH);
        assert_true(sizes[1] < sizes[0]);
        assert_true(sizes[12] <= sizes[1]);
        free(px);
    }
}

/* Bands of rows compressed apart (zlib, several threads) decode to the same pixels as
 * one libdeflate call, for any band count, including more bands than rows. */
static void test_png_bands_decode_to_the_same_pixels_as_one_call(void **state) {
    (void)state;
    struct { int w, h, ch, threads, level; } cases[] = {
        {301, 203, 4, 2, 1}, {301, 203, 4, 3, 6},  {301, 203, 3, 7, 1}, {301, 203, 1, 5, 12},
        {64, 5, 4, 16, 1},   {33, 40, 4, 4, 0},    {1, 9, 1, 3, 9},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int w = cases[k].w, h = cases[k].h, ch = cases[k].ch;
        uint8_t *px = make_photo(w, h, ch);
        size_t one_size, bands_size;
        uint8_t *one = encode_png(px, w, h, ch, cases[k].level, 1, &one_size);
        uint8_t *bands = encode_png(px, w, h, ch, cases[k].level, cases[k].threads, &bands_size);
        check_png_strictly(one, one_size, px, w, h, ch);
        check_png_strictly(bands, bands_size, px, w, h, ch);
        check_png_decodes_to(bands, bands_size, px, w, h, ch);
        free(one);
        free(bands);
        free(px);
    }
}

static void test_a_large_image_is_compressed_in_bands_on_several_threads(void **state) {
    (void)state;
    enum { BW = 1600, BH = 1200 }; /* 7.7 MB of rows: four bands of about 1.9 MB */
    uint8_t *px = make_photo(BW, BH, 4);
    size_t one_size, bands_size;
    uint8_t *one = encode_png(px, BW, BH, 4, PM_PNG_LEVEL_DEFAULT, 1, &one_size);
    uint8_t *bands = encode_png(px, BW, BH, 4, PM_PNG_LEVEL_DEFAULT, 4, &bands_size);
    check_png_strictly(bands, bands_size, px, BW, BH, 4);
    check_png_decodes_to(bands, bands_size, px, BW, BH, 4);
    check_png_decodes_to(one, one_size, px, BW, BH, 4);
    assert_true(bands_size < (size_t)BW * BH * 4 / 2); /* it compressed */
    free(one);
    free(bands);
    /* Left to choose, small images take one call; large ones one call or 3..16 bands. */
    assert_int_equal(pm_png_auto_threads(W, H, 4), 1);
    assert_int_equal(pm_png_auto_threads(1000, 100, 4), 1); /* under 3 bands' worth */
    int n = pm_png_auto_threads(8000, 8000, 4);
    assert_true(n == 1 || (n >= 3 && n <= PM_PNG_MAX_THREADS));
    assert_int_equal(pm_png_auto_threads(8000, 2, 4), 1); /* never more bands than rows */
    free(px);
}

static void test_png_encoder_refuses_a_level_out_of_range(void **state) {
    (void)state;
    uint8_t px[12] = {0};
    uint8_t *png = (uint8_t *)px;
    size_t size = 7;
    char err[256] = "";
    assert_int_equal(pm_encode_png(px, 3, 1, 4, 13, 1, &png, &size, err, sizeof err), PM_ERR_INVALID_ARGUMENT);
    assert_null(png);
    assert_int_equal(size, 0);
    assert_non_null(strstr(err, "PNG level 13"));
    assert_int_equal(pm_encode_png(px, 3, 1, 4, -1, 1, &png, &size, err, sizeof err), PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_encode_png(px, 3, 1, 2, 1, 1, &png, &size, err, sizeof err), PM_ERR_INTERNAL);
}

/* Decodes WebP bytes to RGBA with libwebp; asserts the container and the kind. */
static uint8_t *decode_webp(const pm_output *out, int lossless, int has_alpha) {
    assert_memory_equal(out->data, "RIFF", 4);
    assert_memory_equal(out->data + 8, "WEBP", 4);
    WebPBitstreamFeatures f;
    assert_int_equal(WebPGetFeatures(out->data, out->size, &f), VP8_STATUS_OK);
    assert_int_equal(f.width, out->width);
    assert_int_equal(f.height, out->height);
    assert_int_equal(f.format, lossless ? 2 : 1); /* 1 lossy, 2 lossless */
    assert_int_equal(f.has_alpha, has_alpha);
    int w = 0, h = 0;
    uint8_t *rgba = WebPDecodeRGBA(out->data, out->size, &w, &h);
    assert_non_null(rgba);
    assert_int_equal(w, out->width);
    assert_int_equal(h, out->height);
    return rgba;
}

static void test_lossless_webp_keeps_every_visible_pixel_and_the_alpha(void **state) {
    (void)state;
    pm_rgba img = make_img(1); /* input alpha: the matte is multiplied, zeros included */
    const int kinds[] = {PM_OUTPUT_RGBA, PM_OUTPUT_MASK, PM_OUTPUT_COMPOSITE};
    for (int k = 0; k < 3; k++) {
        pm_remove_options o = opts(kinds[k]);
        pm_output *raw = build(&img, &o);
        o.encoding = PM_ENCODING_WEBP_LOSSLESS;
        pm_output *webp = build(&img, &o);
        assert_int_equal(webp->encoding, PM_ENCODING_WEBP_LOSSLESS);
        assert_int_equal(webp->format, raw->format);
        assert_int_equal(webp->stride, 0);
        uint8_t *back = decode_webp(webp, 1, kinds[k] == PM_OUTPUT_RGBA);
        int zeros = 0;
        for (int i = 0; i < W * H; i++) {
            const uint8_t *b = back + i * 4;
            if (kinds[k] == PM_OUTPUT_MASK) { /* gray RGB, opaque */
                for (int c = 0; c < 3; c++) assert_int_equal(b[c], raw->data[i]);
                assert_int_equal(b[3], 255);
            } else if (kinds[k] == PM_OUTPUT_COMPOSITE) {
                assert_memory_equal(b, raw->data + i * 3, 3);
                assert_int_equal(b[3], 255);
            } else {
                assert_int_equal(b[3], raw->data[i * 4 + 3]);
                if (b[3] > 0) assert_memory_equal(b, raw->data + i * 4, 3);
                else zeros++;
            }
        }
        if (kinds[k] == PM_OUTPUT_RGBA) assert_true(zeros > 0); /* the case was covered */
        WebPFree(back);
        pm_output_free(webp);
        pm_output_free(raw);
    }
    pm_rgba_free(&img);
}

/* Lossy WebP through pm_build_output on a photo: the alpha is exact, the colours of
 * opaque pixels within a mean of 3 levels at quality 90, and a lower quality gives
 * fewer bytes. */
static void test_lossy_webp_keeps_the_alpha_exactly_and_the_colours_close(void **state) {
    (void)state;
    enum { LW = 160, LH = 120 };
    uint8_t *src = make_photo(LW, LH, 4);
    uint8_t *matte = pm_pixels_alloc(LW * LH);
    for (int i = 0; i < LW * LH; i++) matte[i] = src[i * 4 + 3];
    size_t sizes[2];
    const int qualities[2] = {90, 10};
    for (int q = 0; q < 2; q++) {
        pm_rgba img = {.px = malloc(LW * LH * 4), .width = LW, .height = LH, .has_alpha = 0};
        memcpy(img.px, src, LW * LH * 4);
        uint8_t *m = pm_pixels_alloc(LW * LH);
        memcpy(m, matte, LW * LH);
        pm_remove_options o = opts(PM_OUTPUT_RGBA);
        o.encoding = PM_ENCODING_WEBP;
        o.webp_quality = qualities[q];
        pm_output *out = NULL;
        char err[256] = "";
        assert_int_equal(pm_build_output(&img, &m, &o, NULL, NULL, &out, err, sizeof err), PM_OK);
        assert_int_equal(out->encoding, PM_ENCODING_WEBP);
        assert_int_equal(out->format, PM_FORMAT_RGBA);
        sizes[q] = out->size;
        uint8_t *back = decode_webp(out, 0, 1);
        long diff = 0, opaque = 0;
        for (int i = 0; i < LW * LH; i++) {
            assert_int_equal(back[i * 4 + 3], src[i * 4 + 3]);
            if (src[i * 4 + 3] == 255) {
                for (int c = 0; c < 3; c++) diff += labs((long)back[i * 4 + c] - src[i * 4 + c]);
                opaque += 3;
            }
        }
        assert_true(opaque > 0);
        if (qualities[q] == 90) {
            if (diff > 3 * opaque) fprintf(stderr, "mean difference %.2f\n", (double)diff / opaque);
            assert_true(diff <= 3 * opaque);
        }
        WebPFree(back);
        pm_output_free(out);
        pm_rgba_free(&img);
        free(m);
    }
    assert_true(sizes[1] < sizes[0]);
    free(matte);
    free(src);
}

static void test_webp_refuses_a_side_over_16383_before_encoding(void **state) {
    (void)state;
    uint8_t px[4] = {0};
    uint8_t *webp = px;
    size_t size = 3;
    char err[256] = "";
    assert_int_equal(pm_encode_webp(px, 16384, 1, 4, 1, 90, &webp, &size, err, sizeof err), PM_ERR_UNSUPPORTED);
    assert_null(webp);
    assert_int_equal(size, 0);
    assert_non_null(strstr(err, "16383"));
    assert_int_equal(pm_encode_webp(px, 1, 16384, 4, 0, 90, &webp, &size, err, sizeof err), PM_ERR_UNSUPPORTED);
    assert_int_equal(pm_encode_webp(px, 1, 1, 4, 0, 101, &webp, &size, err, sizeof err), PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_encode_webp(px, 1, 1, 4, 0, 100, &webp, &size, err, sizeof err), PM_OK);
    assert_true(size > 12);
    free(webp);
}

/* In a forked child whose address space is capped 2 MiB above what it uses, each
 * encoder (one call, bands, WebP) fails with PM_ERR_NO_MEMORY and a message, and
 * returns no buffer. Runs first, before other tests leave freed heap behind. */
static void test_encoders_out_of_memory_return_no_memory_with_a_message(void **state) {
    (void)state;
#ifdef PM_TEST_SANITIZED
    skip();
#else
    /* 48 MB of RGBA, allocated before the cap: every buffer the encoders want for it
     * is over malloc's mmap threshold, so none can come from memory freed earlier. */
    enum { MW = 4000, MH = 3000 };
    uint8_t *px = make_photo(MW, MH, 4);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit r;
        if (getrlimit(RLIMIT_AS, &r) != 0) _exit(2);
        r.rlim_cur = (rlim_t)(vm_size() + (2u << 20));
        if (setrlimit(RLIMIT_AS, &r) != 0) _exit(2);
        int bad = 0;
        for (int k = 0; k < 3; k++) {
            uint8_t *out = (uint8_t *)px;
            size_t size = 1;
            char err[256] = "";
            pm_code rc = k < 2 ? pm_encode_png(px, MW, MH, 4, 1, k == 0 ? 1 : 3, &out, &size, err, sizeof err)
                               : pm_encode_webp(px, MW, MH, 4, 1, 90, &out, &size, err, sizeof err);
            if (rc != PM_ERR_NO_MEMORY || out != NULL || size != 0 || strstr(err, "memory") == NULL) {
                fprintf(stderr, "encoder %d: code %d, message '%s'\n", k, (int)rc, err);
                bad = 1;
            }
        }
        _exit(bad);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    free(px);
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoders_out_of_memory_return_no_memory_with_a_message),
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
        cmocka_unit_test(test_png_levels_from_stored_to_smallest_give_the_same_pixels),
        cmocka_unit_test(test_png_bands_decode_to_the_same_pixels_as_one_call),
        cmocka_unit_test(test_a_large_image_is_compressed_in_bands_on_several_threads),
        cmocka_unit_test(test_png_encoder_refuses_a_level_out_of_range),
        cmocka_unit_test(test_lossless_webp_keeps_every_visible_pixel_and_the_alpha),
        cmocka_unit_test(test_lossy_webp_keeps_the_alpha_exactly_and_the_colours_close),
        cmocka_unit_test(test_webp_refuses_a_side_over_16383_before_encoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
