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
 *   pm_tune_set    [EXPERIMENTAL] device tuning by key, before warm-up
 *   pm_remove_bg   image in, cut-out out
 *   pm_close       frees everything (joins a background warm-up first)
 *
 * ABI rules: every struct the caller fills starts with `struct_size`; initialise it
 * with the matching *_init() macro so that a binary built against this header keeps
 * working against a later library that appended fields. Such structs have no tail
 * padding, so struct_size names exactly the fields a caller has. Structs the library
 * allocates (pm_output) only ever grow at the end. Tuning that may change between
 * versions is set by key (pm_tune_set), never through a struct field.
 *
 * The library never retries, sleeps, reads environment variables or falls back to
 * another device: it returns an error code and a message, and the host decides.
 */
#ifndef PETMATTE_H
#define PETMATTE_H

#include <stddef.h>
#include <stdint.h>

#define PETMATTE_VERSION_MAJOR 0
#define PETMATTE_VERSION_MINOR 2
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
    PM_ERR_INTERNAL = 12,        /* a bug: please report it with the message */
    PM_ERR_STATE = 13            /* the call is not valid in the context's current state */
} pm_code;

/* A static English description of a code; never NULL. */
PM_API const char *pm_strerror(pm_code code);

/* ---------------------------------------------------------------- version */

PM_API const char *pm_version(void);          /* PETMATTE_VERSION_STRING of the library, e.g. "0.2.0" */
PM_API unsigned pm_version_number(void);      /* PETMATTE_VERSION_NUMBER of the library */

/* ------------------------------------------------------------- parameters */

typedef enum pm_precision {
    PM_PRECISION_AUTO = 0, /* fp16 on CUDA; on the CPU bf16 where it has AMX-BF16, the model
                              runs channels_last (PM_TUNE_CHANNELS_LAST) and its manifest
                              sets cpu.bf16, else fp32 */
    PM_PRECISION_FP32 = 1,
    PM_PRECISION_FP16 = 2, /* CUDA only */
    PM_PRECISION_BF16 = 3
} pm_precision;

/* What a host decides when it opens a context. Tuning of how the model runs on its
 * device is not here: see pm_tune_set. Every field is 4 or 8 bytes and the struct
 * has no tail padding, so each appended field grows sizeof(pm_params). */
typedef struct pm_params {
    size_t struct_size;         /* sizeof(pm_params): set by pm_params_init() */
    const char *model_path;     /* TorchScript file; required; copied by pm_open */
    const char *device;         /* "auto" (default: cuda:0 if any, else cpu), "cpu", "cuda" or "cuda:N"; copied */
    int precision;              /* pm_precision; default PM_PRECISION_AUTO */
    int input_size;             /* square model input for a file without a manifest: 8..8192;
                                   0 (default) = the manifest's, else 1024 */
    uint64_t max_pixels;        /* largest accepted image, width * height, >= 1; default 100,000,000 */
    uint64_t max_encoded_bytes; /* largest accepted encoded image, >= 1; default 256 MiB */
    int cpu_threads;            /* Torch intra-op threads (process-wide): 1..1024; 0 (default) = one a
                                   physical core this process may run on */
    int max_batch;              /* concurrent pm_remove_bg calls served by one forward pass, at most:
                                   1..64; default 1. Above 1, warm-up readies every batch size and
                                   fails with PM_ERR_UNSUPPORTED for a model that mixes the images
                                   of a batch. A lone caller never waits for company */
} pm_params;

PM_API void pm_params_init_sized(pm_params *params, size_t struct_size);
#define pm_params_init(p) pm_params_init_sized((p), sizeof(pm_params))

/* ---------------------------------------------------------------- context */

typedef struct pm_ctx pm_ctx;

/* Validates params (model file exists and is a readable regular file, device string
 * parses, ranges) and records the device choice. Touches no device; returns in
 * milliseconds. On failure *out is NULL and pm_errmsg(NULL) says why. */
PM_API pm_code pm_open(const pm_params *params, pm_ctx **out);

