/* Clean edges on a model's device, run on a CPU model: pm_estimate_foreground_on_device
 * (lib/foreground.c plans the pyramid and runs the small levels, shim/foreground.cpp
 * the large ones as tensor ops) gives the same bytes as lib/foreground.c with
 * skip_flat = 0 up to float rounding, the same accuracy on a synthetic soft edge,
 * opaque pixels exact, deterministic, thin images; the shim follows the plan it is
 * given and refuses one out of range. The images are larger than 256x256 pixels so
 * that the finest levels reach the device (smaller levels run on the host). */
#include <math.h>

#include "foreground.h"
#include "shim.h"
#include "test_util.h"

/* Tolerances against the C version (bytes, 0..255), over all pixels. */
#define MAX_BYTE_DIFF 2
#define MEAN_BYTE_DIFF 0.001

typedef struct image {
    int w, h;
    uint8_t *rgba, *alpha;
    float *truth; /* the true foreground, 3 floats a pixel in [0,1] */
} image;

static float clamp01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

/* An orange-brown, striped foreground blob with a furry soft rim over a cyan-violet
 * background gradient: I = a*F + (1-a)*B, rounded to 8 bits. */
static image make_image(int w, int h) {
    const size_t n = (size_t)w * (size_t)h;
    image m = {w, h, malloc(n * 4), malloc(n), malloc(n * 3 * sizeof(float))};
    assert_non_null(m.rgba);
    assert_non_null(m.alpha);
    assert_non_null(m.truth);
    const float cx = 0.48f * (float)w, cy = 0.52f * (float)h, radius = 0.3f * (float)(w < h ? w : h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const size_t i = (size_t)y * (size_t)w + (size_t)x;
            const float dx = (float)x - cx, dy = (float)y - cy, ang = atan2f(dy, dx);
            const float dist = sqrtf(dx * dx + dy * dy);
            const float fur = 7.0f + 4.0f * sinf(19.0f * ang) + 2.5f * sinf(47.0f * ang + 0.5f);
            float a = clamp01((radius + fur - dist) / (fur + 3.0f));
            if (dist > radius) a *= clamp01(0.7f + 0.4f * sinf(37.0f * ang));
            const uint8_t a8 = (uint8_t)lrintf(a * 255.0f);
            const float af = (float)a8 / 255.0f;
            const float stripe = 0.5f + 0.5f * sinf(0.3f * (float)x + 0.7f * sinf(0.15f * (float)y));
            const float f[3] = {0.6f + 0.2f * stripe, 0.35f + 0.2f * stripe, 0.2f + 0.1f * stripe};
            const float b[3] = {0.1f + 0.3f * (float)y / (float)h, 0.75f - 0.3f * (float)x / (float)w, 0.9f};
            for (int c = 0; c < 3; c++) {
                m.truth[i * 3 + (size_t)c] = f[c];
                m.rgba[i * 4 + (size_t)c] = (uint8_t)lrintf(255.0f * (af * f[c] + (1.0f - af) * b[c]));
            }
            m.rgba[i * 4 + 3] = 255;
            m.alpha[i] = a8;
        }
    return m;
}

static void free_image(image *m) {
    free(m->rgba);
    free(m->alpha);
    free(m->truth);
}

static pm_shim_model *cpu_model(void) {
    pm_shim_model *model = NULL;
    char *manifest = NULL;
    char err[256] = "";
    pm_code rc =
        pm_shim_load(model_path("red32.pt"), PM_DEVICE_CPU, 0, PM_PRECISION_FP32, &model, &manifest, err, sizeof err);
    if (rc != PM_OK) fprintf(stderr, "pm_shim_load: %s\n", err);
    assert_int_equal(rc, PM_OK);
    free(manifest);
    return model;
}

static int setup(void **state) {
    pm_shim_set_cpu_threads(2);
    *state = cpu_model();
    return 0;
}

static int teardown(void **state) {
    pm_shim_free(*state);
    return 0;
}

