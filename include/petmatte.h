/*
 * petmatte.h - libpetmatte: an embeddable background remover.
 *
 * A C API over a TorchScript model that runs on exactly one device.
 *
 *   pm_open        cheap: validates parameters and the model file, touches no device
 *   pm_warmup      loads the model onto the chosen device and runs real inferences
 *                  until latency is stable (blocking, idempotent, single-flight)
 *   pm_warmup_start the same, on a thread the library owns; returns at once
 *   pm_status      non-blocking snapshot: state, progress, timings, device, last error
 *   pm_remove_bg   image in, cut-out out
 *   pm_close       frees everything (joins a background warm-up first)
 *
 * ABI rules: every struct the caller fills starts with `struct_size`; initialise it
 * with the matching *_init() macro so that a binary built against this header keeps
 * working against a later library that appended fields. Structs the library
 * allocates (pm_output) only ever grow at the end.
 *
 * The library never retries, sleeps, reads environment variables or falls back to
 * another device: it returns an error code and a message, and the host decides.
 */
#ifndef PETMATTE_H
#define PETMATTE_H

#include <stddef.h>
#include <stdint.h>

#define PETMATTE_VERSION_MAJOR 0
#define PETMATTE_VERSION_MINOR 1
#define PETMATTE_VERSION_PATCH 0
#define PETMATTE_VERSION_NUMBER \
    (PETMATTE_VERSION_MAJOR * 10000 + PETMATTE_VERSION_MINOR * 100 + PETMATTE_VERSION_PATCH)
#define PETMATTE_STRINGIFY_(x) #x
#define PETMATTE_STRINGIFY(x) PETMATTE_STRINGIFY_(x)
#define PETMATTE_VERSION_STRING                                                        \
    PETMATTE_STRINGIFY(PETMATTE_VERSION_MAJOR) "." PETMATTE_STRINGIFY(PETMATTE_VERSION_MINOR) \
    "." PETMATTE_STRINGIFY(PETMATTE_VERSION_PATCH)

#ifndef PM_API
#  if defined(_WIN32)
#    ifdef PM_BUILDING_LIBRARY
#      define PM_API __declspec(dllexport)
#    else
#      define PM_API __declspec(dllimport)
#    endif
#  elif defined(__GNUC__) && __GNUC__ >= 4
#    define PM_API __attribute__((visibility("default")))
#  else
#    define PM_API
#  endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ codes */

/* Every call returns one of these. Values are stable: new codes are appended. */
typedef enum pm_code {
    PM_OK = 0,
    PM_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, bad enum, bad size, bad device string */
    PM_ERR_NO_MEMORY = 2,        /* host allocation failed */
    PM_ERR_IO = 3,               /* model file missing or unreadable */
    PM_ERR_DEVICE = 4,           /* requested device not present or not usable */
    PM_ERR_MODEL = 5,            /* not TorchScript, truncated, bad manifest, wrong output */
    PM_ERR_DECODE = 6,           /* image bytes corrupt or in an unsupported format */
    PM_ERR_LIMIT = 7,            /* input over a configured limit (pixels, bytes) */
    PM_ERR_INFERENCE = 8,        /* the model failed while running */
    PM_ERR_DEVICE_OUT_OF_MEMORY = 9, /* the device ran out of memory; later calls may work */
    PM_ERR_UNSUPPORTED = 10,     /* valid request this build or device cannot do */
    PM_ERR_CANCELLED = 11,       /* warm-up stopped because the context is closing */
    PM_ERR_INTERNAL = 12         /* a bug: please report it with the message */
} pm_code;

/* A static English description of a code; never NULL. */
PM_API const char *pm_strerror(pm_code code);

/* ---------------------------------------------------------------- version */

PM_API const char *pm_version(void);          /* "0.1.0" */
PM_API unsigned pm_version_number(void);      /* PETMATTE_VERSION_NUMBER of the library */

/* ------------------------------------------------------------- parameters */

typedef enum pm_precision {
    PM_PRECISION_AUTO = 0, /* fp16 on CUDA, fp32 on CPU */
    PM_PRECISION_FP32 = 1,
    PM_PRECISION_FP16 = 2,
    PM_PRECISION_BF16 = 3
} pm_precision;