/* Loads the model onto the chosen device and runs real inferences until latency is
 * stable. Blocking; a READY context returns PM_OK at once, unless pm_remove_bg loaded
 * it without warm-up inferences (the CPU): those run now, the state staying READY.
 * Threads that call it while a warm-up runs wait for that warm-up and all get its result. After a failure the
 * state is FAILED and the next call tries again, once, immediately.
 * On a GPU this changes two process-wide Torch settings: cuDNN autotuning on, and,
 * before the first GPU model of the process, the caching allocator's
 * expandable_segments, unless the environment sets PYTORCH_CUDA_ALLOC_CONF or
 * PYTORCH_ALLOC_CONF. */
PM_API pm_code pm_warmup(pm_ctx *ctx);

/* Starts pm_warmup on a thread the library owns and returns at once; watch it with
 * pm_status. Calling it while a warm-up runs, or on a warmed READY context, does nothing. */
PM_API pm_code pm_warmup_start(pm_ctx *ctx);

/* Joins any background warm-up, then frees everything. NULL is a no-op. No other
 * thread may be inside a call on ctx once pm_close starts. */
PM_API void pm_close(pm_ctx *ctx);

/* The message of the most recent failure of the calling thread on ctx (or of
 * pm_open when ctx is NULL), else the context's most recent failure. Never NULL;
 * valid until this thread's next call into the library. */
PM_API const char *pm_errmsg(const pm_ctx *ctx);

/* ----------------------------------------------------------------- tuning */

/* [EXPERIMENTAL] How the model runs on its device, set by key on an open context
 * (as TurboJPEG's tj3Set or zstd's advanced parameters). Not stable: a key may be
 * retired in a later version; setting a retired key then returns PM_OK and changes
 * nothing, and getting it returns its last default. Every key's default is right
 * for most hosts; -1 means auto: the library decides once, at warm-up, from the
 * device and the model's manifest. */
typedef enum pm_tune {
    PM_TUNE_WARMUP_MIN_RUNS = 1,  /* inferences warm-up always runs: 0..1000; 0 (default) = what the
                                     device needs (the CUDA graph's capture included) */
    PM_TUNE_WARMUP_MAX_RUNS = 2,  /* stop waiting for stable latency after this many: 1..1000; default 20 */
    PM_TUNE_WARMUP_TOLERANCE_PCT = 3, /* stable: the last 3 runs lie within this percentage of their
                                     median: 1..1000; default 15 */
    PM_TUNE_CUDA_GRAPH = 4,       /* CUDA: capture the forward pass once warm and replay it: -1 auto
                                     (default: on for a model whose control flow does not depend on
                                     tensor values, eager if capture fails), 0 off, 1 required */
    PM_TUNE_CHANNELS_LAST = 5,    /* NHWC weights and input: -1 auto (default: the manifest's
                                     gpu.channels_last, on CUDA and on the CPU), 0, 1 */
    PM_TUNE_JIT_OPTIMIZE = 6,     /* TorchScript's profiling executor may re-optimise the graph:
                                     -1 auto (default: off), 0, 1 */
    PM_TUNE_FREEZE = 7,           /* freeze the module in warm-up (weights become constants,
                                     BatchNorm folds): -1 auto (default: off), 0, 1 */
    PM_TUNE_BATCH_WAIT_US = 8,    /* with max_batch > 1: how long a pass may wait for its batch to
                                     fill, in microseconds: 0..100000; default 0 (never waits) */
    PM_TUNE_DEVICE_CACHE_MB = 9,  /* CUDA: cached device memory kept beyond the warm footprint after
                                     a call larger than the model input, in MiB: 0..1048576;
                                     -1 auto (default: 384) */
    PM_TUNE_FORWARD_STREAMS = 10  /* CUDA, max_batch 1: concurrent one-image passes run on up to this
                                     many streams: 1..8; -1 auto (default: the manifest's
                                     gpu.forward_streams, else 1) */
} pm_tune;

