/* frames.c - `petmatte frames --size WxH`: raw RGB24 frames on stdin, cut-outs on
 * stdout (RGBA, the gray matte with --mask, RGB with --bg), for a pipe between two
 * ffmpeg processes:
 *
 *   ffmpeg -i in.mp4 -f rawvideo -pix_fmt rgb24 - | petmatte frames --size 1280x720 |
 *     ffmpeg -f rawvideo -pix_fmt rgba -s 1280x720 -r 30 -i - -c:v libvpx-vp9 out.webm
 *
 * Frames stream through the same worker pipeline as a video, in order. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char frames_help[] =
    "Usage: petmatte frames --size WxH [OPTIONS] < frames.rgb > cutouts.rgba\n"
    "\n"
    "Reads raw frames (RGB24: W*H*3 bytes each, no header) from stdin and writes one\n"
    "cut-out per frame to stdout, in order: RGBA (W*H*4 bytes, alpha = matte), the matte\n"
    "alone with --mask (gray, W*H bytes), or RGB over a colour with --bg (W*H*3 bytes).\n"
    "Made for pipes between ffmpeg processes (-f rawvideo -pix_fmt rgb24 / rgba / gray).\n"
    "stdin ending inside a frame is an error (the frames before it are written).\n"
    "\n"
    "Options:\n"
    "  -s, --size WxH         the frame size (required)\n"
    "      --mask             write the matte alone\n"
    "  -b, --bg COLOR         composite over a solid colour (see petmatte remove --help)\n"
    "  -t, --threshold T      hard matte: alpha = matte >= T ? 255 : 0, T in 0..1\n"
    "      --invert           keep the background instead\n"
    "      --clean-edges      re-estimate colours at soft edges\n"
    "  -q, --quiet            no notes; errors are still printed\n"
    "\n"
    "Model:\n"
    "%s"
    "\n"
    "Exit status: 0 every frame written, 1 bad or short input or a failed frame,\n"
    "2 usage error, 3 model or device error.\n";

enum { OPT_SIZE = 1, OPT_MASK, OPT_BG, OPT_THRESHOLD, OPT_INVERT, OPT_CLEAN_EDGES, OPT_QUIET };

static const cli_opt frames_opts[] = {
    {"size", 's', 1, OPT_SIZE},
    {"mask", 0, 0, OPT_MASK},
    {"bg", 'b', 1, OPT_BG},
    {"threshold", 't', 1, OPT_THRESHOLD},
    {"invert", 0, 0, OPT_INVERT},
    {"clean-edges", 0, 0, OPT_CLEAN_EDGES},
    {"quiet", 'q', 0, OPT_QUIET},
    CLI_ENGINE_OPTS,
    {NULL, 0, 0, 0},
};

static int parse_size(const char *s, int *w, int *h) {
    char buf[32];
    if (strlen(s) >= sizeof buf) return 0;
    strcpy(buf, s);
    char *x = strchr(buf, 'x');
    if (!x) x = strchr(buf, 'X');
    if (!x) return 0;
    *x = '\0';
    return cli_parse_int(buf, 1, 65535, w) && cli_parse_int(x + 1, 1, 65535, h);
}

/* Reads exactly n bytes unless stdin ends first; returns the bytes read, or -1. */
static ssize_t read_full(int fd, unsigned char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static int sink_stdout(void *user, uint64_t number, int64_t tag, const pm_output *out, char *err, size_t errcap) {
    (void)user, (void)number, (void)tag;
    size_t channels = out->format == PM_FORMAT_GRAY ? 1 : out->format == PM_FORMAT_RGB ? 3 : 4;
    size_t row = (size_t)out->width * channels;
    for (int y = 0; y < out->height; y++) {
        char why[256];
        if (cli_write_fd(STDOUT_FILENO, out->data + (size_t)y * out->stride, row, why, sizeof why) != 0) {
            snprintf(err, errcap, "cannot write to stdout: %s", errno == EPIPE ? "the reader has gone" : why);
            return -1;
        }
    }
    return 0;
}

int cli_cmd_frames(int argc, char **argv) {
    cli_engine engine;
    cli_engine_init(&engine);
    cli_engine_tune(&engine, PM_TUNE_WARMUP_MIN_RUNS, 1);
    cli_engine_tune(&engine, PM_TUNE_WARMUP_MAX_RUNS, 1);
    pm_remove_options opt;
    pm_remove_options_init(&opt);
    int width = 0, height = 0, mask = 0, have_bg = 0, quiet = 0;
    uint32_t bg = 0;
    cli_args a;
    cli_args_init(&a, "frames", argc, argv);
    int kind, id;
    const char *value;
    while ((kind = cli_next(&a, frames_opts, &id, &value)) != CLI_ARG_END) {
        if (kind == CLI_ARG_ERROR) return CLI_EXIT_USAGE;
        if (kind == CLI_ARG_POSITIONAL)
            return cli_usage("frames", "unexpected argument '%s': frames come on stdin", value);
        switch (id) {
        case CLI_OPT_HELP: printf(frames_help, cli_engine_help()); return CLI_EXIT_OK;
        case OPT_SIZE:
            if (!parse_size(value, &width, &height))
                return cli_usage("frames", "--size '%s' is not WxH with sides in 1..65535", value);
            break;
        case OPT_MASK: mask = 1; break;
        case OPT_BG:
            if (!cli_parse_color(value, &bg)) return cli_usage("frames", "--bg '%s' is not a colour", value);
            have_bg = 1;
            break;
        case OPT_THRESHOLD:
            if (!cli_parse_unit(value, &opt.threshold))
                return cli_usage("frames", "--threshold '%s' is not a number in 0..1", value);
            break;
        case OPT_INVERT: opt.invert = 1; break;
        case OPT_CLEAN_EDGES: opt.clean_edges = 1; break;
        case OPT_QUIET: quiet = 1; break;
        default:
            if (cli_engine_option(&engine, "frames", frames_opts, id, value) < 0) return CLI_EXIT_USAGE;
            break;
        }
    }
    if (!width) return cli_usage("frames", "--size WxH is required (raw frames carry no size)");
    if (mask && have_bg) return cli_usage("frames", "--mask and --bg exclude each other");
    pm_params defaults;
    pm_params_init(&defaults);
    if ((uint64_t)width * (uint64_t)height > defaults.max_pixels)
        return cli_usage("frames", "--size %dx%d is over the limit of %llu pixels", width, height,
                         (unsigned long long)defaults.max_pixels);
    if (isatty(STDOUT_FILENO)) return cli_usage("frames", "refusing to write raw frames to a terminal; redirect stdout");
    opt.output = mask ? PM_OUTPUT_MASK : have_bg ? PM_OUTPUT_COMPOSITE : PM_OUTPUT_RGBA;
    opt.background_rgb = bg;
    opt.encoding = PM_ENCODING_RAW;

    pm_ctx *ctx;
    char model_path[PATH_MAX];
    int rc = cli_open(&engine, "frames", &ctx, model_path, sizeof model_path);
    if (rc != CLI_EXIT_OK) return rc;
    if (pm_warmup(ctx) != PM_OK) {
        cli_error("cannot load %s: %s", model_path, pm_errmsg(ctx));
        pm_close(ctx);
        return CLI_EXIT_MODEL;
    }
    signal(SIGPIPE, SIG_IGN); /* a reader that exits is reported, not a silent death */
    size_t frame_bytes = (size_t)width * (size_t)height * 3;
    cli_pipe *pipe = cli_pipe_new(ctx, &opt, cli_frames_in_flight(ctx), frame_bytes, sink_stdout, NULL);
    if (!pipe) {
        cli_error("out of memory for %dx%d frames", width, height);
        pm_close(ctx);
        return CLI_EXIT_FAILED;
    }
    char err[1024] = "";
    uint64_t frames_in = 0;
    for (;;) {
        unsigned char *buf = cli_pipe_next(pipe);
        if (!buf) {
            snprintf(err, sizeof err, "%s", cli_pipe_error(pipe));
            break;
        }
        ssize_t got = read_full(STDIN_FILENO, buf, frame_bytes);
        if (got < 0) {
            snprintf(err, sizeof err, "frame %llu: cannot read stdin: %s", (unsigned long long)frames_in + 1,
                     strerror(errno));
            break;
        }
        if (got == 0) break; /* the end, between frames */
        if ((size_t)got < frame_bytes) {
            snprintf(err, sizeof err,
                     "frame %llu: stdin ended inside it, after %zd of its %zu bytes (--size %dx%d RGB24 frames are "
                     "%zu bytes each)",
                     (unsigned long long)frames_in + 1, got, frame_bytes, width, height, frame_bytes);
            break;
        }
        frames_in++;
        if (cli_pipe_submit(pipe, PM_FORMAT_RGB, width, height, (size_t)width * 3, (int64_t)frames_in) != 0) {
            snprintf(err, sizeof err, "%s", cli_pipe_error(pipe));
            break;
        }
    }
    if (cli_pipe_finish(pipe) != 0 && !err[0]) snprintf(err, sizeof err, "%s", cli_pipe_error(pipe));
    uint64_t written = cli_pipe_written(pipe);
    cli_pipe_free(pipe);
    pm_close(ctx);
    if (err[0]) {
        cli_error("%s; %llu frame%s written before it", err, (unsigned long long)written, written == 1 ? "" : "s");
        return CLI_EXIT_FAILED;
    }
    if (written == 0 && !quiet) cli_error("note: stdin held no frames");
    return CLI_EXIT_OK;
}
