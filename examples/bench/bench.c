/*
 * bench.c - petmatte-bench: what a host sees of libpetmatte, measured through the
 * public API only (docs/benchmarks.md says what each figure means).
 *
 *   cold        whole fresh processes: spawn -> pm_warmup READY -> first matte; the
 *               bench re-executes itself (/proc/self/exe --cold-child FD) and the child
 *               reports its absolute CLOCK_REALTIME times through a pipe
 *   warm        batch 1, model only: raw RGB exactly at the model input size, MASK + RAW
 *               out (no decode, no resampling, no encode); also the worst of the first
 *               50 calls after warm-up and its ratio to the median
 *   throughput  T threads calling pm_remove_bg on one context, a fixed count each
 *   memory      pm_status_info.device_memory_bytes after warm-up, after the runs, the
 *               JPEG and the encoded calls; the allocator's peak (device_memory_peak_bytes);
 *               the process's resident memory
 *   jpeg        a JPEG file (tools/bench.py writes a 12 MP one) -> RGBA pixels, end to
 *               end, with clean_edges off and/or on
 *   encoded     images (JPEG files, or raw RGBA) -> RGBA as RAW pixels, PNG, lossless
 *               WebP and lossy WebP, end to end: the time of each and the encoded bytes
 *
 * Every figure is printed as median, min and max over its samples; --json FILE keeps
 * every sample.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <petmatte.h>

#include "../common/tune_option.h"

extern char **environ;

#define BENCH_MAX_CONCURRENCY 16
#define BENCH_FIRST_CALLS 50
#define BENCH_MAX_SERIES 96
#define BENCH_MAX_DERIVED 64
#define BENCH_MAX_ENCODED 4
#define BENCH_MAX_TUNE 64

enum {
    FIG_COLD = 1 << 0,
    FIG_WARM = 1 << 1,
    FIG_THROUGHPUT = 1 << 2,
    FIG_JPEG = 1 << 3,
    FIG_ENCODED = 1 << 4,
    FIG_ALL = FIG_COLD | FIG_WARM | FIG_THROUGHPUT | FIG_JPEG | FIG_ENCODED
};

/* One image of the encoded figure: an encoded file, or raw RGBA of width x height. */
typedef struct encoded_input {
    const char *path;
    int width, height; /* 0: path is an encoded file */
} encoded_input;

enum { CLEAN_OFF = 1, CLEAN_ON = 2, CLEAN_BOTH = CLEAN_OFF | CLEAN_ON };

typedef struct options {
    const char *model;
    const char *device;
    const char *json_path;
    const char *jpeg_path;
    int precision;
    int threads;
    int input_size;
    int runs;
    int cold_repeats;
    int cold_prime;
    int concurrency[BENCH_MAX_CONCURRENCY];
    int n_concurrency;
    int per_thread;
    int tp_repeats;
    int jpeg_runs;
    int clean_edges; /* CLEAN_* bits */
    int max_batch;   /* pm_params; 0 = the library's default */
    encoded_input encoded[BENCH_MAX_ENCODED]; /* --encoded / --encoded-rgba, in order */
    int n_encoded;
    int encoded_runs;
    int png_level;    /* pm_remove_options.png_level for the encoded figure */
    int webp_quality; /* and webp_quality */
    const char *save_encoded; /* folder for the last output of each variant, or NULL */
    tune_setting tune[BENCH_MAX_TUNE]; /* --tune, in order: a later one for a key wins */
    int n_tune;
    unsigned figures;
    int cold_child_fd; /* >= 0: this process is a cold child writing to that fd */
} options;

/* ------------------------------------------------------------------ clocks */

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Seconds since the epoch: comparable between processes (cold figures). */
static double real_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ errors */

/* One line on stderr: prefix, the formatted message, a newline. */
static void vsay(const char *prefix, const char *fmt, va_list ap) {
    fputs(prefix, stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsay("petmatte-bench: ", fmt, ap);
    va_end(ap);
    exit(1);
}

static void fail_pm(const pm_ctx *ctx, pm_code code, const char *what) {
    fail("%s: %s (%s)", what, pm_errmsg(ctx), pm_strerror(code));
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) fail("out of memory");
    return p;
}

