/*
 * cli.h - what the petmatte command's source files share.
 *
 * main.c      dispatch, top-level help, version
 * args.c      the option parser and value parsers (ints, threshold, colours, precision)
 * engine.c    options every command takes (--model, --device...), default model lookup, open
 * files.c     reading inputs, writing outputs atomically, path helpers
 * progress.c  the progress bar on a terminal
 * pipeline.c  raw frames through pm_remove_bg on worker threads, results in order
 * remove.c    `petmatte remove`
 * video*.c    `petmatte remove` of a video (FFmpeg's libraries): see video.h
 * frames.c    `petmatte frames`: raw RGB frames on stdin to cut-outs on stdout
 * watch.c     `petmatte remove FOLDER --watch`: cut out each new image as it appears
 * report.c    `petmatte warmup` and `petmatte info`
 */
#ifndef PETMATTE_CLI_H
#define PETMATTE_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <petmatte.h>

#include "../common/tune_option.h"

/* Exit codes: documented in `petmatte --help` and docs/cli.md. */
enum {
    CLI_EXIT_OK = 0,      /* everything worked */
    CLI_EXIT_FAILED = 1,  /* one or more images failed; the others were written */
    CLI_EXIT_USAGE = 2,   /* bad command line; nothing was done */
    CLI_EXIT_MODEL = 3    /* the model could not be found or loaded, or the device is unusable */
};

#define CLI_NAME "petmatte"

/* ---------------------------------------------------------------- messages */

/* "petmatte: <message>" on stderr, on one line (newlines in the message become spaces). */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error of command cmd (NULL: the top level): one line with a pointer to --help.
 * Returns CLI_EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------ parser */

#define CLI_VALUE_INLINE 2

typedef struct cli_opt {
    const char *name; /* long name without "--" */
    char short_name;  /* 0 for none */
    int has_value;    /* 0: a flag; 1: takes a value; CLI_VALUE_INLINE: an optional --name=value */
    int id;
} cli_opt;

typedef struct cli_args {
    int argc;
    char **argv;
    int i;            /* next argv index */
    int only_positional; /* after "--" */
    const char *cmd;  /* for messages */
} cli_args;

enum { CLI_ARG_END = 0, CLI_ARG_OPTION, CLI_ARG_POSITIONAL, CLI_ARG_ERROR };

void cli_args_init(cli_args *a, const char *cmd, int argc, char **argv);
/* The next option (its id in *id, its value in *value) or positional (in *value).
 * On CLI_ARG_ERROR the one-line message has been printed. */
int cli_next(cli_args *a, const cli_opt *opts, int *id, const char **value);
/* The name an option was given as, for messages: "--threshold". */
const char *cli_opt_name(const cli_opt *opts, int id, char *buf, size_t cap);

/* Value parsers: 1 when s is valid, else 0 (nothing printed). */
int cli_parse_int(const char *s, long lo, long hi, int *out);
int cli_parse_unit(const char *s, float *out);         /* a number in 0..1 */
int cli_parse_color(const char *s, uint32_t *rgb);    /* white, black, #RRGGBB, RRGGBB, #RGB */
int cli_parse_float(const char *s, float lo, float hi, float *out); /* a finite number in lo..hi */
int cli_parse_precision(const char *s, int *out);     /* auto fp32 fp16 bf16 */

/* ----------------------------------------------------------------- engine */

/* --tune settings one command line may hold (a later one for a key wins). */
#define CLI_MAX_TUNE 64

/* The options that say which model runs where: shared by remove, warmup and info. */
typedef struct cli_engine {
    const char *model;  /* --model; NULL: the default model */
    const char *device; /* --device; default "auto" */
    int precision;      /* pm_precision */
    int threads;        /* --threads; 0 = torch's default */
    int input_size;     /* --input-size; 0 = the manifest's */
    int max_batch;      /* --max-batch; 0 = the library's default */
    tune_setting tune[CLI_MAX_TUNE]; /* the command's own, then each --tune, in order */
    size_t n_tune;
} cli_engine;

