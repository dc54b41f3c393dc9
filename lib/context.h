/*
 * context.h - struct pm_ctx and the helpers the API files share (internal).
 */
#ifndef PETMATTE_CONTEXT_H
#define PETMATTE_CONTEXT_H

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>

#include "image.h"
#include "petmatte.h"
#include "shim.h"

#define PM_ERRMSG_CAP 512
#define PM_MAX_BATCH_LIMIT 64 /* pm_params.max_batch */

/* Tuning keys run 1..PM_TUNE_LAST (pm_tune); index 0 is unused. */
#define PM_TUNE_LAST PM_TUNE_FORWARD_STREAMS
#define PM_TUNE_SLOTS (PM_TUNE_LAST + 1)

/* Background warm-up thread: none, running, or finished but not yet joined. */
enum pm_bg_state { PM_BG_NONE = 0, PM_BG_RUNNING = 1, PM_BG_FINISHED = 2 };

struct pm_ctx {
    /* Set by pm_open, then read-only. */
    char *model_path;
    char device_request[32];  /* "auto", "cpu", "cuda:N" as given (normalised) */
    int device_auto;          /* 1 for "auto" */
    pm_device_kind requested_kind;
    int requested_index;
    int precision_request;    /* pm_precision, possibly AUTO */
    int input_size;
    pm_limits limits;
    int cpu_threads;
    int max_batch;            /* 1..PM_MAX_BATCH_LIMIT */
    double open_ms;
    char file_name[64];

    /* Everything below is guarded by mu. */
    pthread_mutex_t mu;
    int tune[PM_TUNE_SLOTS];      /* pm_tune_set's values (-1 = auto); read by each flight */
    int tune_used[PM_TUNE_SLOTS]; /* the values the READY model runs with, auto resolved */
    int graph_safe;               /* -1 until loaded, then pm_status_info.graph_safe */
    pthread_cond_t flight_done;
    pm_state state;
    double progress;
    int flight_running;          /* a warm-up is loading or warming right now */
    int flight_for_call;         /* that flight loads for a call and may leave warming to pm_warmup */
    uint64_t flight_started;     /* warm-ups begun */
    uint64_t flight_finished;    /* warm-ups ended */
    pm_code flight_result;       /* result of the last warm-up that ended */
    int closing;

    int device_resolved;         /* "auto" is resolved once, on the first warm-up */
    pm_device_kind kind;
    int device_index;
    int precision_used;
    char device_desc[128];

    pm_shim_model *model;        /* set once, when READY; freed by pm_close */
    pm_model_config config;
    double load_ms, warmup_ms, last_run_ms, ready_unix;
    int warmup_runs;
    int warm_pending;            /* READY without warm-up inferences (loaded for a call on the CPU) */
    uint64_t images_processed;
    pm_code last_error_code;
    char last_error[256];

    enum pm_bg_state bg;
    pthread_t bg_thread;
};

/* Records a failure: in the calling thread's buffer (for pm_errmsg) and, when ctx is
 * not NULL, as the context's last error. Returns code. */
pm_code pm_fail(pm_ctx *ctx, pm_code code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* What pm_remove_bg does on a context that is not READY: loads the model as pm_warmup
 * does (sharing a running flight), but on the CPU, where warm-up would be one inference,
 * runs none: the call's own image is the first. PM_OK once READY. */
pm_code pm_load_for_call(pm_ctx *c);

/* Physical cores this process may run on (its CPU affinity, SMT siblings counted
 * once; every allowed CPU when the topology cannot be read): at least 1. */
int pm_cpu_cores(void);

/* The tuning defaults (pm_tune) into tune[]. */
void pm_tune_defaults(int tune[PM_TUNE_SLOTS]);

/* Monotonic milliseconds and wall-clock seconds since the epoch. */
double pm_now_ms(void);
double pm_unix_now(void);

/* Copies min(given, ours) bytes of a caller struct that begins with struct_size over
 * our defaults. Returns 0 when struct_size is too small to hold even the first field. */
int pm_copy_sized(void *dst, size_t dst_size, const void *src, size_t min_size);

#endif