static void progress(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsay("[bench] ", fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ series */

enum { SEC_COLD, SEC_WARM, SEC_THROUGHPUT, SEC_MEMORY, SEC_JPEG, SEC_ENCODED, SEC_COUNT };
static const char *const section_title[SEC_COUNT] = {
    "cold start (fresh processes)",
    "warm, batch 1, model input size, MASK raw out",
    "throughput, concurrent callers on one context",
    "memory",
    "JPEG bytes -> RGBA pixels, end to end",
    "image -> RGBA as RAW pixels, PNG or WebP, end to end (bytes: below)",
};

typedef struct series {
    char key[64];
    char label[80];
    const char *unit;
    int section;
    double *v;
    size_t n, cap;
} series;

static series all_series[BENCH_MAX_SERIES];
static size_t n_series;

typedef struct derived {
    char key[64];
    char label[96];
    double value;
    const char *unit;
} derived;

static derived all_derived[BENCH_MAX_DERIVED];
static size_t n_derived;

static series *series_new(int section, const char *unit, const char *key, const char *label) {
    if (n_series == BENCH_MAX_SERIES) fail("too many figures");
    series *s = &all_series[n_series++];
    snprintf(s->key, sizeof s->key, "%s", key);
    snprintf(s->label, sizeof s->label, "%s", label);
    s->unit = unit;
    s->section = section;
    return s;
}

static void series_add(series *s, double value) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        double *v = realloc(s->v, cap * sizeof *v);
        if (!v) fail("out of memory");
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = value;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median (mean of the middle two for an even count), min and max of v[0..n). */
static void stats_of(const double *v, size_t n, double *med, double *lo, double *hi) {
    if (n == 0) {
        *med = *lo = *hi = NAN;
        return;
    }
    double *s = xcalloc(n, sizeof *s);
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    *med = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    *lo = s[0];
    *hi = s[n - 1];
    free(s);
}

static double median_of(const series *s) {
    double med, lo, hi;
    stats_of(s->v, s->n, &med, &lo, &hi);
    return med;
}

static void derived_add(const char *key, const char *label, double value, const char *unit) {
    if (n_derived == BENCH_MAX_DERIVED) fail("too many derived figures");
    derived *d = &all_derived[n_derived++];
    snprintf(d->key, sizeof d->key, "%s", key);
    snprintf(d->label, sizeof d->label, "%s", label);
    d->value = value;
    d->unit = unit;
}

/* ------------------------------------------------------------------ options */

static void usage(FILE *f) {
    fputs("usage: petmatte-bench --model PATH [options]\n"
          "  --model PATH          TorchScript model file (required)\n"
          "  --device D            auto (default), cpu, cuda:N\n"
          "  --precision P         auto (default), fp32, fp16, bf16\n"
          "  --threads N           CPU threads for the model (default: one a physical core)\n"
          "  --input-size N        model input side for a model without a manifest\n"
          "  --runs N              warm calls, batch 1 (default 100)\n"
          "  --cold-repeats N      fresh processes for the cold figures (default 5)\n"
          "  --cold-prime N        unrecorded fresh processes first, to warm the page cache (default 1)\n"
          "  --concurrency LIST    caller threads for throughput, e.g. 1,2,4,8 (default 1,2,4)\n"
          "  --per-thread N        calls each caller makes per throughput round (default 16)\n"
          "  --tp-repeats N        throughput rounds per thread count (default 3)\n"
          "  --jpeg FILE           JPEG for the end-to-end figure (tools/bench.py writes a 12 MP one)\n"
          "  --jpeg-runs N         timed end-to-end calls per variant (default 5)\n"
          "  --clean-edges W       off, on or both (default both): end-to-end variants\n"
          "  --encoded FILE        an image for the encoded figure (repeatable, at most 4;\n"
          "                        default: the --jpeg file)\n"
          "  --encoded-rgba WxH:FILE  raw 8-bit RGBA pixels for the encoded figure (repeatable)\n"
          "  --encoded-runs N      timed calls per encoding (default 5)\n"
          "  --png-level N         pm_remove_options.png_level for it (default -1: the library's)\n"
          "  --webp-quality N      pm_remove_options.webp_quality for it (default 90)\n"
          "  --save-encoded DIR    write each variant's last output to DIR/<image>.<variant>.<ext>\n"
          "                        (DIR is made if its parent exists)\n"
          "  --max-batch N         1..64 (pm_params.max_batch; default the library's, 1)\n"
          "  --tune KEY=VALUE      a tuning key (pm_tune_set), repeatable: VALUE an integer,\n"
          "                        or auto, on, off; KEY one of:\n",
          f);
    char keys[1024];
    tune_option_keys_wrapped(keys, sizeof keys, 24, 80);
    fputs(keys, f);
    fputs("  --figures LIST        any of cold,warm,throughput,jpeg,encoded (default all;\n"
          "                        memory is always reported)\n"
          "  --json FILE           write every sample, the medians and the setup as JSON\n"
          "  -h, --help            this help\n",
          f);
}

static int parse_int(const char *flag, const char *s, int lo, int hi) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        fail("%s '%s' is not a whole number in %d..%d", flag, s, lo, hi);
    return (int)v;
}

static int parse_precision(const char *s) {
    static const struct { const char *name; int value; } names[] = {
        {"auto", PM_PRECISION_AUTO}, {"fp32", PM_PRECISION_FP32},
        {"fp16", PM_PRECISION_FP16}, {"bf16", PM_PRECISION_BF16},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i].name)) return names[i].value;
    fail("--precision '%s' is not one of auto, fp32, fp16, bf16", s);
    return 0;
}

static void parse_concurrency(options *o, const char *s) {
    o->n_concurrency = 0;
    const char *p = s;
    while (*p) {
        char *end = NULL;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 1 || v > 256 || (*end && *end != ','))
            fail("--concurrency '%s' is not a list of thread counts in 1..256, e.g. 1,2,4,8", s);
        if (o->n_concurrency == BENCH_MAX_CONCURRENCY)
            fail("--concurrency takes at most %d counts", BENCH_MAX_CONCURRENCY);
        o->concurrency[o->n_concurrency++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (o->n_concurrency == 0) fail("--concurrency needs at least one thread count");
}

static unsigned parse_figures(const char *s) {
    unsigned figures = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = buf; tok && *tok;) {
        char *comma = strchr(tok, ',');
        if (comma) *comma = '\0';
        if (!strcmp(tok, "cold")) figures |= FIG_COLD;
        else if (!strcmp(tok, "warm")) figures |= FIG_WARM;
        else if (!strcmp(tok, "throughput")) figures |= FIG_THROUGHPUT;
        else if (!strcmp(tok, "jpeg")) figures |= FIG_JPEG;
        else if (!strcmp(tok, "encoded")) figures |= FIG_ENCODED;
        else if (!strcmp(tok, "all")) figures |= FIG_ALL;
        else fail("--figures: '%s' is not one of cold, warm, throughput, jpeg, encoded, all", tok);
        tok = comma ? comma + 1 : NULL;
    }
    if (!figures) fail("--figures needs at least one of cold, warm, throughput, jpeg, encoded");
    return figures;
}