typedef struct pm_params {
    size_t struct_size;        /* sizeof(pm_params): set by pm_params_init() */
    const char *model_path;    /* TorchScript file; required. Copied by pm_open. */
    const char *device;        /* "auto" (default), "cpu" or "cuda:N". Copied by pm_open. */
    int precision;             /* pm_precision; default PM_PRECISION_AUTO */
    int input_size;            /* square model input when the model has no manifest;
                                  0 = the manifest's, else 1024 */
    uint64_t max_pixels;       /* largest accepted image, width*height; default 100e6 */
    uint64_t max_encoded_bytes;/* largest accepted encoded image; default 256 MiB */
    int cpu_threads;           /* torch intra-op threads on CPU; 0 = leave torch's setting */
    int warmup_min_runs;       /* inferences warm-up always runs; 0 = auto (default): what
                                  the device needs: 3 on CUDA (autotuning, then the CUDA
                                  graph's capture; 4 with jit_optimize on), 1 on the CPU
                                  (its first forward does all the one-time work; each more
                                  is a whole inference; 3 with jit_optimize on). A lower value still runs that
                                  many, unless warmup_max_runs is lower */
    int warmup_max_runs;       /* give up waiting for stability after this many; default 20 */
    double warmup_tolerance;   /* stable when the last 3 runs (or all, when warm-up must
                                  make fewer: one CPU run is stable at once) are within
                                  this fraction of their median; default 0.15 */
    /* How the model runs. -1 = auto (the default): what measured fastest for the
     * device (docs/benchmarks.md); 0 = off; 1 = on. */
    int cuda_graph;            /* CUDA: capture the forward pass in warm-up, replay it after;
                                  auto = on, running eagerly if the model cannot be captured */
    int channels_last;         /* NHWC weights and input (conv nets on GPUs); auto = on for CUDA
                                  when the model's manifest says gpu.channels_last, else off
                                  (a model that .view()s activations breaks under NHWC) */
    int jit_optimize;          /* let TorchScript's profiling executor re-optimise the graph
                                  (on an early call; warm-up absorbs it); auto = off */
    /* Concurrent callers: pm_remove_bg calls that reach the model while a forward pass
     * runs are gathered into the next pass, up to max_batch images at once. A lone
     * caller never waits for company. Warm-up checks that the model treats the images
     * of a batch independently and readies every batch size (one CUDA graph each). */
    int max_batch;             /* -1 = auto (default): 1 for now on every device, since each
                                  batch size costs warm-up time and device memory
                                  (docs/benchmarks.md); 1 = one image a pass; at most 64.
                                  A value > 1 for a model that mixes the images of a batch
                                  makes warm-up fail with PM_ERR_UNSUPPORTED. On CUDA a
                                  pass lasts until the GPU finishes it, so callers queued
                                  behind it share the next one */
    int batch_wait_us;         /* how long a pass may wait for more callers to fill its
                                  batch, in microseconds; 0 (default) = never waits;
                                  at most 100000 */
    int freeze;                /* -1 auto, 0, 1: freeze the loaded model in warm-up, as
                                  torch.jit.freeze does: weights become constants of the
                                  graph and BatchNorm folds into the convolution before it
                                  (on CUDA also torch.jit.optimize_for_inference's fusions).
                                  Costs warm-up time. auto = off: on an H200 it made IS-Net
                                  14 % faster (25 % more images/s) but READY 0.9 s later,
                                  and InSPyReNet no faster and READY 14 s later
                                  (docs/benchmarks.md); long-lived hosts of conv nets may
                                  want 1. 1 on a model that cannot be frozen makes warm-up
                                  fail with PM_ERR_UNSUPPORTED */
    int device_cache_mb;       /* CUDA: device memory the allocator may keep cached beyond the
                                  context's warm footprint, in MiB. Images larger than the
                                  model input are resized, matted and composed on the GPU,
                                  all on one stream whose cache the next large call reuses;
                                  when a call that worked at full resolution leaves more
                                  cached than this (concurrent 12 MP calls each hold their
                                  own working set), the unused blocks go back to the driver
                                  (Torch's emptyCache: every context's unused blocks in the
                                  process; a cudaFree, which waits for the device; the next
                                  large call allocates again). -1 = auto (default): 4096; 0 =
                                  after every such call; at most 1048576 (in effect never) */
    int forward_streams;       /* CUDA, one image a pass: the forward passes of concurrent
                                  callers run on up to this many streams at once, each
                                  replaying a CUDA graph of its own (the same shapes: no more
                                  autotuning, but each graph holds its own activations). A
                                  small model leaves a GPU part idle at batch 1: IS-Net on an
                                  H100 went from 4.62 to 3.53 ms an image with 4 callers and 3
                                  streams, for 372 MiB more memory; a lone caller waits for no
                                  company but measured ~0.5 ms slower (docs/benchmarks.md). -1 =
                                  auto (default): the manifest's gpu.forward_streams, else 1;
                                  1..8. Needs CUDA graphs (one stream when the model cannot
                                  be captured); ignored on the CPU. Batching and streams are
                                  two ways to serve concurrent callers: max_batch > 1 and
                                  forward_streams > 1 together are refused, and an explicit
                                  max_batch > 1 makes auto streams 1 */
} pm_params;

