/*
 * warmup.c - the warm-up state machine: one flight at a time, everyone waits for it.
 *
 * COLD/FAILED --pm_warmup--> LOADING --> WARMING --> READY
 *                                 \           \----> FAILED
 *                                  \----------------> FAILED
 * A call on a cold context takes the same path, except on the CPU where warm-up
 * would be one inference: LOADING --> READY with no warm-up inference (the call's
 * own image is the first), and a later pm_warmup runs the warm-up on the READY model.
 * The flight itself runs outside ctx->mu, so pm_status never waits for it;
 * threads that arrive during a flight block on a condition variable (not a sleep)
 * and all return that flight's result.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <math.h>
#include <sched.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "context.h"
#include "manifest.h"

static int closing(pm_ctx *c) {
    pthread_mutex_lock(&c->mu);
    int v = c->closing;
    pthread_mutex_unlock(&c->mu);
    return v;
}

/* Resolves "auto" once and checks an explicit cuda:N exists. Never picks another
 * device after a failure. */
static pm_code resolve_device(pm_ctx *c, char *err, size_t cap) {
    if (c->device_resolved) return PM_OK;
    if (c->requested_kind == PM_DEVICE_CPU && !c->device_auto) {
        c->kind = PM_DEVICE_CPU;
        c->device_index = -1;
        c->device_resolved = 1;
        return PM_OK;
    }
    int n = 0;
    pm_code rc = pm_shim_cuda_device_count(&n, err, cap);
    if (rc != PM_OK) return rc;
    if (c->device_auto) {
        c->kind = n > 0 ? PM_DEVICE_CUDA : PM_DEVICE_CPU;
        c->device_index = n > 0 ? 0 : -1;
    } else {
        if (c->requested_index >= n) {
            snprintf(err, cap, "device %s requested but %d CUDA device%s visible", c->device_request, n,
                     n == 1 ? " is" : "s are");
            return PM_ERR_DEVICE;
        }
        c->kind = PM_DEVICE_CUDA;
        c->device_index = c->requested_index;
    }
    c->device_resolved = 1;
    return PM_OK;
}

/* One sysfs topology number of a CPU, or -1. */
static long cpu_topology(int cpu, const char *what) {
    char path[96];
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/%s", cpu, what);
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    long v = -1;
    if (fscanf(f, "%ld", &v) != 1) v = -1;
    fclose(f);
    return v;
}

int pm_cpu_cores(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    const int cpus = CPU_COUNT(&set);
    if (cpus <= 1) return 1;
    /* SMT siblings share a core's execution units: count each (package, core) once. */
    long seen[CPU_SETSIZE][2];
    int cores = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &set)) continue;
        const long pkg = cpu_topology(cpu, "physical_package_id"), core = cpu_topology(cpu, "core_id");
        if (pkg < 0 || core < 0) return cpus; /* no topology: one a CPU */
        int known = 0;
        for (int i = 0; i < cores && !known; i++) known = seen[i][0] == pkg && seen[i][1] == core;
        if (!known) {
            seen[cores][0] = pkg;
            seen[cores][1] = core;
            cores++;
        }
    }
    return cores > 0 ? cores : 1;
}

/* 1 when the CPU has AMX-BF16 tiles and the kernel supports their state, so oneDNN
 * runs bf16 convolutions on them. AVX512-BF16 alone is not enough: without the
 * tiles, oneDNN's bf16 convolutions do not beat its fp32 ones. */
static int cpu_has_amx_bf16(void) {
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
    /* CPUID leaf 7, EDX bit 22: AMX-BF16 (read directly: not every compiler's
     * __builtin_cpu_supports knows the name). */
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !((d >> 22) & 1u)) return 0;
    unsigned long features = 0; /* XSAVE features the kernel supports (ARCH_GET_XCOMP_SUPP) */
    if (syscall(SYS_arch_prctl, 0x1021, &features) != 0) return 0;
    return (features >> 18) & 1; /* XTILEDATA */
#else
    return 0;
#endif
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Stable: the last `window` latencies (1..3) all lie within tolerance of their
 * median. A window of one is stable at once: one run was asked for. */
static int latency_is_stable(const double *ms, int n, int window, double tolerance) {
    if (n < window) return 0;
    double last[3];
    for (int i = 0; i < window; i++) last[i] = ms[n - window + i];
    qsort(last, (size_t)window, sizeof last[0], cmp_double);
    double median = window == 2 ? 0.5 * (last[0] + last[1]) : last[window / 2];
    return fabs(last[0] - median) <= tolerance * median && fabs(last[window - 1] - median) <= tolerance * median;
}