enum {
    CLI_OPT_MODEL = 1000,
    CLI_OPT_DEVICE,
    CLI_OPT_PRECISION,
    CLI_OPT_THREADS,
    CLI_OPT_INPUT_SIZE,
    CLI_OPT_TUNE,
    CLI_OPT_MAX_BATCH,
    CLI_OPT_HELP
};

/* The table entries for the options above, to be copied into each command's table. */
#define CLI_ENGINE_OPTS                                   \
    {"model", 'm', 1, CLI_OPT_MODEL},                     \
    {"device", 'd', 1, CLI_OPT_DEVICE},                   \
    {"precision", 'p', 1, CLI_OPT_PRECISION},             \
    {"threads", 0, 1, CLI_OPT_THREADS},                   \
    {"input-size", 0, 1, CLI_OPT_INPUT_SIZE},             \
    {"tune", 0, 1, CLI_OPT_TUNE},                         \
    {"max-batch", 0, 1, CLI_OPT_MAX_BATCH},               \
    {"help", 'h', 0, CLI_OPT_HELP}

void cli_engine_init(cli_engine *e);
/* A setting the command itself makes (before parsing, so that --tune overrides it). */
void cli_engine_tune(cli_engine *e, pm_tune key, int value);
/* Handles an engine option: 1 handled, 0 not an engine option, -1 bad value (printed). */
int cli_engine_option(cli_engine *e, const char *cmd, const cli_opt *opts, int id, const char *value);

/* The help lines for the engine options (same for every command; --tune lists the
 * library's keys). */
const char *cli_engine_help(void);

/* Where the executable lives (set by main from /proc/self/exe or argv[0]). */
void cli_set_argv0(const char *argv0);

/* Resolves the model path (explicit, $PETMATTE_MODEL, next to the build tree, the
 * installed share folder) into buf. On failure prints what was tried and how to
 * make the default model, and returns CLI_EXIT_MODEL. */
int cli_find_model(const char *explicit_path, char *buf, size_t cap);

/* Finds the model, opens a context and applies the --tune settings. Returns
 * CLI_EXIT_OK, CLI_EXIT_USAGE (the library rejected an argument) or CLI_EXIT_MODEL,
 * having printed why. */
int cli_open(const cli_engine *e, const char *cmd, pm_ctx **ctx, char *model_path, size_t cap);

/* Exit code for a pm_open/pm_warmup failure code. */
int cli_exit_for_open(pm_code rc);

/* ------------------------------------------------------------------ files */

/* Reads a whole file (path) or stream (fd >= 0, path only for messages) of at most
 * limit bytes into a malloc'd buffer. 0 on success; else -1 with a message in err. */
int cli_read_file(const char *path, size_t limit, unsigned char **data, size_t *size, char *err,
                  size_t errcap);
int cli_read_fd(int fd, const char *name, size_t limit, unsigned char **data, size_t *size, char *err,
                size_t errcap);
/* Writes data to path through a temporary file in the same folder and rename(2), so
 * a reader never sees half a file and a failure leaves the old file alone. */
int cli_write_atomic(const char *path, const void *data, size_t size, char *err, size_t errcap);
/* Writes everything to fd (stdout). */
int cli_write_fd(int fd, const void *data, size_t size, char *err, size_t errcap);
/* Removes a temporary file being written, from a signal handler. */
void cli_cleanup_on_signal(void);
/* Runs handler on SIGINT and SIGTERM, and on SIGHUP when with_hup; sa_flags as given
 * (SA_RESETHAND: a second signal acts at once). */
void cli_on_stop_signals(void (*handler)(int), int sa_flags, int with_hup);

/* Path helpers. Results are malloc'd (NULL when out of memory). */
char *cli_join(const char *dir, const char *name);
char *cli_stem(const char *path);           /* "a/b/c.jpg" -> "c"; ".x" -> ".x" */
char *cli_dirname(const char *path);        /* "a/b/c.jpg" -> "a/b"; "c.jpg" -> "." */
int cli_has_suffix_ci(const char *s, const char *suffix);
int cli_is_image_name(const char *name);    /* by extension, case-insensitive */
int cli_mkdir_p(const char *path, char *err, size_t errcap);

/* --------------------------------------------------------------- progress */