static uint8_t *run_torch(pm_shim_model *model, const image *m) {
    uint8_t *out = malloc((size_t)m->w * (size_t)m->h * 3);
    assert_non_null(out);
    char err[256] = "";
    pm_code rc = pm_estimate_foreground_on_device(model, m->rgba, m->alpha, m->w, m->h, out, err, sizeof err);
    if (rc != PM_OK) fprintf(stderr, "pm_estimate_foreground_on_device: %s\n", err);
    assert_int_equal(rc, PM_OK);
    return out;
}

static uint8_t *run_c(const image *m) {
    uint8_t *out = malloc((size_t)m->w * (size_t)m->h * 3);
    assert_non_null(out);
    const pm_fg_tuning full = {0, 0}; /* every pixel swept, as the tensor version */
    assert_int_equal(pm_estimate_foreground_tuned(m->rgba, m->alpha, m->w, m->h, out, &full, NULL, 0), PM_OK);
    return out;
}

/* Compares the tensor version with the C version; returns the largest difference. */
static int compare_with_c(pm_shim_model *model, int w, int h) {
    image m = make_image(w, h);
    uint8_t *t = run_torch(model, &m), *c = run_c(&m);
    const size_t bytes = (size_t)w * (size_t)h * 3;
    size_t differ = 0;
    double sum = 0;
    int worst = 0;
    for (size_t i = 0; i < bytes; i++) {
        const int d = abs((int)t[i] - (int)c[i]);
        sum += d;
        differ += d != 0;
        worst = d > worst ? d : worst;
    }
    const double mean = sum / (double)bytes;
    print_message("%dx%d: device vs C (skip_flat 0): %zu of %zu bytes differ, max %d, mean %.5f\n", w, h, differ,
                  bytes, worst, mean);
    assert_true(worst <= MAX_BYTE_DIFF);
    assert_true(mean <= MEAN_BYTE_DIFF);
    free(t);
    free(c);
    free_image(&m);
    return worst;
}

static void test_matches_the_c_version_up_to_rounding(void **state) {
    compare_with_c(*state, 640, 480);
    compare_with_c(*state, 333, 251); /* odd sizes: padding in the colour split */
}

static void test_thin_images_match_the_c_version(void **state) {
    /* One row / one column: the finest level takes the tensor path with h or w = 1. */
    compare_with_c(*state, 70001, 1);
    compare_with_c(*state, 1, 70001);
    compare_with_c(*state, 40000, 3);
}

static void test_small_images_run_on_the_host_with_the_c_arithmetic(void **state) {
    /* At most 256x256 pixels, every level runs on the host: the same bytes. */
    assert_int_equal(compare_with_c(*state, 97, 61), 0);
    assert_int_equal(compare_with_c(*state, 1, 1), 0);
}

/* Mean |colour - truth| over the band 0.05 < alpha < 0.95, in 0..1 units. */
static double band_error(const image *m, const uint8_t *px, size_t stride, size_t *count) {
    double sum = 0;
    size_t n = 0;
    for (size_t i = 0; i < (size_t)m->w * (size_t)m->h; i++) {
        if (m->alpha[i] <= 13 || m->alpha[i] >= 242) continue;
        for (size_t c = 0; c < 3; c++) sum += fabs(px[i * stride + c] / 255.0 - m->truth[i * 3 + c]);
        n++;
    }
    *count = n;
    return n ? sum / (3.0 * (double)n) : 0.0;
}

static void test_soft_band_colours_are_at_least_3x_closer_to_the_true_foreground(void **state) {
    image m = make_image(384, 288);
    uint8_t *out = run_torch(*state, &m);
    size_t n_in = 0, n_out = 0;
    const double e_input = band_error(&m, m.rgba, 4, &n_in), e_est = band_error(&m, out, 3, &n_out);
    print_message("band pixels %zu: mean error F=I %.4f, device estimate %.4f, ratio %.1fx\n", n_in, e_input, e_est,
                  e_input / e_est);
    assert_true(n_in > 1000);
    assert_true(e_est * 3.0 <= e_input);
    free(out);
    free_image(&m);
}