PM_API void pm_params_init_sized(pm_params *params, size_t struct_size);
#define pm_params_init(p) pm_params_init_sized((p), sizeof(pm_params))

/* ---------------------------------------------------------------- context */

typedef struct pm_ctx pm_ctx;

/* Validates params (model file exists and is readable, device string parses, sizes
 * sane) and records the device choice. Touches no device; returns in milliseconds.
 * On failure *out is NULL and pm_errmsg(NULL) says why. */
PM_API pm_code pm_open(const pm_params *params, pm_ctx **out);

/* Loads the model onto the chosen device and warms it. Blocking; a READY context
 * returns PM_OK at once; threads that call it while a warm-up runs wait for that
 * warm-up and all get its result. After a failure the state is FAILED and the next
 * call tries again, once, immediately.
 * On a GPU this changes two process-wide Torch settings: cuDNN autotuning on, and,
 * before the first GPU model of the process, the caching allocator's
 * expandable_segments (less memory held), unless the environment sets
 * PYTORCH_CUDA_ALLOC_CONF or PYTORCH_ALLOC_CONF. */
PM_API pm_code pm_warmup(pm_ctx *ctx);

/* Starts pm_warmup on a thread the library owns and returns at once. Watch it with
 * pm_status. Calling it while a warm-up runs, or on a READY context, does nothing. */
PM_API pm_code pm_warmup_start(pm_ctx *ctx);

/* Joins any background warm-up, then frees everything. NULL is a no-op. No other
 * thread may be inside a call on ctx once pm_close starts. */
PM_API void pm_close(pm_ctx *ctx);

/* The message of the most recent failure of the calling thread on ctx (or of
 * pm_open when ctx is NULL), else the context's most recent failure. Never NULL;
 * valid until this thread's next call into the library. */
PM_API const char *pm_errmsg(const pm_ctx *ctx);

/* ----------------------------------------------------------------- status */

typedef enum pm_state {
    PM_STATE_COLD = 0,    /* opened, nothing loaded */
    PM_STATE_LOADING = 1, /* reading the model onto the device */
    PM_STATE_WARMING = 2, /* running warm-up inferences */
    PM_STATE_READY = 3,
    PM_STATE_FAILED = 4   /* last warm-up failed: see last_error_* */
} pm_state;

typedef struct pm_status {
    size_t struct_size;        /* sizeof(pm_status): set by pm_status_init() */
    int state;                 /* pm_state */
    double progress;           /* 0..1 through loading and warming; 1 when READY */
    double open_ms;            /* time pm_open took */
    double load_ms;            /* model file onto the device; 0 until loaded */
    double warmup_ms;          /* warm-up inferences; 0 until READY */
    int warmup_runs;           /* warm-up inferences run */
    double last_warmup_run_ms; /* latency of the last warm-up inference */
    double ready_unix;         /* when it became READY, seconds since the epoch; 0 before */
    char device[128];          /* device in use, e.g. "cuda:0 NVIDIA H100 80GB HBM3" or "cpu";
                                  before loading: the resolved choice */
    int precision;             /* pm_precision actually used (resolved from AUTO) */
    char model_name[64];       /* from the manifest; the file name without one */
    int input_width, input_height; /* model input size; 0 until loaded */
    int random_weights;        /* 1 when the manifest says the weights are random */
    uint64_t images_processed; /* successful pm_remove_bg calls */
    uint64_t device_memory_bytes; /* CUDA memory held by this context; 0 on CPU */
    int last_error_code;       /* pm_code of the context's most recent failure, PM_OK if none */
    char last_error[256];      /* its message, "" if none */
    int cuda_graph;            /* 1 when inferences replay a captured CUDA graph */
    int max_batch;             /* images one forward pass may serve (1 = no batching); 0 until READY */
    uint64_t forward_passes;   /* forward passes run for pm_remove_bg calls since READY;
                                  images_processed / forward_passes ~ the mean batch */
    int frozen;                /* 1 when the model runs frozen (pm_params.freeze) */
    int forward_streams;       /* streams forward passes run on at once (pm_params.forward_streams;
                                  1 = one pass at a time); 0 until READY */
} pm_status;