#define PM_AUTO_DEVICE_CACHE_MB 384

/* Every "auto" of the tuning keys, resolved once for this device and model: the
 * shim receives only concrete values. want[] is the host's tuning (-1 = auto);
 * used[] gets the values the model runs with. */
static pm_code resolve_options(const pm_ctx *c, const int want[PM_TUNE_SLOTS], const pm_model_config *cfg,
                               int graph_safe, pm_shim_options *o, int used[PM_TUNE_SLOTS], char *err, size_t cap) {
    const int cuda = c->kind == PM_DEVICE_CUDA;
    const int streams = want[PM_TUNE_FORWARD_STREAMS], graph = want[PM_TUNE_CUDA_GRAPH];
    if (streams > 1 && c->max_batch > 1) {
        snprintf(err, cap, "forward_streams %d with max_batch %d: batching and streams are two ways to serve "
                 "concurrent callers; choose one", streams, c->max_batch);
        return PM_ERR_INVALID_ARGUMENT;
    }
    if (streams > 1 && graph == 0) {
        snprintf(err, cap, "forward_streams %d needs CUDA graphs (cuda_graph is 0)", streams);
        return PM_ERR_INVALID_ARGUMENT;
    }
    /* A graph must compute what the model computes: a model whose branches, raises or
     * host reads follow tensor values runs eagerly, and requiring a graph is an error. */
    if (cuda && graph == 1 && !graph_safe) {
        snprintf(err, cap, "cuda_graph 1: the model's control flow depends on tensor values, so a CUDA graph "
                 "would replay one input's decisions for every input; tune cuda_graph to -1 or 0 (or declare "
                 "gpu.graph_safe in the model's manifest if the model is safe)");
        return PM_ERR_UNSUPPORTED;
    }
    if (!cuda || graph == 0)
        o->graph = PM_GRAPH_OFF;
    else if (graph == 1)
        o->graph = PM_GRAPH_REQUIRE;
    else
        o->graph = graph_safe ? PM_GRAPH_TRY : PM_GRAPH_OFF;
    /* NHWC speeds conv nets up, on a GPU and on the CPU (oneDNN's NHWC kernels), but
     * breaks models that .view() activations (Swin): the manifest says which a model is. */
    const int cl = want[PM_TUNE_CHANNELS_LAST];
    o->channels_last = cl >= 0 ? cl : cfg->channels_last;
    /* Auto precision on the CPU: bf16 where AMX runs it, the model runs NHWC (oneDNN's
     * AMX kernels; in NCHW order bf16 is slower than fp32) and its manifest says bf16 was
     * checked for it (a model may use an op without a CPU bf16 kernel, and its matte's
     * accuracy in bf16 is the model's own); else the fp32 it was loaded in. */
    if (!cuda && c->precision_request == PM_PRECISION_AUTO)
        o->precision = cfg->cpu_bf16 && o->channels_last && cpu_has_amx_bf16() ? PM_PRECISION_BF16
                                                                                     : PM_PRECISION_FP32;
    /* Off unless asked: the profiling executor and freezing cost warm-up time. */
    o->jit_optimize = want[PM_TUNE_JIT_OPTIMIZE] == 1;
    o->freeze = want[PM_TUNE_FREEZE] == 1;
    o->max_batch = c->max_batch;
    o->batch_wait_us = want[PM_TUNE_BATCH_WAIT_US];
    const int cache = want[PM_TUNE_DEVICE_CACHE_MB];
    o->device_cache_mb = cache >= 0 ? cache : PM_AUTO_DEVICE_CACHE_MB;
    /* Streams replay graphs of their own, and batching replaces them; the CPU runs
     * one pass at a time. */
    if (!cuda || c->max_batch > 1 || o->graph == PM_GRAPH_OFF)
        o->forward_streams = 1;
    else
        o->forward_streams = streams >= 1 ? streams : cfg->forward_streams;

    memcpy(used, want, sizeof(int) * PM_TUNE_SLOTS);
    used[PM_TUNE_CUDA_GRAPH] = o->graph != PM_GRAPH_OFF;
    used[PM_TUNE_CHANNELS_LAST] = o->channels_last;
    used[PM_TUNE_JIT_OPTIMIZE] = o->jit_optimize;
    used[PM_TUNE_FREEZE] = o->freeze;
    used[PM_TUNE_DEVICE_CACHE_MB] = o->device_cache_mb;
    used[PM_TUNE_FORWARD_STREAMS] = o->forward_streams;
    return PM_OK;
}

