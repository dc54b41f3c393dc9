/* Backgrounds of a composite other than a solid colour (the photo blurred, a picture
 * scaled to cover the frame) and the overlay, through pm_remove_bg on the red-channel
 * model (matte = red), on the test device. Expected pixels are computed here from
 * the definitions in petmatte.h, independently of lib/background.c. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "test_util.h"
#include "background.h"
#include "seed_formats.h"
#include "stb_write.h"

/* ---------------------------------------------------------- shared test code */

typedef struct photo {
    int w, h, ch;
    uint8_t *px; /* tight rows */
} photo;

static photo photo_new(int w, int h, int ch) {
    photo p = {w, h, ch, calloc((size_t)w * h * ch, 1)};
    assert_non_null(p.px);
    return p;
}

static uint8_t *at(const photo *p, int x, int y) { return p->px + ((size_t)y * p->w + x) * p->ch; }

static pm_image as_image(const photo *p) {
    return raw_image(p->ch == 4 ? PM_FORMAT_RGBA : PM_FORMAT_RGB, p->px, p->w, p->h, 0,
                     (size_t)p->w * p->h * p->ch);
}

static pm_remove_options composite(int background) {
    pm_remove_options o;
    pm_remove_options_init(&o);
    o.output = PM_OUTPUT_COMPOSITE;
    o.background = background;
    return o;
}

/* The final matte of in under o (its threshold, invert and input alpha). */
static pm_output *matte_of(pm_ctx *ctx, const pm_image *in, const pm_remove_options *o) {
    pm_remove_options m = *o;
    m.output = PM_OUTPUT_MASK;
    m.encoding = PM_ENCODING_RAW;
    return remove_ok(ctx, in, &m);
}

static void expect_failure(pm_ctx *ctx, const pm_image *in, const pm_remove_options *o, pm_code code,
                           const char *needle) {
    pm_output *out = (pm_output *)0x1;
    pm_code rc = pm_remove_bg(ctx, in, o, &out);
    if (rc != code || !strstr(pm_errmsg(ctx), needle))
        fprintf(stderr, "got %d \"%s\", expected %d with \"%s\"\n", rc, pm_errmsg(ctx), code, needle);
    assert_int_equal(rc, code);
    assert_null(out);
    assert_non_null(strstr(pm_errmsg(ctx), needle));
}

/* (a*f + (255-a)*b + 127) / 255: the blend every composite uses. */
static int blend(int a, int f, int b) { return (a * f + (255 - a) * b + 127) / 255; }

static void assert_near(int got, int want, int tolerance, const char *what, int x, int y, int k) {
    if (abs(got - want) > tolerance)
        fprintf(stderr, "%s at (%d, %d) channel %d: got %d, want %d\n", what, x, y, k, got, want);
    assert_true(abs(got - want) <= tolerance);
}

/* A 64x48 photo, left-right symmetric: an opaque red block in the middle (matte 255
 * inside, 0 far outside), stripes in green (2 pixels wide) and blue (3 rows high). */
static photo striped_photo(void) {
    photo p = photo_new(64, 48, 3);
    for (int y = 0; y < p.h; y++)
        for (int x = 0; x < p.w; x++) {
            uint8_t *q = at(&p, x, y);
            const int mx = x < 32 ? x : 63 - x;
            q[0] = x >= 20 && x < 44 && y >= 16 && y < 32 ? 255 : 0;
            q[1] = (mx / 2) % 2 ? 200 : 30;
            q[2] = (y / 3) % 2 ? 220 : 10;
        }
    return p;
}

/* The photo blurred by a Gaussian of standard deviation sigma cut at ceil(3 sigma),
 * the border repeated: double precision, [h][w][3]. */