static void parse_args(options *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->device = "auto";
    o->precision = PM_PRECISION_AUTO;
    o->runs = 100;
    o->cold_repeats = 5;
    o->cold_prime = 1;
    o->concurrency[0] = 1, o->concurrency[1] = 2, o->concurrency[2] = 4;
    o->n_concurrency = 3;
    o->per_thread = 16;
    o->tp_repeats = 3;
    o->jpeg_runs = 5;
    o->clean_edges = CLEAN_BOTH;
    o->encoded_runs = 5;
    o->png_level = -1;
    o->webp_quality = 90;
    o->figures = FIG_ALL;
    o->cold_child_fd = -1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            usage(stderr);
            fail("%s: unknown option or missing value", a);
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--device")) o->device = v;
        else if (!strcmp(a, "--precision")) o->precision = parse_precision(v);
        else if (!strcmp(a, "--threads")) o->threads = parse_int(a, v, 0, 1024);
        else if (!strcmp(a, "--input-size")) o->input_size = parse_int(a, v, 0, 8192);
        else if (!strcmp(a, "--runs")) o->runs = parse_int(a, v, 1, 1000000);
        else if (!strcmp(a, "--cold-repeats")) o->cold_repeats = parse_int(a, v, 1, 1000);
        else if (!strcmp(a, "--cold-prime")) o->cold_prime = parse_int(a, v, 0, 100);
        else if (!strcmp(a, "--concurrency")) parse_concurrency(o, v);
        else if (!strcmp(a, "--per-thread")) o->per_thread = parse_int(a, v, 1, 1000000);
        else if (!strcmp(a, "--tp-repeats")) o->tp_repeats = parse_int(a, v, 1, 1000);
        else if (!strcmp(a, "--jpeg")) o->jpeg_path = v;
        else if (!strcmp(a, "--jpeg-runs")) o->jpeg_runs = parse_int(a, v, 1, 100000);
        else if (!strcmp(a, "--clean-edges")) {
            if (!strcmp(v, "off")) o->clean_edges = CLEAN_OFF;
            else if (!strcmp(v, "on")) o->clean_edges = CLEAN_ON;
            else if (!strcmp(v, "both")) o->clean_edges = CLEAN_BOTH;
            else fail("--clean-edges '%s' is not one of off, on, both", v);
        } else if (!strcmp(a, "--max-batch")) o->max_batch = parse_int(a, v, 1, 64);
        else if (!strcmp(a, "--encoded") || !strcmp(a, "--encoded-rgba")) {
            if (o->n_encoded == BENCH_MAX_ENCODED) fail("at most %d --encoded images", BENCH_MAX_ENCODED);
            encoded_input *e = &o->encoded[o->n_encoded++];
            e->path = v;
            if (!strcmp(a, "--encoded-rgba")) {
                char *end = NULL;
                long w = strtol(v, &end, 10), h = 0;
                if (end && *end == 'x') h = strtol(end + 1, &end, 10);
                if (w < 1 || h < 1 || w > 65535 || h > 65535 || !end || *end != ':' || !end[1])
                    fail("--encoded-rgba '%s' is not WIDTHxHEIGHT:FILE", v);
                e->width = (int)w, e->height = (int)h, e->path = end + 1;
            }
        } else if (!strcmp(a, "--encoded-runs")) o->encoded_runs = parse_int(a, v, 1, 100000);
        else if (!strcmp(a, "--png-level")) o->png_level = parse_int(a, v, -1, 12);
        else if (!strcmp(a, "--webp-quality")) o->webp_quality = parse_int(a, v, 0, 100);
        else if (!strcmp(a, "--save-encoded")) o->save_encoded = v;
        else if (!strcmp(a, "--tune")) {
            char why[768];
            if (o->n_tune == BENCH_MAX_TUNE) fail("more than %d --tune options", BENCH_MAX_TUNE);
            if (!tune_option_parse(v, &o->tune[o->n_tune], why, sizeof why)) fail("%s", why);
            o->n_tune++;
        } else if (!strcmp(a, "--figures")) o->figures = parse_figures(v);
        else if (!strcmp(a, "--json")) o->json_path = v;
        else if (!strcmp(a, "--cold-child")) o->cold_child_fd = parse_int(a, v, 0, 1 << 20);
        else {
            usage(stderr);
            fail("unknown option %s", a);
        }
    }
    if (!o->model) {
        usage(stderr);
        fail("--model PATH is required");
    }
    if ((o->figures & FIG_JPEG) && !o->jpeg_path) o->figures &= ~(unsigned)FIG_JPEG;
    if (o->n_encoded == 0 && o->jpeg_path) o->encoded[o->n_encoded++] = (encoded_input){o->jpeg_path, 0, 0};
    if ((o->figures & FIG_ENCODED) && o->n_encoded == 0) o->figures &= ~(unsigned)FIG_ENCODED;
    /* Made (one level) or checked now, so that a bad folder fails before minutes of runs. */
    if (o->save_encoded) {
        struct stat sb;
        if (mkdir(o->save_encoded, 0777) != 0 && errno != EEXIST)
            fail("--save-encoded %s: cannot create the folder: %s", o->save_encoded, strerror(errno));
        if (stat(o->save_encoded, &sb) != 0 || !S_ISDIR(sb.st_mode))
            fail("--save-encoded %s: not a folder", o->save_encoded);
    }
}

/* ------------------------------------------------------------------ library */

/* pm_open, then the --tune settings. On failure *ctx is NULL and why holds the
 * message (pm_open's, or "--tune KEY=VALUE: <why>"). */
static pm_code open_context(const options *o, pm_ctx **ctx, char *why, size_t cap) {
    pm_params p;
    pm_params_init(&p);
    p.model_path = o->model;
    p.device = o->device;
    p.precision = o->precision;
    p.cpu_threads = o->threads;
    p.input_size = o->input_size;
    if (o->max_batch) p.max_batch = o->max_batch;
    pm_code c = pm_open(&p, ctx);
    if (c != PM_OK) {
        snprintf(why, cap, "pm_open: %s", pm_errmsg(NULL));
        return c;
    }
    c = tune_option_apply(*ctx, o->tune, (size_t)o->n_tune, why, cap);
    if (c != PM_OK) {
        pm_close(*ctx);
        *ctx = NULL;
    }
    return c;
}

static pm_status_info status_of(pm_ctx *ctx) {
    pm_status_info st;
    pm_status_info_init(&st);
    pm_code c = pm_status(ctx, &st);
    if (c != PM_OK) fail_pm(ctx, c, "pm_status");
    return st;
}

/* A deterministic photo-like RGB image: a sky gradient over a ground gradient, sensor
 * noise, and a bright soft-edged blob with "fur" (an angular ripple on its rim) as the
 * subject. Content matters little to a fixed-size network, but a flat image would let
 * some models take shortcuts. */
static unsigned char *make_photo(int w, int h) {
    unsigned char *px = xcalloc((size_t)w * (size_t)h, 3);
    uint32_t rng = 0x9E3779B9u;
    const double cx = 0.55 * w, cy = 0.52 * h, rx = 0.28 * w, ry = 0.34 * h;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            const double fy = (double)y / h, fx = (double)x / w;
            double r, g, b;
            if (fy < 0.6) { /* sky */
                r = 90 + 80 * fy, g = 140 + 70 * fy, b = 230 - 40 * fy;
            } else { /* ground */
                r = 110 - 40 * fx + 30 * (fy - 0.6), g = 120 + 30 * fx, b = 60 + 20 * fx;
            }
            const double dx = (x - cx) / rx, dy = (y - cy) / ry;
            const double ang = atan2(dy, dx);
            const double rim = 1.0 + 0.06 * sin(37.0 * ang) + 0.03 * sin(91.0 * ang);
            const double d = sqrt(dx * dx + dy * dy) / rim;
            double a = d < 0.92 ? 1.0 : d > 1.0 ? 0.0 : (1.0 - d) / 0.08; /* soft edge */
            const double shade = 0.75 + 0.25 * (1.0 - dy) * 0.5;
            r = (1 - a) * r + a * 200 * shade;
            g = (1 - a) * g + a * 150 * shade;
            b = (1 - a) * b + a * 100 * shade;
            rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
            const double noise = (double)(rng & 0xFF) / 255.0 * 12.0 - 6.0;
            unsigned char *p = px + ((size_t)y * (size_t)w + (size_t)x) * 3;
            const double c[3] = {r + noise, g + noise, b + noise};
            for (int k = 0; k < 3; k++) p[k] = (unsigned char)(c[k] < 0 ? 0 : c[k] > 255 ? 255 : c[k] + 0.5);
        }
    }
    return px;
}

static pm_image raw_rgb(const unsigned char *px, int w, int h) {
    pm_image in;
    pm_image_init(&in);
    in.format = PM_FORMAT_RGB;
    in.data = px;
    in.size = (size_t)w * (size_t)h * 3;
    in.width = w;
    in.height = h;
    return in;
}

static pm_remove_options mask_raw(void) {
    pm_remove_options opt;
    pm_remove_options_init(&opt);
    opt.output = PM_OUTPUT_MASK;
    opt.encoding = PM_ENCODING_RAW;
    return opt;
}