/* Warm-up inferences at the model's input size until latency is stable (or max_runs),
 * so no later call pays for the executor's re-optimisation or lazy initialisation.
 * Counts them in c->warmup_runs; moves progress from 0.5 towards 0.95 when asked. */
static pm_code warm_until_stable(pm_ctx *c, pm_shim_model *model, int min_runs, int max_runs, double tolerance,
                                 int show_progress, char *err, size_t cap) {
    double *ms = calloc((size_t)max_runs, sizeof *ms);
    if (!ms) {
        snprintf(err, cap, "no memory for warm-up timings");
        return PM_ERR_NO_MEMORY;
    }
    const int window = min_runs < 3 ? min_runs : 3;
    /* progress: a one-run warm-up is done after it; else about five runs or more */
    int expected = window == 1 ? 1 : min_runs > 5 ? min_runs : 5;
    if (expected > max_runs) expected = max_runs;
    pm_code rc = PM_OK;
    int runs = 0;
    while (runs < max_runs) {
        if (closing(c)) {
            rc = PM_ERR_CANCELLED;
            snprintf(err, cap, "warm-up cancelled: the context is closing");
            break;
        }
        rc = pm_shim_warm_once(model, &ms[runs], err, cap);
        if (rc != PM_OK) break;
        runs++;
        pthread_mutex_lock(&c->mu);
        c->warmup_runs = runs;
        c->last_run_ms = ms[runs - 1];
        if (show_progress) {
            double f = (double)runs / expected;
            c->progress = 0.5 + 0.45 * (f < 1.0 ? f : 1.0);
        }
        pthread_mutex_unlock(&c->mu);
        if (runs >= min_runs && latency_is_stable(ms, runs, window, tolerance)) break;
    }
    free(ms);
    if (rc == PM_OK && closing(c)) {
        rc = PM_ERR_CANCELLED;
        snprintf(err, cap, "warm-up cancelled: the context is closing");
    }
    return rc;
}

/* What a flight does. */
enum flight_kind {
    FLIGHT_WARMUP,   /* pm_warmup: load, configure, warm until stable */
    FLIGHT_FOR_CALL, /* a call on a cold context: the same, except where warm-up would be one
                        inference on the CPU: then the caller's own image is that inference */
    FLIGHT_TOP_UP    /* pm_warmup on a model loaded for a call: its warm-up inferences */
};

/* One whole load: load, configure and, unless the caller's image serves as the one
 * warm-up inference, run until stable. On success the model is published in
 * c->model; on failure nothing is left allocated. */