static double *reference_blur(const photo *p, double sigma) {
    const int r = (int)ceil(3 * sigma);
    double *k = malloc((size_t)(2 * r + 1) * sizeof *k), sum = 0;
    for (int i = -r; i <= r; i++) sum += k[i + r] = exp(-(double)i * i / (2 * sigma * sigma));
    for (int i = 0; i <= 2 * r; i++) k[i] /= sum;
    const size_t n = (size_t)p->w * p->h * 3;
    double *rows = calloc(n, sizeof *rows), *out = calloc(n, sizeof *out);
    for (int y = 0; y < p->h; y++)
        for (int x = 0; x < p->w; x++)
            for (int c = 0; c < 3; c++)
                for (int i = -r; i <= r; i++) {
                    int xx = x + i < 0 ? 0 : x + i >= p->w ? p->w - 1 : x + i;
                    rows[((size_t)y * p->w + x) * 3 + c] += k[i + r] * at(p, xx, y)[c];
                }
    for (int y = 0; y < p->h; y++)
        for (int x = 0; x < p->w; x++)
            for (int c = 0; c < 3; c++)
                for (int i = -r; i <= r; i++) {
                    int yy = y + i < 0 ? 0 : y + i >= p->h ? p->h - 1 : y + i;
                    out[((size_t)y * p->w + x) * 3 + c] += k[i + r] * rows[((size_t)yy * p->w + x) * 3 + c];
                }
    free(rows);
    free(k);
    return out;
}

static double variance(const double *v, size_t n) {
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) s += v[i], s2 += v[i] * v[i];
    return s2 / n - (s / n) * (s / n);
}

/* -------------------------------------------------------------------- blur */

static void test_blur_puts_the_gaussian_blurred_photo_behind_an_untouched_subject(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    photo p = striped_photo();
    pm_image in = as_image(&p);
    pm_remove_options o = composite(PM_BACKGROUND_BLUR);
    o.blur_radius = 3.0f;
    pm_output *out = remove_ok(ctx, &in, &o);
    pm_output *m = matte_of(ctx, &in, &o);
    assert_int_equal(out->format, PM_FORMAT_RGB);
    assert_int_equal(out->width, 64);
    assert_int_equal(out->height, 48);
    double *blurred = reference_blur(&p, 3.0);
    size_t opaque = 0, clear = 0;
    double *in_green = malloc((size_t)p.w * p.h * sizeof(double));
    double *out_green = malloc((size_t)p.w * p.h * sizeof(double));
    for (int y = 0; y < p.h; y++)
        for (int x = 0; x < p.w; x++) {
            const int a = m->data[y * p.w + x];
            const uint8_t *got = out->data + ((size_t)y * p.w + x) * 3;
            for (int k = 0; k < 3; k++) {
                const int b = (int)lround(blurred[((size_t)y * p.w + x) * 3 + k]);
                assert_near(got[k], blend(a, at(&p, x, y)[k], b), 1, "blur composite", x, y, k);
                if (a == 255) assert_int_equal(got[k], at(&p, x, y)[k]); /* the subject, exactly */
            }
            opaque += a == 255;
            if (a == 0) {
                in_green[clear] = at(&p, x, y)[1];
                out_green[clear] = got[1];
                clear++;
            }
        }
    assert_true(opaque >= 16 * 8 && clear >= 64 * 20); /* both kinds of pixel were checked */
    /* Blurred: the stripes' variance mostly gone. */
    assert_true(variance(out_green, clear) < variance(in_green, clear) / 4);
    /* Symmetric: the mirrored photo gives the mirrored output. */
    for (int y = 0; y < p.h; y++)
        for (int x = 0; x < p.w; x++)
            for (int k = 0; k < 3; k++)
                assert_near(out->data[((size_t)y * p.w + x) * 3 + k],
                            out->data[((size_t)y * p.w + (p.w - 1 - x)) * 3 + k], 1, "mirror", x, y, k);
    free(in_green);
    free(out_green);
    free(blurred);
    pm_output_free(m);
    pm_output_free(out);
    free(p.px);
    pm_close(ctx);
}

/* From a standard deviation of 8 the blur runs on a reduced photo: it stays within 3
 * levels of the full-size Gaussian and mirror-symmetric. The photo: red 0 (matte 0:
 * the output is the background), a green square in the middle, a blue ramp. */
