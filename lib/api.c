/* api.c - pm_open, pm_close, pm_remove_bg and the small public helpers. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "background.h"
#include "context.h"
#include "encode.h"
#include "pixel_alloc.h"

#define PM_DEFAULT_MAX_PIXELS 100000000ull
#define PM_DEFAULT_MAX_ENCODED_BYTES (256ull << 20)

const char *pm_version(void) { return PETMATTE_VERSION_STRING; }
unsigned pm_version_number(void) { return PETMATTE_VERSION_NUMBER; }

double pm_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

double pm_unix_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int pm_copy_sized(void *dst, size_t dst_size, const void *src, size_t min_size) {
    size_t given = *(const size_t *)src;
    if (given < min_size) return 0;
    /* A newer caller's extra fields are unknown to us: read only what we know. */
    memcpy(dst, src, given < dst_size ? given : dst_size);
    *(size_t *)dst = dst_size;
    return 1;
}

/* The smallest struct_size accepted: struct_size plus the first field. */
#define PM_MIN_SIZE(type, first) (offsetof(type, first) + sizeof(((type *)0)->first))

/* Copies a struct's defaults over a caller's copy that may be older (smaller) than
 * ours, then records the caller's size: the one rule behind every *_init_sized. */
static void init_sized(void *dst, size_t dst_size, const void *defaults, size_t defaults_size) {
    memcpy(dst, defaults, dst_size < defaults_size ? dst_size : defaults_size);
    *(size_t *)dst = dst_size; /* struct_size is every sized struct's first field */
}

void pm_params_init_sized(pm_params *p, size_t struct_size) {
    if (!p || struct_size < sizeof(size_t)) return;
    pm_params d;
    memset(&d, 0, sizeof d);
    d.device = "auto";
    d.precision = PM_PRECISION_AUTO;
    d.max_pixels = PM_DEFAULT_MAX_PIXELS;
    d.max_encoded_bytes = PM_DEFAULT_MAX_ENCODED_BYTES;
    d.max_batch = 1;
    init_sized(p, struct_size, &d, sizeof d);
}

void pm_image_init_sized(pm_image *img, size_t struct_size) {
    if (!img || struct_size < sizeof(size_t)) return;
    pm_image d;
    memset(&d, 0, sizeof d);
    d.format = PM_FORMAT_ENCODED;
    init_sized(img, struct_size, &d, sizeof d);
}

void pm_remove_options_init_sized(pm_remove_options *o, size_t struct_size) {
    if (!o || struct_size < sizeof(size_t)) return;
    pm_remove_options d;
    memset(&d, 0, sizeof d);
    d.output = PM_OUTPUT_RGBA;
    d.encoding = PM_ENCODING_RAW;
    d.background_rgb = 0xFFFFFF;
    d.threshold = -1.0f;
    d.apply_exif_orientation = 1;
    d.keep_input_alpha = 1;
    d.png_level = -1; /* PM_PNG_LEVEL_DEFAULT */
    d.webp_quality = PM_WEBP_QUALITY_DEFAULT;
    d.background = PM_BACKGROUND_COLOR;
    d.overlay_rgb = PM_OVERLAY_RGB_DEFAULT;
    d.overlay_opacity = PM_OVERLAY_OPACITY_DEFAULT;
    init_sized(o, struct_size, &d, sizeof d);
}

const char *pm_state_name(pm_state s) {
    switch (s) {
    case PM_STATE_COLD: return "cold";
    case PM_STATE_LOADING: return "loading";
    case PM_STATE_WARMING: return "warming";
    case PM_STATE_READY: return "ready";
    case PM_STATE_FAILED: return "failed";
    }
    return "unknown";
}

const char *pm_precision_name(pm_precision p) {
    switch (p) {
    case PM_PRECISION_AUTO: return "auto";
    case PM_PRECISION_FP32: return "fp32";
    case PM_PRECISION_FP16: return "fp16";
    case PM_PRECISION_BF16: return "bf16";
    }
    return "unknown";
}

