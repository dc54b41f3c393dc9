/* remove.c - `petmatte remove`: a file, several files, a folder, or stdin to stdout.
 *
 * Order of work: parse, plan every (input, output) pair and refuse anything that
 * would overwrite an input (before the model loads, so mistakes cost nothing),
 * then process the pairs, going past failed ones (the first call loads the model). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char remove_help[] =
    "Usage: petmatte remove [OPTIONS] INPUT [-o OUTPUT]\n"
    "       petmatte remove [OPTIONS] FOLDER|FILE... -o OUTDIR\n"
    "       petmatte remove [OPTIONS] FOLDER -o OUTDIR --watch\n"
    "       petmatte remove [OPTIONS] - [-o OUTPUT] < in.jpg > out.png\n"
    "       petmatte remove [OPTIONS] VIDEO [-o OUTPUT.webm|.mov|.mp4] [--video-format F]\n"
    "\n"
    "Removes the background of images and writes PNG or WebP cut-outs (RGBA, alpha = matte),\n"
    "or the subject over a new background (RGB).\n"
    "\n"
    "  INPUT is a file (JPEG, PNG, BMP, TGA, GIF, PSD, PNM, HDR), a folder, or - for stdin.\n"
    "  One file: OUTPUT defaults to INPUT's folder and stem plus .cutout.png (.mask.png\n"
    "  with --mask): photo.jpg -> photo.cutout.png. -o - writes to stdout; -o FOLDER\n"
    "  writes FOLDER/<stem>.png. OUTPUT must end in .png or .webp, which picks the format.\n"
    "  A folder (not recursive: image files by extension, hidden files skipped) or several\n"
    "  files: -o OUTDIR is required and created if missing; each input gives\n"
    "  OUTDIR/<stem>.png. OUTDIR may not be the input folder. A file that fails is reported\n"
    "  and skipped; the others are still written, and the exit status is 1.\n"
    "  stdin (-): OUTPUT defaults to stdout (never a terminal).\n"
    "  An input is never overwritten: an output that is the same file as an input\n"
    "  (compared by device and inode, so links count) is refused.\n"
    "\n"
    "  --watch: cut out the folder's images, then each image that appears in it (written\n"
    "  and closed, or moved in) until SIGINT or SIGTERM; prints a summary on exit.\n"
    "\n"
    "  A video (.mp4, .mov, .mkv, .webm, .avi, .mpg, .ts, .flv, .wmv, .ogv, .3gp, .mxf...;\n"
    "  any codec FFmpeg decodes): every frame is cut out. OUTPUT's extension or\n"
    "  --video-format picks the output: webm (VP9 with alpha; the default), mov (ProRes\n"
    "  4444 with alpha), mp4 (H.264: needs --bg or --mask, the default for them), or png\n"
    "  (-o names a folder of numbered frames 000001.png...). Without -o: next to the\n"
    "  input, clip.cutout.webm (clip.mask.mp4 with --mask). Frame rate, timestamps and\n"
    "  the audio stream are kept (audio re-encoded only where the container cannot hold\n"
    "  it). A damaged or truncated video stops at the named frame; the frames before it\n"
    "  are written as a complete file and the exit status is 1.\n"
    "\n"
    "Output:\n"
    "  -o, --output PATH      output file, folder, or - for stdout\n"
    "      --mask             write the matte alone (8-bit grayscale PNG)\n"
    "  -b, --bg COLOR         composite over a solid colour (RGB PNG): white, black, gray,\n"
    "                         red, green, blue, yellow, cyan, magenta, #RRGGBB, RRGGBB, #RGB\n"
    "  -b, --bg blur[:R]      composite over the photo itself, blurred: a Gaussian of R pixels\n"
    "                         (standard deviation, 0..256); default 1%% of the longer side\n"
    "      --bg-image PATH    composite over a picture, scaled to cover the frame (aspect\n"
    "                         ratio kept, centred, the overhang cropped)\n"
    "      --overlay[=COLOR]  the whole photo with its background tinted, to review a matte;\n"
    "                         default colour #78FF9B (green)\n"
    "      --overlay-opacity X  the tint's weight over the background, 0..1; default 0.5\n"
    "  -t, --threshold T      hard matte: alpha = matte >= T ? 255 : 0, T in 0..1\n"
    "      --invert           keep the background instead (applied after --threshold)\n"
    "      --clean-edges      re-estimate colours at soft edges (no old background in fur)\n"
    "      --png-level N      PNG compression effort 0 (stored) .. 12 (smallest); default 1\n"
    "      --webp             write WebP: lossless (every visible pixel exact; a mask as gray\n"
    "                         RGB); names made here end in .webp (also implied by -o X.webp)\n"
    "      --webp-quality N   lossy WebP at quality N (0..100; alpha stays exact); implies --webp\n"
    "      --video-format F   a video's output: webm, mov, mp4 or png (see above)\n"
    "  -w, --watch            keep watching the input folder for new images\n"
    "  -q, --quiet            no progress bar, no notes; errors are still printed\n"
    "\n"
    "Model:\n"
    "%s"
    "\n"
    "A progress bar is drawn on stderr for folders and videos when stderr is a terminal.\n"
    "Exit status: 0 all written, 1 some inputs failed or a video broke off, 2 usage error\n"
    "(nothing done), 3 model or device error.\n";

enum {
    OPT_OUTPUT = 1,
    OPT_MASK,
    OPT_BG,
    OPT_THRESHOLD,
    OPT_INVERT,
    OPT_CLEAN_EDGES,
    OPT_QUIET,
    OPT_PNG_LEVEL,
    OPT_WEBP,
    OPT_WEBP_QUALITY,
    OPT_VIDEO_FORMAT,
    OPT_WATCH,
    OPT_BG_IMAGE,
    OPT_OVERLAY,
    OPT_OVERLAY_OPACITY
};

static const cli_opt remove_opts[] = {
    {"output", 'o', 1, OPT_OUTPUT},
    {"mask", 0, 0, OPT_MASK},
    {"bg", 'b', 1, OPT_BG},
    {"threshold", 't', 1, OPT_THRESHOLD},
    {"invert", 0, 0, OPT_INVERT},
    {"clean-edges", 0, 0, OPT_CLEAN_EDGES},
    {"quiet", 'q', 0, OPT_QUIET},
    {"png-level", 0, 1, OPT_PNG_LEVEL},
    {"webp", 0, 0, OPT_WEBP},
    {"webp-quality", 0, 1, OPT_WEBP_QUALITY},
    {"video-format", 0, 1, OPT_VIDEO_FORMAT},
    {"watch", 'w', 0, OPT_WATCH},
    {"bg-image", 0, 1, OPT_BG_IMAGE},
    {"overlay", 0, CLI_VALUE_INLINE, OPT_OVERLAY},
    {"overlay-opacity", 0, 1, OPT_OVERLAY_OPACITY},
    CLI_ENGINE_OPTS,
    {NULL, 0, 0, 0},
};

typedef struct job {
    char *in;          /* NULL: stdin */
    char *out;         /* NULL: stdout */
    struct stat in_st;
    int has_in_st;
    char *plan_error;  /* set: the job fails without running */
} job;