static void test_a_wide_blur_on_the_reduced_photo_stays_close_to_the_full_gaussian(void **state) {
    (void)state;
    assert_int_equal(pm_blur_reduction(7.9), 1);
    assert_int_equal(pm_blur_reduction(12.0), 3);
    assert_int_equal(pm_blur_reduction(40.0), 10);
    pm_ctx *ctx = open_model("red32.pt");
    photo p = photo_new(128, 96, 3);
    for (int y = 0; y < p.h; y++)
        for (int x = 0; x < p.w; x++) {
            at(&p, x, y)[1] = x >= 56 && x < 72 && y >= 40 && y < 56 ? 255 : 0;
            at(&p, x, y)[2] = (uint8_t)(2 * x);
        }
    pm_image in = as_image(&p);
    pm_remove_options o = composite(PM_BACKGROUND_BLUR);
    o.blur_radius = 12.0f;
    pm_output *out = remove_ok(ctx, &in, &o);
    double *blurred = reference_blur(&p, 12.0);
    for (int y = 0; y < p.h; y++)
        for (int x = 0; x < p.w; x++) {
            const uint8_t *got = out->data + ((size_t)y * p.w + x) * 3;
            for (int k = 0; k < 3; k++)
                assert_near(got[k], (int)lround(blurred[((size_t)y * p.w + x) * 3 + k]), 3, "wide blur", x, y, k);
            assert_near(got[1], out->data[((size_t)y * p.w + (p.w - 1 - x)) * 3 + 1], 1, "mirror", x, y, 1);
        }
    free(blurred);
    pm_output_free(out);
    free(p.px);
    pm_close(ctx);
}

static void test_blur_radius_zero_is_one_percent_of_the_longer_side_and_at_least_two(void **state) {
    (void)state;
    assert_true(fabs(pm_blur_sigma(0.0f, 64, 48) - 2.0) < 1e-9);
    assert_true(fabs(pm_blur_sigma(0.0f, 3000, 4000) - 40.0) < 1e-9);
    assert_true(fabs(pm_blur_sigma(5.5f, 3000, 4000) - 5.5) < 1e-9);
    pm_ctx *ctx = open_model("red32.pt");
    photo p = striped_photo();
    pm_image in = as_image(&p);
    pm_remove_options o = composite(PM_BACKGROUND_BLUR);
    pm_output *automatic = remove_ok(ctx, &in, &o);
    o.blur_radius = 2.0f;
    pm_output *two = remove_ok(ctx, &in, &o);
    o.blur_radius = 6.0f;
    pm_output *six = remove_ok(ctx, &in, &o);
    assert_int_equal(automatic->size, two->size);
    for (size_t i = 0; i < two->size; i++) /* a GPU may pick another convolution: 1 level */
        assert_near(automatic->data[i], two->data[i], 1, "auto", (int)(i / 3 % 64), (int)(i / 3 / 64), (int)(i % 3));
    assert_memory_not_equal(two->data, six->data, two->size);
    pm_output_free(automatic);
    pm_output_free(two);
    pm_output_free(six);
    free(p.px);
    pm_close(ctx);
}

static void test_clean_edges_blend_the_estimated_foreground_over_the_background(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    photo p = striped_photo();
    pm_image in = as_image(&p);
    pm_remove_options o = composite(PM_BACKGROUND_BLUR);
    pm_output *plain = remove_ok(ctx, &in, &o);
    o.clean_edges = 1;
    pm_output *clean = remove_ok(ctx, &in, &o);
    pm_output *m = matte_of(ctx, &in, &o);
    size_t soft = 0;
    for (size_t i = 0; i < (size_t)p.w * p.h; i++) {
        const int a = m->data[i];
        for (int k = 0; k < 3; k++) {
            /* Opaque: the photo; clear: the same blurred background either way. */
            if (a == 255) assert_int_equal(clean->data[i * 3 + k], p.px[i * 3 + k]);
            if (a == 0) assert_int_equal(clean->data[i * 3 + k], plain->data[i * 3 + k]);
        }
        soft += a > 0 && a < 255;
    }
    assert_true(soft > 0);
    /* At every pixel, soft ones included, the estimated foreground F (the colours of the
     * clean RGBA cut-out) is what is blended: an opaque tint makes B known exactly. */
    pm_remove_options rgba;
    pm_remove_options_init(&rgba);
    rgba.clean_edges = 1;
    pm_output *cutout = remove_ok(ctx, &in, &rgba);
    o.output = PM_OUTPUT_OVERLAY;
    o.overlay_rgb = 0x3060C0;
    o.overlay_opacity = 1.0f;
    pm_output *tinted = remove_ok(ctx, &in, &o);
    for (size_t i = 0; i < (size_t)p.w * p.h; i++)
        for (int k = 0; k < 3; k++)
            assert_int_equal(tinted->data[i * 3 + k],
                             blend(m->data[i], cutout->data[i * 4 + k], (0x3060C0 >> (16 - 8 * k)) & 0xFF));
    pm_output_free(tinted);
    pm_output_free(cutout);
    pm_output_free(m);
    pm_output_free(plain);
    pm_output_free(clean);
    free(p.px);
    pm_close(ctx);
}