/* One pm_remove_bg; returns its wall time in ms. */
static double timed_call(pm_ctx *ctx, const pm_image *in, const pm_remove_options *opt, const char *what) {
    pm_output *out = NULL;
    const double t0 = mono_ms();
    pm_code c = pm_remove_bg(ctx, in, opt, &out);
    const double t1 = mono_ms();
    if (c != PM_OK) fail_pm(ctx, c, what);
    pm_output_free(out);
    return t1 - t0;
}

/* VmRSS or VmHWM of this process from /proc/self/status, in MiB; NAN when unknown. */
static double proc_status_mib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return NAN;
    char line[256];
    double v = NAN;
    const size_t n = strlen(field);
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, field, n) && line[n] == ':') {
            v = strtod(line + n + 1, NULL) / 1024.0; /* kB */
            break;
        }
    }
    fclose(f);
    return v;
}

/* ------------------------------------------------------------------ cold */

/* The child: everything from main() to the first matte, reported on fd as one line:
 *   ok T_MAIN T_READY FIRST_MS OPEN_MS LOAD_MS WARMUP_MS WARMUP_RUNS DEVICE_BYTES
 * (T_* absolute CLOCK_REALTIME seconds), or: err CODE MESSAGE */
static int cold_child(const options *o, double t_main) {
    const int fd = o->cold_child_fd;
    pm_ctx *ctx = NULL;
    char msg[800];
    pm_code c = open_context(o, &ctx, msg, sizeof msg);
    if (c == PM_OK) {
        c = pm_warmup(ctx);
        if (c != PM_OK) snprintf(msg, sizeof msg, "%s", pm_errmsg(ctx));
    }
    const double t_ready = real_s();
    if (c != PM_OK) {
        for (char *p = msg; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
        dprintf(fd, "err %d %s\n", (int)c, msg);
        pm_close(ctx);
        return 1;
    }
    pm_status_info st = status_of(ctx);
    /* The test image is made outside the timed span: the input size is known only now. */
    unsigned char *px = make_photo(st.input_width, st.input_height);
    const pm_image in = raw_rgb(px, st.input_width, st.input_height);
    const pm_remove_options opt = mask_raw();
    const double first_ms = timed_call(ctx, &in, &opt, "first pm_remove_bg");
    st = status_of(ctx);
    dprintf(fd, "ok %.6f %.6f %.4f %.4f %.4f %.4f %d %llu\n", t_main, t_ready, first_ms, st.open_ms,
            st.load_ms, st.warmup_ms, st.warmup_runs, (unsigned long long)st.device_memory_bytes);
    free(px);
    pm_close(ctx);
    return 0;
}

typedef struct cold_sample {
    double spawn_to_main_ms, spawn_to_ready_ms, spawn_to_first_ms, main_to_ready_ms;
    double first_ms, open_ms, load_ms, warmup_ms;
    int warmup_runs;
    unsigned long long device_bytes;
} cold_sample;

static void cold_once(int argc, char **argv, cold_sample *out) {
    int fds[2];
    if (pipe(fds) != 0) fail("pipe: %s", strerror(errno));
    /* The child inherits only the write end. */
    if (fcntl(fds[0], F_SETFD, FD_CLOEXEC) != 0) fail("fcntl: %s", strerror(errno));

    char fdarg[16];
    snprintf(fdarg, sizeof fdarg, "%d", fds[1]);
    char **child_argv = xcalloc((size_t)argc + 3, sizeof *child_argv);
    for (int i = 0; i < argc; i++) child_argv[i] = argv[i];
    child_argv[argc] = "--cold-child";
    child_argv[argc + 1] = fdarg;

    pid_t pid;
    const double t_spawn = real_s();
    int rc = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, child_argv, environ);
    close(fds[1]);
    free(child_argv);
    if (rc != 0) fail("posix_spawn /proc/self/exe: %s", strerror(rc));

    char buf[1024];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fds[0], buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
        if (len == sizeof buf - 1) break;
    }
    buf[len] = '\0';
    close(fds[0]);
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }

    double t_main, t_ready;
    cold_sample s;
    memset(&s, 0, sizeof s);
    if (sscanf(buf, "ok %lf %lf %lf %lf %lf %lf %d %llu", &t_main, &t_ready, &s.first_ms, &s.open_ms,
               &s.load_ms, &s.warmup_ms, &s.warmup_runs, &s.device_bytes) != 8) {
        buf[strcspn(buf, "\n")] = '\0';
        if (!strncmp(buf, "err ", 4)) fail("cold child: %s", buf + 4);
        fail("cold child exited (status %d) without a result%s%s", wstatus, len ? ": " : "", buf);
    }
    s.spawn_to_main_ms = (t_main - t_spawn) * 1e3;
    s.spawn_to_ready_ms = (t_ready - t_spawn) * 1e3;
    s.spawn_to_first_ms = s.spawn_to_ready_ms + s.first_ms;
    s.main_to_ready_ms = (t_ready - t_main) * 1e3;
    *out = s;
}

static void bench_cold(const options *o, int argc, char **argv) {
    series *ready = series_new(SEC_COLD, "ms", "cold.start_to_ready_ms", "process start -> READY");
    series *first = series_new(SEC_COLD, "ms", "cold.start_to_first_matte_ms", "process start -> first matte");
    series *to_main = series_new(SEC_COLD, "ms", "cold.start_to_main_ms", "  spawn -> main() (exec, dynamic libs)");
    series *m2r = series_new(SEC_COLD, "ms", "cold.main_to_ready_ms", "  main() -> READY");
    series *open_ms = series_new(SEC_COLD, "ms", "cold.open_ms", "    pm_open");
    series *load_ms = series_new(SEC_COLD, "ms", "cold.load_ms", "    load (file -> device)");
    series *warm_ms = series_new(SEC_COLD, "ms", "cold.warmup_ms", "    warm-up inferences");
    series *runs = series_new(SEC_COLD, "runs", "cold.warmup_runs", "    warm-up inference count");
    series *first_ms = series_new(SEC_COLD, "ms", "cold.first_call_ms", "  first pm_remove_bg after READY");
    series *dev = series_new(SEC_COLD, "MiB", "cold.device_after_first_matte_mib", "  device memory after the first matte");
    for (int i = 0; i < o->cold_prime; i++) {
        cold_sample s;
        cold_once(argc, argv, &s);
        progress("cold priming process: %.1f ms to READY (not recorded)", s.spawn_to_ready_ms);
    }
    for (int i = 0; i < o->cold_repeats; i++) {
        cold_sample s;
        cold_once(argc, argv, &s);
        series_add(ready, s.spawn_to_ready_ms);
        series_add(first, s.spawn_to_first_ms);
        series_add(to_main, s.spawn_to_main_ms);
        series_add(m2r, s.main_to_ready_ms);
        series_add(open_ms, s.open_ms);
        series_add(load_ms, s.load_ms);
        series_add(warm_ms, s.warmup_ms);
        series_add(runs, s.warmup_runs);
        series_add(first_ms, s.first_ms);
        series_add(dev, (double)s.device_bytes / 1048576.0);
        progress("cold %d/%d: READY after %.1f ms, first matte after %.1f ms", i + 1, o->cold_repeats,
                 s.spawn_to_ready_ms, s.spawn_to_first_ms);
    }
}