/* Sets a key before warm-up: on a COLD or FAILED context. PM_ERR_INVALID_ARGUMENT
 * for an unknown key or a value outside its range, PM_ERR_STATE while a warm-up runs
 * or once READY. */
PM_API pm_code pm_tune_set(pm_ctx *ctx, pm_tune key, int value);

/* The key's value: as set (or its default) before READY; once READY, the value in
 * use, with auto resolved. */
PM_API pm_code pm_tune_get(pm_ctx *ctx, pm_tune key, int *value);

/* "warmup_min_runs", "cuda_graph", ...: the key's name in lower case; NULL for an
 * unknown key. */
PM_API const char *pm_tune_name(pm_tune key);

/* ----------------------------------------------------------------- status */

typedef enum pm_state {
    PM_STATE_COLD = 0,    /* opened, nothing loaded */
    PM_STATE_LOADING = 1, /* reading the model onto the device */
    PM_STATE_WARMING = 2, /* running warm-up inferences */
    PM_STATE_READY = 3,
    PM_STATE_FAILED = 4   /* last warm-up failed: see last_error_* */
} pm_state;

/* A snapshot of a context, filled by pm_status. Every field is 4 or 8 bytes (or a
 * char array of a multiple of 8) and the struct has no tail padding, so a caller's
 * struct_size names exactly the fields it has; the library writes no byte beyond it. */
typedef struct pm_status_info {
    size_t struct_size;          /* sizeof(pm_status_info): set by pm_status_info_init() */
    int state;                   /* pm_state */
    int precision;               /* pm_precision in use (AUTO resolved once loading begins) */
    double progress;             /* 0..1 through loading and warming; 1 when READY */
    double open_ms;              /* time pm_open took */
    double load_ms;              /* model file onto the device; 0 until loaded */
    double warmup_ms;            /* warm-up inferences; 0 until READY */
    double last_warmup_run_ms;   /* latency of the last warm-up inference */
    double ready_unix;           /* when it became READY, seconds since the epoch; 0 before */
    int warmup_runs;             /* warm-up inferences run */
    int random_weights;          /* 1 when the manifest says the weights are random */
    int input_width;             /* model input size; 0 until loaded */
    int input_height;
    uint64_t images_processed;   /* successful pm_remove_bg calls */
    uint64_t forward_passes;     /* forward passes run for pm_remove_bg calls since READY */
    uint64_t device_memory_bytes;/* CUDA memory held by the process's allocator on this device; 0 on CPU */
    int last_error_code;         /* pm_code of the context's most recent failure; PM_OK if none */
    int max_batch;               /* images one forward pass may serve; 0 until READY */
    int forward_streams;         /* streams forward passes run on at once; 0 until READY */
    int cuda_graph;              /* 1 when forward passes replay a captured CUDA graph, 0 eager */
    int graph_safe;              /* 1 when the model's control flow does not depend on tensor values
                                    (or its manifest says gpu.graph_safe), so a CUDA graph computes
                                    what the model does; 0 when it branches or raises on values
                                    and runs eagerly; -1 until loaded */
    int frozen;                  /* 1 when the module runs frozen (PM_TUNE_FREEZE) */
    char device[128];            /* device in use, e.g. "cuda:0 NVIDIA H100 80GB HBM3" or "cpu";
                                    before loading: the request */
    char model_name[64];         /* the manifest's name; else the file name */
    char last_error[256];        /* the most recent failure's message; "" if none */
    uint64_t device_memory_peak_bytes; /* the most CUDA memory the process's allocator has held on
                                          this device at once since the process started using it
                                          (its peak statistic); 0 on CPU */
} pm_status_info;

PM_API void pm_status_info_init_sized(pm_status_info *info, size_t struct_size);
#define pm_status_info_init(s) pm_status_info_init_sized((s), sizeof(pm_status_info))

/* Fills *info; never waits for a running warm-up. */
PM_API pm_code pm_status(pm_ctx *ctx, pm_status_info *info);