/* ------------------------------------------------------------------- cover */

static void test_cover_crop_keeps_the_frames_aspect_ratio_around_the_centre(void **state) {
    (void)state;
    struct { int pw, ph, w, h, x, y, cw, ch; } c[] = {
        {40, 40, 64, 32, 0, 10, 40, 20},       /* square picture, wide frame: full width */
        {40, 40, 32, 64, 10, 0, 20, 40},       /* tall frame: full height */
        {100, 50, 100, 50, 0, 0, 100, 50},     /* same shape: all of it */
        {300, 100, 30, 20, 75, 0, 150, 100},   /* wider picture: full height */
        {3, 1000, 1000, 1, 0, 499, 3, 1},      /* at least one pixel each way */
        {1001, 1000, 1000, 1000, 0, 0, 1000, 1000}, /* round to the nearest pixel, centred */
    };
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        int x = -1, y = -1, cw = -1, ch = -1;
        pm_cover_crop(c[k].pw, c[k].ph, c[k].w, c[k].h, &x, &y, &cw, &ch);
        if (x != c[k].x || y != c[k].y || cw != c[k].cw || ch != c[k].ch)
            fprintf(stderr, "case %zu: %dx%d at (%d, %d)\n", k, cw, ch, x, y);
        assert_int_equal(x, c[k].x);
        assert_int_equal(y, c[k].y);
        assert_int_equal(cw, c[k].cw);
        assert_int_equal(ch, c[k].ch);
    }
}

/* A photo whose matte is 0 everywhere (red 0), so the output is the background
 * itself, over a picture of linear ramps: red = kx * x, green = ky * y, blue 77.
 * Bilinear filtering (and its antialiased form) keeps a ramp a ramp, so every output
 * pixel margin_x / margin_y away from the crop's edges must show the ramp at the
 * picture position that one scale factor for both axes, centred, puts it at. */
static void check_cover(pm_ctx *ctx, int w, int h, int pw, int ph, double kx, double ky, int crop_x, int crop_y,
                        double scale, int margin_x, int margin_y) {
    photo p = photo_new(w, h, 3);
    photo pic = photo_new(pw, ph, 4); /* RGBA: its alpha is ignored */
    for (int y = 0; y < ph; y++)
        for (int x = 0; x < pw; x++) {
            uint8_t *q = at(&pic, x, y);
            q[0] = (uint8_t)lround(kx * x);
            q[1] = (uint8_t)lround(ky * y);
            q[2] = 77;
            q[3] = (uint8_t)(x % 7 * 30);
        }
    pm_image in = as_image(&p);
    pm_image picture = as_image(&pic);
    pm_remove_options o = composite(PM_BACKGROUND_IMAGE);
    o.background_image = &picture;
    pm_output *out = remove_ok(ctx, &in, &o);
    assert_int_equal(out->width, w);
    assert_int_equal(out->height, h);
    size_t checked = 0;
    for (int y = margin_y; y < h - margin_y; y++)
        for (int x = margin_x; x < w - margin_x; x++) {
            const double sx = (x + 0.5) / scale - 0.5 + crop_x, sy = (y + 0.5) / scale - 0.5 + crop_y;
            const uint8_t *got = out->data + ((size_t)y * w + x) * 3;
            assert_near(got[0], (int)lround(kx * sx), 1, "cover red", x, y, 0);
            assert_near(got[1], (int)lround(ky * sy), 1, "cover green", x, y, 1);
            assert_int_equal(got[2], 77);
            checked++;
        }
    assert_true(checked > 0);
    pm_output_free(out);
    free(pic.px);
    free(p.px);
}

static void test_a_picture_background_is_scaled_to_cover_the_frame_without_distortion(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    /* Enlarged 1.6x: the 40x20 middle band of a square picture fills a wide frame... */
    check_cover(ctx, 64, 32, 40, 40, 6, 6, 0, 10, 1.6, 1, 1);
    /* ...and its 20x40 middle column a tall one. */
    check_cover(ctx, 32, 64, 40, 40, 6, 6, 10, 0, 1.6, 1, 1);
    /* Shrunk 4x (antialiased): the 256x128 middle band. */
    check_cover(ctx, 64, 32, 256, 256, 1, 1, 0, 64, 0.25, 2, 2);
    /* The same shape at the same size: the picture as it is. */
    check_cover(ctx, 40, 30, 40, 30, 6, 6, 0, 0, 1.0, 0, 0);
    pm_close(ctx);
}