static void test_opaque_pixels_keep_their_input_colour_exactly(void **state) {
    image m = make_image(333, 251);
    uint8_t *out = run_torch(*state, &m);
    size_t opaque = 0;
    for (size_t i = 0; i < (size_t)m.w * (size_t)m.h; i++) {
        if (m.alpha[i] != 255) continue;
        opaque++;
        assert_memory_equal(out + i * 3, m.rgba + i * 4, 3);
    }
    assert_true(opaque > 5000);
    free(out);
    free_image(&m);
}

static void test_two_runs_give_the_same_bytes(void **state) {
    image m = make_image(512, 300);
    uint8_t *a = run_torch(*state, &m), *b = run_torch(*state, &m);
    assert_memory_equal(a, b, (size_t)m.w * (size_t)m.h * 3);
    free(a);
    free(b);
    free_image(&m);
}

/* A 4x3 image whose one device level starts from a 2x2 start through the plan's maps
 * and runs no sweep: every pixel that is not opaque gets its mapped start colour. */
static void test_the_device_starts_each_pixel_where_the_plan_maps_it(void **state) {
    enum { W = 4, H = 3 };
    uint8_t rgba[W * H * 4], alpha[W * H], out[W * H * 3];
    for (int i = 0; i < W * H; i++) {
        rgba[i * 4] = (uint8_t)(10 * i), rgba[i * 4 + 1] = 7, rgba[i * 4 + 2] = 200, rgba[i * 4 + 3] = 255;
        alpha[i] = i == 5 ? 255 : (uint8_t)(20 * i); /* pixel 5 opaque: its input colour */
    }
    /* Start F (B = 1 - F): 4 distinct colours, exact in 8 bits (k/255). */
    float start[2 * 2 * 6];
    for (int p = 0; p < 4; p++)
        for (int c = 0; c < 3; c++) {
            start[p * 6 + c] = (float)(40 * p + 10 * c + 5) / 255.0f;
            start[p * 6 + 3 + c] = 1.0f - start[p * 6 + c];
        }
    const int32_t x_prev[W] = {1, 0, 1, 0}, y_prev[H] = {1, 1, 0};
    const pm_fg_level level = {.width = W, .height = H, .iterations = 0, .x_prev = x_prev, .y_prev = y_prev};
    const pm_fg_plan plan = {.levels = 1, .level = &level, .start_width = 2, .start_height = 2, .start_fb = start,
                             .regularization = 1e-5f, .gradient_weight = 1.0f};
    char err[256] = "";
    assert_int_equal(pm_shim_estimate_foreground(*state, rgba, alpha, W, H, &plan, out, err, sizeof err), PM_OK);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const int i = y * W + x, p = y_prev[y] * 2 + x_prev[x];
            for (int c = 0; c < 3; c++) {
                const int want = i == 5 ? rgba[i * 4 + c] : 40 * p + 10 * c + 5;
                assert_int_equal(out[i * 3 + c], want);
            }
        }
}

/* The plan's iteration count is what runs: with none, F is the (black) start; with
 * one sweep over a flat half-transparent matte, every pixel's solve gives F = B = I. */
static void test_a_planned_sweep_changes_the_start(void **state) {
    enum { W = 4, H = 3 };
    uint8_t rgba[W * H * 4], alpha[W * H], a[W * H * 3], b[W * H * 3];
    for (int i = 0; i < W * H; i++) {
        rgba[i * 4] = 250, rgba[i * 4 + 1] = 20, rgba[i * 4 + 2] = 20, rgba[i * 4 + 3] = 255;
        alpha[i] = 128;
    }
    float start[6] = {0, 0, 0, 0, 0, 0}; /* a 1x1 start of black */
    const int32_t zeros[W] = {0};
    pm_fg_level level = {.width = W, .height = H, .iterations = 0, .x_prev = zeros, .y_prev = zeros};
    const pm_fg_plan plan = {.levels = 1, .level = &level, .start_width = 1, .start_height = 1, .start_fb = start,
                             .regularization = 1e-5f, .gradient_weight = 1.0f};
    assert_int_equal(pm_shim_estimate_foreground(*state, rgba, alpha, W, H, &plan, a, NULL, 0), PM_OK);
    level.iterations = 1;
    assert_int_equal(pm_shim_estimate_foreground(*state, rgba, alpha, W, H, &plan, b, NULL, 0), PM_OK);
    for (int i = 0; i < W * H; i++) {
        assert_int_equal(a[i * 3], 0);
        /* With the matte flat at 0.5 and I red, one solve already makes F red. */
        assert_true(b[i * 3] > 200);
        assert_true(b[i * 3 + 1] < 60);
    }
}

