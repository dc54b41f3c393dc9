/* engine.c - the options every command shares, the default model and pm_open. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#ifndef PM_CLI_INSTALLED_MODEL
#define PM_CLI_INSTALLED_MODEL "/usr/local/share/petmatte/models/isnet-general.pt"
#endif
#define PM_CLI_MODEL_FILE "isnet-general.pt"

static const char engine_help_head[] =
    "  -m, --model PATH       TorchScript model (default: isnet-general.pt, see petmatte --help)\n"
    "  -d, --device DEV       auto (default: cuda:0 when CUDA is visible, else cpu), cpu, cuda:N\n"
    "  -p, --precision P      auto (default: fp16 on CUDA; CPU: bf16 with AMX, else fp32),\n"
    "                         fp32, fp16, bf16\n"
    "      --threads N        CPU threads for the model (default: one a physical core)\n"
    "      --input-size N     model input side for a model without a manifest (8..8192)\n"
    "      --max-batch N      concurrent cut-outs one forward pass may serve, 1..64 (default 1);\n"
    "                         a video then keeps N frames in flight\n"
    "      --tune KEY=VALUE   how the model runs on its device (repeatable; the library's\n"
    "                         defaults suit most uses): VALUE an integer, or auto, on, off;\n"
    "                         KEY one of:\n";

const char *cli_engine_help(void) {
    static char text[2048];
    if (text[0]) return text;
    char keys[1024];
    tune_option_keys_wrapped(keys, sizeof keys, 25, 90);
    snprintf(text, sizeof text, "%s%s  -h, --help             this help\n", engine_help_head, keys);
    return text;
}

void cli_engine_init(cli_engine *e) {
    memset(e, 0, sizeof *e);
    e->device = "auto";
    e->precision = PM_PRECISION_AUTO;
}

void cli_engine_tune(cli_engine *e, pm_tune key, int value) {
    if (e->n_tune < CLI_MAX_TUNE) e->tune[e->n_tune++] = (tune_setting){key, value};
}

int cli_engine_option(cli_engine *e, const char *cmd, const cli_opt *opts, int id, const char *value) {
    char name[64];
    switch (id) {
    case CLI_OPT_MODEL:
        if (!*value) return cli_usage(cmd, "--model needs a path"), -1;
        e->model = value;
        return 1;
    case CLI_OPT_DEVICE:
        if (!*value) return cli_usage(cmd, "--device needs a value: auto, cpu or cuda:N"), -1;
        e->device = value; /* the library parses it and says what is wrong */
        return 1;
    case CLI_OPT_PRECISION:
        if (!cli_parse_precision(value, &e->precision))
            return cli_usage(cmd, "--precision '%s' is not one of auto, fp32, fp16, bf16", value), -1;
        return 1;
    case CLI_OPT_THREADS:
        if (!cli_parse_int(value, 1, 1024, &e->threads))
            return cli_usage(cmd, "%s '%s' is not a whole number in 1..1024",
                             cli_opt_name(opts, id, name, sizeof name), value),
                   -1;
        return 1;
    case CLI_OPT_INPUT_SIZE:
        if (!cli_parse_int(value, 8, 8192, &e->input_size))
            return cli_usage(cmd, "%s '%s' is not a whole number in 8..8192",
                             cli_opt_name(opts, id, name, sizeof name), value),
                   -1;
        return 1;
    case CLI_OPT_MAX_BATCH:
        if (!cli_parse_int(value, 1, 64, &e->max_batch))
            return cli_usage(cmd, "%s '%s' is not a whole number in 1..64",
                             cli_opt_name(opts, id, name, sizeof name), value),
                   -1;
        return 1;
    case CLI_OPT_TUNE: {
        char why[768];
        tune_setting t;
        if (!tune_option_parse(value, &t, why, sizeof why)) return cli_usage(cmd, "%s", why), -1;
        if (e->n_tune == CLI_MAX_TUNE) return cli_usage(cmd, "more than %d --tune options", CLI_MAX_TUNE), -1;
        e->tune[e->n_tune++] = t;
        return 1;
    }
    default:
        return 0;
    }
}

static char exe_dir[PATH_MAX];

void cli_set_argv0(const char *argv0) {
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n > 0) {
        path[n] = '\0';
    } else if (argv0 && strchr(argv0, '/') && realpath(argv0, path)) {
        /* resolved */
    } else {
        exe_dir[0] = '\0';
        return;
    }
    char *slash = strrchr(path, '/');
    if (!slash) {
        exe_dir[0] = '\0';
        return;
    }
    *slash = '\0';
    snprintf(exe_dir, sizeof exe_dir, "%s", path[0] ? path : "/");
}

static int is_readable_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

