/*
 * shim.h - the internal C interface between lib/ (C11) and shim/ (C++, libtorch).
 *
 * Not installed, not exported. Every function catches all C++ exceptions and turns
 * them into a pm_code plus a message written to err[errcap] (always NUL-terminated).
 * Nothing here sleeps, retries or reads the environment.
 */
#ifndef PETMATTE_SHIM_H
#define PETMATTE_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include "petmatte.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the model expects and returns; lib/manifest.c fills it from petmatte.json
 * (or from the InSPyReNet defaults when the archive has none). */
typedef enum pm_output_activation {
    PM_ACTIVATION_PROBABILITY = 0, /* model output already in [0,1] */
    PM_ACTIVATION_LOGIT = 1        /* apply a sigmoid */
} pm_output_activation;

/* Most streams one model's forward passes may use at once (pm_params.forward_streams
 * and the manifest's gpu.forward_streams). */
#define PM_MAX_FORWARD_STREAMS 8

typedef struct pm_model_config {
    char name[64];
    int input_width, input_height;
    float mean[3], std[3];       /* applied to RGB in [0,1]: (x - mean) / std */
    int activation;              /* pm_output_activation */
    int minmax_normalize;        /* 1: (p - min) / (max - min + 1e-8) after activation */
    int align_corners;           /* bilinear upsampling back to the image size */
    int random_weights;
    int channels_last;           /* manifest's gpu.channels_last: NHWC runs faster on a GPU */
    int forward_streams;         /* manifest's gpu.forward_streams: 1..PM_MAX_FORWARD_STREAMS */
    int graph_safe;              /* manifest's gpu.graph_safe: control flow never depends on values */
    int cpu_bf16;                /* manifest's cpu.bf16: checked to run in bf16 on a CPU */
} pm_model_config;

typedef struct pm_shim_model pm_shim_model;

/* Device kinds after "auto" has been resolved. */
typedef enum pm_device_kind { PM_DEVICE_CPU = 0, PM_DEVICE_CUDA = 1 } pm_device_kind;

/* How forward passes use CUDA graphs. */
typedef enum pm_graph_mode {
    PM_GRAPH_OFF = 0,     /* always eager */
    PM_GRAPH_TRY = 1,     /* capture once warm; stay eager when capture fails */
    PM_GRAPH_REQUIRE = 2  /* capture once warm; a failed capture fails warm-up */
} pm_graph_mode;

/* How the model runs, every value concrete: lib/ resolves each "auto" once. */
typedef struct pm_shim_options {
    int graph;           /* pm_graph_mode; PM_GRAPH_OFF on the CPU */
    int channels_last;   /* 0/1: weights and input in NHWC memory order */
    int jit_optimize;    /* 0/1: TorchScript's profiling executor may re-optimise the graph */
    int freeze;          /* 0/1: freeze the module (weights become constants, BatchNorm folds) */
    int max_batch;       /* 1..64: concurrent inferences gathered into one forward pass */
    int batch_wait_us;   /* 0..100000: how long a pass may wait for its batch to fill */
    int device_cache_mb; /* >= 0, CUDA: cached memory kept past the warm footprint after a large call */
    int forward_streams; /* 1..PM_MAX_FORWARD_STREAMS: CUDA streams for one-image passes; 1 on the CPU */
    int precision;       /* pm_precision the model runs in (never AUTO): the loaded one, or on the CPU
                            BF16 over an FP32 load (converted by pm_shim_configure) */
} pm_shim_options;

/* CUDA devices visible to this build (0 when Torch has no CUDA). */
pm_code pm_shim_cuda_device_count(int *count, char *err, size_t errcap);

/* Sets torch's intra-op thread count (process-wide in torch). n > 0. */
void pm_shim_set_cpu_threads(int n);

/* Loads the TorchScript archive at path straight onto the device, in eval mode,
 * converted to precision (FP32, FP16 or BF16; never AUTO). The archive's extra file
 * "petmatte.json", if present, is returned as a malloc'd NUL-terminated string in
 * *manifest_json (NULL when absent); the caller frees it.
 * Errors: PM_ERR_IO (unreadable), PM_ERR_MODEL (not TorchScript, truncated),
 * PM_ERR_DEVICE, PM_ERR_DEVICE_OUT_OF_MEMORY, PM_ERR_UNSUPPORTED (precision on device). */
pm_code pm_shim_load(const char *path, pm_device_kind kind, int device_index, pm_precision precision,
                     pm_shim_model **out, char **manifest_json, char *err, size_t errcap);

/* 1 when no branch, loop, raise or host read in the loaded model's forward pass
 * depends on tensor values (only on shapes and constants), so a CUDA graph replays
 * what the model computes; 0 otherwise. A fact about the file, on every device. */
int pm_shim_graph_safe(const pm_shim_model *model);

/* Applies the options and the pre/post-processing the model needs. Call once,
 * after pm_shim_load and before any inference. A precision other than the loaded
 * one converts the floating-point weights (the CPU: FP32 to BF16 only). */
