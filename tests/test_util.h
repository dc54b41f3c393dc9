/* test_util.h - shared helpers for the C tests (models folder, contexts, images). */
#ifndef PM_TEST_UTIL_H
#define PM_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "petmatte.h"

/* Defined when built with ASan or TSan (GCC or clang): tests that need real address
 * space limits or exact memory figures skip themselves. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#  define PM_TEST_SANITIZED 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#    define PM_TEST_SANITIZED 1
#  endif
#endif

/* Path of a test model made by tests/models/make_test_models.py. */
static inline const char *model_path(const char *name) {
    static _Thread_local char buf[1024];
    const char *dir = getenv("PM_TEST_MODELS");
    snprintf(buf, sizeof buf, "%s/%s", dir ? dir : "build/tests/models", name);
    return buf;
}

/* The device the tests' contexts run on: PM_TEST_DEVICE ("auto" on a GPU machine:
 * scripts/test-cuda.sh), else the CPU. */
static inline const char *test_device(void) {
    const char *dev = getenv("PM_TEST_DEVICE");
    return dev && *dev ? dev : "cpu";
}

/* 1 when the tests' contexts run on a CUDA device. */
static inline int test_on_cuda(void) {
    int n = 0;
    return strcmp(test_device(), "cpu") != 0 && pm_cuda_device_count(&n) == PM_OK && n > 0;
}

/* The tests' parameters for a test model: the test device, one CPU thread. */
static inline void cpu_params(pm_params *p, const char *name) {
    pm_params_init(p);
    p->model_path = model_path(name);
    p->device = test_device();
    p->cpu_threads = 1;
}

/* pm_tune_set on ctx; asserts it succeeds. */
static inline void tune(pm_ctx *ctx, pm_tune key, int value) {
    pm_code rc = pm_tune_set(ctx, key, value);
    if (rc != PM_OK) fprintf(stderr, "pm_tune_set(%s, %d): %s\n", pm_tune_name(key), value, pm_errmsg(ctx));
    assert_int_equal(rc, PM_OK);
}

/* pm_tune_get of key on ctx; asserts it succeeds. */
static inline int tuned(pm_ctx *ctx, pm_tune key) {
    int value = -12345;
    assert_int_equal(pm_tune_get(ctx, key, &value), PM_OK);
    return value;
}

/* A quick warm-up: at least 3 inferences, at most 6. */
static inline void quick_warmup(pm_ctx *ctx) {
    tune(ctx, PM_TUNE_WARMUP_MIN_RUNS, 3);
    tune(ctx, PM_TUNE_WARMUP_MAX_RUNS, 6);
}

/* pm_remove_bg of img under opt; asserts it succeeds (printing why when not). */
static inline pm_output *remove_ok(pm_ctx *ctx, const pm_image *img, const pm_remove_options *opt) {
    pm_output *out = NULL;
    pm_code rc = pm_remove_bg(ctx, img, opt, &out);
    if (rc != PM_OK) fprintf(stderr, "pm_remove_bg: %s\n", pm_errmsg(ctx));
    assert_int_equal(rc, PM_OK);
    assert_non_null(out);
    return out;
}

/* pm_status of ctx; asserts it succeeds. */
static inline pm_status_info status_of(pm_ctx *ctx) {
    pm_status_info st;
    pm_status_info_init(&st);
    assert_int_equal(pm_status(ctx, &st), PM_OK);
    return st;
}

/* Opens a context with params p (named `name` in a failure); asserts success. */
static inline pm_ctx *open_with(const pm_params *p, const char *name) {
    pm_ctx *ctx = NULL;
    pm_code rc = pm_open(p, &ctx);
    if (rc != PM_OK) fprintf(stderr, "pm_open(%s): %s\n", name, pm_errmsg(NULL));
    assert_int_equal(rc, PM_OK);
    assert_non_null(ctx);
    return ctx;
}

/* Opens a CPU context on a test model with a quick warm-up; asserts success. */
static inline pm_ctx *open_model(const char *name) {
    pm_params p;
    cpu_params(&p, name);
    pm_ctx *ctx = open_with(&p, name);
    quick_warmup(ctx);
    return ctx;
}

/* A raw RGB image whose red channel is a known pattern: red(x, y) = (7x + 3y) % 256. */
static inline uint8_t pattern_red(int x, int y) { return (uint8_t)((7 * x + 3 * y) % 256); }

static inline uint8_t *make_rgb(int w, int h) {
    uint8_t *px = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = px + ((size_t)y * w + x) * 3;
            p[0] = pattern_red(x, y);
            p[1] = (uint8_t)(x * 5);
            p[2] = (uint8_t)(255 - y * 5);
        }
    return px;
}

/* Encoded bytes (PM_FORMAT_ENCODED) as a pm_image. */
static inline pm_image encoded_image(const void *data, size_t size) {
    pm_image img;
    pm_image_init(&img);
    img.data = data;
    img.size = size;
    return img;
}

static inline pm_image raw_image(int format, const void *data, int w, int h, size_t stride, size_t size) {
    pm_image img;
    pm_image_init(&img);
    img.format = format;
    img.data = data;
    img.width = w;
    img.height = h;
    img.stride = stride;
    img.size = size;
    return img;
}

/* Address space in use now (VmSize), in bytes. */
static inline uint64_t vm_size(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (!f || fscanf(f, "%lu", &pages) != 1) abort();
    fclose(f);
    return (uint64_t)pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

#endif