/* <exe dir>/<up>/<rest>, with the existing part normalised for messages. */
static void relative_to_exe(const char *up, const char *rest, char *out, size_t cap) {
    char joined[PATH_MAX + 64], real[PATH_MAX];
    snprintf(joined, sizeof joined, "%s/%s", exe_dir, up);
    if (realpath(joined, real))
        snprintf(out, cap, "%s/%s", real, rest);
    else
        snprintf(out, cap, "%s/%s", joined, rest);
}

int cli_find_model(const char *explicit_path, char *buf, size_t cap) {
    if (explicit_path) {
        snprintf(buf, cap, "%s", explicit_path);
        return CLI_EXIT_OK;
    }
    const char *env = getenv("PETMATTE_MODEL");
    if (env && *env) {
        if (is_readable_file(env)) {
            snprintf(buf, cap, "%s", env);
            return CLI_EXIT_OK;
        }
        cli_error("PETMATTE_MODEL=%s: %s; point it at a TorchScript model or unset it to use the "
                  "default model",
                  env, access(env, F_OK) == 0 ? "not a readable file" : "no such file");
        return CLI_EXIT_MODEL;
    }
    char tried[3][PATH_MAX + 128];
    int n = 0;
    if (exe_dir[0]) {
        /* The build tree: <build>/examples/petmatte -> <source>/models/ (build/ sits in the
         * source folder), then a relocated install: <prefix>/bin -> <prefix>/share. */
        relative_to_exe("../..", "models/" PM_CLI_MODEL_FILE, tried[n++], sizeof tried[0]);
        relative_to_exe("..", "share/petmatte/models/" PM_CLI_MODEL_FILE, tried[n++], sizeof tried[0]);
    }
    snprintf(tried[n++], sizeof tried[0], "%s", PM_CLI_INSTALLED_MODEL);
    for (int i = 0; i < n; i++) {
        if (is_readable_file(tried[i])) {
            snprintf(buf, cap, "%s", tried[i]);
            return CLI_EXIT_OK;
        }
    }
    char list[3 * (PATH_MAX + 132)] = "";
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        int dup = 0;
        for (int j = 0; j < i; j++) dup |= strcmp(tried[i], tried[j]) == 0;
        if (dup) continue;
        int w = snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "", tried[i]);
        if (w < 0 || (size_t)w >= sizeof list - len) break;
        len += (size_t)w;
    }
    cli_error("no model: --model not given, PETMATTE_MODEL not set, and no default model at %s; "
              "make it with '/usr/bin/python3 tools/setup_default_model.py' in the source tree, "
              "or pass --model PATH",
              list);
    return CLI_EXIT_MODEL;
}

int cli_exit_for_open(pm_code rc) {
    return rc == PM_ERR_INVALID_ARGUMENT ? CLI_EXIT_USAGE : CLI_EXIT_MODEL;
}

int cli_open(const cli_engine *e, const char *cmd, pm_ctx **ctx, char *model_path, size_t cap) {
    *ctx = NULL;
    int rc = cli_find_model(e->model, model_path, cap);
    if (rc != CLI_EXIT_OK) return rc;
    pm_params p;
    pm_params_init(&p);
    p.model_path = model_path;
    p.device = e->device;
    p.precision = e->precision;
    p.cpu_threads = e->threads;
    p.input_size = e->input_size;
    if (e->max_batch) p.max_batch = e->max_batch;
    pm_code code = pm_open(&p, ctx);
    if (code != PM_OK) {
        if (code == PM_ERR_INVALID_ARGUMENT)
            return cli_usage(cmd, "%s", pm_errmsg(NULL));
        cli_error("%s", pm_errmsg(NULL));
        return CLI_EXIT_MODEL;
    }
    /* The command's own settings come first in e->tune, so a --tune for the same key wins. */
    char why[768];
    code = tune_option_apply(*ctx, e->tune, e->n_tune, why, sizeof why);
    if (code != PM_OK) {
        pm_close(*ctx);
        *ctx = NULL;
        if (code == PM_ERR_INVALID_ARGUMENT) return cli_usage(cmd, "%s", why);
        cli_error("%s", why);
        return CLI_EXIT_MODEL;
    }
    /* remove and info cap warm-up at one run; a larger warmup_min_runs asked for on the
     * command line raises that cap instead of being cut to it. */
    int min_runs = 0, max_runs = 0;
    if (pm_tune_get(*ctx, PM_TUNE_WARMUP_MIN_RUNS, &min_runs) == PM_OK &&
        pm_tune_get(*ctx, PM_TUNE_WARMUP_MAX_RUNS, &max_runs) == PM_OK && min_runs > max_runs)
        pm_tune_set(*ctx, PM_TUNE_WARMUP_MAX_RUNS, min_runs);
    return CLI_EXIT_OK;
}