pm_code pm_shim_configure(pm_shim_model *model, const pm_model_config *config, const pm_shim_options *opts,
                          char *err, size_t errcap);

/* One inference on an 8-bit image. Safe to call from several threads at once: the
 * forward pass itself is serialised inside (one at a time per model), the
 * resizing, normalising and matte work of other calls overlaps it.
 * pixels is height rows of width*channels bytes, `stride` bytes apart, channels 3 (RGB) or 4 (RGBA; alpha is ignored here).
 * Resizes to the model input (bilinear, antialiased), normalises, runs the model,
 * applies the activation / min-max rule, upsamples to width x height and writes one
 * byte a pixel (round(255 * matte)) to alpha_out, `width` bytes a row.
 * Checks the output's shape (N=1, one channel, at least 1x1) and that it is finite.
 * Errors: PM_ERR_INFERENCE, PM_ERR_MODEL (wrong shape/NaN), PM_ERR_DEVICE_OUT_OF_MEMORY. */
pm_code pm_shim_infer(pm_shim_model *model, const uint8_t *pixels, int width, int height,
                      size_t stride, int channels, uint8_t *alpha_out, char *err, size_t errcap);

/* One warm-up inference at the model's input size on deterministic synthetic data,
 * synchronised, so its wall time is the model's latency. *ms gets that time. */
pm_code pm_shim_warm_once(pm_shim_model *model, double *ms, char *err, size_t errcap);

/* After the warm-up inferences, with max_batch > 1: checks on two warm-up images
 * that the model treats the images of a batch independently (PM_ERR_UNSUPPORTED if
 * not), then runs (and on CUDA captures) every batch size it will use. *ms gets the
 * time. A no-op with max_batch 1. */
pm_code pm_shim_prepare_batches(pm_shim_model *model, double *ms, char *err, size_t errcap);

/* The batch limit in use (1 before pm_shim_prepare_batches) and the forward passes
 * run for pm_shim_infer calls so far (each serving 1..max_batch of them). */
int pm_shim_max_batch(const pm_shim_model *model);
uint64_t pm_shim_forward_passes(pm_shim_model *model);
/* 1 when the module was frozen (pm_shim_options.freeze). */
int pm_shim_frozen(const pm_shim_model *model);
/* Streams the forward passes run on at once: 1 + the extra CUDA graphs captured for
 * pm_shim_options.forward_streams (1 on the CPU, without a graph, or before warm-up). */
int pm_shim_forward_streams(const pm_shim_model *model);

/* Inferences the configured model needs before a call runs at warm latency: what
 * its device does once (autotuning, the graph's capture, the profiling executor's
 * runs) plus none to spare. At least 1. */
int pm_shim_warmup_runs(const pm_shim_model *model);

/* 1 once forward passes replay a captured CUDA graph. */
int pm_shim_uses_cuda_graph(const pm_shim_model *model);

/* "cpu" or "cuda:0 NVIDIA H100 80GB HBM3". */
void pm_shim_device_description(const pm_shim_model *model, char *buf, size_t cap);

/* CUDA memory held by the process's allocator on this model's device; 0 on CPU. */
uint64_t pm_shim_device_memory(const pm_shim_model *model);
uint64_t pm_shim_device_memory_peak(const pm_shim_model *model); /* the allocator's peak; 0 on CPU */

/* 1 when the model runs on a CUDA device (0 on CPU or for NULL). */
int pm_shim_is_cuda(const pm_shim_model *model);

/* Clean edges on the model's device. lib/foreground.c owns the method (Germer et al.
 * 2020, see docs/clean-edges.md): it plans the pyramid, runs its small levels on the
 * host and hands over the rest as a plan of concrete values, finest level last. */
typedef struct pm_fg_level {
    int width, height;     /* level size in pixels: 1..the image's width, 1..its height */
    int iterations;        /* red-black sweeps (a red and a black half-sweep each), >= 0 */
    const int32_t *x_full; /* width entries: the image column each column samples, 0..image width-1;
                              NULL with y_full: the level is the image itself, same size */
    const int32_t *y_full; /* height entries: the image row each row samples, 0..image height-1 */
    const int32_t *x_prev; /* width entries: the previous level's column each column starts from,
                              0..previous width-1 (level[0]'s previous level is the start) */
    const int32_t *y_prev; /* height entries: the previous level's row each row starts from */
} pm_fg_level;

typedef struct pm_fg_plan {
    int levels;                    /* levels on the device, >= 1; the last is width x height */
    const pm_fg_level *level;      /* `levels` entries, coarse to fine */
    int start_width, start_height; /* the last host level's size: 1..width, 1..height */
    const float *start_fb;         /* its result: start_height rows of start_width pixels, 6 floats
                                      each (F rgb, then B rgb), in [0, 1] */
    float regularization;          /* eps: smoothness weight between all neighbours, finite, > 0 */
    float gradient_weight;         /* omega: extra weight per unit of alpha difference, finite, >= 0 */
    int64_t band_pixels;           /* a level of more pixels is swept in bands of rows of about this
                                      many pixels (the same result, bounded memory); 0 = whole levels */
} pm_fg_plan;