PM_API void pm_status_init_sized(pm_status *status, size_t struct_size);
#define pm_status_init(s) pm_status_init_sized((s), sizeof(pm_status))

/* Never blocks on a running warm-up. */
PM_API pm_code pm_get_status(pm_ctx *ctx, pm_status *status);

PM_API const char *pm_state_name(pm_state state);         /* "cold", "loading", ... */
PM_API const char *pm_precision_name(pm_precision precision); /* "auto", "fp32", ... */

/* ------------------------------------------------------------ remove_bg */

typedef enum pm_pixel_format {
    PM_FORMAT_ENCODED = 0, /* JPEG, PNG, BMP, TGA, GIF (first frame), PSD, PNM, HDR... */
    PM_FORMAT_RGB = 1,     /* raw 8-bit pixels, rows `stride` bytes apart */
    PM_FORMAT_RGBA = 2,
    PM_FORMAT_BGR = 3,
    PM_FORMAT_BGRA = 4,
    PM_FORMAT_GRAY = 5     /* one byte a pixel: masks out; gray photos in */
} pm_pixel_format;

/* The input of pm_remove_bg: encoded bytes, or raw pixels. data is read only during
 * the call and never written; raw RGB and RGBA rows are read in place (no copy), so
 * keep them unchanged until the call returns. */
typedef struct pm_image {
    size_t struct_size; /* sizeof(pm_image): set by pm_image_init() */
    int format;         /* pm_pixel_format */
    const void *data;
    size_t size;        /* bytes readable at data */
    int width, height;  /* raw formats only */
    size_t stride;      /* raw formats only: bytes between rows; 0 = width * channels */
} pm_image;

PM_API void pm_image_init_sized(pm_image *image, size_t struct_size);
#define pm_image_init(i) pm_image_init_sized((i), sizeof(pm_image))

typedef enum pm_output_kind {
    PM_OUTPUT_RGBA = 0,      /* the image with alpha = matte */
    PM_OUTPUT_MASK = 1,      /* the matte alone, 8-bit gray */
    PM_OUTPUT_COMPOSITE = 2  /* the subject over a solid colour, RGB */
} pm_output_kind;

typedef enum pm_encoding {
    PM_ENCODING_RAW = 0,     /* pixels, rows stride bytes apart */
    PM_ENCODING_PNG = 1
} pm_encoding;

typedef struct pm_remove_options {
    size_t struct_size;      /* sizeof(pm_remove_options): set by pm_remove_options_init() */
    int output;              /* pm_output_kind; default PM_OUTPUT_RGBA */
    int encoding;            /* pm_encoding; default PM_ENCODING_RAW */
    uint32_t background_rgb; /* 0xRRGGBB for PM_OUTPUT_COMPOSITE; default 0xFFFFFF */
    float threshold;         /* < 0: soft matte (default); 0..1: alpha = matte >= round(255 t) ? 255 : 0 */
    int invert;              /* 1: alpha = 255 - matte (after threshold) */
    int apply_exif_orientation; /* 1 (default): rotate JPEGs upright first */
    int keep_input_alpha;    /* 1 (default): multiply the matte by the input's alpha */
    int clean_edges;         /* 1: re-estimate colours at soft edges so the old background
                                does not show through fur (RGBA and COMPOSITE); default 0 */
} pm_remove_options;

PM_API void pm_remove_options_init_sized(pm_remove_options *options, size_t struct_size);
#define pm_remove_options_init(o) pm_remove_options_init_sized((o), sizeof(pm_remove_options))

/* Allocated by the library; free with pm_output_free. Only grows at the end. */
typedef struct pm_output {
    int encoding;          /* pm_encoding */
    int format;            /* pm_pixel_format of the pixels (RGBA, GRAY or RGB) */
    int width, height;     /* after EXIF orientation */
    size_t stride;         /* RAW: bytes between rows; PNG: 0 */
    unsigned char *data;
    size_t size;           /* bytes at data */
} pm_output;

/* Removes the background. options may be NULL for the defaults. Warms the context
 * first when it is not READY. Thread-safe: decoding and encoding run in the calling
 * thread, outside the model lock. On failure *out is NULL. */
PM_API pm_code pm_remove_bg(pm_ctx *ctx, const pm_image *input,
                            const pm_remove_options *options, pm_output **out);

PM_API void pm_output_free(pm_output *output);

/* Number of CUDA devices this build can see (0 on CPU-only builds); initialises
 * the CUDA driver on first use. */
PM_API pm_code pm_cuda_device_count(int *count);

#ifdef __cplusplus
}
#endif

#endif /* PETMATTE_H */