/* A 4800x300 picture behind a 32x2 frame: shrunk 150-fold on both axes, beyond what
 * one antialiased resampling takes on a GPU. A ramp across the whole width stays a
 * ramp away from the left and right edges. */
static void test_a_picture_shrunk_a_hundred_and_fifty_fold_keeps_its_ramp(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    check_cover(ctx, 32, 2, 4800, 300, 255.0 / 4799, 0, 0, 0, 1.0 / 150, 1, 0);
    pm_close(ctx);
}

/* ------------------------------------------------------------------ overlay */

static void test_overlay_tints_the_background_by_the_opacity_within_one_level(void **state) {
    (void)state;
    pm_remove_options d;
    pm_remove_options_init(&d);
    assert_int_equal(d.background, PM_BACKGROUND_COLOR);
    assert_true(d.blur_radius == 0.0f && d.background_image == NULL);
    assert_int_equal(d.overlay_rgb, 0x78FF9B);
    assert_true(d.overlay_opacity == 0.5f);

    pm_ctx *ctx = open_model("red32.pt");
    enum { W = 32, H = 32 };
    uint8_t *rgb = make_rgb(W, H); /* red (the matte) takes many values */
    pm_image in = raw_image(PM_FORMAT_RGB, rgb, W, H, 0, (size_t)W * H * 3);
    const struct { uint32_t rgb; float opacity; } cases[] = {{0x2080C0, 0.3f}, {0x78FF9B, 0.5f}, {0xFF0000, 1.0f}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        pm_remove_options o;
        pm_remove_options_init(&o);
        o.output = PM_OUTPUT_OVERLAY;
        o.overlay_rgb = cases[c].rgb;
        o.overlay_opacity = cases[c].opacity;
        pm_output *out = remove_ok(ctx, &in, &o);
        pm_output *m = matte_of(ctx, &in, &o);
        assert_int_equal(out->format, PM_FORMAT_RGB);
        const double op = cases[c].opacity;
        size_t soft = 0;
        for (int i = 0; i < W * H; i++) {
            const int a = m->data[i];
            soft += a > 0 && a < 255;
            for (int k = 0; k < 3; k++) {
                const int tint = (int)((cases[c].rgb >> (16 - 8 * k)) & 0xFF);
                const int b = (int)lround(rgb[i * 3 + k] * (1 - op) + tint * op);
                assert_near(out->data[i * 3 + k], blend(a, rgb[i * 3 + k], b), 1, "overlay", i % W, i / W, k);
            }
        }
        assert_true(soft > W * H / 2);
        pm_output_free(m);
        pm_output_free(out);
    }
    /* Opacity 0: the photo itself, exactly. */
    pm_remove_options o;
    pm_remove_options_init(&o);
    o.output = PM_OUTPUT_OVERLAY;
    o.overlay_opacity = 0.0f;
    pm_output *out = remove_ok(ctx, &in, &o);
    assert_memory_equal(out->data, rgb, (size_t)W * H * 3);
    pm_output_free(out);
    free(rgb);
    pm_close(ctx);
}

/* ------------------------------------------------ orientation, input alpha */

static uint8_t block_colour(int x, int y, int c) {
    static const uint8_t colours[6][3] = {{255, 40, 40}, {0, 200, 40},  {255, 255, 0},
                                          {0, 0, 255},   {128, 60, 200}, {255, 128, 0}};
    return colours[(y / 16) * 3 + x / 16][c];
}