static pm_code run_flight(pm_ctx *c, enum flight_kind kind, char *err, size_t cap) {
    pm_code rc = resolve_device(c, err, cap);
    if (rc != PM_OK) return rc;
    /* Auto on the CPU loads fp32; resolve_options may then pick bf16 from the manifest. */
    pm_precision precision = (pm_precision)c->precision_request;
    if (precision == PM_PRECISION_AUTO)
        precision = c->kind == PM_DEVICE_CUDA ? PM_PRECISION_FP16 : PM_PRECISION_FP32;
    int want[PM_TUNE_SLOTS], used[PM_TUNE_SLOTS];
    pthread_mutex_lock(&c->mu);
    memcpy(want, c->tune, sizeof want); /* the values this flight runs with */
    c->precision_used = precision;
    if (c->kind == PM_DEVICE_CUDA)
        snprintf(c->device_desc, sizeof c->device_desc, "cuda:%d", c->device_index);
    else
        snprintf(c->device_desc, sizeof c->device_desc, "cpu");
    pthread_mutex_unlock(&c->mu);
    /* Torch's own default can be lower than the cores there are (one thread on some
     * VMs): 0 means one a physical core. */
    if (c->kind == PM_DEVICE_CPU) pm_shim_set_cpu_threads(c->cpu_threads > 0 ? c->cpu_threads : pm_cpu_cores());

    double t0 = pm_now_ms();
    pm_shim_model *model = NULL;
    char *manifest = NULL;
    rc = pm_shim_load(c->model_path, c->kind, c->device_index, precision, &model, &manifest, err, cap);
    if (rc != PM_OK) return rc;
    double load_ms = pm_now_ms() - t0;

    pm_model_config cfg;
    pm_manifest_defaults(&cfg, c->input_size > 0 ? c->input_size : 1024, c->file_name);
    if (manifest) {
        rc = pm_manifest_parse(manifest, strlen(manifest), &cfg, err, cap);
        free(manifest);
    }
    const int graph_safe = cfg.graph_safe || pm_shim_graph_safe(model);
    pm_shim_options opts;
    memset(&opts, 0, sizeof opts);
    opts.precision = precision;
    if (rc == PM_OK) rc = resolve_options(c, want, &cfg, graph_safe, &opts, used, err, cap);
    if (rc == PM_OK) rc = pm_shim_configure(model, &cfg, &opts, err, cap);
    pthread_mutex_lock(&c->mu);
    c->graph_safe = graph_safe;
    pthread_mutex_unlock(&c->mu);
    if (rc != PM_OK) {
        pm_shim_free(model);
        return rc;
    }
    /* What the device needs is both the auto value of warmup_min_runs and a floor
     * under a lower one (stopping sooner would leave the CUDA graph's capture to a
     * caller); only the host's warmup_max_runs goes below it. */
    const int max_runs = want[PM_TUNE_WARMUP_MAX_RUNS];
    int min_runs = pm_shim_warmup_runs(model);
    if (want[PM_TUNE_WARMUP_MIN_RUNS] > min_runs) min_runs = want[PM_TUNE_WARMUP_MIN_RUNS];
    if (min_runs > max_runs) min_runs = max_runs;
    used[PM_TUNE_WARMUP_MIN_RUNS] = min_runs;
    /* On the CPU the first forward pass does all the one-time work, and a warm-up of
     * one inference on a synthetic image would double a one-image job: the caller's
     * image runs instead. Not on CUDA, whose warm-up captures the graph; not where
     * more runs are needed (the profiling executor, a host's warmup_min_runs) or
     * batch sizes must be readied. */
    const int one_shot = kind == FLIGHT_FOR_CALL && c->kind == PM_DEVICE_CPU && min_runs <= 1 && c->max_batch == 1;
    pthread_mutex_lock(&c->mu);
    c->precision_used = opts.precision;
    c->load_ms = load_ms;
    c->config = cfg;
    pm_shim_device_description(model, c->device_desc, sizeof c->device_desc);
    if (!one_shot) {
        c->state = PM_STATE_WARMING;
        c->progress = 0.5;
    }
    pthread_mutex_unlock(&c->mu);

    double w0 = pm_now_ms();
    double batch_ms = 0.0; /* part of warmup_ms */
    if (!one_shot) {
        rc = warm_until_stable(c, model, min_runs, max_runs, want[PM_TUNE_WARMUP_TOLERANCE_PCT] / 100.0, 1, err,
                               cap);
        /* Batch sizes above 1: checked and readied now, so no caller pays for them. */
        if (rc == PM_OK) rc = pm_shim_prepare_batches(model, &batch_ms, err, cap);
        if (rc != PM_OK) {
            pm_shim_free(model);
            return rc;
        }
    }
    pthread_mutex_lock(&c->mu);
    c->warmup_ms = one_shot ? 0.0 : pm_now_ms() - w0;
    c->warm_pending = one_shot;
    memcpy(c->tune_used, used, sizeof used);
    c->model = model;
    pthread_mutex_unlock(&c->mu);
    return PM_OK;
}

/* pm_warmup on a model a call loaded: the warm-up inferences it skipped, on the
 * published model (callers keep using it meanwhile; the state stays READY). */
static pm_code top_up(pm_ctx *c, char *err, size_t cap) {
    pthread_mutex_lock(&c->mu);
    pm_shim_model *model = c->model;
    const int min_runs = c->tune_used[PM_TUNE_WARMUP_MIN_RUNS];
    const int max_runs = c->tune_used[PM_TUNE_WARMUP_MAX_RUNS];
    const double tolerance = c->tune_used[PM_TUNE_WARMUP_TOLERANCE_PCT] / 100.0;
    pthread_mutex_unlock(&c->mu);
    double w0 = pm_now_ms();
    pm_code rc = warm_until_stable(c, model, min_runs, max_runs, tolerance, 0, err, cap);
    if (rc != PM_OK) return rc;
    pthread_mutex_lock(&c->mu);
    c->warmup_ms = pm_now_ms() - w0;
    c->warm_pending = 0;
    pthread_mutex_unlock(&c->mu);
    return PM_OK;
}

/* The one way into a flight: joins a running one (every thread that arrives during
 * it gets its result), returns at once when nothing is left to do, else runs one.
 * for_call: a call on a cold context, which needs the model loaded, not warmed. */