/* ------------------------------------------------------------------ warm */

static void bench_warm(const options *o, pm_ctx *ctx, const pm_image *in) {
    series *s = series_new(SEC_WARM, "ms", "warm.latency_ms", "pm_remove_bg latency");
    const pm_remove_options opt = mask_raw();
    for (int i = 0; i < o->runs; i++) series_add(s, timed_call(ctx, in, &opt, "pm_remove_bg (warm)"));
    const size_t first = s->n < BENCH_FIRST_CALLS ? s->n : BENCH_FIRST_CALLS;
    double worst = 0;
    for (size_t i = 0; i < first; i++)
        if (s->v[i] > worst) worst = s->v[i];
    const double med = median_of(s);
    char label[96];
    snprintf(label, sizeof label, "worst of the first %zu calls after warm-up", first);
    derived_add("warm.first50_worst_ms", label, worst, "ms");
    derived_add("warm.first50_worst_over_median", "  its ratio to the warm median", worst / med, "x");
    derived_add("warm.images_per_s", "warm images/s (1000 / median)", 1000.0 / med, "img/s");
    progress("warm: %d calls, median %.2f ms, worst of first %zu %.2f ms", o->runs, med, first, worst);
}

/* ------------------------------------------------------------------ throughput */

typedef struct worker {
    pm_ctx *ctx;
    const pm_image *in;
    const pm_remove_options *opt;
    int count;
    pthread_barrier_t *ready, *go;
    double *latency_ms; /* count entries */
    double end_ms;      /* mono_ms() after its last call */
    pm_code error;
    char message[256];
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    /* One untimed call first: a new calling thread pays torch's per-thread set-up
     * (its OpenMP team on CPU) once, which a host's long-lived threads do not repeat. */
    pm_output *first = NULL;
    pm_code c0 = pm_remove_bg(w->ctx, w->in, w->opt, &first);
    pm_output_free(first);
    /* ready: every caller has made its untimed call; go: the clock has started. */
    pthread_barrier_wait(w->ready);
    pthread_barrier_wait(w->go);
    w->end_ms = mono_ms();
    if (c0 != PM_OK) {
        w->error = c0;
        snprintf(w->message, sizeof w->message, "%s", pm_errmsg(w->ctx));
        return NULL;
    }
    for (int i = 0; i < w->count; i++) {
        pm_output *out = NULL;
        const double t0 = mono_ms();
        pm_code c = pm_remove_bg(w->ctx, w->in, w->opt, &out);
        w->latency_ms[i] = mono_ms() - t0;
        if (c != PM_OK) {
            w->error = c;
            snprintf(w->message, sizeof w->message, "%s", pm_errmsg(w->ctx));
            return NULL;
        }
        pm_output_free(out);
    }
    w->end_ms = mono_ms();
    return NULL;
}

static void bench_throughput(const options *o, pm_ctx *ctx, const pm_image *in) {
    const pm_remove_options opt = mask_raw();
    for (int k = 0; k < o->n_concurrency; k++) {
        const int t = o->concurrency[k];
        char key[64], label[80];
        snprintf(key, sizeof key, "throughput.t%d.images_per_s", t);
        snprintf(label, sizeof label, "%d caller%s: images/s", t, t == 1 ? "" : "s");
        series *ips = series_new(SEC_THROUGHPUT, "img/s", key, label);
        snprintf(key, sizeof key, "throughput.t%d.ms_per_image", t);
        snprintf(label, sizeof label, "%d caller%s: wall ms per image", t, t == 1 ? "" : "s");
        series *mpi = series_new(SEC_THROUGHPUT, "ms", key, label);
        snprintf(key, sizeof key, "throughput.t%d.call_latency_ms", t);
        snprintf(label, sizeof label, "%d caller%s: latency of one call", t, t == 1 ? "" : "s");
        series *lat = series_new(SEC_THROUGHPUT, "ms", key, label);
        snprintf(key, sizeof key, "throughput.t%d.images_per_pass", t);
        snprintf(label, sizeof label, "%d caller%s: images per forward pass", t, t == 1 ? "" : "s");
        series *ipp = series_new(SEC_THROUGHPUT, "img", key, label);

        worker *w = xcalloc((size_t)t, sizeof *w);
        pthread_t *tid = xcalloc((size_t)t, sizeof *tid);
        for (int i = 0; i < t; i++) w[i].latency_ms = xcalloc((size_t)o->per_thread, sizeof(double));
        for (int r = 0; r < o->tp_repeats; r++) {
            pthread_barrier_t ready, go;
            if (pthread_barrier_init(&ready, NULL, (unsigned)t + 1) != 0 ||
                pthread_barrier_init(&go, NULL, (unsigned)t + 1) != 0)
                fail("pthread_barrier_init failed");
            for (int i = 0; i < t; i++) {
                w[i].ctx = ctx, w[i].in = in, w[i].opt = &opt, w[i].count = o->per_thread;
                w[i].ready = &ready, w[i].go = &go, w[i].error = PM_OK, w[i].message[0] = '\0';
                int rc = pthread_create(&tid[i], NULL, worker_main, &w[i]);
                if (rc != 0) fail("pthread_create: %s", strerror(rc));
            }
            /* The clock starts before the callers are released and stops at the last
             * caller's own end time, so neither this thread's wake-up nor its joins
             * count. */
            const pm_status_info before = status_of(ctx);
            pthread_barrier_wait(&ready);
            const double t0 = mono_ms();
            pthread_barrier_wait(&go);
            double t1 = t0;
            for (int i = 0; i < t; i++) {
                pthread_join(tid[i], NULL);
                if (w[i].end_ms > t1) t1 = w[i].end_ms;
            }
            const double wall = t1 - t0;
            pthread_barrier_destroy(&ready);
            pthread_barrier_destroy(&go);
            for (int i = 0; i < t; i++)
                if (w[i].error != PM_OK) fail("pm_remove_bg (throughput): %s (%s)", w[i].message, pm_strerror(w[i].error));
            const double images = (double)t * o->per_thread;
            const pm_status_info after = status_of(ctx);
            const uint64_t passes = after.forward_passes - before.forward_passes;
            if (passes) series_add(ipp, (double)(after.images_processed - before.images_processed) / (double)passes);
            series_add(ips, images / (wall / 1e3));
            series_add(mpi, wall / images);
            for (int i = 0; i < t; i++)
                for (int j = 0; j < o->per_thread; j++) series_add(lat, w[i].latency_ms[j]);
            progress("throughput %d caller(s), round %d/%d: %.2f images/s", t, r + 1, o->tp_repeats,
                     images / (wall / 1e3));
        }
        for (int i = 0; i < t; i++) free(w[i].latency_ms);
        free(w);
        free(tid);
    }
}

