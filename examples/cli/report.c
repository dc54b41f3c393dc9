/* report.c - `petmatte warmup` (phases and times) and `petmatte info` (model, device,
 * versions), as text or, with --json, one JSON object on stdout (jansson). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"

static const char warmup_help[] =
    "Usage: petmatte warmup [OPTIONS]\n"
    "\n"
    "Opens the model, loads it onto the device and runs warm-up inferences until the\n"
    "latency is stable, printing each phase with its time: what a server pays at start.\n"
    "\n"
    "      --json             one JSON object on stdout instead of text\n"
    "%s"
    "\n"
    "Warm-up bounds are tuning keys: --tune warmup_min_runs=N (inferences always run;\n"
    "default: what the device needs), --tune warmup_max_runs=N (stop waiting for stable\n"
    "latency after N runs; default 20), --tune warmup_tolerance_pct=P (stable: the last 3\n"
    "runs within P %% of their median; default 15).\n"
    "\n"
    "Exit status: 0 ready, 2 usage error, 3 model or device error.\n";

static const char info_help[] =
    "Usage: petmatte info [OPTIONS]\n"
    "\n"
    "Loads the model (one warm-up inference) and prints what it is: the manifest's\n"
    "name, input size and random-weights flag, the model file, the device and precision\n"
    "it runs with, the number of CUDA devices, and the versions of petmatte and the library.\n"
    "\n"
    "      --json             one JSON object on stdout instead of text\n"
    "%s"
    "\n"
    "Exit status: 0 ok, 2 usage error, 3 model or device error.\n";

enum { OPT_JSON = 1 };

static const cli_opt warmup_opts[] = {
    {"json", 0, 0, OPT_JSON},
    CLI_ENGINE_OPTS,
    {NULL, 0, 0, 0},
};

static const cli_opt info_opts[] = {
    {"json", 0, 0, OPT_JSON},
    CLI_ENGINE_OPTS,
    {NULL, 0, 0, 0},
};

/* Parses a command's options; *help is set when --help was given. */
static int parse(const char *cmd, const cli_opt *opts, int argc, char **argv, cli_engine *e, int *json,
                 int *help) {
    cli_args a;
    cli_args_init(&a, cmd, argc, argv);
    int kind, id;
    const char *value;
    while ((kind = cli_next(&a, opts, &id, &value)) != CLI_ARG_END) {
        if (kind == CLI_ARG_ERROR) return CLI_EXIT_USAGE;
        if (kind == CLI_ARG_POSITIONAL) return cli_usage(cmd, "unexpected argument '%s'", value);
        switch (id) {
        case CLI_OPT_HELP: *help = 1; return CLI_EXIT_OK;
        case OPT_JSON: *json = 1; break;
        default:
            if (cli_engine_option(e, cmd, opts, id, value) < 0) return CLI_EXIT_USAGE;
            break;
        }
    }
    return CLI_EXIT_OK;
}

/* Milliseconds to the microsecond: enough for any reader, and short to print. */
static json_t *json_ms(double ms) {
    return json_real(round(ms * 1000.0) / 1000.0);
}

static int print_json(json_t *root) {
    int rc = root && json_dumpf(root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) == 0 ? 0 : -1;
    if (rc == 0) fputc('\n', stdout);
    json_decref(root);
    return rc;
}

/* graph_safe as JSON: true or false once known, null before the model is loaded. */
static json_t *json_graph_safe(int graph_safe) {
    return graph_safe < 0 ? json_null() : json_boolean(graph_safe);
}

/* The same in words, for the text reports. */
static const char *graph_safe_text(int graph_safe) {
    return graph_safe < 0 ? "unknown" : graph_safe ? "yes" : "no";
}

static json_t *status_error_json(const pm_status_info *st) {
    json_t *err = json_object();
    json_object_set_new(err, "code", json_integer(st->last_error_code));
    json_object_set_new(err, "name", json_string(pm_strerror((pm_code)st->last_error_code)));
    json_object_set_new(err, "message", json_string(st->last_error));
    return err;
}

/* Parses a command's options and opens its context. --help prints help_text and
 * returns CLI_EXIT_OK with *ctx NULL; any failure returns its exit code. */