/* Runs the plan's levels as tensor ops: each level samples the image at its maps,
 * starts from the previous level's F and B at its maps, and sweeps in red-black order
 * with every pixel's 2x2 solve. rgba is height rows of width*4 bytes (the 4th
 * ignored), alpha height rows of width bytes, rgb_out height rows of width*3 bytes:
 * the input colour where alpha is 255, else the finest level's F rounded to 8 bits.
 * The result matches the same levels on the host up to float rounding (a byte or so
 * at a few pixels) and is the same on every run on one device. Uses only the model's
 * device, not its module: it runs concurrently with inferences (on CUDA on a pool
 * stream of its own) and takes no lock.
 * Errors: PM_ERR_INVALID_ARGUMENT (a NULL pointer, a bad size, a plan value out of
 * range), PM_ERR_DEVICE_OUT_OF_MEMORY, PM_ERR_NO_MEMORY, PM_ERR_DEVICE (any other
 * torch error). */
pm_code pm_shim_estimate_foreground(pm_shim_model *model, const uint8_t *rgba, const uint8_t *alpha, int width,
                                    int height, const pm_fg_plan *plan, uint8_t *rgb_out, char *err, size_t errcap);

/* The background behind a composite, planned by lib/background.c in concrete values:
 * the shim builds it as tensor ops (and on a GPU blends the subject over it). */
typedef enum pm_backdrop_kind {
    PM_BACKDROP_BLUR = 1,  /* the photo (maybe at a reduced size), convolved with `kernel` */
    PM_BACKDROP_IMAGE = 2, /* image's crop rectangle resized to the frame */
    PM_BACKDROP_TINT = 3   /* the photo through a table per channel */
} pm_backdrop_kind;

typedef struct pm_backdrop {
    int kind;                         /* pm_backdrop_kind */
    /* BLUR: the photo averaged over areas down to blur_width x blur_height (1..its own size;
       its own size: no averaging), convolved with a normalised, symmetric kernel of `taps`
       weights (odd, 1..PM_BACKDROP_MAX_TAPS) along rows, then columns, the border pixels
       repeated outwards, then resized back bilinearly. */
    int taps;
    const float *kernel;
    int blur_width, blur_height;
    /* IMAGE: image_height rows of image_width*image_channels bytes (3 or 4; a 4th byte is
       ignored), image_stride apart; the crop rectangle, inside the image, is resized to the
       frame with bilinear filtering (antialiased where it shrinks). */
    const uint8_t *image;
    int image_width, image_height, image_channels;
    size_t image_stride;
    int crop_x, crop_y, crop_width, crop_height;
    /* TINT: 3 x 256 bytes: the background's red for each photo red, then green, then blue. */
    const uint8_t *tint_table;
} pm_backdrop;

#define PM_BACKDROP_MAX_TAPS 8191

/* The backdrop alone, rounded to 8 bits (floor(v + 0.5), clamped), into bg_out (tight
 * rows of width*3 bytes). photo: height rows of width*channels bytes (3 or 4, a 4th
 * ignored), stride apart. Runs on model's device (on CUDA on the call stream) or, for
 * a NULL model, on the CPU with torch's intra-op threads. Takes no lock.
 * Errors: PM_ERR_INVALID_ARGUMENT (NULL pointer, bad size or plan value),
 * PM_ERR_NO_MEMORY, PM_ERR_DEVICE_OUT_OF_MEMORY, PM_ERR_DEVICE (any other torch error). */
pm_code pm_shim_backdrop(pm_shim_model *model, const uint8_t *photo, size_t stride, int channels, int width,
                         int height, const pm_backdrop *backdrop, uint8_t *bg_out, char *err, size_t errcap);

/* The backdrop and the blend, all on the device: rgb_out (tight rows of width*3 bytes)
 * gets (a*F + (255-a)*B + 127) / 255 in whole numbers, B the backdrop as
 * pm_shim_backdrop makes it, a the final matte (height rows of width bytes), F the
 * subject's colours: fg (tight RGB, clean edges) or, when fg is NULL, the photo's.
 * The same bytes as pm_shim_backdrop followed by the host's integer blend. Same
 * arguments otherwise, and errors. */
pm_code pm_shim_compose(pm_shim_model *model, const uint8_t *photo, size_t stride, int channels,
                        const uint8_t *fg, const uint8_t *alpha, int width, int height,
                        const pm_backdrop *backdrop, uint8_t *rgb_out, char *err, size_t errcap);

void pm_shim_free(pm_shim_model *model);

#ifdef __cplusplus
}
#endif

#endif /* PETMATTE_SHIM_H */