static void test_exif_orientation_turns_photo_and_picture_upright_before_composing(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    enum { W = 48, H = 32 };
    uint8_t *px = malloc((size_t)W * H * 3);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) px[((size_t)y * W + x) * 3 + c] = block_colour(x, y, c);
    sf_buf jpg = {0};
    assert_true(stbi_write_jpg_to_func(sf_stb_sink, &jpg, W, H, 3, px, 100));
    sf_buf exif = sf_exif_payload(0, 6, 8, 3); /* rotate 90 degrees clockwise */
    sf_buf rotated = sf_jpeg_with_app1(jpg.p, jpg.n, exif.p, exif.n);
    pm_image in = encoded_image(rotated.p, rotated.n);

    /* The upright pixels the library decodes, as raw input of the same call. */
    pm_remove_options rgba;
    pm_remove_options_init(&rgba);
    pm_output *upright = remove_ok(ctx, &in, &rgba);
    assert_int_equal(upright->width, H);
    assert_int_equal(upright->height, W);
    uint8_t *rgb = malloc((size_t)W * H * 3);
    for (size_t i = 0; i < (size_t)W * H; i++) memcpy(rgb + i * 3, upright->data + i * 4, 3);
    pm_image raw = raw_image(PM_FORMAT_RGB, rgb, H, W, 0, (size_t)W * H * 3);

    for (int kind = 0; kind < 2; kind++) {
        pm_remove_options o = composite(PM_BACKGROUND_BLUR);
        if (kind) {
            o.output = PM_OUTPUT_OVERLAY;
            o.overlay_opacity = 0.7f;
        }
        pm_output *from_jpeg = remove_ok(ctx, &in, &o);
        pm_output *from_raw = remove_ok(ctx, &raw, &o);
        assert_int_equal(from_jpeg->width, H);
        assert_int_equal(from_jpeg->height, W);
        for (size_t i = 0; i < from_raw->size; i++)
            assert_near(from_jpeg->data[i], from_raw->data[i], 1, "upright", (int)(i / 3 % H), (int)(i / 3 / H),
                        (int)(i % 3));
        pm_output_free(from_jpeg);
        pm_output_free(from_raw);
    }
    /* The same JPEG as a background picture is turned upright too: behind a photo of
     * its upright size whose matte is 0 it shows exactly as decoded. */
    photo clear = photo_new(H, W, 3);
    pm_image clear_in = as_image(&clear);
    pm_remove_options behind = composite(PM_BACKGROUND_IMAGE);
    behind.background_image = &in;
    pm_output *shown = remove_ok(ctx, &clear_in, &behind);
    assert_int_equal(shown->width, H);
    assert_int_equal(shown->height, W);
    for (size_t i = 0; i < (size_t)W * H; i++) assert_memory_equal(shown->data + i * 3, upright->data + i * 4, 3);
    pm_output_free(shown);
    free(clear.px);

    /* Orientation off: stored as is. */
    pm_remove_options o = composite(PM_BACKGROUND_BLUR);
    o.apply_exif_orientation = 0;
    pm_output *stored = remove_ok(ctx, &in, &o);
    assert_int_equal(stored->width, W);
    assert_int_equal(stored->height, H);
    pm_output_free(stored);
    pm_output_free(upright);
    free(rgb);
    sf_free(&rotated);
    sf_free(&exif);
    sf_free(&jpg);
    free(px);
    pm_close(ctx);
}

static void test_transparent_input_pixels_show_the_background_unless_alpha_is_dropped(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    enum { W = 32, H = 32 };
    photo p = photo_new(W, H, 4); /* red 255 (matte 255), the left half transparent */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *q = at(&p, x, y);
            q[0] = 255, q[1] = (uint8_t)(x * 8), q[2] = (uint8_t)(y * 8), q[3] = x < W / 2 ? 0 : 255;
        }
    photo pic = photo_new(W, H, 3); /* flat: every scale gives the same colour */
    for (int i = 0; i < W * H; i++) pic.px[i * 3] = 10, pic.px[i * 3 + 1] = 20, pic.px[i * 3 + 2] = 30;
    pm_image in = as_image(&p);
    pm_image picture = as_image(&pic);
    for (int keep = 0; keep < 2; keep++) {
        pm_remove_options o = composite(PM_BACKGROUND_IMAGE);
        o.background_image = &picture;
        o.keep_input_alpha = keep;
        pm_output *out = remove_ok(ctx, &in, &o);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int k = 0; k < 3; k++) {
                    const int want = keep && x < W / 2 ? pic.px[k] : at(&p, x, y)[k];
                    assert_int_equal(out->data[((size_t)y * W + x) * 3 + k], want);
                }
        pm_output_free(out);
    }
    free(pic.px);
    free(p.px);
    pm_close(ctx);
}

/* ------------------------------------------------- host and device agree */

/* The CPU composes with a C blend over torch's backdrop; a GPU runs the backdrop and
 * the blend as tensor ops (pm_shim_compose, here on the CPU). Same bytes, for every
 * kind, with the photo's colours or clean-edge colours, padded rows and 4 channels. */