/* Nearest map of n entries onto 0..limit-1. */
static void nearest_map(int32_t *map, int n, int limit) {
    for (int i = 0; i < n; i++) map[i] = (int32_t)(((int64_t)i * limit + limit / 2) / n);
}

/* Sweeping a level in bands of rows (each with its halo) gives the bytes of sweeping it
 * whole, bit for bit: a sampled level and the image itself, odd sizes, bands of 2 and
 * 4 rows and bands larger than the level, few and many sweeps. */
static void test_bands_of_rows_give_the_bytes_of_whole_levels(void **state) {
    enum { W = 97, H = 83, SW = 9, SH = 7, LW = 41, LH = 35 };
    image m = make_image(W, H);
    float start[SW * SH * 6];
    for (int i = 0; i < SW * SH; i++)
        for (int c = 0; c < 3; c++) {
            start[i * 6 + c] = (float)((i * 37 + c * 11) % 256) / 255.0f;
            start[i * 6 + 3 + c] = 1.0f - start[i * 6 + c];
        }
    int32_t x_full0[LW], y_full0[LH], x_prev0[LW + 1], y_prev0[LH + 1], x_prev1[W + 1], y_prev1[H + 1];
    nearest_map(x_full0, LW, W);
    nearest_map(y_full0, LH, H);
    nearest_map(x_prev0, LW, SW);
    nearest_map(y_prev0, LH, SH);
    nearest_map(x_prev1, W, LW);
    nearest_map(y_prev1, H, LH);
    const int iterations[] = {2, 10};
    const int64_t bands[] = {1, 4 * W, 40 * W, (int64_t)W * H};
    uint8_t *whole = malloc((size_t)W * H * 3), *banded = malloc((size_t)W * H * 3);
    assert_non_null(whole);
    assert_non_null(banded);
    for (size_t k = 0; k < sizeof iterations / sizeof *iterations; k++) {
        const pm_fg_level levels[2] = {
            {.width = LW, .height = LH, .iterations = iterations[k], .x_full = x_full0, .y_full = y_full0,
             .x_prev = x_prev0, .y_prev = y_prev0},
            {.width = W, .height = H, .iterations = iterations[k], .x_prev = x_prev1, .y_prev = y_prev1}};
        pm_fg_plan plan = {.levels = 2, .level = levels, .start_width = SW, .start_height = SH, .start_fb = start,
                           .regularization = 1e-5f, .gradient_weight = 1.0f, .band_pixels = 0};
        char err[256] = "";
        assert_int_equal(pm_shim_estimate_foreground(*state, m.rgba, m.alpha, W, H, &plan, whole, err, sizeof err),
                         PM_OK);
        for (size_t b = 0; b < sizeof bands / sizeof *bands; b++) {
            plan.band_pixels = bands[b];
            memset(banded, 0, (size_t)W * H * 3);
            assert_int_equal(
                pm_shim_estimate_foreground(*state, m.rgba, m.alpha, W, H, &plan, banded, err, sizeof err), PM_OK);
            assert_memory_equal(banded, whole, (size_t)W * H * 3);
        }
    }
    free(whole);
    free(banded);
    free_image(&m);
}