static pm_code flight(pm_ctx *c, int for_call) {
    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (c->state == PM_STATE_READY && (for_call || !c->warm_pending)) {
            pthread_mutex_unlock(&c->mu);
            return PM_OK;
        }
        if (!c->flight_running) break;
        uint64_t mine = c->flight_started;
        while (c->flight_finished < mine) pthread_cond_wait(&c->flight_done, &c->mu);
        pm_code rc = c->flight_result;
        if (rc != PM_OK) {
            char msg[sizeof c->last_error];
            snprintf(msg, sizeof msg, "%s", c->last_error);
            pthread_mutex_unlock(&c->mu);
            return pm_fail(c, rc, "%s", msg);
        }
        /* That flight may have loaded for a call without warming: look again. */
    }
    if (c->closing) {
        pthread_mutex_unlock(&c->mu);
        return pm_fail(c, PM_ERR_CANCELLED, "pm_warmup: the context is closing");
    }
    const enum flight_kind kind = c->state == PM_STATE_READY ? FLIGHT_TOP_UP
                                  : for_call                 ? FLIGHT_FOR_CALL
                                                             : FLIGHT_WARMUP;
    c->flight_running = 1;
    c->flight_for_call = kind == FLIGHT_FOR_CALL;
    c->flight_started++;
    if (kind != FLIGHT_TOP_UP) {
        c->state = PM_STATE_LOADING;
        c->progress = 0.05;
    }
    c->warmup_runs = 0;
    pthread_mutex_unlock(&c->mu);

    char err[PM_ERRMSG_CAP] = "";
    pm_code rc = kind == FLIGHT_TOP_UP ? top_up(c, err, sizeof err) : run_flight(c, kind, err, sizeof err);
    if (rc != PM_OK) pm_fail(c, rc, "%s", err[0] ? err : pm_strerror(rc));

    pthread_mutex_lock(&c->mu);
    c->flight_running = 0;
    c->flight_for_call = 0;
    c->flight_finished = c->flight_started;
    c->flight_result = rc;
    /* A top-up's model stays published and usable whatever its runs did. */
    if (kind != FLIGHT_TOP_UP) {
        c->state = rc == PM_OK ? PM_STATE_READY : PM_STATE_FAILED;
        c->progress = rc == PM_OK ? 1.0 : 0.0;
        if (rc == PM_OK) c->ready_unix = pm_unix_now();
    }
    pthread_cond_broadcast(&c->flight_done);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

pm_code pm_warmup(pm_ctx *c) {
    if (!c) return pm_fail(NULL, PM_ERR_INVALID_ARGUMENT, "pm_warmup: ctx is NULL");
    return flight(c, 0);
}

pm_code pm_load_for_call(pm_ctx *c) { return flight(c, 1); }

static void *background_warmup(void *arg) {
    pm_ctx *c = arg;
    pm_warmup(c); /* its result lands in the state and last error */
    pthread_mutex_lock(&c->mu);
    if (c->bg == PM_BG_RUNNING) c->bg = PM_BG_FINISHED;
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

pm_code pm_warmup_start(pm_ctx *c) {
    if (!c) return pm_fail(NULL, PM_ERR_INVALID_ARGUMENT, "pm_warmup_start: ctx is NULL");
    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (c->closing) {
            pthread_mutex_unlock(&c->mu);
            return pm_fail(c, PM_ERR_CANCELLED, "pm_warmup_start: the context is closing");
        }
        /* A flight that loads for a call leaves warming to a later pm_warmup: the
         * thread waits for it and then warms. */
        if ((c->state == PM_STATE_READY && !c->warm_pending) || (c->flight_running && !c->flight_for_call) ||
            c->bg == PM_BG_RUNNING) {
            pthread_mutex_unlock(&c->mu);
            return PM_OK;
        }
        if (c->bg != PM_BG_FINISHED) break;
        /* Reap the previous thread (it has finished) before starting another. */
        pthread_t done = c->bg_thread;
        c->bg = PM_BG_NONE;
        pthread_mutex_unlock(&c->mu);
        pthread_join(done, NULL);
        pthread_mutex_lock(&c->mu);
    }
    int err = pthread_create(&c->bg_thread, NULL, background_warmup, c);
    if (err != 0) {
        pthread_mutex_unlock(&c->mu);
        return pm_fail(c, PM_ERR_NO_MEMORY, "pm_warmup_start: cannot create a thread (error %d)", err);
    }
    c->bg = PM_BG_RUNNING;
    /* Why set LOADING here: a status read right after this call must not say COLD. */
    if (c->state == PM_STATE_COLD || c->state == PM_STATE_FAILED) {
        c->state = PM_STATE_LOADING;
        c->progress = 0.0;
    }
    pthread_mutex_unlock(&c->mu);
    return PM_OK;
}