static void test_the_host_blend_and_the_tensor_blend_give_the_same_bytes(void **state) {
    (void)state;
    enum { W = 40, H = 30, STRIDE = W * 4 + 12 };
    uint8_t *px = malloc((size_t)STRIDE * H), *fg = malloc((size_t)W * H * 3), *matte = malloc((size_t)W * H);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *q = px + (size_t)y * STRIDE + (size_t)x * 4;
            q[0] = (uint8_t)(x * 6), q[1] = (uint8_t)(y * 8), q[2] = (uint8_t)((x * y) % 256), q[3] = 99;
            for (int k = 0; k < 3; k++) fg[((size_t)y * W + x) * 3 + k] = (uint8_t)(q[k] ^ 0x55);
            matte[y * W + x] = (uint8_t)((x * 37 + y * 11) % 256);
        }
    pm_rgba img = {NULL, W, H, 1, px, STRIDE, 4};
    photo pic = photo_new(17, 23, 3);
    for (size_t i = 0; i < 17 * 23 * 3; i++) pic.px[i] = (uint8_t)(i * 7);
    pm_rgba picture = {NULL, 17, 23, 0, pic.px, 17 * 3, 3};
    uint8_t *host = malloc((size_t)W * H * 3), *tensor = malloc((size_t)W * H * 3);
    char err[256] = "";
    for (int kind = 0; kind < 4; kind++)
        for (int clean = 0; clean < 2; clean++) {
            pm_remove_options o = composite(kind == 0 ? PM_BACKGROUND_BLUR : PM_BACKGROUND_IMAGE);
            if (kind == 2) o.blur_radius = 9.0f, o.background = PM_BACKGROUND_BLUR; /* reduced */
            if (kind == 3) o.output = PM_OUTPUT_OVERLAY, o.overlay_opacity = 0.37f;
            const uint8_t *colours = clean ? fg : NULL;
            assert_int_equal(pm_compose_background(NULL, &img, colours, matte, &o, &picture, host, err, sizeof err),
                             PM_OK);
            pm_background_plan plan;
            assert_int_equal(pm_plan_background(&img, &o, &picture, &plan, err, sizeof err), PM_OK);
            pm_code rc = pm_shim_compose(NULL, px, STRIDE, 4, colours, matte, W, H, &plan.backdrop, tensor, err,
                                         sizeof err);
            if (rc != PM_OK) fprintf(stderr, "pm_shim_compose: %s\n", err);
            assert_int_equal(rc, PM_OK);
            pm_background_plan_free(&plan);
            if (memcmp(host, tensor, (size_t)W * H * 3) != 0) fprintf(stderr, "kind %d clean %d\n", kind, clean);
            assert_memory_equal(host, tensor, (size_t)W * H * 3);
        }
    /* Bad plans are refused by the shim, not run. */
    pm_backdrop bad = {0};
    bad.kind = PM_BACKDROP_BLUR;
    bad.taps = 2;
    assert_int_equal(pm_shim_compose(NULL, px, STRIDE, 4, NULL, matte, W, H, &bad, tensor, err, sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
    bad.kind = PM_BACKDROP_IMAGE;
    bad.image = pic.px, bad.image_width = 17, bad.image_height = 23, bad.image_channels = 3, bad.image_stride = 51;
    bad.crop_x = 1, bad.crop_y = 0, bad.crop_width = 17, bad.crop_height = 23;
    assert_int_equal(pm_shim_backdrop(NULL, px, STRIDE, 4, W, H, &bad, tensor, err, sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "outside the 17x23 picture"));
    bad.kind = 99;
    assert_int_equal(pm_shim_backdrop(NULL, px, STRIDE, 4, W, H, &bad, tensor, err, sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
    free(host);
    free(tensor);
    free(pic.px);
    free(px);
    free(fg);
    free(matte);
}

/* ------------------------------------------------------------ bad arguments */

static void test_bad_background_arguments_fail_with_a_code_and_a_message(void **state) {
    (void)state;
    pm_params params;
    cpu_params(&params, "red32.pt");
    params.max_pixels = 64 * 64;
    params.max_encoded_bytes = 4096;
    pm_ctx *ctx = open_with(&params, "red32.pt");
    quick_warmup(ctx);
    photo p = striped_photo();
    pm_image in = as_image(&p);

    pm_remove_options o = composite(PM_BACKGROUND_IMAGE);
    expect_failure(ctx, &in, &o, PM_ERR_INVALID_ARGUMENT, "background_image is NULL");

    pm_image picture = encoded_image("not an image at all", 19);
    o.background_image = &picture;
    expect_failure(ctx, &in, &o, PM_ERR_DECODE, "background image");

    picture.struct_size = 0;
    expect_failure(ctx, &in, &o, PM_ERR_INVALID_ARGUMENT, "background_image.struct_size 0");

    uint8_t *big = calloc(100 * 100, 3); /* over max_pixels; the photo is not */
    picture = raw_image(PM_FORMAT_RGB, big, 100, 100, 0, 100 * 100 * 3);
    expect_failure(ctx, &in, &o, PM_ERR_LIMIT, "background image");
    uint8_t *bytes = calloc(5000, 1); /* over max_encoded_bytes */
    picture = encoded_image(bytes, 5000);
    expect_failure(ctx, &in, &o, PM_ERR_LIMIT, "background image");
    picture = raw_image(PM_FORMAT_RGB, big, 10, 10, 0, 10); /* too few bytes for 10x10 */
    expect_failure(ctx, &in, &o, PM_ERR_INVALID_ARGUMENT, "background image");

    const struct { int field; double value; const char *needle; } bad[] = {
        {0, 4, "options.output 4"},           {1, 3, "options.background 3"},
        {2, -1, "options.blur_radius -1"},    {2, 1000, "options.blur_radius 1000"},
        {2, NAN, "options.blur_radius"},      {3, 0x1000000, "options.overlay_rgb"},
        {4, 1.01, "options.overlay_opacity"}, {4, NAN, "options.overlay_opacity"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        o = composite(PM_BACKGROUND_BLUR);
        if (bad[k].field == 0) o.output = (int)bad[k].value;
        if (bad[k].field == 1) o.background = (int)bad[k].value;
        if (bad[k].field == 2) o.blur_radius = (float)bad[k].value;
        if (bad[k].field == 3) o.overlay_rgb = (uint32_t)bad[k].value;
        if (bad[k].field == 4) o.overlay_opacity = (float)bad[k].value;
        expect_failure(ctx, &in, &o, PM_ERR_INVALID_ARGUMENT, bad[k].needle);
    }
    free(bytes);
    free(big);
    free(p.px);
    pm_close(ctx);
}

static void test_an_older_caller_without_the_background_fields_gets_the_solid_colour(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    photo p = striped_photo();
    pm_image in = as_image(&p);
    pm_remove_options o = composite(PM_BACKGROUND_BLUR);
    o.background_rgb = 0x102030;
    o.struct_size = offsetof(pm_remove_options, background); /* before these fields existed */
    pm_output *old = remove_ok(ctx, &in, &o);
    pm_output *m = matte_of(ctx, &in, &o);
    for (int i = 0; i < p.w * p.h; i++)
        for (int k = 0; k < 3; k++)
            assert_int_equal(old->data[i * 3 + k], blend(m->data[i], p.px[i * 3 + k], 0x10 * (k + 1)));
    pm_output_free(m);
    pm_output_free(old);
    free(p.px);
    pm_close(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blur_puts_the_gaussian_blurred_photo_behind_an_untouched_subject),
        cmocka_unit_test(test_a_wide_blur_on_the_reduced_photo_stays_close_to_the_full_gaussian),
        cmocka_unit_test(test_blur_radius_zero_is_one_percent_of_the_longer_side_and_at_least_two),
        cmocka_unit_test(test_clean_edges_blend_the_estimated_foreground_over_the_background),
        cmocka_unit_test(test_cover_crop_keeps_the_frames_aspect_ratio_around_the_centre),
        cmocka_unit_test(test_a_picture_background_is_scaled_to_cover_the_frame_without_distortion),
        cmocka_unit_test(test_a_picture_shrunk_a_hundred_and_fifty_fold_keeps_its_ramp),
        cmocka_unit_test(test_overlay_tints_the_background_by_the_opacity_within_one_level),
        cmocka_unit_test(test_exif_orientation_turns_photo_and_picture_upright_before_composing),
        cmocka_unit_test(test_transparent_input_pixels_show_the_background_unless_alpha_is_dropped),
        cmocka_unit_test(test_the_host_blend_and_the_tensor_blend_give_the_same_bytes),
        cmocka_unit_test(test_bad_background_arguments_fail_with_a_code_and_a_message),
        cmocka_unit_test(test_an_older_caller_without_the_background_fields_gets_the_solid_colour),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