pm_code pm_cuda_device_count(int *count) {
    if (!count) return pm_fail(NULL, PM_ERR_INVALID_ARGUMENT, "pm_cuda_device_count: count is NULL");
    char err[256] = "";
    pm_code rc = pm_shim_cuda_device_count(count, err, sizeof err);
    if (rc != PM_OK) return pm_fail(NULL, rc, "%s", err);
    return PM_OK;
}

/* "auto", "cpu", "cuda" (= "cuda:0") or "cuda:N" with N a plain decimal < 1024. */
static pm_code parse_device(pm_ctx *c, const char *dev) {
    if (!dev || !*dev || strcmp(dev, "auto") == 0) {
        c->device_auto = 1;
        c->requested_kind = PM_DEVICE_CPU;
        c->requested_index = -1;
        snprintf(c->device_request, sizeof c->device_request, "auto");
        return PM_OK;
    }
    if (strcmp(dev, "cpu") == 0) {
        c->requested_kind = PM_DEVICE_CPU;
        c->requested_index = -1;
        snprintf(c->device_request, sizeof c->device_request, "cpu");
        return PM_OK;
    }
    if (strncmp(dev, "cuda", 4) == 0) {
        const char *p = dev + 4;
        long idx = 0;
        if (*p == ':') {
            p++;
            if (*p < '0' || *p > '9') goto bad;
            idx = 0;
            for (; *p >= '0' && *p <= '9'; p++) {
                idx = idx * 10 + (*p - '0');
                if (idx >= 1024) goto bad;
            }
        }
        if (*p) goto bad;
#ifndef PETMATTE_WITH_CUDA
        return pm_fail(NULL, PM_ERR_DEVICE,
                       "device \"%s\": this build of libpetmatte has no CUDA support (0 CUDA devices visible)",
                       dev);
#endif
        c->requested_kind = PM_DEVICE_CUDA;
        c->requested_index = (int)idx;
        snprintf(c->device_request, sizeof c->device_request, "cuda:%ld", idx);
        return PM_OK;
    }
bad:
    return pm_fail(NULL, PM_ERR_INVALID_ARGUMENT,
                   "device \"%.64s\" is not one of \"auto\", \"cpu\", \"cuda\", \"cuda:N\"", dev);
}

static pm_code validate_params(const pm_params *p) {
#define BAD(...) pm_fail(NULL, PM_ERR_INVALID_ARGUMENT, __VA_ARGS__)
    if (!p->model_path || !*p->model_path) return BAD("params.model_path is empty");
    if (p->precision < PM_PRECISION_AUTO || p->precision > PM_PRECISION_BF16)
        return BAD("params.precision %d is not a pm_precision", p->precision);
    if (p->input_size != 0 && (p->input_size < 8 || p->input_size > 8192))
        return BAD("params.input_size %d is outside 8..8192 (0 = the model's)", p->input_size);
    if (p->max_pixels == 0) return BAD("params.max_pixels is 0");
    if (p->max_encoded_bytes == 0) return BAD("params.max_encoded_bytes is 0");
    if (p->cpu_threads < 0 || p->cpu_threads > 1024)
        return BAD("params.cpu_threads %d is outside 0..1024", p->cpu_threads);
    if (p->max_batch < 1 || p->max_batch > PM_MAX_BATCH_LIMIT)
        return BAD("params.max_batch %d is outside 1..%d", p->max_batch, PM_MAX_BATCH_LIMIT);
#undef BAD
    return PM_OK;
}

/* Exists, is a regular file and can be read: everything knowable without a device. */
static pm_code check_model_file(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pm_fail(NULL, PM_ERR_IO, "cannot open model file \"%s\": %s", path, strerror(errno));
    struct stat st;
    int ok = fstat(fd, &st) == 0;
    int is_reg = ok && S_ISREG(st.st_mode);
    close(fd);
    if (!ok) return pm_fail(NULL, PM_ERR_IO, "cannot stat model file \"%s\"", path);
    if (!is_reg) return pm_fail(NULL, PM_ERR_IO, "model path \"%s\" is not a regular file", path);
    return PM_OK;
}