typedef struct plan {
    job *v;
    size_t n, cap;
    int batch;         /* folder or several files: progress, summary */
    char *outdir;      /* batch: created after the model loads */
    char *watch_dir;   /* --watch: the folder to watch */
} plan;

static void plan_free(plan *p) {
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].in);
        free(p->v[i].out);
        free(p->v[i].plan_error);
    }
    free(p->v);
    free(p->outdir);
    free(p->watch_dir);
}

static job *plan_add(plan *p) {
    if (p->n == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 16;
        job *nv = realloc(p->v, ncap * sizeof *nv);
        if (!nv) return NULL;
        p->v = nv;
        p->cap = ncap;
    }
    job *j = &p->v[p->n++];
    memset(j, 0, sizeof *j);
    return j;
}

/* The format of the outputs whose names the CLI makes (and of stdout): "png", or
 * "webp" with --webp / --webp-quality. */
static const char *made_ext = "png";

/* The encoding of one output: its name's extension, else made_ext. */
static int job_encoding(const char *out, int webp_encoding) {
    if (out ? cli_has_suffix_ci(out, ".webp") : strcmp(made_ext, "webp") == 0) return webp_encoding;
    return PM_ENCODING_PNG;
}

static int same_file(const struct stat *a, const struct stat *b) {
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

static int oom(void) {
    cli_error("out of memory");
    return CLI_EXIT_FAILED;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the image files of folder dir (sorted by name) with outputs in outdir. */
static int plan_folder(plan *p, const char *dir, const char *outdir) {
    DIR *d = opendir(dir);
    if (!d) return cli_usage("remove", "cannot read folder '%s': %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = CLI_EXIT_OK;
    while ((e = readdir(d)) != NULL) {
        if (!cli_is_image_name(e->d_name)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                rc = oom();
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = oom();
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == CLI_EXIT_OK && n > 0) qsort(names, n, sizeof *names, cmp_str); /* names is NULL when n is 0 */
    for (size_t i = 0; i < n && rc == CLI_EXIT_OK; i++) {
        char *in = cli_join(dir, names[i]);
        if (!in) {
            rc = oom();
            break;
        }
        struct stat st;
        if (stat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(in); /* a folder or a dangling link named like an image */
            continue;
        }
        char *stem = cli_stem(names[i]);
        char *name = stem ? malloc(strlen(stem) + 6) : NULL;
        if (name) sprintf(name, "%s.%s", stem, made_ext);
        free(stem);
        char *out = name ? cli_join(outdir, name) : NULL;
        free(name);
        job *j = out ? plan_add(p) : NULL;
        if (!j) {
            free(in);
            free(out);
            rc = oom();
            break;
        }
        j->in = in;
        j->out = out;
        j->in_st = st;
        j->has_in_st = 1;
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

typedef struct ino_key {
    dev_t dev;
    ino_t ino;
    size_t job;
} ino_key;

static int cmp_ino(const void *a, const void *b) {
    const ino_key *x = a, *y = b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    return 0;
}

static const plan *sort_plan; /* for cmp_out_idx: qsort has no context argument */
static int cmp_out_idx(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = strcmp(sort_plan->v[x].out, sort_plan->v[y].out);
    if (c) return c;
    return (x > y) - (x < y);
}

static int set_plan_error(job *j, const char *fmt, const char *a, const char *b) {
    size_t n = strlen(fmt) + strlen(a) + strlen(b) + 1;
    j->plan_error = malloc(n);
    if (!j->plan_error) return -1;
    snprintf(j->plan_error, n, fmt, a, b);
    return 0;
}

/* Batch checks: two inputs that map to one output, and outputs that are inputs. */
static int plan_check_batch(plan *p) {
    if (p->n == 0) return CLI_EXIT_OK;
    size_t *idx = malloc(p->n * sizeof *idx);
    ino_key *keys = malloc(p->n * sizeof *keys);
    if (!idx || !keys) {
        free(idx);
        free(keys);
        return oom();
    }
    for (size_t i = 0; i < p->n; i++) idx[i] = i;
    sort_plan = p;
    qsort(idx, p->n, sizeof *idx, cmp_out_idx);
    for (size_t k = 1; k < p->n; k++) {
        job *first = &p->v[idx[k - 1]], *j = &p->v[idx[k]];
        if (strcmp(first->out, j->out) == 0 && !j->plan_error) {
            /* Walk back to the first job of this output name for the message. */
            size_t f = k - 1;
            while (f > 0 && strcmp(p->v[idx[f - 1]].out, j->out) == 0) f--;
            if (set_plan_error(j, "not processed: its output %s is also the output of %s", j->out,
                               p->v[idx[f]].in) != 0) {
                free(idx);
                free(keys);
                return oom();
            }
        }
    }
    size_t nk = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (!p->v[i].has_in_st) continue;
        keys[nk].dev = p->v[i].in_st.st_dev;
        keys[nk].ino = p->v[i].in_st.st_ino;
        keys[nk].job = i;
        nk++;
    }
    qsort(keys, nk, sizeof *keys, cmp_ino);
    for (size_t i = 0; i < p->n; i++) {
        job *j = &p->v[i];
        struct stat st;
        if (j->plan_error || stat(j->out, &st) != 0) continue;
        ino_key key = {st.st_dev, st.st_ino, 0};
        ino_key *hit = bsearch(&key, keys, nk, sizeof *keys, cmp_ino);
        if (hit && set_plan_error(j, "not processed: its output %s is the input %s, which is never overwritten",
                                  j->out, p->v[hit->job].in) != 0) {
            free(idx);
            free(keys);
            return oom();
        }
    }
    free(idx);
    free(keys);
    return CLI_EXIT_OK;
}

/* Output checks for one named output file: .png or .webp (.webp when --webp asks for
 * it), existing folder, not an input. */
static int check_output_file(const char *out, const struct stat *in_st, const char *in_label) {
    if (!cli_has_suffix_ci(out, ".png") && !cli_has_suffix_ci(out, ".webp"))
        return cli_usage("remove", "output '%s' must end in .png or .webp (the format petmatte writes)", out);
    if (strcmp(made_ext, "webp") == 0 && !cli_has_suffix_ci(out, ".webp"))
        return cli_usage("remove", "output '%s' must end in .webp with --webp or --webp-quality", out);
    char *dir = cli_dirname(out);
    if (!dir) return oom();
    struct stat st;
    int dir_ok = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    if (!dir_ok) {
        int rc = cli_usage("remove", "output folder '%s' does not exist", dir);
        free(dir);
        return rc;
    }
    free(dir);
    if (in_st && stat(out, &st) == 0 && same_file(&st, in_st))
        return cli_usage("remove", "output '%s' is the same file as the input %s; petmatte never "
                         "overwrites an input", out, in_label);
    return CLI_EXIT_OK;
}

static int make_plan(plan *p, char **inputs, size_t n_in, const char *output, int mask) {
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < n_in; i++)
        if (strcmp(inputs[i], "-") == 0 && n_in > 1)
            return cli_usage("remove", "'-' (stdin) must be the only input");

    if (strcmp(inputs[0], "-") == 0) {
        job *j = plan_add(p);
        if (!j) return oom();
        if (fstat(STDIN_FILENO, &j->in_st) == 0 && S_ISREG(j->in_st.st_mode)) j->has_in_st = 1;
        if (!output || strcmp(output, "-") == 0) {
            if (isatty(STDOUT_FILENO))
                return cli_usage("remove", "refusing to write a PNG to a terminal; redirect stdout or "
                                 "use -o FILE");
            return CLI_EXIT_OK;
        }
        struct stat st;
        if (stat(output, &st) == 0 && S_ISDIR(st.st_mode))
            return cli_usage("remove", "with stdin as input, -o must name a .png or .webp file, not the folder '%s'",
                             output);
        if (!(j->out = strdup(output))) return oom();
        return check_output_file(j->out, j->has_in_st ? &j->in_st : NULL, "(stdin)");
    }

    struct stat *sts = calloc(n_in, sizeof *sts);
    if (!sts) return oom();
    int any_dir = 0;
    for (size_t i = 0; i < n_in; i++) {
        if (stat(inputs[i], &sts[i]) != 0) {
            int e = errno;
            free(sts);
            return cli_usage("remove", "cannot read '%s': %s", inputs[i], strerror(e));
        }
        if (S_ISDIR(sts[i].st_mode))
            any_dir = 1;
        else if (!S_ISREG(sts[i].st_mode)) {
            free(sts);
            return cli_usage("remove", "'%s' is neither a file nor a folder", inputs[i]);
        }
    }
    int rc = CLI_EXIT_OK;
    struct stat ost;
    int out_exists = output && strcmp(output, "-") != 0 && stat(output, &ost) == 0;
    int out_is_dir = out_exists && S_ISDIR(ost.st_mode);

    if (!any_dir && n_in == 1) {
        /* One file. */
        job *j = plan_add(p);
        if (!j || !(j->in = strdup(inputs[0]))) {
            free(sts);
            return oom();
        }
        j->in_st = sts[0];
        j->has_in_st = 1;
        free(sts);
        if (output && strcmp(output, "-") == 0) {
            if (isatty(STDOUT_FILENO))
                return cli_usage("remove", "refusing to write a PNG to a terminal; redirect stdout or "
                                 "use -o FILE");
            return CLI_EXIT_OK;
        }
        char *stem = cli_stem(j->in);
        if (!stem) return oom();
        char *name = malloc(strlen(stem) + 16);
        if (!name) {
            free(stem);
            return oom();
        }
        if (output && out_is_dir) {
            sprintf(name, "%s.%s", stem, made_ext);
            j->out = cli_join(output, name);
        } else if (output) {
            j->out = strdup(output);
        } else {
            char *dir = cli_dirname(j->in);
            sprintf(name, "%s.%s.%s", stem, mask ? "mask" : "cutout", made_ext);
            j->out = dir ? cli_join(dir, name) : NULL;
            free(dir);
        }
        free(stem);
        free(name);
        if (!j->out) return oom();
        return check_output_file(j->out, &j->in_st, j->in);
    }

    /* A batch: a folder, or several inputs. */
    p->batch = 1;
    if (!output) {
        free(sts);
        return cli_usage("remove", "%s needs -o OUTDIR", any_dir ? "a folder" : "several inputs");
    }
    if (strcmp(output, "-") == 0) {
        free(sts);
        return cli_usage("remove", "-o - (stdout) takes a single input");
    }
    if (out_exists && !out_is_dir) {
        free(sts);
        return cli_usage("remove", "-o '%s' is a file; with %s it must be a folder", output,
                         any_dir ? "a folder" : "several inputs");
    }
    for (size_t i = 0; i < n_in && rc == CLI_EXIT_OK; i++) {
        if (S_ISDIR(sts[i].st_mode)) {
            if (out_is_dir && same_file(&ost, &sts[i])) {
                rc = cli_usage("remove", "output folder '%s' is the input folder '%s'; choose another -o",
                               output, inputs[i]);
                break;
            }
            rc = plan_folder(p, inputs[i], output);
        } else {
            char *stem = cli_stem(inputs[i]);
            char *name = stem ? malloc(strlen(stem) + 6) : NULL;
            if (name) sprintf(name, "%s.%s", stem, made_ext);
            free(stem);
            job *j = name ? plan_add(p) : NULL;
            if (!j) {
                free(name);
                rc = oom();
                break;
            }
            j->in = strdup(inputs[i]);
            j->out = cli_join(output, name);
            free(name);
            j->in_st = sts[i];
            j->has_in_st = 1;
            if (!j->in || !j->out) rc = oom();
        }
    }
    free(sts);
    if (rc == CLI_EXIT_OK) rc = plan_check_batch(p);
    if (rc == CLI_EXIT_OK && !(p->outdir = strdup(output))) rc = oom();
    return rc;
}

static void on_signal(int sig) {
    cli_cleanup_on_signal();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* run_job's result when the model could not be loaded: no later job can run. */
#define JOB_NO_MODEL (-2)

/* Runs one job; on failure prints one line and returns -1. While the model is not
 * loaded yet, model_path names it: a failure to load it returns JOB_NO_MODEL. */
static int run_job(pm_ctx *ctx, const job *j, const pm_remove_options *opt, size_t limit, const char *model_path) {
    const char *label = j->in ? j->in : "(stdin)";
    char err[768];
    if (j->plan_error) {
        cli_error("%s: %s", label, j->plan_error);
        return -1;
    }
    unsigned char *data;
    size_t size;
    int rc = j->in ? cli_read_file(j->in, limit, &data, &size, err, sizeof err)
                   : cli_read_fd(STDIN_FILENO, "(stdin)", limit, &data, &size, err, sizeof err);
    if (rc != 0) {
        cli_error("%s", err);
        return -1;
    }
    pm_image in;
    pm_image_init(&in);
    in.format = PM_FORMAT_ENCODED;
    in.data = data;
    in.size = size;
    pm_remove_options o = *opt; /* the output's name picks PNG or WebP */
    o.encoding = job_encoding(j->out, opt->encoding);
    pm_output *out = NULL;
    pm_code code = pm_remove_bg(ctx, &in, &o, &out);
    free(data);
    if (code != PM_OK) {
        pm_status_info st;
        pm_status_info_init(&st);
        if (model_path && pm_status(ctx, &st) == PM_OK && st.state != PM_STATE_READY) {
            cli_error("cannot load %s: %s", model_path, pm_errmsg(ctx));
            return JOB_NO_MODEL;
        }
        cli_error("%s: %s", label, pm_errmsg(ctx));
        return -1;
    }
    rc = j->out ? cli_write_atomic(j->out, out->data, out->size, err, sizeof err)
                : cli_write_fd(STDOUT_FILENO, out->data, out->size, err, sizeof err);
    pm_output_free(out);
    if (rc != 0) {
        if (j->out)
            cli_error("%s: %s", label, err);
        else
            cli_error("%s: cannot write to stdout: %s", label, err);
        return -1;
    }
    return 0;
}

/* --bg: a colour into *rgb, or "blur" / "blur:RADIUS" into opt. 0 when valid. */
static int parse_bg(const char *value, pm_remove_options *opt, uint32_t *rgb) {
    if (strncmp(value, "blur", 4) == 0 && (value[4] == '\0' || value[4] == ':')) {
        opt->background = PM_BACKGROUND_BLUR;
        opt->blur_radius = 0.0f;
        return value[4] == ':' && !cli_parse_float(value + 5, 0.0f, 256.0f, &opt->blur_radius) ? -1 : 0;
    }
    opt->background = PM_BACKGROUND_COLOR;
    return cli_parse_color(value, rgb) ? 0 : -1;
}

int cli_cmd_remove(int argc, char **argv) {
    cli_engine engine;
    cli_engine_init(&engine);
    /* A command-line run is short: one warm-up inference, not until stable. */
    cli_engine_tune(&engine, PM_TUNE_WARMUP_MIN_RUNS, 1);
    cli_engine_tune(&engine, PM_TUNE_WARMUP_MAX_RUNS, 1);
    pm_remove_options opt;
    pm_remove_options_init(&opt);
    /* The WebP kind for .webp outputs; run_job picks PNG or this per output name. */
    opt.encoding = PM_ENCODING_WEBP_LOSSLESS;
    const char *output = NULL, *video_format = NULL, *bg_image = NULL;
    int mask = 0, have_bg = 0, quiet = 0, watch = 0, overlay = 0;
    made_ext = "png";
    uint32_t bg = 0;
    char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    if (!inputs) return oom();
    size_t n_in = 0;

    cli_args a;
    cli_args_init(&a, "remove", argc, argv);
    int kind, id, rc = CLI_EXIT_OK;
    const char *value;
    while (rc == CLI_EXIT_OK && (kind = cli_next(&a, remove_opts, &id, &value)) != CLI_ARG_END) {
        if (kind == CLI_ARG_ERROR) {
            rc = CLI_EXIT_USAGE;
            break;
        }
        if (kind == CLI_ARG_POSITIONAL) {
            inputs[n_in++] = (char *)value;
            continue;
        }
        switch (id) {
        case CLI_OPT_HELP:
            printf(remove_help, cli_engine_help());
            free(inputs);
            return CLI_EXIT_OK;
        case OPT_OUTPUT:
            if (!*value) rc = cli_usage("remove", "-o needs a path");
            output = value;
            break;
        case OPT_MASK: mask = 1; break;
        case OPT_BG:
            if (parse_bg(value, &opt, &bg) != 0)
                rc = cli_usage("remove", "--bg '%s' is not a colour (white, black, gray, red, green, blue, "
                               "yellow, cyan, magenta, #RRGGBB, RRGGBB, #RGB) or blur[:RADIUS] with a "
                               "RADIUS in 0..256", value);
            have_bg = 1;
            break;
        case OPT_BG_IMAGE:
            if (!*value) rc = cli_usage("remove", "--bg-image needs a path");
            bg_image = value;
            break;
        case OPT_OVERLAY:
            overlay = 1;
            if (value && !cli_parse_color(value, &opt.overlay_rgb))
                rc = cli_usage("remove", "--overlay='%s' is not a colour: white, black, gray, red, green, "
                               "blue, yellow, cyan, magenta, #RRGGBB, RRGGBB or #RGB", value);
            break;
        case OPT_OVERLAY_OPACITY:
            if (!cli_parse_unit(value, &opt.overlay_opacity))
                rc = cli_usage("remove", "--overlay-opacity '%s' is not a number in 0..1", value);
            overlay = 1;
            break;
        case OPT_THRESHOLD:
            if (!cli_parse_unit(value, &opt.threshold))
                rc = cli_usage("remove", "--threshold '%s' is not a number in 0..1", value);
            break;
        case OPT_INVERT: opt.invert = 1; break;
        case OPT_CLEAN_EDGES: opt.clean_edges = 1; break;
        case OPT_QUIET: quiet = 1; break;
        case OPT_PNG_LEVEL:
            if (!cli_parse_int(value, 0, 12, &opt.png_level))
                rc = cli_usage("remove", "--png-level '%s' is not an integer in 0..12", value);
            break;
        case OPT_WEBP: made_ext = "webp"; break;
        case OPT_VIDEO_FORMAT: video_format = value; break;
        case OPT_WATCH: watch = 1; break;
        case OPT_WEBP_QUALITY:
            if (!cli_parse_int(value, 0, 100, &opt.webp_quality))
                rc = cli_usage("remove", "--webp-quality '%s' is not an integer in 0..100", value);
            opt.encoding = PM_ENCODING_WEBP;
            made_ext = "webp";
            break;
        default:
            if (cli_engine_option(&engine, "remove", remove_opts, id, value) < 0) rc = CLI_EXIT_USAGE;
            break;
        }
    }
    if (rc == CLI_EXIT_OK && mask && (have_bg || bg_image || overlay))
        rc = cli_usage("remove", "--mask excludes --bg, --bg-image and --overlay (a mask has no background)");
    if (rc == CLI_EXIT_OK && have_bg + !!bg_image + overlay > 1)
        rc = cli_usage("remove", "--bg, --bg-image and --overlay exclude each other (one background)");
    if (rc == CLI_EXIT_OK && n_in == 0)
        rc = cli_usage("remove", "no input: give a file, a folder, or - for stdin");
    if (rc != CLI_EXIT_OK) {
        free(inputs);
        return rc;
    }
    if (mask) opt.output = PM_OUTPUT_MASK;
    if (have_bg) {
        opt.output = PM_OUTPUT_COMPOSITE;
        opt.background_rgb = bg;
    }
    if (overlay) opt.output = PM_OUTPUT_OVERLAY;

    pm_params defaults;
    pm_params_init(&defaults);
    size_t limit = (size_t)defaults.max_encoded_bytes;
    /* The picture is read once, before the model loads; the library decodes it for
     * each image (and says so when it cannot). */
    unsigned char *picture_data = NULL;
    pm_image picture;
    pm_image_init(&picture);
    if (bg_image) {
        char err[768];
        size_t size = 0;
        if (cli_read_file(bg_image, limit, &picture_data, &size, err, sizeof err) != 0) {
            free(inputs);
            return cli_usage("remove", "--bg-image: %s", err);
        }
        picture.data = picture_data;
        picture.size = size;
        opt.output = PM_OUTPUT_COMPOSITE;
        opt.background = PM_BACKGROUND_IMAGE;
        opt.background_image = &picture;
    }
    cli_remove_request req = {opt, output, video_format, mask, have_bg, quiet, made_ext, opt.encoding};

    struct stat first_st;
    int first_is_file = strcmp(inputs[0], "-") != 0 && stat(inputs[0], &first_st) == 0 && S_ISREG(first_st.st_mode);
    int first_is_dir = strcmp(inputs[0], "-") != 0 && stat(inputs[0], &first_st) == 0 && S_ISDIR(first_st.st_mode);
    if (n_in == 1 && first_is_file && cli_is_video_name(inputs[0]) && !watch) {
        rc = cli_video_remove(&engine, &req, inputs[0]);
        free(inputs);
        free(picture_data);
        return rc;
    }
    for (size_t i = 0; n_in > 1 && i < n_in; i++) {
        if (cli_is_video_name(inputs[i])) {
            rc = cli_usage("remove", "'%s' is a video: videos are cut out one per command", inputs[i]);
            free(inputs);
            free(picture_data);
            return rc;
        }
    }
    if (video_format) {
        free(inputs);
        free(picture_data);
        return cli_usage("remove", "--video-format needs one video as input (.mp4, .mov, .mkv, .webm, .avi, ...)");
    }
    if (watch && (n_in != 1 || !first_is_dir || !output)) {
        free(inputs);
        free(picture_data);
        return cli_usage("remove", "--watch takes one folder and -o OUTDIR");
    }

    char *watch_dir = watch ? strdup(inputs[0]) : NULL;
    if (watch && !watch_dir) {
        free(inputs);
        free(picture_data);
        return oom();
    }
    plan p;
    rc = make_plan(&p, inputs, n_in, output, mask);
    p.watch_dir = watch_dir; /* make_plan starts from a cleared plan */
    free(inputs);
    if (rc != CLI_EXIT_OK) {
        plan_free(&p);
        free(picture_data);
        return rc;
    }
    if (p.n == 0 && !watch) {
        if (!quiet) cli_error("no image files found (looked for .png, .jpg, .jpeg, .bmp, .gif, .tga, ...)");
        plan_free(&p);
        free(picture_data);
        return CLI_EXIT_OK;
    }


    pm_ctx *ctx;
    char model_path[PATH_MAX];
    rc = cli_open(&engine, "remove", &ctx, model_path, sizeof model_path);
    if (rc != CLI_EXIT_OK) {
        free(picture_data);
        plan_free(&p);
        return rc;
    }
    /* No separate warm-up: the first pm_remove_bg loads the model, and on the CPU its
     * image is the first inference (on CUDA the library warms as pm_warmup does). */
    if (p.batch) {
        char err[512];
        if (cli_mkdir_p(p.outdir, err, sizeof err) != 0) {
            cli_error("%s", err);
            pm_close(ctx);
            free(picture_data);
            plan_free(&p);
            return CLI_EXIT_FAILED;
        }
    }

    cli_on_stop_signals(on_signal, 0, 1);

    cli_progress bar;
    cli_progress_init(&bar, p.n, p.batch && !quiet && isatty(STDERR_FILENO));
    size_t failed = 0;
    int loaded = 0;
    for (size_t i = 0; i < p.n; i++) {
        cli_progress_draw(&bar, i, failed, p.v[i].in);
        int job_rc = run_job(ctx, &p.v[i], &opt, limit, loaded ? NULL : model_path);
        if (job_rc == JOB_NO_MODEL) {
            cli_progress_end(&bar);
            pm_close(ctx);
            free(picture_data);
            plan_free(&p);
            return CLI_EXIT_MODEL;
        }
        if (job_rc != 0) failed++;
        if (!loaded) {
            pm_status_info st;
            pm_status_info_init(&st);
            loaded = pm_status(ctx, &st) == PM_OK && st.state == PM_STATE_READY;
            if (loaded && !quiet && st.random_weights)
                cli_error("note: model '%s' has random weights (a test model); its cut-outs are meaningless",
                          st.model_name);
        }
    }
    cli_progress_draw(&bar, p.n, failed, NULL);
    cli_progress_end(&bar);
    if (watch) {
        /* The images already there are done; now the ones that appear. */
        rc = cli_watch(ctx, &req, p.watch_dir, p.outdir);
        pm_close(ctx);
        plan_free(&p);
        return failed ? CLI_EXIT_FAILED : rc;
    }
    if (p.batch && failed)
        cli_error("%zu of %zu image%s failed", failed, p.n, p.n == 1 ? "" : "s");
    else if (p.batch && !quiet && isatty(STDERR_FILENO))
        fprintf(stderr, "%s: %zu image%s written to %s in %.1f s\n", CLI_NAME, p.n, p.n == 1 ? "" : "s",
                p.outdir, cli_now() - bar.t0);
    pm_close(ctx);
    free(picture_data);
    plan_free(&p);
    return failed ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}