static void test_bad_arguments_are_rejected(void **state) {
    pm_shim_model *model = *state;
    uint8_t rgba[16] = {0}, alpha[4] = {0}, out[12];
    char err[256] = "";
    assert_int_equal(pm_shim_is_cuda(model), 0);
    assert_int_equal(pm_shim_is_cuda(NULL), 0);
    assert_int_equal(pm_estimate_foreground_on_device(NULL, rgba, alpha, 2, 2, out, err, sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_estimate_foreground_on_device(model, NULL, alpha, 2, 2, out, err, sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_estimate_foreground_on_device(model, rgba, NULL, 2, 2, out, err, sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_estimate_foreground_on_device(model, rgba, alpha, 2, 2, NULL, err, sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_estimate_foreground_on_device(model, rgba, alpha, 0, 2, out, err, sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_estimate_foreground_on_device(model, rgba, alpha, 2, -1, out, NULL, 0),
                     PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_estimate_foreground_on_device(model, rgba, alpha, 2147483647, 2147483647, out, err, sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_estimate_foreground_on_device(model, rgba, alpha, 2, 2, out, err, sizeof err), PM_OK);

    /* The shim itself: a valid 2x2 plan, then one wrong value at a time. */
    float start[6] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    const int32_t zeros[2] = {0, 0}, out_of_range[2] = {0, 1};
    pm_fg_level level = {.width = 2, .height = 2, .iterations = 2, .x_prev = zeros, .y_prev = zeros};
    pm_fg_plan plan = {.levels = 1, .level = &level, .start_width = 1, .start_height = 1, .start_fb = start,
                       .regularization = 1e-5f, .gradient_weight = 1.0f};
    assert_int_equal(pm_shim_estimate_foreground(model, rgba, alpha, 2, 2, &plan, out, err, sizeof err), PM_OK);
    assert_int_equal(pm_shim_estimate_foreground(NULL, rgba, alpha, 2, 2, &plan, out, err, sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_shim_estimate_foreground(model, rgba, alpha, 2, 2, NULL, out, err, sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_shim_estimate_foreground(model, rgba, alpha, 2147483647, 2147483647, &plan, out, err,
                                                 sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "too large"));
    pm_fg_plan bad = plan;
    bad.levels = 0;
    assert_int_equal(pm_shim_estimate_foreground(model, rgba, alpha, 2, 2, &bad, out, err, sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
    bad = plan;
    bad.start_fb = NULL;
    assert_int_equal(pm_shim_estimate_foreground(model, rgba, alpha, 2, 2, &bad, out, err, sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
    bad = plan;
    bad.regularization = 0.0f; /* a flat matte would make the 2x2 systems singular */
    assert_int_equal(pm_shim_estimate_foreground(model, rgba, alpha, 2, 2, &bad, out, err, sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
    bad = plan;
    bad.band_pixels = -1;
    assert_int_equal(pm_shim_estimate_foreground(model, rgba, alpha, 2, 2, &bad, out, err, sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "band"));
    level.x_prev = out_of_range; /* column 1 of a 1-pixel-wide start */
    assert_int_equal(pm_shim_estimate_foreground(model, rgba, alpha, 2, 2, &plan, out, err, sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "x_prev"));
    level.x_prev = zeros;
    level.width = 1; /* the last level must be the image: no image maps for a smaller one */
    assert_int_equal(pm_shim_estimate_foreground(model, rgba, alpha, 2, 2, &plan, out, err, sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
    level.width = 2;
    level.iterations = -1;
    assert_int_equal(pm_shim_estimate_foreground(model, rgba, alpha, 2, 2, &plan, out, err, sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_the_c_version_up_to_rounding),
        cmocka_unit_test(test_thin_images_match_the_c_version),
        cmocka_unit_test(test_small_images_run_on_the_host_with_the_c_arithmetic),
        cmocka_unit_test(test_soft_band_colours_are_at_least_3x_closer_to_the_true_foreground),
        cmocka_unit_test(test_opaque_pixels_keep_their_input_colour_exactly),
        cmocka_unit_test(test_two_runs_give_the_same_bytes),
        cmocka_unit_test(test_the_device_starts_each_pixel_where_the_plan_maps_it),
        cmocka_unit_test(test_a_planned_sweep_changes_the_start),
        cmocka_unit_test(test_bands_of_rows_give_the_bytes_of_whole_levels),
        cmocka_unit_test(test_bad_arguments_are_rejected),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