PM_API const char *pm_state_name(pm_state state);             /* "cold", "loading", ...; "unknown" */
PM_API const char *pm_precision_name(pm_precision precision); /* "auto", "fp32", ...; "unknown" */

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
    PM_OUTPUT_COMPOSITE = 2, /* the subject over a background (options.background), RGB */
    PM_OUTPUT_OVERLAY = 3    /* the whole photo, its background tinted with overlay_rgb at
                                overlay_opacity, RGB: for reviewing a matte */
} pm_output_kind;

/* What PM_OUTPUT_COMPOSITE puts behind the subject. */
typedef enum pm_background {
    PM_BACKGROUND_COLOR = 0, /* background_rgb, a solid colour */
    PM_BACKGROUND_BLUR = 1,  /* the photo itself, Gaussian-blurred with blur_radius */
    PM_BACKGROUND_IMAGE = 2  /* background_image, scaled to cover the frame (aspect ratio kept,
                                centred, the overhang cropped) */
} pm_background;

typedef enum pm_encoding {
    PM_ENCODING_RAW = 0,     /* pixels, rows stride bytes apart */
    PM_ENCODING_PNG = 1,     /* 8-bit PNG: gray (MASK), RGB (COMPOSITE, OVERLAY) or RGBA; exact pixels */
    PM_ENCODING_WEBP_LOSSLESS = 2, /* lossless WebP: every pixel with alpha > 0 exact (the colour
                                      of fully transparent ones is not kept); a MASK is stored
                                      as gray RGB. At most 16383 pixels a side */
    PM_ENCODING_WEBP = 3     /* lossy WebP at webp_quality, alpha kept exactly; a MASK is stored
                                as gray RGB (approximate). At most 16383 pixels a side */
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
                                does not show through fur (RGBA, COMPOSITE and OVERLAY); default 0 */
    int png_level;           /* PNG compression effort: 0 (stored) .. 12 (smallest, slowest);
                                -1 (default) = 1, the fastest that compresses */
    int webp_quality;        /* PM_ENCODING_WEBP quality: 0..100; default 90 */
    int background;          /* pm_background behind a PM_OUTPUT_COMPOSITE; default PM_BACKGROUND_COLOR */
    float blur_radius;       /* PM_BACKGROUND_BLUR: the Gaussian's standard deviation in pixels of the
                                upright image, 0..256; 0 (default) = 1% of its longer side, at least 2 */
    const pm_image *background_image; /* PM_BACKGROUND_IMAGE: the picture (encoded or raw pixels,
                                under the context's max_pixels and max_encoded_bytes; JPEGs are
                                turned upright when apply_exif_orientation is set; its alpha is
                                ignored); read only during the call; default NULL */
    uint32_t overlay_rgb;    /* 0xRRGGBB tint of PM_OUTPUT_OVERLAY; default 0x78FF9B (green) */
    float overlay_opacity;   /* PM_OUTPUT_OVERLAY: the tint's weight over the background, 0..1;
                                default 0.5 */
} pm_remove_options;

PM_API void pm_remove_options_init_sized(pm_remove_options *options, size_t struct_size);
#define pm_remove_options_init(o) pm_remove_options_init_sized((o), sizeof(pm_remove_options))

/* Allocated by the library; free with pm_output_free. Only grows at the end. */
typedef struct pm_output {
    int encoding;          /* pm_encoding */
    int format;            /* pm_pixel_format of the pixels (RGBA, GRAY or RGB) */
    int width, height;     /* after EXIF orientation */
    size_t stride;         /* RAW: bytes between rows; PNG, WebP: 0 */
    unsigned char *data;
    size_t size;           /* bytes at data */
} pm_output;

/* Removes the background. options may be NULL for the defaults. A context that is not
 * READY loads first (concurrent callers share one load): on the CPU, where warm-up is one
 * inference, that is the call's own image (READY, warmup_runs 0); on CUDA, with
 * max_batch > 1 or tuning for more warm-up runs, it warms as pm_warmup does.
 * Thread-safe: decoding and encoding run in the calling thread (a large PNG is
 * compressed in bands on short-lived helper threads), outside the model lock. On
 * failure *out is NULL. */
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