static int start(const char *cmd, const cli_opt *opts, const char *help_text, int argc, char **argv,
                 cli_engine *e, int *json, pm_ctx **ctx, char *model, size_t model_cap) {
    *ctx = NULL;
    int help = 0;
    int rc = parse(cmd, opts, argc, argv, e, json, &help);
    if (rc != CLI_EXIT_OK) return rc;
    if (help) {
        printf(help_text, cli_engine_help());
        return CLI_EXIT_OK;
    }
    return cli_open(e, cmd, ctx, model, model_cap);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Each warm-up run's latency as pm_status showed it. pm_status reports the latest run
 * only, so `warmup` looks every millisecond; a run that began and ended between two
 * looks is unknown (NAN). The first run is the one that pays the device's one-time work. */
typedef struct run_log {
    double *ms;
    int count, cap;
} run_log;

static void run_log_note(run_log *log, int runs, double last_ms) {
    if (runs <= log->count) return;
    if (runs > log->cap) {
        int cap = log->cap ? log->cap : 16;
        while (cap < runs) cap *= 2;
        double *grown = realloc(log->ms, (size_t)cap * sizeof *grown);
        if (!grown) return; /* the report then lacks these runs; the warm-up is unaffected */
        log->ms = grown;
        log->cap = cap;
    }
    while (log->count < runs - 1) log->ms[log->count++] = NAN;
    log->ms[log->count++] = last_ms;
}

static json_t *run_log_json(const run_log *log) {
    json_t *a = json_array();
    for (int i = 0; i < log->count; i++)
        json_array_append_new(a, isnan(log->ms[i]) ? json_null() : json_ms(log->ms[i]));
    return a;
}

static void run_log_print(const run_log *log) {
    if (log->count == 0) return;
    printf("runs      ");
    for (int i = 0; i < log->count; i++) {
        if (isnan(log->ms[i]))
            printf("%s ?", i ? "," : "");
        else
            printf("%s %.1f", i ? "," : "", log->ms[i]);
    }
    printf(" ms\n");
}

int cli_cmd_warmup(int argc, char **argv) {
    cli_engine e;
    cli_engine_init(&e);
    int json = 0;
    pm_ctx *ctx;
    char model[PATH_MAX];
    double t0 = cli_now();
    int rc = start("warmup", warmup_opts, warmup_help, argc, argv, &e, &json, &ctx, model, sizeof model);
    if (rc != CLI_EXIT_OK || !ctx) return rc;
    pm_status_info st;
    pm_status_info_init(&st);
    pm_status(ctx, &st);
    if (!json) {
        printf("model      %s\n", model);
        printf("open       %10.1f ms\n", st.open_ms);
        fflush(stdout);
    }
    /* Watch the library's own thread through pm_status, printing each phase as it
     * ends (pm_status never blocks on the warm-up). */
    if (pm_warmup_start(ctx) != PM_OK) {
        cli_error("cannot start the warm-up: %s", pm_errmsg(ctx));
        pm_close(ctx);
        return CLI_EXIT_MODEL;
    }
    int load_printed = 0;
    run_log runs = {NULL, 0, 0};
    for (;;) {
        pm_status(ctx, &st);
        run_log_note(&runs, st.warmup_runs, st.last_warmup_run_ms);
        if (!json && !load_printed && (st.state == PM_STATE_WARMING || st.state == PM_STATE_READY)) {
            printf("load       %10.1f ms  onto %s\n", st.load_ms, st.device);
            fflush(stdout);
            load_printed = 1;
        }
        if (st.state == PM_STATE_READY || st.state == PM_STATE_FAILED) break;
        sleep_ms(1);
    }
    double total_ms = (cli_now() - t0) * 1e3;
    if (st.state == PM_STATE_FAILED) {
        if (json) {
            json_t *root = json_object();
            json_object_set_new(root, "state", json_string("failed"));
            json_object_set_new(root, "model", json_string(model));
            json_object_set_new(root, "device", json_string(st.device));
            json_object_set_new(root, "error", status_error_json(&st));
            print_json(root);
        }
        cli_error("warm-up of %s on %s failed: %s", model, st.device, st.last_error);
        free(runs.ms);
        pm_close(ctx);
        return CLI_EXIT_MODEL;
    }
    if (json) {
        json_t *root = json_object();
        json_object_set_new(root, "state", json_string("ready"));
        json_object_set_new(root, "model", json_string(model));
        json_object_set_new(root, "model_name", json_string(st.model_name));
        json_object_set_new(root, "device", json_string(st.device));
        json_object_set_new(root, "device_requested", json_string(e.device));
        json_object_set_new(root, "precision", json_string(pm_precision_name((pm_precision)st.precision)));
        json_t *phases = json_object();
        json_object_set_new(phases, "open_ms", json_ms(st.open_ms));
        json_object_set_new(phases, "load_ms", json_ms(st.load_ms));
        json_object_set_new(phases, "warmup_ms", json_ms(st.warmup_ms));
        json_object_set_new(root, "phases", phases);
        json_object_set_new(root, "total_ms", json_ms(total_ms));
        json_object_set_new(root, "warmup_runs", json_integer(st.warmup_runs));
        json_object_set_new(root, "last_warmup_run_ms", json_ms(st.last_warmup_run_ms));
        json_object_set_new(root, "warmup_run_ms", run_log_json(&runs));
        json_object_set_new(root, "cuda_graph", json_boolean(st.cuda_graph));
        json_object_set_new(root, "graph_safe", json_graph_safe(st.graph_safe));
        json_object_set_new(root, "device_memory_bytes", json_integer((json_int_t)st.device_memory_bytes));
        json_object_set_new(root, "random_weights", json_boolean(st.random_weights));
        rc = print_json(root) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
    } else {
        printf("warm-up    %10.1f ms  %d run%s, last %.1f ms\n", st.warmup_ms, st.warmup_runs,
               st.warmup_runs == 1 ? "" : "s", st.last_warmup_run_ms);
        run_log_print(&runs);
        printf("ready      %10.1f ms  in all\n", total_ms);
        printf("device     %s, %s, CUDA graph %s (graph-safe model: %s)\n", st.device,
               pm_precision_name((pm_precision)st.precision), st.cuda_graph ? "on" : "off",
               graph_safe_text(st.graph_safe));
        if (st.device_memory_bytes)
            printf("memory     %.1f MiB on the device\n", (double)st.device_memory_bytes / (1024.0 * 1024.0));
    }
    free(runs.ms);
    pm_close(ctx);
    return rc;
}

int cli_cmd_info(int argc, char **argv) {
    cli_engine e;
    cli_engine_init(&e);
    /* Loading is what info needs; one inference proves the model runs. */
    cli_engine_tune(&e, PM_TUNE_WARMUP_MIN_RUNS, 1);
    cli_engine_tune(&e, PM_TUNE_WARMUP_MAX_RUNS, 1);
    int json = 0;
    pm_ctx *ctx;
    char model[PATH_MAX];
    int rc = start("info", info_opts, info_help, argc, argv, &e, &json, &ctx, model, sizeof model);
    if (rc != CLI_EXIT_OK || !ctx) return rc;
    pm_status_info st;
    pm_status_info_init(&st);
    pm_code code = pm_warmup(ctx);
    pm_status(ctx, &st);
    if (code != PM_OK) {
        cli_error("cannot load %s on %s: %s", model, st.device, pm_errmsg(ctx));
        pm_close(ctx);
        return CLI_EXIT_MODEL;
    }
    int cuda_count = -1;
    if (pm_cuda_device_count(&cuda_count) != PM_OK) cuda_count = -1;
    struct stat fst;
    long long model_bytes = stat(model, &fst) == 0 ? (long long)fst.st_size : -1;
    if (json) {
        json_t *root = json_object();
        json_object_set_new(root, "petmatte_version", json_string(PETMATTE_VERSION_STRING));
        json_object_set_new(root, "library_version", json_string(pm_version()));
        json_t *m = json_object();
        json_object_set_new(m, "path", json_string(model));
        json_object_set_new(m, "size_bytes", model_bytes >= 0 ? json_integer(model_bytes) : json_null());
        json_object_set_new(m, "name", json_string(st.model_name));
        json_object_set_new(m, "input_width", json_integer(st.input_width));
        json_object_set_new(m, "input_height", json_integer(st.input_height));
        json_object_set_new(m, "random_weights", json_boolean(st.random_weights));
        json_object_set_new(root, "model", m);
        json_object_set_new(root, "device", json_string(st.device));
        json_object_set_new(root, "device_requested", json_string(e.device));
        json_object_set_new(root, "precision", json_string(pm_precision_name((pm_precision)st.precision)));
        json_object_set_new(root, "cuda_graph", json_boolean(st.cuda_graph));
        json_object_set_new(root, "graph_safe", json_graph_safe(st.graph_safe));
        json_object_set_new(root, "cuda_device_count", cuda_count >= 0 ? json_integer(cuda_count) : json_null());
        rc = print_json(root) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
    } else {
        printf("petmatte        %s (library %s)\n", PETMATTE_VERSION_STRING, pm_version());
        if (model_bytes >= (1 << 20))
            printf("model file      %s (%.1f MiB)\n", model, (double)model_bytes / (1024.0 * 1024.0));
        else if (model_bytes >= 0)
            printf("model file      %s (%lld bytes)\n", model, model_bytes);
        else
            printf("model file      %s\n", model);
        printf("name            %s\n", st.model_name);
        printf("input size      %dx%d\n", st.input_width, st.input_height);
        printf("random weights  %s\n", st.random_weights ? "yes (a test model: cut-outs are meaningless)" : "no");
        printf("device          %s\n", st.device);
        printf("precision       %s\n", pm_precision_name((pm_precision)st.precision));
        printf("CUDA graph      %s (graph-safe model: %s)\n", st.cuda_graph ? "on" : "off",
               graph_safe_text(st.graph_safe));
        if (cuda_count >= 0)
            printf("CUDA devices    %d\n", cuda_count);
        else
            printf("CUDA devices    unknown\n");
    }
    pm_close(ctx);
    return rc;
}