pm_code pm_open(const pm_params *params, pm_ctx **out) {
    double t0 = pm_now_ms();
    if (!out) return pm_fail(NULL, PM_ERR_INVALID_ARGUMENT, "pm_open: out is NULL");
    *out = NULL;
    if (!params) return pm_fail(NULL, PM_ERR_INVALID_ARGUMENT, "pm_open: params is NULL");
    pm_params p;
    pm_params_init(&p);
    if (!pm_copy_sized(&p, sizeof p, params, PM_MIN_SIZE(pm_params, model_path)))
        return pm_fail(NULL, PM_ERR_INVALID_ARGUMENT,
                       "pm_open: params.struct_size %zu is too small (use pm_params_init)", params->struct_size);
    pm_code rc = validate_params(&p);
    if (rc != PM_OK) return rc;

    pm_ctx *c = calloc(1, sizeof *c);
    if (!c) return pm_fail(NULL, PM_ERR_NO_MEMORY, "pm_open: out of memory");
    if ((rc = parse_device(c, p.device)) != PM_OK) goto fail;
    if ((rc = check_model_file(p.model_path)) != PM_OK) goto fail;
    c->model_path = strdup(p.model_path);
    if (!c->model_path) {
        rc = pm_fail(NULL, PM_ERR_NO_MEMORY, "pm_open: out of memory");
        goto fail;
    }
    const char *slash = strrchr(p.model_path, '/');
    snprintf(c->file_name, sizeof c->file_name, "%s", slash ? slash + 1 : p.model_path);
    c->precision_request = p.precision;
    c->input_size = p.input_size;
    c->limits.max_pixels = p.max_pixels;
    c->limits.max_encoded_bytes = p.max_encoded_bytes;
    c->cpu_threads = p.cpu_threads;
    c->max_batch = p.max_batch;
    pm_tune_defaults(c->tune);
    c->graph_safe = -1;
    c->state = PM_STATE_COLD;
    snprintf(c->device_desc, sizeof c->device_desc, "%s", c->device_request);
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        rc = pm_fail(NULL, PM_ERR_NO_MEMORY, "pm_open: cannot create a mutex");
        goto fail;
    }
    if (pthread_cond_init(&c->flight_done, NULL) != 0) {
        pthread_mutex_destroy(&c->mu);
        rc = pm_fail(NULL, PM_ERR_NO_MEMORY, "pm_open: cannot create a condition variable");
        goto fail;
    }
    c->open_ms = pm_now_ms() - t0;
    *out = c;
    return PM_OK;
fail:
    free(c->model_path);
    free(c);
    return rc;
}

void pm_close(pm_ctx *c) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->closing = 1; /* a background warm-up stops at its next step */
    enum pm_bg_state bg = c->bg;
    c->bg = PM_BG_NONE;
    pthread_mutex_unlock(&c->mu);
    if (bg != PM_BG_NONE) pthread_join(c->bg_thread, NULL);
    if (c->model) pm_shim_free(c->model);
    pthread_cond_destroy(&c->flight_done);
    pthread_mutex_destroy(&c->mu);
    free(c->model_path);
    free(c);
}

static int is_ready(pm_ctx *c) {
    pthread_mutex_lock(&c->mu);
    int ready = c->state == PM_STATE_READY;
    pthread_mutex_unlock(&c->mu);
    return ready;
}

/* options.background_image, decoded (or borrowed) upright under the context's limits. */
static pm_code load_picture(pm_ctx *c, const pm_image *given, int apply_exif, pm_rgba *out) {
    pm_image in;
    pm_image_init(&in);
    if (!pm_copy_sized(&in, sizeof in, given, PM_MIN_SIZE(pm_image, stride)))
        return pm_fail(c, PM_ERR_INVALID_ARGUMENT,
                       "pm_remove_bg: options.background_image.struct_size %zu is too small (use pm_image_init)",
                       given->struct_size);
    char err[PM_ERRMSG_CAP] = "";
    pm_code rc = pm_image_load(&in, &c->limits, apply_exif, out, err, sizeof err);
    if (rc != PM_OK) return pm_fail(c, rc, "background image: %s", err);
    return PM_OK;
}