typedef struct cli_progress {
    int enabled;
    size_t total;      /* 0: unknown (video without a frame count): no bar, no ETA */
    double t0;
    int drawn;
    const char *unit;  /* "img/s" (images) or "fps" (frames) */
    const char *noun;  /* after the count: "" or " frames" */
} cli_progress;

double cli_now(void); /* monotonic seconds */
void cli_progress_init(cli_progress *p, size_t total, int enabled);
/* For video frames: "12/240 frames 8.1 fps, 28 s left"; total 0 when unknown. */
void cli_progress_init_frames(cli_progress *p, size_t total, int enabled);
void cli_progress_draw(cli_progress *p, size_t done, size_t failed, const char *name);
void cli_progress_clear(cli_progress *p); /* before printing a line on stderr */
void cli_progress_end(cli_progress *p);
void cli_progress_interrupt(void); /* clears the bar on screen, if any */

/* --------------------------------------------------------------- pipeline */

/* Frames go in on the calling thread (cli_pipe_next, fill, cli_pipe_submit) and come
 * out, in the order they went in, through sink on the calling thread too. */
typedef struct cli_pipe cli_pipe;
/* number: 1-based frame number; tag: the caller's (a timestamp). Returns 0, or -1 with
 * a message in err. */
typedef int (*cli_pipe_sink)(void *user, uint64_t number, int64_t tag, const pm_output *out, char *err,
                             size_t errcap);
/* workers: frames in flight at once (>= 1); frame_bytes: the size of one input frame.
 * NULL when out of memory or no thread could start. */
cli_pipe *cli_pipe_new(pm_ctx *ctx, const pm_remove_options *opt, int workers, size_t frame_bytes,
                       cli_pipe_sink sink, void *user);
/* The buffer for the next frame (frame_bytes), after handing finished frames to the
 * sink as room requires. NULL after a failure: cli_pipe_error says which frame. */
unsigned char *cli_pipe_next(cli_pipe *p);
/* Queues the frame just written into cli_pipe_next's buffer. 0, or -1 after a failure. */
int cli_pipe_submit(cli_pipe *p, int format, int width, int height, size_t stride, int64_t tag);
/* Waits for every queued frame and hands it to the sink. 0, or -1 after a failure. */
int cli_pipe_finish(cli_pipe *p);
const char *cli_pipe_error(const cli_pipe *p); /* "frame N: why" */
uint64_t cli_pipe_written(const cli_pipe *p);  /* frames the sink accepted */
/* Stops the workers (frames still queued are dropped) and frees everything. */
void cli_pipe_free(cli_pipe *p);

/* Frames in flight for ctx: its max_batch (or forward_streams) once READY, else 1. */
int cli_frames_in_flight(pm_ctx *ctx);

/* --------------------------------------------------------------- commands */

int cli_cmd_remove(int argc, char **argv);
int cli_cmd_warmup(int argc, char **argv);
int cli_cmd_info(int argc, char **argv);
int cli_cmd_frames(int argc, char **argv);

/* remove.c hands over an input it recognises as a video (by extension). */
int cli_is_video_name(const char *name);
/* "libavformat 59.27.100, libavcodec 59.37.100" (run time); NULL when built without video. */
const char *cli_video_versions(void);

/* What remove's options say about the output, for video and watch. */
typedef struct cli_remove_request {
    pm_remove_options opt; /* output kind, background, threshold... (encoding unused) */
    const char *output;    /* -o as given; NULL when absent */
    const char *video_format; /* --video-format; NULL when absent */
    int mask, have_bg, quiet;
    const char *made_ext;  /* "png" or "webp": images made by watch */
    int image_encoding;    /* the WebP kind for .webp outputs */
} cli_remove_request;

/* `petmatte remove VIDEO`: plans the output (usage errors before the model loads),
 * opens the model through engine and converts. Returns a CLI exit code. */
int cli_video_remove(const cli_engine *engine, const cli_remove_request *req, const char *input);

/* `petmatte remove FOLDER -o OUTDIR --watch`: after the model is ready, cuts out each
 * image that appears in dir until SIGINT or SIGTERM. Returns a CLI exit code. */
int cli_watch(pm_ctx *ctx, const cli_remove_request *req, const char *dir, const char *outdir);

#endif /* PETMATTE_CLI_H */