/* ------------------------------------------------------------------ jpeg */

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) fail("%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size <= 0) fail("%s: empty or unreadable", path);
    unsigned char *data = xcalloc((size_t)sb.st_size, 1);
    if (fread(data, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) fail("%s: short read", path);
    fclose(f);
    *size = (size_t)sb.st_size;
    return data;
}

static void bench_jpeg(const options *o, pm_ctx *ctx) {
    size_t size = 0;
    unsigned char *bytes = read_file(o->jpeg_path, &size);
    pm_image in;
    pm_image_init(&in);
    in.format = PM_FORMAT_ENCODED;
    in.data = bytes;
    in.size = size;

    pm_remove_options opt[2];
    series *s[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        pm_remove_options_init(&opt[k]);
        opt[k].output = PM_OUTPUT_RGBA;
        opt[k].encoding = PM_ENCODING_RAW;
        opt[k].clean_edges = k;
    }
    /* One untimed call first: the dimensions for the labels, and the first use of
     * buffers of this size. */
    pm_output *out = NULL;
    pm_code c = pm_remove_bg(ctx, &in, &opt[0], &out);
    if (c != PM_OK) fail_pm(ctx, c, o->jpeg_path);
    const int w = out->width, h = out->height;
    pm_output_free(out);
    const double mp = (double)w * h / 1e6;
    char label[80];
    if (o->clean_edges & CLEAN_OFF) {
        snprintf(label, sizeof label, "%dx%d (%.1f MP) -> RGBA, clean_edges off", w, h, mp);
        s[0] = series_new(SEC_JPEG, "ms", "jpeg.rgba_ms", label);
    }
    if (o->clean_edges & CLEAN_ON) {
        snprintf(label, sizeof label, "%dx%d (%.1f MP) -> RGBA, clean_edges on", w, h, mp);
        s[1] = series_new(SEC_JPEG, "ms", "jpeg.rgba_clean_edges_ms", label);
        timed_call(ctx, &in, &opt[1], o->jpeg_path); /* untimed, as above */
    }
    /* Interleaved, so slow drift (thermal, other tenants) hits both variants alike. */
    for (int i = 0; i < o->jpeg_runs; i++)
        for (int k = 0; k < 2; k++)
            if (s[k]) series_add(s[k], timed_call(ctx, &in, &opt[k], o->jpeg_path));
    derived_add("jpeg.width", "JPEG width", w, "px");
    derived_add("jpeg.height", "JPEG height", h, "px");
    derived_add("jpeg.bytes", "JPEG file size", (double)size, "bytes");
    if (s[0] && s[1]) {
        const double off = median_of(s[0]), on = median_of(s[1]);
        derived_add("jpeg.clean_edges_extra_ms", "clean_edges cost (median on - off)", on - off, "ms");
        derived_add("jpeg.clean_edges_share", "  its share of the clean_edges call", (on - off) / on, "fraction");
    }
    progress("jpeg: %dx%d, %d timed calls per variant", w, h, o->jpeg_runs);
    free(bytes);
}

/* ------------------------------------------------------------------ encoded */

enum { ENC_RAW, ENC_PNG, ENC_WEBP_LOSSLESS, ENC_WEBP, ENC_COUNT };
static const struct {
    int encoding;
    const char *key, *label, *ext;
} encodings[ENC_COUNT] = {
    {PM_ENCODING_RAW, "raw", "RAW pixels", "rgba"},
    {PM_ENCODING_PNG, "png", "PNG", "png"},
    {PM_ENCODING_WEBP_LOSSLESS, "webp_lossless", "WebP lossless", "webp"},
    {PM_ENCODING_WEBP, "webp", "WebP lossy", "webp"},
};

/* One call; returns its time and the output's size, and writes the output to path
 * when path is not NULL. */
static double encoded_call(pm_ctx *ctx, const pm_image *in, const pm_remove_options *opt, const char *what,
                           size_t *bytes, const char *path) {
    pm_output *out = NULL;
    const double t0 = mono_ms();
    pm_code c = pm_remove_bg(ctx, in, opt, &out);
    const double t1 = mono_ms();
    if (c != PM_OK) fail_pm(ctx, c, what);
    *bytes = out->size;
    if (path) {
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(out->data, 1, out->size, f) != out->size || fclose(f) != 0)
            fail("%s: cannot write: %s", path, strerror(errno));
    }
    pm_output_free(out);
    return t1 - t0;
}

static void bench_encoded(const options *o, pm_ctx *ctx) {
    for (int e = 0; e < o->n_encoded; e++) {
        const encoded_input *src = &o->encoded[e];
        size_t size = 0;
        unsigned char *bytes = read_file(src->path, &size);
        pm_image in;
        pm_image_init(&in);
        in.data = bytes;
        in.size = size;
        if (src->width) {
            if (size != (size_t)src->width * (size_t)src->height * 4u)
                fail("%s: %zu bytes, not %dx%d RGBA", src->path, size, src->width, src->height);
            in.format = PM_FORMAT_RGBA;
            in.width = src->width;
            in.height = src->height;
        }
        pm_remove_options opt[ENC_COUNT];
        for (int k = 0; k < ENC_COUNT; k++) {
            pm_remove_options_init(&opt[k]);
            opt[k].encoding = encodings[k].encoding;
            opt[k].png_level = o->png_level;
            opt[k].webp_quality = o->webp_quality;
        }
        /* One untimed call of each first: the sizes, and the first use of buffers of
         * this size. */
        pm_output *out = NULL;
        pm_code c = pm_remove_bg(ctx, &in, &opt[ENC_RAW], &out);
        if (c != PM_OK) fail_pm(ctx, c, src->path);
        const int w = out->width, h = out->height;
        pm_output_free(out);
        series *s[ENC_COUNT];
        size_t out_bytes[ENC_COUNT];
        char key[64], label[96], path[4096];
        for (int k = 0; k < ENC_COUNT; k++) {
            snprintf(key, sizeof key, "encoded.%dx%d.%s_ms", w, h, encodings[k].key);
            snprintf(label, sizeof label, "%dx%d (%.1f MP)%s -> %s", w, h, (double)w * h / 1e6,
                     src->width ? " raw RGBA" : "", encodings[k].label);
            s[k] = series_new(SEC_ENCODED, "ms", key, label);
            encoded_call(ctx, &in, &opt[k], src->path, &out_bytes[k], NULL);
        }
        /* Interleaved, so slow drift (thermal, other tenants) hits every encoding alike. */
        for (int i = 0; i < o->encoded_runs; i++)
            for (int k = 0; k < ENC_COUNT; k++) {
                const int last = i == o->encoded_runs - 1 && o->save_encoded;
                if (last)
                    snprintf(path, sizeof path, "%s/%d.%s.%s", o->save_encoded, e, encodings[k].key,
                             encodings[k].ext);
                series_add(s[k], encoded_call(ctx, &in, &opt[k], src->path, &out_bytes[k], last ? path : NULL));
            }
        const double raw_ms = median_of(s[ENC_RAW]);
        for (int k = ENC_PNG; k < ENC_COUNT; k++) {
            snprintf(key, sizeof key, "encoded.%dx%d.%s_bytes", w, h, encodings[k].key);
            snprintf(label, sizeof label, "%dx%d %s bytes", w, h, encodings[k].label);
            derived_add(key, label, (double)out_bytes[k], "bytes");
            snprintf(key, sizeof key, "encoded.%dx%d.%s_extra_ms", w, h, encodings[k].key);
            snprintf(label, sizeof label, "  %s cost (median - RAW's)", encodings[k].label);
            derived_add(key, label, median_of(s[k]) - raw_ms, "ms");
        }
        progress("encoded: %dx%d, %d timed calls per encoding", w, h, o->encoded_runs);
        free(bytes);
    }
}