pm_code pm_remove_bg(pm_ctx *c, const pm_image *input, const pm_remove_options *options,
                     pm_output **out) {
    if (out) *out = NULL;
    if (!c) return pm_fail(NULL, PM_ERR_INVALID_ARGUMENT, "pm_remove_bg: ctx is NULL");
    if (!input) return pm_fail(c, PM_ERR_INVALID_ARGUMENT, "pm_remove_bg: input is NULL");
    if (!out) return pm_fail(c, PM_ERR_INVALID_ARGUMENT, "pm_remove_bg: out is NULL");
    pm_image in;
    pm_image_init(&in);
    if (!pm_copy_sized(&in, sizeof in, input, PM_MIN_SIZE(pm_image, stride)))
        return pm_fail(c, PM_ERR_INVALID_ARGUMENT,
                       "pm_remove_bg: input.struct_size %zu is too small (use pm_image_init)", input->struct_size);
    pm_remove_options opt;
    pm_remove_options_init(&opt);
    if (options && !pm_copy_sized(&opt, sizeof opt, options, PM_MIN_SIZE(pm_remove_options, output)))
        return pm_fail(c, PM_ERR_INVALID_ARGUMENT,
                       "pm_remove_bg: options.struct_size %zu is too small (use pm_remove_options_init)",
                       options->struct_size);

    char err[PM_ERRMSG_CAP] = "";
    pm_code rc = pm_check_remove_options(&opt, err, sizeof err);
    if (rc != PM_OK) return pm_fail(c, rc, "pm_remove_bg: %s", err);

    if (!is_ready(c)) {
        rc = pm_load_for_call(c);
        if (rc != PM_OK) return rc;
    }

    pm_rgba img = {0};
    rc = pm_image_load(&in, &c->limits, opt.apply_exif_orientation, &img, err, sizeof err);
    if (rc != PM_OK) return pm_fail(c, rc, "%s", err);
    /* The background picture is decoded before the model runs, so that a bad one
     * costs no inference; the same limits apply to it. */
    pm_rgba picture = {0};
    if (opt.output == PM_OUTPUT_COMPOSITE && opt.background == PM_BACKGROUND_IMAGE) {
        rc = load_picture(c, opt.background_image, opt.apply_exif_orientation, &picture);
        if (rc != PM_OK) {
            pm_rgba_free(&img);
            return rc;
        }
    }

    uint8_t *matte = pm_pixels_alloc((size_t)img.width * (size_t)img.height);
    if (!matte) {
        pm_rgba_free(&picture);
        pm_rgba_free(&img);
        return pm_fail(c, PM_ERR_NO_MEMORY, "no memory for a %dx%d matte", img.width, img.height);
    }
    /* No lock here: the shim serialises only the forward pass itself. */
    rc = pm_shim_infer(c->model, pm_rgba_pixels(&img), img.width, img.height, pm_rgba_stride(&img),
                       pm_rgba_channels(&img), matte, err, sizeof err);
    /* Clean edges run on the model's device when that is a GPU (docs/clean-edges.md). */
    if (rc == PM_OK)
        rc = pm_build_output(&img, &matte, &opt, &picture, pm_shim_is_cuda(c->model) ? c->model : NULL,
                             out, err, sizeof err);
    free(matte); /* NULL when a raw mask output took it over */
    pm_rgba_free(&picture);
    pm_rgba_free(&img);
    if (rc != PM_OK) return pm_fail(c, rc, "%s", err);

    pthread_mutex_lock(&c->mu);
    c->images_processed++;
    pthread_mutex_unlock(&c->mu);
    return PM_OK;
}
