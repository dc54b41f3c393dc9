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
    int forward_streams;         /* manifest's gpu.forward_streams (1..8): streams concurrent
                                    callers' forward passes may use at once on a GPU */
} pm_model_config;

typedef struct pm_shim_model pm_shim_model;

/* Device kinds after "auto" has been resolved. */
typedef enum pm_device_kind { PM_DEVICE_CPU = 0, PM_DEVICE_CUDA = 1 } pm_device_kind;

/* CUDA devices visible to this build (0 when Torch has no CUDA). */
pm_code pm_shim_cuda_device_count(int *count, char *err, size_t errcap);

/* Sets torch's intra-op thread count (process-wide in torch). n > 0. */
void pm_shim_set_cpu_threads(int n);

/* How the model runs on its device. Resolved by lib/ (no -1 "auto" reaches here
 * except where noted). */
typedef struct pm_shim_options {
    pm_precision precision; /* FP32/FP16/BF16; never AUTO */
    int cuda_graph;         /* CUDA only: 1 capture the forward pass once warm and replay it;
                               -1 try, and run eagerly if the model cannot be captured */
    int channels_last;      /* 1: weights and input in NHWC memory order (conv nets on GPUs);
                               -1: decided by pm_shim_configure from the manifest's hint
                               (on a CUDA device only) */
    int jit_optimize;       /* 1: TorchScript's profiling executor may re-optimise the graph
                               (it does so on an early call: warm-up absorbs it); 0: it runs
                               the graph as loaded, with no such stall */
    int max_batch;          /* concurrent inferences gathered into one forward pass, at most;
                               1: one at a time; -1 (auto): see pm_shim_prepare_batches */
    int batch_wait_us;      /* how long a pass may wait for its batch to fill; 0: never */
    int freeze;             /* 1: freeze the module in pm_shim_configure (weights become graph
                               constants, BatchNorm folds into convolutions); 0: no */
    int device_cache_mb;    /* CUDA: after a call larger than the model input, cached device
                               memory beyond the warm footprint + this many MiB is released */
    int forward_streams;    /* CUDA, one image a pass: batch-1 forward passes may run on this
                               many streams at once (1..8), each replaying its own CUDA graph;
                               -1: the manifest's hint, decided by pm_shim_configure; an
                               uncapturable model runs on one */
} pm_shim_options;

/* Loads the TorchScript archive at path straight onto the device, in eval mode,
 * converted to opts->precision. The archive's extra file "petmatte.json", if
 * present, is returned as a malloc'd NUL-terminated string in *manifest_json (NULL
 * when absent); the caller frees it.
 * Errors: PM_ERR_IO (unreadable), PM_ERR_MODEL (not TorchScript, truncated),
 * PM_ERR_DEVICE, PM_ERR_DEVICE_OUT_OF_MEMORY, PM_ERR_UNSUPPORTED (precision on device). */
pm_code pm_shim_load(const char *path, pm_device_kind kind, int device_index, const pm_shim_options *opts,
                     pm_shim_model **out, char **manifest_json, char *err, size_t errcap);

/* Sets the pre/post-processing the model needs. Call once, before any inference. */
pm_code pm_shim_configure(pm_shim_model *model, const pm_model_config *config, char *err, size_t errcap);

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

/* After the warm-up inferences: readies batching. With max_batch > 1 it checks on
 * two warm-up images that the model treats the images of a batch independently
 * (PM_ERR_UNSUPPORTED if not), then runs (and on CUDA captures) every batch size it
 * will use. Auto (-1) means 1 on every device: batching costs warm-up time and
 * device memory (docs/benchmarks.md), so it is the host's choice. *ms gets the time. */
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

/* Inferences the model needs before a call runs at warm latency, for its device and
 * options: 3 on CUDA (two eager runs for cuDNN's autotuning and lazy kernel loading,
 * then the run that captures the CUDA graph; 4 with jit_optimize, whose profiling
 * executor needs a third eager run before the capture); on the CPU 1, whose first forward does
 * all the one-time work (thread pool, oneDNN primitives, allocator), or 3 with
 * jit_optimize (the profiling executor's runs and its re-optimisation). */
int pm_shim_warmup_runs(const pm_shim_model *model);

/* 1 once forward passes replay a captured CUDA graph. */
int pm_shim_uses_cuda_graph(const pm_shim_model *model);

/* "cpu" or "cuda:0 NVIDIA H100 80GB HBM3". */
void pm_shim_device_description(const pm_shim_model *model, char *buf, size_t cap);

/* CUDA memory held by the process's allocator on this model's device; 0 on CPU. */
uint64_t pm_shim_device_memory(const pm_shim_model *model);

/* 1 when the model runs on a CUDA device (0 on CPU or for NULL). */
int pm_shim_is_cuda(const pm_shim_model *model);

/* Clean edges on the model's device: lib/foreground.c's method (Germer et al. 2020,
 * see lib/foreground.h and docs/clean-edges.md) with skip_flat = 0, as tensor ops;
 * small pyramid levels (up to 65,536 pixels) run on the host. Same arguments and
 * output as pm_estimate_foreground: rgba is height rows of width*4 bytes (the 4th
 * ignored), alpha height rows of width bytes, rgb_out height rows of width*3 bytes;
 * opaque pixels get their input colour exactly. The result matches the C version
 * up to float rounding (a byte or so at a few pixels) and is the same on every run
 * on one device. Uses only the model's device, not its module: it runs concurrently
 * with inferences (on CUDA on a pool stream of its own) and takes no lock.
 * Errors: PM_ERR_INVALID_ARGUMENT, PM_ERR_DEVICE_OUT_OF_MEMORY, PM_ERR_NO_MEMORY,
 * PM_ERR_DEVICE (any other torch error). */
pm_code pm_shim_estimate_foreground(pm_shim_model *model, const uint8_t *rgba, const uint8_t *alpha, int width,
                                    int height, uint8_t *rgb_out, char *err, size_t errcap);

void pm_shim_free(pm_shim_model *model);

#ifdef __cplusplus
}
#endif

#endif /* PETMATTE_SHIM_H */