/* ------------------------------------------------------------------ output */

/* graph_safe in words: "yes", "no", or "unknown" before the model is loaded. */
static const char *graph_safe_text(int graph_safe) {
    return graph_safe < 0 ? "unknown" : graph_safe ? "yes" : "no";
}

static void print_table(const options *o, const pm_status_info *st) {
    char threads[32];
    if (o->threads) snprintf(threads, sizeof threads, "%d", o->threads);
    else snprintf(threads, sizeof threads, "torch default");
    if (st)
        printf("\npetmatte-bench %s | model %s (%dx%d%s) | device %s | precision %s | cpu threads %s | "
               "cuda graph %s (graph-safe model: %s) | max batch %d | forward streams %d | frozen %s\n",
               pm_version(), st->model_name, st->input_width, st->input_height,
               st->random_weights ? ", random weights" : "", st->device,
               pm_precision_name((pm_precision)st->precision), threads, st->cuda_graph ? "on" : "off",
               graph_safe_text(st->graph_safe), st->max_batch, st->forward_streams, st->frozen ? "yes" : "no");
    else
        printf("\npetmatte-bench %s | model %s | device %s | precision %s | cpu threads %s\n", pm_version(),
               o->model, o->device, pm_precision_name((pm_precision)o->precision), threads);
    printf("%-52s %12s %12s %12s %6s\n", "figure", "median", "min", "max", "n");
    for (int sec = 0; sec < SEC_COUNT; sec++) {
        int header = 0;
        for (size_t i = 0; i < n_series; i++) {
            const series *s = &all_series[i];
            if (s->section != sec || s->n == 0) continue;
            if (!header) {
                printf("-- %s\n", section_title[sec]);
                header = 1;
            }
            double med, lo, hi;
            stats_of(s->v, s->n, &med, &lo, &hi);
            char label[100];
            snprintf(label, sizeof label, "%s (%s)", s->label, s->unit);
            printf("%-52s %12.2f %12.2f %12.2f %6zu\n", label, med, lo, hi, s->n);
        }
    }
    if (n_derived) {
        printf("-- derived\n");
        for (size_t i = 0; i < n_derived; i++) {
            const derived *d = &all_derived[i];
            char label[120];
            snprintf(label, sizeof label, "%s (%s)", d->label, d->unit);
            printf("%-52s %12.*f\n", label, !strcmp(d->unit, "x") || !strcmp(d->unit, "fraction") ? 3 : 2,
                   d->value);
        }
    }
    fflush(stdout);
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static void json_number(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.9g", v);
    else fputs("null", f);
}

/* "tune": {"warmup_min_runs": 0, ...}: ctx's value of every key (once READY, the
 * values in use, auto resolved). */
static void write_json_tune_in_use(FILE *f, pm_ctx *ctx) {
    fprintf(f, ", \"tune\": {");
    for (int k = 1; pm_tune_name((pm_tune)k) != NULL; k++) {
        int v = 0;
        fprintf(f, "%s", k > 1 ? ", " : "");
        json_string(f, pm_tune_name((pm_tune)k));
        if (pm_tune_get(ctx, (pm_tune)k, &v) == PM_OK) fprintf(f, ": %d", v);
        else fputs(": null", f);
    }
    fputc('}', f);
}

static void write_json_context(FILE *f, pm_ctx *ctx, const pm_status_info *st, double parent_open_ms) {
    if (!st) {
        fprintf(f, "  \"context\": null");
        return;
    }
    fprintf(f, "  \"context\": {\"device\": ");
    json_string(f, st->device);
    fprintf(f, ", \"precision\": ");
    json_string(f, pm_precision_name((pm_precision)st->precision));
    fprintf(f, ", \"model_name\": ");
    json_string(f, st->model_name);
    fprintf(f, ", \"input_width\": %d, \"input_height\": %d, \"random_weights\": %s, \"cuda_graph\": %s, "
               "\"graph_safe\": %s, \"open_ms\": ",
            st->input_width, st->input_height, st->random_weights ? "true" : "false", st->cuda_graph ? "true" : "false",
            st->graph_safe < 0 ? "null" : st->graph_safe ? "true" : "false");
    json_number(f, parent_open_ms);
    fprintf(f, ", \"load_ms\": ");
    json_number(f, st->load_ms);
    fprintf(f, ", \"warmup_ms\": ");
    json_number(f, st->warmup_ms);
    fprintf(f, ", \"warmup_runs\": %d, \"images_processed\": %llu, \"max_batch\": %d, \"forward_streams\": %d, "
               "\"forward_passes\": %llu, \"frozen\": %d",
            st->warmup_runs, (unsigned long long)st->images_processed, st->max_batch, st->forward_streams,
            (unsigned long long)st->forward_passes, st->frozen);
    write_json_tune_in_use(f, ctx);
    fputc('}', f);
}

static void write_json(const options *o, pm_ctx *ctx, const pm_status_info *st, double parent_open_ms) {
    FILE *f = fopen(o->json_path, "w");
    if (!f) fail("%s: %s", o->json_path, strerror(errno));
    fprintf(f, "{\n  \"tool\": \"petmatte-bench\",\n  \"library_version\": ");
    json_string(f, pm_version());
    fprintf(f, ",\n  \"unix_time\": %.3f,\n  \"config\": {\"model\": ", real_s());
    json_string(f, o->model);
    fprintf(f, ", \"device\": ");
    json_string(f, o->device);
    fprintf(f, ", \"precision\": ");
    json_string(f, pm_precision_name((pm_precision)o->precision));
    fprintf(f, ", \"threads\": %d, \"runs\": %d, \"cold_repeats\": %d, \"cold_prime\": %d, \"concurrency\": [",
            o->threads, o->runs, o->cold_repeats, o->cold_prime);
    for (int i = 0; i < o->n_concurrency; i++) fprintf(f, "%s%d", i ? ", " : "", o->concurrency[i]);
    fprintf(f, "], \"per_thread\": %d, \"tp_repeats\": %d, \"jpeg\": ", o->per_thread, o->tp_repeats);
    if (o->jpeg_path) json_string(f, o->jpeg_path);
    else fputs("null", f);
    /* max_batch 0: the library's default. tune: each --tune as given, in order. */
    fprintf(f, ", \"jpeg_runs\": %d, \"clean_edges\": \"%s\", \"max_batch\": %d, \"encoded\": [",
            o->jpeg_runs, o->clean_edges == CLEAN_BOTH ? "both" : o->clean_edges == CLEAN_ON ? "on" : "off",
            o->max_batch);
    for (int i = 0; i < o->n_encoded; i++) {
        fputs(i ? ", " : "", f);
        json_string(f, o->encoded[i].path);
    }
    fprintf(f, "], \"encoded_runs\": %d, \"png_level\": %d, \"webp_quality\": %d, \"tune\": [",
            o->encoded_runs, o->png_level, o->webp_quality);
    for (int i = 0; i < o->n_tune; i++) {
        fprintf(f, "%s[", i ? ", " : "");
        json_string(f, pm_tune_name(o->tune[i].key));
        fprintf(f, ", %d]", o->tune[i].value);
    }
    fprintf(f, "]},\n");
    write_json_context(f, ctx, st, parent_open_ms);
    fprintf(f, ",\n  \"figures\": {");
    int first = 1;
    for (size_t i = 0; i < n_series; i++) {
        const series *s = &all_series[i];
        if (s->n == 0) continue;
        double med, lo, hi;
        stats_of(s->v, s->n, &med, &lo, &hi);
        fprintf(f, "%s\n    ", first ? "" : ",");
        first = 0;
        json_string(f, s->key);
        fprintf(f, ": {\"label\": ");
        json_string(f, s->label);
        fprintf(f, ", \"section\": ");
        json_string(f, section_title[s->section]);
        fprintf(f, ", \"unit\": \"%s\", \"n\": %zu, \"median\": ", s->unit, s->n);
        json_number(f, med);
        fprintf(f, ", \"min\": ");
        json_number(f, lo);
        fprintf(f, ", \"max\": ");
        json_number(f, hi);
        fprintf(f, ", \"samples\": [");
        for (size_t j = 0; j < s->n; j++) {
            if (j) fputs(", ", f);
            json_number(f, s->v[j]);
        }
        fprintf(f, "]}");
    }
    fprintf(f, "\n  },\n  \"derived\": {");
    for (size_t i = 0; i < n_derived; i++) {
        fprintf(f, "%s\n    ", i ? "," : "");
        json_string(f, all_derived[i].key);
        fprintf(f, ": {\"label\": ");
        json_string(f, all_derived[i].label);
        fprintf(f, ", \"unit\": \"%s\", \"value\": ", all_derived[i].unit);
        json_number(f, all_derived[i].value);
        fputc('}', f);
    }
    fprintf(f, "\n  }\n}\n");
    if (fclose(f) != 0) fail("%s: write failed", o->json_path);
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv) {
    const double t_main = real_s();
    options o;
    parse_args(&o, argc, argv);
    if (o.cold_child_fd >= 0) return cold_child(&o, t_main);

    /* Fresh processes first, while this one holds no device memory. */
    if (o.figures & FIG_COLD) bench_cold(&o, argc, argv);
    if (!(o.figures & ~(unsigned)FIG_COLD)) { /* cold only: no context in this process */
        print_table(&o, NULL);
        if (o.json_path) write_json(&o, NULL, NULL, NAN);
        return 0;
    }

    pm_ctx *ctx = NULL;
    char why[800];
    const double t_open = mono_ms();
    pm_code c = open_context(&o, &ctx, why, sizeof why);
    const double parent_open_ms = mono_ms() - t_open;
    if (c != PM_OK) fail("%s (%s)", why, pm_strerror(c));
    c = pm_warmup(ctx);
    if (c != PM_OK) fail_pm(ctx, c, "pm_warmup");
    pm_status_info st = status_of(ctx);
    progress("READY: %s, %s, %dx%d, warm-up %d runs in %.1f ms", st.device,
             pm_precision_name((pm_precision)st.precision), st.input_width, st.input_height, st.warmup_runs,
             st.warmup_ms);

    series *dev = series_new(SEC_MEMORY, "MiB", "memory.device_after_warmup_mib", "device memory after warm-up");
    series_add(dev, (double)st.device_memory_bytes / 1048576.0);
    series *rss = series_new(SEC_MEMORY, "MiB", "memory.host_rss_after_warmup_mib", "host resident (VmRSS) after warm-up");
    series_add(rss, proc_status_mib("VmRSS"));

    unsigned char *px = make_photo(st.input_width, st.input_height);
    const pm_image in = raw_rgb(px, st.input_width, st.input_height);
    if (o.figures & FIG_WARM) bench_warm(&o, ctx, &in);
    if (o.figures & FIG_THROUGHPUT) bench_throughput(&o, ctx, &in);
    st = status_of(ctx);
    series *dev2 = series_new(SEC_MEMORY, "MiB", "memory.device_after_runs_mib", "device memory after the runs");
    series_add(dev2, (double)st.device_memory_bytes / 1048576.0);
    if (o.figures & FIG_JPEG) {
        bench_jpeg(&o, ctx);
        st = status_of(ctx);
        series *dev3 = series_new(SEC_MEMORY, "MiB", "memory.device_after_jpeg_mib", "device memory after the JPEG calls");
        series_add(dev3, (double)st.device_memory_bytes / 1048576.0);
    }
    if (o.figures & FIG_ENCODED) {
        bench_encoded(&o, ctx);
        st = status_of(ctx);
        series *dev4 = series_new(SEC_MEMORY, "MiB", "memory.device_after_encoded_mib",
                                  "device memory after the encoded calls");
        series_add(dev4, (double)st.device_memory_bytes / 1048576.0);
    }
    st = status_of(ctx);
    if (st.device_memory_peak_bytes) {
        series *peak = series_new(SEC_MEMORY, "MiB", "memory.device_peak_mib",
                                  "device memory peak (the allocator's, whole run)");
        series_add(peak, (double)st.device_memory_peak_bytes / 1048576.0);
    }
    series *hwm = series_new(SEC_MEMORY, "MiB", "memory.host_peak_rss_mib", "host peak resident (VmHWM)");
    series_add(hwm, proc_status_mib("VmHWM"));

    print_table(&o, &st);
    if (o.json_path) write_json(&o, ctx, &st, parent_open_ms);
    free(px);
    pm_close(ctx);
    return 0;
}
